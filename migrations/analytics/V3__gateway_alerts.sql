-- The `gateway_offline` alarm (DESIGN.md, "Sparkplug B"): a bound
-- Sparkplug gateway that died raises one alert for its site, with no rule
-- and no sensor, naming the gateway by its group and edge node ids (kept
-- by value, like site and sensor: no foreign key into `metadata`). It
-- resolves when the gateway is born again. Additive: rule alerts keep
-- every column and constraint they had.

ALTER TABLE analytics.alerts
    ALTER COLUMN rule_id DROP NOT NULL,
    ALTER COLUMN rule_name DROP NOT NULL,
    ALTER COLUMN sensor DROP NOT NULL,
    ADD COLUMN gateway_group text,
    ADD COLUMN gateway_edge_node text;

ALTER TABLE analytics.alerts DROP CONSTRAINT alerts_kind_check;
ALTER TABLE analytics.alerts
    ADD CONSTRAINT alerts_kind_check CHECK (
        kind IN ('threshold', 'rate_of_change', 'no_data', 'anomaly', 'gateway_offline')),
    -- A rule's alert names its rule and sensor and no gateway; a
    -- gateway's names its gateway and neither rule nor sensor.
    ADD CONSTRAINT alerts_rule_or_gateway CHECK (
        CASE WHEN kind = 'gateway_offline'
             THEN rule_id IS NULL AND rule_name IS NULL AND sensor IS NULL
                  AND gateway_group IS NOT NULL AND gateway_edge_node IS NOT NULL
             ELSE rule_id IS NOT NULL AND rule_name IS NOT NULL AND sensor IS NOT NULL
                  AND gateway_group IS NULL AND gateway_edge_node IS NULL
        END);

-- At most one open `gateway_offline` alert per gateway, whatever the
-- processes do (rule alerts keep `alerts_one_open`).
CREATE UNIQUE INDEX alerts_one_open_gateway
    ON analytics.alerts (gateway_group, gateway_edge_node)
    WHERE kind = 'gateway_offline' AND state <> 'resolved';
