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

/// Runs an InfluxQL query over plain HTTP, the way an analyst's tool
/// would, and returns its first statement's series.
async fn raw_query(influx: &Influx, query: &str) -> Vec<serde_json::Value> {
    let url = stoker_testkit::influx_options().url;
    let answer: serde_json::Value = reqwest::Client::new()
        .get(format!("{url}/query"))
        .query(&[("db", influx.database()), ("q", query), ("epoch", "ms")])
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert!(answer["results"][0]["error"].is_null(), "{query}: {answer}");
    answer["results"][0]["series"]
        .as_array()
        .cloned()
        .unwrap_or_default()
}

/// Readings of three sensors over five and a half minutes, with values
/// whose sums round differently in every order.
async fn write_awkward_readings(influx: &Influx, start: EpochMillis) -> u64 {
    let site = SiteSlug::parse("boiler-house-1").unwrap();
    let mut batch = LineBatch::default();
    let mut written = 0;
    for (index, key) in ["b1_flue_temp", "b1_steam_pressure", "b1_flue_o2"]
        .into_iter()
        .enumerate()
    {
        let sensor = SensorKey::parse(key).unwrap();
        let sensor_type = SensorType::parse(["temperature", "pressure", "o2"][index]).unwrap();
        for step in 0..330_i64 {
            let value = 100.0 / 3.0 * (index as f64 + 1.0)
                + (step as f64 * 0.7).sin() * 0.1
                + 1e-9 * step as f64;
            batch.push(
                &site,
                &sensor,
                &sensor_type,
                value,
                start.plus_millis(step * 1_000 + 17),
            );
            written += 1;
        }
    }
    influx.write(&batch).await.unwrap();
    written
}

#[tokio::test]
async fn setup_sets_the_retentions_and_is_idempotent() {
    let test = TestInflux::create().await;
    let mut options = test.options();
    options.raw_retention = std::time::Duration::from_secs(7 * 86_400);
    let influx = Influx::connect(&options).await.unwrap();
    for _ in 0..2 {
        let report = influx.setup().await.unwrap();
        assert_eq!(report.raw_policy, "autogen");
        assert_eq!(report.rollup_policy, "rollup");
        assert_eq!(
            report.raw_retention,
            Some(std::time::Duration::from_secs(7 * 86_400))
        );
    }
    let policies = raw_query(
        &influx,
        &format!("SHOW RETENTION POLICIES ON \"{}\"", influx.database()),
    )
    .await;
    let rows = policies[0]["values"].as_array().unwrap();
    let duration = |name: &str| {
        rows.iter().find(|row| row[0] == name).map(|row| {
            (
                row[1].as_str().unwrap().to_owned(),
                row[4].as_bool().unwrap(),
            )
        })
    };
    assert_eq!(duration("autogen"), Some(("168h0m0s".to_owned(), true)));
    assert_eq!(duration("rollup"), Some(("17520h0m0s".to_owned(), false)));

    // Too short a retention is refused with the variable's name.
    options.raw_retention = std::time::Duration::from_secs(60);
    let error = Influx::connect(&options)
        .await
        .unwrap()
        .setup()
        .await
        .unwrap_err();
    assert!(
        error.to_string().contains("INFLUX_RAW_RETENTION"),
        "{error}"
    );
}

#[tokio::test]
async fn the_rollup_matches_the_raw_minutes_exactly() {
    let test = TestInflux::create().await;
    let influx = test.influx();
    influx.setup().await.unwrap();
    let now = EpochMillis::now();
    let start = stoker_timeseries::rollup::floor_minute(now.plus_millis(-3_600_000));
    let written = write_awkward_readings(influx, start).await;
    let end = start.plus_millis(6 * 60_000);
    let report = influx.roll_up(start, end).await.unwrap();
    assert_eq!(report.readings, written);
    assert_eq!(
        report.points,
        3 * 6,
        "three sensors, six minutes (the last one partial)"
    );
    // Rolling up again changes nothing.
    assert_eq!(influx.roll_up(start, end).await.unwrap(), report);

    let range = format!(
        "time >= {}ms AND time < {}ms",
        start.as_millis(),
        end.as_millis()
    );
    let raw = raw_query(
        influx,
        &format!(
            "SELECT mean(\"value\"), min(\"value\"), max(\"value\"), count(\"value\"), last(\"value\") FROM \"readings\" \
             WHERE {range} GROUP BY time(1m), \"site\", \"sensor\", \"type\" fill(none)"
        ),
    )
    .await;
    let rolled = raw_query(
        influx,
        &format!(
            "SELECT \"mean\", \"min\", \"max\", \"count\", \"last\" FROM \"rollup\".\"readings_1m\" \
             WHERE {range} GROUP BY \"site\", \"sensor\", \"type\""
        ),
    )
    .await;
    assert_eq!(raw.len(), 3);
    assert_eq!(
        raw.iter()
            .map(|series| (&series["tags"], &series["values"]))
            .collect::<Vec<_>>(),
        rolled
            .iter()
            .map(|series| (&series["tags"], &series["values"]))
            .collect::<Vec<_>>(),
        "every minute's mean, min, max, count and last, bit for bit"
    );
}

#[tokio::test]
async fn history_reads_rolled_minutes_from_the_rollup_and_the_rest_raw() {
    use stoker_timeseries::Aggregate;
    let test = TestInflux::create().await;
    let influx = test.influx();
    influx.setup().await.unwrap();
    let start = stoker_timeseries::rollup::floor_minute(EpochMillis::now().plus_millis(-3_600_000));
    write_awkward_readings(influx, start).await;
    // The rollup holds minutes 1 to 3; the rest must come from raw readings.
    influx
        .roll_up(start.plus_millis(60_000), start.plus_millis(240_000))
        .await
        .unwrap();
    influx
        .set_rollup_progress(start.plus_millis(240_000))
        .await
        .unwrap();
    assert_eq!(
        influx.rollup_progress().await.unwrap(),
        Some(start.plus_millis(240_000))
    );
    let site = SiteSlug::parse("boiler-house-1").unwrap();
    let sensor = SensorKey::parse("b1_flue_temp").unwrap();
    // An unaligned range: part of the first minute, part of the last.
    let (from, to) = (start.plus_millis(30_000), start.plus_millis(320_000));
    let rolled_through = influx.rollup_progress().await.unwrap().unwrap();
    for every in [60_000, 120_000] {
        let every = std::time::Duration::from_millis(every);
        for aggregate in Aggregate::ALL {
            let raw = influx
                .history(&site, &sensor, from, to, every, aggregate)
                .await
                .unwrap();
            let mixed = influx
                .history_with_rollup(&site, &sensor, from, to, every, aggregate, rolled_through)
                .await
                .unwrap();
            assert_eq!(raw.len(), mixed.len(), "{aggregate:?} every {every:?}");
            for ((raw_at, raw_value), (at, value)) in raw.iter().zip(&mixed) {
                assert_eq!(raw_at, at);
                if aggregate == Aggregate::Mean {
                    assert!(
                        (raw_value - value).abs() <= 1e-12 * raw_value.abs(),
                        "{raw_value} vs {value}"
                    );
                } else {
                    assert_eq!(raw_value, value, "{aggregate:?} at {at}");
                }
            }
        }
    }
}

#[tokio::test]
async fn history_buckets_count_every_reading_whether_rolled_or_raw() {
    use stoker_timeseries::Aggregate;
    let test = TestInflux::create().await;
    let influx = test.influx();
    influx.setup().await.unwrap();
    let start = stoker_timeseries::rollup::floor_minute(EpochMillis::now().plus_millis(-3_600_000));
    write_awkward_readings(influx, start).await;
    influx
        .roll_up(start.plus_millis(60_000), start.plus_millis(240_000))
        .await
        .unwrap();
    let rolled_through = start.plus_millis(240_000);
    let site = SiteSlug::parse("boiler-house-1").unwrap();
    let sensor = SensorKey::parse("b1_flue_temp").unwrap();
    let (from, to) = (start.plus_millis(30_000), start.plus_millis(320_000));
    let readings = influx.readings(&site, &sensor, from, to).await.unwrap();
    assert!(readings.len() > 10, "{readings:?}");
    // 90 s is not a whole number of minutes: read raw throughout.
    for every_ms in [60_000, 120_000, 90_000] {
        let every = std::time::Duration::from_millis(every_ms as u64);
        let mut expected = std::collections::BTreeMap::<i64, u64>::new();
        for (at, _) in &readings {
            let millis = at.as_millis();
            *expected
                .entry(millis - millis.rem_euclid(every_ms))
                .or_default() += 1;
        }
        for aggregate in Aggregate::ALL {
            let buckets = influx
                .history_buckets(&site, &sensor, from, to, every, aggregate, rolled_through)
                .await
                .unwrap();
            let values = influx
                .history_with_rollup(&site, &sensor, from, to, every, aggregate, rolled_through)
                .await
                .unwrap();
            let counts: std::collections::BTreeMap<i64, u64> = buckets
                .iter()
                .map(|bucket| (bucket.start.as_millis(), bucket.count))
                .collect();
            assert_eq!(counts, expected, "{aggregate:?} every {every_ms} ms");
            assert_eq!(buckets.len(), values.len());
            for (bucket, (at, value)) in buckets.iter().zip(&values) {
                assert_eq!(bucket.start, *at);
                // InfluxDB's own mean (read raw without counts) and sum /
                // count may differ in the last bit.
                assert!(
                    (bucket.value - value).abs() <= 1e-12 * value.abs(),
                    "{aggregate:?} every {every_ms} ms at {at}: {} vs {value}",
                    bucket.value
                );
            }
        }
    }
}

#[tokio::test]
async fn readings_older_than_the_retention_are_dropped_and_the_rest_kept() {
    let test = TestInflux::create().await;
    let influx = test.influx();
    influx.setup().await.unwrap();
    let (site, sensor, sensor_type) = ids();
    let mut batch = LineBatch::default();
    let now = EpochMillis::now();
    batch.push(
        &site,
        &sensor,
        &sensor_type,
        1.0,
        now.plus_millis(-40 * 86_400_000),
    );
    batch.push(&site, &sensor, &sensor_type, 2.0, now);
    // A partial write InfluxDB will never take in full: not an error to retry.
    influx.write(&batch).await.unwrap();
    assert_eq!(influx.count_readings(&site).await.unwrap(), 1);
    assert_eq!(
        influx.raw_retention(),
        Some(stoker_timeseries::DEFAULT_RAW_RETENTION)
    );
}

#[tokio::test]
async fn history_over_more_than_a_week_is_bucketed_by_influxdb_from_the_rollup() {
    use stoker_timeseries::Aggregate;
    let test = TestInflux::create().await;
    let influx = test.influx();
    influx.setup().await.unwrap();
    let (site, sensor, sensor_type) = ids();
    let end = stoker_timeseries::rollup::floor_minute(EpochMillis::now());
    let start = end.plus_millis(-9 * 86_400_000);
    // One reading every 7 minutes for nine days.
    let mut batch = LineBatch::default();
    let mut at = start;
    let mut step = 0;
    while at < end {
        batch.push(
            &site,
            &sensor,
            &sensor_type,
            f64::from(step % 13) * 0.37,
            at,
        );
        at = at.plus_millis(7 * 60_000);
        step += 1;
    }
    influx.write(&batch).await.unwrap();
    influx.roll_up(start, end).await.unwrap();
    let every = std::time::Duration::from_secs(3_600);
    for aggregate in Aggregate::ALL {
        let raw = influx
            .history(&site, &sensor, start, end, every, aggregate)
            .await
            .unwrap();
        let rolled = influx
            .history_with_rollup(&site, &sensor, start, end, every, aggregate, end)
            .await
            .unwrap();
        assert!(raw.len() >= 216, "nine days by hours: {aggregate:?}");
        let counted = influx
            .history_buckets(&site, &sensor, start, end, every, aggregate, end)
            .await
            .unwrap();
        assert_eq!(
            counted.iter().map(|bucket| bucket.count).sum::<u64>(),
            u64::try_from(step).unwrap(),
            "{aggregate:?}: every reading counted once"
        );
        assert_eq!(raw.len(), rolled.len(), "{aggregate:?}");
        for ((raw_at, raw_value), (at, value)) in raw.iter().zip(&rolled) {
            assert_eq!(raw_at, at);
            assert!(
                (raw_value - value).abs() <= 1e-12,
                "{aggregate:?} at {at}: {raw_value} vs {value}"
            );
        }
    }
}
