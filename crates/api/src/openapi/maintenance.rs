//! The schemas of alarm suppression's routes: maintenance windows and the
//! out-of-service body.

use serde_json::{Map, Value, json};
use stoker_domain::{MAX_REASON_CHARS, SiteSlug};

/// `OutOfServiceRequest`, `NewMaintenanceWindow`, `MaintenanceWindow`,
/// `MaintenanceWindowPage`.
pub(super) fn schemas() -> Map<String, Value> {
    let slug = json!({ "type": "string", "minLength": 1, "maxLength": SiteSlug::MAX_LEN, "pattern": SiteSlug::PATTERN });
    let time = json!({ "type": "string", "format": "date-time" });
    let time_input = json!({ "anyOf": [
        { "type": "integer", "minimum": stoker_domain::EpochMillis::MIN_MILLIS, "maximum": stoker_domain::EpochMillis::MAX_MILLIS },
        { "type": "string", "pattern": stoker_domain::EpochMillis::RFC3339_PATTERN }
    ], "description": "Epoch milliseconds or RFC 3339." });
    let reason = json!({ "type": "string", "minLength": 1, "maxLength": MAX_REASON_CHARS, "pattern": "^[^\\u0000]*[^\\s\\u0000][^\\u0000]*$", "description": "Why; 1 to 500 characters once trimmed." });
    let clock = json!({ "type": "string", "pattern": "^([01][0-9]|2[0-3]):[0-5][0-9](:[0-5][0-9])?$", "description": "HH:MM on the site's wall clock." });
    let weekly = json!({ "type": "object", "required": ["days", "from", "to"], "additionalProperties": false, "properties": {
        "days": { "type": "array", "minItems": 1, "maxItems": 7, "uniqueItems": true, "items": { "enum": stoker_metadata::DAY_NAMES } },
        "from": clock, "to": clock },
        "description": "Every week on these days, from from to to in the site's local time (its timezone; a to at or before from runs past midnight into the next day; from and to differ). 02:00-04:00 stays 02:00-04:00 local across daylight-saving changes." });
    let mut schemas = Map::new();
    schemas.insert(
        "OutOfServiceRequest".into(),
        json!({ "type": "object", "required": ["until", "reason"], "additionalProperties": false, "properties": {
            "until": { "allOf": [time_input], "description": "Until when (in the future): in service again from then on." },
            "reason": reason } }),
    );
    schemas.insert(
        "NewMaintenanceWindow".into(),
        json!({ "type": "object", "required": ["site", "reason"], "additionalProperties": false,
            "description": "One-off (starts_at before ends_at) or weekly, not both.",
            "oneOf": [ { "required": ["starts_at", "ends_at"], "not": { "required": ["weekly"] } },
                       { "required": ["weekly"], "not": { "anyOf": [ { "required": ["starts_at"] }, { "required": ["ends_at"] } ] } } ],
            "properties": { "site": slug, "starts_at": time_input, "ends_at": time_input, "weekly": weekly, "reason": reason } }),
    );
    schemas.insert(
        "MaintenanceWindow".into(),
        json!({ "type": "object", "required": ["id", "site", "starts_at", "ends_at", "weekly", "reason", "created_by", "created_at"], "properties": {
            "id": { "type": "string", "format": "uuid" }, "site": slug,
            "starts_at": { "type": ["string", "null"], "format": "date-time" },
            "ends_at": { "type": ["string", "null"], "format": "date-time" },
            "weekly": { "anyOf": [weekly, { "type": "null" }] },
            "reason": { "type": "string" }, "created_by": { "type": "string" }, "created_at": time } }),
    );
    schemas.insert(
        "MaintenanceWindowPage".into(),
        json!({ "type": "object", "required": ["items", "next_cursor"], "properties": { "items": { "type": "array", "items": { "$ref": "#/components/schemas/MaintenanceWindow" } }, "next_cursor": { "type": ["string", "null"] } } }),
    );
    schemas
}
