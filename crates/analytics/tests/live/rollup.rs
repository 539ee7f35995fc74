//! The rollup job: minutes rolled up equal the raw history, late
//! readings re-rolled, led by one process.

use stoker_analytics::rollup::{Roller, RollupMetrics, RollupOptions};
use stoker_domain::{EpochMillis, SensorKey, SensorType, SiteSlug};
use stoker_testkit::TestInflux;
use stoker_timeseries::rollup::floor_minute;
use stoker_timeseries::{Aggregate, LineBatch};
use tokio_util::sync::CancellationToken;

const MINUTE: i64 = 60_000;

fn write(batch: &mut LineBatch, sensor: &str, value: f64, at: EpochMillis) {
    batch.push(
        &SiteSlug::parse("boiler-house-1").unwrap(),
        &SensorKey::parse(sensor).unwrap(),
        &SensorType::parse("temperature").unwrap(),
        value,
        at,
    );
}

/// The history of `sensor` through the rollup equals the raw history.
async fn rollup_agrees(influx: &stoker_timeseries::Influx, start: EpochMillis, end: EpochMillis) {
    let site = SiteSlug::parse("boiler-house-1").unwrap();
    let sensor = SensorKey::parse("b1_flue_temp").unwrap();
    let through = influx.rollup_progress().await.unwrap().unwrap();
    for aggregate in Aggregate::ALL {
        let every = std::time::Duration::from_secs(60);
        let raw = influx
            .history(&site, &sensor, start, end, every, aggregate)
            .await
            .unwrap();
        let mixed = influx
            .history_with_rollup(&site, &sensor, start, end, every, aggregate, through)
            .await
            .unwrap();
        assert_eq!(raw.len(), mixed.len(), "{aggregate:?}");
        for ((_, raw), (at, mixed)) in raw.iter().zip(&mixed) {
            assert!(
                (raw - mixed).abs() < 1e-9,
                "{aggregate:?} at {at}: raw {raw}, rollup {mixed}"
            );
        }
    }
}

#[tokio::test]
async fn the_job_backfills_then_follows_and_folds_in_late_readings() {
    let test = TestInflux::create().await;
    let influx = test.influx();
    influx.setup().await.unwrap();
    let t0 = floor_minute(EpochMillis::now().plus_millis(-3_600_000));
    let mut batch = LineBatch::default();
    for second in 0..300 {
        let at = t0.plus_millis(second * 1_000);
        write(&mut batch, "b1_flue_temp", 180.0 + (second % 7) as f64, at);
        write(&mut batch, "b1_water_temp", 80.0 + (second % 3) as f64, at);
    }
    influx.write(&batch).await.unwrap();
    let stop = CancellationToken::new();
    let options = RollupOptions::default();
    let grace = options.grace.as_millis() as i64;
    let mut roller = Roller::new(influx.clone(), options.clone(), RollupMetrics::default());

    // A database without a rollup: backfilled from the oldest reading.
    let now = t0.plus_millis(6 * MINUTE + grace);
    let pass = roller.pass(now, &stop).await.unwrap();
    assert_eq!(pass.from, Some(t0));
    assert_eq!(pass.through, Some(t0.plus_millis(6 * MINUTE)));
    assert_eq!((pass.points, pass.readings), (2 * 5, 600));
    assert_eq!(influx.rollup_progress().await.unwrap(), pass.through);
    rollup_agrees(influx, t0, t0.plus_millis(6 * MINUTE)).await;

    // A reading stored late, in a minute rolled up already, and a new minute.
    let mut late = LineBatch::default();
    write(
        &mut late,
        "b1_flue_temp",
        900.0,
        t0.plus_millis(2 * MINUTE + 500),
    );
    write(
        &mut late,
        "b1_flue_temp",
        181.0,
        t0.plus_millis(6 * MINUTE + 1_000),
    );
    influx.write(&late).await.unwrap();

    // A new leader learns the progress from InfluxDB and rolls the
    // trailing ROLLUP_LATE again.
    let mut successor = Roller::new(influx.clone(), options, RollupMetrics::default());
    let pass = successor
        .pass(t0.plus_millis(7 * MINUTE + grace), &stop)
        .await
        .unwrap();
    assert_eq!(pass.from, Some(t0.plus_millis(6 * MINUTE - 10 * MINUTE)));
    assert_eq!(pass.through, Some(t0.plus_millis(7 * MINUTE)));
    assert_eq!(
        pass.readings, 602,
        "every reading of the window, the late one included"
    );
    rollup_agrees(influx, t0, t0.plus_millis(7 * MINUTE)).await;

    // Nothing new: the pass only re-rolls the trailing window.
    let pass = successor
        .pass(t0.plus_millis(7 * MINUTE + grace + 1), &stop)
        .await
        .unwrap();
    assert_eq!(pass.through, Some(t0.plus_millis(7 * MINUTE)));
    assert_eq!(
        influx.rollup_progress().await.unwrap(),
        Some(t0.plus_millis(7 * MINUTE))
    );

    // Twenty minutes on, minute 1 is long out of the trailing window.
    let pass = successor
        .pass(t0.plus_millis(20 * MINUTE + grace), &stop)
        .await
        .unwrap();
    assert_eq!(pass.through, Some(t0.plus_millis(20 * MINUTE)));
    // A gateway catches up: a reading of minute 1, marked by its
    // writer as ingestion marks late readings, and one of minute 3
    // that nobody marked.
    let mut late = LineBatch::default();
    let marked = t0.plus_millis(MINUTE + 1_500);
    write(&mut late, "b1_flue_temp", 950.0, marked);
    write(
        &mut late,
        "b1_flue_temp",
        970.0,
        t0.plus_millis(3 * MINUTE + 1_500),
    );
    influx.write(&late).await.unwrap();
    influx.mark_late(marked, marked).await.unwrap();
    let pass = successor
        .pass(t0.plus_millis(21 * MINUTE + grace), &stop)
        .await
        .unwrap();
    assert_eq!(
        pass.late_points, 2,
        "minute 1, rolled again for both sensors"
    );
    rollup_agrees(influx, t0, t0.plus_millis(3 * MINUTE)).await;
    let site = SiteSlug::parse("boiler-house-1").unwrap();
    let sensor = SensorKey::parse("b1_flue_temp").unwrap();
    let minute_3 = |through| {
        influx.history_with_rollup(
            &site,
            &sensor,
            t0.plus_millis(3 * MINUTE),
            t0.plus_millis(4 * MINUTE),
            std::time::Duration::from_secs(60),
            Aggregate::Max,
            through,
        )
    };
    let through = t0.plus_millis(21 * MINUTE);
    assert_eq!(
        minute_3(through).await.unwrap()[0].1,
        186.0,
        "the unmarked late reading is not in the rollup"
    );
    assert_eq!(minute_3(t0).await.unwrap()[0].1, 970.0, "but it is stored");
    // A mark is read again by the passes within the overlap (marks are
    // stamped before they are stored); rolling twice is harmless.
    let pass = successor
        .pass(t0.plus_millis(22 * MINUTE + grace), &stop)
        .await
        .unwrap();
    assert_eq!(
        pass.late_points, 2,
        "the mark is read again within the overlap"
    );
}
