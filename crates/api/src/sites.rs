//! Sites and sensors.

use std::sync::Arc;

use std::collections::HashMap;
use stoker_domain::{SensorKey, SensorKind, SensorType, SiteSlug, States, Unit, ValidRange};

use stoker_metadata::{NewSensor, NewSite, Scope, SensorChanges, SiteChanges};
use warp::Filter;
use warp::Reply;
use warp::http::StatusCode;

use crate::auth::{Principal, require, require_key};
use crate::body::{Fields, Patch, if_match, json_object};
use crate::page::{self, PageBody};
use crate::problem::ApiError;
use crate::{State, boxed, sensor_from_path, site_from_path};

pub(crate) fn routes(
    state: State,
) -> impl Filter<Extract = (warp::reply::Response,), Error = warp::Rejection> + Clone {
    let read = require(Scope::Read, Arc::clone(&state));
    let read_principal = require_key(Scope::Read, Arc::clone(&state));
    // Changes are recorded under the key's name.
    let admin = require_key(Scope::Admin, Arc::clone(&state));
    let with_state = warp::any().map(move || Arc::clone(&state));
    let query = warp::query::<HashMap<String, String>>();
    let list_sites = warp::path!("sites")
        .and(warp::get())
        .and(read_principal)
        .and(query)
        .and(with_state.clone())
        .and_then(list_sites);
    let create_site = warp::path!("sites")
        .and(warp::post())
        .and(admin.clone())
        .and(with_state.clone())
        .and(json_object())
        .and_then(create_site);
    let get_site = warp::path!("sites" / String)
        .and(warp::get())
        .and(read.clone())
        .and(with_state.clone())
        .and_then(get_site);
    let update_site = warp::path!("sites" / String)
        .and(warp::patch())
        .and(admin.clone())
        .and(with_state.clone())
        .and(if_match())
        .and(json_object())
        .and_then(update_site);
    let delete_site = warp::path!("sites" / String)
        .and(warp::delete())
        .and(admin.clone())
        .and(with_state.clone())
        .and(if_match())
        .and_then(delete_site);
    let list_sensors = warp::path!("sites" / String / "sensors")
        .and(warp::get())
        .and(read.clone())
        .and(query)
        .and(with_state.clone())
        .and_then(list_sensors);
    let create_sensor = warp::path!("sites" / String / "sensors")
        .and(warp::post())
        .and(admin.clone())
        .and(with_state.clone())
        .and(json_object())
        .and_then(create_sensor);
    let get_sensor = warp::path!("sites" / String / "sensors" / String)
        .and(warp::get())
        .and(read)
        .and(with_state.clone())
        .and_then(get_sensor);
    let update_sensor = warp::path!("sites" / String / "sensors" / String)
        .and(warp::patch())
        .and(admin.clone())
        .and(with_state.clone())
        .and(if_match())
        .and(json_object())
        .and_then(update_sensor);
    let delete_sensor = warp::path!("sites" / String / "sensors" / String)
        .and(warp::delete())
        .and(admin)
        .and(with_state)
        .and(if_match())
        .and_then(delete_sensor);
    // Boxed one by one: a chain of ten unboxed routes makes a future too
    // large for a thread's stack in debug builds.
    boxed(list_sites)
        .or(boxed(create_site))
        .unify()
        .or(boxed(get_site))
        .unify()
        .or(boxed(update_site))
        .unify()
        .or(boxed(delete_site))
        .unify()
        .or(boxed(list_sensors))
        .unify()
        .or(boxed(create_sensor))
        .unify()
        .or(boxed(get_sensor))
        .unify()
        .or(boxed(update_sensor))
        .unify()
        .or(boxed(delete_sensor))
        .unify()
}

fn created(value: &impl serde::Serialize) -> warp::reply::WithStatus<warp::reply::Json> {
    warp::reply::with_status(warp::reply::json(value), StatusCode::CREATED)
}

/// A resource with its version as ETag, for If-Match on the next change.
fn versioned(value: &impl serde::Serialize, version: i64) -> warp::reply::Response {
    let mut response = warp::reply::json(value).into_response();
    if let Ok(etag) = warp::http::HeaderValue::from_str(&format!("\"{version}\"")) {
        response
            .headers_mut()
            .insert(warp::http::header::ETAG, etag);
    }
    response
}

fn no_content() -> warp::reply::Response {
    warp::reply::with_status(warp::reply(), StatusCode::NO_CONTENT).into_response()
}

/// The sites a key limited to sites sees are its own.
async fn list_sites(
    principal: Principal,
    query: HashMap<String, String>,
    state: State,
) -> Result<warp::reply::Json, warp::Rejection> {
    let page = page::parse(&query, &[])?;
    let after = match page.after.as_deref().map(SiteSlug::parse) {
        None => None,
        Some(Ok(slug)) => Some(slug),
        Some(Err(_)) => return Err(bad_cursor().into()),
    };
    let sites = stoker_metadata::list_sites_page_within(
        &state.pool,
        page.limit,
        after.as_ref(),
        principal.sites(),
    )
    .await
    .map_err(ApiError::from)?;
    Ok(warp::reply::json(&PageBody::from(sites)))
}

fn bad_cursor() -> ApiError {
    ApiError::BadParameter {
        parameter: "cursor",
        detail: crate::problem::FOREIGN_CURSOR.into(),
    }
}

/// A key limited to sites may create only a site among them.
async fn create_site(
    principal: Principal,
    state: State,
    mut fields: Fields,
) -> Result<impl warp::Reply, warp::Rejection> {
    let slug = fields.required("slug", |text| SiteSlug::parse(text.as_str()).map(|_| text));
    if let Some(slug) = &slug {
        principal.check_site(slug)?;
    }
    let name = fields.required("name", Ok::<_, String>);
    let timezone = fields.string_or("timezone", "UTC");
    let mut new_site = None;
    if let (Some(slug), Some(name), Some(timezone)) = (slug, name, timezone) {
        match NewSite::parse(&slug, &name, &timezone) {
            Ok(site) => new_site = Some(site),
            Err((field, message)) => fields.invalid(field, message),
        }
    }
    fields.finish()?;
    let Some(new_site) = new_site else {
        return Err(ApiError::Internal("site fields validated without a site".into()).into());
    };
    let site = stoker_metadata::create_site(&state.pool, &principal.actor(), &new_site)
        .await
        .map_err(ApiError::from)?;
    state.metadata_changed();
    Ok(created(&site))
}

async fn get_site(slug: String, state: State) -> Result<warp::reply::Response, warp::Rejection> {
    let slug = site_from_path(&slug)?;
    let site = stoker_metadata::get_site(&state.pool, &slug)
        .await
        .map_err(ApiError::from)?;
    Ok(versioned(&site, site.version))
}

async fn update_site(
    slug: String,
    principal: Principal,
    state: State,
    if_match: Option<i64>,
    mut fields: Fields,
) -> Result<warp::reply::Response, warp::Rejection> {
    let slug = site_from_path(&slug)?;
    fields.unchangeable("slug", slug.as_str());
    let version = fields.version(if_match);
    let name = fields.optional_string("name");
    let timezone = fields.optional_string("timezone");
    let mut changes = None;
    if let (Some(name), Some(timezone)) = (&name, &timezone) {
        match SiteChanges::parse(name.as_deref(), timezone.as_deref()) {
            Ok(parsed) => changes = Some(parsed),
            Err((field, message)) => fields.invalid(field, message),
        }
    }
    fields.finish()?;
    let (Some(version), Some(changes)) = (version, changes) else {
        return Err(ApiError::Internal("site changes validated without changes".into()).into());
    };
    let site =
        stoker_metadata::update_site(&state.pool, &principal.actor(), &slug, version, &changes)
            .await
            .map_err(ApiError::from)?;
    state.catalog.invalidate(&slug);
    Ok(versioned(&site, site.version))
}

async fn delete_site(
    slug: String,
    principal: Principal,
    state: State,
    if_match: Option<i64>,
) -> Result<warp::reply::Response, warp::Rejection> {
    let slug = site_from_path(&slug)?;
    stoker_metadata::delete_site(&state.pool, &principal.actor(), &slug, if_match)
        .await
        .map_err(ApiError::from)?;
    state.catalog.invalidate(&slug);
    Ok(no_content())
}

async fn list_sensors(
    slug: String,
    query: HashMap<String, String>,
    state: State,
) -> Result<warp::reply::Json, warp::Rejection> {
    let slug = site_from_path(&slug)?;
    let page = page::parse(&query, &[])?;
    let after = match page.after.as_deref().map(SensorKey::parse) {
        None => None,
        Some(Ok(key)) => Some(key),
        Some(Err(_)) => return Err(bad_cursor().into()),
    };
    let sensors =
        stoker_metadata::list_sensors_page(&state.pool, &slug, page.limit, after.as_ref())
            .await
            .map_err(ApiError::from)?;
    Ok(warp::reply::json(&PageBody::from(sensors)))
}

async fn get_sensor(
    slug: String,
    key: String,
    state: State,
) -> Result<warp::reply::Response, warp::Rejection> {
    let slug = site_from_path(&slug)?;
    let key = sensor_from_path(&slug, &key)?;
    let sensor = stoker_metadata::get_sensor(&state.pool, &slug, &key)
        .await
        .map_err(ApiError::from)?;
    Ok(versioned(&sensor, sensor.version))
}

async fn update_sensor(
    slug: String,
    key: String,
    principal: Principal,
    state: State,
    if_match: Option<i64>,
    mut fields: Fields,
) -> Result<warp::reply::Response, warp::Rejection> {
    let slug = site_from_path(&slug)?;
    let key = sensor_from_path(&slug, &key)?;
    let current = stoker_metadata::get_sensor(&state.pool, &slug, &key)
        .await
        .map_err(ApiError::from)?;
    fields.unchangeable("key", key.as_str());
    let version = fields.version(if_match);
    let sensor_type = fields
        .optional_string("type")
        .map(|text| text.map(SensorType::parse).transpose());
    let unit = fields
        .optional_string("unit")
        .map(|text| text.map(Unit::parse).transpose());
    let min = fields.patch_number("min");
    let max = fields.patch_number("max");
    // The kind may be sent, but only as it is (409 otherwise, from the
    // repository); states only grown at the end (409 otherwise).
    let kind = fields
        .optional_string("kind")
        .map(|text| text.map(|text| SensorKind::parse(&text)).transpose());
    let states = fields
        .optional_strings("states")
        .map(|names| names.map(States::parse).transpose());
    let mut changes = SensorChanges::default();
    match kind {
        Some(Ok(value)) => changes.kind = value,
        Some(Err(error)) => fields.invalid("kind", error.to_string()),
        None => {}
    }
    match states {
        Some(Ok(value)) => changes.states = value,
        Some(Err(error)) => fields.invalid("states", error.to_string()),
        None => {}
    }
    match sensor_type {
        Some(Ok(value)) => changes.sensor_type = value,
        Some(Err(error)) => fields.invalid("type", error.to_string()),
        None => {}
    }
    match unit {
        Some(Ok(value)) => changes.unit = value,
        Some(Err(error)) => fields.invalid("unit", error.to_string()),
        None => {}
    }
    if let (Some(min), Some(max)) = (min, max)
        && (min != Patch::Keep || max != Patch::Keep)
    {
        match ValidRange::new(min.apply(current.min), max.apply(current.max)) {
            Ok(range) => changes.range = Some(range),
            Err(error) => fields.invalid("max", error.to_string()),
        }
    }
    fields.finish()?;
    let Some(version) = version else {
        return Err(ApiError::Internal("sensor changes validated without a version".into()).into());
    };
    let sensor = stoker_metadata::update_sensor(
        &state.pool,
        &principal.actor(),
        &slug,
        &key,
        version,
        &changes,
    )
    .await
    .map_err(ApiError::from)?;
    state.catalog.invalidate(&slug);
    state.metadata_changed();
    Ok(versioned(&sensor, sensor.version))
}

async fn delete_sensor(
    slug: String,
    key: String,
    principal: Principal,
    state: State,
    if_match: Option<i64>,
) -> Result<warp::reply::Response, warp::Rejection> {
    let slug = site_from_path(&slug)?;
    let key = sensor_from_path(&slug, &key)?;
    stoker_metadata::delete_sensor(&state.pool, &principal.actor(), &slug, &key, if_match)
        .await
        .map_err(ApiError::from)?;
    state.catalog.invalidate(&slug);
    Ok(no_content())
}

async fn create_sensor(
    slug: String,
    principal: Principal,
    state: State,
    mut fields: Fields,
) -> Result<impl warp::Reply, warp::Rejection> {
    let slug = site_from_path(&slug)?;
    let key = fields.required("key", SensorKey::parse);
    let sensor_type = fields.required("type", SensorType::parse);
    let unit = fields.required("unit", Unit::parse);
    let min = fields.optional_number("min");
    let max = fields.optional_number("max");
    let kind = fields
        .string_or("kind", SensorKind::default().as_str())
        .and_then(|text| match SensorKind::parse(&text) {
            Ok(kind) => Some(kind),
            Err(error) => {
                fields.invalid("kind", error.to_string());
                None
            }
        });
    let states = match fields.optional_strings("states") {
        Some(names) => match States::parse(names.unwrap_or_default()) {
            Ok(states) => Some(states),
            Err(error) => {
                fields.invalid("states", error.to_string());
                None
            }
        },
        None => None,
    };
    let mut range = None;
    if let (Some(min), Some(max)) = (min, max) {
        match ValidRange::new(min, max) {
            Ok(valid) => range = Some(valid),
            Err(error) => fields.invalid("max", error.to_string()),
        }
    }
    let mut sensor = None;
    if let (Some(key), Some(sensor_type), Some(unit), Some(kind), Some(states), Some(range)) =
        (key, sensor_type, unit, kind, states, range)
    {
        let new = NewSensor {
            key,
            sensor_type,
            unit,
            kind,
            states,
            range,
        };
        match new.check() {
            Ok(()) => sensor = Some(new),
            Err((field, message)) => fields.invalid(field, message),
        }
    }
    fields.finish()?;
    let Some(sensor) = sensor else {
        return Err(ApiError::Internal("sensor fields validated without a sensor".into()).into());
    };
    let sensor = stoker_metadata::create_sensor(&state.pool, &principal.actor(), &slug, &sensor)
        .await
        .map_err(ApiError::from)?;
    state.catalog.invalidate(&slug);
    state.metadata_changed();
    Ok(created(&sensor))
}
