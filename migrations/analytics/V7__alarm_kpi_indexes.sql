-- Alarm KPIs (DESIGN.md, "Alarm management", measured alarm performance):
-- `GET /api/v1/alarm-kpis` reads a year of alarms (a million rows) in
-- ordered passes over these indexes, without a sort. Additive: indexes
-- only.

-- Per rule and sensor (a site's gateway alarms, with neither, last), in
-- time order: every pair's activation times in one index-only pass, for
-- the peak, floods, chattering and the bad actors; and each top pair's
-- newest rule name.
CREATE INDEX alerts_pair_opened ON analytics.alerts (rule_id, site, sensor, opened_at);

-- Per site, in time order, with what the totals read (stale alarms, time
-- to acknowledge), so that one site's totals are an index-only scan.
CREATE INDEX alerts_site_opened ON analytics.alerts (site, opened_at)
    INCLUDE (resolved_at, acknowledged_at);
