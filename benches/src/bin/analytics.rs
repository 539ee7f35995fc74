//! Stoker's analytics benchmark: one evaluation cycle of threshold rules
//! over many sensors, against the same InfluxDB query alone.
//!
//! See `benches/README.md` for what it measures and how; `--help` for the
//! options.

use std::fmt::Write as _;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::{Duration, Instant};
use stoker_metadata::Actor;

use anyhow::{Context, anyhow};
use clap::Parser;
use serde_json::{Value, json};
use stoker_analytics::evaluate;
use stoker_analytics::live::{EvaluationOptions, Evaluator};
use stoker_analytics::notify::NotifyOptions;
use stoker_benches::report::{Bound, Check, Figures, Report, RunRecord};
use stoker_benches::{harness, progress, thousands};
use stoker_domain::{EpochMillis, SensorKey, SensorType, SiteSlug};
use stoker_rules::{Agg, NewAlertRule, Op, RuleKind, RuleSelector, Severity};
use stoker_stores::Stores;
use stoker_testkit::{TestInflux, TestPostgres, TestRedis};
use stoker_timeseries::LineBatch;

/// The target: one cycle over 10,000 sensors in under a second.
const TARGET_CYCLE_SECONDS: f64 = 1.0;

/// Readings per InfluxDB write while seeding.
const SEED_BATCH: usize = 5_000;

/// Stoker's analytics benchmark (release build; one command, one report).
///
/// Seeds `--sites` × `--sensors` sensors in a fresh Postgres database,
/// `--rules` threshold rules (rule k watches `sensor_k` at every site: mean
/// over `--window` above 100 for 30 s; about `--firing-percent` of the
/// sensors read above it), and `--history` of 1 Hz readings of every
/// sensor in a fresh InfluxDB database. Then measures, in this process:
/// the InfluxDB query one cycle runs, alone (baseline), and `--cycles`
/// evaluation cycles of the analytics leader (`Evaluator::tick`: rules and
/// registry from Postgres, one query per group of rules, every rule judged
/// for every sensor, alerts opened in Postgres with their notifications
/// queued, states mirrored to Redis). Needs the local services of
/// scripts/dev-up; the `benches/analytics` wrapper starts them and builds
/// in release mode first.
///
/// Exit status: 0 when every target passes, 1 when one fails, 2 when the
/// benchmark could not complete.
#[derive(Debug, Parser)]
#[command(version, about, long_about)]
struct Args {
    /// Sites seeded.
    #[arg(long, default_value_t = 500)]
    sites: usize,
    /// Sensors per site (`sensor_00` …).
    #[arg(long, default_value_t = 20)]
    sensors: usize,
    /// Threshold rules (rule k watches `sensor_k` of every site); at most
    /// `--sensors`.
    #[arg(long, default_value_t = 20)]
    rules: usize,
    /// The rules' window.
    #[arg(long, default_value = "60s", value_parser = humantime::parse_duration)]
    window: Duration,
    /// The evaluation interval (ticks are multiples of it).
    #[arg(long, default_value = "10s", value_parser = humantime::parse_duration)]
    interval: Duration,
    /// Evaluation cycles measured (after one not counted).
    #[arg(long, default_value_t = 12)]
    cycles: usize,
    /// Share of sensors whose readings fire their rule, in percent.
    #[arg(long, default_value_t = 1.0)]
    firing_percent: f64,
    /// Readings written before the first cycle, per sensor, at 1 Hz.
    #[arg(long, default_value = "2m", value_parser = humantime::parse_duration)]
    history: Duration,
    /// Also write the results as JSON to this file.
    #[arg(long, value_name = "FILE")]
    json: Option<PathBuf>,
}

fn main() -> ExitCode {
    let args = Args::parse();
    harness::main(
        "analytics",
        None,
        args.json.as_deref(),
        || Report {
            record: RunRecord::gather(
                "benches/analytics",
                &["ANALYTICS_", "INFLUX_", "POSTGRES_", "REDIS_"],
                &[],
            ),
            figures: Results::default(),
        },
        async |report| run(&args, report).await,
    )
}

/// What the run measured.
#[derive(Debug, Default)]
struct Results {
    sensors: usize,
    rules: usize,
    readings: u64,
    /// Seconds of each baseline query.
    query_seconds: Vec<f64>,
    /// Each measured cycle: seconds, judged pairs, queries, alerts fired.
    cycles: Vec<(f64, usize, usize, usize)>,
    alerts_open: i64,
}

fn sorted(values: impl Iterator<Item = f64>) -> Vec<f64> {
    let mut values: Vec<f64> = values.collect();
    values.sort_by(f64::total_cmp);
    values
}

fn median(sorted: &[f64]) -> f64 {
    sorted.get(sorted.len() / 2).copied().unwrap_or(f64::NAN)
}

impl Results {
    fn cycle_seconds(&self) -> Vec<f64> {
        sorted(self.cycles.iter().map(|cycle| cycle.0))
    }
}

impl Figures for Results {
    const NOUN: &'static str = "analytics";
    const TARGET_WIDTHS: [usize; 3] = [44, 12, 10];

    fn write_body(&self, out: &mut String, record: &RunRecord) {
        record.write_settings(
            out,
            "evaluator in this process (release), Postgres, InfluxDB and Redis of scripts/dev-up",
        );
        let _ = writeln!(
            out,
            "  load      {} sensors, {} threshold rules (one plan: one query per cycle), {} readings in InfluxDB",
            thousands(self.sensors as u64),
            self.rules,
            thousands(self.readings)
        );
        let queries = sorted(self.query_seconds.iter().copied());
        let cycles = self.cycle_seconds();
        if !queries.is_empty() {
            let _ = writeln!(
                out,
                "  baseline: the cycle's InfluxDB query alone      median {:>7.1} ms, max {:>7.1} ms ({} runs)",
                median(&queries) * 1000.0,
                queries.last().copied().unwrap_or(f64::NAN) * 1000.0,
                queries.len()
            );
        }
        if !cycles.is_empty() {
            let _ = writeln!(
                out,
                "  evaluation cycle (Evaluator::tick)              median {:>7.1} ms, max {:>7.1} ms ({} cycles)",
                median(&cycles) * 1000.0,
                cycles.last().copied().unwrap_or(f64::NAN) * 1000.0,
                cycles.len()
            );
            if !queries.is_empty() {
                let _ = writeln!(
                    out,
                    "  cycle / query alone: {:.2} (median); the rest is Postgres (rules, registry, alerts), judging and Redis",
                    median(&cycles) / median(&queries)
                );
            }
            for (index, (seconds, judged, queries, fired)) in self.cycles.iter().enumerate() {
                let _ = writeln!(
                    out,
                    "    cycle {:>2}: {:>7.1} ms, {} judged, {} queries, {} alerts fired",
                    index + 1,
                    seconds * 1000.0,
                    thousands(*judged as u64),
                    queries,
                    fired
                );
            }
            let _ = writeln!(out, "  open alerts at the end: {}", self.alerts_open);
        }
    }

    fn checks(&self) -> Vec<Check> {
        let cycles = self.cycle_seconds();
        let Some(&slowest) = cycles.last() else {
            return Vec::new();
        };
        vec![Check::new(
            "slowest evaluation cycle",
            slowest,
            Bound::Below,
            TARGET_CYCLE_SECONDS,
            format!("{:.0} ms", slowest * 1000.0),
            format!("< {:.0} ms", TARGET_CYCLE_SECONDS * 1000.0),
        )]
    }

    fn json(&self) -> Value {
        json!({
            "sensors": self.sensors,
            "rules": self.rules,
            "readings": self.readings,
            "query_seconds": self.query_seconds,
            "cycles": self.cycles.iter().map(|(seconds, judged, queries, fired)| json!({
                "seconds": seconds, "judged": judged, "queries": queries, "fired": fired,
            })).collect::<Vec<_>>(),
            "alerts_open": self.alerts_open,
        })
    }
}

fn sensor_key(index: usize) -> String {
    format!("sensor_{index:02}")
}

/// Whether sensor `index` of site `site` reads above its rule's threshold.
fn fires(site: usize, index: usize, percent: f64) -> bool {
    let slot = (site * 7919 + index * 104_729) % 10_000;
    (slot as f64) < percent * 100.0
}

async fn run(args: &Args, report: &mut Report<Results>) -> anyhow::Result<()> {
    if args.sites == 0
        || args.sensors == 0
        || args.rules == 0
        || args.rules > args.sensors
        || args.cycles == 0
    {
        return Err(anyhow!(
            "--sites, --sensors, --rules and --cycles must be positive, and --rules at most --sensors"
        ));
    }
    let interval_ms = i64::try_from(args.interval.as_millis())?;
    if interval_ms < 1000 || interval_ms % 1000 != 0 {
        return Err(anyhow!("--interval must be whole seconds, at least 1s"));
    }
    progress!("setup: Postgres database, InfluxDB database, Redis prefix");
    let postgres = TestPostgres::create().await;
    let pool = postgres.migrated_pool().await;
    stoker_analytics::migrate(&pool).await?;
    let influx = TestInflux::create().await;
    let redis = TestRedis::new();

    // Sites and sensors in two statements.
    let client = pool.get().await?;
    client
        .execute(
            "INSERT INTO metadata.sites (id, slug, name, timezone)
             SELECT gen_random_uuid(), 'bench-' || lpad(i::text, 4, '0'), 'Bench ' || i, 'UTC'
             FROM generate_series(0, $1::int - 1) i",
            &[&i32::try_from(args.sites)?],
        )
        .await
        .context("seeding sites")?;
    client
        .execute(
            "INSERT INTO metadata.sensors (id, site_id, key, type, unit, min_value, max_value)
             SELECT gen_random_uuid(), s.id, 'sensor_' || lpad(j::text, 2, '0'), 'temperature', '°C', -1e6, 1e6
             FROM metadata.sites s, generate_series(0, $1::int - 1) j",
            &[&i32::try_from(args.sensors)?],
        )
        .await
        .context("seeding sensors")?;
    drop(client);
    report.figures.sensors = args.sites * args.sensors;
    for rule in 0..args.rules {
        let rule = NewAlertRule::new(
            &format!("{} mean high", sensor_key(rule)),
            RuleSelector {
                site: None,
                sensor: Some(SensorKey::parse(sensor_key(rule))?),
                sensor_type: None,
            },
            RuleKind::Threshold {
                agg: Some(Agg::Mean),
                op: Op::Gt,
                threshold: stoker_rules::Threshold::Number(100.0),
                clear_threshold: Some(90.0),
                window: args.window,
                for_: Duration::from_secs(30),
            },
            Severity::Warning,
            true,
            None,
        )
        .map_err(|(field, message)| anyhow!("rule {field}: {message}"))?;
        stoker_metadata::create_alert_rule(&pool, &Actor::Cli, &rule).await?;
    }
    report.figures.rules = args.rules;
    progress!(
        "seed: {} sites × {} sensors, {} rules",
        args.sites,
        args.sensors,
        args.rules
    );

    // Readings: from `history` before the first tick to the last tick.
    let total_ticks = args.cycles + 1;
    let now = EpochMillis::now().as_millis();
    let last_tick = (now - 10_000).div_euclid(interval_ms) * interval_ms;
    let first_tick = last_tick - (total_ticks as i64 - 1) * interval_ms;
    let start = first_tick - i64::try_from(args.history.as_millis())?;
    let seconds = (last_tick - start) / 1000;
    let sites: Vec<SiteSlug> = (0..args.sites)
        .map(|site| SiteSlug::parse(format!("bench-{site:04}")))
        .collect::<Result<_, _>>()?;
    let keys: Vec<SensorKey> = (0..args.sensors)
        .map(|index| SensorKey::parse(sensor_key(index)))
        .collect::<Result<_, _>>()?;
    let sensor_type = SensorType::parse("temperature")?;
    let seeding = Instant::now();
    let mut batch = LineBatch::with_capacity(SEED_BATCH);
    let mut written = 0_u64;
    for second in 0..seconds {
        let at = EpochMillis::from_millis(start + second * 1000)?;
        for (site_index, site) in sites.iter().enumerate() {
            for (index, key) in keys.iter().enumerate() {
                let base = if fires(site_index, index, args.firing_percent) {
                    150.0
                } else {
                    50.0
                };
                let value = base + ((second as usize + index) % 10) as f64 * 0.5;
                batch.push(site, key, &sensor_type, value, at);
                if batch.len() >= SEED_BATCH {
                    influx.influx().write(&batch).await?;
                    written += batch.len() as u64;
                    batch = LineBatch::with_capacity(SEED_BATCH);
                }
            }
        }
    }
    if !batch.is_empty() {
        influx.influx().write(&batch).await?;
        written += batch.len() as u64;
    }
    report.figures.readings = written;
    progress!(
        "seed: {} readings ({} s of 1 Hz per sensor) written in {:.1?}",
        thousands(written),
        seconds,
        seeding.elapsed()
    );

    let stores = Stores {
        pool: pool.clone(),
        postgres: postgres.options(),
        influx: influx.influx().clone(),
        cache: redis.cache(),
    };
    let options = EvaluationOptions {
        interval: args.interval,
        grace: Duration::ZERO,
    };

    // Baseline: the queries a cycle runs, alone (the first reads whole
    // windows and is not counted; then each reads the buckets since the
    // tick before, as the evaluator does).
    let rules = stoker_metadata::enabled_alert_rules(&pool).await?;
    let registry = stoker_metadata::registry(&pool).await?;
    let watches = evaluate::watches(rules, &registry);
    let groups = evaluate::groups(&watches, interval_ms);
    let mut windows: Vec<evaluate::Window> =
        groups.iter().map(|_| evaluate::Window::default()).collect();
    for (index, tick) in evaluate::ticks(first_tick, last_tick, interval_ms).enumerate() {
        let started = Instant::now();
        for ((plan, group), window) in groups.iter().zip(&mut windows) {
            evaluate::fetch_into(
                influx.influx(),
                *plan,
                &evaluate::filter(group),
                evaluate::columns(group),
                tick,
                window,
            )
            .await?;
        }
        if index > 0 {
            report
                .figures
                .query_seconds
                .push(started.elapsed().as_secs_f64());
        }
    }
    progress!(
        "baseline: the cycle's query alone, median {:.1} ms",
        median(&sorted(report.figures.query_seconds.iter().copied())) * 1000.0
    );

    // The cycles: the first (take-over and warm caches) is not counted.
    let mut evaluator = Evaluator::new(stores, NotifyOptions::default(), &options);
    evaluator.take_over(first_tick).await?;
    for (index, tick) in evaluate::ticks(first_tick, last_tick, interval_ms).enumerate() {
        let started = Instant::now();
        let tick_report = evaluator.tick(tick).await?;
        let seconds = started.elapsed().as_secs_f64();
        if index == 0 {
            progress!("cycle 0 (not counted): {:.1} ms", seconds * 1000.0);
            continue;
        }
        progress!(
            "cycle {index}: {:.1} ms, {} judged, {} fired",
            seconds * 1000.0,
            thousands(tick_report.judged as u64),
            tick_report.fired
        );
        report.figures.cycles.push((
            seconds,
            tick_report.judged,
            tick_report.queries,
            tick_report.fired,
        ));
    }
    let client = pool.get().await?;
    report.figures.alerts_open = client
        .query_one(
            "SELECT count(*) FROM analytics.alerts WHERE state <> 'resolved'",
            &[],
        )
        .await?
        .try_get(0)?;
    drop(client);
    progress!("removing the test databases");
    drop(redis);
    drop(influx);
    drop(postgres);
    Ok(())
}
