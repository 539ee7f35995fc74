//! The audit trail's schemas (`/audit`).

use serde_json::{Map, Value, json};
use stoker_domain::SiteSlug;
use stoker_metadata::Entity;

/// An actor as `?actor=` takes it: an API key's name, or `cli`.
pub(super) fn actor() -> Value {
    json!({ "type": "string", "minLength": 1, "maxLength": 100, "pattern": "^[^\\u0000-\\u001f\\u007f-\\u009f]+$" })
}

/// `AuditEvent`, `AuditPage`.
pub(super) fn schemas() -> Map<String, Value> {
    let slug = json!({ "type": "string", "minLength": 1, "maxLength": SiteSlug::MAX_LEN, "pattern": SiteSlug::PATTERN });
    let entity_json = json!({ "type": ["object", "null"], "description": "The entity as the API shows it (an alert rule, a sensor, …; an API key without its token or hash); null before a creation and after a deletion." });
    let mut schemas = Map::new();
    schemas.insert(
        "AuditEvent".into(),
        json!({ "type": "object", "required": ["id", "at", "actor", "actor_kind", "entity", "entity_id", "site", "action", "before", "after"], "properties": {
            "id": { "type": "integer", "minimum": 1 },
            "at": { "type": "string", "format": "date-time", "description": "When the change was made (its transaction's time)." },
            "actor": { "type": "string", "description": "Who: the API key's name, or cli for the command line." },
            "actor_kind": { "type": "string", "enum": ["api_key", "cli"] },
            "entity": { "type": "string", "enum": Entity::NAMES },
            "entity_id": { "type": "string", "description": "How the API names it: a site's slug, a sensor's key, a gateway's, rule's or alert's id, a key's name." },
            "site": { "anyOf": [slug, { "type": "null" }], "description": "The site it belongs to; null for what spans sites (API keys, alert rules without a site)." },
            "action": { "type": "string", "description": "created, updated, deleted, registered (a gateway's metric made a sensor), rotated, revoked, acknowledged, resolved." },
            "before": entity_json,
            "after": entity_json
        } }),
    );
    schemas.insert(
        "AuditPage".into(),
        json!({ "type": "object", "required": ["items", "next_cursor"], "properties": { "items": { "type": "array", "items": { "$ref": "#/components/schemas/AuditEvent" } }, "next_cursor": { "type": ["string", "null"] } } }),
    );
    schemas
}
