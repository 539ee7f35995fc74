-- Threshold rules that compare boolean and state sensors (DESIGN.md,
-- "Signals that are not numbers"): `op` `==` or `!=` and a threshold of
-- the sensor's type, `true` or a state's name, with no clear value.
-- Additive: existing rules keep their numeric threshold in `threshold`;
-- the op's CHECK and the threshold kind's CHECKs are widened, never
-- narrowed, so every existing row still holds.
--
-- A typed threshold has a column per type (the column of the model's field
-- `threshold` plus `_flag` or `_state`), exactly one of them set for a
-- threshold rule. The checks repeat the application's validation.

ALTER TABLE metadata.alert_rules
    ADD COLUMN threshold_flag boolean,
    ADD COLUMN threshold_state text
        CHECK (threshold_state ~ '^[A-Za-z0-9][A-Za-z0-9_.:-]{0,62}$');

ALTER TABLE metadata.alert_rules
    DROP CONSTRAINT alert_rules_op_check,
    ADD CONSTRAINT alert_rules_op_check
        CHECK (op IN ('>', '>=', '<', '<=', '==', '!='));

-- A threshold rule ordering numbers holds a number and a clear value (V2);
-- one comparing a boolean or a state holds exactly one of those, no
-- number and no clear value, and reduces its window with `last` (a state)
-- or `last`, `min` or `max` (a boolean).
ALTER TABLE metadata.alert_rules
    DROP CONSTRAINT alert_rules_threshold_columns,
    ADD CONSTRAINT alert_rules_threshold_columns CHECK (kind <> 'threshold' OR (
        agg IS NOT NULL AND op IS NOT NULL AND window_ms IS NOT NULL AND for_ms IS NOT NULL
        AND rate_per_min IS NULL AND clear_rate_per_min IS NULL AND timeout_ms IS NULL
        AND baseline_ms IS NULL AND z IS NULL AND clear_z IS NULL
        AND CASE WHEN op IN ('==', '!=') THEN
                threshold IS NULL AND clear_threshold IS NULL
                AND ((threshold_flag IS NOT NULL AND threshold_state IS NULL
                      AND agg IN ('last', 'min', 'max'))
                  OR (threshold_state IS NOT NULL AND threshold_flag IS NULL
                      AND agg = 'last'))
            ELSE
                threshold IS NOT NULL AND clear_threshold IS NOT NULL
                AND threshold_flag IS NULL AND threshold_state IS NULL
            END)),
    DROP CONSTRAINT alert_rules_threshold_hysteresis,
    ADD CONSTRAINT alert_rules_threshold_hysteresis CHECK (kind <> 'threshold'
        OR (op IN ('>', '>=') AND clear_threshold <= threshold)
        OR (op IN ('<', '<=') AND clear_threshold >= threshold)
        OR op IN ('==', '!=')),
    -- Only a threshold rule has a typed threshold (the other kinds' V2
    -- CHECKs forbid `threshold` itself).
    ADD CONSTRAINT alert_rules_typed_threshold_only_threshold CHECK (kind = 'threshold'
        OR (threshold_flag IS NULL AND threshold_state IS NULL));
