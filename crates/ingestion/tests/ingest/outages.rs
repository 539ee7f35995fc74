//! Dependencies that stop: InfluxDB (the spool), Redis, a stalled writer
//! (the broker keeps the backlog) and the broker itself.

use std::time::Duration;
use stoker_cache::Cache;
use stoker_domain::EpochMillis;
use stoker_testkit::{TestBroker, TestInfluxServer, TestRedisServer, publish_qos1, wait_until};
use stoker_timeseries::Influx;

use crate::harness::*;

/// How long InfluxDB stays down in the outage test (the figure).
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
        ca_file: None,
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
