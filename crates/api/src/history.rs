//! `GET /sites/{site}/sensors/{sensor}/history`: one sensor's readings
//! summed up per time bucket, through InfluxQL `GROUP BY time`; as JSON,
//! or as CSV (`csv`: `?format=csv` or `Accept: text/csv`), streamed a
//! chunk of buckets at a time. Buckets of whole days begin at the site's
//! local midnights (its `timezone`, across daylight-saving changes), summed
//! up here from InfluxDB's hourly (or finer) parts.

mod csv;
mod days;

use std::sync::Arc;

use std::collections::HashMap;
use std::time::Duration;

use serde::Serialize;
use stoker_domain::{EpochMillis, ReadingValue, SensorKey, SensorKind, SiteSlug, Unit};
use stoker_metadata::Scope;
use stoker_timeseries::Aggregate;
use warp::Filter;
use warp::Reply as _;
use warp::http::{HeaderValue, header};

use crate::problem::ApiError;
use crate::{State, site_from_path};
use csv::Format;
use days::{local_chunks, local_days};

/// Most points one JSON answer holds (it is built whole in memory).
pub(crate) const MAX_POINTS: u64 = 10_000;

/// Most rows one CSV answer holds: a year of minutes, or two of 2-minute
/// buckets. It is streamed, so only a chunk of it is ever in memory.
pub(crate) const MAX_CSV_ROWS: u64 = 1_000_000;

/// The values `format` takes, for the OpenAPI document.
pub(crate) const FORMATS: [&str; 2] = Format::NAMES;

/// What a CSV answer holds, for the OpenAPI document.
pub(crate) const CSV_DESCRIPTION: &str = "RFC 4180 (UTF-8, CRLF line ends, a field with a comma, quote or line break quoted and its quotes doubled), streamed. A header row, then one row per bucket with readings, oldest first: time,site,sensor,unit,agg,value,count. time is the bucket's start (RFC 3339, UTC); value is in the sensor's kind as in JSON: a number (the shortest decimal that reads back exactly), true/false, or a state's name; a mean is a number (for a boolean, the share of readings that were true); count is the bucket's number of readings. An error before the first byte is problem+json; one after it cuts the transfer short (no final chunk), so a partial file is never taken for a whole one.";

/// Buckets a CSV answer reads from InfluxDB at a time, and so at most
/// holds in memory (with the few encoded chunks waiting for the client).
const CSV_CHUNK_BUCKETS: u64 = 1_000;

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
        // The raw value: one that is not text matches neither format (406).
        .and(
            warp::header::value("accept")
                .map(Some)
                .or(warp::any().map(|| None))
                .unify(),
        )
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

/// Parses and checks `start`, `end`, `every` and `agg`, with at most
/// `max_points` buckets; refuses any parameter but those and `format`
/// (a typo must not silently fall back to a default).
pub(crate) fn parse_query(
    query: &HashMap<String, String>,
    now: EpochMillis,
    max_points: u64,
) -> Result<HistoryQuery, ApiError> {
    if let Some(unknown) = query
        .keys()
        .find(|name| !matches!(name.as_str(), "start" | "end" | "every" | "agg" | "format"))
    {
        let shown: String = unknown.chars().take(64).collect();
        return Err(ApiError::BadParameter {
            parameter: "query",
            detail: format!(
                "unknown parameter {shown:?}; history takes start, end, every, agg and format"
            ),
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
            if points > max_points {
                // Rounded up to whole seconds when that large: "9s", not "8s 640ms".
                let smallest = match range_ms.div_ceil(max_points) {
                    small if small < 1_000 => small,
                    large => large.div_ceil(1_000) * 1_000,
                };
                return Err(bad(
                    "every",
                    format!(
                        "every={text} over this range gives {points} points; at most {max_points}: use every >= {}",
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
    accept: Option<HeaderValue>,
    state: State,
) -> Result<warp::reply::Response, warp::Rejection> {
    let site = site_from_path(&site)?;
    let sensor = crate::sensor_from_path(&site, &sensor)?;
    let accept = accept.map(|value| String::from_utf8_lossy(value.as_bytes()).into_owned());
    let format = Format::choose(query.get("format").map(String::as_str), accept.as_deref())?;
    let max_points = match format {
        Format::Json => MAX_POINTS,
        Format::Csv => MAX_CSV_ROWS,
    };
    let mut request = parse_query(&query, EpochMillis::now(), max_points)?;
    let entry = state.catalog.site(&state.pool, &site).await?;
    let found = entry.sensor(&sensor).ok_or_else(|| {
        ApiError::NotFound(format!("sensor {sensor} does not exist at site {site}"))
    })?;
    let asked = query.contains_key("agg").then_some(request.aggregate);
    request.aggregate = aggregate_for(found.kind, asked)?;
    // Without a rollup, it holds no minute of the range: all is read raw.
    let rolled_through = state
        .rollup
        .through(&state.influx)
        .await
        .unwrap_or(request.start);
    let days = local_days(request.start, request.end, request.every_ms, entry.zone);
    if format == Format::Csv {
        return csv_answer(state, found.clone(), request, rolled_through, days).await;
    }
    let every = Duration::from_millis(request.every_ms);
    let rows = match &days {
        Some(boundaries) => state
            .influx
            .history_between(
                &site,
                &sensor,
                boundaries,
                request.start,
                request.end,
                request.aggregate,
                rolled_through,
            )
            .await
            .map(|buckets| {
                buckets
                    .into_iter()
                    .map(|bucket| (bucket.start, bucket.value))
                    .collect()
            }),
        None => {
            state
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
        }
    }
    .map_err(influx_unavailable)?;
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
    })
    .into_response())
}

fn influx_unavailable(error: stoker_timeseries::Error) -> ApiError {
    ApiError::Unavailable {
        dependency: "InfluxDB",
        detail: error.to_string(),
    }
}

/// `[start, end)` cut into spans of `buckets` buckets of `every_ms`, at
/// bucket boundaries (buckets are aligned to the epoch), so that no
/// bucket is split between two reads.
fn chunks(
    start: EpochMillis,
    end: EpochMillis,
    every_ms: u64,
    buckets: u64,
) -> impl Iterator<Item = (EpochMillis, EpochMillis)> {
    let every_ms = i64::try_from(every_ms).unwrap_or(i64::MAX).max(1);
    let span = every_ms.saturating_mul(i64::try_from(buckets).unwrap_or(i64::MAX).max(1));
    let first_bucket = start.as_millis() - start.as_millis().rem_euclid(every_ms);
    let mut from = start.as_millis();
    let mut boundary = first_bucket;
    std::iter::from_fn(move || {
        if from >= end.as_millis() {
            return None;
        }
        boundary = boundary.saturating_add(span);
        let to = boundary.min(end.as_millis());
        let chunk = (
            EpochMillis::from_millis(from).ok()?,
            EpochMillis::from_millis(to).ok()?,
        );
        from = to;
        Some(chunk)
    })
}

/// A CSV answer, streamed: the header and the first chunk's rows are read
/// before the answer starts (so an InfluxDB that cannot answer still gets
/// a problem+json 503), the rest by a task that reads one chunk of
/// buckets at a time and hands its rows to the body as they come.
async fn csv_answer(
    state: State,
    sensor: stoker_metadata::Sensor,
    request: HistoryQuery,
    rolled_through: EpochMillis,
    days: Option<Vec<EpochMillis>>,
) -> Result<warp::reply::Response, warp::Rejection> {
    let spans: Vec<(EpochMillis, EpochMillis)> = match &days {
        Some(boundaries) => local_chunks(boundaries, request.start, request.end, CSV_CHUNK_BUCKETS),
        None => chunks(
            request.start,
            request.end,
            request.every_ms,
            CSV_CHUNK_BUCKETS,
        )
        .collect(),
    };
    let mut spans = spans.into_iter();
    let prefix = csv::RowPrefix::new(
        sensor.site.as_str(),
        sensor.key.as_str(),
        sensor.unit.as_str(),
        request.aggregate.as_str(),
    );
    let reader = CsvReader {
        state,
        sensor,
        request,
        rolled_through,
        prefix,
        days,
    };
    let mut first = String::new();
    csv::push_header(&mut first);
    if let Some(span) = spans.next() {
        first.push_str(&reader.rows(span).await.map_err(influx_unavailable)?);
    }
    let (sender, body) = csv::body();
    // The channel is empty: the first chunk always fits.
    let _ = sender.try_send(Ok(first.into()));
    let file_name = csv::file_name(
        reader.sensor.site.as_str(),
        reader.sensor.key.as_str(),
        reader.request.start,
        reader.request.end,
    );
    tokio::spawn(async move {
        for span in spans {
            let chunk = match reader.rows(span).await {
                Ok(rows) => Ok(rows.into()),
                Err(error) => {
                    tracing::warn!(
                        %error,
                        site = %reader.sensor.site,
                        sensor = %reader.sensor.key,
                        "InfluxDB failed in the middle of a CSV history answer; the answer is cut off (the client sees an incomplete transfer)"
                    );
                    Err(std::io::Error::other(error.to_string()))
                }
            };
            let failed = chunk.is_err();
            // The client went away: stop reading.
            if sender.send(chunk).await.is_err() || failed {
                return;
            }
        }
    });
    let mut response = warp::reply::stream(body).into_response();
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static(csv::CSV_CONTENT_TYPE),
    );
    // Site and sensor are slugs and the times digits: a plain quoted name.
    if let Ok(disposition) = HeaderValue::from_str(&format!("attachment; filename=\"{file_name}\""))
    {
        headers.insert(header::CONTENT_DISPOSITION, disposition);
    }
    Ok(response)
}

/// What the reads of one CSV answer share.
#[derive(Debug)]
struct CsvReader {
    state: State,
    sensor: stoker_metadata::Sensor,
    request: HistoryQuery,
    rolled_through: EpochMillis,
    prefix: csv::RowPrefix,
    /// The local days' boundaries, when the buckets are whole days.
    days: Option<Vec<EpochMillis>>,
}

impl CsvReader {
    /// The rows of the buckets in `span`, oldest first.
    async fn rows(
        &self,
        (from, to): (EpochMillis, EpochMillis),
    ) -> Result<String, stoker_timeseries::Error> {
        let influx = &self.state.influx;
        let buckets = match &self.days {
            Some(boundaries) => {
                // The boundaries of this span's days: the last at or
                // before `from` to the first at or after `to`.
                let first = boundaries
                    .partition_point(|at| *at <= from)
                    .saturating_sub(1);
                let last = boundaries
                    .partition_point(|at| *at < to)
                    .min(boundaries.len().saturating_sub(1));
                influx
                    .history_between(
                        &self.sensor.site,
                        &self.sensor.key,
                        &boundaries[first..=last.max(first)],
                        from,
                        to,
                        self.request.aggregate,
                        self.rolled_through,
                    )
                    .await?
            }
            None => {
                influx
                    .history_buckets(
                        &self.sensor.site,
                        &self.sensor.key,
                        from,
                        to,
                        Duration::from_millis(self.request.every_ms),
                        self.request.aggregate,
                        self.rolled_through,
                    )
                    .await?
            }
        };
        let mut rows = String::with_capacity(buckets.len() * 80);
        for bucket in buckets {
            if let Some(value) = bucket_value(&self.sensor, self.request.aggregate, bucket.value) {
                csv::push_row(&mut rows, &self.prefix, bucket.start, &value, bucket.count);
            }
        }
        Ok(rows)
    }
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
        let parsed = parse_query(&query(&[]), now(), MAX_POINTS).unwrap();
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
        let parsed = parse_query(&query(&[("end", &end.to_string())]), now(), MAX_POINTS).unwrap();
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
            MAX_POINTS,
        )
        .unwrap();
        assert_eq!(parsed.every_ms, 60_000);
        assert_eq!(parsed.aggregate, Aggregate::Max);

        let error = |pairs: &[(&str, &str)]| match parse_query(&query(pairs), now(), MAX_POINTS) {
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
        assert!(parse_query(&query(&[start, end, ("every", "1s")]), now(), MAX_POINTS).is_ok());
        assert!(parse_query(&query(&[start, end, ("every", "999ms")]), now(), MAX_POINTS).is_err());
        assert!(
            parse_query(
                &query(&[start, end, ("every", "10ms")]),
                now(),
                MAX_CSV_ROWS
            )
            .is_ok(),
            "a CSV answer is streamed: a million rows"
        );
        assert_eq!(choose_every(10_000_000), 10_000);
        assert_eq!(choose_every(100 * 86_400_000), 10_800_000, "2.4 h → 3 h");
    }

    #[test]
    fn csv_chunks_cut_the_range_at_bucket_boundaries() {
        let at = |millis| EpochMillis::from_millis(millis).unwrap();
        let spans: Vec<_> = chunks(at(25_000), at(95_000), 10_000, 3).collect();
        assert_eq!(
            spans,
            vec![
                (at(25_000), at(50_000)),
                (at(50_000), at(80_000)),
                (at(80_000), at(95_000))
            ]
        );
        assert_eq!(
            chunks(at(0), at(60_000), 60_000, 1_000).collect::<Vec<_>>(),
            vec![(at(0), at(60_000))]
        );
        let year = chunks(at(0), at(365 * 86_400_000), 60_000, CSV_CHUNK_BUCKETS);
        assert_eq!(year.count(), 526, "525,600 minutes, 1,000 at a time");
    }
}
