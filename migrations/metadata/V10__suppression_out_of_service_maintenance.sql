-- Alarm suppression (DESIGN.md, "Alarm management"): a rule's suppression
-- by design, sensors and rules taken out of service, and maintenance
-- windows. Additive: every existing row keeps its meaning (no condition,
-- in service, no window).

-- A rule's `suppress_when`: the deciding sensor (of the watched sensor's
-- site), the comparison, and its value typed as a threshold's (a number
-- for an ordering; a boolean or a state's name for == and !=). All NULL:
-- no condition.
ALTER TABLE metadata.alert_rules
    ADD COLUMN suppress_when_sensor text
        CHECK (suppress_when_sensor ~ '^[a-z0-9][a-z0-9_-]{0,62}$'),
    ADD COLUMN suppress_when_op text
        CHECK (suppress_when_op IN ('>', '>=', '<', '<=', '==', '!=')),
    ADD COLUMN suppress_when_value double precision,
    ADD COLUMN suppress_when_value_flag boolean,
    ADD COLUMN suppress_when_value_state text
        CHECK (suppress_when_value_state ~ '^[A-Za-z0-9][A-Za-z0-9_.:-]{0,62}$'),
    ADD CONSTRAINT alert_rules_suppress_when CHECK (
        CASE WHEN suppress_when_sensor IS NULL
             THEN num_nonnulls(suppress_when_op, suppress_when_value,
                               suppress_when_value_flag, suppress_when_value_state) = 0
             WHEN suppress_when_op IN ('>', '>=', '<', '<=')
             THEN suppress_when_value IS NOT NULL
                  AND suppress_when_value_flag IS NULL AND suppress_when_value_state IS NULL
             ELSE suppress_when_op IS NOT NULL AND suppress_when_value IS NULL
                  AND num_nonnulls(suppress_when_value_flag, suppress_when_value_state) = 1
        END);

-- Out of service (an operator's action, not a change of definition: the
-- version stays): until when, why, who and since when. All NULL: in
-- service; a past `until` is in service again.
ALTER TABLE metadata.alert_rules
    ADD COLUMN out_of_service_until timestamptz,
    ADD COLUMN out_of_service_reason text
        CHECK (length(out_of_service_reason) BETWEEN 1 AND 500),
    ADD COLUMN out_of_service_by text CHECK (length(out_of_service_by) BETWEEN 1 AND 100),
    ADD COLUMN out_of_service_since timestamptz,
    ADD CONSTRAINT alert_rules_out_of_service CHECK (
        num_nonnulls(out_of_service_until, out_of_service_reason, out_of_service_by,
                     out_of_service_since) IN (0, 4));

ALTER TABLE metadata.sensors
    ADD COLUMN out_of_service_until timestamptz,
    ADD COLUMN out_of_service_reason text
        CHECK (length(out_of_service_reason) BETWEEN 1 AND 500),
    ADD COLUMN out_of_service_by text CHECK (length(out_of_service_by) BETWEEN 1 AND 100),
    ADD COLUMN out_of_service_since timestamptz,
    ADD CONSTRAINT sensors_out_of_service CHECK (
        num_nonnulls(out_of_service_until, out_of_service_reason, out_of_service_by,
                     out_of_service_since) IN (0, 4));

-- What the evaluation loop reads at every tick: the few rows out of service.
CREATE INDEX sensors_out_of_service ON metadata.sensors (out_of_service_until)
    WHERE out_of_service_until IS NOT NULL;
CREATE INDEX alert_rules_out_of_service ON metadata.alert_rules (out_of_service_until)
    WHERE out_of_service_until IS NOT NULL;

-- Maintenance windows: one-off (`starts_at`, `ends_at`) or weekly in the
-- site's local time (`weekly_days`, ISO weekdays 1 = Monday … 7 = Sunday,
-- from `weekly_from` to `weekly_to`; a `to` at or before `from` runs past
-- midnight into the next day). Configuration, kept until deleted (the
-- audit trail keeps each creation and deletion); a site's windows go with
-- it.
CREATE TABLE metadata.maintenance_windows (
    id           uuid PRIMARY KEY,
    site_id      uuid NOT NULL REFERENCES metadata.sites (id) ON DELETE CASCADE,
    starts_at    timestamptz,
    ends_at      timestamptz,
    weekly_days  smallint[],
    weekly_from  time,
    weekly_to    time,
    reason       text NOT NULL CHECK (length(reason) BETWEEN 1 AND 500),
    created_by   text NOT NULL CHECK (length(created_by) BETWEEN 1 AND 100),
    created_at   timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT maintenance_windows_one_off_or_weekly CHECK (
        CASE WHEN starts_at IS NOT NULL
             THEN ends_at > starts_at
                  AND num_nonnulls(weekly_days, weekly_from, weekly_to) = 0
             ELSE ends_at IS NULL AND weekly_days IS NOT NULL
                  AND weekly_from IS NOT NULL AND weekly_to IS NOT NULL
                  AND cardinality(weekly_days) BETWEEN 1 AND 7
                  AND weekly_days <@ ARRAY[1, 2, 3, 4, 5, 6, 7]::smallint[]
        END)
);

CREATE INDEX maintenance_windows_site ON metadata.maintenance_windows (site_id, id);

CREATE TRIGGER maintenance_windows_row_changed
    AFTER INSERT OR UPDATE OR DELETE ON metadata.maintenance_windows
    FOR EACH ROW EXECUTE FUNCTION metadata.announce_site_row_change();
CREATE TRIGGER maintenance_windows_truncated
    AFTER TRUNCATE ON metadata.maintenance_windows
    FOR EACH STATEMENT EXECUTE FUNCTION metadata.announce_change();
