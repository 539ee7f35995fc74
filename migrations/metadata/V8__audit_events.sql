-- The audit trail: every change of configuration and every operator
-- action, who made it, when, on what, and the entity before and after
-- (its API JSON; never a secret or a hash). Written in the transaction of
-- the change it records, never changed or removed afterwards: kept for
-- good (permanent, like the configuration it describes).
CREATE TABLE metadata.audit_events (
    id          bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    at          timestamptz NOT NULL DEFAULT now(),
    -- An API key's name, or 'cli' for the command line.
    actor       text NOT NULL CHECK (length(actor) BETWEEN 1 AND 100),
    -- 'api_key' or 'cli': a key may be named cli too.
    actor_kind  text NOT NULL CHECK (actor_kind ~ '^[a-z_]{1,32}$'),
    -- site, sensor, gateway, alert_rule, api_key, alert, …: the list is
    -- the code's (stoker_metadata::Entity), so a new entity needs no
    -- migration.
    entity      text NOT NULL CHECK (entity ~ '^[a-z_]{1,32}$'),
    -- How the API names it: a slug, a sensor key, a UUID, a key's name.
    entity_id   text NOT NULL CHECK (length(entity_id) BETWEEN 1 AND 200),
    -- The site it belongs to; NULL for what spans sites (API keys, alert
    -- rules without a site).
    site        text,
    -- created, updated, deleted, registered, rotated, revoked,
    -- acknowledged, resolved, …
    action      text NOT NULL CHECK (action ~ '^[a-z_]{1,32}$'),
    before      jsonb,
    after       jsonb,
    CONSTRAINT audit_events_has_state CHECK (before IS NOT NULL OR after IS NOT NULL)
);

CREATE INDEX audit_events_at ON metadata.audit_events (at DESC, id DESC);
CREATE INDEX audit_events_site ON metadata.audit_events (site, at DESC, id DESC);

CREATE FUNCTION metadata.refuse_audit_change() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'metadata.audit_events is append-only: % refused', TG_OP
        USING ERRCODE = 'insufficient_privilege';
END;
$$;

CREATE TRIGGER audit_events_append_only
    BEFORE UPDATE OR DELETE ON metadata.audit_events
    FOR EACH ROW EXECUTE FUNCTION metadata.refuse_audit_change();
CREATE TRIGGER audit_events_no_truncate
    BEFORE TRUNCATE ON metadata.audit_events
    FOR EACH STATEMENT EXECUTE FUNCTION metadata.refuse_audit_change();
