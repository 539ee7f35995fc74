//! Faults through the real binary: nothing accepted is ever lost.

use std::time::Duration;

use stoker_domain::{EpochMillis, SensorKey, SensorType, SiteSlug, Unit, ValidRange};
use stoker_metadata::{NewSensor, NewSite};
use stoker_postgres::Pool;
use stoker_testkit::{TestBroker, TestInflux, TestPostgres, TestRedis, unique_client_id};
use stoker_timeseries::Influx;

use crate::helpers::{env_path, spawn_stoker};
use stoker_testkit::TempDir;

const SENSORS: usize = 20;
const MESSAGES: usize = 2_500;

pub(crate) async fn seed(pool: &Pool, slug: &str, sensors: usize) {
    let site = NewSite::parse(slug, slug, "UTC").unwrap();
    stoker_metadata::create_site(pool, &site).await.unwrap();
    for index in 0..sensors {
        let sensor = NewSensor {
            key: SensorKey::parse(format!("t{index:02}")).unwrap(),
            sensor_type: SensorType::parse("temperature").unwrap(),
            unit: Unit::parse("°C").unwrap(),
            kind: stoker_domain::SensorKind::Numeric,
            states: stoker_domain::States::default(),
            range: ValidRange::new(Some(0.0), Some(1000.0)).unwrap(),
        };
        stoker_metadata::create_sensor(pool, site.slug(), &sensor)
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
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test]
async fn kill_9_mid_run_then_restart_stores_exactly_every_reading() {
    let broker = TestBroker::start().await;
    let postgres = TestPostgres::create().await;
    let pool = postgres.migrated_pool().await;
    seed(&pool, "boiler-house-1", SENSORS).await;
    seed(&pool, "probe", 1).await;
    let influx = TestInflux::create().await;
    let redis = TestRedis::new();
    let spool = TempDir::new("stoker-test-spool");
    let client_id = unique_client_id("kill-test");
    let environment = [
        ("DATABASE_URL", postgres.url()),
        ("INFLUX_BUCKET", influx.influx().database().to_owned()),
        ("REDIS_KEY_PREFIX", redis.prefix().to_owned()),
        ("MQTT_URL", broker.url()),
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
    let mut ingest = spawn_stoker("ingest", &environment);

    // Subscribed once a probe reading is stored.
    for attempt in 0.. {
        assert!(
            attempt < 100,
            "stoker ingest did not start consuming within 20 s"
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

    // 2,500 messages of 20 readings, each reading its own (sensor, ts).
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
