//! Sites and sensors.

use stoker_domain::{SensorKey, SensorType, SiteSlug, Unit, ValidRange};
use stoker_metadata::{NewSensor, NewSite, Scope};
use warp::Filter;
use warp::http::StatusCode;

use crate::auth::require;
use crate::body::{Fields, json_object};
use crate::problem::ApiError;
use crate::{ApiState, site_from_path};

pub(crate) fn routes(
    state: ApiState,
) -> impl Filter<Extract = (impl warp::Reply,), Error = warp::Rejection> + Clone {
    let read = require(Scope::Read, state.clone());
    let admin = require(Scope::Admin, state.clone());
    let with_state = warp::any().map(move || state.clone());
    let list_sites = warp::path!("sites")
        .and(warp::get())
        .and(read.clone())
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
    let list_sensors = warp::path!("sites" / String / "sensors")
        .and(warp::get())
        .and(read)
        .and(with_state.clone())
        .and_then(list_sensors);
    let create_sensor = warp::path!("sites" / String / "sensors")
        .and(warp::post())
        .and(admin)
        .and(with_state)
        .and(json_object())
        .and_then(create_sensor);
    list_sites
        .or(create_site)
        .or(get_site)
        .or(list_sensors)
        .or(create_sensor)
}

fn created(value: &impl serde::Serialize) -> warp::reply::WithStatus<warp::reply::Json> {
    warp::reply::with_status(warp::reply::json(value), StatusCode::CREATED)
}

async fn list_sites(state: ApiState) -> Result<warp::reply::Json, warp::Rejection> {
    let sites = stoker_metadata::list_sites(&state.pool)
        .await
        .map_err(ApiError::from)?;
    Ok(warp::reply::json(&serde_json::json!({ "items": sites })))
}

async fn create_site(
    state: ApiState,
    mut fields: Fields,
) -> Result<impl warp::Reply, warp::Rejection> {
    let slug = fields.required("slug", |text| SiteSlug::parse(text.as_str()).map(|_| text));
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
    let site = stoker_metadata::create_site(&state.pool, &new_site)
        .await
        .map_err(ApiError::from)?;
    Ok(created(&site))
}

async fn get_site(slug: String, state: ApiState) -> Result<warp::reply::Json, warp::Rejection> {
    let slug = site_from_path(&slug)?;
    let site = stoker_metadata::get_site(&state.pool, &slug)
        .await
        .map_err(ApiError::from)?;
    Ok(warp::reply::json(&site))
}

async fn list_sensors(slug: String, state: ApiState) -> Result<warp::reply::Json, warp::Rejection> {
    let slug = site_from_path(&slug)?;
    let sensors = stoker_metadata::list_sensors(&state.pool, &slug)
        .await
        .map_err(ApiError::from)?;
    Ok(warp::reply::json(&serde_json::json!({ "items": sensors })))
}

async fn create_sensor(
    slug: String,
    state: ApiState,
    mut fields: Fields,
) -> Result<impl warp::Reply, warp::Rejection> {
    let slug = site_from_path(&slug)?;
    let key = fields.required("key", SensorKey::parse);
    let sensor_type = fields.required("type", SensorType::parse);
    let unit = fields.required("unit", Unit::parse);
    let min = fields.optional_number("min");
    let max = fields.optional_number("max");
    let mut range = None;
    if let (Some(min), Some(max)) = (min, max) {
        match ValidRange::new(min, max) {
            Ok(valid) => range = Some(valid),
            Err(error) => fields.invalid("max", error.to_string()),
        }
    }
    fields.finish()?;
    let (Some(key), Some(sensor_type), Some(unit), Some(range)) = (key, sensor_type, unit, range)
    else {
        return Err(ApiError::Internal("sensor fields validated without a sensor".into()).into());
    };
    let sensor = NewSensor {
        key,
        sensor_type,
        unit,
        range,
    };
    let sensor = stoker_metadata::create_sensor(&state.pool, &slug, &sensor)
        .await
        .map_err(ApiError::from)?;
    state.catalog.invalidate(&slug);
    Ok(created(&sensor))
}
