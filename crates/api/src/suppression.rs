//! Alarm suppression's routes (DESIGN.md, "Alarm management"): sensors and
//! rules taken out of service (`PUT`/`DELETE
//! /sites/{site}/sensors/{sensor}/out-of-service`,
//! `/alert-rules/{rule}/out-of-service`, `{"until","reason"}`) and
//! maintenance windows (`/maintenance-windows`). Scope `admin`, like the
//! configuration they qualify; every change is in the audit trail under
//! the key's name. A key limited to sites acts on its sites' sensors,
//! rules and windows only.

use std::collections::HashMap;
use std::sync::Arc;

use chrono::{DateTime, Utc};
use serde_json::Value;
use stoker_metadata::{NewMaintenanceWindow, Schedule, Scope, TakeOut, Weekly, WindowFilter};
use uuid::Uuid;
use warp::Filter;
use warp::Reply as _;
use warp::http::StatusCode;

use crate::auth::{Principal, require_key};
use crate::body::{Fields, json_object};
use crate::page::{self, PageBody};
use crate::problem::{ApiError, FieldError};
use crate::rules::check_rule_site;
use crate::{State, boxed, sensor_from_path, site_from_path, uuid_from_path};

pub(crate) fn routes(
    state: State,
) -> impl Filter<Extract = (warp::reply::Response,), Error = warp::Rejection> + Clone {
    let read = require_key(Scope::Read, Arc::clone(&state));
    let admin = require_key(Scope::Admin, Arc::clone(&state));
    let with_state = warp::any().map(move || Arc::clone(&state));
    let sensor_out = warp::path!("sites" / String / "sensors" / String / "out-of-service")
        .and(warp::put())
        .and(admin.clone())
        .and(with_state.clone())
        .and(json_object())
        .and_then(take_sensor_out);
    let sensor_back = warp::path!("sites" / String / "sensors" / String / "out-of-service")
        .and(warp::delete())
        .and(admin.clone())
        .and(with_state.clone())
        .and_then(put_sensor_back);
    let rule_out = warp::path!("alert-rules" / String / "out-of-service")
        .and(warp::put())
        .and(admin.clone())
        .and(with_state.clone())
        .and(json_object())
        .and_then(take_rule_out);
    let rule_back = warp::path!("alert-rules" / String / "out-of-service")
        .and(warp::delete())
        .and(admin.clone())
        .and(with_state.clone())
        .and_then(put_rule_back);
    let list = warp::path!("maintenance-windows")
        .and(warp::get())
        .and(read.clone())
        .and(warp::query::<HashMap<String, String>>())
        .and(with_state.clone())
        .and_then(list_windows);
    let create = warp::path!("maintenance-windows")
        .and(warp::post())
        .and(admin.clone())
        .and(with_state.clone())
        .and(json_object())
        .and_then(create_window);
    let get = warp::path!("maintenance-windows" / String)
        .and(warp::get())
        .and(read)
        .and(with_state.clone())
        .and_then(get_window);
    let delete = warp::path!("maintenance-windows" / String)
        .and(warp::delete())
        .and(admin)
        .and(with_state)
        .and_then(delete_window);
    boxed(sensor_out)
        .or(boxed(sensor_back))
        .unify()
        .or(boxed(rule_out))
        .unify()
        .or(boxed(rule_back))
        .unify()
        .or(boxed(list))
        .unify()
        .or(boxed(create))
        .unify()
        .or(boxed(get))
        .unify()
        .or(boxed(delete))
        .unify()
}

/// The sensor or rule with its version as ETag (for If-Match on its next
/// change: out of service leaves the version as it was).
fn with_etag(value: &impl serde::Serialize, version: i64) -> warp::reply::Response {
    let mut response = warp::reply::json(value).into_response();
    if let Ok(etag) = warp::http::HeaderValue::from_str(&format!("\"{version}\"")) {
        response
            .headers_mut()
            .insert(warp::http::header::ETAG, etag);
    }
    response
}

fn field_error(field: &str, message: impl Into<String>) -> ApiError {
    ApiError::Validation(vec![FieldError {
        field: field.to_owned(),
        message: message.into(),
    }])
}

/// A time of a body: epoch milliseconds or RFC 3339.
fn instant(field: &str, value: Option<Value>) -> Result<DateTime<Utc>, ApiError> {
    let parsed = match value {
        None => return Err(field_error(field, format!("{field} is required"))),
        Some(Value::String(text)) => {
            stoker_domain::EpochMillis::parse_rfc3339(&text).or_else(|_| {
                text.parse::<i64>()
                    .map_err(|_| stoker_domain::ParseError::Timestamp(text.clone()))
                    .and_then(stoker_domain::EpochMillis::from_millis)
            })
        }
        Some(Value::Number(number)) => match number.as_i64() {
            Some(millis) => stoker_domain::EpochMillis::from_millis(millis),
            None => {
                return Err(field_error(
                    field,
                    format!("{field} must be whole epoch milliseconds or an RFC 3339 time"),
                ));
            }
        },
        Some(_) => {
            return Err(field_error(
                field,
                format!(
                    "{field} must be epoch milliseconds or an RFC 3339 time (2026-11-22T10:00:00Z)"
                ),
            ));
        }
    };
    parsed
        .map(stoker_domain::EpochMillis::to_datetime)
        .map_err(|error| field_error(field, format!("{field}: {error}")))
}

/// `{"until","reason"}`: until when (in the future) and why.
fn take_out(fields: Fields) -> Result<TakeOut, ApiError> {
    let mut map = fields.into_map()?;
    let until = instant(
        "until",
        map.remove("until").filter(|value| !value.is_null()),
    );
    let reason = match map.remove("reason") {
        Some(Value::String(text)) => Ok(text),
        Some(_) => Err(field_error("reason", "reason must be a string")),
        None => Err(field_error("reason", "reason is required")),
    };
    let mut errors = Vec::new();
    for field in map.keys() {
        errors.push(FieldError {
            field: field.clone(),
            message: format!("unknown field {field:?}: the body is {{\"until\", \"reason\"}}"),
        });
    }
    for outcome in [until.as_ref().err(), reason.as_ref().err()]
        .into_iter()
        .flatten()
    {
        if let ApiError::Validation(more) = outcome {
            errors.extend(more.iter().cloned());
        }
    }
    if !errors.is_empty() {
        return Err(ApiError::Validation(errors));
    }
    let (Ok(until), Ok(reason)) = (until, reason) else {
        return Err(ApiError::Internal(
            "out-of-service body without errors nor values".into(),
        ));
    };
    TakeOut::new(until, &reason, Utc::now()).map_err(|(field, message)| field_error(field, message))
}

async fn take_sensor_out(
    site: String,
    sensor: String,
    principal: Principal,
    state: State,
    fields: Fields,
) -> Result<warp::reply::Response, warp::Rejection> {
    let site = site_from_path(&site)?;
    let sensor = sensor_from_path(&site, &sensor)?;
    let take_out = take_out(fields)?;
    let changed = stoker_metadata::set_sensor_out_of_service(
        &state.pool,
        &principal.actor(),
        &site,
        &sensor,
        Some(&take_out),
    )
    .await
    .map_err(ApiError::from)?;
    Ok(with_etag(&changed, changed.version))
}

async fn put_sensor_back(
    site: String,
    sensor: String,
    principal: Principal,
    state: State,
) -> Result<warp::reply::Response, warp::Rejection> {
    let site = site_from_path(&site)?;
    let sensor = sensor_from_path(&site, &sensor)?;
    let changed = stoker_metadata::set_sensor_out_of_service(
        &state.pool,
        &principal.actor(),
        &site,
        &sensor,
        None,
    )
    .await
    .map_err(ApiError::from)?;
    Ok(with_etag(&changed, changed.version))
}

async fn rule_for(principal: &Principal, state: &State, id: &str) -> Result<Uuid, ApiError> {
    if id == "preview" {
        return Err(ApiError::NotFound(
            "alert rule \"preview\" does not exist".into(),
        ));
    }
    let id = uuid_from_path("alert rule", id)?;
    let rule = stoker_metadata::get_alert_rule(&state.pool, id)
        .await
        .map_err(ApiError::from)?;
    check_rule_site(principal, rule.selector.site.as_ref())?;
    Ok(id)
}

async fn take_rule_out(
    id: String,
    principal: Principal,
    state: State,
    fields: Fields,
) -> Result<warp::reply::Response, warp::Rejection> {
    let id = rule_for(&principal, &state, &id).await?;
    let take_out = take_out(fields)?;
    let changed = stoker_metadata::set_rule_out_of_service(
        &state.pool,
        &principal.actor(),
        id,
        Some(&take_out),
    )
    .await
    .map_err(ApiError::from)?;
    Ok(with_etag(&changed, changed.version))
}

async fn put_rule_back(
    id: String,
    principal: Principal,
    state: State,
) -> Result<warp::reply::Response, warp::Rejection> {
    let id = rule_for(&principal, &state, &id).await?;
    let changed =
        stoker_metadata::set_rule_out_of_service(&state.pool, &principal.actor(), id, None)
            .await
            .map_err(ApiError::from)?;
    Ok(with_etag(&changed, changed.version))
}

async fn list_windows(
    principal: Principal,
    query: HashMap<String, String>,
    state: State,
) -> Result<warp::reply::Json, warp::Rejection> {
    let page = page::parse(&query, &["site"])?;
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
        Some(text) => Some(
            stoker_domain::SiteSlug::parse(text.as_str()).map_err(|error| {
                ApiError::BadParameter {
                    parameter: "site",
                    detail: error.to_string(),
                }
            })?,
        ),
    };
    let windows = stoker_metadata::list_maintenance_windows_page(
        &state.pool,
        &WindowFilter {
            site,
            within: principal.sites().map(<[stoker_domain::SiteSlug]>::to_vec),
        },
        page.limit,
        after,
    )
    .await
    .map_err(ApiError::from)?;
    Ok(warp::reply::json(&PageBody::from(windows)))
}

/// A window from `{"site", "starts_at", "ends_at", "reason"}` or `{"site",
/// "weekly": {"days", "from", "to"}, "reason"}`.
fn new_window(fields: Fields) -> Result<NewMaintenanceWindow, ApiError> {
    let mut map = fields.into_map()?;
    let mut errors: Vec<FieldError> = Vec::new();
    let mut fail = |field: &str, message: String| {
        errors.push(FieldError {
            field: field.to_owned(),
            message,
        });
    };
    let site = match map.remove("site") {
        Some(Value::String(text)) => match stoker_domain::SiteSlug::parse(text.as_str()) {
            Ok(site) => Some(site),
            Err(error) => {
                fail("site", error.to_string());
                None
            }
        },
        Some(_) => {
            fail("site", "site must be a site's slug".into());
            None
        }
        None => {
            fail("site", "site is required".into());
            None
        }
    };
    let reason = match map.remove("reason") {
        Some(Value::String(text)) => Some(text),
        Some(_) => {
            fail("reason", "reason must be a string".into());
            None
        }
        None => {
            fail("reason", "reason is required".into());
            None
        }
    };
    let starts_at = map.remove("starts_at").filter(|value| !value.is_null());
    let ends_at = map.remove("ends_at").filter(|value| !value.is_null());
    let weekly = map.remove("weekly").filter(|value| !value.is_null());
    for field in map.keys() {
        fail(
            field,
            format!(
                "unknown field {field:?}: a window has site, starts_at and ends_at or weekly, and reason"
            ),
        );
    }
    let schedule = match (starts_at, ends_at, weekly) {
        (None, None, Some(Value::Object(mut weekly))) => {
            let days = match weekly.remove("days") {
                Some(Value::Array(days)) if days.iter().all(Value::is_string) => Some(
                    days.iter()
                        .filter_map(|day| day.as_str().map(str::to_owned))
                        .collect::<Vec<_>>(),
                ),
                _ => {
                    fail(
                        "weekly.days",
                        "weekly.days must be a list of days (mon … sun)".into(),
                    );
                    None
                }
            };
            let mut time = |field: &str, value: Option<Value>| match value {
                Some(Value::String(text)) => Some(text),
                _ => {
                    fail(field, format!("{field} must be a time HH:MM"));
                    None
                }
            };
            let from = time("weekly.from", weekly.remove("from"));
            let to = time("weekly.to", weekly.remove("to"));
            for field in weekly.keys() {
                fail(
                    "weekly",
                    format!("unknown field {field:?}: weekly has days, from and to"),
                );
            }
            match (days, from, to) {
                (Some(days), Some(from), Some(to)) => match Weekly::parse(&days, &from, &to) {
                    Ok(weekly) => Some(Schedule::Weekly(weekly)),
                    Err((field, message)) => {
                        fail(field, message);
                        None
                    }
                },
                _ => None,
            }
        }
        (None, None, Some(_)) => {
            fail(
                "weekly",
                "weekly must be an object {\"days\", \"from\", \"to\"}".into(),
            );
            None
        }
        (starts_at, ends_at, None) if starts_at.is_some() || ends_at.is_some() => {
            match (instant("starts_at", starts_at), instant("ends_at", ends_at)) {
                (Ok(starts_at), Ok(ends_at)) => Some(Schedule::Once { starts_at, ends_at }),
                (starts, ends) => {
                    for error in [starts.err(), ends.err()].into_iter().flatten() {
                        if let ApiError::Validation(more) = error {
                            for one in more {
                                fail(&one.field, one.message);
                            }
                        }
                    }
                    None
                }
            }
        }
        (None, None, None) => {
            fail(
                "weekly",
                "a window needs starts_at and ends_at, or weekly".into(),
            );
            None
        }
        _ => {
            fail(
                "weekly",
                "a window is one-off (starts_at, ends_at) or weekly, not both".into(),
            );
            None
        }
    };
    if !errors.is_empty() {
        return Err(ApiError::Validation(errors));
    }
    let (Some(site), Some(schedule), Some(reason)) = (site, schedule, reason) else {
        return Err(ApiError::Internal(
            "window body without errors nor values".into(),
        ));
    };
    NewMaintenanceWindow::new(site, schedule, &reason)
        .map_err(|(field, message)| field_error(field, message))
}

async fn create_window(
    principal: Principal,
    state: State,
    fields: Fields,
) -> Result<warp::reply::Response, warp::Rejection> {
    let window = new_window(fields)?;
    principal.check_site(window.site().as_str())?;
    if matches!(window.schedule(), Schedule::Weekly(_)) {
        // A weekly window is read on the site's wall clock.
        let site = stoker_metadata::get_site(&state.pool, window.site())
            .await
            .map_err(ApiError::from)?;
        if stoker_metadata::site_timezone(&site.timezone).is_none() {
            return Err(field_error(
                "weekly",
                format!(
                    "the site's timezone {:?} has no rules Stoker knows: set the site's timezone to an IANA name such as Europe/Berlin",
                    site.timezone
                ),
            )
            .into());
        }
    }
    let created =
        stoker_metadata::create_maintenance_window(&state.pool, &principal.actor(), &window)
            .await
            .map_err(ApiError::from)?;
    Ok(warp::reply::with_status(warp::reply::json(&created), StatusCode::CREATED).into_response())
}

async fn window_for(
    principal: &Principal,
    state: &State,
    id: &str,
) -> Result<stoker_metadata::MaintenanceWindow, ApiError> {
    let id = uuid_from_path("maintenance window", id)?;
    let window = stoker_metadata::get_maintenance_window(&state.pool, id)
        .await
        .map_err(ApiError::from)?;
    if !principal.may_use(window.site.as_str()) {
        // Another site's window: as if it did not exist for this key.
        return Err(ApiError::Forbidden(crate::problem::Denied::Site));
    }
    Ok(window)
}

async fn get_window(
    id: String,
    principal: Principal,
    state: State,
) -> Result<warp::reply::Response, warp::Rejection> {
    let window = window_for(&principal, &state, &id).await?;
    Ok(warp::reply::json(&window).into_response())
}

async fn delete_window(
    id: String,
    principal: Principal,
    state: State,
) -> Result<warp::reply::Response, warp::Rejection> {
    let window = window_for(&principal, &state, &id).await?;
    stoker_metadata::delete_maintenance_window(&state.pool, &principal.actor(), window.id)
        .await
        .map_err(ApiError::from)?;
    Ok(warp::reply::with_status(warp::reply(), StatusCode::NO_CONTENT).into_response())
}
