//! Ingestion against the real broker, InfluxDB, Redis and Postgres, each
//! isolated for the test (topic prefix, database, key prefix, database).

use std::time::Duration;

use stoker_cache::{Cache, LatestValue};
use stoker_domain::{EpochMillis, SensorKey, SensorType, SiteSlug, Unit, ValidRange};
use stoker_ingestion::{IngestOptions, Ingestion, MqttOptions};
use stoker_metadata::{NewSensor, NewSite};
use stoker_stores::Stores;
use stoker_testkit::{
    TestBroker, TestInflux, TestInfluxServer, TestPostgres, TestRedis, TestRedisServer,
    publish_qos1, unique_client_id, unique_topic_prefix, wait_until,
};
use stoker_timeseries::Influx;
use tokio_util::sync::CancellationToken;

struct Harness {
    postgres: TestPostgres,
    influx: TestInflux,
    redis: TestRedis,
    cache: Cache,
    topics: String,
    client_id: String,
    spool: std::path::PathBuf,
    ingestion: Option<Ingestion>,
    shutdown: CancellationToken,
}

/// Where ingestion reads and writes: the shared servers unless a test
/// brings its own; and limits a test may tighten.
#[derive(Default)]
struct Backends {
    influx: Option<Influx>,
    cache: Option<Cache>,
    mqtt_url: Option<String>,
    tune: Option<fn(&mut IngestOptions)>,
}

impl Harness {
    /// A site `boiler-house-1` with a pressure (0..25 bar) and a flue
    /// temperature (0..600 °C) sensor, and ingestion running.
    async fn start() -> Self {
        Self::start_with(Backends::default()).await
    }

    async fn start_with(backends: Backends) -> Self {
        let postgres = TestPostgres::create().await;
        let postgres_options = postgres.options();
        let pool = postgres.migrated_pool().await;
        stoker_ingestion::migrate(&pool).await.unwrap();
        let site = NewSite::parse("boiler-house-1", "Boiler house 1", "UTC").unwrap();
        stoker_metadata::create_site(&pool, &site).await.unwrap();
        for (key, sensor_type, unit, max) in [
            ("b1_steam_pressure", "pressure", "bar", 25.0),
            ("b1_flue_temp", "temperature", "°C", 600.0),
        ] {
            let sensor = NewSensor {
                key: SensorKey::parse(key).unwrap(),
                sensor_type: SensorType::parse(sensor_type).unwrap(),
                unit: Unit::parse(unit).unwrap(),
                range: ValidRange::new(Some(0.0), Some(max)).unwrap(),
            };
            stoker_metadata::create_sensor(&pool, site.slug(), &sensor)
                .await
                .unwrap();
        }
        let influx = TestInflux::create().await;
        let redis = TestRedis::new();
        let cache = backends.cache.unwrap_or_else(|| redis.cache());
        let spool = std::env::temp_dir().join(unique_client_id("stoker-test-spool"));
        let topics = unique_topic_prefix();
        let client_id = unique_client_id("ingest-test");
        let mut options = IngestOptions {
            mqtt: MqttOptions {
                client_id: client_id.clone(),
                topic_prefix: topics.clone(),
                ..MqttOptions::default()
            },
            linger: Duration::from_millis(20),
            spool_dir: spool.clone(),
            ..IngestOptions::default()
        };
        if let Some(url) = backends.mqtt_url {
            options.mqtt.url = url;
        }
        if let Some(tune) = backends.tune {
            tune(&mut options);
        }
        let shutdown = CancellationToken::new();
        let stores = Stores {
            pool,
            postgres: postgres_options,
            influx: backends.influx.unwrap_or_else(|| influx.influx().clone()),
            cache: cache.clone(),
        };
        let ingestion = Ingestion::start(&options, stores, shutdown.clone())
            .await
            .unwrap();
        wait_until("ingestion is subscribed", Duration::from_secs(10), || {
            ingestion.is_connected()
        })
        .await;
        Self {
            postgres,
            influx,
            redis,
            cache,
            topics,
            client_id,
            spool,
            ingestion: Some(ingestion),
            shutdown,
        }
    }

    fn ingestion(&self) -> &Ingestion {
        self.ingestion.as_ref().unwrap()
    }

    fn topic(&self, rest: &str) -> String {
        format!("{}{rest}", self.topics)
    }

    async fn stop(mut self) {
        self.shutdown.cancel();
        if let Some(ingestion) = self.ingestion.take() {
            tokio::time::timeout(Duration::from_secs(20), ingestion.wait())
                .await
                .unwrap();
        }
        stoker_testkit::clear_mqtt_session(&self.client_id).await;
        let _ = std::fs::remove_dir_all(&self.spool);
    }
}

/// `count` messages of both sensors, one second apart, starting at `start`.
fn telemetry_run(harness: &Harness, start: i64, count: i64) -> Vec<(String, Vec<u8>)> {
    (0..count)
        .map(|index| {
            let ts = start + index * 1000;
            let pressure = 10.0 + (index % 10) as f64 / 10.0;
            let payload = format!(r#"{{"ts": {ts}, "values": {{"b1_steam_pressure": {pressure}, "b1_flue_temp": 180.5}}}}"#);
            (harness.topic("sites/boiler-house-1/telemetry"), payload.into_bytes())
        })
        .collect()
}

fn site() -> SiteSlug {
    SiteSlug::parse("boiler-house-1").unwrap()
}

fn key(name: &str) -> SensorKey {
    SensorKey::parse(name).unwrap()
}

#[tokio::test]
async fn a_qos1_message_reaches_influxdb_and_redis() {
    let harness = Harness::start().await;
    let ts = EpochMillis::now().as_millis() - 1000;
    let payload = format!(
        r#"{{"ts": {ts}, "values": {{"b1_steam_pressure": 10.4, "b1_flue_temp": 181.2}}}}"#
    );
    publish_qos1(&[(
        harness.topic("sites/boiler-house-1/telemetry"),
        payload.into_bytes(),
    )])
    .await;
    wait_until(
        "2 readings are stored and the message acknowledged",
        Duration::from_secs(10),
        || {
            let stats = harness.ingestion().stats();
            stats.accepted == 2 && stats.acked == 1
        },
    )
    .await;

    // InfluxDB: measurement readings, tags site/sensor/type, field value, ms precision.
    let at = EpochMillis::from_millis(ts).unwrap();
    let stored = harness
        .influx
        .influx()
        .readings(&site(), &key("b1_steam_pressure"), at, at.plus_millis(1))
        .await
        .unwrap();
    assert_eq!(stored, vec![(at, 10.4)]);
    let latest_in_influx = harness
        .influx
        .influx()
        .latest_per_sensor(&site())
        .await
        .unwrap();
    let flue = latest_in_influx
        .iter()
        .find(|point| point.sensor == key("b1_flue_temp"))
        .unwrap();
    assert_eq!(
        (flue.sensor_type.as_str(), flue.value, flue.timestamp),
        ("temperature", 181.2, at)
    );

    // Redis: latest:{site}:{sensor} with the 300 s TTL (shortly after the writer).
    let mut cached = Vec::new();
    for _ in 0..100 {
        cached = harness
            .cache
            .latest(&site(), &[key("b1_steam_pressure")])
            .await
            .unwrap();
        if cached[0].is_some() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(
        cached[0],
        Some(LatestValue {
            value: 10.4,
            ts: at,
            sensor_type: SensorType::parse("pressure").unwrap(),
            unit: Unit::parse("bar").unwrap(),
        })
    );
    let mut connection = harness.redis.connection().await;
    let ttl: i64 = redis::cmd("TTL")
        .arg(format!(
            "{}latest:boiler-house-1:b1_steam_pressure",
            harness.redis.prefix()
        ))
        .query_async(&mut connection)
        .await
        .unwrap();
    assert!((290..=300).contains(&ttl), "ttl {ttl}");
    harness.stop().await;
}

#[tokio::test]
async fn every_rejection_is_counted_by_reason_and_the_rest_is_stored() {
    let harness = Harness::start().await;
    let now = EpochMillis::now().as_millis();
    let future = now + 10 * 60 * 1000;
    // Older than the default raw retention (30 days): InfluxDB would drop it.
    let ancient = now - 31 * 86_400_000;
    let telemetry = harness.topic("sites/boiler-house-1/telemetry");
    let messages = vec![
        (telemetry.clone(), b"{not json".to_vec()),
        (harness.topic("sites/nowhere/telemetry"), br#"{"a": 1}"#.to_vec()),
        // One good reading beside an unknown sensor, a string, and an out-of-range value.
        (telemetry.clone(), format!(r#"{{"ts": {now}, "values": {{"b1_steam_pressure": 11.0, "b1_ghost": 1, "b1_flue_temp": "hot"}}}}"#).into_bytes()),
        (telemetry.clone(), br#"{"b1_steam_pressure": 99.0}"#.to_vec()),
        (telemetry.clone(), format!(r#"{{"ts": {future}, "values": {{"b1_steam_pressure": 10.0}}}}"#).into_bytes()),
        (telemetry.clone(), format!(r#"{{"ts": {ancient}, "values": {{"b1_steam_pressure": 10.0}}}}"#).into_bytes()),
        (telemetry.clone(), br#"{"ts": "yesterday", "values": {"b1_steam_pressure": 10.0}}"#.to_vec()),
        (telemetry, vec![b' '; 256 * 1024 + 1]),
        // The per-sensor topic, both shapes.
        (harness.topic("sites/boiler-house-1/sensors/b1_flue_temp"), b"181.5".to_vec()),
        (harness.topic("sites/boiler-house-1/sensors/b1_flue_temp"), format!(r#"{{"value": 182.5, "ts": {}}}"#, now - 5000).into_bytes()),
    ];
    publish_qos1(&messages).await;
    wait_until(
        "all 10 messages are settled",
        Duration::from_secs(10),
        || harness.ingestion().stats().acked == 10,
    )
    .await;
    let stats = harness.ingestion().stats();
    assert_eq!(stats.accepted, 3, "{stats:?}");
    let expected: std::collections::BTreeMap<&str, u64> = [
        ("malformed_json", 1),
        ("unknown_site", 1),
        ("unknown_sensor", 1),
        ("non_numeric", 1),
        ("out_of_range", 1),
        ("future_timestamp", 1),
        ("too_old", 1),
        ("invalid_timestamp", 1),
        ("payload_too_large", 1),
    ]
    .into_iter()
    .collect();
    assert_eq!(stats.rejected, expected);

    let start = EpochMillis::from_millis(now - 60_000).unwrap();
    let end = EpochMillis::from_millis(now + 60_000).unwrap();
    let influx = harness.influx.influx();
    let pressure = influx
        .readings(&site(), &key("b1_steam_pressure"), start, end)
        .await
        .unwrap();
    assert_eq!(
        pressure.iter().map(|(_, value)| *value).collect::<Vec<_>>(),
        vec![11.0]
    );
    let flue = influx
        .readings(&site(), &key("b1_flue_temp"), start, end)
        .await
        .unwrap();
    assert_eq!(flue.len(), 2);
    harness.stop().await;
}

#[tokio::test]
async fn an_older_reading_after_a_newer_one_leaves_latest_unchanged() {
    let harness = Harness::start().await;
    let now = EpochMillis::now().as_millis();
    let topic = harness.topic("sites/boiler-house-1/sensors/b1_steam_pressure");
    publish_qos1(&[(
        topic.clone(),
        format!(r#"{{"value": 12.0, "ts": {now}}}"#).into_bytes(),
    )])
    .await;
    wait_until(
        "the newer reading is stored",
        Duration::from_secs(10),
        || harness.ingestion().stats().acked == 1,
    )
    .await;
    publish_qos1(&[(
        topic,
        format!(r#"{{"value": 9.0, "ts": {}}}"#, now - 60_000).into_bytes(),
    )])
    .await;
    wait_until(
        "the older reading is stored",
        Duration::from_secs(10),
        || harness.ingestion().stats().acked == 2,
    )
    .await;
    // Both are history in InfluxDB; the cache keeps the newer.
    tokio::time::sleep(Duration::from_millis(200)).await;
    let cached = harness
        .cache
        .latest(&site(), &[key("b1_steam_pressure")])
        .await
        .unwrap();
    assert_eq!(cached[0].as_ref().map(|latest| latest.value), Some(12.0));
    harness.stop().await;
}

#[tokio::test]
async fn a_sensor_added_while_running_is_accepted_at_once() {
    let harness = Harness::start().await;
    let pool = stoker_postgres::connect(&harness.postgres.options()).unwrap();
    let sensor = NewSensor {
        key: key("b1_drum_level"),
        sensor_type: SensorType::parse("level").unwrap(),
        unit: Unit::parse("%").unwrap(),
        range: ValidRange::new(Some(0.0), Some(100.0)).unwrap(),
    };
    stoker_metadata::create_sensor(&pool, &site(), &sensor)
        .await
        .unwrap();
    // The registry reloads on the change notification; give it a moment.
    tokio::time::sleep(Duration::from_millis(500)).await;
    publish_qos1(&[(
        harness.topic("sites/boiler-house-1/sensors/b1_drum_level"),
        b"51.5".to_vec(),
    )])
    .await;
    wait_until("the reading is settled", Duration::from_secs(10), || {
        harness.ingestion().stats().acked == 1
    })
    .await;
    assert_eq!(
        harness.ingestion().stats().accepted,
        1,
        "{:?}",
        harness.ingestion().stats()
    );
    harness.stop().await;
}

#[tokio::test]
async fn a_sensor_whose_change_notice_has_not_arrived_is_still_accepted() {
    let harness = Harness::start().await;
    // Insert the sensor with triggers off: no change notice is sent, as if
    // the reading overtook it. Ingestion must look in Postgres before it
    // refuses the name.
    let pool = stoker_postgres::connect(&harness.postgres.options()).unwrap();
    let mut client = pool.get().await.unwrap();
    let transaction = client.transaction().await.unwrap();
    transaction
        .batch_execute(
            "SET LOCAL session_replication_role = replica;
             INSERT INTO metadata.sensors (id, site_id, key, type, unit, min_value, max_value)
             SELECT gen_random_uuid(), id, 'b1_drum_level', 'level', '%', 0, 100
             FROM metadata.sites WHERE slug = 'boiler-house-1'",
        )
        .await
        .unwrap();
    transaction.commit().await.unwrap();
    publish_qos1(&[
        (
            harness.topic("sites/boiler-house-1/sensors/b1_drum_level"),
            b"51.5".to_vec(),
        ),
        // A name that exists nowhere is still refused.
        (
            harness.topic("sites/boiler-house-1/sensors/b1_nowhere"),
            b"1.0".to_vec(),
        ),
    ])
    .await;
    wait_until("both messages are settled", Duration::from_secs(10), || {
        harness.ingestion().stats().acked == 2
    })
    .await;
    let stats = harness.ingestion().stats();
    assert_eq!(stats.accepted, 1, "{stats:?}");
    assert_eq!(stats.rejected.get("unknown_sensor"), Some(&1), "{stats:?}");
    harness.stop().await;
}

/// How long InfluxDB stays down in the outage test (the issue's figure).
const INFLUX_OUTAGE: Duration = Duration::from_secs(30);

#[tokio::test]
async fn influxdb_stopped_mid_run_loses_nothing_and_the_spool_drains() {
    let mut server = TestInfluxServer::start().await;
    let influx = Influx::connect(&server.options("stoker")).await.unwrap();
    influx.ensure_database().await.unwrap();
    let harness = Harness::start_with(Backends {
        influx: Some(influx.clone()),
        ..Backends::default()
    })
    .await;
    let start = EpochMillis::now().as_millis() - 3_600_000;
    let messages = telemetry_run(&harness, start, 600);

    publish_qos1(&messages[..200]).await;
    wait_until(
        "the first 200 messages are stored",
        Duration::from_secs(20),
        || harness.ingestion().stats().acked == 200,
    )
    .await;

    // InfluxDB goes away; ingestion keeps acknowledging into the spool.
    server.stop();
    let outage = tokio::time::Instant::now();
    publish_qos1(&messages[200..400]).await;
    wait_until(
        "the outage's messages are spooled and acknowledged",
        Duration::from_secs(20),
        || harness.ingestion().stats().acked == 400,
    )
    .await;
    let during = harness.ingestion().stats();
    assert!(during.spooled_batches > 0, "{during:?}");
    tokio::time::sleep_until(outage + INFLUX_OUTAGE).await;

    // Back: the spool replays, and new readings keep flowing.
    server.start_again().await;
    publish_qos1(&messages[400..]).await;
    let site = site();
    let mut stored = 0;
    for _ in 0..300 {
        stored = influx.count_readings(&site).await.unwrap_or(0);
        if stored >= 1200 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(
        stored, 1200,
        "every reading of 600 two-reading messages, exactly once"
    );
    let after = harness.ingestion().stats();
    assert!(
        after.replayed_batches >= during.spooled_batches,
        "{after:?}"
    );
    assert_eq!(after.accepted, 1200);
    harness.stop().await;
}

#[tokio::test]
async fn redis_stopped_mid_run_does_not_stop_ingestion() {
    let mut redis = TestRedisServer::start().await;
    let cache = Cache::connect(&stoker_cache::RedisOptions {
        url: redis.url(),
        key_prefix: String::new(),
    })
    .unwrap();
    let harness = Harness::start_with(Backends {
        cache: Some(cache.clone()),
        ..Backends::default()
    })
    .await;
    let start = EpochMillis::now().as_millis() - 600_000;
    let messages = telemetry_run(&harness, start, 90);

    publish_qos1(&messages[..30]).await;
    wait_until("30 messages are stored", Duration::from_secs(20), || {
        harness.ingestion().stats().acked == 30
    })
    .await;
    redis.stop();
    publish_qos1(&messages[30..60]).await;
    wait_until(
        "30 more are stored with Redis down",
        Duration::from_secs(20),
        || harness.ingestion().stats().acked == 60,
    )
    .await;
    assert!(harness.ingestion().stats().cache_errors > 0);

    // Redis returns (empty: it only caches) and is filled again.
    redis.start_again().await;
    publish_qos1(&messages[60..]).await;
    wait_until("all 90 are stored", Duration::from_secs(20), || {
        harness.ingestion().stats().acked == 90
    })
    .await;
    let newest = EpochMillis::from_millis(start + 89_000).unwrap();
    let mut latest = None;
    for _ in 0..200 {
        latest = cache
            .latest(&site(), &[key("b1_steam_pressure")])
            .await
            .ok()
            .and_then(|mut values| values.remove(0));
        if latest.as_ref().is_some_and(|value| value.ts == newest) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(latest.map(|value| value.ts), Some(newest));
    assert_eq!(
        harness
            .influx
            .influx()
            .count_readings(&site())
            .await
            .unwrap(),
        180
    );
    harness.stop().await;
}

#[tokio::test]
async fn a_stalled_writer_leaves_the_backlog_at_the_broker_and_memory_bounded() {
    let broker = TestBroker::start().await;
    let mut server = TestInfluxServer::start().await;
    let influx = Influx::connect(&server.options("stoker")).await.unwrap();
    influx.ensure_database().await.unwrap();
    let harness = Harness::start_with(Backends {
        influx: Some(influx.clone()),
        mqtt_url: Some(broker.url()),
        tune: Some(|options| {
            options.queue_max_mb = 1;
            options.spool_max_mb = 1;
            options.batch_size = 200;
            options.writes_in_flight = 2;
        }),
        ..Backends::default()
    })
    .await;
    // InfluxDB away and the 1 MB spool soon full: nothing can be made
    // durable, so the writer stalls with the broker still sending.
    server.stop();
    let start = EpochMillis::now().as_millis() - 6 * 3_600_000;
    let messages = telemetry_run(&harness, start, 20_000);
    broker.publish_qos1(&messages).await;
    let received = || {
        let ingestion = harness.ingestion();
        ingestion.stats().messages as usize + ingestion.queued_messages()
    };
    let (mut last, mut since) = (received(), tokio::time::Instant::now());
    let stalled_at = loop {
        tokio::time::sleep(Duration::from_millis(200)).await;
        let now = received();
        if now != last {
            (last, since) = (now, tokio::time::Instant::now());
        } else if now > 0 && since.elapsed() >= Duration::from_secs(2) {
            break now;
        }
        assert!(
            since.elapsed() < Duration::from_secs(60),
            "ingestion neither progressed nor stalled"
        );
    };
    let queued = harness.ingestion().queued_messages();
    // 1 MiB of queue; each message is charged at least 256 bytes.
    assert!(queued > 0 && queued <= 4096, "{queued} messages queued");
    assert!(
        stalled_at < messages.len(),
        "the broker must keep what ingestion cannot take (read {stalled_at})"
    );

    // InfluxDB is back: the spool drains, the writer resumes, the broker's
    // backlog follows, and every reading is stored exactly once.
    server.start_again().await;
    let site = site();
    let mut stored = 0;
    for _ in 0..600 {
        stored = influx.count_readings(&site).await.unwrap_or(0);
        if stored >= 40_000 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(
        stored, 40_000,
        "every reading of 20,000 two-reading messages"
    );
    wait_until(
        "every message is acknowledged",
        Duration::from_secs(20),
        || harness.ingestion().stats().acked >= 20_000,
    )
    .await;
    harness.stop().await;
}

#[tokio::test]
async fn a_broker_restart_resumes_the_persistent_session() {
    let mut broker = TestBroker::start().await;
    let harness = Harness::start_with(Backends {
        mqtt_url: Some(broker.url()),
        ..Backends::default()
    })
    .await;
    let start = EpochMillis::now().as_millis() - 3_600_000;
    let messages = telemetry_run(&harness, start, 300);
    broker.publish_qos1(&messages[..100]).await;
    wait_until("100 messages are stored", Duration::from_secs(20), || {
        harness.ingestion().stats().acked == 100
    })
    .await;

    // The broker restarts with its saved state; messages published while
    // ingestion reconnects wait in its persistent session.
    broker.restart().await;
    broker.publish_qos1(&messages[100..200]).await;
    wait_until("ingestion reconnects", Duration::from_secs(20), || {
        harness.ingestion().is_connected()
    })
    .await;
    broker.publish_qos1(&messages[200..]).await;
    let site = site();
    let mut stored = 0;
    for _ in 0..200 {
        stored = harness
            .influx
            .influx()
            .count_readings(&site)
            .await
            .unwrap_or(0);
        if stored >= 600 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(stored, 600, "every reading of 300 messages, none lost");
    harness.stop().await;
}

#[tokio::test]
async fn readings_stored_late_are_marked_for_the_rollup() {
    let harness = Harness::start().await;
    let influx = harness.influx.influx();
    influx.setup().await.unwrap();
    let now = EpochMillis::now().as_millis();
    let topic = harness.topic("sites/boiler-house-1/sensors/b1_steam_pressure");
    // A gateway catching up: a reading twenty minutes old.
    let late = now - 20 * 60_000;
    publish_qos1(&[(
        topic.clone(),
        format!(r#"{{"value": 9.0, "ts": {late}}}"#).into_bytes(),
    )])
    .await;
    wait_until(
        "the late reading is stored",
        Duration::from_secs(10),
        || harness.ingestion().stats().acked == 1,
    )
    .await;
    let late = EpochMillis::from_millis(late).unwrap();
    let epoch = EpochMillis::from_millis(0).unwrap();
    assert_eq!(influx.late_marks(epoch).await.unwrap(), vec![(late, late)]);
    // A reading on time is not marked.
    publish_qos1(&[(
        topic,
        format!(r#"{{"value": 9.5, "ts": {now}}}"#).into_bytes(),
    )])
    .await;
    wait_until(
        "the reading on time is stored",
        Duration::from_secs(10),
        || harness.ingestion().stats().acked == 2,
    )
    .await;
    assert_eq!(influx.late_marks(epoch).await.unwrap().len(), 1);
    harness.stop().await;
}
