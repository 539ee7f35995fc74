//! The InfluxDB client against the real local server.

use stoker_domain::{EpochMillis, SensorKey, SensorType, SiteSlug};
use stoker_testkit::TestInflux;
use stoker_timeseries::{Error, Flavor, Influx, InfluxOptions, LineBatch};

fn ids() -> (SiteSlug, SensorKey, SensorType) {
    (
        SiteSlug::parse("boiler-house-1").unwrap(),
        SensorKey::parse("b1_steam_pressure").unwrap(),
        SensorType::parse("pressure").unwrap(),
    )
}

#[tokio::test]
async fn detects_the_version_and_round_trips_readings() {
    let test = TestInflux::create().await;
    let influx = test.influx();
    assert!(!influx.version().is_empty());
    assert_eq!(
        influx.flavor(),
        Flavor::V1,
        "dev-up runs Debian's InfluxDB 1.x"
    );

    let (site, sensor, sensor_type) = ids();
    let start = EpochMillis::from_millis(1_732_269_600_000).unwrap();
    let mut batch = LineBatch::default();
    for second in 0..10 {
        batch.push(
            &site,
            &sensor,
            &sensor_type,
            10.0 + f64::from(second) / 10.0,
            start.plus_millis(i64::from(second) * 1000),
        );
    }
    influx.write(&batch).await.unwrap();
    // Writing the same batch again stores nothing new: points are idempotent.
    influx.write(&batch).await.unwrap();

    let rows = influx
        .readings(&site, &sensor, start, start.plus_millis(60_000))
        .await
        .unwrap();
    assert_eq!(rows.len(), 10);
    assert_eq!(rows[0], (start, 10.0));
    assert_eq!(rows[9], (start.plus_millis(9000), 10.9));

    let latest = influx.latest_per_sensor(&site).await.unwrap();
    assert_eq!(latest.len(), 1);
    assert_eq!(latest[0].sensor, sensor);
    assert_eq!(latest[0].sensor_type, sensor_type);
    assert_eq!(latest[0].timestamp, start.plus_millis(9000));
    assert_eq!(latest[0].value, 10.9);
}

#[tokio::test]
async fn a_missing_database_is_a_permanent_error() {
    let test = TestInflux::create().await;
    let missing = test.influx().with_database("stoker_test_does_not_exist");
    let (site, sensor, sensor_type) = ids();
    let mut batch = LineBatch::default();
    batch.push(&site, &sensor, &sensor_type, 1.0, EpochMillis::now());
    let error = missing.write(&batch).await.unwrap_err();
    assert!(
        matches!(error, Error::Rejected { status: 404, .. }),
        "{error}"
    );
    assert!(!error.is_transient());
}

#[tokio::test]
async fn an_unreachable_server_is_a_transient_error_naming_the_url() {
    let options = InfluxOptions {
        url: "http://127.0.0.1:9".into(),
        ..InfluxOptions::default()
    };
    let error = Influx::connect(&options).await.unwrap_err();
    assert!(error.is_transient());
    assert!(error.to_string().contains("127.0.0.1:9"), "{error}");
}

#[tokio::test]
async fn bucket_stats_sum_up_each_series_per_bucket() {
    let test = TestInflux::create().await;
    let influx = test.influx();
    let (site, sensor, sensor_type) = ids();
    let other = SensorKey::parse("b1_flue_temp").unwrap();
    let elsewhere = SiteSlug::parse("boiler-house-2").unwrap();
    let start = EpochMillis::from_millis(1_732_269_600_000).unwrap();
    let mut batch = LineBatch::default();
    // Bucket 0: 1, 3; bucket 1: nothing; bucket 2: 8.
    for (offset, value) in [(0, 1.0), (4_000, 3.0), (21_000, 8.0)] {
        batch.push(
            &site,
            &sensor,
            &sensor_type,
            value,
            start.plus_millis(offset),
        );
    }
    batch.push(&site, &other, &sensor_type, 5.0, start.plus_millis(1_000));
    batch.push(
        &elsewhere,
        &sensor,
        &sensor_type,
        7.0,
        start.plus_millis(1_000),
    );
    influx.write(&batch).await.unwrap();

    let only = stoker_timeseries::SeriesFilter {
        any_of: vec![stoker_timeseries::SeriesMatch {
            site: Some(site.clone()),
            sensor: Some(sensor.clone()),
            sensor_type: None,
        }],
    };
    let series = influx
        .bucket_stats(
            &only,
            start,
            start.plus_millis(30_000),
            10_000,
            stoker_timeseries::Columns::ALL,
        )
        .await
        .unwrap();
    assert_eq!(series.len(), 1, "{series:?}");
    assert_eq!(
        (series[0].site.as_str(), series[0].sensor.as_str()),
        (site.as_str(), sensor.as_str())
    );
    let buckets = &series[0].buckets;
    assert_eq!(
        buckets.len(),
        2,
        "the empty bucket is left out: {buckets:?}"
    );
    assert_eq!(buckets[0].start, start);
    assert_eq!(
        (
            buckets[0].count,
            buckets[0].sum,
            buckets[0].min,
            buckets[0].max,
            buckets[0].first,
            buckets[0].last
        ),
        (2, 4.0, 1.0, 3.0, 1.0, 3.0)
    );
    assert!((buckets[0].stddev - 2.0_f64.sqrt()).abs() < 1e-12);
    assert_eq!(buckets[1].start, start.plus_millis(20_000));
    assert_eq!((buckets[1].count, buckets[1].stddev), (1, 0.0));

    let all = influx
        .bucket_stats(
            &Default::default(),
            start,
            start.plus_millis(30_000),
            10_000,
            stoker_timeseries::Columns {
                max: true,
                ..Default::default()
            },
        )
        .await
        .unwrap();
    assert_eq!(all.len(), 3);
    // Only the count and what was asked for: the rest is NaN.
    let first = &all
        .iter()
        .find(|series| series.sensor == sensor.as_str() && series.site == site.as_str())
        .unwrap()
        .buckets[0];
    assert_eq!((first.count, first.max), (2, 3.0));
    assert!(first.sum.is_nan() && first.last.is_nan() && first.stddev.is_nan());
}
