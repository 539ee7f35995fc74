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
//! - (e) line protocol: the readings of (b) as line-protocol bodies, in
//!   Telegraf's layout (a field per sensor) and in Stoker's (a line per
//!   reading), each to InfluxDB's own `/write` and then to Stoker's
//!   (`stoker api`), same bodies, same clients;
//! - (f) Sparkplug B: the readings of (b) as NDATA of edge nodes, read by a
//!   Sparkplug host ingest process of its own;
//! - optionally a soak at the rate of (b) or a share of it (`scripts/soak`:
//!   half, 10 minutes), sampling RSS and lag every 10 s;
//! - (g) MQTT over TLS, right after (b) (listed last, lettered last): the
//!   readings of (b) read by an ingest process connected to the broker's
//!   TLS listener (`mqtts://`) in place of (b)'s.
//!
//! `main` holds the options, the targets and the run in order; each phase
//! is a module (`raw`, `end_to_end`, `latency`, `line_protocol`,
//! `sparkplug`, `soak`, `mqtts`) and `results`
//! writes the report. Modules share the run's imports through `super::*`.

mod end_to_end;
mod latency;
mod line_protocol;
mod mqtts;
mod raw;
mod results;
mod soak;
mod sparkplug;

use anyhow::{Context, anyhow};
use bytes::Bytes;
use clap::Parser;
use serde_json::json;
use std::collections::VecDeque;
use std::fmt::Write as _;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use stoker_benches::fleet::{Fleet, PROBE_SENSOR, PROBE_SITE};
use stoker_benches::harness::{self, bounded};
use stoker_benches::influx::{self, InfluxHttp};
use stoker_benches::mqtt::{IN_FLIGHT, Publisher, Subscriber};
use stoker_benches::process::{self, Cpu, Procs, StokerProcess};
use stoker_benches::procstat::{self, ProcSample};
use stoker_benches::report::{self, Bound, Check, Figures, RunRecord, nearest_rank};
use stoker_benches::{progress, rate, thousands, wall_millis};
use stoker_domain::parse_duration;
use stoker_testkit::{TestBroker, TestInflux, TestPostgres, TestRedis, unique_client_id};
use stoker_timeseries::LineBatch;
use tokio::task::JoinHandle;
use tokio::time::Instant;

use end_to_end::*;
use latency::*;
use line_protocol::*;
use mqtts::*;
use raw::*;
use results::*;
use soak::*;
use sparkplug::*;

/// Stoker's ingestion benchmark (release build; one command, one report).
///
/// Measures, in one run: (a) this machine's raw limits (InfluxDB's write
/// rate with pre-encoded 5,000-line bodies; Mosquitto's delivery rate to a
/// bare QoS 1 subscriber), (b) Stoker's end-to-end throughput, (c)
/// publish→queryable latency at half that rate, (d) the ingestion
/// process's peak RSS and CPU seconds, (e) the same readings as line
/// protocol to Stoker's `/write`, (f) as Sparkplug B NDATA, (g) read by
/// Stoker over MQTT with TLS (`mqtts://`); and checks them against the
/// targets.
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

    /// Readings per body of phase (e), line protocol (whole messages; Stoker
    /// takes bodies of up to 256 KiB).
    #[arg(long, default_value_t = 2000)]
    lp_body_lines: usize,

    /// The layouts phase (e) measures, one after the other (comma-separated):
    /// `fields` (Telegraf's: a field per sensor, a line per message) and
    /// `stoker` (a line per reading).
    #[arg(
        long,
        value_enum,
        value_delimiter = ',',
        default_value = "fields,stoker"
    )]
    lp_layout: Vec<Layout>,

    /// Concurrent requests of phase (e), to InfluxDB and then to Stoker.
    #[arg(long, default_value_t = 4)]
    lp_in_flight: usize,

    /// Skip phase (e), line protocol.
    #[arg(long)]
    no_line_protocol: bool,

    /// Skip phase (f), Sparkplug B NDATA.
    #[arg(long)]
    no_sparkplug: bool,

    /// Pace phase (f)'s QoS 0 publishers at this many readings/s in all
    /// (0: as fast as their connections take them).
    #[arg(long, default_value_t = 0.0)]
    sparkplug_rate: f64,

    /// Skip phase (g), ingestion over MQTT with TLS (`mqtts://`).
    #[arg(long)]
    no_mqtts: bool,
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

/// Line protocol to Stoker's `/write`, as a share of InfluxDB's own
/// `/write` rate for the same bodies (issue #14).
const TARGET_LP_SHARE_OF_INFLUX: f64 = 0.8;

/// Ingestion over `mqtts://` as a share of the plaintext rate (b) (issue #15).
const TARGET_MQTTS_SHARE: f64 = 0.9;

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
    if !(args.sparkplug_rate >= 0.0 && args.sparkplug_rate.is_finite()) {
        return Err(anyhow!(
            "--sparkplug-rate must be 0 (unpaced) or a positive number of readings/s"
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
    // The run's CA and the broker's certificate, for phase (g): the broker
    // has a TLS listener beside its plain one.
    let ca = stoker_testkit::TestCa::new();
    let (broker, postgres, pool, stoker_db, redis) =
        bounded("setup", Duration::from_secs(120), async {
            let broker = if args.no_mqtts {
                TestBroker::start().await
            } else {
                TestBroker::start_tls(&stoker_testkit::BrokerTls {
                    ca_file: ca.ca_file().to_owned(),
                    server: ca.server("broker", &["localhost"]),
                    require_client_cert: false,
                })
                .await
            };
            let postgres = TestPostgres::create().await;
            let pool = postgres.migrated_pool().await;
            fleet.seed(&pool).await.context("seeding the fleet")?;
            if !args.no_sparkplug {
                bind_gateways(&pool, &fleet).await?;
            }
            let stoker_db = TestInflux::create().await;
            anyhow::Ok((broker, postgres, pool, stoker_db, TestRedis::new()))
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
    let payloads = payloads(&fleet, messages, base_ts);

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
    let metrics_port = stoker_testkit::free_port();
    let mut env = process::store_env(&postgres, &stoker_db, &redis);
    env.extend([
        ("MQTT_URL", broker.url()),
        ("MQTT_CLIENT_ID", client_id.clone()),
        ("METRICS_ADDR", format!("127.0.0.1:{metrics_port}")),
        // Phase (f)'s process alone leads the Sparkplug host.
        ("SPARKPLUG_GROUPS", String::new()),
    ]);
    let start_ingest = async |log: &std::path::Path| {
        let mut stoker =
            process::spawn_stoker(&args.stoker, "ingest", &env, log, &args.stoker_log)?
                .with_metrics_port(metrics_port);
        let ready_in = process::until_ready(
            &mut stoker,
            "; probing until it is subscribed",
            async |stoker| wait_ready(stoker, &influx, &database, broker.port()).await,
        )
        .await?;
        progress!("Stoker stores readings {ready_in:.1?} after its start");
        anyhow::Ok(stoker)
    };
    let mut stoker = start_ingest(&args.log).await?;
    let mut procs = procs.with_stoker(stoker.pid());
    let mut watch = RssWatch::start(stoker.pid());
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
            "(b) end to end",
        ),
    )
    .await?;
    let full_rate = e2e.rate;
    report.figures.e2e = Some(e2e);
    settle().await;

    // ------------------------------------------------------- (g) mqtts
    // Right after (b), which it is compared with: InfluxDB slows down as a
    // run's data grows. (b)'s process stops first (a second subscriber
    // would take every message too), and a new one takes over after (g).
    if !args.no_mqtts {
        watch.stop();
        progress!(
            "stopped the plaintext ingest process of (b): {}",
            stoker.terminate().await
        );
        // Its persistent session would queue every message of (g).
        stoker_testkit::clear_mqtt_session_to(broker.port(), &client_id).await;
        settle().await;
        // A window of its own, before every other one: (e)'s layouts,
        // (f)'s and its births.
        let tls_base_ts = base_ts - (4 + args.lp_layout.len() as i64) * (per_site + 1_000);
        let phase = bounded(
            "(g) mqtts",
            e2e_limit + Duration::from_secs(90),
            mqtts(
                args,
                &fleet,
                &influx,
                &database,
                TlsTarget {
                    env: process::store_env(&postgres, &stoker_db, &redis),
                    url: broker.tls_url("localhost"),
                    ca_file: ca.ca_file(),
                    port: broker.port(),
                },
                &procs,
                messages,
                tls_base_ts,
                e2e_limit,
            ),
        )
        .await?;
        report.figures.mqtts = Some(phase);
        settle().await;
        stoker = start_ingest(&args.log.with_extension("after-mqtts.log")).await?;
        procs = procs.with_stoker(stoker.pid());
        watch = RssWatch::start(stoker.pid());
    }

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

    // ------------------------------------------------ (e) line protocol
    if !args.no_line_protocol {
        settle().await;
        // A window of its own, before (b)'s: every reading a new point.
        let lp_base_ts = base_ts - per_site - 1_000;
        let token = process::create_api_key(&args.stoker, &postgres.url(), "write").await?;
        let server = std::net::SocketAddr::from(([127, 0, 0, 1], stoker_testkit::free_port()));
        let mut api_env = process::store_env(&postgres, &stoker_db, &redis);
        api_env.push(("HTTP_ADDR", server.to_string()));
        let mut api = process::spawn_stoker(
            &args.stoker,
            "api",
            &api_env,
            &args.log.with_extension("api.log"),
            &args.stoker_log,
        )?;
        process::until_ready(
            &mut api,
            &format!(" on {server}; waiting for /readyz"),
            async |api| Ok(api.wait_ready(server, Duration::from_secs(60)).await?),
        )
        .await?;
        let lp_limit = Duration::from_secs(60) + Duration::from_secs(args.readings / 5_000);
        for (position, &layout) in args.lp_layout.iter().enumerate() {
            if position > 0 {
                settle().await;
            }
            // A window of its own for each layout, before the previous one.
            let base_ts = lp_base_ts - position as i64 * (per_site + 1_000);
            let phase = bounded(
                "(e) line protocol",
                lp_limit * 2 + Duration::from_secs(10),
                line_protocol(
                    args,
                    &fleet,
                    &influx,
                    &database,
                    LineTarget {
                        stoker: &mut api,
                        server,
                        token: &token,
                    },
                    layout,
                    &procs,
                    messages,
                    base_ts,
                    lp_limit,
                ),
            )
            .await?;
            report.figures.line_protocol.push(phase);
        }
        progress!("stopped stoker api: {}", api.terminate().await);
    }

    // ------------------------------------------------------ (f) Sparkplug
    if !args.no_sparkplug {
        settle().await;
        // A window of its own, before (e)'s; the births 500 ms before it.
        // Before every window of (e), one per layout.
        let sp_base_ts = base_ts - (2 + args.lp_layout.len() as i64) * (per_site + 1_000);
        let mut env = process::store_env(&postgres, &stoker_db, &redis);
        env.push(("MQTT_URL", broker.url()));
        let sp_limit = Duration::from_secs(60) + Duration::from_secs(args.readings / 5_000);
        let phase = bounded(
            "(f) Sparkplug",
            sp_limit + STARTUP * 2 + Duration::from_secs(60),
            sparkplug(
                args,
                &fleet,
                &influx,
                &database,
                SparkplugTarget {
                    env,
                    pool: &pool,
                    port: broker.port(),
                },
                &procs,
                messages,
                sp_base_ts,
                sp_limit,
            ),
        )
        .await?;
        report.figures.sparkplug = Some(phase);
    }

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

    watch.stop();
    report.record.stop_stoker(&mut stoker).await;

    // ------------------------------------------------------------ end
    progress!("removing the test broker and databases");
    drop(stoker);
    drop(redis);
    drop(stoker_db);
    drop(pool);
    drop(postgres);
    drop(broker);
    Ok(())
}

/// A pause between phases, so that one phase's tail (InfluxDB compactions,
/// the broker's bookkeeping) weighs less on the next.
async fn settle() {
    tokio::time::sleep(Duration::from_secs(2)).await;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn options_parse() {
        let args =
            Args::try_parse_from(["ingest", "--soak", "300s", "--readings", "1000"]).unwrap();
        assert_eq!(args.soak, Some(Duration::from_secs(300)));
        assert_eq!(args.readings, 1000);
        assert_eq!(args.latency_duration, Duration::from_secs(30));
    }
}
