-- Alerts of rules comparing boolean and state sensors (DESIGN.md, "Signals
-- that are not numbers") report their value and threshold in the sensor's
-- type: `true`, `"lockout"`. Additive: numbers stay in `value` and
-- `threshold`; a boolean goes to `<column>_flag`, a state's name to
-- `<column>_state`, and at most one of the three is set.

ALTER TABLE analytics.alerts
    ADD COLUMN value_flag boolean,
    ADD COLUMN value_state text
        CHECK (value_state ~ '^[A-Za-z0-9][A-Za-z0-9_.:-]{0,62}$'),
    ADD COLUMN threshold_flag boolean,
    ADD COLUMN threshold_state text
        CHECK (threshold_state ~ '^[A-Za-z0-9][A-Za-z0-9_.:-]{0,62}$'),
    ADD CONSTRAINT alerts_one_value CHECK (num_nonnulls(value, value_flag, value_state) <= 1),
    ADD CONSTRAINT alerts_one_threshold
        CHECK (num_nonnulls(threshold, threshold_flag, threshold_state) <= 1);

ALTER TABLE analytics.alert_events
    ADD COLUMN value_flag boolean,
    ADD COLUMN value_state text
        CHECK (value_state ~ '^[A-Za-z0-9][A-Za-z0-9_.:-]{0,62}$'),
    ADD CONSTRAINT alert_events_one_value
        CHECK (num_nonnulls(value, value_flag, value_state) <= 1);
