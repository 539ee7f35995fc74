//! Alert rules: `/alert-rules` CRUD. Bodies are DESIGN.md's flat rule JSON
//! (`{"name", "kind", "site", "sensor_type", "agg", "op", "threshold",
//! "clear_threshold", "window", "for", "severity", "enabled"}` …); a PATCH
//! is merged onto the stored rule and the result validated as a whole.

use std::collections::HashMap;

use serde_json::{Map, Value};
use stoker_domain::SiteSlug;
use stoker_metadata::{AlertRule, NewAlertRule, RuleDraft, RuleFilter, Scope};
use uuid::Uuid;
use warp::Filter;
use warp::http::StatusCode;

use crate::auth::require;
use crate::body::{Fields, if_match, json_object};
use crate::page::{self, PageBody};
use crate::problem::{ApiError, FieldError};
use crate::{State, boxed};

/// Every field a rule body may hold.
const RULE_FIELDS: [&str; 20] = [
    "name",
    "kind",
    "site",
    "sensor",
    "sensor_type",
    "agg",
    "op",
    "threshold",
    "clear_threshold",
    "window",
    "for",
    "rate_per_min",
    "clear_rate_per_min",
    "timeout",
    "baseline",
    "z",
    "clear_z",
    "severity",
    "enabled",
    "version",
];

pub(crate) fn routes(
    state: State,
) -> impl Filter<Extract = (warp::reply::Response,), Error = warp::Rejection> + Clone {
    let read = require(Scope::Read, state.clone());
    let admin = require(Scope::Admin, state.clone());
    let with_state = warp::any().map(move || state.clone());
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
        .and_then(rule_id_from_path)
        .and(with_state.clone())
        .and_then(get_rule);
    let update = warp::path!("alert-rules" / String)
        .and(warp::patch())
        .and(admin.clone())
        .and_then(rule_id_from_path)
        .and(with_state.clone())
        .and(if_match())
        .and(json_object())
        .and_then(update_rule);
    let delete = warp::path!("alert-rules" / String)
        .and(warp::delete())
        .and(admin)
        .and_then(rule_id_from_path)
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

/// A draft from a body's fields, each checked on its own so that a wrong
/// type names its field; unknown fields are refused.
fn draft_from(fields: Map<String, Value>, base: RuleDraft) -> Result<RuleDraft, ApiError> {
    let mut errors = Vec::new();
    let mut merged = match serde_json::to_value(&base) {
        Ok(Value::Object(map)) => map,
        _ => Map::new(),
    };
    let kind_changes = fields
        .get("kind")
        .is_some_and(|kind| Some(kind) != merged.get("kind"));
    if kind_changes {
        // The old kind's values mean nothing to the new one.
        let mut cleared = base;
        cleared.clear_kind_fields();
        if let Ok(Value::Object(map)) = serde_json::to_value(&cleared) {
            merged = map;
        }
    }
    for (field, value) in fields {
        if !RULE_FIELDS.contains(&field.as_str()) || field == "version" {
            errors.push(FieldError {
                field: field.clone(),
                message: format!("unknown field {field:?}"),
            });
            continue;
        }
        let mut single = Map::new();
        single.insert(field.clone(), value.clone());
        if let Err(error) = serde_json::from_value::<RuleDraft>(Value::Object(single)) {
            errors.push(FieldError {
                message: format!(
                    "{field}: {}",
                    error
                        .to_string()
                        .split(" at line")
                        .next()
                        .unwrap_or_default()
                ),
                field,
            });
            continue;
        }
        merged.insert(field, value);
    }
    if !errors.is_empty() {
        return Err(ApiError::Validation(errors));
    }
    serde_json::from_value(Value::Object(merged))
        .map_err(|error| ApiError::Internal(format!("a merged rule draft did not parse: {error}")))
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
        &RuleFilter { site, enabled },
        page.limit,
        after,
    )
    .await
    .map_err(ApiError::from)?;
    Ok(warp::reply::json(&PageBody::from(rules)))
}

async fn create_rule(
    state: State,
    fields: Fields,
) -> Result<warp::reply::Response, warp::Rejection> {
    let rule = new_rule(fields.into_map()?)?;
    let created = stoker_metadata::create_alert_rule(&state.pool, &rule)
        .await
        .map_err(ApiError::from)?;
    Ok(versioned(&created, StatusCode::CREATED))
}

async fn get_rule(id: Uuid, state: State) -> Result<warp::reply::Response, warp::Rejection> {
    let rule = stoker_metadata::get_alert_rule(&state.pool, id)
        .await
        .map_err(ApiError::from)?;
    Ok(versioned(&rule, StatusCode::OK))
}

async fn update_rule(
    id: Uuid,
    state: State,
    if_match: Option<i64>,
    mut fields: Fields,
) -> Result<warp::reply::Response, warp::Rejection> {
    let current = stoker_metadata::get_alert_rule(&state.pool, id)
        .await
        .map_err(ApiError::from)?;
    let version = fields.version(if_match);
    let map = fields.into_map()?;
    let Some(version) = version else {
        return Err(ApiError::Internal("rule fields validated without a version".into()).into());
    };
    let draft = draft_from(map, RuleDraft::from(&current))?;
    let rule = validated(&draft)?;
    let updated = stoker_metadata::update_alert_rule(&state.pool, id, version, &rule)
        .await
        .map_err(ApiError::from)?;
    Ok(versioned(&updated, StatusCode::OK))
}

async fn delete_rule(
    id: Uuid,
    state: State,
    if_match: Option<i64>,
) -> Result<warp::reply::Response, warp::Rejection> {
    stoker_metadata::delete_alert_rule(&state.pool, id, if_match)
        .await
        .map_err(ApiError::from)?;
    Ok(warp::reply::with_status(warp::reply(), StatusCode::NO_CONTENT).into_response())
}
