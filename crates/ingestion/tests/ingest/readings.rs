//! Readings end to end: stored, refused by reason, latest values kept
//! newest, sensors and sites known at once, late readings marked for the
//! rollup.

use std::time::Duration;
use stoker_cache::LatestValue;
use stoker_domain::{EpochMillis, SensorType, Unit, ValidRange};
use stoker_metadata::Actor;
use stoker_metadata::{NewSensor, NewSite};
use stoker_testkit::{publish_qos1, wait_until};

use crate::harness::*;

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
            value: stoker_domain::ReadingValue::Number(10.4),
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
    assert_eq!(
        cached[0].as_ref().map(|latest| latest.value.clone()),
        Some(stoker_domain::ReadingValue::Number(12.0))
    );
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
        kind: stoker_domain::SensorKind::Numeric,
        states: stoker_domain::States::default(),
        range: ValidRange::new(Some(0.0), Some(100.0)).unwrap(),
    };
    stoker_metadata::create_sensor(&pool, &Actor::Cli, &site(), &sensor)
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

#[tokio::test]
async fn a_site_without_sensors_is_known_and_refuses_the_sensor_not_the_site() {
    let harness = Harness::start().await;
    let pool = stoker_postgres::connect(&harness.postgres.options()).unwrap();
    let empty = NewSite::parse("boiler-house-9", "Boiler house 9", "UTC").unwrap();
    stoker_metadata::create_site(&pool, &Actor::Cli, &empty)
        .await
        .unwrap();
    publish_qos1(&[
        (
            harness.topic("sites/boiler-house-9/sensors/b9_steam_pressure"),
            b"10.5".to_vec(),
        ),
        (
            harness.topic("sites/boiler-house-9/telemetry"),
            br#"{"b9_flue_temp": 180.0}"#.to_vec(),
        ),
        (
            harness.topic("sites/nowhere/telemetry"),
            br#"{"a": 1}"#.to_vec(),
        ),
    ])
    .await;
    wait_until("the messages are settled", Duration::from_secs(10), || {
        harness.ingestion().stats().acked == 3
    })
    .await;
    let stats = harness.ingestion().stats();
    assert_eq!(stats.accepted, 0, "{stats:?}");
    let expected: std::collections::BTreeMap<&str, u64> =
        [("unknown_sensor", 2), ("unknown_site", 1)]
            .into_iter()
            .collect();
    assert_eq!(stats.rejected, expected);
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

/// An HTTP caller waits for its answer before it sends again, so its
/// readings are written as soon as nothing else is queued and a write may
/// start, not after the linger: with a linger of an hour, bodies posted one
/// after another through the intake are each answered, stored.
#[tokio::test]
async fn an_http_callers_body_does_not_wait_for_the_linger() {
    let harness = Harness::start_with(Backends {
        tune: Some(|options| options.linger = Duration::from_secs(3600)),
        ..Backends::default()
    })
    .await;
    let intake = harness.ingestion().intake();
    let first = EpochMillis::now().as_millis() - 10_000;
    for offset in 0..3 {
        let body = format!(
            r#"{{"ts": {}, "values": {{"b1_steam_pressure": 10.5}}}}"#,
            first + offset
        );
        let receipt = tokio::time::timeout(
            Duration::from_secs(60),
            intake.submit("boiler-house-1", body.into()),
        )
        .await
        .expect("the body is answered without waiting for the hour-long linger")
        .unwrap();
        assert_eq!((receipt.accepted, receipt.refused.len()), (1, 0));
    }
    let from = EpochMillis::from_millis(first).unwrap();
    let stored = harness
        .influx
        .influx()
        .readings(
            &site(),
            &key("b1_steam_pressure"),
            from,
            from.plus_millis(3),
        )
        .await
        .unwrap();
    assert_eq!(stored.len(), 3, "{stored:?}");
    harness.stop().await;
}
