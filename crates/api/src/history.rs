//! `GET /sites/{site}/sensors/{sensor}/history`: one sensor's readings
//! summed up per time bucket, through InfluxQL `GROUP BY time`.

use std::sync::Arc;

use std::collections::HashMap;
use std::time::Duration;

use serde::Serialize;
use stoker_domain::{EpochMillis, ReadingValue, SensorKey, SensorKind, SiteSlug, Unit};
use stoker_metadata::Scope;
use stoker_timeseries::Aggregate;
use warp::Filter;

use crate::problem::ApiError;
use crate::{State, site_from_path};

/// Most points one answer holds.
pub(crate) const MAX_POINTS: u64 = 10_000;

/// Points aimed at when `every` is left to the server: enough for a
/// dashboard chart, far below [`MAX_POINTS`].
const TARGET_POINTS: u64 = 1_000;

/// Range when `start` is absent.
pub(crate) const DEFAULT_RANGE: Duration = Duration::from_secs(24 * 3600);

/// Bucket widths `every` is chosen from when absent.
const NICE_STEPS: [u64; 20] = [
    1_000,
    2_000,
    5_000,
    10_000,
    15_000,
    30_000,
    60_000,
    120_000,
    300_000,
    600_000,
    900_000,
    1_800_000,
    3_600_000,
    7_200_000,
    10_800_000,
    21_600_000,
    43_200_000,
    86_400_000,
    604_800_000,
    2_592_000_000,
];

pub(crate) fn routes(
    state: State,
) -> impl Filter<Extract = (impl warp::Reply,), Error = warp::Rejection> + Clone {
    warp::path!("sites" / String / "sensors" / String / "history")
        .and(warp::get())
        .and(crate::auth::require(Scope::Read, Arc::clone(&state)))
        .and(warp::query::<HashMap<String, String>>())
        .and(warp::any().map(move || Arc::clone(&state)))
        .and_then(history)
}

/// A validated history request.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct HistoryQuery {
    pub start: EpochMillis,
    pub end: EpochMillis,
    pub every_ms: u64,
    pub aggregate: Aggregate,
}

pub(crate) fn bad(parameter: &'static str, detail: impl Into<String>) -> ApiError {
    ApiError::BadParameter {
        parameter,
        detail: detail.into(),
    }
}

pub(crate) fn timestamp(parameter: &'static str, text: &str) -> Result<EpochMillis, ApiError> {
    let parsed = match text.parse::<i64>() {
        Ok(millis) => EpochMillis::from_millis(millis),
        Err(_) => EpochMillis::parse_rfc3339(text),
    };
    parsed.map_err(|_| {
        bad(
            parameter,
            format!(
                "{parameter}={:?} is neither epoch milliseconds nor an RFC 3339 time (2026-11-22T10:00:00Z)",
                text.chars().take(64).collect::<String>()
            ),
        )
    })
}

/// Parses and checks `start`, `end`, `every` and `agg`; refuses any other
/// parameter (a typo must not silently fall back to a default).
pub(crate) fn parse_query(
    query: &HashMap<String, String>,
    now: EpochMillis,
) -> Result<HistoryQuery, ApiError> {
    if let Some(unknown) = query
        .keys()
        .find(|name| !matches!(name.as_str(), "start" | "end" | "every" | "agg"))
    {
        let shown: String = unknown.chars().take(64).collect();
        return Err(ApiError::BadParameter {
            parameter: "query",
            detail: format!("unknown parameter {shown:?}; history takes start, end, every and agg"),
        });
    }
    let end = match query.get("end") {
        Some(text) => timestamp("end", text)?,
        None => now,
    };
    let start = match query.get("start") {
        Some(text) => timestamp("start", text)?,
        None => end.plus_millis(-(DEFAULT_RANGE.as_millis() as i64)),
    };
    if start >= end {
        return Err(bad(
            "start",
            format!("start ({start}) must be before end ({end})"),
        ));
    }
    let range_ms = (end.as_millis() - start.as_millis()) as u64;
    let aggregate = match query.get("agg") {
        Some(text) => Aggregate::parse(text).ok_or_else(|| {
            bad(
                "agg",
                format!(
                    "agg={:?} is not one of mean, min, max, last",
                    text.chars().take(32).collect::<String>()
                ),
            )
        })?,
        None => Aggregate::Mean,
    };
    let every_ms = match query.get("every") {
        Some(text) => {
            let every = stoker_domain::parse_duration(text).map_err(|_| {
                bad(
                    "every",
                    format!(
                        "every={:?} is not a duration such as 10s, 1m or 1h",
                        text.chars().take(32).collect::<String>()
                    ),
                )
            })?;
            let every_ms = u64::try_from(every.as_millis()).unwrap_or(u64::MAX);
            if every_ms == 0 {
                return Err(bad("every", "every must be at least 1ms"));
            }
            let points = range_ms.div_ceil(every_ms);
            if points > MAX_POINTS {
                // Rounded up to whole seconds when that large: "9s", not "8s 640ms".
                let smallest = match range_ms.div_ceil(MAX_POINTS) {
                    small if small < 1_000 => small,
                    large => large.div_ceil(1_000) * 1_000,
                };
                return Err(bad(
                    "every",
                    format!(
                        "every={text} over this range gives {points} points; at most {MAX_POINTS}: use every >= {}",
                        humantime::format_duration(Duration::from_millis(smallest))
                    ),
                ));
            }
            every_ms
        }
        None => choose_every(range_ms),
    };
    Ok(HistoryQuery {
        start,
        end,
        every_ms,
        aggregate,
    })
}

/// The smallest nice bucket width giving at most [`TARGET_POINTS`] over
/// the range (ranges beyond the nice steps get an exact width).
pub(crate) fn choose_every(range_ms: u64) -> u64 {
    let wanted = range_ms.div_ceil(TARGET_POINTS).max(1);
    NICE_STEPS
        .into_iter()
        .find(|step| *step >= wanted)
        .unwrap_or(wanted)
}

/// How long the rollup's progress is trusted before it is read again.
const ROLLUP_CLOCK_TTL: std::time::Duration = std::time::Duration::from_secs(10);

/// How far InfluxDB's 1-minute rollup reaches (`rollup_progress`, written
/// by the rollup job), read at most every [`ROLLUP_CLOCK_TTL`]. History
/// reads the minutes before it from the rollup; when it is unknown (no
/// rollup job has run, or InfluxDB did not say), everything is read raw.
/// Clones share the clock.
#[derive(Debug, Default, Clone)]
pub struct RollupClock {
    read: std::sync::Arc<tokio::sync::Mutex<Option<ClockReading>>>,
}

/// When the progress was read, and what it was.
type ClockReading = (tokio::time::Instant, Option<EpochMillis>);

impl RollupClock {
    async fn through(&self, influx: &stoker_timeseries::Influx) -> Option<EpochMillis> {
        let mut read = self.read.lock().await;
        if let Some((at, through)) = *read
            && at.elapsed() < ROLLUP_CLOCK_TTL
        {
            return through;
        }
        let through = match influx.rollup_progress().await {
            Ok(through) => through,
            Err(error) => {
                tracing::warn!(%error, "cannot read the rollup's progress; reading history raw");
                None
            }
        };
        *read = Some((tokio::time::Instant::now(), through));
        through
    }
}

#[derive(Debug, Serialize)]
struct History {
    site: SiteSlug,
    sensor: SensorKey,
    unit: Unit,
    agg: &'static str,
    every: String,
    start: String,
    end: String,
    points: Vec<Point>,
}

#[derive(Debug, Serialize)]
struct Point {
    /// Start of the bucket, RFC 3339.
    ts: String,
    /// In the sensor's kind, but for a mean (a number; for a boolean, the
    /// share of readings that were true).
    value: ReadingValue,
}

/// The aggregate a sensor's history uses: the one asked for, else `mean`
/// for a numeric sensor and `last` for a boolean or state one (the last
/// per bucket). A state sensor takes only `last`: the mean, min or max of
/// state indexes means nothing.
pub(crate) fn aggregate_for(
    kind: SensorKind,
    asked: Option<Aggregate>,
) -> Result<Aggregate, ApiError> {
    match (kind, asked) {
        (SensorKind::Numeric, asked) => Ok(asked.unwrap_or(Aggregate::Mean)),
        (SensorKind::Boolean, asked) => Ok(asked.unwrap_or(Aggregate::Last)),
        (SensorKind::State, None | Some(Aggregate::Last)) => Ok(Aggregate::Last),
        (SensorKind::State, Some(other)) => Err(bad(
            "agg",
            format!(
                "agg={} does not apply to a state sensor: its history takes agg=last (the state at the end of each bucket)",
                other.as_str()
            ),
        )),
    }
}

/// A bucket's aggregate as the answer gives it: native to the sensor's
/// kind (a boolean `true` when the bucket's min/max/last is 1, a state its
/// name), but a boolean's mean as a number. `None`: a state index the
/// sensor's states lack (not written by Stoker).
fn bucket_value(
    sensor: &stoker_metadata::Sensor,
    aggregate: Aggregate,
    stored: f64,
) -> Option<ReadingValue> {
    match (sensor.kind, aggregate) {
        (SensorKind::Boolean, Aggregate::Mean) => Some(ReadingValue::Number(stored)),
        (kind, _) => ReadingValue::from_stored(kind, &sensor.states, stored),
    }
}

async fn history(
    site: String,
    sensor: String,
    query: HashMap<String, String>,
    state: State,
) -> Result<warp::reply::Json, warp::Rejection> {
    let site = site_from_path(&site)?;
    let sensor = crate::sensor_from_path(&site, &sensor)?;
    let mut request = parse_query(&query, EpochMillis::now())?;
    let entry = state.catalog.site(&state.pool, &site).await?;
    let found = entry.sensor(&sensor).ok_or_else(|| {
        ApiError::NotFound(format!("sensor {sensor} does not exist at site {site}"))
    })?;
    let asked = query.contains_key("agg").then_some(request.aggregate);
    request.aggregate = aggregate_for(found.kind, asked)?;
    let every = Duration::from_millis(request.every_ms);
    // Without a rollup, it holds no minute of the range: all is read raw.
    let rolled_through = state
        .rollup
        .through(&state.influx)
        .await
        .unwrap_or(request.start);
    let rows = state
        .influx
        .history_with_rollup(
            &site,
            &sensor,
            request.start,
            request.end,
            every,
            request.aggregate,
            rolled_through,
        )
        .await
        .map_err(|error| ApiError::Unavailable {
            dependency: "InfluxDB",
            detail: error.to_string(),
        })?;
    Ok(warp::reply::json(&History {
        site,
        sensor,
        unit: found.unit.clone(),
        agg: request.aggregate.as_str(),
        every: humantime::format_duration(Duration::from_millis(request.every_ms)).to_string(),
        start: request.start.to_string(),
        end: request.end.to_string(),
        points: rows
            .into_iter()
            .filter_map(|(ts, stored)| {
                Some(Point {
                    ts: ts.to_string(),
                    value: bucket_value(found, request.aggregate, stored)?,
                })
            })
            .collect(),
    }))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::page::query;

    fn now() -> EpochMillis {
        EpochMillis::from_millis(1_800_000_000_000).unwrap()
    }

    #[test]
    fn defaults_are_the_last_day_by_mean_at_a_nice_step() {
        let parsed = parse_query(&query(&[]), now()).unwrap();
        assert_eq!(parsed.end, now());
        assert_eq!(
            parsed.end.as_millis() - parsed.start.as_millis(),
            86_400_000
        );
        assert_eq!(parsed.aggregate, Aggregate::Mean);
        assert_eq!(
            parsed.every_ms, 120_000,
            "24 h / 1,000 points = 86.4 s → 2 min"
        );
    }

    #[test]
    fn a_default_start_never_falls_before_the_earliest_instant() {
        let end = EpochMillis::MIN_MILLIS + 60_000;
        let parsed = parse_query(&query(&[("end", &end.to_string())]), now()).unwrap();
        assert_eq!(parsed.start.as_millis(), EpochMillis::MIN_MILLIS);
        assert_eq!(parsed.end.as_millis(), end);
    }

    #[test]
    fn explicit_parameters_are_taken_and_checked() {
        let parsed = parse_query(
            &query(&[
                ("start", "2026-11-21T00:00:00Z"),
                ("end", "1795392000000"),
                ("every", "1m"),
                ("agg", "max"),
            ]),
            now(),
        )
        .unwrap();
        assert_eq!(parsed.every_ms, 60_000);
        assert_eq!(parsed.aggregate, Aggregate::Max);

        let error = |pairs: &[(&str, &str)]| match parse_query(&query(pairs), now()) {
            Err(ApiError::BadParameter { parameter, detail }) => (parameter, detail),
            other => panic!("{other:?}"),
        };
        assert_eq!(error(&[("agg", "median")]).0, "agg");
        assert_eq!(error(&[("start", "yesterday")]).0, "start");
        assert_eq!(error(&[("every", "fast")]).0, "every");
        assert_eq!(error(&[("evry", "1m")]).0, "query");
        assert_eq!(
            error(&[("start", "2000"), ("end", "1000")]).0,
            "start",
            "start after end"
        );
        let (parameter, detail) = error(&[("every", "1s")]);
        assert_eq!(parameter, "every");
        assert!(
            detail.contains("86400 points") && detail.contains("every >= 9s"),
            "{detail}"
        );
    }

    #[test]
    fn booleans_and_states_default_to_the_last_per_bucket() {
        assert_eq!(
            aggregate_for(SensorKind::Numeric, None).unwrap(),
            Aggregate::Mean
        );
        assert_eq!(
            aggregate_for(SensorKind::Boolean, None).unwrap(),
            Aggregate::Last
        );
        assert_eq!(
            aggregate_for(SensorKind::State, None).unwrap(),
            Aggregate::Last
        );
        assert_eq!(
            aggregate_for(SensorKind::Boolean, Some(Aggregate::Mean)).unwrap(),
            Aggregate::Mean
        );
        assert_eq!(
            aggregate_for(SensorKind::State, Some(Aggregate::Last)).unwrap(),
            Aggregate::Last
        );
        match aggregate_for(SensorKind::State, Some(Aggregate::Max)) {
            Err(ApiError::BadParameter { parameter, detail }) => {
                assert_eq!(parameter, "agg");
                assert!(detail.contains("agg=last"), "{detail}");
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn at_most_ten_thousand_points() {
        let start = ("start", "0");
        let end = ("end", "10000000");
        assert!(parse_query(&query(&[start, end, ("every", "1s")]), now()).is_ok());
        assert!(parse_query(&query(&[start, end, ("every", "999ms")]), now()).is_err());
        assert_eq!(choose_every(10_000_000), 10_000);
        assert_eq!(choose_every(100 * 86_400_000), 10_800_000, "2.4 h → 3 h");
    }
}
