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

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::time::Duration;

use reqwest::Method;
use serde::Deserialize;
use stoker_domain::{EpochMillis, SensorKey, SiteSlug};

use crate::client::Series;
use crate::influxql::{identifier, literal};
use crate::line::{MEASUREMENT, escape_tag_value};
use crate::{Aggregate, Error, Flavor, Influx, Result};

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

/// What [`Influx::setup`] found and made.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SetupReport {
    /// The database (1.x) or bucket (2.x/3.x).
    pub database: String,
    /// The raw readings' retention policy (1.x) or bucket.
    pub raw_policy: String,
    /// How long raw readings are kept; `None`: forever.
    pub raw_retention: Option<Duration>,
    /// The rollup's retention policy (1.x) or bucket.
    pub rollup_policy: String,
    /// How long the rollup is kept; `None`: forever.
    pub rollup_retention: Option<Duration>,
}

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

/// InfluxDB 1.x's smallest retention.
const SHORTEST_RETENTION: Duration = Duration::from_secs(3_600);

impl Influx {
    /// Prepares the database for Stoker, idempotently: creates it (1.x),
    /// sets the raw readings' retention and creates or updates the
    /// rollup's retention policy (1.x) or bucket and DBRP mapping
    /// (2.x/3.x).
    pub async fn setup(&self) -> Result<SetupReport> {
        let raw = retention(self.options.raw_retention, "INFLUX_RAW_RETENTION")?;
        let rollup = retention(self.options.rollup_retention, "INFLUX_ROLLUP_RETENTION")?;
        match self.flavor {
            Flavor::V1 => self.setup_v1(raw, rollup).await,
            Flavor::V2 => self.setup_v2(raw, rollup).await,
        }
    }

    async fn setup_v1(
        &self,
        raw: Option<Duration>,
        rollup: Option<Duration>,
    ) -> Result<SetupReport> {
        self.ensure_database().await?;
        let database = identifier(&self.options.bucket);
        let policies = self
            .query(&format!("SHOW RETENTION POLICIES ON {database}"))
            .await?;
        let mut default_policy = None;
        let mut rollup_exists = false;
        for series in &policies {
            let name_at = series.columns.iter().position(|column| column == "name");
            let default_at = series.columns.iter().position(|column| column == "default");
            for row in &series.values {
                let name = name_at
                    .and_then(|at| row.get(at))
                    .and_then(serde_json::Value::as_str);
                if name == Some(ROLLUP_POLICY) {
                    rollup_exists = true;
                }
                let is_default = default_at
                    .and_then(|at| row.get(at))
                    .and_then(serde_json::Value::as_bool)
                    == Some(true);
                if is_default {
                    default_policy = name.map(str::to_owned);
                }
            }
        }
        let raw_policy = default_policy.unwrap_or_else(|| "autogen".to_owned());
        let raw_exists = policies.iter().any(|series| !series.values.is_empty());
        self.run_statement(&format!(
            "{} DEFAULT",
            policy_statement(&raw_policy, &database, raw, raw_exists)
        ))
        .await?;
        self.run_statement(&policy_statement(
            ROLLUP_POLICY,
            &database,
            rollup,
            rollup_exists,
        ))
        .await?;
        Ok(SetupReport {
            database: self.options.bucket.clone(),
            raw_policy,
            raw_retention: raw,
            rollup_policy: ROLLUP_POLICY.to_owned(),
            rollup_retention: rollup,
        })
    }

    async fn setup_v2(
        &self,
        raw: Option<Duration>,
        rollup: Option<Duration>,
    ) -> Result<SetupReport> {
        let Some(bucket) = self.find_bucket(&self.options.bucket).await? else {
            return Err(Error::Rejected {
                status: 404,
                message: format!(
                    "bucket {:?} does not exist in org {:?}: create it (INFLUX_BUCKET)",
                    self.options.bucket, self.options.org
                ),
            });
        };
        self.set_bucket_retention(&bucket.id, raw).await?;
        let rollup_name = self.rollup_bucket();
        let rollup_bucket = match self.find_bucket(&rollup_name).await? {
            Some(found) => {
                self.set_bucket_retention(&found.id, rollup).await?;
                found
            }
            None => {
                let body = serde_json::json!({
                    "orgID": bucket.org_id,
                    "name": rollup_name,
                    "retentionRules": retention_rules(rollup),
                });
                let request = self.request(Method::POST, "api/v2/buckets").json(&body);
                let created = self.send(request).await?;
                serde_json::from_str(&created).map_err(|error| Error::Decode(error.to_string()))?
            }
        };
        let request = self.request(Method::GET, "api/v2/dbrps").query(&[
            ("orgID", bucket.org_id.as_str()),
            ("db", self.options.bucket.as_str()),
            ("rp", ROLLUP_POLICY),
        ]);
        let mappings: Dbrps = serde_json::from_str(&self.send(request).await?)
            .map_err(|error| Error::Decode(error.to_string()))?;
        if mappings.content.is_empty() {
            let body = serde_json::json!({
                "orgID": bucket.org_id,
                "bucketID": rollup_bucket.id,
                "database": self.options.bucket,
                "retention_policy": ROLLUP_POLICY,
                "default": false,
            });
            let request = self.request(Method::POST, "api/v2/dbrps").json(&body);
            self.send(request).await?;
        }
        Ok(SetupReport {
            database: self.options.bucket.clone(),
            raw_policy: self.options.bucket.clone(),
            raw_retention: raw,
            rollup_policy: rollup_name,
            rollup_retention: rollup,
        })
    }

    async fn find_bucket(&self, name: &str) -> Result<Option<Bucket>> {
        let request = self
            .request(Method::GET, "api/v2/buckets")
            .query(&[("name", name), ("org", self.options.org.as_str())]);
        let body = self.send(request).await?;
        let found: BucketList =
            serde_json::from_str(&body).map_err(|error| Error::Decode(error.to_string()))?;
        Ok(found.buckets.into_iter().next())
    }

    async fn set_bucket_retention(&self, id: &str, keep: Option<Duration>) -> Result<()> {
        let body = serde_json::json!({ "retentionRules": retention_rules(keep) });
        let request = self
            .request(Method::PATCH, &format!("api/v2/buckets/{id}"))
            .json(&body);
        self.send(request).await.map(drop)
    }

    /// The 2.x/3.x bucket that holds the rollup (`write_lines` writes
    /// there for policy [`ROLLUP_POLICY`]).
    fn rollup_bucket(&self) -> String {
        format!("{}_{ROLLUP_POLICY}", self.options.bucket)
    }

    /// How long raw readings are kept, as configured; `None`: forever.
    pub fn raw_retention(&self) -> Option<Duration> {
        Some(self.options.raw_retention).filter(|keep| !keep.is_zero())
    }

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
        self.write_rollup(format!(
            "{PROGRESS_MEASUREMENT} through={millis}i {millis}\n"
        ))
        .await
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
        self.write_rollup(format!(
            "{MARKS_MEASUREMENT},writer={} from={}i,to={}i {stamp}\n",
            writer_tag(),
            from.as_millis(),
            to.as_millis()
        ))
        .await
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

    /// One sensor's history like [`Influx::history`], with the minutes
    /// the rollup holds (those before `rolled_through`) read from the
    /// rollup and only the rest from the raw readings. `every` must be a
    /// whole number of minutes, or everything is read raw.
    ///
    /// The mean of a bucket is then the sum of its minutes' sums over the
    /// sum of their counts: the raw mean up to float rounding.
    #[allow(clippy::too_many_arguments)]
    pub async fn history_with_rollup(
        &self,
        site: &SiteSlug,
        sensor: &SensorKey,
        start: EpochMillis,
        end: EpochMillis,
        every: Duration,
        aggregate: Aggregate,
        rolled_through: EpochMillis,
    ) -> Result<Vec<(EpochMillis, f64)>> {
        let every_ms = i64::try_from(every.as_millis()).unwrap_or(i64::MAX);
        let rolled_start = ceil_minute(start);
        let rolled_end = floor_minute(end).min(rolled_through);
        if every_ms % MINUTE_MS != 0 || rolled_end <= rolled_start {
            return self
                .history(site, sensor, start, end, every, aggregate)
                .await;
        }
        // Oldest part first, so that `last` takes the newest part's value.
        let mut statements = Vec::with_capacity(3);
        if start < rolled_start {
            statements.push(partial_query(
                site,
                sensor,
                (start, rolled_start),
                every_ms,
                aggregate,
                Part::Raw,
            ));
        }
        let minutes = (rolled_end.as_millis() - rolled_start.as_millis()) / MINUTE_MS;
        statements.push(partial_query(
            site,
            sensor,
            (rolled_start, rolled_end),
            every_ms,
            aggregate,
            if minutes <= PLAIN_MINUTES {
                Part::RollupMinutes
            } else {
                Part::Rollup
            },
        ));
        if rolled_end < end {
            statements.push(partial_query(
                site,
                sensor,
                (rolled_end, end),
                every_ms,
                aggregate,
                Part::Raw,
            ));
        }
        let series = self.query(&statements.join("; ")).await?;
        Ok(merge_partials(&series, aggregate, every_ms))
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

/// InfluxDB's retention for a configured duration: `None` is forever.
fn retention(keep: Duration, variable: &str) -> Result<Option<Duration>> {
    if keep.is_zero() {
        return Ok(None);
    }
    if keep < SHORTEST_RETENTION {
        return Err(Error::Rejected {
            status: 400,
            message: format!(
                "{variable} is {keep:?}: InfluxDB keeps data at least 1 hour (or 0s for forever)"
            ),
        });
    }
    Ok(Some(keep))
}

/// `CREATE` (or, when it `exists`, `ALTER`) `RETENTION POLICY` keeping
/// data `keep`, with InfluxDB's own default shard durations (1 h under 2
/// days, 1 day up to 6 months, 7 days beyond). `database` is quoted.
fn policy_statement(name: &str, database: &str, keep: Option<Duration>, exists: bool) -> String {
    let shard = match keep.map(|keep| keep.as_secs()) {
        Some(secs) if secs < 2 * 86_400 => 3_600,
        Some(secs) if secs <= 180 * 86_400 => 86_400,
        _ => 7 * 86_400,
    };
    let duration = keep.map_or_else(|| "INF".to_owned(), |keep| format!("{}s", keep.as_secs()));
    let (verb, replication) = if exists {
        ("ALTER", "")
    } else {
        ("CREATE", " REPLICATION 1")
    };
    format!(
        "{verb} RETENTION POLICY {} ON {database} DURATION {duration}{replication} SHARD DURATION {shard}s",
        identifier(name)
    )
}

fn retention_rules(keep: Option<Duration>) -> serde_json::Value {
    match keep {
        None => serde_json::json!([]),
        Some(keep) => serde_json::json!([{ "type": "expire", "everySeconds": keep.as_secs() }]),
    }
}

/// One rollup line: `readings_1m,site=…,sensor=…,type=… count=…i,sum=…,mean=…,min=…,max=…,last=… {ms}`.
/// False, writing nothing, when a tag value read back from InfluxDB has no
/// correct line-protocol form (`crate::line::check_tag_value`: written by
/// someone else than Stoker, whose keys never need it).
fn encode_minute(out: &mut String, minute: &MinuteStats) -> bool {
    let tags = [
        minute.site.as_str(),
        minute.sensor.as_str(),
        minute.sensor_type.as_str(),
    ];
    if tags
        .iter()
        .any(|tag| crate::line::check_tag_value(tag).is_err())
    {
        return false;
    }
    out.push_str(ROLLUP_MEASUREMENT);
    for (key, tag) in [
        ("site", minute.site.as_str()),
        ("sensor", minute.sensor.as_str()),
        ("type", minute.sensor_type.as_str()),
    ] {
        if tag.is_empty() {
            continue;
        }
        out.push(',');
        out.push_str(key);
        out.push('=');
        escape_tag_value(out, tag);
    }
    let _ = write!(out, " count={}i", minute.count);
    for (name, value) in [
        ("sum", minute.sum),
        ("mean", minute.mean),
        ("min", minute.min),
        ("max", minute.max),
        ("last", minute.last),
    ] {
        if value.is_finite() {
            out.push(',');
            out.push_str(name);
            out.push('=');
            crate::line::push_float(out, value);
        }
    }
    let _ = writeln!(out, " {}", minute.start.as_millis());
    true
}

/// One part of a history read: what its buckets contribute to
/// `aggregate`, named `sum`/`count` (mean), `min`, `max` or `last`.
fn partial_query(
    site: &SiteSlug,
    sensor: &SensorKey,
    (start, end): (EpochMillis, EpochMillis),
    every_ms: i64,
    aggregate: Aggregate,
    part: Part,
) -> String {
    let selected = match (aggregate, part) {
        (Aggregate::Mean, Part::Raw) => "sum(\"value\") AS \"sum\", count(\"value\") AS \"count\"",
        (Aggregate::Mean, Part::Rollup) => "sum(\"sum\") AS \"sum\", sum(\"count\") AS \"count\"",
        (Aggregate::Mean, Part::RollupMinutes) => "\"sum\", \"count\"",
        (Aggregate::Min, Part::Raw) => "min(\"value\") AS \"min\"",
        (Aggregate::Min, Part::Rollup) => "min(\"min\") AS \"min\"",
        (Aggregate::Min, Part::RollupMinutes) => "\"min\"",
        (Aggregate::Max, Part::Raw) => "max(\"value\") AS \"max\"",
        (Aggregate::Max, Part::Rollup) => "max(\"max\") AS \"max\"",
        (Aggregate::Max, Part::RollupMinutes) => "\"max\"",
        (Aggregate::Last, Part::Raw) => "last(\"value\") AS \"last\"",
        (Aggregate::Last, Part::Rollup) => "last(\"last\") AS \"last\"",
        (Aggregate::Last, Part::RollupMinutes) => "\"last\"",
    };
    let from = match part {
        Part::Raw => identifier(MEASUREMENT),
        Part::Rollup | Part::RollupMinutes => format!(
            "{}.{}",
            identifier(ROLLUP_POLICY),
            identifier(ROLLUP_MEASUREMENT)
        ),
    };
    let group = match part {
        Part::RollupMinutes => String::new(),
        Part::Raw | Part::Rollup => format!(" GROUP BY time({every_ms}ms) fill(none)"),
    };
    format!(
        "SELECT {selected} FROM {from} WHERE \"site\" = {} AND \"sensor\" = {} \
         AND time >= {}ms AND time < {}ms{group}",
        literal(site.as_str()),
        literal(sensor.as_str()),
        start.as_millis(),
        end.as_millis(),
    )
}

/// Where one part of a history read comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Part {
    /// Raw readings, bucketed by InfluxDB.
    Raw,
    /// Rollup minutes, bucketed by InfluxDB (long ranges).
    Rollup,
    /// Rollup minutes as they are, bucketed here: InfluxDB 1.x spends
    /// about as much per `GROUP BY time` bucket and function as per
    /// point read, so up to [`PLAIN_MINUTES`] rows are cheaper fetched.
    RollupMinutes,
}

/// The most rollup minutes a history read fetches row by row.
const PLAIN_MINUTES: i64 = 7 * 1_440;

/// Combines the parts' buckets (oldest part first) into one value per
/// bucket.
fn merge_partials(
    series: &[Series],
    aggregate: Aggregate,
    every_ms: i64,
) -> Vec<(EpochMillis, f64)> {
    #[derive(Default)]
    struct Bucket {
        sum: f64,
        count: f64,
        value: Option<f64>,
    }
    let mut buckets: BTreeMap<i64, Bucket> = BTreeMap::new();
    for one in series {
        let at = |name: &str| one.columns.iter().position(|column| column == name);
        let (time, first, second) = match aggregate {
            Aggregate::Mean => (at("time"), at("sum"), at("count")),
            Aggregate::Min => (at("time"), at("min"), None),
            Aggregate::Max => (at("time"), at("max"), None),
            Aggregate::Last => (at("time"), at("last"), None),
        };
        let number = |row: &[serde_json::Value], index: Option<usize>| {
            index
                .and_then(|index| row.get(index))
                .and_then(serde_json::Value::as_f64)
        };
        for row in &one.values {
            // Rows of rollup minutes fall into their bucket here; those
            // InfluxDB bucketed start one already.
            let Some(start) = time
                .and_then(|index| row.get(index))
                .and_then(serde_json::Value::as_i64)
                .map(|at| at - at.rem_euclid(every_ms.max(1)))
            else {
                continue;
            };
            let Some(value) = number(row, first) else {
                continue;
            };
            let bucket = buckets.entry(start).or_default();
            match aggregate {
                Aggregate::Mean => {
                    let Some(count) = number(row, second) else {
                        continue;
                    };
                    bucket.sum += value;
                    bucket.count += count;
                    bucket.value = Some(bucket.sum / bucket.count);
                }
                Aggregate::Min => {
                    bucket.value = Some(bucket.value.map_or(value, |old| old.min(value)));
                }
                Aggregate::Max => {
                    bucket.value = Some(bucket.value.map_or(value, |old| old.max(value)));
                }
                Aggregate::Last => bucket.value = Some(value),
            }
        }
    }
    buckets
        .into_iter()
        .filter_map(|(start, bucket)| Some((EpochMillis::from_millis(start).ok()?, bucket.value?)))
        .collect()
}

#[derive(Debug, Deserialize)]
struct BucketList {
    #[serde(default)]
    buckets: Vec<Bucket>,
}

#[derive(Debug, Deserialize)]
struct Bucket {
    id: String,
    #[serde(rename = "orgID")]
    org_id: String,
}

#[derive(Debug, Deserialize)]
struct Dbrps {
    #[serde(default)]
    content: Vec<serde_json::Value>,
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

    #[test]
    fn policies_get_influxdbs_own_shard_durations() {
        assert_eq!(
            policy_statement(
                "autogen",
                "\"db\"",
                Some(Duration::from_secs(30 * 86_400)),
                true
            ),
            "ALTER RETENTION POLICY \"autogen\" ON \"db\" DURATION 2592000s SHARD DURATION 86400s"
        );
        assert_eq!(
            policy_statement("rollup", "\"db\"", None, false),
            "CREATE RETENTION POLICY \"rollup\" ON \"db\" DURATION INF REPLICATION 1 SHARD DURATION 604800s"
        );
        assert!(retention(Duration::from_secs(60), "X").is_err());
        assert_eq!(retention(Duration::ZERO, "X").unwrap(), None);
    }

    #[test]
    fn parts_merge_into_one_value_per_bucket() {
        let part = |columns: &[&str], values: Vec<Vec<serde_json::Value>>| Series {
            tags: BTreeMap::new(),
            columns: columns.iter().map(|name| (*name).to_owned()).collect(),
            values,
        };
        let head = part(
            &["time", "sum", "count"],
            vec![vec![0.into(), 3.0.into(), 1.into()]],
        );
        let rolled = part(
            &["time", "sum", "count"],
            vec![
                vec![0.into(), 9.0.into(), 3.into()],
                vec![120_000.into(), 4.0.into(), 2.into()],
            ],
        );
        assert_eq!(
            merge_partials(&[head, rolled], Aggregate::Mean, 60_000),
            vec![(at(0), 3.0), (at(120_000), 2.0)]
        );
        let older = part(&["time", "last"], vec![vec![0.into(), 1.0.into()]]);
        let newer = part(&["time", "last"], vec![vec![0.into(), 7.0.into()]]);
        assert_eq!(
            merge_partials(&[older, newer], Aggregate::Last, 60_000),
            vec![(at(0), 7.0)]
        );
    }
}
