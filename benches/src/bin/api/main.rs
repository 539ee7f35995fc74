//! The API benchmark (issue #4): the real `stoker api` binary as a child
//! process, loaded over loopback HTTP/1.1 keep-alive connections by this
//! process. See `benches/README.md`.
//!
//! Phases, in one run and in this order, each bounded and each after a
//! warm-up that is not counted:
//! - baseline: `GET /healthz` (no key check, no store): the server's HTTP
//!   stack with this client on this machine;
//! - latest: `GET /api/v1/sites/bench-1/latest` (20 sensors, all in Redis);
//! - baseline: the same history as one InfluxQL query over the raw
//!   readings, sent straight to InfluxDB (what history costs without the
//!   rollup);
//! - history: `GET …/sensors/sensor_00/history` over 24 h of 1 Hz readings
//!   by 1-minute means (1,440 points), which the API reads from the
//!   1-minute rollup that the rollup job's backfill wrote after seeding;
//! - then the API restarted with TLS (`HTTP_TLS_CERT`, `HTTP_TLS_KEY`: a
//!   certificate for `localhost` signed by a CA made for the run, which
//!   the client trusts and verifies by name): `/healthz` and latest again,
//!   over HTTPS (`--no-tls` skips them).
//!
//! The load generator is deliberately small: one task per connection, each
//! owning a `TcpStream`, writing a pre-built request and reading one
//! response at a time (status line, headers, a `Content-Length` or chunked
//! body). No HTTP library sits between the clock and the socket.
//!
//! `main` holds the options, the targets and the run in order; `seed`
//! writes the data, `http` and `load` generate the load, `checks` judge
//! the first answers and `results` writes the report. Modules share the
//! run's imports through `super::*`.

mod checks;
mod http;
mod load;
mod results;
mod seed;

use anyhow::{Context, anyhow};
use clap::Parser;
use serde_json::{Value, json};
use std::fmt::Write as _;
use std::net::SocketAddr;
use std::ops::Range;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;
use stoker_benches::harness::{self, bounded};
use stoker_benches::process::{self, Cpu, Procs, StokerProcess};
use stoker_benches::report::{self, Bound, Check, Figures, RunRecord, nearest_rank};
use stoker_benches::{influx, procstat};
use stoker_benches::{progress, rate, thousands, wall_millis};
use stoker_domain::{EpochMillis, SensorKey, SensorType, SiteSlug, parse_duration};
use stoker_testkit::{TestInflux, TestPostgres, TestRedis};
use stoker_timeseries::LineBatch;
use stoker_tls::MaybeTls;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::time::Instant;

use checks::*;
use http::*;
use load::*;
use results::*;
use seed::*;

/// Stoker's API benchmark (release build; one command, one report).
///
/// Starts the real `stoker api` as a child process on a fresh Postgres
/// database, InfluxDB database and Redis prefix; seeds one site of
/// `--sensors` sensors through the API, their latest values through
/// `POST …/telemetry` and 24 h of 1 Hz history for one sensor straight
/// into InfluxDB; then loads, from this process over loopback keep-alive
/// connections: GET /healthz (baseline: the server's HTTP stack), GET
/// …/latest, the history as a raw InfluxQL query sent straight to InfluxDB
/// (baseline: InfluxDB alone, without the rollup) and GET …/history (24 h
/// by 1-minute means, read from the rollup the job backfilled); then,
/// the API restarted with HTTPS (a certificate for localhost from a CA
/// made for the run), GET /healthz and …/latest again over TLS. Every
/// phase runs for a fixed time after a warm-up that is not counted.
/// Needs the local services of scripts/dev-up; the `benches/api` wrapper
/// starts them and builds the binaries first.
///
/// Exit status: 0 when every target passes, 1 when a target fails (or any
/// answer was not 200), 2 when the benchmark could not complete.
#[derive(Debug, Parser)]
#[command(name = "api", version)]
struct Args {
    /// Measured duration of the latest phase and of its /healthz baseline.
    #[arg(long, default_value = "15s", value_parser = parse_duration)]
    duration: Duration,

    /// Concurrent keep-alive connections of the latest phase and of its baseline.
    #[arg(long, default_value_t = 32)]
    connections: usize,

    /// Measured duration of the history phase and of its InfluxDB baseline.
    #[arg(long, default_value = "10s", value_parser = parse_duration)]
    history_duration: Duration,

    /// Concurrent keep-alive connections of the history phase and of its
    /// baseline. The default, 2, is one per core of the reference machine:
    /// it already saturates InfluxDB (4 connections give the same
    /// requests/s, with twice the latency spent queueing).
    #[arg(long, default_value_t = 2)]
    history_connections: usize,

    /// Warm-up before each phase: same load, not counted.
    #[arg(long, default_value = "2s", value_parser = parse_duration)]
    warmup: Duration,

    /// Worker threads of this process's runtime (the load generator). The
    /// machine's cores are shared with the server, Redis and InfluxDB.
    #[arg(long, default_value_t = 1)]
    client_threads: usize,

    /// Sensors of the benchmark site (all returned by /latest).
    #[arg(long, default_value_t = 20)]
    sensors: usize,

    /// The stoker binary under test (a release build).
    #[arg(long, default_value = "target/release/stoker")]
    stoker: PathBuf,

    /// Where the API process's log goes.
    #[arg(long, default_value = "target/bench-api-stoker.log")]
    log: PathBuf,

    /// RUST_LOG of the API process.
    #[arg(long, default_value = "warn")]
    stoker_log: String,

    /// Also write the results as JSON to this file.
    #[arg(long, value_name = "FILE")]
    json: Option<PathBuf>,

    /// Skip the HTTPS phases (the API restarted with HTTP_TLS_CERT and
    /// HTTP_TLS_KEY, a certificate for `localhost` signed by a CA made for
    /// the run: /healthz and latest again over TLS).
    #[arg(long)]
    no_tls: bool,
}

/// The benchmark site.
const SITE: &str = "bench-1";

/// The sensor with 24 h of history (`sensor_00`).
const HISTORY_SENSOR: usize = 0;

/// History: one reading per second for a day.
const HISTORY_POINTS: i64 = 86_400;

/// History: InfluxDB write size.
const HISTORY_BATCH: usize = 5_000;

/// History: the bucket width asked for, and the points it gives.
const HISTORY_EVERY_MS: i64 = 60_000;

const HISTORY_BUCKETS: usize = 1_440;

/// One request gets no answer within this long: counted as an error.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);

/// Read buffer of a connection (grows if a response needs more).
const READ_BUFFER: usize = 128 * 1024;

/// Targets of issue #4.
const TARGET_LATEST_RPS: f64 = 10_000.0;

const TARGET_LATEST_P99_MS: f64 = 10.0;

const TARGET_HISTORY_P99_MS: f64 = 100.0;

fn main() -> ExitCode {
    let args = Args::parse();
    harness::main(
        "api",
        Some(args.client_threads.max(1)),
        args.json.as_deref(),
        || Report {
            record: run_record(),
            figures: Results::new(&args),
        },
        async |report| run(&args, report).await,
    )
}

fn sensor_key(index: usize) -> String {
    format!("sensor_{index:02}")
}

/// Sensor `index`: alternately a temperature (°C) and a pressure (bar).
fn sensor_kind(index: usize) -> (&'static str, &'static str) {
    if index.is_multiple_of(2) {
        ("temperature", "°C")
    } else {
        ("pressure", "bar")
    }
}

async fn run(args: &Args, report: &mut Report) -> anyhow::Result<()> {
    if args.connections == 0 || args.history_connections == 0 || args.sensors == 0 {
        return Err(anyhow!(
            "--connections, --history-connections and --sensors must be at least 1"
        ));
    }
    if args.duration.is_zero() || args.history_duration.is_zero() {
        return Err(anyhow!(
            "--duration and --history-duration must be positive"
        ));
    }
    if !args.stoker.is_file() {
        return Err(anyhow!(
            "{} not found: build it with `cargo build --release -p stoker` (benches/api does)",
            args.stoker.display()
        ));
    }
    let influx_url = stoker_testkit::influx_options().url;
    report.figures.influx_version = influx::server_version(&influx_url).await;

    // ------------------------------------------------------------- setup
    progress!("setup: Postgres database, InfluxDB database, Redis prefix");
    // Declared first, dropped last: the Stoker process (declared later) is
    // stopped before its databases go.
    let (postgres, influx_db, redis) = bounded("setup", Duration::from_secs(60), async {
        let postgres = TestPostgres::create().await;
        let influx_db = TestInflux::create().await;
        anyhow::Ok((postgres, influx_db, TestRedis::new()))
    })
    .await?;
    let database = influx_db.influx().database().to_owned();
    let port = stoker_testkit::free_port();
    let server: SocketAddr = ([127, 0, 0, 1], port).into();
    let mut env = process::store_env(&postgres, &influx_db, &redis);
    env.push(("HTTP_ADDR", server.to_string()));
    let mut stoker = process::spawn_stoker(&args.stoker, "api", &env, &args.log, &args.stoker_log)?;
    let ready_in = process::until_ready(
        &mut stoker,
        &format!(" on {server}; waiting for /readyz"),
        async |stoker| Ok(stoker.wait_ready(server, Duration::from_secs(60)).await?),
    )
    .await?;
    progress!("/readyz answered 200 {ready_in:.1?} after the start");
    let procs = Procs::new(
        vec![
            ("redis", procstat::find_process("redis-server", None)),
            ("influxd", procstat::find_process("influxd", None)),
        ],
        true,
    )
    .with_stoker(stoker.pid());

    // ------------------------------------------------------------ seed
    let token = bounded(
        "API key",
        Duration::from_secs(60),
        process::create_api_key(&args.stoker, &postgres.url(), "admin"),
    )
    .await?;
    let history_end = bounded(
        "seeding",
        Duration::from_secs(120),
        seed(args, server, &token, &influx_db, &redis),
    )
    .await?;
    stoker.check_alive()?;
    let history_start = history_end - HISTORY_POINTS * 1000;

    // ----------------------------------------------------------- phases
    let auth = format!("Authorization: Bearer {token}\r\n");
    let host = format!("127.0.0.1:{port}");
    let healthz = Target::get(server, &host, "/healthz", &auth);
    let latest = Target::get(
        server,
        &host,
        &format!("/api/v1/sites/{SITE}/latest"),
        &auth,
    );
    let history = Target::get(
        server,
        &host,
        &format!(
            "/api/v1/sites/{SITE}/sensors/{}/history?start={history_start}&end={history_end}&every=1m",
            sensor_key(HISTORY_SENSOR)
        ),
        &auth,
    );
    let influx_target = influx_query_target(
        &influx_url,
        &database,
        &format!(
            "SELECT mean(\"value\") AS \"value\" FROM \"readings\" WHERE \"site\" = '{SITE}' AND \"sensor\" = '{}' AND time >= {history_start}ms AND time < {history_end}ms GROUP BY time({HISTORY_EVERY_MS}ms) fill(none)",
            sensor_key(HISTORY_SENSOR)
        ),
    )
    .await?;

    let sensors = args.sensors;
    let check_latest = move |body: &[u8]| check_latest_body(body, sensors);
    let phases: [(PhaseName, &Target, usize, Duration, BodyCheck<'_>); 4] = [
        (
            PhaseName::Healthz,
            &healthz,
            args.connections,
            args.duration,
            &check_healthz_body,
        ),
        (
            PhaseName::Latest,
            &latest,
            args.connections,
            args.duration,
            &check_latest,
        ),
        (
            PhaseName::Influx,
            &influx_target,
            args.history_connections,
            args.history_duration,
            &check_influx_body,
        ),
        (
            PhaseName::History,
            &history,
            args.history_connections,
            args.history_duration,
            &check_history_body,
        ),
    ];
    for (name, target, connections, duration, check) in phases {
        let result = measure(
            args,
            &mut stoker,
            &procs,
            name,
            target,
            connections,
            duration,
            check,
        )
        .await?;
        report.figures.phases.push((name, result));
    }

    // ------------------------------------------------------------ HTTPS
    if !args.no_tls {
        progress!(
            "stopped the plaintext stoker api: {}",
            stoker.terminate().await
        );
        let ca = stoker_testkit::TestCa::new();
        let cert = ca.server("api", &["localhost"]);
        let connector = stoker_tls::ClientTls {
            ca_file: Some(ca.ca_file().to_owned()),
            identity: None,
        }
        .connector()
        .context("the HTTPS client's TLS configuration")?;
        let port = stoker_testkit::free_port();
        let server: SocketAddr = ([127, 0, 0, 1], port).into();
        let mut env = process::store_env(&postgres, &influx_db, &redis);
        env.extend([
            ("HTTP_ADDR", server.to_string()),
            ("HTTP_TLS_CERT", cert.cert.display().to_string()),
            ("HTTP_TLS_KEY", cert.key.display().to_string()),
        ]);
        stoker = process::spawn_stoker(
            &args.stoker,
            "api",
            &env,
            &args.log.with_extension("https.log"),
            &args.stoker_log,
        )?;
        let host = format!("localhost:{port}");
        let over_tls = |path: &str| {
            Target::get(server, &host, path, &auth).over_tls(connector.clone(), "localhost")
        };
        let readyz = over_tls("/readyz");
        let ready_in = process::until_ready(
            &mut stoker,
            &format!(" on https://localhost:{port}; waiting for /readyz"),
            async |stoker| wait_ready_tls(stoker, &readyz).await,
        )
        .await?;
        progress!("/readyz answered 200 over HTTPS {ready_in:.1?} after the start");
        let procs = procs.clone().with_stoker(stoker.pid());
        let healthz = over_tls("/healthz");
        let latest = over_tls(&format!("/api/v1/sites/{SITE}/latest"));
        let phases: [(PhaseName, &Target, BodyCheck<'_>); 2] = [
            (PhaseName::HealthzTls, &healthz, &check_healthz_body),
            (PhaseName::LatestTls, &latest, &check_latest),
        ];
        for (name, target, check) in phases {
            let result = measure(
                args,
                &mut stoker,
                &procs,
                name,
                target,
                args.connections,
                args.duration,
                check,
            )
            .await?;
            report.figures.phases.push((name, result));
        }
    }

    // ------------------------------------------------------------ end
    report.record.stop_stoker(&mut stoker).await;
    progress!("removing the test databases");
    drop(stoker);
    drop(redis);
    drop(influx_db);
    drop(postgres);
    Ok(())
}

/// One phase: a first request checked, then the load, after a settling pause.
#[allow(clippy::too_many_arguments)]
async fn measure(
    args: &Args,
    stoker: &mut StokerProcess,
    procs: &Procs,
    name: PhaseName,
    target: &Target,
    connections: usize,
    duration: Duration,
    check: BodyCheck<'_>,
) -> anyhow::Result<LoadResult> {
    settle().await;
    stoker.check_alive()?;
    let (status, body) = probe(target)
        .await
        .with_context(|| format!("{}: the first request", name.label()))?;
    if status != 200 {
        return Err(anyhow!(
            "{}: the first request answered {status}: {}",
            name.label(),
            excerpt(&body)
        ));
    }
    let checked = check(&body).with_context(|| format!("{}: the first answer", name.label()))?;
    progress!(
        "{}: first answer 200, {} bytes, {checked}; {} connections, warm-up {:?}, then {:?} measured",
        name.label(),
        thousands(body.len() as u64),
        connections,
        args.warmup,
        duration
    );
    let limit = args.warmup + duration + REQUEST_TIMEOUT + Duration::from_secs(20);
    let mut result = bounded(
        name.label(),
        limit,
        load(target, connections, args.warmup, duration, procs),
    )
    .await?;
    result.body_bytes = body.len();
    result.checked = checked;
    progress!(
        "{}: {}{}",
        name.label(),
        result.summary(),
        result.others_text()
    );
    Ok(result)
}

/// Polls `GET /readyz` over HTTPS every 100 ms until it answers 200.
async fn wait_ready_tls(stoker: &mut StokerProcess, readyz: &Target) -> anyhow::Result<Duration> {
    let started = Instant::now();
    loop {
        stoker.check_alive()?;
        let last = match probe(readyz).await {
            Ok((200, _)) => return Ok(started.elapsed()),
            Ok((status, body)) => format!("{status}: {}", excerpt(&body)),
            Err(error) => format!("{error:#}"),
        };
        if started.elapsed() > Duration::from_secs(60) {
            return Err(anyhow!(
                "/readyz over HTTPS did not answer 200 within 60 s (last: {last}); Stoker's log:\n{}",
                stoker.log_tail(15)
            ));
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// A pause between phases, so one phase's tail weighs less on the next.
async fn settle() {
    tokio::time::sleep(Duration::from_secs(1)).await;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn options_parse() {
        let args = Args::try_parse_from(["api", "--duration", "5s", "--connections", "8"]).unwrap();
        assert_eq!(args.duration, Duration::from_secs(5));
        assert_eq!(args.connections, 8);
        assert_eq!(args.history_duration, Duration::from_secs(10));
        assert_eq!(args.history_connections, 2);
        assert_eq!(args.client_threads, 1);
    }
}
