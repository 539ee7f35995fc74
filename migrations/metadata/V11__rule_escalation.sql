-- Escalation of unacknowledged alarms (DESIGN.md, "Alarm management",
-- Notification): a rule may say how long its alerts may stay
-- unacknowledged before they are escalated, and again after each such
-- period until acknowledged or closed. The model's setting
-- `escalate_after` (a duration: its column is `<name>_ms`). Additive:
-- existing rules have none and are never escalated.

ALTER TABLE metadata.alert_rules
    ADD COLUMN escalate_after_ms bigint
        CONSTRAINT alert_rules_escalate_after_positive
        CHECK (escalate_after_ms IS NULL OR escalate_after_ms > 0);
