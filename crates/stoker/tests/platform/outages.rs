//! Faults during a steady QoS 1 run through the real `stoker ingest`:
//! the process killed with SIGKILL every few seconds, InfluxDB restarted
//! twice. Every reading has its own (sensor, timestamp), so InfluxDB
//! holding exactly as many points as were sent means none was lost and
//! none stored twice. Each test prints one `reliability:` line with its
//! counts (docs/RELIABILITY.md collects them).

use std::time::Duration;

use stoker_testkit::{
    TestBroker, TestInflux, TestInfluxServer, TestPostgres, TestRedis, unique_client_id,
};
use stoker_timeseries::{Influx, InfluxOptions};

use crate::faults::{seed, telemetry};
use crate::helpers::{env_path, spawn_stoker};
use stoker_testkit::{StokerProcess, TempDir};

/// Sensors per message, and messages: 100,000 readings.
const SENSORS: usize = 20;
const MESSAGES: usize = 5_000;
/// Messages per publishing burst, and the pause between bursts: the run
/// lasts about 10 s, so faults land in its middle.
const BURST: usize = 250;
const PAUSE: Duration = Duration::from_millis(500);

/// Publishes the messages in bursts (QoS 1, every PUBACK awaited).
fn publish_in_bursts(port: u16) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        for burst in telemetry(MESSAGES, SENSORS).chunks(BURST) {
            stoker_testkit::publish_qos1_to(port, burst).await;
            tokio::time::sleep(PAUSE).await;
        }
    })
}

async fn stored(influx: &Influx) -> u64 {
    influx
        .count_readings(&stoker_domain::SiteSlug::parse("boiler-house-1").unwrap())
        .await
        .unwrap_or(0)
}

/// Waits until `expected` readings are stored or `limit` passes; returns
/// the count, checked once more a second later (nothing must follow).
async fn settle(influx: &Influx, expected: u64, limit: Duration) -> u64 {
    let deadline = tokio::time::Instant::now() + limit;
    while stored(influx).await < expected && tokio::time::Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    tokio::time::sleep(Duration::from_secs(1)).await;
    stored(influx).await
}

/// A run's broker and stores, and the settings of `stoker ingest` on
/// them (InfluxDB is the caller's: the shared server or one of its own).
struct Rig {
    broker: TestBroker,
    client_id: String,
    environment: Vec<(&'static str, String)>,
    _postgres: TestPostgres,
    _redis: TestRedis,
    _spool: TempDir,
}

impl Rig {
    async fn new(name: &str, influx: &InfluxOptions) -> Self {
        let broker = TestBroker::start().await;
        let postgres = TestPostgres::create().await;
        let pool = postgres.migrated_pool().await;
        seed(&pool, "boiler-house-1", SENSORS).await;
        seed(&pool, "probe", 1).await;
        let redis = TestRedis::new();
        let spool = TempDir::new("stoker-test-spool");
        let client_id = unique_client_id(name);
        let environment = vec![
            ("DATABASE_URL", postgres.url()),
            ("INFLUX_URL", influx.url.clone()),
            ("INFLUX_BUCKET", influx.bucket.clone()),
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
        Self {
            broker,
            client_id,
            environment,
            _postgres: postgres,
            _redis: redis,
            _spool: spool,
        }
    }

    /// Starts `stoker ingest` and waits until it consumes.
    async fn ingest(&self, influx: &Influx) -> StokerProcess {
        let ingest = spawn_stoker("ingest", &self.environment);
        wait_until_consuming(&self.broker, influx).await;
        ingest
    }

    /// Stops `stoker ingest` and removes its broker session.
    async fn finish(&self, mut ingest: StokerProcess) {
        assert!(ingest.interrupt().success());
        stoker_testkit::clear_mqtt_session_to(self.broker.port(), &self.client_id).await;
    }
}

/// Waits until `stoker ingest` has subscribed: a probe reading is stored.
async fn wait_until_consuming(broker: &TestBroker, influx: &Influx) {
    let probe = stoker_domain::SiteSlug::parse("probe").unwrap();
    for attempt in 0..100 {
        broker
            .publish_qos1(&[(
                "sites/probe/telemetry".to_owned(),
                format!(r#"{{"t00": {attempt}}}"#).into_bytes(),
            )])
            .await;
        tokio::time::sleep(Duration::from_millis(200)).await;
        if influx.count_readings(&probe).await.unwrap_or(0) >= 1 {
            return;
        }
    }
    panic!("stoker ingest did not start consuming within 20 s");
}

#[tokio::test]
async fn kill_9_every_few_seconds_stores_exactly_100_000_readings() {
    let influx = TestInflux::create().await;
    let rig = Rig::new("kill-loop", &influx.options()).await;
    let mut ingest = rig.ingest(influx.influx()).await;

    let total = (MESSAGES * SENSORS) as u64;
    let publisher = publish_in_bursts(rig.broker.port());
    // SIGKILL every 2.5 s while the run lasts, restarting at once.
    let mut kills = 0;
    while !publisher.is_finished() {
        tokio::time::sleep(Duration::from_millis(2_500)).await;
        let status = ingest.kill();
        assert!(!status.success());
        kills += 1;
        ingest = spawn_stoker("ingest", &rig.environment);
    }
    publisher.await.unwrap();
    let stored = settle(influx.influx(), total, Duration::from_secs(90)).await;
    println!(
        "reliability: kill -9 of stoker ingest every 2.5 s ({kills} kills), QoS 1: sent {total}, stored {stored}, lost {}, duplicated {}",
        total.saturating_sub(stored),
        stored.saturating_sub(total)
    );
    assert!(kills >= 3, "only {kills} kills: the run was too short");
    assert_eq!(stored, total);
    rig.finish(ingest).await;
}

#[tokio::test]
async fn influxdb_restarted_twice_during_a_run_loses_nothing() {
    let mut server = TestInfluxServer::start().await;
    let options = server.options("sensor_data");
    let rig = Rig::new("influx-restarts", &options).await;
    let influx = Influx::connect(&options).await.unwrap();
    let ingest = rig.ingest(&influx).await;

    let total = (MESSAGES * SENSORS) as u64;
    let publisher = publish_in_bursts(rig.broker.port());
    // Down from 2 s to 4 s and from 6 s to 8 s into the run.
    for _ in 0..2 {
        tokio::time::sleep(Duration::from_secs(2)).await;
        server.stop();
        tokio::time::sleep(Duration::from_secs(2)).await;
        server.start_again().await;
    }
    publisher.await.unwrap();
    let stored = settle(&influx, total, Duration::from_secs(90)).await;
    println!(
        "reliability: InfluxDB restarted twice (2 s down each), QoS 1: sent {total}, stored {stored}, lost {}, duplicated {}",
        total.saturating_sub(stored),
        stored.saturating_sub(total)
    );
    assert_eq!(stored, total);
    rig.finish(ingest).await;
}

#[tokio::test]
async fn mosquitto_restarted_ingestion_reconnects_and_resumes_its_session() {
    let influx = TestInflux::create().await;
    let mut rig = Rig::new("broker-restart", &influx.options()).await;
    let ingest = rig.ingest(influx.influx()).await;

    let messages = telemetry(MESSAGES, SENSORS);
    let (first, rest) = messages.split_at(MESSAGES / 2);
    rig.broker.publish_qos1(first).await;
    // The broker restarts with its saved state (the persistent session);
    // what is published while ingestion reconnects waits in that session.
    rig.broker.restart().await;
    rig.broker.publish_qos1(rest).await;
    let total = (MESSAGES * SENSORS) as u64;
    let stored = settle(influx.influx(), total, Duration::from_secs(90)).await;
    println!(
        "reliability: Mosquitto restarted mid-run, QoS 1: sent {total}, stored {stored}, lost {}, duplicated {}",
        total.saturating_sub(stored),
        stored.saturating_sub(total)
    );
    assert_eq!(stored, total);
    rig.finish(ingest).await;
}
