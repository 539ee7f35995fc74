//! `GET /sites/{site}/dashboard`: every sensor's latest value with its
//! status, and the site's open alerts, in one answer. Open alerts come from
//! Postgres (analytics' store, the truth); a sensor with one is `alerting`.
//! Cached in Redis as `dashboard:{site}` for 60 s; the catalog drops it
//! whenever Postgres announces a change to the site's metadata, and every
//! alert transition drops it too (analytics' loop, and the API's
//! acknowledge and resolve).

use std::sync::Arc;

use serde::Serialize;
use stoker_analytics::store::{self, Alert};
use stoker_domain::{EpochMillis, ReadingValue, SensorKey, SensorType, SiteSlug, Unit};
use stoker_metadata::Scope;
use warp::Filter;
use warp::Reply as _;

use crate::problem::ApiError;
use crate::readings::latest_values;
use crate::{State, site_from_path};

/// A latest value older than this is `stale` (the latest-value TTL).
pub(crate) const STALE_AFTER_MILLIS: i64 = 300_000;

pub(crate) fn routes(
    state: State,
) -> impl Filter<Extract = (warp::reply::Response,), Error = warp::Rejection> + Clone {
    warp::path!("sites" / String / "dashboard")
        .and(warp::get())
        .and(crate::auth::require(Scope::Read, Arc::clone(&state)))
        .and(warp::any().map(move || Arc::clone(&state)))
        .and_then(dashboard)
}

/// What a sensor's latest value says.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub(crate) enum Status {
    /// Recent and within its valid range.
    Ok,
    /// No value within the last 5 minutes (or never).
    Stale,
    /// Outside the sensor's valid range (the range changed since).
    OutOfRange,
    /// An alert is open for it.
    Alerting,
}

/// A sensor's status from its latest value; `alerting` wins.
pub(crate) fn status(
    value: Option<(f64, EpochMillis)>,
    min: Option<f64>,
    max: Option<f64>,
    alerting: bool,
    now: EpochMillis,
) -> Status {
    if alerting {
        return Status::Alerting;
    }
    let Some((value, at)) = value else {
        return Status::Stale;
    };
    if now.as_millis() - at.as_millis() > STALE_AFTER_MILLIS {
        Status::Stale
    } else if min.is_some_and(|min| value < min) || max.is_some_and(|max| value > max) {
        Status::OutOfRange
    } else {
        Status::Ok
    }
}

#[derive(Debug, Serialize)]
struct Dashboard {
    site: SiteSlug,
    generated_at: String,
    counts: Counts,
    sensors: Vec<SensorStatus>,
    /// Alerts of the site not closed (active, or cleared before anyone
    /// acknowledged them), newest first.
    open_alerts: Vec<Alert>,
}

#[derive(Debug, Default, Serialize)]
struct Counts {
    ok: usize,
    stale: usize,
    out_of_range: usize,
    alerting: usize,
}

#[derive(Debug, Serialize)]
struct SensorStatus {
    sensor: SensorKey,
    #[serde(rename = "type")]
    sensor_type: SensorType,
    unit: Unit,
    /// In the sensor's kind: `81.5`, `true`, `"firing"`.
    value: Option<ReadingValue>,
    ts: Option<String>,
    min: Option<f64>,
    max: Option<f64>,
    status: Status,
}

async fn dashboard(slug: String, state: State) -> Result<warp::reply::Response, warp::Rejection> {
    let slug = site_from_path(&slug)?;
    match state.cache.dashboard(&slug).await {
        Ok(Some(cached)) => return Ok(json_body(cached, "hit")),
        Ok(None) => {}
        Err(error) => tracing::debug!(%error, "Redis unavailable; building the dashboard"),
    }
    let entry = state.catalog.site(&state.pool, &slug).await?;
    let values = latest_values(&state, &slug, &entry.sensors).await?;
    let open_alerts = store::open_alerts(&state.pool, Some(&slug))
        .await
        .map_err(ApiError::from)?;
    let now = EpochMillis::now();
    let mut counts = Counts::default();
    let sensors = entry
        .sensors
        .iter()
        .zip(values)
        .map(|(sensor, value)| {
            let alerting = open_alerts
                .iter()
                .any(|alert| alert.active && alert.sensor.as_deref() == Some(sensor.key.as_str()));
            // Only a numeric sensor has a range: another kind's value is
            // judged by its age alone.
            let number = value
                .as_ref()
                .map(|(value, at)| (value.as_number().unwrap_or(0.0), *at));
            let status = status(number, sensor.min, sensor.max, alerting, now);
            match status {
                Status::Ok => counts.ok += 1,
                Status::Stale => counts.stale += 1,
                Status::OutOfRange => counts.out_of_range += 1,
                Status::Alerting => counts.alerting += 1,
            }
            SensorStatus {
                sensor: sensor.key.clone(),
                sensor_type: sensor.sensor_type.clone(),
                unit: sensor.unit.clone(),
                ts: value.as_ref().map(|(_, ts)| ts.to_string()),
                value: value.map(|(value, _)| value),
                min: sensor.min,
                max: sensor.max,
                status,
            }
        })
        .collect();
    let body = serde_json::to_string(&Dashboard {
        site: slug.clone(),
        generated_at: now.to_string(),
        counts,
        sensors,
        open_alerts,
    })
    .map_err(|error| ApiError::Internal(format!("cannot encode a dashboard: {error}")))?;
    if let Err(error) = state.cache.set_dashboard(&slug, &body).await {
        tracing::debug!(%error, "could not cache the dashboard in Redis");
    }
    Ok(json_body(body, "miss"))
}

/// A JSON body as sent, with `x-cache` saying whether Redis served it.
pub(crate) fn json_body(body: String, cache: &'static str) -> warp::reply::Response {
    let mut response = body.into_response();
    let headers = response.headers_mut();
    headers.insert(
        warp::http::header::CONTENT_TYPE,
        warp::http::HeaderValue::from_static("application/json"),
    );
    headers.insert("x-cache", warp::http::HeaderValue::from_static(cache));
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn status_from_the_latest_value() {
        let now = EpochMillis::from_millis(1_000_000_000).unwrap();
        let at = |ago: i64| EpochMillis::from_millis(1_000_000_000 - ago).unwrap();
        assert_eq!(
            status(Some((5.0, at(1_000))), Some(0.0), Some(10.0), false, now),
            Status::Ok
        );
        assert_eq!(
            status(Some((5.0, at(301_000))), None, None, false, now),
            Status::Stale
        );
        assert_eq!(status(None, None, None, false, now), Status::Stale);
        assert_eq!(
            status(Some((11.0, at(0))), None, Some(10.0), false, now),
            Status::OutOfRange
        );
        assert_eq!(
            status(Some((5.0, at(0))), None, None, true, now),
            Status::Alerting
        );
    }
}
