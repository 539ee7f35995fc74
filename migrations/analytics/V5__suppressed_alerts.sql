-- Suppressed alarms (DESIGN.md, "Alarm management"): an alert raised while
-- its rule's suppress_when holds, its gateway is offline, its rule or
-- sensor is out of service, or its site is in a maintenance window is
-- still recorded, with why in `suppressed`, and never announced (its
-- events queue no notification). NULL: announced as ever. Additive.
ALTER TABLE analytics.alerts
    ADD COLUMN suppressed text CHECK (
        suppressed IN ('suppress_when', 'gateway_offline', 'out_of_service', 'maintenance'));

-- The trail gains `suppressed` and `unsuppressed` events (and whatever
-- other transitions alarm management records): the list of transitions is
-- the code's, as the audit trail's entities are, so a new one needs no
-- migration. Every CHECK naming `transition` is replaced by one on its
-- shape.
DO $$
DECLARE
    constraint_name text;
BEGIN
    FOR constraint_name IN
        SELECT conname FROM pg_constraint
        WHERE conrelid = 'analytics.alert_events'::regclass AND contype = 'c'
          AND pg_get_constraintdef(oid) LIKE '%transition%'
    LOOP
        EXECUTE format('ALTER TABLE analytics.alert_events DROP CONSTRAINT %I', constraint_name);
    END LOOP;
END;
$$;

ALTER TABLE analytics.alert_events
    ADD CONSTRAINT alert_events_transition_name CHECK (transition ~ '^[a-z_]{1,32}$');
