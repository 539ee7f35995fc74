-- Alarm management (DESIGN.md, "Alarm management", ISA-18.2): an alert
-- keeps two facts, whether its condition is active and whether someone
-- acknowledged it, and its state names the pair: `unacknowledged`
-- (active), `acknowledged` (active), `cleared_unacknowledged` (returned to
-- normal before anyone acknowledged it) and `closed`. A condition that
-- returns while its alert is not closed reactivates the same alert.
--
-- Existing rows: `firing` becomes `unacknowledged`, `resolved` becomes
-- `closed`, `acknowledged` stays; the ones not resolved are active.
-- `resolved_at`/`resolved_by` keep their meaning for every reader: when
-- and by whom the alert's active life ended (its condition cleared, an
-- operator reset or resolved it); NULL while active.
--
-- New: `active`; `activated_at` (the last time it fired or was
-- reactivated); `latched_at` (the condition of a latching rule cleared
-- while the alert stays active until reset); shelving (`shelved_until`,
-- `shelved_by`, `shelve_reason`); the rule's rationalization copied at
-- opening like its name. Events gain the transitions of this life and the
-- `fired` event its `explanation`.

ALTER TABLE analytics.alerts
    DROP CONSTRAINT alerts_state_check,
    DROP CONSTRAINT alerts_resolved,
    DROP CONSTRAINT alerts_state_acknowledged;
DROP INDEX analytics.alerts_one_open;
DROP INDEX analytics.alerts_open_by_site;
DROP INDEX analytics.alerts_one_open_gateway;

ALTER TABLE analytics.alerts
    ADD COLUMN active boolean NOT NULL DEFAULT false,
    ADD COLUMN activated_at timestamptz,
    ADD COLUMN latched_at timestamptz,
    ADD COLUMN shelved_until timestamptz,
    ADD COLUMN shelved_by text CHECK (length(shelved_by) BETWEEN 1 AND 100),
    ADD COLUMN shelve_reason text CHECK (length(shelve_reason) BETWEEN 1 AND 1000),
    ADD COLUMN cause text CHECK (length(cause) BETWEEN 1 AND 2000),
    ADD COLUMN consequence text CHECK (length(consequence) BETWEEN 1 AND 2000),
    ADD COLUMN operator_action text CHECK (length(operator_action) BETWEEN 1 AND 2000),
    ADD COLUMN response_time_ms bigint CHECK (response_time_ms > 0);

UPDATE analytics.alerts
SET state = CASE state WHEN 'firing' THEN 'unacknowledged'
                       WHEN 'resolved' THEN 'closed'
                       ELSE state END,
    active = state <> 'resolved',
    activated_at = opened_at;

-- A new alert is active, and activated when it opened, unless the writer
-- says otherwise.
ALTER TABLE analytics.alerts
    ALTER COLUMN active SET DEFAULT true,
    ALTER COLUMN activated_at SET NOT NULL,
    ADD CONSTRAINT alerts_state_check CHECK (
        state IN ('unacknowledged', 'acknowledged', 'cleared_unacknowledged', 'closed')),
    -- The state names the two facts.
    ADD CONSTRAINT alerts_active_state CHECK (
        active = (state IN ('unacknowledged', 'acknowledged'))),
    ADD CONSTRAINT alerts_state_acknowledged CHECK (
        (state <> 'acknowledged' OR acknowledged_at IS NOT NULL)
        AND (state NOT IN ('unacknowledged', 'cleared_unacknowledged')
             OR acknowledged_at IS NULL)),
    -- Its active life ended exactly when it is not active.
    ADD CONSTRAINT alerts_resolved CHECK (
        (NOT active) = (resolved_at IS NOT NULL)
        AND (resolved_at IS NULL) = (resolved_by IS NULL)),
    ADD CONSTRAINT alerts_latched CHECK (latched_at IS NULL OR active),
    ADD CONSTRAINT alerts_shelved CHECK (
        num_nonnulls(shelved_until, shelved_by, shelve_reason) IN (0, 3)
        AND (shelved_until IS NULL OR state <> 'closed'));

CREATE FUNCTION analytics.alert_activated_at() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    NEW.activated_at := coalesce(NEW.activated_at, NEW.opened_at);
    RETURN NEW;
END;
$$;

CREATE TRIGGER alerts_activated_at
    BEFORE INSERT ON analytics.alerts
    FOR EACH ROW EXECUTE FUNCTION analytics.alert_activated_at();

-- At most one alert not closed per rule and sensor, and per gateway: the
-- database refuses a duplicate whatever the processes do.
CREATE UNIQUE INDEX alerts_one_open ON analytics.alerts (rule_id, site, sensor)
    WHERE state <> 'closed';
CREATE INDEX alerts_open_by_site ON analytics.alerts (site, opened_at DESC)
    WHERE state <> 'closed';
CREATE UNIQUE INDEX alerts_one_open_gateway
    ON analytics.alerts (gateway_group, gateway_edge_node)
    WHERE kind = 'gateway_offline' AND state <> 'closed';
-- The shelves the evaluation loop empties at expiry.
CREATE INDEX alerts_shelved_until ON analytics.alerts (shelved_until)
    WHERE shelved_until IS NOT NULL;

ALTER TABLE analytics.alert_events
    DROP CONSTRAINT alert_events_transition_check,
    ADD CONSTRAINT alert_events_transition_check CHECK (transition IN (
        'fired', 'acknowledged', 'resolved', 'cleared', 'reactivated', 'closed', 'latched',
        'reset', 'shelved', 'unshelved')),
    -- What a `fired` or `reactivated` decision was computed from.
    ADD COLUMN explanation jsonb CHECK (
        explanation IS NULL OR jsonb_typeof(explanation) = 'object');
