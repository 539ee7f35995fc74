-- Alarm KPIs count activations, not alerts (DESIGN.md, "Alarm
-- management"): a condition that returns while its alert is not closed
-- reactivates the same alert, so an alert holds one activation per `fired`
-- or `reactivated` event of its trail. `GET /api/v1/alarm-kpis` finds the
-- activations of a range through this index, then reads each such alert's
-- trail in order through `alert_events_alert`. Additive: an index only.
CREATE INDEX alert_events_activated ON analytics.alert_events (at)
    INCLUDE (alert_id)
    WHERE transition IN ('fired', 'reactivated');
