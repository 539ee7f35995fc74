-- Alert rules, API keys, and change notifications that say which site
-- changed. Additive: V1's tables are untouched; its statement-level
-- triggers are replaced by row-level ones.

-- Keyset pagination orders by the byte order of slugs and keys (the same
-- order as Rust's), whatever the database's collation.
CREATE INDEX sites_slug_c ON metadata.sites (slug COLLATE "C");
CREATE INDEX sensors_site_key_c ON metadata.sensors (site_id, key COLLATE "C");

-- An alert rule: what it watches (at least one of site, sensor key, sensor
-- type; a sensor key without a site means that key at any site) and, by
-- kind, its own columns. Each kind's CHECK requires its columns and forbids
-- every other kind's, so no row can hold a half-defined rule. Durations are
-- milliseconds. The checks repeat the application's validation.
CREATE TABLE metadata.alert_rules (
    id                  uuid PRIMARY KEY,
    name                text NOT NULL CHECK (length(name) BETWEEN 1 AND 200),
    site_id             uuid REFERENCES metadata.sites (id) ON DELETE RESTRICT,
    sensor_key          text CHECK (sensor_key ~ '^[a-z0-9][a-z0-9_-]{0,62}$'),
    sensor_type         text CHECK (sensor_type ~ '^[a-z][a-z0-9_]{0,31}$'),
    kind                text NOT NULL
                        CHECK (kind IN ('threshold', 'rate_of_change', 'no_data', 'anomaly')),
    severity            text NOT NULL CHECK (severity IN ('info', 'warning', 'critical')),
    enabled             boolean NOT NULL DEFAULT true,
    -- threshold
    agg                 text CHECK (agg IN ('mean', 'min', 'max', 'last')),
    -- threshold, rate_of_change
    op                  text CHECK (op IN ('>', '>=', '<', '<=')),
    threshold           double precision
                        CHECK (threshold > '-Infinity' AND threshold < 'Infinity'),
    clear_threshold     double precision
                        CHECK (clear_threshold > '-Infinity' AND clear_threshold < 'Infinity'),
    -- threshold, rate_of_change, anomaly
    window_ms           bigint CHECK (window_ms > 0),
    -- threshold
    for_ms              bigint CHECK (for_ms >= 0),
    -- rate_of_change
    rate_per_min        double precision
                        CHECK (rate_per_min > '-Infinity' AND rate_per_min < 'Infinity'),
    clear_rate_per_min  double precision
                        CHECK (clear_rate_per_min > '-Infinity' AND clear_rate_per_min < 'Infinity'),
    -- no_data
    timeout_ms          bigint CHECK (timeout_ms > 0),
    -- anomaly
    baseline_ms         bigint CHECK (baseline_ms > 0),
    z                   double precision CHECK (z > 0 AND z < 'Infinity'),
    clear_z             double precision CHECK (clear_z > 0 AND clear_z < 'Infinity'),
    version             bigint NOT NULL DEFAULT 1,
    created_at          timestamptz NOT NULL DEFAULT now(),
    updated_at          timestamptz NOT NULL DEFAULT now(),

    CONSTRAINT alert_rules_selector
        CHECK (site_id IS NOT NULL OR sensor_key IS NOT NULL OR sensor_type IS NOT NULL),

    CONSTRAINT alert_rules_threshold_columns CHECK (kind <> 'threshold' OR (
        agg IS NOT NULL AND op IS NOT NULL AND threshold IS NOT NULL
        AND clear_threshold IS NOT NULL AND window_ms IS NOT NULL AND for_ms IS NOT NULL
        AND rate_per_min IS NULL AND clear_rate_per_min IS NULL AND timeout_ms IS NULL
        AND baseline_ms IS NULL AND z IS NULL AND clear_z IS NULL)),
    CONSTRAINT alert_rules_threshold_hysteresis CHECK (kind <> 'threshold'
        OR (op IN ('>', '>=') AND clear_threshold <= threshold)
        OR (op IN ('<', '<=') AND clear_threshold >= threshold)),

    CONSTRAINT alert_rules_rate_of_change_columns CHECK (kind <> 'rate_of_change' OR (
        op IS NOT NULL AND rate_per_min IS NOT NULL AND clear_rate_per_min IS NOT NULL
        AND window_ms IS NOT NULL
        AND agg IS NULL AND threshold IS NULL AND clear_threshold IS NULL AND for_ms IS NULL
        AND timeout_ms IS NULL AND baseline_ms IS NULL AND z IS NULL AND clear_z IS NULL)),
    CONSTRAINT alert_rules_rate_of_change_hysteresis CHECK (kind <> 'rate_of_change'
        OR (op IN ('>', '>=') AND clear_rate_per_min <= rate_per_min)
        OR (op IN ('<', '<=') AND clear_rate_per_min >= rate_per_min)),

    CONSTRAINT alert_rules_no_data_columns CHECK (kind <> 'no_data' OR (
        timeout_ms IS NOT NULL
        AND agg IS NULL AND op IS NULL AND threshold IS NULL AND clear_threshold IS NULL
        AND window_ms IS NULL AND for_ms IS NULL AND rate_per_min IS NULL
        AND clear_rate_per_min IS NULL AND baseline_ms IS NULL AND z IS NULL
        AND clear_z IS NULL)),

    CONSTRAINT alert_rules_anomaly_hysteresis CHECK (kind <> 'anomaly'
        OR (baseline_ms > window_ms AND clear_z <= z)),

    CONSTRAINT alert_rules_anomaly_columns CHECK (kind <> 'anomaly' OR (
        window_ms IS NOT NULL AND baseline_ms IS NOT NULL AND z IS NOT NULL
        AND clear_z IS NOT NULL
        AND agg IS NULL AND op IS NULL AND threshold IS NULL AND clear_threshold IS NULL
        AND for_ms IS NULL AND rate_per_min IS NULL AND clear_rate_per_min IS NULL
        AND timeout_ms IS NULL))
);

-- Counting a site's rules before deleting it; the analytics loop's list.
CREATE INDEX alert_rules_site ON metadata.alert_rules (site_id);
CREATE INDEX alert_rules_enabled ON metadata.alert_rules (id) WHERE enabled;

-- API keys, stored only as the SHA-256 of their secret part. A token reads
-- `stk_<key_id>_<secret>`; key_id is public and finds the row.
CREATE TABLE metadata.api_keys (
    id             uuid PRIMARY KEY,
    key_id         text NOT NULL UNIQUE CHECK (key_id ~ '^[a-z0-9]{12}$'),
    secret_sha256  bytea NOT NULL CHECK (octet_length(secret_sha256) = 32),
    name           text NOT NULL CHECK (length(name) BETWEEN 1 AND 100),
    scopes         text[] NOT NULL CHECK (
                       cardinality(scopes) >= 1
                       AND array_ndims(scopes) = 1
                       AND array_position(scopes, NULL) IS NULL
                       AND scopes <@ ARRAY['read', 'write', 'admin']::text[]),
    created_at     timestamptz NOT NULL DEFAULT now(),
    revoked_at     timestamptz
);

-- A name picks out one active key (revocation by name).
CREATE UNIQUE INDEX api_keys_active_name ON metadata.api_keys (name) WHERE revoked_at IS NULL;

-- Change notifications on channel `stoker_metadata`, one per changed row,
-- reading `{table}:{site slug}`, or `{table}:*` when any site may be
-- concerned (TRUNCATE, a rule without a site, API keys). Notifications
-- with the same payload in one transaction arrive once.

-- `{table}:*`: V1's function, now with the suffix; for TRUNCATE of every
-- table and for every change to API keys.
CREATE OR REPLACE FUNCTION metadata.announce_change() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_notify('stoker_metadata', TG_TABLE_NAME || ':*');
    RETURN NULL;
END;
$$;

CREATE FUNCTION metadata.announce_site_change() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP IN ('UPDATE', 'DELETE') THEN
        PERFORM pg_notify('stoker_metadata', 'sites:' || OLD.slug);
    END IF;
    IF TG_OP IN ('INSERT', 'UPDATE') THEN
        PERFORM pg_notify('stoker_metadata', 'sites:' || NEW.slug);
    END IF;
    RETURN NULL;
END;
$$;

-- Sensors and alert rules: `{table}:{slug}` of the row's site, `{table}:*`
-- for a rule without one.
CREATE FUNCTION metadata.announce_site_row_change() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP IN ('UPDATE', 'DELETE') THEN
        PERFORM pg_notify('stoker_metadata', TG_TABLE_NAME || ':' || coalesce(
            (SELECT slug FROM metadata.sites WHERE id = OLD.site_id), '*'));
    END IF;
    IF TG_OP IN ('INSERT', 'UPDATE') THEN
        PERFORM pg_notify('stoker_metadata', TG_TABLE_NAME || ':' || coalesce(
            (SELECT slug FROM metadata.sites WHERE id = NEW.site_id), '*'));
    END IF;
    RETURN NULL;
END;
$$;

DROP TRIGGER sites_changed ON metadata.sites;
DROP TRIGGER sensors_changed ON metadata.sensors;

CREATE TRIGGER sites_row_changed
    AFTER INSERT OR UPDATE OR DELETE ON metadata.sites
    FOR EACH ROW EXECUTE FUNCTION metadata.announce_site_change();
CREATE TRIGGER sites_truncated
    AFTER TRUNCATE ON metadata.sites
    FOR EACH STATEMENT EXECUTE FUNCTION metadata.announce_change();

CREATE TRIGGER sensors_row_changed
    AFTER INSERT OR UPDATE OR DELETE ON metadata.sensors
    FOR EACH ROW EXECUTE FUNCTION metadata.announce_site_row_change();
CREATE TRIGGER sensors_truncated
    AFTER TRUNCATE ON metadata.sensors
    FOR EACH STATEMENT EXECUTE FUNCTION metadata.announce_change();

CREATE TRIGGER alert_rules_row_changed
    AFTER INSERT OR UPDATE OR DELETE ON metadata.alert_rules
    FOR EACH ROW EXECUTE FUNCTION metadata.announce_site_row_change();
CREATE TRIGGER alert_rules_truncated
    AFTER TRUNCATE ON metadata.alert_rules
    FOR EACH STATEMENT EXECUTE FUNCTION metadata.announce_change();

CREATE TRIGGER api_keys_row_changed
    AFTER INSERT OR UPDATE OR DELETE ON metadata.api_keys
    FOR EACH ROW EXECUTE FUNCTION metadata.announce_change();
CREATE TRIGGER api_keys_truncated
    AFTER TRUNCATE ON metadata.api_keys
    FOR EACH STATEMENT EXECUTE FUNCTION metadata.announce_change();
