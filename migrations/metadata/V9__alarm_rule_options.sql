-- Alarm management on the rule (DESIGN.md, "Alarm management"): whether
-- its alert latches until an operator resets it, how long an operator may
-- shelve it, and its rationalization (ISA-18.2's master alarm database:
-- cause, consequence, the operator's action and how soon it is needed).
-- Additive: every existing rule takes the defaults (not latching, 8 h
-- shelving at most, no rationalization). The checks repeat the model's
-- validation (`stoker-rules`: `MAX_RATIONALE_CHARS`, `MAX_SHELVE_LIMIT`).

ALTER TABLE metadata.alert_rules
    ADD COLUMN latching boolean NOT NULL DEFAULT false,
    ADD COLUMN max_shelve_ms bigint NOT NULL DEFAULT 28800000
        CHECK (max_shelve_ms > 0 AND max_shelve_ms <= 604800000),
    ADD COLUMN cause text CHECK (length(cause) BETWEEN 1 AND 2000),
    ADD COLUMN consequence text CHECK (length(consequence) BETWEEN 1 AND 2000),
    ADD COLUMN operator_action text
        CHECK (length(operator_action) BETWEEN 1 AND 2000),
    ADD COLUMN response_time_ms bigint CHECK (response_time_ms > 0);
