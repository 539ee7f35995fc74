//! The ingestion benchmark: a fleet of sites publishing QoS 1 telemetry to a
//! broker configured as the project ships it, through the real
//! `stoker ingest` binary, into InfluxDB. See `benches/README.md`.
//!
//! Phases, in one run and in this order:
//! - (a) raw limits: InfluxDB's write rate with pre-encoded 5,000-line
//!   bodies from a tight client, and Mosquitto's delivery rate to a bare
//!   subscriber;
//! - (b) Stoker end to end: readings/s from the first publish until all are
//!   queryable in InfluxDB;
//! - (c) publish→queryable latency at half the rate of (b);
//! - (d) the ingestion process's peak RSS and CPU seconds (sampled during (b));
//! - optionally a soak at the rate of (b) or a share of it (`scripts/soak`:
//!   half, 10 minutes), sampling RSS and lag every 10 s.

use std::collections::VecDeque;
use std::fmt::Write as _;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::{Context, anyhow};
use bytes::Bytes;
use clap::Parser;
use serde_json::json;
use stoker_benches::fleet::{Fleet, PROBE_SENSOR, PROBE_SITE};
use stoker_benches::harness::{self, bounded};
use stoker_benches::influx::{self, InfluxHttp};
use stoker_benches::mqtt::{IN_FLIGHT, Publisher, Subscriber};
use stoker_benches::process::{self, Cpu, Procs, StokerProcess, log_tail};
use stoker_benches::procstat::{self, ProcSample};
use stoker_benches::report::{self, Bound, Check, Figures, RunRecord, nearest_rank};
use stoker_benches::{progress, rate, thousands, wall_millis};
use stoker_domain::parse_duration;
use stoker_testkit::{TestBroker, TestInflux, TestPostgres, TestRedis, unique_client_id};
use stoker_timeseries::LineBatch;
use tokio::task::JoinHandle;
use tokio::time::Instant;

/// Stoker's ingestion benchmark (release build; one command, one report).
///
/// Measures, in one run: (a) this machine's raw limits (InfluxDB's write
/// rate with pre-encoded 5,000-line bodies; Mosquitto's delivery rate to a
/// bare QoS 1 subscriber), (b) Stoker's end-to-end throughput, (c)
/// publish→queryable latency at half that rate, (d) the ingestion
/// process's peak RSS and CPU seconds; and checks them against the targets.
/// Needs the local services of scripts/dev-up; the `benches/ingest`
/// wrapper starts them and builds the binaries first.
///
/// Exit status: 0 when every target passes, 1 when a target fails, 2 when
/// the benchmark could not complete.
#[derive(Debug, Parser)]
#[command(name = "ingest", version)]
struct Args {
    /// Readings published in the full-rate phase (b), rounded up to whole messages.
    #[arg(long, default_value_t = 1_000_000)]
    readings: u64,

    /// Sites of the fleet.
    #[arg(long, default_value_t = 100)]
    sites: usize,

    /// Sensors per site (readings per message).
    #[arg(long, default_value_t = 20)]
    sensors: usize,

    /// Duration of the latency phase (c), at half the rate of (b).
    #[arg(long, default_value = "30s", value_parser = parse_duration)]
    latency_duration: Duration,

    /// Also run a soak at the rate of (b) for this long (e.g. 300s), sampling RSS every 10 s.
    #[arg(long, value_parser = parse_duration)]
    soak: Option<Duration>,

    /// The soak's rate as a share of the (b) rate (scripts/soak: 0.5). Below 1, the soak also checks that the lag stays bounded.
    #[arg(long, default_value_t = 1.0)]
    soak_share: f64,

    /// The stoker binary under test (a release build).
    #[arg(long, default_value = "target/release/stoker")]
    stoker: PathBuf,

    /// Where the ingestion process's log (RUST_LOG=warn) goes.
    #[arg(long, default_value = "target/bench-ingest-stoker.log")]
    log: PathBuf,

    /// RUST_LOG of the ingestion process.
    #[arg(long, default_value = "warn")]
    stoker_log: String,

    /// Also write the results as JSON to this file.
    #[arg(long, value_name = "FILE")]
    json: Option<PathBuf>,

    /// MQTT publisher connections in the full-rate phases.
    #[arg(long, default_value_t = 2)]
    publishers: usize,

    /// Concurrent write requests of the raw InfluxDB client.
    #[arg(long, default_value_t = 2)]
    influx_in_flight: usize,

    /// Lines per body of the raw InfluxDB client.
    #[arg(long, default_value_t = 5000)]
    influx_batch: usize,
}

/// Most lines the raw InfluxDB phase pre-encodes (memory of this process).
const RAW_LINES_MAX: u64 = 2_000_000;
/// Count polling period of phase (b).
const COUNT_POLL: Duration = Duration::from_millis(100);
/// Phase (b) fails when no new reading becomes queryable for this long.
const STALL: Duration = Duration::from_secs(30);
/// Latest-timestamp polling period of phase (c).
const LATENCY_POLL: Duration = Duration::from_millis(25);
/// RSS sampling period during phase (b).
const RSS_POLL: Duration = Duration::from_millis(100);
/// RSS sampling period of the soak.
const SOAK_SAMPLE: Duration = Duration::from_secs(10);
/// Every count query excludes the probe's readings.
const NOT_PROBE: &str = "site != 'bench-probe'";

/// Targets of the issue.
const TARGET_CPU_PER_MILLION: f64 = 1.0;
const TARGET_THROUGHPUT_SHARE: f64 = 0.5;
const TARGET_P99_MS: f64 = 1000.0;
const TARGET_RSS_MIB: f64 = 100.0;
/// "Flat" RSS over a soak: growth from the one-minute sample to the end.
const TARGET_SOAK_GROWTH: f64 = 0.10;
/// Bounded lag of a soak below the full rate: published but not yet
/// queryable, in seconds of publishing, at any sample.
const TARGET_SOAK_LAG_S: f64 = 10.0;

fn main() -> ExitCode {
    let args = Args::parse();
    harness::main(
        "ingest",
        None,
        args.json.as_deref(),
        || Report {
            record: run_record(),
            figures: Results::new(&args),
        },
        async |report| run(&args, report).await,
    )
}

async fn run(args: &Args, report: &mut Report) -> anyhow::Result<()> {
    if args.readings == 0 || args.publishers == 0 || args.influx_in_flight == 0 {
        return Err(anyhow!(
            "--readings, --publishers and --influx-in-flight must be at least 1"
        ));
    }
    if args.influx_batch == 0 {
        return Err(anyhow!("--influx-batch must be at least 1"));
    }
    if !(args.soak_share > 0.0 && args.soak_share <= 1.0) {
        return Err(anyhow!(
            "--soak-share must be above 0 and at most 1 (a share of the (b) rate)"
        ));
    }
    if !args.stoker.is_file() {
        return Err(anyhow!(
            "{} not found: build it with `cargo build --release -p stoker` (benches/ingest does)",
            args.stoker.display()
        ));
    }
    let fleet = Arc::new(Fleet::new(args.sites, args.sensors)?);
    let per_message = fleet.readings_per_message() as u64;
    let messages = args.readings.div_ceil(per_message);
    let total = messages * per_message;
    report.figures.readings = total;
    report.figures.messages = messages;
    let influx_url = stoker_testkit::influx_options().url;
    let influx = InfluxHttp::new(&influx_url)?;
    report.figures.influx_version = influx::server_version(&influx_url).await;

    // ------------------------------------------------------------- setup
    progress!(
        "setup: broker (shipped config), Postgres database, {} sites × {} sensors, InfluxDB database, Redis prefix",
        args.sites,
        args.sensors
    );
    // Declared first, dropped last: the Stoker process (declared later) is
    // killed before its broker and databases go.
    let (broker, postgres, stoker_db, redis) = bounded("setup", Duration::from_secs(120), async {
        let broker = TestBroker::start().await;
        let postgres = TestPostgres::create().await;
        let pool = postgres.migrated_pool().await;
        fleet.seed(&pool).await.context("seeding the fleet")?;
        let stoker_db = TestInflux::create().await;
        anyhow::Ok((broker, postgres, stoker_db, TestRedis::new()))
    })
    .await?;
    let database = stoker_db.influx().database().to_owned();
    let procs = Procs::new(
        vec![
            ("influxd", procstat::find_process("influxd", None)),
            (
                "mosquitto",
                procstat::find_process("mosquitto", Some(std::process::id())),
            ),
        ],
        false,
    );

    // Timestamps of phase (b): a site's messages are 1 ms apart, all in
    // the past (ending a minute ago), so every reading is a distinct point.
    let per_site = messages.div_ceil(fleet.site_count() as u64) as i64;
    let base_ts = wall_millis() - per_site - 60_000;
    let sites = fleet.site_count() as u64;
    let payloads: Arc<Vec<Bytes>> = Arc::new(
        (0..messages)
            .map(|message| {
                let seq = message / sites;
                fleet.payload(seq, base_ts + seq as i64)
            })
            .collect(),
    );

    // ------------------------------------------------ (a) InfluxDB raw
    let raw_limit = Duration::from_secs(60) + Duration::from_secs(args.readings / 10_000);
    report.figures.influx_raw = Some(
        bounded(
            "(a) InfluxDB raw",
            raw_limit,
            influx_raw(args, &fleet, &influx, &procs, base_ts),
        )
        .await?,
    );
    settle().await;

    // ----------------------------------------------- (a) Mosquitto raw
    report.figures.mosquitto_raw = Some(
        bounded(
            "(a) Mosquitto raw",
            raw_limit,
            mosquitto_raw(args, &fleet, &payloads, broker.port(), &procs),
        )
        .await?,
    );
    settle().await;

    // ----------------------------------------------------- Stoker start
    let client_id = unique_client_id("stoker-bench-ingest");
    // A metrics port of the run's own (Stoker's default, 127.0.0.1:9464,
    // may be taken by another run).
    let metrics_port = process::free_port("Stoker's metrics")?;
    let mut env = process::store_env(&postgres, &stoker_db, &redis);
    env.extend([
        ("MQTT_URL", broker.url()),
        ("MQTT_CLIENT_ID", client_id),
        ("METRICS_ADDR", format!("127.0.0.1:{metrics_port}")),
    ]);
    let mut stoker =
        StokerProcess::spawn(&args.stoker, "ingest", &env, &args.log, &args.stoker_log)?
            .with_metrics_port(metrics_port);
    let procs = procs.with_stoker(stoker.pid());
    let ready_in = stoker
        .until_ready("; probing until it is subscribed", async |stoker| {
            wait_ready(stoker, &influx, &database, broker.port()).await
        })
        .await?;
    progress!("Stoker stores readings {ready_in:.1?} after its start");
    let watch = RssWatch::start(stoker.pid());
    settle().await;

    // ------------------------------------------------ (b) end to end
    let e2e_limit = Duration::from_secs(60) + Duration::from_secs(args.readings / 5_000);
    let e2e = bounded(
        "(b) end to end",
        e2e_limit + Duration::from_secs(5),
        end_to_end(
            args,
            &fleet,
            &payloads,
            &influx,
            &database,
            broker.port(),
            &mut stoker,
            &procs,
            &watch,
            base_ts,
            e2e_limit,
        ),
    )
    .await?;
    let full_rate = e2e.rate;
    report.figures.e2e = Some(e2e);
    settle().await;

    // ------------------------------------------------------ (c) latency
    let latency = bounded(
        "(c) latency",
        args.latency_duration + Duration::from_secs(90),
        latency(
            args,
            &fleet,
            &influx,
            &database,
            broker.port(),
            &mut stoker,
            &procs,
            full_rate / 2.0,
        ),
    )
    .await?;
    report.figures.latency = Some(latency);

    // ---------------------------------------------------------- soak
    if let Some(duration) = args.soak {
        settle().await;
        let soak = bounded(
            "soak",
            duration + Duration::from_secs(240),
            soak(
                &fleet,
                &influx,
                &database,
                broker.port(),
                &mut stoker,
                &procs,
                full_rate * args.soak_share,
                duration,
                args.soak_share < 0.95,
            ),
        )
        .await?;
        report.figures.soak = Some(soak);
    }

    // ------------------------------------------------------------ end
    watch.stop();
    report.record.stop_stoker(&mut stoker).await;
    progress!("removing the test broker and databases");
    drop(stoker);
    drop(redis);
    drop(stoker_db);
    drop(postgres);
    drop(broker);
    Ok(())
}

/// A pause between phases, so that one phase's tail (InfluxDB compactions,
/// the broker's bookkeeping) weighs less on the next.
async fn settle() {
    tokio::time::sleep(Duration::from_secs(2)).await;
}

/// Stoker's own counters from its `/metrics` (for diagnostics only:
/// every figure of the report is measured from the outside).
async fn counters(stoker: &StokerProcess) -> String {
    let Some(text) = stoker.metrics().await else {
        return "its /metrics did not answer".into();
    };
    let wanted = [
        ("stoker_ingest_messages_total", "messages"),
        ("stoker_ingest_readings_accepted_total", "readings accepted"),
        ("stoker_ingest_acked_total", "acked"),
        ("stoker_ingest_write_errors_total", "write errors"),
        ("stoker_ingest_spooled_batches_total", "spooled batches"),
        ("stoker_ingest_mqtt_connected", "mqtt connected"),
    ];
    let found: Vec<String> = wanted
        .iter()
        .filter_map(|(metric, label)| {
            text.lines()
                .find_map(|line| line.strip_prefix(metric)?.strip_prefix(' '))
                .map(|value| format!("{label} {}", value.trim()))
        })
        .collect();
    if found.is_empty() {
        "no stoker_ingest_* counters in its /metrics".into()
    } else {
        found.join(", ")
    }
}

/// The highest RSS of a process since the last reset, sampled every 100 ms.
#[derive(Debug)]
struct RssWatch {
    peak_kib: Arc<AtomicU64>,
    task: JoinHandle<()>,
}

impl RssWatch {
    fn start(pid: u32) -> Self {
        let peak_kib = Arc::new(AtomicU64::new(0));
        let task = {
            let peak_kib = Arc::clone(&peak_kib);
            tokio::spawn(async move {
                while let Some(sample) = procstat::sample(pid) {
                    peak_kib.fetch_max(sample.rss_kib, Ordering::Relaxed);
                    tokio::time::sleep(RSS_POLL).await;
                }
            })
        };
        Self { peak_kib, task }
    }

    fn reset(&self) {
        self.peak_kib.store(0, Ordering::Relaxed);
    }

    fn peak_kib(&self) -> u64 {
        self.peak_kib.load(Ordering::Relaxed)
    }

    fn stop(&self) {
        self.task.abort();
    }
}

// ------------------------------------------------------------------ phases

/// A raw limit: how many readings in how long.
#[derive(Debug, Clone)]
struct Raw {
    readings: u64,
    seconds: f64,
    rate: f64,
    detail: String,
    cpu: Cpu,
}

async fn influx_raw(
    args: &Args,
    fleet: &Fleet,
    influx: &InfluxHttp,
    procs: &Procs,
    base_ts: i64,
) -> anyhow::Result<Raw> {
    let lines_wanted = args.readings.min(RAW_LINES_MAX);
    let per_message = fleet.readings_per_message() as u64;
    let sites = fleet.site_count() as u64;
    progress!(
        "(a) InfluxDB raw: pre-encoding {} lines into {}-line bodies",
        thousands(lines_wanted),
        thousands(args.influx_batch as u64)
    );
    let mut bodies: Vec<Bytes> = Vec::new();
    let mut batch = LineBatch::with_capacity(args.influx_batch + per_message as usize);
    let mut lines = 0_u64;
    let mut message = 0_u64;
    while lines + batch.len() as u64 + per_message <= lines_wanted.max(per_message) {
        let seq = message / sites;
        fleet.push_lines(
            &mut batch,
            (message % sites) as usize,
            seq,
            base_ts + seq as i64,
        );
        message += 1;
        if batch.len() >= args.influx_batch {
            lines += batch.len() as u64;
            bodies.push(Bytes::from(batch.as_str().to_owned()));
            batch.clear();
        }
    }
    if !batch.is_empty() {
        lines += batch.len() as u64;
        bodies.push(Bytes::from(batch.as_str().to_owned()));
    }
    drop(batch);
    // A database of its own, dropped as soon as the phase ends so that its
    // compactions do not run during Stoker's phases.
    let raw_db = TestInflux::create().await;
    let database = raw_db.influx().database().to_owned();
    let bodies = Arc::new(bodies);
    let next = Arc::new(AtomicUsize::new(0));
    progress!(
        "(a) InfluxDB raw: posting {} bodies, {} in flight, to database {database}",
        bodies.len(),
        args.influx_in_flight
    );
    let cpu_before = procs.cpu();
    let started = Instant::now();
    let mut workers = Vec::new();
    for _ in 0..args.influx_in_flight {
        let (bodies, next, influx, database) = (
            Arc::clone(&bodies),
            Arc::clone(&next),
            influx.clone(),
            database.clone(),
        );
        workers.push(tokio::spawn(async move {
            loop {
                let index = next.fetch_add(1, Ordering::Relaxed);
                let Some(body) = bodies.get(index) else {
                    return anyhow::Ok(());
                };
                influx.write(&database, body.clone()).await?;
            }
        }));
    }
    for worker in workers {
        worker.await.context("raw InfluxDB writer")??;
    }
    let seconds = started.elapsed().as_secs_f64();
    let cpu = procs.cpu() - cpu_before;
    let stored = influx.count_readings(&database, "time > 0").await?;
    if stored != lines {
        return Err(anyhow!(
            "the raw InfluxDB phase wrote {lines} lines but {stored} are stored: distinct points expected"
        ));
    }
    drop(raw_db);
    let raw = Raw {
        readings: lines,
        seconds,
        rate: lines as f64 / seconds,
        detail: format!(
            "{}-line bodies, {} in flight",
            args.influx_batch, args.influx_in_flight
        ),
        cpu,
    };
    progress!(
        "(a) InfluxDB raw: {} readings/s ({} lines in {:.2} s; CPU {})",
        rate(raw.rate),
        thousands(lines),
        seconds,
        raw.cpu.describe(seconds)
    );
    Ok(raw)
}

/// Spawns one task per publisher, each sending its share of `payloads`
/// (message `m` goes to site `m % sites`).
fn publish_all(
    publishers: &[Arc<Publisher>],
    fleet: &Arc<Fleet>,
    payloads: &Arc<Vec<Bytes>>,
) -> Vec<JoinHandle<anyhow::Result<()>>> {
    let count = publishers.len();
    publishers
        .iter()
        .enumerate()
        .map(|(first, publisher)| {
            let (publisher, fleet, payloads) = (
                Arc::clone(publisher),
                Arc::clone(fleet),
                Arc::clone(payloads),
            );
            tokio::spawn(async move {
                let sites = fleet.site_count();
                let mut message = first;
                while let Some(payload) = payloads.get(message) {
                    publisher
                        .publish(fleet.topic(message % sites), payload.clone())
                        .await?;
                    message += count;
                }
                anyhow::Ok(())
            })
        })
        .collect()
}

async fn connect_publishers(
    count: usize,
    port: u16,
    stem: &str,
) -> anyhow::Result<Vec<Arc<Publisher>>> {
    let mut publishers = Vec::with_capacity(count);
    for _ in 0..count {
        publishers.push(Arc::new(
            Publisher::connect(port, &unique_client_id(stem)).await?,
        ));
    }
    Ok(publishers)
}

async fn close_publishers(publishers: Vec<Arc<Publisher>>) {
    for publisher in publishers {
        if let Ok(publisher) = Arc::try_unwrap(publisher) {
            publisher.close().await;
        }
    }
}

async fn mosquitto_raw(
    args: &Args,
    fleet: &Arc<Fleet>,
    payloads: &Arc<Vec<Bytes>>,
    port: u16,
    procs: &Procs,
) -> anyhow::Result<Raw> {
    let messages = payloads.len() as u64;
    let per_message = fleet.readings_per_message() as u64;
    let subscriber = Subscriber::connect(
        port,
        &unique_client_id("bench-bare-subscriber"),
        "sites/+/telemetry",
    )
    .await?;
    let publishers = connect_publishers(args.publishers, port, "bench-raw-publisher").await?;
    progress!(
        "(a) Mosquitto raw: {} publisher(s) → broker → bare QoS 1 subscriber, {} messages of {} readings",
        args.publishers,
        thousands(messages),
        per_message
    );
    let cpu_before = procs.cpu();
    let started = Instant::now();
    let tasks = publish_all(&publishers, fleet, payloads);
    let deadline = started + Duration::from_secs(60) + Duration::from_secs(messages / 500);
    let mut next_report = started + Duration::from_secs(2);
    while subscriber.received() < messages {
        if subscriber.is_lost() {
            return Err(anyhow!("the bare subscriber lost its connection"));
        }
        if publishers.iter().any(|publisher| publisher.is_lost()) {
            return Err(anyhow!("a publisher lost its connection to the broker"));
        }
        let now = Instant::now();
        if now >= deadline {
            return Err(anyhow!(
                "(a) Mosquitto raw: {} of {} messages delivered before the deadline",
                subscriber.received(),
                messages
            ));
        }
        if now >= next_report {
            progress!(
                "(a) Mosquitto raw: published {}, acked {}, delivered {}",
                thousands(publishers.iter().map(|p| p.published()).sum()),
                thousands(publishers.iter().map(|p| p.acked()).sum()),
                thousands(subscriber.received())
            );
            next_report = now + Duration::from_secs(2);
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let seconds = started.elapsed().as_secs_f64();
    let cpu = procs.cpu() - cpu_before;
    for task in tasks {
        task.await.context("raw publisher")??;
    }
    close_publishers(publishers).await;
    subscriber.close().await;
    let readings = messages * per_message;
    let raw = Raw {
        readings,
        seconds,
        rate: readings as f64 / seconds,
        detail: format!(
            "{} msg/s, {} publisher(s), in flight {}",
            rate(messages as f64 / seconds),
            args.publishers,
            IN_FLIGHT
        ),
        cpu,
    };
    progress!(
        "(a) Mosquitto raw: {} readings/s ({} msg/s; CPU {})",
        rate(raw.rate),
        rate(messages as f64 / seconds),
        raw.cpu.describe(seconds)
    );
    Ok(raw)
}

/// Publishes a probe reading every second until one is queryable.
async fn wait_ready(
    stoker: &mut StokerProcess,
    influx: &InfluxHttp,
    database: &str,
    port: u16,
) -> anyhow::Result<Duration> {
    let started = Instant::now();
    let probe = Publisher::connect(port, &unique_client_id("bench-probe")).await?;
    let topic = format!("sites/{PROBE_SITE}/telemetry");
    let condition = format!("site = '{PROBE_SITE}'");
    let deadline = started + Duration::from_secs(60);
    let mut next_probe = started;
    loop {
        stoker.check_alive()?;
        let now = Instant::now();
        if now >= next_probe {
            let payload = format!(
                "{{\"ts\":{},\"values\":{{\"{PROBE_SENSOR}\":1.0}}}}",
                wall_millis()
            );
            probe.publish(&topic, Bytes::from(payload)).await?;
            next_probe = now + Duration::from_secs(1);
        }
        if influx
            .count_readings(database, &condition)
            .await
            .unwrap_or(0)
            > 0
        {
            probe.close().await;
            return Ok(started.elapsed());
        }
        if now >= deadline {
            return Err(anyhow!(
                "no probe reading reached InfluxDB within 60 s of starting stoker ingest; its log:\n{}",
                log_tail(stoker.log(), 15)
            ));
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Phase (b) and the memory figures of (d).
#[derive(Debug, Clone)]
struct EndToEnd {
    readings: u64,
    seconds: f64,
    rate: f64,
    /// From the first publish until the broker acknowledged every message.
    published_after: Option<f64>,
    cpu: Cpu,
    /// Highest VmRSS sampled during the phase, KiB.
    peak_rss_kib: u64,
    /// VmHWM at the end of the phase (the process's peak since it started), KiB.
    hwm_kib: u64,
    /// Mean duration of the count query, ms.
    count_query_ms: f64,
    /// Duration of the full count that confirmed the end, ms.
    confirm_ms: Option<f64>,
}

#[allow(clippy::too_many_arguments)]
async fn end_to_end(
    args: &Args,
    fleet: &Arc<Fleet>,
    payloads: &Arc<Vec<Bytes>>,
    influx: &InfluxHttp,
    database: &str,
    port: u16,
    stoker: &mut StokerProcess,
    procs: &Procs,
    watch: &RssWatch,
    base_ts: i64,
    limit: Duration,
) -> anyhow::Result<EndToEnd> {
    let messages = payloads.len() as u64;
    let per_message = fleet.readings_per_message() as u64;
    let total = messages * per_message;
    let publishers = connect_publishers(args.publishers, port, "bench-publisher").await?;
    progress!(
        "(b) end to end: {} messages ({} readings) from {} publisher(s), QoS 1, as fast as the broker takes them",
        thousands(messages),
        thousands(total),
        args.publishers
    );
    watch.reset();
    let cpu_before = procs.cpu();
    let started = Instant::now();
    let tasks = publish_all(&publishers, fleet, payloads);
    let deadline = started + limit;
    let mut next_report = started + Duration::from_secs(2);
    let mut published_after = None;
    let (mut queries, mut query_time) = (0_u32, Duration::ZERO);
    let mut confirmed_in: Option<Duration> = None;
    let (mut last_stored, mut last_progress) = (0, started);
    // First the first sensor of every message (a twentieth of the points,
    // so the polls weigh little on InfluxDB); once all are there, a full
    // count confirms. Should it fall short, every reading is counted from
    // then on.
    let sites = fleet.site_count() as u64;
    let sentinel = format!("sensor = '{}'", fleet.first_sensor());
    let mut counter = WindowCounter::new(base_ts, messages, sites, 1, sentinel);
    let mut full_counts = false;
    let mut stored;
    let finished = loop {
        let poll_started = Instant::now();
        let counted = counter.poll(influx, database).await?;
        let polled = Instant::now();
        queries += 1;
        query_time += polled - poll_started;
        stored = if full_counts {
            counted
        } else {
            counted * per_message
        };
        if stored >= total && !full_counts {
            let confirming = Instant::now();
            let all = influx.count_readings(database, NOT_PROBE).await?;
            confirmed_in = Some(confirming.elapsed());
            if all >= total {
                stored = all;
                break polled;
            }
            progress!(
                "(b) end to end: every message's first reading is queryable but only {} of {} readings: counting every reading from now on",
                thousands(all),
                thousands(total)
            );
            full_counts = true;
            counter = WindowCounter::new(base_ts, messages, sites, per_message, NOT_PROBE.into());
            stored = all;
        }
        if full_counts && stored >= total {
            break polled;
        }
        if published_after.is_none()
            && publishers.iter().map(|p| p.acked()).sum::<u64>() >= messages
        {
            published_after = Some((polled - started).as_secs_f64());
            progress!(
                "(b) end to end: the broker acknowledged all {} messages after {:.2} s",
                thousands(messages),
                (polled - started).as_secs_f64()
            );
        }
        stoker.check_alive()?;
        if publishers.iter().any(|publisher| publisher.is_lost()) {
            return Err(anyhow!("a publisher lost its connection to the broker"));
        }
        if stored > last_stored {
            last_stored = stored;
            last_progress = polled;
        }
        let stalled = polled >= last_progress + STALL;
        if polled >= deadline || stalled {
            let why = if stalled {
                format!("no new reading queryable for {STALL:?}")
            } else {
                format!("hard limit of {limit:?} reached")
            };
            let counted = influx
                .count_readings(database, NOT_PROBE)
                .await
                .map_or_else(|error| format!("failed: {error}"), thousands);
            return Err(anyhow!(
                "(b) end to end: {why}: only {} of {} readings queryable after {:.0} s (full count: {counted}; the broker took all {} messages from the publishers; Stoker used {:.1} CPU-s; Stoker's counters: {}); Stoker's log:\n{}",
                thousands(stored),
                thousands(total),
                (polled - started).as_secs_f64(),
                thousands(publishers.iter().map(|p| p.acked()).sum()),
                (procs.cpu() - &cpu_before).stoker(),
                counters(stoker).await,
                log_tail(stoker.log(), 10)
            ));
        }
        if polled >= next_report {
            let seconds = (polled - started).as_secs_f64();
            let cpu = procs.cpu() - &cpu_before;
            progress!(
                "(b) end to end: {:.1} s: published {}, acked by broker {}, queryable {} readings ({} /s so far); CPU-s stoker {:.1}, influxd {:.1}",
                seconds,
                thousands(publishers.iter().map(|p| p.published()).sum()),
                thousands(publishers.iter().map(|p| p.acked()).sum()),
                thousands(stored),
                rate(stored as f64 / seconds),
                cpu.stoker(),
                cpu.service("influxd")
            );
            next_report = polled + Duration::from_secs(2);
        }
        tokio::time::sleep_until(poll_started + COUNT_POLL).await;
    };
    let seconds = (finished - started).as_secs_f64();
    let cpu = procs.cpu() - cpu_before;
    let memory = procstat::sample(stoker.pid()).unwrap_or_default();
    for task in tasks {
        task.await.context("publisher")??;
    }
    close_publishers(publishers).await;
    // Outside the timed window: one full count confirms the windowed ones.
    let counted = influx.count_readings(database, NOT_PROBE).await?;
    if stored != total || counted != total {
        return Err(anyhow!(
            "{total} readings published, {stored} counted per millisecond, {counted} in a full count: expected all three equal"
        ));
    }
    let e2e = EndToEnd {
        readings: total,
        seconds,
        rate: total as f64 / seconds,
        published_after,
        cpu,
        peak_rss_kib: watch.peak_kib().max(memory.rss_kib),
        hwm_kib: memory.hwm_kib,
        count_query_ms: query_time.as_secs_f64() * 1000.0 / f64::from(queries.max(1)),
        confirm_ms: confirmed_in.map(|took| took.as_secs_f64() * 1000.0),
    };
    progress!(
        "(b) end to end: {} readings/s ({} readings in {:.2} s); CPU {}",
        rate(e2e.rate),
        thousands(total),
        seconds,
        e2e.cpu.describe(seconds)
    );
    progress!("(b) Stoker's own counters: {}", counters(stoker).await);
    progress!(
        "(d) ingestion: {:.1} CPU-s per million readings; peak RSS {:.1} MiB (VmHWM {:.1} MiB)",
        e2e.cpu.stoker() / total as f64 * 1e6,
        mib(e2e.peak_rss_kib),
        mib(e2e.hwm_kib)
    );
    Ok(e2e)
}

/// Counts the readings of phase (b) stored so far without rescanning what
/// is already confirmed. Phase (b)'s timestamps are `base_ts + seq` (a
/// site's `seq`-th message), so each millisecond holds a known number of
/// readings; the poll counts per millisecond (`GROUP BY time(1ms)`) from
/// the first millisecond not yet complete, and moves that watermark past
/// every complete one. Each poll scans only the unconfirmed tail.
#[derive(Debug)]
struct WindowCounter {
    base_ts: i64,
    /// Readings expected at `base_ts + seq`.
    expected: Vec<u64>,
    /// First `seq` not known to be complete.
    watermark: usize,
    /// Readings at `seq < watermark`.
    confirmed: u64,
    /// Which readings count.
    condition: String,
}

impl WindowCounter {
    /// Counts `per_message` readings per message, those matching `condition`.
    fn new(base_ts: i64, messages: u64, sites: u64, per_message: u64, condition: String) -> Self {
        let expected = (0..messages.div_ceil(sites))
            .map(|seq| (messages - seq * sites).min(sites) * per_message)
            .collect();
        Self {
            base_ts,
            expected,
            watermark: 0,
            confirmed: 0,
            condition,
        }
    }

    /// Readings stored so far.
    async fn poll(&mut self, influx: &InfluxHttp, database: &str) -> anyhow::Result<u64> {
        if self.watermark >= self.expected.len() {
            return Ok(self.confirmed);
        }
        let from = self.base_ts + self.watermark as i64;
        let to = self.base_ts + self.expected.len() as i64;
        let query = format!(
            "SELECT count(value) FROM readings WHERE time >= {from}ms AND time < {to}ms AND {} GROUP BY time(1ms) fill(none)",
            self.condition
        );
        let mut counts = vec![0_u64; self.expected.len() - self.watermark];
        for series in influx.query(database, &query).await? {
            for row in series.values {
                let (Some(ts), Some(count)) = (
                    row.first().and_then(serde_json::Value::as_i64),
                    row.get(1).and_then(serde_json::Value::as_u64),
                ) else {
                    continue;
                };
                if let Some(slot) = usize::try_from(ts - from)
                    .ok()
                    .and_then(|offset| counts.get_mut(offset))
                {
                    *slot += count;
                }
            }
        }
        Ok(self.absorb(counts))
    }

    /// Takes the counts per millisecond from the watermark on; returns the
    /// readings stored so far.
    fn absorb(&mut self, counts: Vec<u64>) -> u64 {
        let mut tail = 0;
        let mut complete = true;
        for (offset, count) in counts.into_iter().enumerate() {
            let seq = self.watermark + offset;
            if complete && count >= self.expected[seq] {
                continue;
            }
            if complete {
                // Everything before `seq` is complete: move the watermark.
                let done: u64 = self.expected[self.watermark..seq].iter().sum();
                self.confirmed += done;
                self.watermark = seq;
                complete = false;
            }
            tail += count;
        }
        if complete {
            self.confirmed += self.expected[self.watermark..].iter().sum::<u64>();
            self.watermark = self.expected.len();
        }
        self.confirmed + tail
    }
}

fn mib(kib: u64) -> f64 {
    kib as f64 / 1024.0
}

/// Published messages of phase (c) that are not yet seen in InfluxDB,
/// per site, oldest first, and the latencies of those that were.
#[derive(Debug)]
struct Tracker {
    outstanding: Vec<VecDeque<(i64, Instant)>>,
    latencies_ms: Vec<f64>,
}

impl Tracker {
    fn new(sites: usize) -> Self {
        Self {
            outstanding: vec![VecDeque::new(); sites],
            latencies_ms: Vec::new(),
        }
    }

    fn published(&mut self, site: usize, ts: i64, at: Instant) {
        self.outstanding[site].push_back((ts, at));
    }

    fn oldest_ts(&self) -> Option<i64> {
        self.outstanding
            .iter()
            .filter_map(|site| site.front().map(|(ts, _)| *ts))
            .min()
    }

    fn outstanding(&self) -> usize {
        self.outstanding.iter().map(VecDeque::len).sum()
    }

    /// InfluxDB holds readings of `site` up to `stored_ts`, as seen at `at`.
    fn stored(&mut self, site: usize, stored_ts: i64, at: Instant) {
        let queue = &mut self.outstanding[site];
        while let Some(&(ts, published)) = queue.front() {
            if ts > stored_ts {
                break;
            }
            self.latencies_ms
                .push((at - published).as_secs_f64() * 1000.0);
            queue.pop_front();
        }
    }
}

/// Publishes at `message_rate` messages/s for `duration`, each site's
/// timestamps the publish time (ms), strictly increasing per site.
async fn publish_paced(
    publisher: Arc<Publisher>,
    fleet: Arc<Fleet>,
    message_rate: f64,
    duration: Duration,
    tracker: Option<Arc<Mutex<Tracker>>>,
) -> anyhow::Result<u64> {
    let sites = fleet.site_count();
    let mut last_ts = vec![i64::MIN; sites];
    let mut ticker = tokio::time::interval(Duration::from_millis(2));
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
    let started = Instant::now();
    let mut sent = 0_u64;
    loop {
        ticker.tick().await;
        let elapsed = started.elapsed();
        if elapsed >= duration {
            return Ok(sent);
        }
        let due = (elapsed.as_secs_f64() * message_rate) as u64;
        while sent < due {
            let site = (sent % sites as u64) as usize;
            let ts = wall_millis().max(last_ts[site].saturating_add(1));
            last_ts[site] = ts;
            let payload = fleet.payload(sent / sites as u64, ts);
            if let Some(tracker) = &tracker {
                tracker
                    .lock()
                    .map_err(|_| anyhow!("tracker poisoned"))?
                    .published(site, ts, Instant::now());
            }
            publisher.publish(fleet.topic(site), payload).await?;
            sent += 1;
        }
    }
}

#[derive(Debug, Clone)]
struct Latency {
    readings_per_second: f64,
    seconds: f64,
    messages: u64,
    missing: u64,
    p50_ms: f64,
    p99_ms: f64,
    max_ms: f64,
    poll_period_ms: f64,
    query_ms: f64,
    cpu: Cpu,
}

/// The `q`-quantile of sorted values (nearest rank); `missing` values
/// count as infinitely late.
fn quantile(sorted: &[f64], missing: usize, q: f64) -> f64 {
    nearest_rank(sorted.len() + missing, q).map_or(f64::NAN, |index| {
        sorted.get(index).copied().unwrap_or(f64::INFINITY)
    })
}

#[allow(clippy::too_many_arguments)]
async fn latency(
    args: &Args,
    fleet: &Arc<Fleet>,
    influx: &InfluxHttp,
    database: &str,
    port: u16,
    stoker: &mut StokerProcess,
    procs: &Procs,
    readings_per_second: f64,
) -> anyhow::Result<Latency> {
    let per_message = fleet.readings_per_message() as f64;
    let message_rate = readings_per_second / per_message;
    let publisher = Arc::new(Publisher::connect(port, &unique_client_id("bench-paced")).await?);
    let tracker = Arc::new(Mutex::new(Tracker::new(fleet.site_count())));
    progress!(
        "(c) latency: {} readings/s ({} msg/s) for {:?}; polling InfluxDB every {:?} for each site's newest timestamp",
        rate(readings_per_second),
        rate(message_rate),
        args.latency_duration,
        LATENCY_POLL
    );
    let cpu_before = procs.cpu();
    let started = Instant::now();
    let task = tokio::spawn(publish_paced(
        Arc::clone(&publisher),
        Arc::clone(fleet),
        message_rate,
        args.latency_duration,
        Some(Arc::clone(&tracker)),
    ));
    let drain = Duration::from_secs(30);
    let mut publishing_ended: Option<Instant> = None;
    let (mut polls, mut query_time) = (0_u32, Duration::ZERO);
    let mut next_report = started + Duration::from_secs(5);
    loop {
        let poll_started = Instant::now();
        let oldest = tracker
            .lock()
            .map_err(|_| anyhow!("tracker poisoned"))?
            .oldest_ts();
        if publishing_ended.is_none() && task.is_finished() {
            publishing_ended = Some(poll_started);
        }
        if let Some(oldest) = oldest {
            // One sensor per site is enough (a message's readings are one
            // write) and costs InfluxDB a twentieth of all of them.
            let query = format!(
                "SELECT last(value) FROM readings WHERE time >= {oldest}ms AND sensor = '{}' GROUP BY site",
                fleet.first_sensor()
            );
            let series = influx.query(database, &query).await?;
            let seen = Instant::now();
            polls += 1;
            query_time += seen - poll_started;
            let mut tracker = tracker.lock().map_err(|_| anyhow!("tracker poisoned"))?;
            for one in series {
                let site = one.tags.get("site").and_then(|site| fleet.site_index(site));
                let stored = one
                    .values
                    .iter()
                    .filter_map(|row| row.first().and_then(serde_json::Value::as_i64))
                    .max();
                if let (Some(site), Some(stored)) = (site, stored) {
                    tracker.stored(site, stored, seen);
                }
            }
        } else if publishing_ended.is_some() {
            break;
        }
        if let Some(ended) = publishing_ended
            && poll_started >= ended + drain
        {
            break;
        }
        stoker.check_alive()?;
        if poll_started >= next_report {
            let (outstanding, done) = {
                let tracker = tracker.lock().map_err(|_| anyhow!("tracker poisoned"))?;
                (tracker.outstanding(), tracker.latencies_ms.len())
            };
            progress!(
                "(c) latency: {:.0} s: {} messages queryable, {} outstanding",
                (poll_started - started).as_secs_f64(),
                thousands(done as u64),
                thousands(outstanding as u64)
            );
            next_report = poll_started + Duration::from_secs(5);
        }
        tokio::time::sleep_until(poll_started + LATENCY_POLL).await;
    }
    let seconds = publishing_ended.map_or(0.0, |ended| (ended - started).as_secs_f64());
    let cpu = procs.cpu() - cpu_before;
    let messages = task.await.context("paced publisher")??;
    publisher.wait_acked(Duration::from_secs(10)).await?;
    if let Ok(publisher) = Arc::try_unwrap(publisher) {
        publisher.close().await;
    }
    let (mut latencies, missing) = {
        let tracker = tracker.lock().map_err(|_| anyhow!("tracker poisoned"))?;
        (tracker.latencies_ms.clone(), tracker.outstanding())
    };
    latencies.sort_by(f64::total_cmp);
    let result = Latency {
        readings_per_second,
        seconds,
        messages,
        missing: missing as u64,
        p50_ms: quantile(&latencies, missing, 0.50),
        p99_ms: quantile(&latencies, missing, 0.99),
        max_ms: if missing > 0 {
            f64::INFINITY
        } else {
            latencies.last().copied().unwrap_or(f64::NAN)
        },
        poll_period_ms: seconds * 1000.0 / f64::from(polls.max(1)),
        query_ms: query_time.as_secs_f64() * 1000.0 / f64::from(polls.max(1)),
        cpu,
    };
    progress!(
        "(c) latency: p50 {:.0} ms, p99 {:.0} ms, max {:.0} ms over {} messages ({} never seen within {drain:?}); poll every {:.0} ms (query {:.0} ms)",
        result.p50_ms,
        result.p99_ms,
        result.max_ms,
        thousands(messages),
        missing,
        result.poll_period_ms,
        result.query_ms
    );
    Ok(result)
}

#[derive(Debug, Clone)]
struct Soak {
    seconds: f64,
    readings_per_second: f64,
    published: u64,
    stored: u64,
    drained_after: Option<f64>,
    /// (seconds since the start of the soak, VmRSS KiB).
    samples: Vec<(f64, u64)>,
    reference_kib: u64,
    end_kib: u64,
    cpu: Cpu,
    /// The most messages published but not queryable at a sample, in
    /// seconds of publishing.
    max_lag_seconds: f64,
    /// Whether the soak ran below the full rate (then its lag must stay
    /// bounded).
    paced_below_full: bool,
    /// Warnings and errors Stoker logged during the soak.
    log: report::LogSummary,
}

impl Soak {
    fn growth(&self) -> f64 {
        (self.end_kib as f64 - self.reference_kib as f64) / self.reference_kib.max(1) as f64
    }
}

#[allow(clippy::too_many_arguments)]
async fn soak(
    fleet: &Arc<Fleet>,
    influx: &InfluxHttp,
    database: &str,
    port: u16,
    stoker: &mut StokerProcess,
    procs: &Procs,
    readings_per_second: f64,
    duration: Duration,
    paced_below_full: bool,
) -> anyhow::Result<Soak> {
    let per_message = fleet.readings_per_message() as u64;
    let publisher = Arc::new(Publisher::connect(port, &unique_client_id("bench-soak")).await?);
    progress!(
        "soak: {} readings/s for {duration:?}; RSS every {SOAK_SAMPLE:?}",
        rate(readings_per_second)
    );
    let start_ms = wall_millis();
    let cpu_before = procs.cpu();
    let log_offset = std::fs::metadata(stoker.log()).map_or(0, |meta| meta.len());
    let messages_per_second = readings_per_second / per_message as f64;
    let mut max_lag_seconds: f64 = 0.0;
    let started = Instant::now();
    let task = tokio::spawn(publish_paced(
        Arc::clone(&publisher),
        Arc::clone(fleet),
        readings_per_second / per_message as f64,
        duration,
        None,
    ));
    // Messages whose first reading is queryable (one sensor per site: cheap).
    let one_sensor = format!(
        "time >= {start_ms}ms AND sensor = '{}' AND {NOT_PROBE}",
        fleet.first_sensor()
    );
    let mut samples = Vec::new();
    let mut next_sample = started;
    while !task.is_finished() {
        stoker.check_alive()?;
        if Instant::now() >= next_sample {
            let sample = procstat::sample(stoker.pid()).unwrap_or_default();
            let at = started.elapsed().as_secs_f64();
            samples.push((at, sample.rss_kib));
            let published = publisher.published();
            let seen = influx.count_readings(database, &one_sensor).await?;
            let lag = published.saturating_sub(seen) as f64 / messages_per_second.max(1e-9);
            max_lag_seconds = max_lag_seconds.max(lag);
            progress!(
                "soak: {:>5.0} s: RSS {:.1} MiB; messages published {}, acked by broker {}, queryable {} (lag {:.1} s)",
                at,
                mib(sample.rss_kib),
                thousands(published),
                thousands(publisher.acked()),
                thousands(seen),
                lag
            );
            next_sample += SOAK_SAMPLE;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let seconds = started.elapsed().as_secs_f64();
    let end: ProcSample = procstat::sample(stoker.pid()).unwrap_or_default();
    samples.push((seconds, end.rss_kib));
    let cpu = procs.cpu() - cpu_before;
    let published = task.await.context("soak publisher")??;
    publisher.wait_acked(Duration::from_secs(30)).await?;
    if let Ok(publisher) = Arc::try_unwrap(publisher) {
        publisher.close().await;
    }
    let expected = published * per_message;
    // Polls one sensor per site (cheap), then confirms with a full count.
    // At the full rate publishers outpace InfluxDB over minutes and the
    // broker holds a backlog (ingestion reads only as fast as it writes):
    // allow as long again as the soak to drain it. A stall (no progress
    // for 30 s) still ends the wait early.
    let drain_deadline = Instant::now() + Duration::from_secs(120) + duration;
    let (mut last_seen, mut last_progress) = (0, Instant::now());
    let mut next_report = Instant::now() + Duration::from_secs(10);
    let drained_after = loop {
        let seen = influx.count_readings(database, &one_sensor).await?;
        if seen >= published {
            break Some(started.elapsed().as_secs_f64() - seconds);
        }
        if seen > last_seen {
            (last_seen, last_progress) = (seen, Instant::now());
        }
        if Instant::now() >= next_report {
            progress!(
                "soak: draining: {} of {} messages queryable",
                thousands(seen),
                thousands(published)
            );
            next_report = Instant::now() + Duration::from_secs(10);
        }
        let stalled = Instant::now() >= last_progress + STALL;
        if stalled || Instant::now() >= drain_deadline {
            progress!(
                "soak: only {} of {} messages queryable {:.0} s after the last publish{}; Stoker's counters: {}",
                thousands(seen),
                thousands(published),
                started.elapsed().as_secs_f64() - seconds,
                if stalled {
                    " (no progress for 30 s)"
                } else {
                    ""
                },
                counters(stoker).await
            );
            break None;
        }
        tokio::time::sleep(Duration::from_secs(1)).await;
    };
    let stored = influx
        .count_readings(database, &format!("time >= {start_ms}ms AND {NOT_PROBE}"))
        .await?;
    // The one-minute sample (or the first, for soaks shorter than that).
    let reference_kib = samples
        .iter()
        .find(|(at, _)| *at >= 60.0 - 0.5)
        .or(samples.first())
        .map_or(0, |(_, kib)| *kib);
    let logged = std::fs::read(stoker.log()).unwrap_or_default();
    let during = String::from_utf8_lossy(logged.get(log_offset as usize..).unwrap_or_default());
    let result = Soak {
        seconds,
        readings_per_second,
        published: expected,
        stored,
        drained_after,
        samples,
        reference_kib,
        end_kib: end.rss_kib,
        cpu,
        max_lag_seconds,
        paced_below_full,
        log: report::LogSummary::from_text(&during),
    };
    progress!(
        "soak: RSS {:.1} MiB at one minute, {:.1} MiB at the end ({:+.1}%)",
        mib(result.reference_kib),
        mib(result.end_kib),
        result.growth() * 100.0
    );
    Ok(result)
}

// ------------------------------------------------------------------ report

type Report = report::Report<Results>;

/// The figures of one run.
#[derive(Debug)]
struct Results {
    influx_version: String,
    mosquitto_version: String,
    sites: usize,
    sensors: usize,
    readings: u64,
    messages: u64,
    influx_raw: Option<Raw>,
    mosquitto_raw: Option<Raw>,
    e2e: Option<EndToEnd>,
    latency: Option<Latency>,
    soak: Option<Soak>,
}

/// The run's record. It reports the settings Stoker reads from the
/// environment it inherits (these prefixes), other than those the
/// benchmark sets itself.
fn run_record() -> RunRecord {
    RunRecord::gather(
        "benches/ingest",
        &[
            "INGEST_",
            "MQTT_",
            "INFLUX_",
            "REDIS_",
            "POSTGRES_",
            "STOKER_",
        ],
        &[
            "DATABASE_URL",
            "INFLUX_BUCKET",
            "REDIS_KEY_PREFIX",
            "MQTT_URL",
            "MQTT_CLIENT_ID",
            "INGEST_SPOOL_DIR",
            "METRICS_ADDR",
        ],
    )
}

impl Results {
    fn new(args: &Args) -> Self {
        let mosquitto_version = std::process::Command::new("mosquitto")
            .arg("-h")
            .output()
            .ok()
            .and_then(|output| {
                String::from_utf8_lossy(&output.stdout)
                    .lines()
                    .next()
                    .map(str::to_owned)
            })
            .unwrap_or_else(|| "unknown".into());
        Self {
            influx_version: String::new(),
            mosquitto_version,
            sites: args.sites,
            sensors: args.sensors,
            readings: 0,
            messages: 0,
            influx_raw: None,
            mosquitto_raw: None,
            e2e: None,
            latency: None,
            soak: None,
        }
    }

    fn lower_raw(&self) -> Option<(f64, &'static str)> {
        let influx = self.influx_raw.as_ref()?.rate;
        let mosquitto = self.mosquitto_raw.as_ref()?.rate;
        Some(if influx <= mosquitto {
            (influx, "InfluxDB")
        } else {
            (mosquitto, "Mosquitto")
        })
    }
}

impl Figures for Results {
    const NOUN: &'static str = "ingestion";
    const TARGET_WIDTHS: [usize; 3] = [42, 22, 14];

    fn checks(&self) -> Vec<Check> {
        let mut checks = Vec::new();
        let rss = |name, peak_mib: f64| {
            Check::new(
                name,
                peak_mib,
                Bound::Below,
                TARGET_RSS_MIB,
                format!("{peak_mib:.1} MiB"),
                format!("< {TARGET_RSS_MIB:.0} MiB"),
            )
        };
        if let Some(e2e) = &self.e2e {
            let per_million = e2e.cpu.stoker() / e2e.readings as f64 * 1e6;
            checks.push(Check::new(
                "(d) CPU per million readings, full rate",
                per_million,
                Bound::AtMost,
                TARGET_CPU_PER_MILLION,
                format!("{per_million:.2} CPU-s"),
                format!("≤ {TARGET_CPU_PER_MILLION:.1} CPU-s"),
            ));
            if let Some((lower, which)) = self.lower_raw() {
                let share = e2e.rate / lower;
                checks.push(Check::new(
                    "(b) throughput / lower raw limit",
                    share,
                    Bound::AtLeast,
                    TARGET_THROUGHPUT_SHARE,
                    format!("{:.1}% (of {which})", share * 100.0),
                    format!("≥ {:.0}%", TARGET_THROUGHPUT_SHARE * 100.0),
                ));
            }
        }
        if let Some(latency) = &self.latency {
            checks.push(Check::new(
                "(c) p99 publish→queryable, half rate",
                latency.p99_ms,
                Bound::Below,
                TARGET_P99_MS,
                format!("{:.0} ms", latency.p99_ms),
                format!("< {TARGET_P99_MS:.0} ms"),
            ));
        }
        if let Some(e2e) = &self.e2e {
            checks.push(rss(
                "(d) peak RSS of ingestion, full rate",
                mib(e2e.hwm_kib.max(e2e.peak_rss_kib)),
            ));
        }
        if let Some(soak) = &self.soak {
            let growth = soak.growth();
            checks.push(Check::new(
                "soak: RSS growth, 1 min → end",
                growth,
                Bound::AtMost,
                TARGET_SOAK_GROWTH,
                format!("{:+.1}%", growth * 100.0),
                format!("≤ {:.0}%", TARGET_SOAK_GROWTH * 100.0),
            ));
            let share = soak.stored as f64 / soak.published.max(1) as f64;
            checks.push(Check {
                name: "soak: every reading queryable",
                measured: format!("{:.1}%", share * 100.0),
                target: "100%".into(),
                ratio: share,
                pass: soak.stored >= soak.published,
            });
            let peak = soak.samples.iter().map(|(_, kib)| *kib).max().unwrap_or(0);
            checks.push(rss("soak: peak RSS", mib(peak)));
            checks.push(Check {
                name: "soak: errors logged",
                measured: format!("{} errors, {} warnings", soak.log.errors, soak.log.warnings),
                target: "0 errors".into(),
                ratio: soak.log.errors as f64,
                pass: soak.log.errors == 0,
            });
            if soak.paced_below_full {
                checks.push(Check::new(
                    "soak: lag, published → queryable",
                    soak.max_lag_seconds,
                    Bound::AtMost,
                    TARGET_SOAK_LAG_S,
                    format!("{:.1} s", soak.max_lag_seconds),
                    format!("≤ {TARGET_SOAK_LAG_S:.0} s"),
                ));
            }
        }
        checks
    }

    fn write_body(&self, out: &mut String, record: &RunRecord) {
        let _ = writeln!(
            out,
            "  servers   InfluxDB {}; {} (test broker, shipped config)",
            self.influx_version, self.mosquitto_version
        );
        let _ = writeln!(
            out,
            "  fleet     {} sites × {} sensors; one message = one site's {} readings; QoS 1; {} readings = {} messages at full rate",
            self.sites,
            self.sensors,
            self.sensors,
            thousands(self.readings),
            thousands(self.messages)
        );
        record.write_settings(
            out,
            "its defaults (no INGEST_*/MQTT_*/INFLUX_*/… settings inherited)",
        );
        let _ = writeln!(out);
        let _ = writeln!(out, "  {:<48} {:>13}  detail", "measurement", "readings/s");
        let row = |out: &mut String, name: &str, value: String, detail: String| {
            let _ = writeln!(out, "  {name:<48} {value:>13}  {detail}");
        };
        if let Some(raw) = &self.influx_raw {
            row(
                out,
                "(a) raw InfluxDB write, tight client",
                rate(raw.rate),
                format!(
                    "{} lines in {:.2} s, {}",
                    thousands(raw.readings),
                    raw.seconds,
                    raw.detail
                ),
            );
        }
        if let Some(raw) = &self.mosquitto_raw {
            row(
                out,
                "(a) raw Mosquitto → bare QoS 1 subscriber",
                rate(raw.rate),
                format!("{:.2} s, {}", raw.seconds, raw.detail),
            );
        }
        if let Some(e2e) = &self.e2e {
            row(
                out,
                "(b) Stoker end to end (publish → queryable)",
                rate(e2e.rate),
                format!(
                    "{} readings in {:.2} s; broker had all after {}; count poll {:.0} ms, full count {}",
                    thousands(e2e.readings),
                    e2e.seconds,
                    e2e.published_after
                        .map_or("n/a".into(), |seconds| format!("{seconds:.2} s")),
                    e2e.count_query_ms,
                    e2e.confirm_ms
                        .map_or("n/a".into(), |ms| format!("{ms:.0} ms")),
                ),
            );
        }
        if let Some(latency) = &self.latency {
            row(
                out,
                "(c) latency phase rate (half of b)",
                rate(latency.readings_per_second),
                format!(
                    "p50 {:.0} ms, p99 {:.0} ms, max {:.0} ms; {} messages over {:.0} s, {} unseen; resolution ≈ {:.0} ms (poll period; query {:.0} ms)",
                    latency.p50_ms,
                    latency.p99_ms,
                    latency.max_ms,
                    thousands(latency.messages),
                    latency.seconds,
                    latency.missing,
                    latency.poll_period_ms,
                    latency.query_ms
                ),
            );
        }
        let _ = writeln!(out);
        if let Some(e2e) = &self.e2e {
            let _ = writeln!(
                out,
                "  (d) ingestion process during (b): CPU {:.2} s = {:.2} CPU-s per million readings; peak RSS {:.1} MiB sampled, VmHWM {:.1} MiB",
                e2e.cpu.stoker(),
                e2e.cpu.stoker() / e2e.readings as f64 * 1e6,
                mib(e2e.peak_rss_kib),
                mib(e2e.hwm_kib)
            );
            let _ = writeln!(
                out,
                "  CPU during (b), {:.2} s wall on {}: {}",
                e2e.seconds,
                record.machine.split(" (").next().unwrap_or_default(),
                e2e.cpu.describe(e2e.seconds)
            );
        }
        if let Some(raw) = &self.influx_raw {
            let _ = writeln!(
                out,
                "  CPU during (a) InfluxDB raw: {}",
                raw.cpu.describe(raw.seconds)
            );
        }
        if let Some(raw) = &self.mosquitto_raw {
            let _ = writeln!(
                out,
                "  CPU during (a) Mosquitto raw: {}",
                raw.cpu.describe(raw.seconds)
            );
        }
        if let Some(latency) = &self.latency {
            let _ = writeln!(
                out,
                "  CPU during (c): {}",
                latency.cpu.describe(latency.seconds.max(0.001))
            );
        }
        if let Some(soak) = &self.soak {
            let _ = writeln!(
                out,
                "  soak: {} readings/s for {:.0} s; {} of {} readings queryable{}; CPU {}",
                rate(soak.readings_per_second),
                soak.seconds,
                thousands(soak.stored),
                thousands(soak.published),
                soak.drained_after.map_or(
                    " (NOT all: the drain wait ended after 120 s plus the soak's length, or after 30 s without progress)"
                        .into(),
                    |after| format!(" {after:.1} s after the last publish")
                ),
                soak.cpu.describe(soak.seconds)
            );
            let series: Vec<String> = soak
                .samples
                .iter()
                .map(|(at, kib)| format!("{at:.0}s {:.1}", mib(*kib)))
                .collect();
            let _ = writeln!(out, "  soak RSS (MiB): {}", series.join(", "));
            let _ = writeln!(
                out,
                "  soak lag (published, not yet queryable): at most {:.1} s; Stoker logged {} errors and {} warnings during the soak",
                soak.max_lag_seconds, soak.log.errors, soak.log.warnings
            );
            for sample in &soak.log.samples {
                let _ = writeln!(out, "    {sample}");
            }
        }
    }

    fn json(&self) -> serde_json::Value {
        let raw = |raw: &Option<Raw>| {
            raw.as_ref().map(|raw| {
                json!({
                    "readings": raw.readings, "seconds": raw.seconds,
                    "readings_per_second": raw.rate, "detail": raw.detail, "cpu_seconds": raw.cpu.json(),
                })
            })
        };
        let finite = |value: f64| value.is_finite().then_some(value);
        json!({
            "influxdb": self.influx_version,
            "mosquitto": self.mosquitto_version,
            "sites": self.sites,
            "sensors": self.sensors,
            "readings": self.readings,
            "influx_raw": raw(&self.influx_raw),
            "mosquitto_raw": raw(&self.mosquitto_raw),
            "end_to_end": self.e2e.as_ref().map(|e2e| json!({
                "readings": e2e.readings, "seconds": e2e.seconds, "readings_per_second": e2e.rate,
                "broker_acked_all_after_seconds": e2e.published_after,
                "cpu_seconds": e2e.cpu.json(),
                "stoker_cpu_seconds_per_million": e2e.cpu.stoker() / e2e.readings as f64 * 1e6,
                "stoker_peak_rss_mib": mib(e2e.peak_rss_kib), "stoker_vmhwm_mib": mib(e2e.hwm_kib),
                "count_query_ms": e2e.count_query_ms, "confirm_count_ms": e2e.confirm_ms,
            })),
            "latency": self.latency.as_ref().map(|latency| json!({
                "readings_per_second": latency.readings_per_second, "seconds": latency.seconds,
                "messages": latency.messages, "unseen": latency.missing,
                "p50_ms": finite(latency.p50_ms), "p99_ms": finite(latency.p99_ms), "max_ms": finite(latency.max_ms),
                "poll_period_ms": latency.poll_period_ms, "query_ms": latency.query_ms,
                "cpu_seconds": latency.cpu.json(),
            })),
            "soak": self.soak.as_ref().map(|soak| json!({
                "seconds": soak.seconds, "readings_per_second": soak.readings_per_second,
                "published": soak.published, "stored": soak.stored, "drained_after_seconds": soak.drained_after,
                "rss_mib": soak.samples.iter().map(|(at, kib)| json!([at, mib(*kib)])).collect::<Vec<_>>(),
                "growth": soak.growth(), "cpu_seconds": soak.cpu.json(),
            })),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quantiles_use_the_nearest_rank_and_count_missing_as_late() {
        let values: Vec<f64> = (1..=100).map(f64::from).collect();
        assert_eq!(quantile(&values, 0, 0.5), 50.0);
        assert_eq!(quantile(&values, 0, 0.99), 99.0);
        assert_eq!(quantile(&values, 0, 1.0), 100.0);
        assert_eq!(quantile(&values[..98], 2, 0.99), f64::INFINITY);
        assert!(quantile(&[], 0, 0.5).is_nan());
    }

    #[test]
    fn the_tracker_assigns_each_message_the_first_poll_that_shows_it() {
        let start = Instant::now();
        let mut tracker = Tracker::new(2);
        tracker.published(0, 100, start);
        tracker.published(0, 110, start);
        tracker.published(1, 105, start);
        assert_eq!(tracker.oldest_ts(), Some(100));
        tracker.stored(0, 100, start + Duration::from_millis(40));
        assert_eq!(tracker.latencies_ms.len(), 1);
        assert_eq!(tracker.oldest_ts(), Some(105));
        tracker.stored(0, 200, start + Duration::from_millis(80));
        tracker.stored(1, 200, start + Duration::from_millis(80));
        assert_eq!(tracker.outstanding(), 0);
        assert_eq!(tracker.latencies_ms.len(), 3);
    }

    #[test]
    fn the_window_counter_moves_past_complete_milliseconds_only() {
        // 5 messages over 2 sites, 3 readings each: seq 0 and 1 hold 6
        // readings, seq 2 holds 3.
        let mut counter = WindowCounter::new(1000, 5, 2, 3, String::new());
        assert_eq!(counter.expected, vec![6, 6, 3]);
        assert_eq!(counter.absorb(vec![6, 2, 3]), 11);
        assert_eq!((counter.watermark, counter.confirmed), (1, 6));
        assert_eq!(counter.absorb(vec![6, 3]), 15);
        assert_eq!(counter.watermark, 3);
    }

    #[test]
    fn options_parse() {
        let args =
            Args::try_parse_from(["ingest", "--soak", "300s", "--readings", "1000"]).unwrap();
        assert_eq!(args.soak, Some(Duration::from_secs(300)));
        assert_eq!(args.readings, 1000);
        assert_eq!(args.latency_duration, Duration::from_secs(30));
    }
}
