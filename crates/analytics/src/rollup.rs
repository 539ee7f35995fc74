//! The rollup job: keeps `readings_1m` (one point per sensor and minute,
//! see `stoker_timeseries::rollup`) up to date.
//!
//! Every minute, `ROLLUP_GRACE` after the minute ends, the holder of its
//! own Postgres advisory lock ([`LOCK_KEY`]) rolls up every minute since
//! its progress (recorded in InfluxDB as `rollup_progress`), rolls the
//! trailing `ROLLUP_LATE` again, and rolls again the older minutes that
//! writers marked as having received late readings (`rollup_marks`: a
//! gateway catching up, the ingestion spool replaying after an outage).
//! Rolling a minute again overwrites its points, so running twice is
//! harmless.
//!
//! With no progress recorded (a new database, or a rollup added to an
//! existing one), the first pass rolls up from the oldest raw reading,
//! logging its progress.

use std::time::Duration;

use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;
use stoker_domain::{EpochMillis, parse_duration};
use stoker_postgres::{Leadership, PostgresOptions};
use stoker_timeseries::Influx;
use stoker_timeseries::rollup::{MINUTE_MS, floor_minute};
use tokio_util::sync::CancellationToken;

use crate::Result;

/// The rollup job's advisory lock, apart from the evaluation's: either
/// may lead in a different process.
pub const LOCK_KEY: i64 = 0x5354_4f4b_4552_0002;

/// Minutes rolled up per InfluxDB query (10,000 sensors: 100,000 rows).
const CHUNK_MINUTES: i64 = 10;

/// The shortest trailing re-roll: readings up to `LATE_AFTER_MS` late are
/// not marked by their writers, so each pass must roll their minutes
/// again, whatever `ROLLUP_LATE` says.
const SHORTEST_LATE_MS: i64 = 5 * MINUTE_MS;

/// Marks are read again this far before the previous read: a mark is
/// stamped before it is stored, and writers' clocks may differ a little.
const MARKS_OVERLAP_MS: i64 = 2 * MINUTE_MS;

/// How the rollup follows the readings.
#[derive(Debug, Clone, clap::Args)]
pub struct RollupOptions {
    /// How far back every pass rolls up again, at least 5 minutes (older
    /// minutes are rolled again when their late readings' writers mark
    /// them, and by `stoker influx rollup`).
    #[arg(
        id = "rollup_late",
        long = "rollup-late",
        env = "ROLLUP_LATE",
        default_value = "10m",
        value_parser = parse_duration
    )]
    pub late: Duration,
    /// How long after a minute ends it is first rolled up.
    #[arg(
        id = "rollup_grace",
        long = "rollup-grace",
        env = "ROLLUP_GRACE",
        default_value = "10s",
        value_parser = parse_duration
    )]
    pub grace: Duration,
}

impl Default for RollupOptions {
    fn default() -> Self {
        Self {
            late: Duration::from_secs(600),
            grace: Duration::from_secs(10),
        }
    }
}

/// Prometheus metrics of the rollup job.
#[derive(Debug, Clone, Default)]
pub struct RollupMetrics {
    passes: Counter,
    errors: Counter,
    points: Counter,
    lag: Gauge,
    leader: Gauge,
}

impl RollupMetrics {
    /// Adds the job's metrics to a registry.
    pub fn register(&self, registry: &mut Registry) {
        registry.register(
            "stoker_rollup_passes",
            "Rollup passes made by this process while it led the rollup.",
            self.passes.clone(),
        );
        registry.register(
            "stoker_rollup_errors",
            "Rollup passes that failed (logged); the next pass retries.",
            self.errors.clone(),
        );
        registry.register(
            "stoker_rollup_points",
            "readings_1m points written (one per sensor and minute, re-rolls included).",
            self.points.clone(),
        );
        registry.register(
            "stoker_rollup_lag_seconds",
            "Seconds between now and the end of the newest minute rolled up.",
            self.lag.clone(),
        );
        registry.register(
            "stoker_rollup_leader",
            "1 while this process leads the rollup job.",
            self.leader.clone(),
        );
    }
}

/// What one pass did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Pass {
    /// The first minute rolled up.
    pub from: Option<EpochMillis>,
    /// The end of the last minute rolled up (the new progress).
    pub through: Option<EpochMillis>,
    /// Points written.
    pub points: u64,
    /// Raw readings they sum up.
    pub readings: u64,
    /// Points rewritten for late readings marked before the window.
    pub late_points: u64,
}

/// The job's state between passes.
#[derive(Debug)]
pub struct Roller {
    influx: Influx,
    options: RollupOptions,
    metrics: RollupMetrics,
    progress: Option<EpochMillis>,
    /// When late-reading marks were last read (the marks' clock).
    marks_read: Option<EpochMillis>,
}

impl Roller {
    /// A roller that learns its progress from InfluxDB on its first pass.
    pub fn new(influx: Influx, options: RollupOptions, metrics: RollupMetrics) -> Self {
        Self {
            influx,
            options,
            metrics,
            progress: None,
            marks_read: None,
        }
    }

    /// Rolls up every whole minute that ended `ROLLUP_GRACE` before `now`
    /// and has not been rolled up, plus the trailing `ROLLUP_LATE` again.
    /// Stops between chunks when `stop` is cancelled.
    pub async fn pass(&mut self, now: EpochMillis, stop: &CancellationToken) -> Result<Pass> {
        let grace = millis(self.options.grace);
        let target = floor_minute(now.plus_millis(-grace));
        let (progress, backfill) = match self.progress {
            Some(progress) => (progress, false),
            None => match self.influx.rollup_progress().await? {
                Some(progress) => (progress, false),
                None => match self.influx.oldest_reading().await? {
                    Some(oldest) => (floor_minute(oldest), true),
                    None => (target, false),
                },
            },
        };
        let late = if backfill {
            0
        } else {
            millis(self.options.late).max(SHORTEST_LATE_MS)
        };
        let from = floor_minute(progress.min(target).plus_millis(-late));
        let mut pass = Pass::default();

        // Minutes before this pass's window that received late readings,
        // as their writers marked them.
        let marks_read = EpochMillis::now();
        if !backfill {
            let since = self
                .marks_read
                .unwrap_or(progress.plus_millis(-late))
                .plus_millis(-MARKS_OVERLAP_MS);
            let marks = self.influx.late_marks(since).await?;
            for (start, end) in late_minutes(&marks, from) {
                let mut chunk_start = start;
                while chunk_start < end && !stop.is_cancelled() {
                    let chunk_end = chunk_start.plus_millis(CHUNK_MINUTES * MINUTE_MS).min(end);
                    let report = self.influx.roll_up(chunk_start, chunk_end).await?;
                    pass.late_points += report.points;
                    self.metrics.points.inc_by(report.points);
                    chunk_start = chunk_end;
                }
                tracing::info!(from = %start, to = %end, "rolled up again minutes that received late readings");
            }
        }
        self.marks_read = Some(marks_read);

        let span = target.as_millis() - from.as_millis();
        let chunks = (span.max(0) + CHUNK_MINUTES * MINUTE_MS - 1) / (CHUNK_MINUTES * MINUTE_MS);
        let loud = span > 3_600_000;
        if loud {
            tracing::info!(
                from = %from,
                to = %target,
                hours = span / 3_600_000,
                "rolling up readings into readings_1m (backfill); progress is logged every hour of readings"
            );
        }
        let mut start = from;
        let mut done = 0_i64;
        while start < target {
            if stop.is_cancelled() {
                break;
            }
            let end = start.plus_millis(CHUNK_MINUTES * MINUTE_MS).min(target);
            let report = self.influx.roll_up(start, end).await?;
            pass.from.get_or_insert(start);
            pass.points += report.points;
            pass.readings += report.readings;
            self.metrics.points.inc_by(report.points);
            if self.progress.is_none_or(|old| end > old) {
                self.influx.set_rollup_progress(end).await?;
                self.progress = Some(end);
            }
            pass.through = Some(end);
            done += 1;
            if loud && done % (60 / CHUNK_MINUTES) == 0 {
                tracing::info!(
                    through = %end,
                    percent = done * 100 / chunks.max(1),
                    points = pass.points,
                    "rollup backfill progress"
                );
            }
            start = end;
        }
        if self.progress.is_none() {
            // Nothing to roll up yet: start from here next time.
            self.progress = Some(target);
        }
        if let Some(progress) = self.progress {
            self.metrics
                .lag
                .set((now.as_millis() - progress.as_millis()) / 1_000);
        }
        if loud {
            tracing::info!(
                points = pass.points,
                readings = pass.readings,
                "rollup backfill done"
            );
        }
        Ok(pass)
    }

    /// Forgets the progress, so the next pass reads it from InfluxDB
    /// (after another process may have led).
    pub fn forget(&mut self) {
        self.progress = None;
        self.marks_read = None;
    }
}

/// The whole minutes of the marked ranges that lie before `window`
/// (from there on the pass rolls everything anyway), merged, oldest first.
fn late_minutes(
    marks: &[(EpochMillis, EpochMillis)],
    window: EpochMillis,
) -> Vec<(EpochMillis, EpochMillis)> {
    let mut ranges: Vec<(i64, i64)> = marks
        .iter()
        .map(|(from, to)| {
            let start = floor_minute(*from).as_millis();
            let end = floor_minute(*to).as_millis() + MINUTE_MS;
            (start, end.min(window.as_millis()))
        })
        .filter(|(start, end)| start < end)
        .collect();
    ranges.sort_unstable();
    let mut merged: Vec<(i64, i64)> = Vec::with_capacity(ranges.len());
    for (start, end) in ranges {
        match merged.last_mut() {
            Some(last) if start <= last.1 => last.1 = last.1.max(end),
            _ => merged.push((start, end)),
        }
    }
    merged
        .into_iter()
        .filter_map(|(start, end)| {
            Some((
                EpochMillis::from_millis(start).ok()?,
                EpochMillis::from_millis(end).ok()?,
            ))
        })
        .collect()
}

/// One pass now with the default options, as the job's first pass on
/// this database would make it: a backfill where there is no rollup yet.
pub async fn pass_now(influx: &Influx) -> Result<Pass> {
    Roller::new(
        influx.clone(),
        RollupOptions::default(),
        RollupMetrics::default(),
    )
    .pass(EpochMillis::now(), &CancellationToken::new())
    .await
}

fn millis(duration: Duration) -> i64 {
    i64::try_from(duration.as_millis()).unwrap_or(i64::MAX / 4)
}

/// The job: a pass every minute, `ROLLUP_GRACE` after the minute ends,
/// while this process holds [`LOCK_KEY`]; until `shutdown`.
pub async fn run(
    influx: Influx,
    postgres: PostgresOptions,
    options: RollupOptions,
    metrics: RollupMetrics,
    shutdown: CancellationToken,
) {
    let grace = millis(options.grace);
    let mut roller = Roller::new(influx, options, metrics.clone());
    let mut leadership: Option<Leadership> = None;
    tracing::info!("rollup job started (readings_1m)");
    loop {
        let now = EpochMillis::now().as_millis();
        let next = now - (now - grace).rem_euclid(MINUTE_MS) + MINUTE_MS;
        let wait = Duration::from_millis(u64::try_from(next - now).unwrap_or(0));
        // The first pass runs at once: a new leader catches up before the
        // next minute.
        if leadership.is_some() {
            tokio::select! {
                () = shutdown.cancelled() => break,
                () = tokio::time::sleep(wait) => {}
            }
        }
        if let Some(held) = &leadership
            && !held.holds().await
        {
            tracing::warn!("lost the rollup leadership (its Postgres connection ended)");
            leadership = None;
            metrics.leader.set(0);
            roller.forget();
        }
        if leadership.is_none() {
            match stoker_postgres::try_lead(&postgres, LOCK_KEY).await {
                Ok(Some(held)) => {
                    tracing::info!("leading the rollup job");
                    leadership = Some(held);
                    metrics.leader.set(1);
                }
                Ok(None) => {}
                Err(error) => tracing::warn!(%error, "cannot check the rollup leadership"),
            }
        }
        if leadership.is_none() {
            tokio::select! {
                () = shutdown.cancelled() => break,
                () = tokio::time::sleep(wait) => {}
            }
            continue;
        }
        match roller.pass(EpochMillis::now(), &shutdown).await {
            Ok(pass) => {
                metrics.passes.inc();
                tracing::debug!(points = pass.points, through = ?pass.through, "rollup pass");
            }
            Err(error) => {
                metrics.errors.inc();
                roller.forget();
                tracing::warn!(%error, "rollup pass failed; the next pass retries");
            }
        }
        if shutdown.is_cancelled() {
            break;
        }
    }
    metrics.leader.set(0);
    tracing::info!("rollup job stopped");
}
