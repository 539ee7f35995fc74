//! Latest values: Redis first; InfluxDB for what Redis does not have
//! (expired, flushed, or Redis down), which also re-warms Redis.

use std::sync::Arc;

use std::collections::HashMap;

use serde::Serialize;
use stoker_cache::LatestValue;
use stoker_domain::{EpochMillis, ReadingValue, SensorKey, SensorType, SiteSlug, Unit};
use stoker_metadata::Scope;
use warp::Filter;

use crate::problem::ApiError;
use crate::{State, site_from_path};

pub(crate) fn routes(
    state: State,
) -> impl Filter<Extract = (impl warp::Reply,), Error = warp::Rejection> + Clone {
    warp::path!("sites" / String / "latest")
        .and(warp::get())
        .and(crate::auth::require(Scope::Read, Arc::clone(&state)))
        .and(warp::any().map(move || Arc::clone(&state)))
        .and_then(latest)
}

#[derive(Debug, Serialize)]
struct Latest<'a> {
    site: SiteSlug,
    readings: Vec<SensorLatest<'a>>,
}

#[derive(Debug, Serialize)]
struct SensorLatest<'a> {
    sensor: &'a SensorKey,
    #[serde(rename = "type")]
    sensor_type: &'a SensorType,
    unit: &'a Unit,
    /// In the sensor's kind (`81.5`, `true`, `"firing"`); `null` when the
    /// sensor never reported.
    value: Option<ReadingValue>,
    /// RFC 3339, milliseconds.
    ts: Option<String>,
}

async fn latest(slug: String, state: State) -> Result<warp::reply::Json, warp::Rejection> {
    let slug = site_from_path(&slug)?;
    let entry = state.catalog.site(&state.pool, &slug).await?;
    let sensors = &entry.sensors;
    let values = latest_values(&state, &slug, sensors).await?;
    let readings = sensors
        .iter()
        .zip(values)
        .map(|(sensor, value)| SensorLatest {
            sensor: &sensor.key,
            sensor_type: &sensor.sensor_type,
            unit: &sensor.unit,
            ts: value.as_ref().map(|(_, ts)| ts.to_string()),
            value: value.map(|(value, _)| value),
        })
        .collect();
    Ok(warp::reply::json(&Latest {
        site: slug,
        readings,
    }))
}

/// Each sensor's latest (value, time), in the order of `sensors`: from
/// Redis, and from InfluxDB for what Redis lacks (then re-warmed). Values
/// are native to each sensor's kind: InfluxDB's float is read back through
/// the sensor's kind and states.
pub(crate) async fn latest_values(
    state: &State,
    slug: &SiteSlug,
    sensors: &[stoker_metadata::Sensor],
) -> Result<Vec<Option<(ReadingValue, EpochMillis)>>, ApiError> {
    let keys: Vec<SensorKey> = sensors.iter().map(|sensor| sensor.key.clone()).collect();
    let mut values = match state.cache.latest_points(slug, &keys).await {
        Ok(cached) => cached,
        Err(error) => {
            tracing::warn!(%error, site = %slug, "could not read latest values from Redis; reading them from InfluxDB");
            vec![None; keys.len()]
        }
    };

    if values.iter().any(Option::is_none) {
        let from_influx: HashMap<SensorKey, (f64, EpochMillis)> = state
            .influx
            .latest_per_sensor(slug)
            .await
            .map_err(|error| ApiError::Unavailable {
                dependency: "InfluxDB",
                detail: error.to_string(),
            })?
            .into_iter()
            .map(|point| (point.sensor, (point.value, point.timestamp)))
            .collect();
        let mut rewarm = Vec::new();
        for (index, sensor) in sensors.iter().enumerate() {
            if values[index].is_none()
                && let Some(&(stored, ts)) = from_influx.get(&sensor.key)
                && let Some(value) = ReadingValue::from_stored(sensor.kind, &sensor.states, stored)
            {
                values[index] = Some((value.clone(), ts));
                let latest = LatestValue {
                    value,
                    ts,
                    sensor_type: sensor.sensor_type.clone(),
                    unit: sensor.unit.clone(),
                };
                rewarm.push((sensor, latest));
            }
        }
        let keyed: Vec<_> = rewarm
            .iter()
            .map(|(sensor, latest)| (slug, &sensor.key, latest))
            .collect();
        if let Err(error) = state.cache.set_latest(&keyed).await {
            tracing::debug!(%error, "could not re-warm latest values in Redis");
        }
    }

    Ok(values)
}
