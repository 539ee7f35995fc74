//! Serving, checking and configuring through the binary.

use std::process::Command;
use std::time::Duration;

use serde_json::{Value, json};

use crate::helpers::{BINARY, create_api_key, env_path, spawn_stoker};
use stoker_domain::{EpochMillis, SensorKey, SiteSlug};
use stoker_testkit::{StokerProcess, TempDir, free_port};
use stoker_testkit::{
    TestInflux, TestPostgres, TestRedis, publish_qos1, unique_client_id, unique_topic_prefix,
};

/// A running `stoker serve` and where it answers.
struct Server {
    process: StokerProcess,
    base: String,
    client_id: String,
    _spool: TempDir,
}

async fn spawn_serve(
    postgres: &TestPostgres,
    influx: &TestInflux,
    redis: &TestRedis,
    topics: &str,
) -> Server {
    let port = free_port();
    let client_id = unique_client_id("binary-test");
    let spool = TempDir::new("stoker-test-spool");
    let process = spawn_stoker(
        "serve",
        &[
            ("INGEST_SPOOL_DIR", env_path(spool.path())),
            ("DATABASE_URL", postgres.url()),
            ("INFLUX_BUCKET", influx.influx().database().to_owned()),
            ("REDIS_KEY_PREFIX", redis.prefix().to_owned()),
            ("MQTT_TOPIC_PREFIX", topics.to_owned()),
            ("MQTT_CLIENT_ID", client_id.clone()),
            ("HTTP_ADDR", format!("127.0.0.1:{port}")),
            ("INGEST_BATCH_LINGER", "20ms".to_owned()),
        ],
    );
    let mut server = Server {
        process,
        base: format!("http://127.0.0.1:{port}"),
        client_id,
        _spool: spool,
    };
    if let Err(error) = server
        .process
        .wait_ready(([127, 0, 0, 1], port).into(), Duration::from_secs(15))
        .await
    {
        panic!("stoker serve did not become ready within 15 s: {error}");
    }
    server
}

#[tokio::test]
async fn one_reading_travels_from_mqtt_to_the_api() {
    let postgres = TestPostgres::create().await;
    let influx = TestInflux::create().await;
    let redis = TestRedis::new();
    let topics = unique_topic_prefix();
    let mut server = spawn_serve(&postgres, &influx, &redis, &topics).await;
    let token = create_api_key(&postgres.url(), "platform-test", "admin");
    let http = reqwest::Client::builder()
        .default_headers(
            [(
                reqwest::header::AUTHORIZATION,
                format!("Bearer {token}").parse().unwrap(),
            )]
            .into_iter()
            .collect(),
        )
        .build()
        .unwrap();

    // Without the key: 401.
    let status = reqwest::Client::new()
        .get(format!("{}/api/v1/sites", server.base))
        .send()
        .await
        .unwrap()
        .status();
    assert_eq!(status, 401);

    // Metadata through the API.
    let response = http
        .post(format!("{}/api/v1/sites", server.base))
        .json(&json!({"slug": "boiler-house-1", "name": "Boiler house 1", "timezone": "Europe/Berlin"}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 201);
    let response = http
        .post(format!("{}/api/v1/sites/boiler-house-1/sensors", server.base))
        .json(&json!({"key": "b1_steam_pressure", "type": "pressure", "unit": "bar", "min": 0, "max": 25}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 201);
    // No wait for the change notice: a sensor ingestion does not know yet
    // makes it look in Postgres before refusing.

    // One QoS 1 message on sites/{site}/telemetry.
    let ts = EpochMillis::now().as_millis() - 2_000;
    let payload = format!(r#"{{"ts": {ts}, "values": {{"b1_steam_pressure": 10.4}}}}"#);
    publish_qos1(&[(
        format!("{topics}sites/boiler-house-1/telemetry"),
        payload.into_bytes(),
    )])
    .await;

    // → the API's latest values (served from Redis).
    let at = EpochMillis::from_millis(ts).unwrap();
    let mut latest = Value::Null;
    for _ in 0..200 {
        latest = http
            .get(format!(
                "{}/api/v1/sites/boiler-house-1/latest",
                server.base
            ))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        if latest["readings"][0]["value"] != Value::Null {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(
        latest["readings"][0],
        json!({"sensor": "b1_steam_pressure", "type": "pressure", "unit": "bar", "value": 10.4, "ts": at.to_string()})
    );

    // → one point in InfluxDB, at millisecond precision.
    let site = SiteSlug::parse("boiler-house-1").unwrap();
    let sensor = SensorKey::parse("b1_steam_pressure").unwrap();
    let points = influx
        .influx()
        .readings(
            &site,
            &sensor,
            at.plus_millis(-60_000),
            at.plus_millis(60_000),
        )
        .await
        .unwrap();
    assert_eq!(points, vec![(at, 10.4)]);

    // → and in Redis, with the 300 s TTL.
    let mut connection = redis.connection().await;
    let ttl: i64 = redis::cmd("TTL")
        .arg(format!(
            "{}latest:boiler-house-1:b1_steam_pressure",
            redis.prefix()
        ))
        .query_async(&mut connection)
        .await
        .unwrap();
    assert!((290..=300).contains(&ttl), "ttl {ttl}");

    // → and counted in the ingestion log (the binary migrated schema
    // ingestion and the journal writes it about once a second).
    let pool = stoker_postgres::connect(&postgres.options()).unwrap();
    let client = pool.get().await.unwrap();
    let mut accepted = 0_i64;
    for _ in 0..100 {
        accepted = client
            .query_one(
                "SELECT coalesce(sum(accepted), 0)::bigint FROM ingestion.ingestion_log",
                &[],
            )
            .await
            .map(|row| row.get(0))
            .unwrap_or(0);
        if accepted == 1 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(accepted, 1);

    // SIGINT: flush, acknowledge, stop HTTP, exit 0.
    let status = server.process.interrupt();
    assert!(status.success(), "stoker serve exited with {status}");
    stoker_testkit::clear_mqtt_session(&server.client_id).await;
}

#[test]
fn check_names_redis_and_its_variable_when_redis_is_unreachable() {
    let output = Command::new(BINARY)
        .arg("check")
        .env("REDIS_URL", "redis://127.0.0.1:9")
        .output()
        .expect("run stoker check");
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(!output.status.success(), "check must fail:\n{stdout}");
    let line = stdout
        .lines()
        .find(|line| line.starts_with("FAIL"))
        .unwrap_or_default();
    assert!(
        line.contains("Redis") && line.contains("REDIS_URL"),
        "{stdout}"
    );
    assert_eq!(
        stdout
            .lines()
            .filter(|line| line.starts_with("FAIL"))
            .count(),
        1,
        "{stdout}"
    );
}

#[test]
fn help_explains_every_setting() {
    let output = Command::new(BINARY)
        .args(["serve", "--help"])
        .output()
        .expect("run stoker");
    let help = String::from_utf8_lossy(&output.stdout);
    for variable in [
        "INFLUX_URL",
        "INFLUX_TOKEN",
        "INFLUX_ORG",
        "INFLUX_BUCKET",
        "REDIS_URL",
        "DATABASE_URL",
        "POSTGRES_HOST",
        "DB_PASSWORD",
        "MQTT_URL",
        "HTTP_ADDR",
    ] {
        assert!(
            help.contains(variable),
            "serve --help does not mention {variable}"
        );
    }
}

#[test]
fn a_config_file_with_an_unknown_setting_is_refused_clearly() {
    let dir = std::env::temp_dir().join(unique_client_id("stoker-config"));
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join("stoker.toml");
    std::fs::write(&file, "INFLUX_BUKET = \"x\"\n").unwrap();
    let output = Command::new(BINARY)
        .args(["check", "--config"])
        .arg(&file)
        .output()
        .expect("run stoker");
    let _ = std::fs::remove_dir_all(&dir);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(2), "{stderr}");
    assert!(
        stderr.contains("INFLUX_BUKET") && stderr.contains("INFLUX_BUCKET"),
        "{stderr}"
    );
}
