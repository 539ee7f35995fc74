-- Sites and their sensors: the registry every reading is validated against.
-- Identifiers follow DESIGN.md; the checks repeat the application's rules so
-- that no other writer can store a value the platform would refuse.

CREATE TABLE metadata.sites (
    id          uuid PRIMARY KEY,
    slug        text NOT NULL UNIQUE CHECK (slug ~ '^[a-z0-9][a-z0-9_-]{0,62}$'),
    name        text NOT NULL CHECK (length(name) BETWEEN 1 AND 200),
    timezone    text NOT NULL,
    version     bigint NOT NULL DEFAULT 1,
    created_at  timestamptz NOT NULL DEFAULT now(),
    updated_at  timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE metadata.sensors (
    id          uuid PRIMARY KEY,
    site_id     uuid NOT NULL REFERENCES metadata.sites (id) ON DELETE RESTRICT,
    key         text NOT NULL CHECK (key ~ '^[a-z0-9][a-z0-9_-]{0,62}$'),
    type        text NOT NULL CHECK (type ~ '^[a-z][a-z0-9_]{0,31}$'),
    unit        text NOT NULL CHECK (length(unit) BETWEEN 1 AND 32),
    min_value   double precision,
    max_value   double precision,
    version     bigint NOT NULL DEFAULT 1,
    created_at  timestamptz NOT NULL DEFAULT now(),
    updated_at  timestamptz NOT NULL DEFAULT now(),
    UNIQUE (site_id, key),
    CHECK (min_value IS NULL OR max_value IS NULL OR min_value < max_value)
);

-- Every change to the registry is announced on channel `stoker_metadata`,
-- so ingestion processes refresh their in-memory copy at once.
CREATE FUNCTION metadata.announce_change() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_notify('stoker_metadata', TG_TABLE_NAME);
    RETURN NULL;
END;
$$;

CREATE TRIGGER sites_changed
    AFTER INSERT OR UPDATE OR DELETE OR TRUNCATE ON metadata.sites
    FOR EACH STATEMENT EXECUTE FUNCTION metadata.announce_change();

CREATE TRIGGER sensors_changed
    AFTER INSERT OR UPDATE OR DELETE OR TRUNCATE ON metadata.sensors
    FOR EACH STATEMENT EXECUTE FUNCTION metadata.announce_change();
