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
//!   1-minute rollup that the rollup job's backfill wrote after seeding.
//!
//! The load generator is deliberately small: one task per connection, each
//! owning a `TcpStream`, writing a pre-built request and reading one
//! response at a time (status line, headers, a `Content-Length` or chunked
//! body). No HTTP library sits between the clock and the socket.

use std::fmt::Write as _;
use std::net::SocketAddr;
use std::ops::Range;
use std::path::{Path, PathBuf};
use std::process::{ExitCode, Stdio};
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, anyhow};
use clap::Parser;
use serde_json::{Value, json};
use stoker_benches::harness::{self, bounded};
use stoker_benches::process::{self, Cpu, Procs, StokerProcess, log_tail};
use stoker_benches::report::{self, Bound, Check, Figures, RunRecord, nearest_rank};
use stoker_benches::{influx, procstat};
use stoker_benches::{progress, rate, thousands, wall_millis};
use stoker_domain::{EpochMillis, SensorKey, SensorType, SiteSlug, parse_duration};
use stoker_testkit::{TestInflux, TestPostgres, TestRedis};
use stoker_timeseries::LineBatch;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::time::Instant;

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
/// by 1-minute means, read from the rollup the job backfilled). Every
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
    let port = process::free_port("Stoker's API")?;
    let server: SocketAddr = ([127, 0, 0, 1], port).into();
    let mut env = process::store_env(&postgres, &influx_db, &redis);
    env.push(("HTTP_ADDR", server.to_string()));
    let mut stoker = StokerProcess::spawn(&args.stoker, "api", &env, &args.log, &args.stoker_log)?;
    let ready_in = stoker
        .until_ready(
            &format!(" on {server}; waiting for /readyz"),
            async |stoker| wait_ready(stoker, server).await,
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
        create_api_key(&args.stoker, &postgres.url()),
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
        let checked =
            check(&body).with_context(|| format!("{}: the first answer", name.label()))?;
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
            load(target, connections, args.warmup, duration, &procs),
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
        report.figures.phases.push((name, result));
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

/// Checks the first answer of a phase; says what it found.
type BodyCheck<'a> = &'a dyn Fn(&[u8]) -> anyhow::Result<String>;

/// A pause between phases, so one phase's tail weighs less on the next.
async fn settle() {
    tokio::time::sleep(Duration::from_secs(1)).await;
}

/// Polls `/readyz` every 100 ms until it answers 200.
async fn wait_ready(stoker: &mut StokerProcess, server: SocketAddr) -> anyhow::Result<Duration> {
    let started = Instant::now();
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(3))
        .build()?;
    let url = format!("http://{server}/readyz");
    loop {
        stoker.check_alive()?;
        let last = match client.get(&url).send().await {
            Ok(response) if response.status().is_success() => return Ok(started.elapsed()),
            Ok(response) => {
                format!(
                    "{}: {}",
                    response.status(),
                    response.text().await.unwrap_or_default()
                )
            }
            Err(error) => error.to_string(),
        };
        if started.elapsed() > Duration::from_secs(60) {
            return Err(anyhow!(
                "/readyz did not answer 200 within 60 s (last: {last}); Stoker's log:\n{}",
                log_tail(stoker.log(), 15)
            ));
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// `stoker apikey create --name bench --scopes admin`: the token alone on stdout.
async fn create_api_key(stoker: &Path, database_url: &str) -> anyhow::Result<String> {
    let output = tokio::process::Command::new(stoker)
        .args(["apikey", "create", "--name", "bench", "--scopes", "admin"])
        .env("DATABASE_URL", database_url)
        .env("RUST_LOG", "warn")
        .stdin(Stdio::null())
        .kill_on_drop(true)
        .output()
        .await
        .with_context(|| format!("running {} apikey create", stoker.display()))?;
    let token = String::from_utf8_lossy(&output.stdout).trim().to_owned();
    if !output.status.success() || token.is_empty() || token.contains(char::is_whitespace) {
        return Err(anyhow!(
            "{} apikey create failed ({}): {}",
            stoker.display(),
            output.status,
            String::from_utf8_lossy(&output.stderr).trim()
        ));
    }
    progress!("created an admin API key (stoker apikey create)");
    Ok(token)
}

/// Seeds the site and its sensors through the API, their latest values
/// through `POST …/telemetry` (waiting until Redis holds all of them), and
/// 24 h of 1 Hz history of one sensor straight into InfluxDB. Returns the
/// end of that history (epoch ms, a whole minute; exclusive).
async fn seed(
    args: &Args,
    server: SocketAddr,
    token: &str,
    influx_db: &TestInflux,
    redis: &TestRedis,
) -> anyhow::Result<i64> {
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(30))
        .build()?;
    let base = format!("http://{server}/api/v1");
    let post = |path: String, body: Value| {
        let request = client
            .post(format!("{base}{path}"))
            .bearer_auth(token)
            .json(&body);
        async move {
            let response = request
                .send()
                .await
                .with_context(|| format!("POST {path}"))?;
            let status = response.status();
            let text = response.text().await.unwrap_or_default();
            if !status.is_success() {
                return Err(anyhow!("POST {path} answered {status}: {text}"));
            }
            anyhow::Ok(text)
        }
    };
    post(
        "/sites".into(),
        json!({"slug": SITE, "name": "Benchmark boiler house 1", "timezone": "UTC"}),
    )
    .await?;
    for index in 0..args.sensors {
        let (sensor_type, unit) = sensor_kind(index);
        post(
            format!("/sites/{SITE}/sensors"),
            json!({"key": sensor_key(index), "type": sensor_type, "unit": unit, "min": -1.0e6, "max": 1.0e6}),
        )
        .await?;
    }
    progress!(
        "seed: site {SITE} with {} sensors created through the API",
        args.sensors
    );

    // Latest values: one telemetry body with every sensor.
    let now = wall_millis();
    let values: serde_json::Map<String, Value> = (0..args.sensors)
        .map(|index| (sensor_key(index), json!(100.0 + index as f64 + 0.5)))
        .collect();
    // Ingestion learns new sensors asynchronously (Postgres notifications):
    // right after their creation some may still be refused as unknown. The
    // same body again is harmless (same points), so retry for a while.
    let posting = Instant::now();
    let mut attempts = 0;
    loop {
        attempts += 1;
        let answer = post(
            format!("/sites/{SITE}/telemetry"),
            json!({"ts": now, "values": values}),
        )
        .await?;
        let accepted = serde_json::from_str::<Value>(&answer)
            .ok()
            .and_then(|body| body["accepted"].as_u64());
        if accepted == Some(args.sensors as u64) {
            break;
        }
        if posting.elapsed() > Duration::from_secs(15) {
            return Err(anyhow!(
                "POST /sites/{SITE}/telemetry accepted {accepted:?} of {} readings after {attempts} attempts over 15 s: {answer}",
                args.sensors
            ));
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    if attempts > 1 {
        progress!(
            "seed: POST /telemetry refused some just-created sensors as unknown; all {} accepted at attempt {attempts}, {:.0?} after the first",
            args.sensors,
            posting.elapsed()
        );
    }
    let site = SiteSlug::parse(SITE)?;
    let keys: Vec<SensorKey> = (0..args.sensors)
        .map(|index| SensorKey::parse(sensor_key(index)))
        .collect::<Result<_, _>>()?;
    let cache = redis.cache();
    let waiting = Instant::now();
    loop {
        let cached = cache.latest(&site, &keys).await.map_or(0, |values| {
            values.iter().filter(|value| value.is_some()).count()
        });
        if cached == keys.len() {
            break;
        }
        if waiting.elapsed() > Duration::from_secs(30) {
            return Err(anyhow!(
                "only {cached} of {} latest values reached Redis within 30 s of the telemetry POST",
                keys.len()
            ));
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    progress!(
        "seed: {} latest values posted to /telemetry, all in Redis after {:.0?}",
        args.sensors,
        waiting.elapsed()
    );

    // History: 86,400 readings, 1 s apart, ending at the last whole minute.
    let end = now - now.rem_euclid(HISTORY_EVERY_MS);
    let start = end - HISTORY_POINTS * 1000;
    let sensor = &keys[HISTORY_SENSOR];
    let sensor_type = SensorType::parse(sensor_kind(HISTORY_SENSOR).0)?;
    let influx = influx_db.influx();
    let writing = Instant::now();
    let mut batch = LineBatch::with_capacity(HISTORY_BATCH);
    for second in 0..HISTORY_POINTS {
        let value = 180.0 + 20.0 * (second as f64 / 3600.0).sin() + (second % 7) as f64 * 0.1;
        batch.push(
            &site,
            sensor,
            &sensor_type,
            value,
            EpochMillis::from_millis(start + second * 1000)?,
        );
        if batch.len() >= HISTORY_BATCH {
            influx.write(&batch).await.context("writing history")?;
            batch.clear();
        }
    }
    influx.write(&batch).await.context("writing history")?;
    progress!(
        "seed: {} readings of {SITE}/{} (1 Hz, 24 h) written to InfluxDB in {}-line batches in {:.1?}",
        thousands(HISTORY_POINTS as u64),
        sensor,
        thousands(HISTORY_BATCH as u64),
        writing.elapsed()
    );
    // What the rollup job of a running platform does: its first pass on a
    // database without a rollup backfills every minute since the oldest
    // reading (`stoker api` ran `stoker influx setup` at start).
    let rolling = Instant::now();
    let pass = stoker_analytics::rollup::pass_now(influx)
        .await
        .context("rolling the history up into readings_1m")?;
    progress!(
        "seed: the rollup job's backfill wrote {} readings_1m points (from {} readings) in {:.1?}",
        thousands(pass.points),
        thousands(pass.readings),
        rolling.elapsed()
    );
    Ok(end)
}

/// A GET to InfluxDB's `/query` on the test database.
async fn influx_query_target(base: &str, database: &str, query: &str) -> anyhow::Result<Target> {
    let url = reqwest::Url::parse_with_params(
        &format!("{}/query", base.trim_end_matches('/')),
        [("db", database), ("epoch", "ms"), ("q", query)],
    )
    .with_context(|| format!("InfluxDB URL {base}"))?;
    if url.scheme() != "http" {
        return Err(anyhow!(
            "the InfluxDB baseline speaks plain HTTP only; INFLUX_URL is {base}"
        ));
    }
    let host = url.host_str().unwrap_or("127.0.0.1").to_owned();
    let port = url.port_or_known_default().unwrap_or(8086);
    let addr = tokio::net::lookup_host((host.as_str(), port))
        .await
        .with_context(|| format!("resolving {host}"))?
        .next()
        .ok_or_else(|| anyhow!("{host} resolves to no address"))?;
    let path = format!("{}?{}", url.path(), url.query().unwrap_or_default());
    Ok(Target::get(addr, &format!("{host}:{port}"), &path, ""))
}

fn excerpt(body: &[u8]) -> String {
    String::from_utf8_lossy(&body[..body.len().min(500)]).into_owned()
}

fn check_healthz_body(body: &[u8]) -> anyhow::Result<String> {
    let value: Value = serde_json::from_slice(body).context("decoding /healthz")?;
    if value["status"] != "ok" {
        return Err(anyhow!("unexpected /healthz body: {}", excerpt(body)));
    }
    Ok("status ok".into())
}

fn check_latest_body(body: &[u8], sensors: usize) -> anyhow::Result<String> {
    let value: Value = serde_json::from_slice(body).context("decoding /latest")?;
    let readings = value["readings"].as_array().cloned().unwrap_or_default();
    let with_value = readings
        .iter()
        .filter(|reading| reading["value"].is_f64())
        .count();
    if readings.len() != sensors || with_value != sensors {
        return Err(anyhow!(
            "expected {sensors} readings with values, got {} ({with_value} with values): {}",
            readings.len(),
            excerpt(body)
        ));
    }
    Ok(format!("{sensors} readings with values"))
}

fn check_points(points: usize, body: &[u8]) -> anyhow::Result<String> {
    if points.abs_diff(HISTORY_BUCKETS) > 1 {
        return Err(anyhow!(
            "expected {HISTORY_BUCKETS} points (±1), got {points}: {}",
            excerpt(body)
        ));
    }
    Ok(format!("{} points", thousands(points as u64)))
}

fn check_history_body(body: &[u8]) -> anyhow::Result<String> {
    let value: Value = serde_json::from_slice(body).context("decoding /history")?;
    let points = value["points"].as_array().map_or(0, Vec::len);
    check_points(points, body)
}

fn check_influx_body(body: &[u8]) -> anyhow::Result<String> {
    let value: Value = serde_json::from_slice(body).context("decoding InfluxDB's answer")?;
    let points = value["results"][0]["series"][0]["values"]
        .as_array()
        .map_or(0, Vec::len);
    check_points(points, body)
}

// ------------------------------------------------------------------ client

/// One request to send again and again: the address and the request bytes.
#[derive(Debug, Clone)]
struct Target {
    addr: SocketAddr,
    path: String,
    request: Arc<[u8]>,
}

impl Target {
    /// `GET path` with `extra_headers` (each ending in CRLF).
    fn get(addr: SocketAddr, host: &str, path: &str, extra_headers: &str) -> Self {
        let request = format!(
            "GET {path} HTTP/1.1\r\nHost: {host}\r\nUser-Agent: stoker-bench-api\r\nAccept: application/json\r\n{extra_headers}\r\n"
        );
        Self {
            addr,
            path: path.to_owned(),
            request: Arc::from(request.into_bytes()),
        }
    }
}

/// How a response's body is delimited.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Framing {
    Length(usize),
    Chunked,
}

/// A parsed status line and headers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Head {
    status: u16,
    /// Bytes of the status line and headers, blank line included.
    len: usize,
    framing: Framing,
    /// `Connection: close`: the server closes after this response.
    close: bool,
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack
        .windows(needle.len())
        .position(|window| window == needle)
}

/// The head of a response, once `data` holds all of it.
fn parse_head(data: &[u8]) -> Result<Option<Head>, String> {
    let Some(end) = find(data, b"\r\n\r\n") else {
        if data.len() > 64 * 1024 {
            return Err("response headers over 64 KiB".into());
        }
        return Ok(None);
    };
    let text = std::str::from_utf8(&data[..end]).map_err(|_| "non-UTF-8 response head")?;
    let mut lines = text.split("\r\n");
    let status_line = lines.next().unwrap_or_default();
    let status = status_line
        .strip_prefix("HTTP/1.1 ")
        .or_else(|| status_line.strip_prefix("HTTP/1.0 "))
        .and_then(|rest| rest.get(..3))
        .and_then(|code| code.parse::<u16>().ok())
        .ok_or_else(|| format!("bad status line {status_line:?}"))?;
    let mut length = None;
    let mut chunked = false;
    let mut close = status_line.starts_with("HTTP/1.0");
    for line in lines {
        let Some((name, value)) = line.split_once(':') else {
            continue;
        };
        let value = value.trim();
        if name.eq_ignore_ascii_case("content-length") {
            length = Some(
                value
                    .parse::<usize>()
                    .map_err(|_| format!("bad Content-Length {value:?}"))?,
            );
        } else if name.eq_ignore_ascii_case("transfer-encoding") {
            chunked = value.to_ascii_lowercase().contains("chunked");
        } else if name.eq_ignore_ascii_case("connection") {
            close = value.eq_ignore_ascii_case("close");
        }
    }
    let framing = if chunked {
        Framing::Chunked
    } else if let Some(length) = length {
        Framing::Length(length)
    } else if status == 204 || status == 304 || (100..200).contains(&status) {
        Framing::Length(0)
    } else {
        return Err(format!(
            "answer {status} has neither Content-Length nor chunked encoding"
        ));
    };
    Ok(Some(Head {
        status,
        len: end + 4,
        framing,
        close,
    }))
}

/// Decodes a chunked body from `data` into `out` once `data` holds all of
/// it; returns the bytes it took (trailers included).
fn parse_chunked(data: &[u8], out: &mut Vec<u8>) -> Result<Option<usize>, String> {
    out.clear();
    let mut at = 0;
    loop {
        let Some(line_end) = find(&data[at..], b"\r\n") else {
            return Ok(None);
        };
        let line = std::str::from_utf8(&data[at..at + line_end]).map_err(|_| "bad chunk size")?;
        let size_text = line.split(';').next().unwrap_or_default().trim();
        let size = usize::from_str_radix(size_text, 16)
            .map_err(|_| format!("bad chunk size {size_text:?}"))?;
        at += line_end + 2;
        if size == 0 {
            // Trailers, each ending in CRLF, then an empty line.
            loop {
                let Some(line_end) = find(&data[at..], b"\r\n") else {
                    return Ok(None);
                };
                at += line_end + 2;
                if line_end == 0 {
                    return Ok(Some(at));
                }
            }
        }
        if data.len() < at + size + 2 {
            return Ok(None);
        }
        out.extend_from_slice(&data[at..at + size]);
        if &data[at + size..at + size + 2] != b"\r\n" {
            return Err("chunk not followed by CRLF".into());
        }
        at += size + 2;
    }
}

/// Where the body of the last response is.
#[derive(Debug, Clone)]
enum BodyAt {
    Buffer(Range<usize>),
    Decoded,
}

/// One keep-alive connection, reading one response at a time.
#[derive(Debug)]
struct Conn {
    addr: SocketAddr,
    stream: Option<TcpStream>,
    buf: Vec<u8>,
    /// Unconsumed bytes are `buf[start..filled]`.
    start: usize,
    filled: usize,
    decoded: Vec<u8>,
}

impl Conn {
    fn new(addr: SocketAddr) -> Self {
        Self {
            addr,
            stream: None,
            buf: vec![0; READ_BUFFER],
            start: 0,
            filled: 0,
            decoded: Vec::new(),
        }
    }

    fn body(&self, at: &BodyAt) -> &[u8] {
        match at {
            BodyAt::Buffer(range) => &self.buf[range.clone()],
            BodyAt::Decoded => &self.decoded,
        }
    }

    fn reset(&mut self) {
        self.stream = None;
        self.start = 0;
        self.filled = 0;
    }

    /// Sends `request` and reads its response: the status and where its body is.
    async fn exchange(&mut self, request: &[u8]) -> std::io::Result<(u16, BodyAt)> {
        let invalid =
            |message: String| std::io::Error::new(std::io::ErrorKind::InvalidData, message);
        if self.stream.is_none() {
            let stream = TcpStream::connect(self.addr).await?;
            stream.set_nodelay(true)?;
            self.stream = Some(stream);
            self.start = 0;
            self.filled = 0;
        }
        // The previous response's bytes are no longer needed.
        if self.start > 0 {
            self.buf.copy_within(self.start..self.filled, 0);
            self.filled -= self.start;
            self.start = 0;
        }
        let Some(stream) = self.stream.as_mut() else {
            return Err(invalid("no connection".into()));
        };
        stream.write_all(request).await?;
        loop {
            let data = &self.buf[self.start..self.filled];
            if let Some(head) = parse_head(data).map_err(invalid)? {
                let done = match head.framing {
                    Framing::Length(length) if data.len() >= head.len + length => Some((
                        head.len + length,
                        BodyAt::Buffer(self.start + head.len..self.start + head.len + length),
                    )),
                    Framing::Length(_) => None,
                    Framing::Chunked => parse_chunked(&data[head.len..], &mut self.decoded)
                        .map_err(invalid)?
                        .map(|taken| (head.len + taken, BodyAt::Decoded)),
                };
                if let Some((taken, body)) = done {
                    self.start += taken;
                    if head.close {
                        // The body stays readable until the next exchange.
                        self.stream = None;
                    }
                    return Ok((head.status, body));
                }
            }
            if self.filled == self.buf.len() {
                let grown = self.buf.len() * 2;
                self.buf.resize(grown, 0);
            }
            let read = stream.read(&mut self.buf[self.filled..]).await?;
            if read == 0 {
                return Err(std::io::Error::new(
                    std::io::ErrorKind::UnexpectedEof,
                    "the server closed the connection",
                ));
            }
            self.filled += read;
        }
    }
}

/// One request on a fresh connection: status and body.
async fn probe(target: &Target) -> anyhow::Result<(u16, Vec<u8>)> {
    let mut conn = Conn::new(target.addr);
    let (status, at) = tokio::time::timeout(REQUEST_TIMEOUT, conn.exchange(&target.request))
        .await
        .map_err(|_| anyhow!("no answer within {REQUEST_TIMEOUT:?}"))?
        .with_context(|| format!("GET {} on {}", target.path, target.addr))?;
    Ok((status, conn.body(&at).to_vec()))
}

/// What one connection saw.
#[derive(Debug, Default)]
struct WorkerTally {
    /// Latencies of the requests started in the measured window, µs.
    latencies_us: Vec<u32>,
    /// Requests started in the warm-up.
    warmup: u64,
    /// Non-200 answers (warm-up included).
    non_200: u64,
    /// Requests without an answer: I/O errors, malformed answers, timeouts.
    errors: u64,
    /// The first non-200 answer or error.
    first_failure: Option<String>,
    /// Connections opened.
    connects: u64,
}

async fn worker(target: Target, measure_from: Instant, end: Instant) -> WorkerTally {
    let mut tally = WorkerTally {
        latencies_us: Vec::with_capacity(64 * 1024),
        ..WorkerTally::default()
    };
    let mut conn = Conn::new(target.addr);
    loop {
        let started = Instant::now();
        if started >= end {
            break;
        }
        if conn.stream.is_none() {
            tally.connects += 1;
        }
        let outcome = tokio::time::timeout(REQUEST_TIMEOUT, conn.exchange(&target.request)).await;
        let took = started.elapsed();
        let failure = match outcome {
            Ok(Ok((200, _))) => None,
            Ok(Ok((status, at))) => {
                tally.non_200 += 1;
                Some(format!(
                    "answer {status} to GET {}: {}",
                    target.path,
                    excerpt(conn.body(&at))
                ))
            }
            Ok(Err(error)) => {
                tally.errors += 1;
                conn.reset();
                Some(format!("GET {}: {error}", target.path))
            }
            Err(_) => {
                tally.errors += 1;
                conn.reset();
                Some(format!(
                    "GET {}: no answer within {REQUEST_TIMEOUT:?}",
                    target.path
                ))
            }
        };
        if let Some(failure) = failure {
            if tally.first_failure.is_none() {
                tally.first_failure = Some(failure);
            }
            // A refused connection must not spin.
            tokio::time::sleep(Duration::from_millis(10)).await;
            continue;
        }
        if started >= measure_from {
            tally
                .latencies_us
                .push(u32::try_from(took.as_micros()).unwrap_or(u32::MAX));
        } else {
            tally.warmup += 1;
        }
    }
    tally
}

/// One load phase's figures.
#[derive(Debug, Clone, Default)]
struct LoadResult {
    connections: usize,
    seconds: f64,
    requests: u64,
    warmup_requests: u64,
    p50_ms: f64,
    p90_ms: f64,
    p99_ms: f64,
    max_ms: f64,
    mean_ms: f64,
    non_200: u64,
    errors: u64,
    connects: u64,
    first_failure: Option<String>,
    cpu: Cpu,
    /// The busiest other processes during the phase: (command, CPU seconds).
    others: Vec<(String, f64)>,
    body_bytes: usize,
    checked: String,
}

impl LoadResult {
    fn rate(&self) -> f64 {
        self.requests as f64 / self.seconds
    }

    fn failures(&self) -> u64 {
        self.non_200 + self.errors
    }

    fn summary(&self) -> String {
        format!(
            "{} req/s ({} requests in {:.1} s), p50 {:.2} ms, p99 {:.2} ms, max {:.2} ms; {} non-200, {} errors; CPU {}",
            rate(self.rate()),
            thousands(self.requests),
            self.seconds,
            self.p50_ms,
            self.p99_ms,
            self.max_ms,
            self.non_200,
            self.errors,
            self.cpu.describe(self.seconds)
        )
    }

    /// The busiest other processes, e.g. " (of which rustc 8.1 s, cc1 1.0 s)".
    fn others_text(&self) -> String {
        if self.others.is_empty() {
            return String::new();
        }
        let list: Vec<String> = self
            .others
            .iter()
            .map(|(command, seconds)| format!("{command} {seconds:.1} s"))
            .collect();
        format!(" (busiest: {})", list.join(", "))
    }

    /// Stoker's CPU time per request, µs.
    fn stoker_us_per_request(&self) -> f64 {
        self.cpu.stoker() / self.requests.max(1) as f64 * 1e6
    }
}

/// The `q`-quantile of sorted values (nearest rank), ms.
fn quantile_ms(sorted_us: &[u32], q: f64) -> f64 {
    nearest_rank(sorted_us.len(), q).map_or(f64::NAN, |index| f64::from(sorted_us[index]) / 1000.0)
}

/// `connections` workers on `target`: a warm-up, then `duration` measured.
async fn load(
    target: &Target,
    connections: usize,
    warmup: Duration,
    duration: Duration,
    procs: &Procs,
) -> anyhow::Result<LoadResult> {
    let measure_from = Instant::now() + warmup;
    let end = measure_from + duration;
    let workers: Vec<_> = (0..connections)
        .map(|_| tokio::spawn(worker(target.clone(), measure_from, end)))
        .collect();
    tokio::time::sleep_until(measure_from).await;
    let cpu_before = procs.cpu();
    let others_before = procstat::all_cpu_ticks();
    tokio::time::sleep_until(end).await;
    let cpu = procs.cpu() - cpu_before;
    let others = procs.busiest_others(&others_before, &procstat::all_cpu_ticks());
    let mut result = LoadResult {
        connections,
        seconds: duration.as_secs_f64(),
        cpu,
        others,
        ..LoadResult::default()
    };
    let mut latencies = Vec::new();
    for worker in workers {
        let tally = worker.await.context("load worker")?;
        latencies.extend_from_slice(&tally.latencies_us);
        result.warmup_requests += tally.warmup;
        result.non_200 += tally.non_200;
        result.errors += tally.errors;
        result.connects += tally.connects;
        if result.first_failure.is_none() {
            result.first_failure = tally.first_failure;
        }
    }
    latencies.sort_unstable();
    result.requests = latencies.len() as u64;
    result.p50_ms = quantile_ms(&latencies, 0.50);
    result.p90_ms = quantile_ms(&latencies, 0.90);
    result.p99_ms = quantile_ms(&latencies, 0.99);
    result.max_ms = quantile_ms(&latencies, 1.0);
    result.mean_ms = latencies.iter().map(|us| f64::from(*us)).sum::<f64>()
        / latencies.len().max(1) as f64
        / 1000.0;
    Ok(result)
}

// ------------------------------------------------------------------ report

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum PhaseName {
    Healthz,
    Latest,
    Influx,
    History,
}

impl PhaseName {
    fn label(self) -> &'static str {
        match self {
            PhaseName::Healthz => "baseline /healthz",
            PhaseName::Latest => "latest",
            PhaseName::Influx => "baseline InfluxDB",
            PhaseName::History => "history",
        }
    }

    fn row(self) -> &'static str {
        match self {
            PhaseName::Healthz => "baseline: the server's HTTP stack (GET /healthz)",
            PhaseName::Latest => "latest: GET …/sites/bench-1/latest",
            PhaseName::Influx => "baseline: InfluxDB alone (raw query, /query)",
            PhaseName::History => "history: GET …/history, 24 h, every=1m",
        }
    }

    fn key(self) -> &'static str {
        match self {
            PhaseName::Healthz => "healthz",
            PhaseName::Latest => "latest",
            PhaseName::Influx => "influx",
            PhaseName::History => "history",
        }
    }
}

type Report = report::Report<Results>;

/// The figures of one run.
#[derive(Debug)]
struct Results {
    influx_version: String,
    client_threads: usize,
    phases: Vec<(PhaseName, LoadResult)>,
}

/// The run's record. It reports the settings Stoker reads from the
/// environment it inherits (these prefixes), other than those the
/// benchmark sets itself.
fn run_record() -> RunRecord {
    RunRecord::gather(
        "benches/api",
        &[
            "HTTP_",
            "API_",
            "INGEST_",
            "INFLUX_",
            "REDIS_",
            "POSTGRES_",
            "STOKER_",
        ],
        &[
            "DATABASE_URL",
            "INFLUX_URL",
            "INFLUX_BUCKET",
            "REDIS_URL",
            "REDIS_KEY_PREFIX",
            "HTTP_ADDR",
            "INGEST_SPOOL_DIR",
        ],
    )
}

impl Results {
    fn new(args: &Args) -> Self {
        Self {
            influx_version: String::new(),
            client_threads: args.client_threads.max(1),
            phases: Vec::new(),
        }
    }

    fn phase(&self, name: PhaseName) -> Option<&LoadResult> {
        self.phases
            .iter()
            .find(|(phase, _)| *phase == name)
            .map(|(_, result)| result)
    }
}

impl Figures for Results {
    const NOUN: &'static str = "API";
    const TARGET_WIDTHS: [usize; 3] = [44, 20, 16];

    fn checks(&self) -> Vec<Check> {
        let mut checks = Vec::new();
        if let Some(latest) = self.phase(PhaseName::Latest) {
            checks.push(Check::new(
                "latest: requests/s",
                latest.rate(),
                Bound::AtLeast,
                TARGET_LATEST_RPS,
                format!("{} req/s", rate(latest.rate())),
                format!("≥ {} req/s", rate(TARGET_LATEST_RPS)),
            ));
        }
        // (phase, target name, limit, decimals of the measured figure)
        let p99_targets = [
            (PhaseName::Latest, "latest: p99", TARGET_LATEST_P99_MS, 2),
            (
                PhaseName::History,
                "history (24 h, 1,440 points): p99",
                TARGET_HISTORY_P99_MS,
                1,
            ),
        ];
        for (phase, name, limit, decimals) in p99_targets {
            if let Some(result) = self.phase(phase) {
                checks.push(Check::new(
                    name,
                    result.p99_ms,
                    Bound::Below,
                    limit,
                    format!("{:.decimals$} ms", result.p99_ms),
                    format!("< {limit:.0} ms"),
                ));
            }
        }
        if !self.phases.is_empty() {
            let failures: u64 = self
                .phases
                .iter()
                .map(|(_, result)| result.failures())
                .sum();
            let answers: u64 = self
                .phases
                .iter()
                .map(|(_, result)| result.requests + result.warmup_requests + result.failures())
                .sum();
            checks.push(Check {
                name: "every answer 200 (all phases, warm-ups too)",
                measured: format!("{} of {} not", thousands(failures), thousands(answers)),
                target: "0 not".into(),
                ratio: failures as f64,
                pass: failures == 0,
            });
        }
        checks
    }

    fn write_body(&self, out: &mut String, record: &RunRecord) {
        let _ = writeln!(
            out,
            "  servers   stoker api (child process, release); InfluxDB {}; Redis; Postgres",
            self.influx_version
        );
        let _ = writeln!(
            out,
            "  client    this process: {} runtime thread(s), one keep-alive HTTP/1.1 connection per task, one request in flight per connection",
            self.client_threads
        );
        record.write_settings(
            out,
            "its defaults (no HTTP_*/API_*/INFLUX_*/REDIS_*/… settings inherited)",
        );
        if !self.phases.is_empty() {
            let _ = writeln!(out);
            let _ = writeln!(
                out,
                "  {:<50} {:>5} {:>9} {:>8} {:>8} {:>8} {:>8}  detail",
                "measurement", "conns", "req/s", "p50 ms", "p90 ms", "p99 ms", "max ms"
            );
            for (name, result) in &self.phases {
                let _ = writeln!(
                    out,
                    "  {:<50} {:>5} {:>9} {:>8.2} {:>8.2} {:>8.2} {:>8.2}  {} requests in {:.0} s; {} bytes per answer ({}); stoker {:.0} µs CPU per request",
                    name.row(),
                    result.connections,
                    rate(result.rate()),
                    result.p50_ms,
                    result.p90_ms,
                    result.p99_ms,
                    result.max_ms,
                    thousands(result.requests),
                    result.seconds,
                    thousands(result.body_bytes as u64),
                    result.checked,
                    result.stoker_us_per_request()
                );
            }
            let ratio = |over: PhaseName, under: PhaseName| {
                Some(self.phase(over)?.rate() / self.phase(under)?.rate())
            };
            if let Some(share) = ratio(PhaseName::Latest, PhaseName::Healthz) {
                let _ = writeln!(
                    out,
                    "  latest / baseline /healthz: {:.1}% of the requests/s of the server's HTTP stack",
                    share * 100.0
                );
            }
            if let (Some(history), Some(influx)) = (
                self.phase(PhaseName::History),
                self.phase(PhaseName::Influx),
            ) {
                let _ = writeln!(
                    out,
                    "  history / baseline InfluxDB: {:.1}% of the requests/s, p50 {:+.2} ms and p99 {:+.2} ms over InfluxDB alone",
                    history.rate() / influx.rate() * 100.0,
                    history.p50_ms - influx.p50_ms,
                    history.p99_ms - influx.p99_ms
                );
            }
            let _ = writeln!(out);
            for (name, result) in &self.phases {
                let _ = writeln!(
                    out,
                    "  CPU during {} ({:.0} s): {}{}",
                    name.label(),
                    result.seconds,
                    result.cpu.describe(result.seconds),
                    result.others_text()
                );
            }
            for (name, result) in &self.phases {
                if let Some(failure) = &result.first_failure {
                    let _ = writeln!(
                        out,
                        "  {}: {} non-200, {} errors; the first: {failure}",
                        name.label(),
                        result.non_200,
                        result.errors
                    );
                }
            }
        }
    }

    fn json(&self) -> Value {
        let finite = |value: f64| value.is_finite().then_some(value);
        let phases: serde_json::Map<String, Value> = self
            .phases
            .iter()
            .map(|(name, result)| {
                (
                    name.key().to_owned(),
                    json!({
                        "connections": result.connections,
                        "seconds": result.seconds,
                        "requests": result.requests,
                        "warmup_requests": result.warmup_requests,
                        "requests_per_second": finite(result.rate()),
                        "p50_ms": finite(result.p50_ms), "p90_ms": finite(result.p90_ms),
                        "p99_ms": finite(result.p99_ms), "max_ms": finite(result.max_ms),
                        "mean_ms": finite(result.mean_ms),
                        "non_200": result.non_200, "errors": result.errors,
                        "connects": result.connects,
                        "first_failure": result.first_failure,
                        "body_bytes": result.body_bytes,
                        "cpu_seconds": result.cpu.json(),
                        "busiest_other_processes": result.others.iter().map(|(command, seconds)| json!([command, seconds])).collect::<Vec<_>>(),
                        "stoker_cpu_us_per_request": finite(result.stoker_us_per_request()),
                    }),
                )
            })
            .collect();
        json!({
            "influxdb": self.influx_version,
            "client_threads": self.client_threads,
            "phases": phases,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn heads_are_parsed_once_complete() {
        let text = b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\nContent-Length: 15\r\n\r\n{\"status\":\"ok\"}";
        assert_eq!(parse_head(&text[..20]), Ok(None));
        let head = parse_head(text).unwrap().unwrap();
        assert_eq!(head.status, 200);
        assert_eq!(head.framing, Framing::Length(15));
        assert_eq!(&text[head.len..], b"{\"status\":\"ok\"}");
        assert!(!head.close);
        let closing = parse_head(
            b"HTTP/1.1 503 Service Unavailable\r\nConnection: close\r\ntransfer-encoding: chunked\r\n\r\n",
        )
        .unwrap()
        .unwrap();
        assert_eq!((closing.status, closing.framing), (503, Framing::Chunked));
        assert!(closing.close);
        assert!(parse_head(b"HTTP/1.1 200 OK\r\n\r\n").is_err());
        assert!(parse_head(b"SSH-2.0\r\n\r\n").is_err());
    }

    #[test]
    fn chunked_bodies_are_decoded_once_complete() {
        let data = b"5\r\nhello\r\n7;ext=1\r\n, world\r\n0\r\n\r\nHTTP/1.1";
        let mut out = Vec::new();
        assert_eq!(parse_chunked(&data[..8], &mut out), Ok(None));
        assert_eq!(parse_chunked(&data[..30], &mut out), Ok(None));
        let taken = parse_chunked(data, &mut out).unwrap().unwrap();
        assert_eq!(out, b"hello, world");
        assert_eq!(&data[taken..], b"HTTP/1.1");
        assert!(parse_chunked(b"zz\r\n", &mut out).is_err());
    }

    #[test]
    fn quantiles_use_the_nearest_rank() {
        let values: Vec<u32> = (1..=100).map(|ms| ms * 1000).collect();
        assert_eq!(quantile_ms(&values, 0.5), 50.0);
        assert_eq!(quantile_ms(&values, 0.99), 99.0);
        assert_eq!(quantile_ms(&values, 1.0), 100.0);
        assert!(quantile_ms(&[], 0.5).is_nan());
    }

    #[test]
    fn bodies_are_checked() {
        assert!(check_healthz_body(br#"{"status":"ok"}"#).is_ok());
        let latest = br#"{"site":"bench-1","readings":[{"sensor":"a","value":1.5},{"sensor":"b","value":null}]}"#;
        assert!(check_latest_body(latest, 2).is_err());
        assert!(check_latest_body(latest, 1).is_err());
        let points: Vec<Value> = (0..1_440)
            .map(|ts| json!({"ts": ts, "value": 1.0}))
            .collect();
        let history = serde_json::to_vec(&json!({ "points": points })).unwrap();
        assert!(check_history_body(&history).is_ok());
        assert!(check_history_body(br#"{"points":[]}"#).is_err());
    }

    #[test]
    fn requests_are_plain_http_1_1() {
        let target = Target::get(
            ([127, 0, 0, 1], 8080).into(),
            "127.0.0.1:8080",
            "/healthz",
            "Authorization: Bearer x\r\n",
        );
        let text = String::from_utf8(target.request.to_vec()).unwrap();
        assert!(text.starts_with("GET /healthz HTTP/1.1\r\nHost: 127.0.0.1:8080\r\n"));
        assert!(text.ends_with("Authorization: Bearer x\r\n\r\n"));
    }

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
