//! Stoker's alarm KPI benchmark: `GET /alarm-kpis`'s measurement
//! (`kpi::measure`) over a year of alarm history, against a plain count of
//! the same rows in the same run.
//!
//! See `benches/README.md` for what it measures and how; `--help` for the
//! options.

use std::fmt::Write as _;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Instant;

use anyhow::{Context, anyhow};
use chrono::{DateTime, Duration, Utc};
use clap::Parser;
use serde_json::{Value, json};
use stoker_analytics::kpi::{self, KpiRange, KpiScope};
use stoker_benches::report::{Bound, Check, Figures, Report, RunRecord};
use stoker_benches::{harness, progress, thousands};
use stoker_domain::SiteSlug;
use stoker_postgres::Pool;
use stoker_testkit::TestPostgres;

/// The target: a year of alarm history measured in under 200 ms.
const TARGET_SECONDS: f64 = 0.2;

/// Stoker's alarm KPI benchmark (release build; one command, one report).
///
/// Loads `--alarms` alerts spread over a year (80% scattered over
/// `--sites` sites, 20 rules and 100 sensors each; 10% in floods of 100
/// alarms within 8 minutes; 10% in chattering episodes of 20 activations
/// 15 s apart; a third acknowledged) into a fresh Postgres database with
/// one SQL statement, vacuums and analyzes it as autovacuum would have over
/// a year, then measures, `--runs` times each, in this process: a plain
/// `SELECT count(*)` of the year's rows (baseline), and `kpi::measure` (what
/// `GET /api/v1/alarm-kpis` runs: two queries at once and the bad
/// actors' names) over the year for every site, over the year for one
/// site and over the last day for every site.
///
/// Exit status: 0 when every target passes, 1 when one fails, 2 when the
/// benchmark could not complete.
#[derive(Debug, Parser)]
#[command(version, about, long_about)]
struct Args {
    /// Alerts loaded (one activation each).
    #[arg(long, default_value_t = 1_000_000)]
    alarms: u32,
    /// Sites they are spread over.
    #[arg(long, default_value_t = 20)]
    sites: u32,
    /// Measurements of each query (the first of each is not counted).
    #[arg(long, default_value_t = 7)]
    runs: usize,
    /// Also write the results as JSON to this file.
    #[arg(long, value_name = "FILE")]
    json: Option<PathBuf>,
}

fn main() -> ExitCode {
    let args = Args::parse();
    harness::main(
        "alarm-kpis",
        None,
        args.json.as_deref(),
        || Report {
            record: RunRecord::gather("benches/alarm-kpis", &["POSTGRES_"], &[]),
            figures: Results::default(),
        },
        async |report| run(&args, report).await,
    )
}

/// What the run measured: seconds of each counted run, by measurement.
#[derive(Debug, Default)]
struct Results {
    alarms: u64,
    load_seconds: f64,
    count: Vec<f64>,
    year: Vec<f64>,
    year_one_site: Vec<f64>,
    day: Vec<f64>,
    /// The year's figures, as a check that the load holds what they count.
    figures: Option<Value>,
}

fn median(values: &[f64]) -> f64 {
    let mut sorted = values.to_vec();
    sorted.sort_by(f64::total_cmp);
    sorted.get(sorted.len() / 2).copied().unwrap_or(f64::NAN)
}

fn max(values: &[f64]) -> f64 {
    values.iter().copied().fold(f64::NAN, f64::max)
}

impl Figures for Results {
    const NOUN: &'static str = "alarm KPIs";
    const TARGET_WIDTHS: [usize; 3] = [44, 12, 10];

    fn write_body(&self, out: &mut String, record: &RunRecord) {
        record.write_settings(
            out,
            "kpi::measure in this process (release), Postgres of scripts/dev-up",
        );
        let _ = writeln!(
            out,
            "  load      {} alerts over a year, loaded, vacuumed and analyzed in {:.1} s",
            thousands(self.alarms),
            self.load_seconds
        );
        let baseline = median(&self.count);
        for (name, runs) in [
            ("baseline: SELECT count(*) of the year", &self.count),
            ("alarm KPIs, a year, every site", &self.year),
            ("alarm KPIs, a year, one site", &self.year_one_site),
            ("alarm KPIs, the last day, every site", &self.day),
        ] {
            if runs.is_empty() {
                continue;
            }
            let _ = writeln!(
                out,
                "  {name:<40} median {:>7.1} ms, max {:>7.1} ms ({} runs), {:.2} × the count",
                median(runs) * 1000.0,
                max(runs) * 1000.0,
                runs.len(),
                median(runs) / baseline
            );
        }
        if let Some(figures) = &self.figures {
            let _ = writeln!(out, "  the year's figures: {figures}");
        }
    }

    fn checks(&self) -> Vec<Check> {
        if self.year.is_empty() {
            return Vec::new();
        }
        let year = median(&self.year);
        vec![Check::new(
            "alarm KPIs over a year, every site (median)",
            year,
            Bound::Below,
            TARGET_SECONDS,
            format!("{:.0} ms", year * 1000.0),
            format!("< {:.0} ms", TARGET_SECONDS * 1000.0),
        )]
    }

    fn json(&self) -> Value {
        json!({
            "alarms": self.alarms,
            "load_seconds": self.load_seconds,
            "count_seconds": self.count,
            "year_seconds": self.year,
            "year_one_site_seconds": self.year_one_site,
            "day_seconds": self.day,
            "figures": self.figures,
        })
    }
}

/// A year of alarms in one statement: background, floods, chattering.
const LOAD: &str = "
INSERT INTO analytics.alerts (id, rule_id, rule_name, kind, severity, site, sensor, state,
    opened_at, message, acknowledged_at, acknowledged_by, resolved_at, resolved_by, active)
SELECT gen_random_uuid(),
       ('00000000-0000-0000-0000-' || lpad(to_hex(rule), 12, '0'))::uuid,
       'rule ' || rule, 'threshold', 'warning',
       'site-' || lpad(site::text, 3, '0'), sensor,
       'closed', at, 'bench',
       CASE WHEN g % 3 = 0 THEN at + (5 + g % 900) * interval '1 second' END,
       CASE WHEN g % 3 = 0 THEN 'operator' END,
       at + (10 + g % 7200) * interval '1 second', 'analytics', false
FROM (
    SELECT g,
           CASE g % 10
               WHEN 8 THEN (g / 1000) % $3
               WHEN 9 THEN (g / 200) % $3
               ELSE (g * 40503) % $3
           END AS site,
           CASE g % 10 WHEN 8 THEN 20 + (g / 1000) % 5 WHEN 9 THEN 30 ELSE (g * 7919) % 20 END AS rule,
           CASE g % 10
               WHEN 8 THEN 'sensor_' || (g % 1000) / 10
               WHEN 9 THEN 'valve_' || (g / 200) % 50
               ELSE 'sensor_' || (g * 104729) % 100
           END AS sensor,
           $1::timestamptz + CASE g % 10
               WHEN 8 THEN ((g / 1000) * 2654435761 % 31536000000) * interval '1 millisecond'
                           + ((g % 1000) / 10) * interval '5 seconds'
               WHEN 9 THEN ((g / 200) * 2246822519 % 31536000000) * interval '1 millisecond'
                           + ((g % 200) / 10) * interval '15 seconds'
               ELSE (g * 3266489917 % 31536000000) * interval '1 millisecond'
           END AS at
    FROM generate_series(1::bigint, $2::bigint) g) s";

/// The trail of each loaded alarm, as the store writes it: `fired`, its
/// acknowledgement if any, and its clearing (`closed` when acknowledged
/// before, else `cleared`); the KPIs count activations from it. Every
/// loaded alarm is closed (one not closed per rule and sensor at most).
const TRAILS: &str = "
INSERT INTO analytics.alert_events (alert_id, transition, at, actor, detail)
SELECT id, 'fired', opened_at, 'analytics', 'bench' FROM analytics.alerts
UNION ALL
SELECT id, 'acknowledged', acknowledged_at, acknowledged_by, 'bench'
FROM analytics.alerts WHERE acknowledged_at IS NOT NULL
UNION ALL
SELECT id,
       CASE WHEN acknowledged_at IS NOT NULL AND acknowledged_at < resolved_at
            THEN 'closed' ELSE 'cleared' END,
       resolved_at, 'analytics', 'bench'
FROM analytics.alerts";

/// Seconds of `runs` runs of `work`, the first not counted.
async fn timed<T>(
    runs: usize,
    mut work: impl AsyncFnMut() -> anyhow::Result<T>,
) -> anyhow::Result<(Vec<f64>, T)> {
    let mut seconds = Vec::with_capacity(runs);
    let mut last = work().await?;
    for _ in 0..runs {
        let started = Instant::now();
        last = work().await?;
        seconds.push(started.elapsed().as_secs_f64());
    }
    Ok((seconds, last))
}

async fn count(pool: &Pool, range: KpiRange) -> anyhow::Result<i64> {
    let client = pool.get().await?;
    Ok(client
        .query_one(
            "SELECT count(*) FROM analytics.alerts WHERE opened_at >= $1 AND opened_at < $2",
            &[&range.start, &range.end],
        )
        .await?
        .try_get(0)?)
}

async fn run(args: &Args, report: &mut Report<Results>) -> anyhow::Result<()> {
    if args.alarms == 0 || args.sites == 0 || args.runs == 0 {
        return Err(anyhow!("--alarms, --sites and --runs must be positive"));
    }
    progress!("setup: Postgres database");
    let postgres = TestPostgres::create().await;
    let pool = postgres.migrated_pool().await;
    stoker_analytics::migrate(&pool).await?;
    let end: DateTime<Utc> = Utc::now();
    let year = KpiRange {
        start: end - Duration::days(365),
        end,
    };
    let loading = Instant::now();
    let client = pool.get().await?;
    client
        .execute(
            LOAD,
            &[&year.start, &i64::from(args.alarms), &i64::from(args.sites)],
        )
        .await
        .context("loading the alarms")?;
    client
        .execute(TRAILS, &[])
        .await
        .context("loading the alarms' trails")?;
    client
        .batch_execute("VACUUM ANALYZE analytics.alerts, analytics.alert_events")
        .await
        .context("vacuuming")?;
    drop(client);
    report.figures.load_seconds = loading.elapsed().as_secs_f64();
    progress!(
        "load: {} alerts in {:.1} s",
        thousands(u64::from(args.alarms)),
        report.figures.load_seconds
    );

    let (seconds, rows) = timed(args.runs, async || count(&pool, year).await).await?;
    report.figures.count = seconds;
    report.figures.alarms = u64::try_from(rows).unwrap_or_default();
    progress!(
        "baseline: count(*) median {:.1} ms",
        median(&report.figures.count) * 1000.0
    );

    let every = KpiScope::default();
    let (seconds, figures) = timed(args.runs, async || {
        Ok(kpi::measure(&pool, &every, year).await?)
    })
    .await?;
    report.figures.year = seconds;
    progress!(
        "alarm KPIs, a year, every site: median {:.1} ms",
        median(&report.figures.year) * 1000.0
    );
    report.figures.figures = Some(json!({
        "alarms": figures.alarms,
        "alarms_per_hour": figures.alarms_per_hour,
        "peak_10min": figures.peak_10min,
        "flood_share": figures.flood_share,
        "chattering": figures.chattering,
        "stale": figures.stale,
        "time_to_ack_s": figures.time_to_ack_s,
    }));

    let one = KpiScope {
        site: Some(SiteSlug::parse("site-000")?),
        within: None,
    };
    let (seconds, _) = timed(args.runs, async || {
        Ok(kpi::measure(&pool, &one, year).await?)
    })
    .await?;
    report.figures.year_one_site = seconds;
    let day = KpiRange {
        start: end - Duration::days(1),
        end,
    };
    let (seconds, _) = timed(args.runs, async || {
        Ok(kpi::measure(&pool, &every, day).await?)
    })
    .await?;
    report.figures.day = seconds;
    progress!("removing the test database");
    drop(pool);
    drop(postgres);
    Ok(())
}
