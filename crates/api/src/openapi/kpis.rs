//! The alarm KPIs' schema (`/alarm-kpis`, and the preview's `kpis`).

use serde_json::{Map, Value, json};
use stoker_domain::SiteSlug;

/// `AlarmKpis`.
pub(super) fn schemas() -> Map<String, Value> {
    let slug = json!({ "type": "string", "minLength": 1, "maxLength": SiteSlug::MAX_LEN, "pattern": SiteSlug::PATTERN });
    let count = json!({ "type": "integer", "minimum": 0 });
    let seconds = json!({ "type": ["number", "null"], "minimum": 0 });
    let mut schemas = Map::new();
    schemas.insert(
        "AlarmKpis".into(),
        json!({ "type": "object",
            "required": ["start", "end", "alarms", "alarms_per_hour", "peak_10min", "flood_share", "chattering", "stale", "top", "time_to_ack_s", "suppressed"],
            "properties": {
            "site": { "anyOf": [slug, { "type": "null" }], "description": "The site measured; null: every site the key may see (absent in a preview)." },
            "start": { "type": "string", "format": "date-time", "description": "The range's first instant." },
            "end": { "type": "string", "format": "date-time", "description": "The instant after its last (at most now); alarms still active are judged at it." },
            "alarms": { "type": "integer", "minimum": 0, "description": "Alarms (activations) that began in the range, suppressed ones left out." },
            "alarms_per_hour": { "type": "number", "minimum": 0 },
            "peak_10min": { "type": "integer", "minimum": 0, "description": "The most alarms at one site within any 10 minutes (both ends included)." },
            "flood_share": { "type": "number", "minimum": 0, "maximum": 1, "description": "The share of the range during which some site was in flood: more than 10 alarms within the 10 minutes up to that instant." },
            "chattering": { "type": "integer", "minimum": 0, "description": "Rule-and-sensor pairs with 3 or more activations within one minute (a pair counts once)." },
            "stale": { "type": "integer", "minimum": 0, "description": "Alarms that stayed active more than 24 h, as known at end." },
            "top": { "type": "array", "maxItems": 10, "description": "The ten rule-and-sensor pairs with the most alarms, most first.", "items": { "type": "object", "required": ["rule_id", "rule_name", "site", "sensor", "count"], "properties": {
                "rule_id": { "type": "string", "format": "uuid", "description": "The rule (the nil UUID for a draft's preview)." },
                "rule_name": { "type": "string", "description": "Its name at the pair's newest alarm in the range." },
                "site": slug, "sensor": slug, "count": count
            } } },
            "time_to_ack_s": { "type": "object", "required": ["acknowledged", "median", "p90"], "properties": {
                "acknowledged": count,
                "median": seconds,
                "p90": seconds
            }, "description": "Seconds from an alarm to its acknowledgement over the acknowledged ones (continuous percentiles); null when none was." },
            "suppressed": { "type": "integer", "minimum": 0, "description": "Suppressed alarms (by design, out of service, maintenance), counted apart." }
        } }),
    );
    schemas
}
