//! The API keys' schemas (`/api-keys`).

use serde_json::{Map, Value, json};
use stoker_domain::SiteSlug;
use stoker_metadata::Scope;

/// `ApiKey`, `ApiKeyList`, `ApiKeyWithToken`, `NewApiKey`, `ApiKeyRotation`.
pub(super) fn schemas() -> Map<String, Value> {
    let time = json!({ "type": "string", "format": "date-time" });
    let time_or_null = json!({ "type": ["string", "null"], "format": "date-time" });
    let scopes = json!({ "type": "array", "minItems": 1, "items": { "type": "string", "enum": Scope::ALL.map(Scope::as_str) } });
    let slug = json!({ "type": "string", "minLength": 1, "maxLength": SiteSlug::MAX_LEN, "pattern": SiteSlug::PATTERN });
    let name = json!({ "type": "string", "minLength": 1, "maxLength": 100, "pattern": "^[^\\u0000-\\u001f\\u007f]*[^\\s\\u0000-\\u001f\\u007f][^\\u0000-\\u001f\\u007f]*$", "description": "Trimmed; 1 to 100 printable characters, unique among unrevoked keys." });
    let key_properties = json!({
        "id": { "type": "string", "format": "uuid" },
        "key_id": { "type": "string", "pattern": "^[a-z0-9]{12}$", "description": "The public part of the token, stk_<key_id>_<secret>." },
        "name": { "type": "string" },
        "scopes": scopes,
        "sites": { "type": ["array", "null"], "items": slug, "description": "The sites the key may act on (elsewhere 403 forbidden_site, and lists show only these); null: every site." },
        "created_at": time,
        "expires_at": { "type": ["string", "null"], "format": "date-time", "description": "After it the key is refused (401 expired_api_key); null: never." },
        "rotated_at": { "type": ["string", "null"], "format": "date-time", "description": "When the secret was last replaced." },
        "previous_valid_until": { "type": ["string", "null"], "format": "date-time", "description": "Until when the secret before the last rotation is still taken." },
        "revoked_at": time_or_null,
        "revoked": { "type": "boolean" },
        "expired": { "type": "boolean" }
    });
    let required = json!([
        "id",
        "key_id",
        "name",
        "scopes",
        "sites",
        "created_at",
        "expires_at",
        "rotated_at",
        "previous_valid_until",
        "revoked_at",
        "revoked",
        "expired"
    ]);
    let mut with_token = key_properties.clone();
    with_token["token"] = json!({ "type": "string", "description": "stk_<key_id>_<secret>: shown this once, only its hash is kept." });
    let mut with_token_required = required.clone();
    if let Some(list) = with_token_required.as_array_mut() {
        list.push(json!("token"));
    }
    let mut schemas = Map::new();
    schemas.insert(
        "ApiKey".into(),
        json!({ "type": "object", "required": required, "properties": key_properties }),
    );
    schemas.insert(
        "ApiKeyList".into(),
        json!({ "type": "object", "required": ["items"], "properties": { "items": { "type": "array", "items": { "$ref": "#/components/schemas/ApiKey" } } } }),
    );
    schemas.insert(
        "ApiKeyWithToken".into(),
        json!({ "type": "object", "required": with_token_required, "properties": with_token }),
    );
    schemas.insert(
        "NewApiKey".into(),
        json!({ "type": "object", "required": ["name", "scopes"], "additionalProperties": false, "properties": {
            "name": name,
            "scopes": scopes,
            "sites": { "type": ["array", "null"], "minItems": 1, "items": slug, "description": "Registered sites' slugs; absent or null: every site." },
            "expires": { "type": ["string", "null"], "minLength": 1, "description": "A duration from now (90d, 12h) or an RFC 3339 time, in the future; absent or null: never." }
        } }),
    );
    schemas.insert(
        "ApiKeyRotation".into(),
        json!({ "type": "object", "additionalProperties": false, "properties": {
            "grace": { "type": "string", "minLength": 1, "description": "How long the old secret stays valid: a duration such as 24h (the default) or 0s, at most 30 days." }
        } }),
    );
    schemas
}
