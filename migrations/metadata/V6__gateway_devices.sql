-- The devices of Sparkplug B gateways (DESIGN.md, "Sparkplug B"): each
-- device an edge node announced by a DBIRTH, its online state as the host
-- application records it from births and deaths (Postgres is the source of
-- truth for it, as for the gateway's own), its last birth and death.
--
-- A device is online between its DBIRTH and its DDEATH, or its edge node's
-- NDEATH (or will), which takes every device of the node offline. An
-- NBIRTH begins a new session: it brings no device online (their DBIRTHs
-- do), and a device still online from the session before is offline from
-- it, with no death recorded (none was sent), until its DBIRTH. A birth or
-- death of a session other than the gateway's current one (its `bd_seq`)
-- changes nothing.
--
-- Retention: permanent configuration, like the gateway: one row per device
-- the gateway ever announced, kept until the gateway is deleted; births and
-- deaths update it in place, so it does not grow with time.

CREATE TABLE metadata.gateway_devices (
    gateway_id     uuid NOT NULL REFERENCES metadata.gateways (id) ON DELETE CASCADE,
    -- As the topic named it, like `gateway_metrics.device` (never '').
    device         text NOT NULL CHECK (device <> '' AND device !~ '[+#/]'),
    -- Between its DBIRTH and its DDEATH or its edge node's death.
    online         boolean NOT NULL DEFAULT false,
    -- NULL for a device announced before this table existed (its birth
    -- was not recorded on its own).
    last_birth_at  timestamptz,
    last_death_at  timestamptz,
    PRIMARY KEY (gateway_id, device)
);

-- The devices the gateways' last births announced, as they stand: online
-- with their gateway, their birth's time unknown.
INSERT INTO metadata.gateway_devices (gateway_id, device, online)
SELECT DISTINCT m.gateway_id, m.device, g.online
FROM metadata.gateway_metrics m JOIN metadata.gateways g ON g.id = m.gateway_id
WHERE m.device <> '';

-- A device's birth or death changes its gateway's row in the same
-- transaction (`updated_at`), so the change feed announces it as
-- `gateways:{site slug}` like every other change to a gateway.
