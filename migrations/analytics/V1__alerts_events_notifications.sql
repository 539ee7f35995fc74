-- Alerts raised by the rules of metadata.alert_rules, their event trail and
-- the notifications each event sends. The analytics crate owns this schema.
--
-- A rule may be deleted while its alerts stay as history, so alerts keep the
-- rule's id, name, kind and severity as they were, without a foreign key
-- into another crate's schema. Site and sensor are stored by slug and key
-- for the same reason.

CREATE TABLE analytics.alerts (
    id               uuid PRIMARY KEY,
    rule_id          uuid NOT NULL,
    rule_name        text NOT NULL CHECK (length(rule_name) BETWEEN 1 AND 200),
    kind             text NOT NULL
                     CHECK (kind IN ('threshold', 'rate_of_change', 'no_data', 'anomaly')),
    severity         text NOT NULL CHECK (severity IN ('info', 'warning', 'critical')),
    site             text NOT NULL CHECK (site ~ '^[a-z0-9][a-z0-9_-]{0,62}$'),
    sensor           text NOT NULL CHECK (sensor ~ '^[a-z0-9][a-z0-9_-]{0,62}$'),
    state            text NOT NULL CHECK (state IN ('firing', 'acknowledged', 'resolved')),
    -- The evaluation time at which the rule fired, the value it saw (null
    -- for no_data: there was no value), the limit it was compared with
    -- (threshold, rate or z) and the sentence that says so.
    opened_at        timestamptz NOT NULL,
    value            double precision,
    threshold        double precision,
    message          text NOT NULL CHECK (length(message) BETWEEN 1 AND 1000),
    acknowledged_at  timestamptz,
    acknowledged_by  text,
    resolved_at      timestamptz,
    resolved_by      text,
    version          bigint NOT NULL DEFAULT 1,

    CONSTRAINT alerts_acknowledged CHECK (
        (acknowledged_at IS NULL) = (acknowledged_by IS NULL)),
    CONSTRAINT alerts_resolved CHECK (
        (state = 'resolved') = (resolved_at IS NOT NULL)
        AND (resolved_at IS NULL) = (resolved_by IS NULL)),
    CONSTRAINT alerts_state_acknowledged CHECK (
        state <> 'acknowledged' OR acknowledged_at IS NOT NULL)
);

-- At most one open (firing or acknowledged) alert per rule and sensor:
-- the database refuses a duplicate whatever the processes do.
CREATE UNIQUE INDEX alerts_one_open ON analytics.alerts (rule_id, site, sensor)
    WHERE state <> 'resolved';
CREATE INDEX alerts_open_by_site ON analytics.alerts (site, opened_at DESC)
    WHERE state <> 'resolved';
CREATE INDEX alerts_opened_at ON analytics.alerts (opened_at DESC, id DESC);
CREATE INDEX alerts_site_opened_at ON analytics.alerts (site, opened_at DESC, id DESC);

-- Every transition of an alert, never changed or removed afterwards.
CREATE TABLE analytics.alert_events (
    id          bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    alert_id    uuid NOT NULL REFERENCES analytics.alerts (id),
    transition  text NOT NULL CHECK (transition IN ('fired', 'acknowledged', 'resolved')),
    at          timestamptz NOT NULL,
    -- 'analytics' for the evaluation loop, else the API key's name.
    actor       text NOT NULL CHECK (length(actor) BETWEEN 1 AND 100),
    value       double precision,
    detail      text NOT NULL
);

CREATE INDEX alert_events_alert ON analytics.alert_events (alert_id, id);

CREATE FUNCTION analytics.refuse_event_change() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'analytics.alert_events is append-only: % refused', TG_OP
        USING ERRCODE = 'insufficient_privilege';
END;
$$;

CREATE TRIGGER alert_events_append_only
    BEFORE UPDATE OR DELETE ON analytics.alert_events
    FOR EACH ROW EXECUTE FUNCTION analytics.refuse_event_change();
CREATE TRIGGER alert_events_no_truncate
    BEFORE TRUNCATE ON analytics.alert_events
    FOR EACH STATEMENT EXECUTE FUNCTION analytics.refuse_event_change();

-- The outbox: one row per event and destination (the MQTT topic
-- alerts/{site}, each configured webhook), written in the transaction of
-- the transition, so no transition goes unannounced. Delivered or failed
-- (after the last attempt) rows stay as the record.
CREATE TABLE analytics.notifications (
    id               bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    event_id         bigint NOT NULL REFERENCES analytics.alert_events (id),
    channel          text NOT NULL CHECK (channel IN ('mqtt', 'webhook')),
    -- The topic or the URL.
    target           text NOT NULL,
    -- Exactly the bytes sent (and signed).
    body             text NOT NULL,
    created_at       timestamptz NOT NULL DEFAULT now(),
    attempts         integer NOT NULL DEFAULT 0 CHECK (attempts >= 0),
    next_attempt_at  timestamptz NOT NULL DEFAULT now(),
    delivered_at     timestamptz,
    failed_at        timestamptz,
    last_error       text,

    CONSTRAINT notifications_settled_once CHECK (
        delivered_at IS NULL OR failed_at IS NULL)
);

CREATE INDEX notifications_due ON analytics.notifications (next_attempt_at, id)
    WHERE delivered_at IS NULL AND failed_at IS NULL;
CREATE INDEX notifications_event ON analytics.notifications (event_id);
