//! Alert rules: `/alert-rules` CRUD. Bodies are DESIGN.md's flat rule JSON
//! (`stoker-rules`' [`RuleDraft`] fields); a PATCH is merged onto the
//! stored rule's draft and the result validated as a whole.

use std::sync::Arc;

use std::collections::HashMap;

use serde_json::{Map, Value, json};
use stoker_domain::{SensorKey, SensorType, SiteSlug, StateName};
use stoker_metadata::{RuleFilter, Scope};
use stoker_rules::{
    AlertRule, FieldSpec, KIND_FIELDS, MAX_DURATION, MAX_NAME_CHARS, NewAlertRule, RuleDraft,
    RuleKind, RuleSelector, SETTINGS, Shape,
};
use uuid::Uuid;
use warp::Filter;
use warp::http::StatusCode;

use crate::auth::{Principal, require_key};
use crate::body::{Fields, if_match, json_object};
use crate::page::{self, PageBody};
use crate::problem::{ApiError, FieldError};
use crate::{State, boxed};

pub(crate) fn routes(
    state: State,
) -> impl Filter<Extract = (warp::reply::Response,), Error = warp::Rejection> + Clone {
    let read = require_key(Scope::Read, Arc::clone(&state));
    let admin = require_key(Scope::Admin, Arc::clone(&state));
    let with_state = warp::any().map(move || Arc::clone(&state));
    let list = warp::path!("alert-rules")
        .and(warp::get())
        .and(read.clone())
        .and(warp::query::<HashMap<String, String>>())
        .and(with_state.clone())
        .and_then(list_rules);
    let create = warp::path!("alert-rules")
        .and(warp::post())
        .and(admin.clone())
        .and(with_state.clone())
        .and(json_object())
        .and_then(create_rule);
    // The id is read before the body, so that a path that names no rule
    // is 404 (`/alert-rules/preview` with another method: 405), whatever
    // the body.
    let get = warp::path!("alert-rules" / String)
        .and(warp::get())
        .and(read)
        .and(warp::any().map(|| ()))
        .and_then(principal_and_rule_id)
        .untuple_one()
        .and(with_state.clone())
        .and_then(get_rule);
    let update = warp::path!("alert-rules" / String)
        .and(warp::patch())
        .and(admin.clone())
        .and(warp::any().map(|| ()))
        .and_then(principal_and_rule_id)
        .untuple_one()
        .and(with_state.clone())
        .and(if_match())
        .and(json_object())
        .and_then(update_rule);
    let delete = warp::path!("alert-rules" / String)
        .and(warp::delete())
        .and(admin)
        .and(warp::any().map(|| ()))
        .and_then(principal_and_rule_id)
        .untuple_one()
        .and(with_state)
        .and(if_match())
        .and_then(delete_rule);
    boxed(list)
        .or(boxed(create))
        .unify()
        .or(boxed(get))
        .unify()
        .or(boxed(update))
        .unify()
        .or(boxed(delete))
        .unify()
}

async fn principal_and_rule_id(
    text: String,
    principal: Principal,
    (): (),
) -> Result<(Principal, Uuid), warp::Rejection> {
    Ok((principal, rule_id_from_path(text).await?))
}

/// A key limited to sites sees and manages only the rules scoped to one of
/// its sites: a rule without a site (selecting by sensor or type across
/// sites) concerns every site, so it is hidden from such a key and
/// forbidden to it (403 `forbidden_site`).
pub(crate) fn check_rule_site(
    principal: &Principal,
    site: Option<&SiteSlug>,
) -> Result<(), ApiError> {
    match site {
        Some(site) => principal.check_site(site.as_str()),
        None => principal.check_every_site(),
    }
}

async fn rule_id_from_path(text: String) -> Result<Uuid, warp::Rejection> {
    // `preview` is the path of another route: not found here, so that a
    // method it does not take is 405 (with its Allow), not "no such rule".
    if text == "preview" {
        return Err(warp::reject::not_found());
    }
    Ok(crate::uuid_from_path("alert rule", &text)?)
}

/// A new rule from a body's fields (a POST, or a preview's draft): field by
/// field, then validated as a whole.
pub(crate) fn new_rule(fields: Map<String, Value>) -> Result<NewAlertRule, ApiError> {
    validated(&draft_from(fields, RuleDraft::default())?)
}

/// A draft from a body's fields merged onto `base`, each field checked on
/// its own so that a wrong type names its field; unknown fields are
/// refused. A `kind` other than the base's drops the base's kind fields.
fn draft_from(fields: Map<String, Value>, base: RuleDraft) -> Result<RuleDraft, ApiError> {
    let mut errors = Vec::new();
    let mut draft = base;
    let kind_changes = fields.get("kind").is_some_and(|kind| match kind {
        Value::String(kind) => draft.kind.as_deref() != Some(kind.as_str()),
        Value::Null => draft.kind.is_some(),
        _ => true,
    });
    if kind_changes {
        // The old kind's values mean nothing to the new one.
        draft.clear_kind_fields();
    }
    for (field, value) in fields {
        if !RuleDraft::FIELDS.contains(&field.as_str()) {
            errors.push(FieldError {
                message: format!("unknown field {field:?}"),
                field,
            });
            continue;
        }
        if let Err(error) = draft.set(&field, value) {
            errors.push(FieldError {
                message: format!("{field}: {error}"),
                field,
            });
        }
    }
    if errors.is_empty() {
        Ok(draft)
    } else {
        Err(ApiError::Validation(errors))
    }
}

/// At most this many sensors a rule cannot judge are named in one answer.
const MAX_MISFITS_NAMED: usize = 20;

/// Refuses (422 on `threshold`) a rule comparing a boolean or a state
/// (`==`, `!=`) that a sensor it selects now cannot be compared with: a
/// sensor of another kind, or a state sensor whose states lack the
/// threshold's. Every sensor the selector matches must fit; a selector
/// matching none yet is taken (a sensor created later that does not fit is
/// skipped by the evaluation, which logs it). Rules ordering numbers are
/// not checked here.
pub(crate) async fn check_against_sensors(
    state: &State,
    rule: &NewAlertRule,
) -> Result<(), ApiError> {
    if !stoker_analytics::engine::compares_typed(rule.kind()) {
        return Ok(());
    }
    let registry = stoker_metadata::registry(&state.pool)
        .await
        .map_err(ApiError::from)?;
    let targets = stoker_analytics::evaluate::targets(rule.selector(), &registry);
    let misfits = stoker_analytics::evaluate::misfits(rule.kind(), &targets);
    if misfits.is_empty() {
        return Ok(());
    }
    Err(ApiError::Validation(
        misfits
            .into_iter()
            .take(MAX_MISFITS_NAMED)
            .map(|(target, reason)| FieldError {
                field: "threshold".to_owned(),
                message: format!(
                    "the rule selects sensor {} of site {}, which it cannot compare: {reason}",
                    target.sensor, target.site
                ),
            })
            .collect(),
    ))
}

fn validated(draft: &RuleDraft) -> Result<NewAlertRule, ApiError> {
    NewAlertRule::parse(draft).map_err(|(field, message)| {
        ApiError::Validation(vec![FieldError {
            field: field.to_owned(),
            message,
        }])
    })
}

fn versioned(rule: &AlertRule, status: StatusCode) -> warp::reply::Response {
    let mut response = warp::reply::with_status(warp::reply::json(rule), status).into_response();
    if let Ok(etag) = warp::http::HeaderValue::from_str(&format!("\"{}\"", rule.version)) {
        response
            .headers_mut()
            .insert(warp::http::header::ETAG, etag);
    }
    response
}

use warp::Reply as _;

async fn list_rules(
    principal: Principal,
    query: HashMap<String, String>,
    state: State,
) -> Result<warp::reply::Json, warp::Rejection> {
    let page = page::parse(&query, &["site", "enabled"])?;
    let after = match page.after.as_deref().map(Uuid::parse_str) {
        None => None,
        Some(Ok(id)) => Some(id),
        Some(Err(_)) => {
            return Err(ApiError::BadParameter {
                parameter: "cursor",
                detail: crate::problem::FOREIGN_CURSOR.into(),
            }
            .into());
        }
    };
    let site = match query.get("site") {
        None => None,
        Some(text) => {
            Some(
                SiteSlug::parse(text.as_str()).map_err(|error| ApiError::BadParameter {
                    parameter: "site",
                    detail: error.to_string(),
                })?,
            )
        }
    };
    let enabled = match query.get("enabled").map(String::as_str) {
        None => None,
        Some("true") => Some(true),
        Some("false") => Some(false),
        Some(_) => {
            return Err(ApiError::BadParameter {
                parameter: "enabled",
                detail: "enabled must be true or false".into(),
            }
            .into());
        }
    };
    let rules = stoker_metadata::list_alert_rules_page(
        &state.pool,
        &RuleFilter {
            site,
            enabled,
            within: principal.sites().map(<[SiteSlug]>::to_vec),
        },
        page.limit,
        after,
    )
    .await
    .map_err(ApiError::from)?;
    Ok(warp::reply::json(&PageBody::from(rules)))
}

async fn create_rule(
    principal: Principal,
    state: State,
    fields: Fields,
) -> Result<warp::reply::Response, warp::Rejection> {
    let rule = new_rule(fields.into_map()?)?;
    check_rule_site(&principal, rule.selector().site.as_ref())?;
    check_against_sensors(&state, &rule).await?;
    let created = stoker_metadata::create_alert_rule(&state.pool, &principal.actor(), &rule)
        .await
        .map_err(ApiError::from)?;
    Ok(versioned(&created, StatusCode::CREATED))
}

async fn get_rule(
    principal: Principal,
    id: Uuid,
    state: State,
) -> Result<warp::reply::Response, warp::Rejection> {
    let rule = stoker_metadata::get_alert_rule(&state.pool, id)
        .await
        .map_err(ApiError::from)?;
    check_rule_site(&principal, rule.selector.site.as_ref())?;
    Ok(versioned(&rule, StatusCode::OK))
}

async fn update_rule(
    principal: Principal,
    id: Uuid,
    state: State,
    if_match: Option<i64>,
    mut fields: Fields,
) -> Result<warp::reply::Response, warp::Rejection> {
    let current = stoker_metadata::get_alert_rule(&state.pool, id)
        .await
        .map_err(ApiError::from)?;
    check_rule_site(&principal, current.selector.site.as_ref())?;
    let version = fields.version(if_match);
    let map = fields.into_map()?;
    let Some(version) = version else {
        return Err(ApiError::Internal("rule fields validated without a version".into()).into());
    };
    let draft = draft_from(map, RuleDraft::from(&current))?;
    let rule = validated(&draft)?;
    check_rule_site(&principal, rule.selector().site.as_ref())?;
    check_against_sensors(&state, &rule).await?;
    let updated =
        stoker_metadata::update_alert_rule(&state.pool, &principal.actor(), id, version, &rule)
            .await
            .map_err(ApiError::from)?;
    Ok(versioned(&updated, StatusCode::OK))
}

async fn delete_rule(
    principal: Principal,
    id: Uuid,
    state: State,
    if_match: Option<i64>,
) -> Result<warp::reply::Response, warp::Rejection> {
    if principal.sites().is_some() {
        let current = stoker_metadata::get_alert_rule(&state.pool, id)
            .await
            .map_err(ApiError::from)?;
        check_rule_site(&principal, current.selector.site.as_ref())?;
    }
    stoker_metadata::delete_alert_rule(&state.pool, &principal.actor(), id, if_match)
        .await
        .map_err(ApiError::from)?;
    Ok(warp::reply::with_status(warp::reply(), StatusCode::NO_CONTENT).into_response())
}

/// What `stoker_domain::parse_duration` reads: numbers with humantime's
/// units, such as `30s`, `5m`, `1h 30m`, `2m 500ms`.
const DURATION_PATTERN: &str = "^\\s*([0-9]+\\s*(nanos|nsec|ns|usec|us|µs|millis|msec|ms|seconds|second|secs|sec|s|minutes|minute|mins|min|m|hours|hour|hrs|hr|h|days|day|d|weeks|week|wks|wk|w|months|month|M|years|year|yrs|yr|y)\\s*)+$";

/// The schema of one rule field, from its shape in the model.
fn field_schema(spec: &FieldSpec) -> Value {
    match spec.shape {
        Shape::Choice(names) => json!({ "enum": names }),
        Shape::Number => json!({ "type": "number" }),
        Shape::Duration => json!({
            "type": "string",
            "pattern": DURATION_PATTERN,
            "description": format!(
                "A duration such as 30s, 5m or 24h, in whole milliseconds, at most {}.",
                humantime::format_duration(MAX_DURATION)
            ),
        }),
        Shape::Flag => json!({ "type": "boolean" }),
        Shape::Threshold => json!({
            "anyOf": [
                { "type": "number" },
                { "type": "boolean" },
                { "type": "string", "minLength": 1, "maxLength": StateName::MAX_LEN,
                  "pattern": StateName::PATTERN },
            ],
            "description": "A number for op >, >=, <, <=; for op == or != a boolean sensor's \
                value (true, false) or a state sensor's state name, which every sensor the rule \
                selects must have.",
        }),
    }
}

/// `schema`, also `null`.
fn nullable(mut schema: Value) -> Value {
    match schema.get("type").cloned() {
        Some(Value::String(kind)) => schema["type"] = json!([kind, "null"]),
        _ => match schema.get_mut("enum").and_then(Value::as_array_mut) {
            Some(names) => names.push(Value::Null),
            None => return json!({ "anyOf": [schema, { "type": "null" }] }),
        },
    }
    schema
}

/// The name and selector of a rule; a selector part may be `null`.
fn head_properties() -> Map<String, Value> {
    let part = |pattern: &str| nullable(json!({ "type": "string", "pattern": pattern }));
    let mut properties = Map::new();
    properties.insert(
        "name".into(),
        json!({ "type": "string", "minLength": 1, "maxLength": MAX_NAME_CHARS, "pattern": "\\S",
                "description": format!("1 to {MAX_NAME_CHARS} characters once trimmed.") }),
    );
    for (field, pattern) in RuleSelector::FIELDS.into_iter().zip([
        SiteSlug::PATTERN,
        SensorKey::PATTERN,
        SensorType::PATTERN,
    ]) {
        properties.insert(field.into(), part(pattern));
    }
    properties
}

/// One schema per kind: the kind's fields and the settings, `kind` fixed
/// to the kind's name; `stored` for a rule as the API answers it.
fn kind_variants(stored: bool) -> Vec<Value> {
    RuleKind::NAMES
        .into_iter()
        .map(|kind| {
            let mut properties = head_properties();
            properties.insert("kind".into(), json!({ "enum": [kind] }));
            let mut required = vec!["name", "kind"];
            let own = RuleKind::fields_of(kind).unwrap_or_default();
            let specs = own
                .iter()
                .filter_map(|name| stoker_rules::field_spec(name))
                .chain(SETTINGS);
            for spec in specs {
                let schema = field_schema(spec);
                if stored && spec.absent {
                    // A kind's field is left out when it holds no value; a
                    // setting is null.
                    let setting = SETTINGS.iter().any(|setting| setting.name == spec.name);
                    properties.insert(
                        spec.name.into(),
                        if setting { nullable(schema) } else { schema },
                    );
                } else if stored || !spec.optional {
                    required.push(spec.name);
                    properties.insert(spec.name.into(), schema);
                } else {
                    // Left out or null: its default.
                    properties.insert(spec.name.into(), nullable(schema));
                }
            }
            if stored {
                properties.insert("id".into(), json!({ "type": "string", "format": "uuid" }));
                properties.insert("version".into(), json!({ "type": "integer", "minimum": 1 }));
                for stamp in ["created_at", "updated_at"] {
                    properties.insert(
                        stamp.into(),
                        json!({ "type": "string", "format": "date-time" }),
                    );
                }
                required.extend(RuleSelector::FIELDS);
                required.extend(["id", "version", "created_at", "updated_at"]);
            }
            let mut schema = json!({
                "type": "object", "title": kind, "properties": properties,
                "required": required, "additionalProperties": false,
            });
            if !stored {
                // At least one selector part, not null.
                schema["anyOf"] = RuleSelector::FIELDS
                    .into_iter()
                    .map(|part| {
                        json!({ "required": [part], "properties": { part: { "type": "string" } } })
                    })
                    .collect();
            }
            schema
        })
        .collect()
}

/// The rule schemas of the OpenAPI document, from the model's own field
/// specs: `AlertRuleDraft` (a new rule, or a preview's draft),
/// `AlertRulePatch` (every field optional; `null` drops a selector part or
/// restores a default) and `AlertRule` (as answered).
pub(crate) fn schemas() -> Map<String, Value> {
    let kinds = RuleKind::NAMES
        .into_iter()
        .map(|kind| {
            format!(
                "{kind}: {}",
                RuleKind::fields_of(kind).unwrap_or_default().join(", ")
            )
        })
        .collect::<Vec<_>>()
        .join("; ");
    let mut patch = head_properties();
    patch.insert("kind".into(), json!({ "enum": RuleKind::NAMES }));
    for spec in KIND_FIELDS.iter().chain(SETTINGS) {
        let schema = field_schema(spec);
        patch.insert(
            spec.name.into(),
            if spec.optional {
                nullable(schema)
            } else {
                schema
            },
        );
    }
    patch.insert(
        "version".into(),
        json!({ "type": "integer", "minimum": 1, "description": "The version read (or If-Match)." }),
    );
    let mut schemas = Map::new();
    schemas.insert(
        "AlertRuleDraft".into(),
        json!({
            "description": format!(
                "A rule: its kind's fields ({kinds}), at least one of site, sensor, sensor_type, \
                 and the settings. A clear value lies on the quiet side of its trigger; an \
                 anomaly's baseline is longer than its window and 0 < clear_z <= z. A threshold \
                 with op >, >=, <, <= has a number, agg and clear_threshold; one with op == or != \
                 compares a boolean or state sensor: a threshold of true/false or a state name \
                 that every selected sensor has, no clear_threshold (it clears when the \
                 comparison no longer holds), agg last (the default), or min or max for a \
                 boolean. rate_of_change takes >, >=, <, <=."
            ),
            "oneOf": kind_variants(false),
        }),
    );
    schemas.insert(
        "AlertRulePatch".into(),
        json!({
            "type": "object",
            "description": "Fields merged onto the stored rule, which must then be valid as a whole (see AlertRuleDraft); a new kind drops the old kind's fields.",
            "properties": patch,
            "additionalProperties": false,
        }),
    );
    schemas.insert("AlertRule".into(), json!({ "oneOf": kind_variants(true) }));
    schemas
}
