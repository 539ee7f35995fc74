//! Faults through the real binary: nothing accepted is ever lost, over
//! MQTT (QoS 1, JSON) or HTTP (line protocol, as Telegraf writes it).

use std::time::Duration;
use stoker_metadata::Actor;

use stoker_domain::{EpochMillis, SensorKey, SensorType, SiteSlug, Unit, ValidRange};
use stoker_metadata::{NewSensor, NewSite};
use stoker_postgres::Pool;
use stoker_testkit::{TestBroker, TestInflux, TestPostgres, TestRedis, unique_client_id};
use stoker_timeseries::Influx;

use crate::helpers::{create_api_key, env_path, spawn_stoker};
use stoker_testkit::TempDir;

const SENSORS: usize = 20;
/// Enough that ingestion is still busy when the count reaches a fifth and
/// the kill comes (ingestion once took all of 2,500 before the first count).
const MESSAGES: usize = 10_000;

pub(crate) async fn seed(pool: &Pool, slug: &str, sensors: usize) {
    let site = NewSite::parse(slug, slug, "UTC").unwrap();
    stoker_metadata::create_site(pool, &Actor::Cli, &site)
        .await
        .unwrap();
    for index in 0..sensors {
        let sensor = NewSensor {
            key: SensorKey::parse(format!("t{index:02}")).unwrap(),
            sensor_type: SensorType::parse("temperature").unwrap(),
            unit: Unit::parse("°C").unwrap(),
            kind: stoker_domain::SensorKind::Numeric,
            states: stoker_domain::States::default(),
            range: ValidRange::new(Some(0.0), Some(1000.0)).unwrap(),
        };
        stoker_metadata::create_sensor(pool, &Actor::Cli, site.slug(), &sensor)
            .await
            .unwrap();
    }
}

/// `messages` telemetry messages to `boiler-house-1`, each with a reading
/// of sensors `t00`… (`sensors` of them), timestamps 100 ms apart from an
/// hour ago: every reading its own (sensor, ts).
pub(crate) fn telemetry(messages: usize, sensors: usize) -> Vec<(String, Vec<u8>)> {
    let start = EpochMillis::now().as_millis() - 3_600_000;
    (0..messages)
        .map(|index| {
            let values: Vec<String> = (0..sensors)
                .map(|sensor| format!("\"t{sensor:02}\": {}.5", 100 + sensor))
                .collect();
            let payload = format!(
                r#"{{"ts": {}, "values": {{{}}}}}"#,
                start + index as i64 * 100,
                values.join(", ")
            );
            (
                "sites/boiler-house-1/telemetry".to_owned(),
                payload.into_bytes(),
            )
        })
        .collect()
}

async fn count(influx: &Influx, site: &str) -> u64 {
    influx
        .count_readings(&SiteSlug::parse(site).unwrap())
        .await
        .unwrap_or(0)
}

async fn wait_for_count(influx: &Influx, site: &str, expected: u64, limit: Duration) -> u64 {
    let deadline = tokio::time::Instant::now() + limit;
    loop {
        let stored = count(influx, site).await;
        if stored >= expected || tokio::time::Instant::now() >= deadline {
            return stored;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test]
async fn kill_9_mid_run_then_restart_stores_exactly_every_reading() {
    let broker = TestBroker::start().await;
    kill_9_mid_run_then_restart(&broker, vec![("MQTT_URL", broker.url())]).await;
}

/// Ingestion on `broker` as `mqtt` says (MQTT_URL and any TLS settings),
/// killed with SIGKILL in the middle of 50,000 readings published to the
/// broker's plain listener, then started again: InfluxDB ends with each
/// reading exactly once.
pub(crate) async fn kill_9_mid_run_then_restart(
    broker: &TestBroker,
    mqtt: Vec<(&'static str, String)>,
) {
    let postgres = TestPostgres::create().await;
    let pool = postgres.migrated_pool().await;
    seed(&pool, "boiler-house-1", SENSORS).await;
    seed(&pool, "probe", 1).await;
    let influx = TestInflux::create().await;
    let redis = TestRedis::new();
    let spool = TempDir::new("stoker-test-spool");
    let client_id = unique_client_id("kill-test");
    let mut environment = vec![
        ("DATABASE_URL", postgres.url()),
        ("INFLUX_BUCKET", influx.influx().database().to_owned()),
        ("REDIS_KEY_PREFIX", redis.prefix().to_owned()),
        ("MQTT_CLIENT_ID", client_id.clone()),
        ("INGEST_SPOOL_DIR", env_path(spool.path())),
        ("INGEST_BATCH_SIZE", "2000".to_owned()),
        ("INGEST_BATCH_LINGER", "50ms".to_owned()),
        // Tests run side by side: each ingest process its own port.
        (
            "METRICS_ADDR",
            format!("127.0.0.1:{}", stoker_testkit::free_port()),
        ),
    ];
    environment.extend(mqtt);
    let mut ingest = spawn_stoker("ingest", &environment);

    // Subscribed once a probe reading is stored.
    for attempt in 0.. {
        assert!(
            attempt < 100,
            "stoker ingest did not start consuming within 20 s:\n{}",
            ingest.log_tail(20)
        );
        broker
            .publish_qos1(&[(
                "sites/probe/telemetry".to_owned(),
                format!(r#"{{"t00": {attempt}}}"#).into_bytes(),
            )])
            .await;
        if wait_for_count(influx.influx(), "probe", 1, Duration::from_millis(200)).await >= 1 {
            break;
        }
    }

    // 10,000 messages of 20 readings, each reading its own (sensor, ts).
    let messages = telemetry(MESSAGES, SENSORS);
    let total = (MESSAGES * SENSORS) as u64;
    let publisher = {
        let messages = messages.clone();
        let port = broker.port();
        tokio::spawn(async move { stoker_testkit::publish_qos1_to(port, &messages).await })
    };

    // kill -9 in the middle of the run.
    let before_kill = wait_for_count(
        influx.influx(),
        "boiler-house-1",
        total / 5,
        Duration::from_secs(60),
    )
    .await;
    assert!(
        before_kill >= total / 5,
        "only {before_kill} readings before the kill"
    );
    let status = ingest.kill();
    assert!(!status.success());
    let at_kill = count(influx.influx(), "boiler-house-1").await;
    assert!(
        at_kill < total,
        "the run was over before the kill ({at_kill})"
    );
    publisher.await.unwrap();

    // Restart: the broker redelivers what was not acknowledged, the spool
    // replays what was; InfluxDB ends with exactly every reading.
    let mut ingest = spawn_stoker("ingest", &environment);
    let stored = wait_for_count(
        influx.influx(),
        "boiler-house-1",
        total,
        Duration::from_secs(120),
    )
    .await;
    assert_eq!(stored, total, "killed at {at_kill}");
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert_eq!(count(influx.influx(), "boiler-house-1").await, total);

    assert!(ingest.interrupt().success());
    stoker_testkit::clear_mqtt_session_to(broker.port(), &client_id).await;
}

/// Line-protocol bodies the writers post, lines per body, and writers.
const LINE_BODIES: usize = 400;
const LINES_PER_BODY: usize = 10;
const LINE_WRITERS: usize = 4;

/// The value of sensor `sensor` on line `line` of the run: every reading
/// its own, so that a value stored twice or out of place shows; a
/// multiple of 1/32, so that every decimal reading of it is exact.
fn line_value(line: usize, sensor: usize) -> f64 {
    (line % 997) as f64 + sensor as f64 / 32.0
}

/// Body `body` of the run: `LINES_PER_BODY` lines of Telegraf's modbus
/// shape (a field per sensor `t00`…), 100 ms apart from `start`, in ms.
fn line_body(body: usize, start: i64) -> String {
    let mut text = String::new();
    for line in body * LINES_PER_BODY..(body + 1) * LINES_PER_BODY {
        let fields: Vec<String> = (0..SENSORS)
            .map(|sensor| format!("t{sensor:02}={}", line_value(line, sensor)))
            .collect();
        text.push_str(&format!(
            "modbus,name=plc1 {} {}\n",
            fields.join(","),
            start + line as i64 * 100
        ));
    }
    text
}

/// Posts `body` as Telegraf does until it is answered 204: again after a
/// connection error or a 5xx (a 4xx would be the test's own bug); gives
/// how many attempts failed. Panics after two minutes.
async fn post_until_stored(http: &reqwest::Client, url: &str, token: &str, body: String) -> u64 {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(120);
    let mut failed = 0;
    loop {
        let answer = http
            .post(url)
            .header("authorization", format!("Token {token}"))
            .body(body.clone())
            .send()
            .await;
        match answer {
            Ok(response) if response.status() == reqwest::StatusCode::NO_CONTENT => return failed,
            Ok(response) if response.status().is_client_error() => panic!(
                "{}: {}",
                response.status(),
                response.text().await.unwrap_or_default()
            ),
            Ok(_) | Err(_) => failed += 1,
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "a body was not stored within 2 minutes ({failed} attempts failed)"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test]
async fn kill_9_mid_run_of_line_protocol_writes_then_restart_stores_exactly_every_reading() {
    let postgres = TestPostgres::create().await;
    let pool = postgres.migrated_pool().await;
    seed(&pool, "boiler-house-1", SENSORS).await;
    let influx = TestInflux::create().await;
    let redis = TestRedis::new();
    let spool = TempDir::new("stoker-test-spool");
    let token = create_api_key(&postgres.url(), "telegraf", "write");
    let address: std::net::SocketAddr = format!("127.0.0.1:{}", stoker_testkit::free_port())
        .parse()
        .unwrap();
    let environment = [
        ("DATABASE_URL", postgres.url()),
        ("INFLUX_BUCKET", influx.influx().database().to_owned()),
        ("REDIS_KEY_PREFIX", redis.prefix().to_owned()),
        ("INGEST_SPOOL_DIR", env_path(spool.path())),
        ("INGEST_BATCH_SIZE", "2000".to_owned()),
        ("INGEST_BATCH_LINGER", "50ms".to_owned()),
        ("HTTP_ADDR", address.to_string()),
    ];
    // `stoker api`: the API with ingestion, without MQTT.
    let mut api = spawn_stoker("api", &environment);
    api.wait_ready(address, Duration::from_secs(30))
        .await
        .unwrap();

    // 400 bodies of 10 lines of 20 readings, each reading its own
    // (sensor, ts), posted by four writers side by side.
    let start = EpochMillis::now().as_millis() - 3_600_000;
    let total = (LINE_BODIES * LINES_PER_BODY * SENSORS) as u64;
    let url = format!("http://{address}/api/v2/write?org=plant&bucket=boiler-house-1&precision=ms");
    let http = reqwest::Client::builder()
        .timeout(Duration::from_secs(10))
        .build()
        .unwrap();
    let writers: Vec<_> = (0..LINE_WRITERS)
        .map(|writer| {
            let (http, url, token) = (http.clone(), url.clone(), token.clone());
            tokio::spawn(async move {
                let mut failed = 0;
                for body in (writer..LINE_BODIES).step_by(LINE_WRITERS) {
                    failed += post_until_stored(&http, &url, &token, line_body(body, start)).await;
                }
                failed
            })
        })
        .collect();

    // kill -9 in the middle of the run, and a restart on the same port.
    let before_kill = wait_for_count(
        influx.influx(),
        "boiler-house-1",
        total / 5,
        Duration::from_secs(60),
    )
    .await;
    assert!(
        before_kill >= total / 5,
        "only {before_kill} readings before the kill"
    );
    assert!(!api.kill().success());
    let at_kill = count(influx.influx(), "boiler-house-1").await;
    assert!(
        at_kill < total,
        "the run was over before the kill ({at_kill})"
    );
    let mut api = spawn_stoker("api", &environment);
    api.wait_ready(address, Duration::from_secs(30))
        .await
        .unwrap();
    let mut failed = 0;
    for writer in writers {
        failed += writer.await.unwrap();
    }

    // Every body was answered 204: each reading is stored, exactly once,
    // with its value (the spool replays what it held at the kill).
    let stored = wait_for_count(
        influx.influx(),
        "boiler-house-1",
        total,
        Duration::from_secs(60),
    )
    .await;
    assert_eq!(stored, total, "killed at {at_kill}");
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert_eq!(count(influx.influx(), "boiler-house-1").await, total);
    let site = SiteSlug::parse("boiler-house-1").unwrap();
    let lines = LINE_BODIES * LINES_PER_BODY;
    let end = EpochMillis::from_millis(start + lines as i64 * 100).unwrap();
    for sensor in 0..SENSORS {
        let key = SensorKey::parse(format!("t{sensor:02}")).unwrap();
        let readings = influx
            .influx()
            .readings(&site, &key, EpochMillis::from_millis(start).unwrap(), end)
            .await
            .unwrap();
        let expected: Vec<(EpochMillis, f64)> = (0..lines)
            .map(|line| {
                (
                    EpochMillis::from_millis(start + line as i64 * 100).unwrap(),
                    line_value(line, sensor),
                )
            })
            .collect();
        let first_difference = readings
            .iter()
            .zip(&expected)
            .position(|(stored, sent)| stored != sent);
        assert!(
            readings.len() == expected.len() && first_difference.is_none(),
            "{key}: {} stored for {} sent; first difference at line {first_difference:?}",
            readings.len(),
            expected.len()
        );
    }
    println!(
        "reliability: line protocol, kill -9 at {at_kill} of {total} readings: all {total} stored once; {failed} posts failed and were retried"
    );
    assert!(api.interrupt().success());
}
