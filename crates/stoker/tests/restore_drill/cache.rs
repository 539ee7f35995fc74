//! `stoker cache rebuild`: Redis refilled from the restored stores, and
//! told which store it cannot reach.

use std::path::Path;
use stoker_cache::LatestValue;
use stoker_domain::{EpochMillis, ReadingValue, SensorKey, SensorType, Unit};
use stoker_testkit::{TestInflux, TestPostgres, TestRedis};

use super::*;
use crate::restored::*;
use crate::seed::*;

/// `stoker cache rebuild` on the restored stores: every sensor with data
/// gets its newest reading, a newer cached value is kept, dashboards go.
pub(crate) async fn rebuild_cache(
    postgres: &RestoredPostgres,
    influx: &RestoredInflux,
    newest: i64,
) {
    let redis = TestRedis::new();
    let cache = redis.cache();
    let sensor_type = SensorType::parse("pressure").unwrap();
    let unit = Unit::parse("bar").unwrap();
    let cached = |value: f64, ts: i64| LatestValue {
        value: ReadingValue::Number(value),
        ts: EpochMillis::from_millis(ts).unwrap(),
        sensor_type: sensor_type.clone(),
        unit: unit.clone(),
    };
    // drill-a: older than InfluxDB's newest (replaced); drill-b: newer
    // (a reading ingestion cached meanwhile: kept).
    let older = cached(-1.0, newest - 3_600_000);
    let newer = cached(99.5, newest + 1_000);
    let (site_a, site_b) = (site(SITES[0]), site(SITES[1]));
    let pressure = key(SENSORS[0].0);
    cache
        .set_latest(&[(&site_a, &pressure, &older), (&site_b, &pressure, &newer)])
        .await
        .expect("prime Redis");
    for slug in SITES {
        cache
            .set_dashboard(&site(slug), "{\"stale\":true}")
            .await
            .expect("prime a dashboard");
    }

    let (ok, output) = run(
        Path::new(BINARY),
        &["cache", "rebuild"],
        &[
            ("DATABASE_URL", postgres.url()),
            ("INFLUX_URL", stoker_testkit::influx_options().url),
            ("INFLUX_BUCKET", influx.name.clone()),
            ("REDIS_URL", stoker_testkit::redis_url()),
            ("REDIS_KEY_PREFIX", redis.prefix().to_owned()),
        ],
    )
    .await;
    assert!(ok, "stoker cache rebuild failed:\n{output}");
    let sensors = SITES.len() * (SENSORS.len() + 1);
    let with_data = SITES.len() * SENSORS.len();
    assert!(
        output.contains(&format!(
            "rebuilt: {} sites, {sensors} sensors: {} refilled (1 kept a newer value already in Redis), {} without data in InfluxDB",
            SITES.len(),
            with_data - 1,
            SITES.len()
        )),
        "{output}"
    );

    for (site_index, slug) in SITES.iter().enumerate() {
        let mut keys: Vec<SensorKey> = SENSORS.iter().map(|(sensor, _, _)| key(sensor)).collect();
        keys.push(key(SILENT));
        let values = cache.latest(&site(slug), &keys).await.expect("read Redis");
        for (sensor_index, value) in values.iter().enumerate() {
            if sensor_index == SENSORS.len() {
                assert_eq!(value, &None, "{slug}: the silent sensor has nothing cached");
                continue;
            }
            let value = value
                .as_ref()
                .unwrap_or_else(|| panic!("{slug}/{}: nothing cached", keys[sensor_index]));
            if site_index == 1 && sensor_index == 0 {
                assert_eq!(value, &newer, "a newer cached value is never replaced");
                continue;
            }
            assert_eq!(
                value.ts.as_millis(),
                newest,
                "{slug}/{}",
                keys[sensor_index]
            );
            let expected = reading_value(site_index, sensor_index, 0);
            let number = value.value.as_number().expect("a numeric sensor's value");
            assert!(
                (number - expected).abs() <= 1e-9 * expected.abs().max(1.0),
                "{slug}/{}: {number} cached, {expected} newest",
                keys[sensor_index],
            );
            assert_eq!(value.sensor_type.as_str(), SENSORS[sensor_index].1);
            assert_eq!(value.unit.as_str(), SENSORS[sensor_index].2);
        }
        assert_eq!(
            cache.dashboard(&site(slug)).await.expect("read Redis"),
            None,
            "{slug}: the cached dashboard is dropped"
        );
    }
}

#[tokio::test]
async fn cache_rebuild_names_the_store_it_cannot_reach() {
    let postgres = TestPostgres::create().await;
    let _pool = postgres.migrated_pool().await;
    let influx = TestInflux::create().await;
    let influx_url = stoker_testkit::influx_options().url;
    let stores = |redis: &str, bucket: &str| {
        vec![
            ("DATABASE_URL", postgres.url()),
            ("INFLUX_URL", influx_url.clone()),
            ("INFLUX_BUCKET", bucket.to_owned()),
            ("REDIS_URL", redis.to_owned()),
        ]
    };
    let database = influx.influx().database().to_owned();

    let (ok, output) = run(
        Path::new(BINARY),
        &["cache", "rebuild"],
        &stores("redis://127.0.0.1:9", &database),
    )
    .await;
    assert!(!ok, "{output}");
    assert!(
        output.contains("Redis") && output.contains("REDIS_URL"),
        "{output}"
    );

    let missing = unique_name();
    let (ok, output) = run(
        Path::new(BINARY),
        &["cache", "rebuild"],
        &stores(&stoker_testkit::redis_url(), &missing),
    )
    .await;
    assert!(!ok, "{output}");
    assert!(
        output.contains(&missing) && output.contains("INFLUX_BUCKET"),
        "{output}"
    );

    let mut environment = stores(&stoker_testkit::redis_url(), &database);
    environment[0].1 = with_database(&postgres.url(), &unique_name());
    let (ok, output) = run(Path::new(BINARY), &["cache", "rebuild"], &environment).await;
    assert!(!ok, "{output}");
    assert!(
        output.contains("Postgres") && output.contains("DATABASE_URL"),
        "{output}"
    );
}
