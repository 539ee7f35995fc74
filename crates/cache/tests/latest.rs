//! Latest values, alert states and previews against the real Redis, under
//! a key prefix of the test's own.

use stoker_cache::{Cache, LatestValue, RedisOptions};
use stoker_domain::{EpochMillis, ReadingValue, SensorKey, SensorType, SiteSlug, Unit};
use stoker_testkit::TestRedis;

fn latest(value: f64, millis: i64) -> LatestValue {
    LatestValue {
        value: ReadingValue::Number(value),
        ts: EpochMillis::from_millis(millis).unwrap(),
        sensor_type: SensorType::parse("pressure").unwrap(),
        unit: Unit::parse("bar").unwrap(),
    }
}

#[tokio::test]
async fn latest_values_never_move_backwards_and_carry_a_ttl() {
    let redis = TestRedis::new();
    let cache = redis.cache();
    cache.ping().await.unwrap();
    let site = SiteSlug::parse("boiler-house-1").unwrap();
    let pressure = SensorKey::parse("b1_steam_pressure").unwrap();
    let level = SensorKey::parse("b1_drum_level").unwrap();

    let newer = latest(10.4, 2_000);
    let written = cache
        .set_latest(&[(&site, &pressure, &newer)])
        .await
        .unwrap();
    assert_eq!(written, 1);

    // A late, older reading leaves the newer one in place; a new sensor in
    // the same call is still written.
    let older = latest(9.9, 1_000);
    let other = latest(51.0, 1_000);
    let written = cache
        .set_latest(&[(&site, &pressure, &older), (&site, &level, &other)])
        .await
        .unwrap();
    assert_eq!(written, 1);

    let cached = cache
        .latest(
            &site,
            &[
                pressure.clone(),
                level.clone(),
                SensorKey::parse("none").unwrap(),
            ],
        )
        .await
        .unwrap();
    assert_eq!(cached, vec![Some(newer.clone()), Some(other.clone()), None]);
    let points = cache
        .latest_points(
            &site,
            &[
                SensorKey::parse("none").unwrap(),
                level.clone(),
                pressure.clone(),
            ],
        )
        .await
        .unwrap();
    assert_eq!(
        points,
        vec![
            None,
            Some((other.value.clone(), other.ts)),
            Some((newer.value.clone(), newer.ts))
        ]
    );

    let mut connection = redis.connection().await;
    let key = format!("{}latest:boiler-house-1:b1_steam_pressure", redis.prefix());
    let ttl: i64 = redis::cmd("TTL")
        .arg(&key)
        .query_async(&mut connection)
        .await
        .unwrap();
    assert!((290..=300).contains(&ttl), "ttl {ttl}");
    let raw: String = redis::cmd("GET")
        .arg(&key)
        .query_async(&mut connection)
        .await
        .unwrap();
    assert_eq!(
        raw,
        r#"{"value":10.4,"ts":2000,"type":"pressure","unit":"bar"}"#
    );
}

#[tokio::test]
async fn booleans_and_states_are_cached_natively() {
    let redis = TestRedis::new();
    let cache = redis.cache();
    let site = SiteSlug::parse("boiler-house-1").unwrap();
    let burner = SensorKey::parse("b1_burner_on").unwrap();
    let sequencer = SensorKey::parse("b1_sequencer").unwrap();
    let on = LatestValue {
        value: ReadingValue::Boolean(true),
        ..latest(0.0, 3_000)
    };
    let firing = LatestValue {
        value: ReadingValue::State("firing".into()),
        ..latest(0.0, 3_000)
    };
    cache
        .set_latest(&[(&site, &burner, &on), (&site, &sequencer, &firing)])
        .await
        .unwrap();
    // An older state does not replace the newer one.
    let purge = LatestValue {
        value: ReadingValue::State("purge".into()),
        ..latest(0.0, 2_000)
    };
    assert_eq!(
        cache
            .set_latest(&[(&site, &sequencer, &purge)])
            .await
            .unwrap(),
        0
    );
    let points = cache
        .latest_points(&site, &[burner.clone(), sequencer.clone()])
        .await
        .unwrap();
    assert_eq!(
        points,
        vec![
            Some((ReadingValue::Boolean(true), on.ts)),
            Some((ReadingValue::State("firing".into()), firing.ts))
        ]
    );
    let mut connection = redis.connection().await;
    let raw: String = redis::cmd("GET")
        .arg(format!(
            "{}latest:boiler-house-1:b1_sequencer",
            redis.prefix()
        ))
        .query_async(&mut connection)
        .await
        .unwrap();
    assert_eq!(
        raw,
        r#"{"value":"firing","ts":3000,"type":"pressure","unit":"bar"}"#
    );
}

#[tokio::test]
async fn a_corrupt_cached_value_is_an_error_naming_its_key() {
    let redis = TestRedis::new();
    let cache = redis.cache();
    let site = SiteSlug::parse("boiler-house-1").unwrap();
    let sensor = SensorKey::parse("b1_steam_pressure").unwrap();
    let key = format!("{}latest:boiler-house-1:b1_steam_pressure", redis.prefix());
    let mut connection = redis.connection().await;
    let () = redis::cmd("SET")
        .arg(&key)
        .arg("not json")
        .query_async(&mut connection)
        .await
        .unwrap();
    let error = cache
        .latest_points(&site, &[sensor])
        .await
        .unwrap_err()
        .to_string();
    assert!(error.contains(&key), "{error}");
}

#[tokio::test]
async fn an_unreachable_redis_fails_fast_without_panicking() {
    let cache = Cache::connect(&RedisOptions {
        url: "redis://127.0.0.1:9".into(),
        key_prefix: String::new(),
        ca_file: None,
    })
    .unwrap();
    let started = std::time::Instant::now();
    assert!(cache.ping().await.is_err());
    assert!(started.elapsed() < std::time::Duration::from_secs(10));
}

#[test]
fn a_bad_url_is_refused_without_echoing_it() {
    let error = Cache::connect(&RedisOptions {
        url: "http://user:secret@host".into(),
        key_prefix: String::new(),
        ca_file: None,
    })
    .unwrap_err()
    .to_string();
    assert!(error.contains("REDIS_URL"), "{error}");
    assert!(!error.contains("secret"), "{error}");
}

#[tokio::test]
async fn alert_states_are_written_with_a_ttl_and_deleted() {
    use stoker_cache::AlertStateKey;
    let redis = TestRedis::new();
    let cache = redis.cache();
    let pending = AlertStateKey {
        rule_id: "0190a2b4-0000-7000-8000-000000000001",
        site: "boiler-house-1",
        sensor: "b1_steam_pressure",
    };
    let firing = AlertStateKey {
        sensor: "b1_flue_temp",
        ..pending
    };
    cache
        .write_alert_states(
            &[
                (pending, r#"{"phase":"pending"}"#.into()),
                (firing, r#"{"phase":"firing"}"#.into()),
            ],
            &[],
        )
        .await
        .unwrap();
    assert_eq!(
        cache.alert_state(pending).await.unwrap().as_deref(),
        Some(r#"{"phase":"pending"}"#)
    );
    let mut connection = redis.connection().await;
    let key = format!(
        "{}alert_state:0190a2b4-0000-7000-8000-000000000001:boiler-house-1:b1_flue_temp",
        redis.prefix()
    );
    let ttl: i64 = redis::cmd("TTL")
        .arg(&key)
        .query_async(&mut connection)
        .await
        .unwrap();
    assert!((290..=300).contains(&ttl), "ttl {ttl}");
    cache.write_alert_states(&[], &[pending]).await.unwrap();
    assert_eq!(cache.alert_state(pending).await.unwrap(), None);
    assert!(cache.alert_state(firing).await.unwrap().is_some());
}

#[tokio::test]
async fn previews_are_cached_under_their_digest_in_hex_with_a_ttl() {
    let redis = TestRedis::new();
    let cache = redis.cache();
    let mut digest = [0u8; 32];
    digest[0] = 0xab;
    digest[31] = 0x01;
    assert_eq!(cache.preview(&digest).await.unwrap(), None);
    cache
        .set_preview(&digest, r#"{"alerts":[]}"#)
        .await
        .unwrap();
    assert_eq!(
        cache.preview(&digest).await.unwrap().as_deref(),
        Some(r#"{"alerts":[]}"#)
    );
    assert_eq!(cache.preview(&[0u8; 32]).await.unwrap(), None);
    let mut connection = redis.connection().await;
    let key = format!(
        "{}analytics:preview:ab{}01",
        redis.prefix(),
        "00".repeat(30)
    );
    let ttl: i64 = redis::cmd("TTL")
        .arg(&key)
        .query_async(&mut connection)
        .await
        .unwrap();
    assert!((1790..=1800).contains(&ttl), "ttl {ttl}");
}

/// What a [`stoker_cache::LatestSlot`] writes is byte for byte what
/// serializing the [`LatestValue`] gives, for every kind of value and a
/// unit that needs escaping; and a script Redis forgot (`SCRIPT FLUSH`) is
/// loaded again.
#[tokio::test]
async fn slots_write_the_serialized_value_and_survive_a_script_flush() {
    let redis = TestRedis::new();
    let cache = redis.cache();
    let site = SiteSlug::parse("boiler-house-1").unwrap();
    let sensor = SensorKey::parse("b1_x").unwrap();
    let sensor_type = SensorType::parse("temperature").unwrap();
    let unit = Unit::parse("°C \"quoted\"").unwrap();
    let slot = cache.latest_slot(&site, &sensor, &sensor_type, &unit);
    let mut connection = redis.connection().await;
    let values = [
        (ReadingValue::Number(181.25), 1_732_269_600_000),
        (ReadingValue::Number(1e21), 1_732_269_600_001),
        (ReadingValue::Number(-0.000_012_5), 1_732_269_600_002),
        (ReadingValue::Boolean(true), 1_732_269_600_003),
        (ReadingValue::State("lockout".into()), 1_732_269_600_004),
    ];
    for (index, (value, millis)) in values.into_iter().enumerate() {
        if index == 2 {
            let _: () = redis::cmd("SCRIPT")
                .arg("FLUSH")
                .query_async(&mut connection)
                .await
                .unwrap();
        }
        let ts = EpochMillis::from_millis(millis).unwrap();
        let written = cache
            .set_latest_slots(&[(&slot, &value, ts)])
            .await
            .unwrap();
        assert_eq!(written, 1);
        let stored: String = redis::cmd("GET")
            .arg(slot.key())
            .query_async(&mut connection)
            .await
            .unwrap();
        let expected = serde_json::to_string(&LatestValue {
            value,
            ts,
            sensor_type: sensor_type.clone(),
            unit: unit.clone(),
        })
        .unwrap();
        assert_eq!(stored, expected);
    }
    assert!(slot.key().ends_with("latest:boiler-house-1:b1_x"));
}
