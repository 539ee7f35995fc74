-- Notification (DESIGN.md, "Alarm management"): e-mail as a channel,
-- escalation of unacknowledged alarms, and alarm floods gathered into
-- digests. Additive: every existing row still holds.

-- E-mail rows: the recipients as the target, the rendered message as the
-- body.
ALTER TABLE analytics.notifications DROP CONSTRAINT notifications_channel_check;
ALTER TABLE analytics.notifications
    ADD CONSTRAINT notifications_channel_check
        CHECK (channel IN ('mqtt', 'webhook', 'email'));

-- `escalated` joins the transitions of the trail. The CHECK is widened in
-- place, whatever transitions it already allows: its list is read from the
-- catalog and 'escalated' added to it.
DO $$
DECLARE
    constraint_name text;
    definition text;
BEGIN
    FOR constraint_name, definition IN
        SELECT c.conname, pg_get_constraintdef(c.oid)
        FROM pg_constraint c
        WHERE c.conrelid = 'analytics.alert_events'::regclass
          AND c.contype = 'c'
          AND pg_get_constraintdef(c.oid) LIKE '%transition%'
          AND pg_get_constraintdef(c.oid) LIKE '%''fired''%'
          AND pg_get_constraintdef(c.oid) NOT LIKE '%''escalated''%'
    LOOP
        IF position('ARRAY[' IN definition) = 0 THEN
            RAISE EXCEPTION 'cannot widen % (%): no list of transitions', constraint_name, definition;
        END IF;
        EXECUTE format('ALTER TABLE analytics.alert_events DROP CONSTRAINT %I', constraint_name);
        EXECUTE format('ALTER TABLE analytics.alert_events ADD CONSTRAINT %I %s',
                       constraint_name,
                       replace(definition, 'ARRAY[', 'ARRAY[''escalated''::text, '));
    END LOOP;
END
$$;

-- Alarm floods: more than N alarms within a window at one site (the
-- settings are the dispatcher's, not the schema's). One open flood per
-- site; ended_at is set when the window holds no more than N alarms.
-- Kept as the alarm history is (the KPIs' `flood_share` reads it).
CREATE TABLE analytics.floods (
    id          bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    site        text NOT NULL CHECK (site ~ '^[a-z0-9][a-z0-9_-]{0,62}$'),
    started_at  timestamptz NOT NULL,
    ended_at    timestamptz,
    CONSTRAINT floods_ends_after_start CHECK (ended_at IS NULL OR ended_at >= started_at)
);
CREATE UNIQUE INDEX floods_one_open ON analytics.floods (site) WHERE ended_at IS NULL;
CREATE INDEX floods_site_started ON analytics.floods (site, started_at);

-- One digest per period of a flood: the notifications it held since the
-- last one, sent as one message per channel.
CREATE TABLE analytics.digests (
    id        bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    flood_id  bigint NOT NULL REFERENCES analytics.floods (id),
    site      text NOT NULL CHECK (site ~ '^[a-z0-9][a-z0-9_-]{0,62}$'),
    at        timestamptz NOT NULL,
    -- The events listed, and how many of them opened an alert.
    notices   integer NOT NULL CHECK (notices >= 0),
    alarms    integer NOT NULL CHECK (alarms >= 0)
);
CREATE INDEX digests_flood ON analytics.digests (flood_id, at);

-- A notification announces an event or carries a digest. A held one
-- (held_by: the flood) is not sent; once a digest carried it, digested_in
-- names that digest. Held rows stay, as every row does, as the record.
ALTER TABLE analytics.notifications
    ALTER COLUMN event_id DROP NOT NULL,
    ADD COLUMN digest_id bigint REFERENCES analytics.digests (id),
    ADD COLUMN held_by bigint REFERENCES analytics.floods (id),
    ADD COLUMN digested_in bigint REFERENCES analytics.digests (id),
    ADD CONSTRAINT notifications_event_or_digest CHECK (num_nonnulls(event_id, digest_id) = 1),
    ADD CONSTRAINT notifications_digested_held CHECK (digested_in IS NULL OR held_by IS NOT NULL);

-- The dispatchers look for rows to send only: held rows stay out of the
-- due index.
DROP INDEX analytics.notifications_due;
CREATE INDEX notifications_due ON analytics.notifications (next_attempt_at, id)
    WHERE delivered_at IS NULL AND failed_at IS NULL AND held_by IS NULL;
CREATE INDEX notifications_held ON analytics.notifications (held_by, id)
    WHERE held_by IS NOT NULL AND digested_in IS NULL;
CREATE INDEX notifications_digest ON analytics.notifications (digest_id)
    WHERE digest_id IS NOT NULL;
