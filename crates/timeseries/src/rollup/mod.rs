//! The data lifecycle in InfluxDB: retention and the 1-minute rollup.
//!
//! Layout (ARCHITECTURE.md says why):
//! - raw readings, measurement `readings`, stay in the database's default
//!   retention policy (`autogen`), kept `INFLUX_RAW_RETENTION` (30 days);
//! - the rollup, measurement `readings_1m` in retention policy `rollup`
//!   (kept `INFLUX_ROLLUP_RETENTION`, 2 years): one point per sensor and
//!   minute with tags `site`, `sensor`, `type` and fields `count`
//!   (integer), `sum`, `mean`, `min`, `max`, `last`, stamped with the
//!   minute's start;
//! - `rollup_progress` (same policy): field `through`, the end of the
//!   newest minute the rollup job has rolled up, so that readers know
//!   which minutes the rollup holds completely;
//! - `rollup_marks` (same policy): fields `from`, `to`, one point per
//!   batch of readings stored more than [`LATE_AFTER_MS`] after their
//!   time (a gateway catching up, the spool replaying after an outage),
//!   stamped when stored; the rollup job rolls those minutes again.
//!
//! Stoker computes the rollup itself ([`Influx::roll_up`]: one InfluxQL
//! query of the raw minutes, written back as line protocol) rather than
//! with continuous queries (1.x only) or tasks (2.x only): the same code
//! works on 1.x, 2.x and 3.x, and re-rolling a minute overwrites its point,
//! so late readings are folded in by rolling their minutes again.
//!
//! Layout: `setup` (retention policies, [`Influx::setup`]), here the
//! rollup itself ([`Influx::roll_up`], its progress and the late marks),
//! and `history` ([`Influx::history_with_rollup`], [`Influx::history_buckets`]).

mod history;
mod setup;

use stoker_domain::EpochMillis;

pub use history::HistoryBucket;
pub use setup::SetupReport;

use crate::influxql::identifier;
use crate::line::{Field, MEASUREMENT, check_tag_value, push_line};
use crate::{Error, Influx, Result};

/// The retention policy (1.x) that holds the rollup; on 2.x/3.x, bucket
/// `{bucket}_rollup` mapped to it (DBRP), so InfluxQL reads it the same.
pub const ROLLUP_POLICY: &str = "rollup";

/// The rollup's measurement.
pub const ROLLUP_MEASUREMENT: &str = "readings_1m";

/// Where the rollup job records how far it got.
pub const PROGRESS_MEASUREMENT: &str = "rollup_progress";

/// Where writers note readings stored late (see [`Influx::mark_late`]).
pub const MARKS_MEASUREMENT: &str = "rollup_marks";

/// One minute, the rollup's bucket.
pub const MINUTE_MS: i64 = 60_000;

/// Readings older than this when stored are "late": their writer marks
/// them for the rollup ([`Influx::mark_late`]). The rollup job's trailing
/// re-roll (`ROLLUP_LATE`) is never shorter, so every reading is either
/// marked or re-rolled.
pub const LATE_AFTER_MS: i64 = 2 * MINUTE_MS;

/// One sensor's readings in one minute, summed up.
#[derive(Debug, Clone, PartialEq)]
pub struct MinuteStats {
    /// The `site` tag.
    pub site: String,
    /// The `sensor` tag.
    pub sensor: String,
    /// The `type` tag.
    pub sensor_type: String,
    /// The minute's start.
    pub start: EpochMillis,
    /// Readings in the minute (at least 1).
    pub count: u64,
    /// Their sum.
    pub sum: f64,
    /// Their mean, as InfluxDB's `mean()` computes it (it may differ
    /// from `sum / count` in the last bit).
    pub mean: f64,
    /// The lowest.
    pub min: f64,
    /// The highest.
    pub max: f64,
    /// The newest.
    pub last: f64,
}

/// What one [`Influx::roll_up`] did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RollupReport {
    /// Minutes rolled up (points written), over every series.
    pub points: u64,
    /// Raw readings they sum up.
    pub readings: u64,
    /// Minutes left out: their series' tags (not written by Stoker) have
    /// no correct line-protocol form.
    pub skipped: u64,
}

/// The start of the minute `at` falls in.
pub fn floor_minute(at: EpochMillis) -> EpochMillis {
    let millis = at.as_millis();
    EpochMillis::from_millis(millis - millis.rem_euclid(MINUTE_MS)).unwrap_or(at)
}

/// The first minute boundary at or after `at`.
pub fn ceil_minute(at: EpochMillis) -> EpochMillis {
    let floor = floor_minute(at);
    if floor == at {
        at
    } else {
        floor.plus_millis(MINUTE_MS)
    }
}

/// Points per rollup write: about 150 bytes each.
const WRITE_CHUNK: usize = 5_000;

impl Influx {
    /// Every series' readings in `[start, end)` summed up per minute
    /// (`start` and `end` are rounded down to whole minutes).
    pub async fn minute_stats(
        &self,
        start: EpochMillis,
        end: EpochMillis,
    ) -> Result<Vec<MinuteStats>> {
        let query = format!(
            "SELECT count(\"value\") AS \"count\", sum(\"value\") AS \"sum\", mean(\"value\") AS \"mean\", min(\"value\") AS \"min\", \
             max(\"value\") AS \"max\", last(\"value\") AS \"last\" FROM {} \
             WHERE time >= {}ms AND time < {}ms GROUP BY time(1m), \"site\", \"sensor\", \"type\" fill(none)",
            identifier(MEASUREMENT),
            floor_minute(start).as_millis(),
            floor_minute(end).as_millis(),
        );
        let mut minutes = Vec::new();
        for series in self.query(&query).await? {
            let sensor_type = series.tags.get("type").cloned().unwrap_or_default();
            let mean_at = series.columns.iter().position(|column| column == "mean");
            let means: std::collections::HashMap<i64, f64> = series
                .values
                .iter()
                .filter_map(|row| {
                    let start = row.first()?.as_i64()?;
                    Some((start, row.get(mean_at?)?.as_f64()?))
                })
                .collect();
            let buckets = crate::SeriesBuckets::from_series(series)?;
            minutes.extend(buckets.buckets.into_iter().map(|bucket| {
                MinuteStats {
                    site: buckets.site.clone(),
                    sensor: buckets.sensor.clone(),
                    sensor_type: sensor_type.clone(),
                    start: bucket.start,
                    count: bucket.count,
                    sum: bucket.sum,
                    mean: means
                        .get(&bucket.start.as_millis())
                        .copied()
                        .unwrap_or(bucket.sum / bucket.count as f64),
                    min: bucket.min,
                    max: bucket.max,
                    last: bucket.last,
                }
            }));
        }
        Ok(minutes)
    }

    /// Rolls up the whole minutes of `[start, end)` (rounded down to
    /// minutes): reads them from the raw readings and writes one
    /// `readings_1m` point per sensor and minute. Idempotent: rolling a
    /// minute again overwrites its points with the readings there now.
    pub async fn roll_up(&self, start: EpochMillis, end: EpochMillis) -> Result<RollupReport> {
        let minutes = self.minute_stats(start, end).await?;
        let mut report = RollupReport::default();
        for chunk in minutes.chunks(WRITE_CHUNK) {
            let mut body = String::with_capacity(chunk.len() * 160);
            for minute in chunk {
                if encode_minute(&mut body, minute) {
                    report.points += 1;
                    report.readings += minute.count;
                } else {
                    report.skipped += 1;
                    tracing::warn!(site = %minute.site, sensor = %minute.sensor, sensor_type = %minute.sensor_type, "a raw series' tags cannot be written as line protocol; its minute is left out of the rollup");
                }
            }
            self.write_rollup(body).await?;
        }
        Ok(report)
    }

    /// Records that the rollup holds every minute before `through`.
    pub async fn set_rollup_progress(&self, through: EpochMillis) -> Result<()> {
        let millis = through.as_millis();
        let mut body = String::new();
        push_line(
            &mut body,
            PROGRESS_MEASUREMENT,
            &[],
            &[("through", Field::Integer(millis))],
            millis,
        );
        self.write_rollup(body).await
    }

    /// The end of the newest minute the rollup job has rolled up; `None`
    /// before its first pass.
    pub async fn rollup_progress(&self) -> Result<Option<EpochMillis>> {
        let query = format!(
            "SELECT last(\"through\") FROM {}.{}",
            identifier(ROLLUP_POLICY),
            identifier(PROGRESS_MEASUREMENT)
        );
        let series = match self.query(&query).await {
            Ok(series) => series,
            // No rollup policy yet (setup not run): no progress either.
            Err(Error::Query { message }) if message.contains("retention policy not found") => {
                return Ok(None);
            }
            Err(error) => return Err(error),
        };
        Ok(series
            .iter()
            .flat_map(|one| one.values.iter())
            .filter_map(|row| row.get(1).and_then(serde_json::Value::as_i64))
            .max()
            .and_then(|millis| EpochMillis::from_millis(millis).ok()))
    }

    /// Notes that readings from `from` to `to` (inclusive) were stored
    /// just now, late: the rollup job rolls their minutes again. Marks of
    /// one process never share a timestamp (nor, by their `writer` tag,
    /// with another's), so none overwrites another.
    pub async fn mark_late(&self, from: EpochMillis, to: EpochMillis) -> Result<()> {
        let stamp = unique_stamp(EpochMillis::now().as_millis());
        let mut body = String::new();
        push_line(
            &mut body,
            MARKS_MEASUREMENT,
            &[("writer", writer_tag())],
            &[
                ("from", Field::Integer(from.as_millis())),
                ("to", Field::Integer(to.as_millis())),
            ],
            stamp,
        );
        self.write_rollup(body).await
    }

    /// The ranges of late readings marked at or after `since` (by the
    /// marks' own clock), as `(from, to)`, inclusive.
    pub async fn late_marks(&self, since: EpochMillis) -> Result<Vec<(EpochMillis, EpochMillis)>> {
        let query = format!(
            "SELECT \"from\", \"to\" FROM {}.{} WHERE time >= {}ms",
            identifier(ROLLUP_POLICY),
            identifier(MARKS_MEASUREMENT),
            since.as_millis()
        );
        let series = match self.query(&query).await {
            Ok(series) => series,
            Err(Error::Query { message }) if message.contains("retention policy not found") => {
                return Ok(Vec::new());
            }
            Err(error) => return Err(error),
        };
        let mut marks = Vec::new();
        for one in &series {
            let at = |name: &str| one.columns.iter().position(|column| column == name);
            let (from_at, to_at) = (at("from"), at("to"));
            for row in &one.values {
                let time = |index: Option<usize>| {
                    index
                        .and_then(|index| row.get(index))
                        .and_then(serde_json::Value::as_i64)
                        .and_then(|millis| EpochMillis::from_millis(millis).ok())
                };
                if let (Some(from), Some(to)) = (time(from_at), time(to_at)) {
                    marks.push((from, to));
                }
            }
        }
        Ok(marks)
    }

    /// The oldest raw reading's timestamp; `None` when there is none.
    pub async fn oldest_reading(&self) -> Result<Option<EpochMillis>> {
        let query = format!("SELECT first(\"value\") FROM {}", identifier(MEASUREMENT));
        let series = self.query(&query).await?;
        Ok(series
            .iter()
            .flat_map(|one| one.values.iter())
            .filter_map(|row| row.first().and_then(serde_json::Value::as_i64))
            .min()
            .and_then(|millis| EpochMillis::from_millis(millis).ok()))
    }

    /// Writes rollup line protocol to the rollup's policy (1.x) or
    /// bucket (2.x/3.x).
    async fn write_rollup(&self, body: String) -> Result<()> {
        self.write_lines(body, Some(ROLLUP_POLICY)).await
    }
}

/// A timestamp for a mark: `now`, or one past this process's previous
/// mark if that was as late.
fn unique_stamp(now: i64) -> i64 {
    use std::sync::atomic::{AtomicI64, Ordering};
    static LAST: AtomicI64 = AtomicI64::new(i64::MIN);
    let mut previous = LAST.load(Ordering::Relaxed);
    loop {
        let next = now.max(previous.saturating_add(1));
        match LAST.compare_exchange_weak(previous, next, Ordering::Relaxed, Ordering::Relaxed) {
            Ok(_) => return next,
            Err(actual) => previous = actual,
        }
    }
}

/// This process's `writer` tag on marks: its pid and start time.
fn writer_tag() -> &'static str {
    static TAG: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    TAG.get_or_init(|| {
        let started = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|elapsed| elapsed.as_nanos())
            .unwrap_or_default();
        format!("p{}-{started:x}", std::process::id())
    })
}

/// One rollup line: `readings_1m,site=…,sensor=…,type=… count=…i,sum=…,mean=…,min=…,max=…,last=… {ms}`.
/// False, writing nothing, when a tag value read back from InfluxDB has no
/// correct line-protocol form ([`check_tag_value`]: written by
/// someone else than Stoker, whose keys never need it).
fn encode_minute(out: &mut String, minute: &MinuteStats) -> bool {
    let tags = [
        ("site", minute.site.as_str()),
        ("sensor", minute.sensor.as_str()),
        ("type", minute.sensor_type.as_str()),
    ];
    if tags.iter().any(|(_, tag)| check_tag_value(tag).is_err()) {
        return false;
    }
    push_line(
        out,
        ROLLUP_MEASUREMENT,
        &tags,
        &[
            (
                "count",
                Field::Integer(i64::try_from(minute.count).unwrap_or(i64::MAX)),
            ),
            ("sum", Field::Float(minute.sum)),
            ("mean", Field::Float(minute.mean)),
            ("min", Field::Float(minute.min)),
            ("max", Field::Float(minute.max)),
            ("last", Field::Float(minute.last)),
        ],
        minute.start.as_millis(),
    );
    true
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(millis: i64) -> EpochMillis {
        EpochMillis::from_millis(millis).unwrap()
    }

    #[test]
    fn marks_of_one_process_never_share_a_timestamp() {
        let first = unique_stamp(1_000);
        let second = unique_stamp(1_000);
        assert!(second > first);
        assert!(unique_stamp(i64::MAX / 2) == i64::MAX / 2);
    }

    #[test]
    fn minutes_round_both_ways() {
        assert_eq!(floor_minute(at(119_999)), at(60_000));
        assert_eq!(ceil_minute(at(60_001)), at(120_000));
        assert_eq!(ceil_minute(at(120_000)), at(120_000));
    }

    #[test]
    fn a_minute_whose_tags_have_no_line_protocol_form_is_left_out() {
        let mut out = String::new();
        let minute = MinuteStats {
            site: "b\n1".into(),
            sensor: "t_1".into(),
            sensor_type: "temperature".into(),
            start: at(60_000),
            count: 1,
            sum: 1e300,
            mean: 1e300,
            min: 1e300,
            max: 1e300,
            last: 1e300,
        };
        assert!(!encode_minute(&mut out, &minute));
        assert!(out.is_empty());
        let minute = MinuteStats {
            site: "b1".into(),
            ..minute
        };
        assert!(encode_minute(&mut out, &minute));
        assert!(out.contains("sum=1e+300,"), "{out}");
    }

    #[test]
    fn a_minute_is_one_line_with_an_integer_count() {
        let mut out = String::new();
        encode_minute(
            &mut out,
            &MinuteStats {
                site: "b 1".into(),
                sensor: "t_1".into(),
                sensor_type: "temperature".into(),
                start: at(60_000),
                count: 4,
                sum: 10.0,
                mean: 2.5,
                min: 1.0,
                max: 4.0,
                last: 2.5,
            },
        );
        assert_eq!(
            out,
            "readings_1m,site=b\\ 1,sensor=t_1,type=temperature count=4i,sum=10.0,mean=2.5,min=1.0,max=4.0,last=2.5 60000\n"
        );
    }
}
