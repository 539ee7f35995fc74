-- Sparkplug B gateways (DESIGN.md, "Sparkplug B"): an edge node, named by
-- its group id and edge node id, bound to one site; its online state as the
-- host application records it from births and deaths (Postgres is the
-- source of truth for it, so a new leader reads nothing from memory); and
-- the metrics its last births announced.
--
-- Retention: permanent configuration, like sites and sensors: a gateway is
-- kept until it is deleted. Its announced metrics are replaced by every
-- birth (NBIRTH: all of them; DBIRTH: that device's), so they hold what the
-- gateway announces now and do not grow with time.

-- A Sparkplug id (group, edge node, device) is UTF-8 without the topic
-- separators and wildcards `+ # /` (Sparkplug 3.0) and without control
-- characters (MQTT 3.1.1 §1.5.3: topic names should not hold them), at
-- most 120 characters. The application's `NewGateway::parse` says the same.
CREATE TABLE metadata.gateways (
    id             uuid PRIMARY KEY,
    site_id        uuid NOT NULL REFERENCES metadata.sites (id) ON DELETE RESTRICT,
    group_id       text NOT NULL CHECK (group_id ~ '^[^+#/\x01-\x1f\x7f-\x9f]+$'
                                        AND length(group_id) <= 120),
    edge_node      text NOT NULL CHECK (edge_node ~ '^[^+#/\x01-\x1f\x7f-\x9f]+$'
                                        AND length(edge_node) <= 120),
    -- Between an NBIRTH and the next NDEATH (or the will).
    online         boolean NOT NULL DEFAULT false,
    -- The last NBIRTH's bdSeq, when it carried one.
    bd_seq         bigint,
    last_birth_at  timestamptz,
    last_death_at  timestamptz,
    -- The binding's version: births and deaths do not change it, so a
    -- delete based on it is not refused because the gateway reconnected.
    version        bigint NOT NULL DEFAULT 1,
    created_at     timestamptz NOT NULL DEFAULT now(),
    updated_at     timestamptz NOT NULL DEFAULT now(),
    -- An edge node feeds one site: the host maps its metrics by it.
    CONSTRAINT gateways_edge_node_unique UNIQUE (group_id, edge_node),
    CONSTRAINT gateways_online_after_birth CHECK (NOT online OR last_birth_at IS NOT NULL)
);

-- A site's gateways in id order (creation order): keyset pages.
CREATE INDEX gateways_site ON metadata.gateways (site_id, id);

-- What the gateway's last births announced, protocol metrics left out:
-- `device` '' for the edge node's own metrics (a device id is never
-- empty), `position` the metric's place in its birth. `sensor_key` is the
-- metric's sensor key under DESIGN.md's mapping, NULL when it has none.
CREATE TABLE metadata.gateway_metrics (
    gateway_id  uuid NOT NULL REFERENCES metadata.gateways (id) ON DELETE CASCADE,
    -- As the topic named it (Sparkplug forbids only `+ # /` there).
    device      text NOT NULL CHECK (device !~ '[+#/]'),
    position    integer NOT NULL CHECK (position >= 0),
    metric      text NOT NULL,
    sensor_key  text CHECK (sensor_key ~ '^[a-z0-9][a-z0-9_-]{0,62}$'),
    datatype    text NOT NULL CHECK (datatype ~ '^[A-Za-z0-9]{1,32}$'),
    PRIMARY KEY (gateway_id, device, position)
);

-- Every change to a gateway (its binding, a birth, a death) is announced
-- on `stoker_metadata` as `gateways:{site slug}`, like sensors; a birth's
-- metrics change with their gateway's row, in the same transaction.
CREATE TRIGGER gateways_row_changed
    AFTER INSERT OR UPDATE OR DELETE ON metadata.gateways
    FOR EACH ROW EXECUTE FUNCTION metadata.announce_site_row_change();
CREATE TRIGGER gateways_truncated
    AFTER TRUNCATE ON metadata.gateways
    FOR EACH STATEMENT EXECUTE FUNCTION metadata.announce_change();
