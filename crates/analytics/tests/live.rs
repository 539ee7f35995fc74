//! The evaluation loop on real data written to InfluxDB, with alerts in the
//! real Postgres and states mirrored to the real Redis.

use std::time::Duration;

use stoker_analytics::evaluate::{self, Watch};
use stoker_analytics::live::{EvaluationOptions, Evaluator};
use stoker_analytics::notify::NotifyOptions;
use stoker_analytics::store::{self, AlertFilter};
use stoker_domain::{EpochMillis, SensorKey, SensorType, SiteSlug, Unit, ValidRange};
use stoker_metadata::{NewSensor, NewSite};
use stoker_postgres::Pool;
use stoker_rules::{Agg, AlertRule, NewAlertRule, Op, RuleKind, RuleSelector, Severity};
use stoker_stores::Stores;
use stoker_testkit::{TestInflux, TestPostgres, TestRedis};
use stoker_timeseries::LineBatch;

const SECOND: i64 = 1000;

struct Harness {
    _postgres: TestPostgres,
    influx: TestInflux,
    redis: TestRedis,
    pool: Pool,
    stores: Stores,
}

impl Harness {
    async fn start() -> Self {
        let postgres = TestPostgres::create().await;
        let pool = postgres.migrated_pool().await;
        stoker_analytics::migrate(&pool).await.unwrap();
        let site = NewSite::parse("boiler-house-1", "Boiler house 1", "UTC").unwrap();
        stoker_metadata::create_site(&pool, &site).await.unwrap();
        let influx = TestInflux::create().await;
        let redis = TestRedis::new();
        let stores = Stores {
            pool: pool.clone(),
            postgres: postgres.options(),
            influx: influx.influx().clone(),
            cache: redis.cache(),
        };
        let harness = Self {
            _postgres: postgres,
            influx,
            redis,
            pool,
            stores,
        };
        harness.sensor("b1_steam_pressure", "pressure", "bar").await;
        harness
    }

    async fn sensor(&self, key: &str, sensor_type: &str, unit: &str) {
        let sensor = NewSensor {
            key: SensorKey::parse(key).unwrap(),
            sensor_type: SensorType::parse(sensor_type).unwrap(),
            unit: Unit::parse(unit).unwrap(),
            range: ValidRange::new(Some(0.0), Some(1000.0)).unwrap(),
        };
        stoker_metadata::create_sensor(&self.pool, &site(), &sensor)
            .await
            .unwrap();
    }

    /// Makes every sensor a day old: tests replay ticks of the past hour,
    /// and a no-data rule does not judge a sensor younger than its timeout.
    async fn age_sensors(&self) {
        self.pool
            .get()
            .await
            .unwrap()
            .batch_execute("UPDATE metadata.sensors SET created_at = now() - interval '1 day'")
            .await
            .unwrap();
    }

    /// A rule on one sensor of the site, or on all of them (`*`).
    async fn rule(&self, name: &str, sensor: &str, kind: RuleKind) -> AlertRule {
        let rule = NewAlertRule::new(
            name,
            RuleSelector {
                site: Some(site()),
                sensor: (sensor != "*").then(|| SensorKey::parse(sensor).unwrap()),
                sensor_type: None,
            },
            kind,
            Severity::Warning,
            true,
        )
        .unwrap();
        stoker_metadata::create_alert_rule(&self.pool, &rule)
            .await
            .unwrap()
    }

    /// One reading per second of `sensor` over `[from, to)` seconds after
    /// `origin`, valued by `value(second)` (none: no reading).
    async fn write(
        &self,
        sensor: &str,
        origin: i64,
        seconds: std::ops::Range<i64>,
        value: impl Fn(i64) -> Option<f64>,
    ) {
        let mut batch = LineBatch::default();
        let key = SensorKey::parse(sensor).unwrap();
        let sensor_type = SensorType::parse("pressure").unwrap();
        for second in seconds {
            if let Some(value) = value(second) {
                batch.push(
                    &site(),
                    &key,
                    &sensor_type,
                    value,
                    EpochMillis::from_millis(origin + second * SECOND).unwrap(),
                );
            }
        }
        self.influx.influx().write(&batch).await.unwrap();
    }
}

fn site() -> SiteSlug {
    SiteSlug::parse("boiler-house-1").unwrap()
}

/// A tick-aligned origin an hour ago.
fn origin() -> i64 {
    (EpochMillis::now().as_millis() - 3_600 * SECOND).div_euclid(10 * SECOND) * 10 * SECOND
}

/// Alerts of a rule as (opened, resolved) seconds after `origin`.
async fn alerts_of(pool: &Pool, rule: &AlertRule, origin: i64) -> Vec<(i64, Option<i64>)> {
    let filter = AlertFilter {
        rule_id: Some(rule.id),
        ..AlertFilter::default()
    };
    let mut alerts: Vec<(i64, Option<i64>)> = store::list_alerts(pool, &filter, 1000, None)
        .await
        .unwrap()
        .items
        .iter()
        .map(|alert| {
            (
                (alert.opened_at.timestamp_millis() - origin) / SECOND,
                alert
                    .resolved_at
                    .map(|at| (at.timestamp_millis() - origin) / SECOND),
            )
        })
        .collect();
    alerts.sort();
    alerts
}

#[tokio::test]
async fn each_rule_kind_fires_and_clears_on_time_and_the_backtest_agrees() {
    let harness = Harness::start().await;
    harness.sensor("b1_water_temp", "temperature", "°C").await;
    harness.sensor("b1_feedwater_flow", "flow", "m3/h").await;
    harness.sensor("b1_flue_temp", "temperature", "°C").await;
    harness.age_sensors().await;
    let origin = origin();
    // Pressure: 10 bar, then 14 from 100 s to 200 s; 14 again from 300 s,
    // then from 320 s to 500 s a swing between 13 and 12.2 every 10 s, whose
    // 30 s mean (12.47–12.73) crosses the trigger but stays above the clear
    // value; then 10.
    harness
        .write("b1_steam_pressure", origin, -60..700, |s| {
            Some(match s {
                100..200 | 300..320 => 14.0,
                320..500 if (s / 10) % 2 == 0 => 13.0,
                320..500 => 12.2,
                _ => 10.0,
            })
        })
        .await;
    // Water temperature: flat, rising 0.1 °C/s from 200 s to 350 s.
    harness
        .write("b1_water_temp", origin, -60..700, |s| {
            Some(100.0 + 0.1 * (s.clamp(200, 350) - 200) as f64)
        })
        .await;
    // Feedwater flow: silent from 250 s to 450 s.
    harness
        .write("b1_feedwater_flow", origin, -60..700, |s| {
            (!(250..450).contains(&s)).then_some(20.0)
        })
        .await;

    // Flue temperature: 180 ± 1, with a 30 s excursion to 190 from 400 s.
    harness
        .write("b1_flue_temp", origin, -700..700, |s| {
            Some(if (400..430).contains(&s) {
                190.0
            } else if s % 2 == 0 {
                181.0
            } else {
                179.0
            })
        })
        .await;

    let threshold = harness
        .rule(
            "Steam pressure high",
            "b1_steam_pressure",
            RuleKind::Threshold {
                agg: Agg::Mean,
                op: Op::Gt,
                threshold: 12.5,
                clear_threshold: 12.0,
                window: Duration::from_secs(30),
                for_: Duration::from_secs(20),
            },
        )
        .await;
    let rate = harness
        .rule(
            "Water heating fast",
            "b1_water_temp",
            RuleKind::RateOfChange {
                op: Op::Gt,
                rate_per_min: 4.0,
                clear_rate_per_min: 1.0,
                window: Duration::from_secs(60),
            },
        )
        .await;
    let silence = harness
        .rule(
            "Feedwater flow silent",
            "b1_feedwater_flow",
            RuleKind::NoData {
                timeout: Duration::from_secs(60),
            },
        )
        .await;

    let anomaly = harness
        .rule(
            "Flue temperature unusual",
            "b1_flue_temp",
            RuleKind::Anomaly {
                window: Duration::from_secs(30),
                baseline: Duration::from_secs(600),
                z: 3.0,
                clear_z: 1.5,
            },
        )
        .await;

    let options = EvaluationOptions {
        interval: Duration::from_secs(10),
        grace: Duration::ZERO,
    };
    let mut evaluator = Evaluator::new(harness.stores.clone(), NotifyOptions::default(), &options);
    evaluator.take_over(origin).await.unwrap();
    let mut queries = 0;
    for tick in evaluate::ticks(origin, origin + 690 * SECOND, 10 * SECOND) {
        let report = evaluator.tick(tick).await.unwrap();
        assert_eq!(report.judged, 4);
        queries += report.queries;
    }
    // One query per group of rules sharing a plan, per tick: the rate and
    // no-data rules both read 60 s in 10 s buckets, so three plans.
    assert_eq!(queries, 3 * 70);

    // mean over 30 s > 12.5 from tick 120 ([90, 120) has 20 s of 14); held
    // 20 s → fires at 140. The mean falls to ≤ 12 at tick 220. Again from
    // tick 320, fired at 340; the swing inside the hysteresis band raises
    // no second alert, and [480, 510) has a mean of 11.7: cleared at 510.
    assert_eq!(
        alerts_of(&harness.pool, &threshold, origin).await,
        vec![(140, Some(220)), (340, Some(510))]
    );
    // Rises 6 °C/min from 200 s: (last − first) over 60 s > 4 at tick 250
    // (4.9), ≤ 1 again at tick 400.
    assert_eq!(
        alerts_of(&harness.pool, &rate, origin).await,
        vec![(250, Some(400))]
    );
    // Nothing in [t − 60, t) first at tick 310; readings again at 460.
    assert_eq!(
        alerts_of(&harness.pool, &silence, origin).await,
        vec![(310, Some(460))]
    );

    // The mean of [t − 30 s, t) is more than 3 standard deviations from
    // the 10 minutes before it first at tick 410 (10 s at 190); by tick 450
    // the window holds 10 s at 190 and the baseline 20 s of it: z ≈ 1.2,
    // within 1.5, cleared.
    assert_eq!(
        alerts_of(&harness.pool, &anomaly, origin).await,
        vec![(410, Some(450))]
    );

    // The backtest over the same ticks raises the same alerts.
    let registry = stoker_metadata::registry(&harness.pool).await.unwrap();
    for rule in [&threshold, &rate, &silence, &anomaly] {
        let watch = Watch {
            targets: evaluate::targets(&rule.selector, &registry),
            rule: rule.clone(),
        };
        let previewed: Vec<(i64, Option<i64>)> = evaluate::backtest(
            harness.influx.influx(),
            &watch,
            EpochMillis::from_millis(origin).unwrap(),
            EpochMillis::from_millis(origin + 690 * SECOND).unwrap(),
            10 * SECOND,
        )
        .await
        .unwrap()
        .iter()
        .map(|alert| {
            (
                (alert.opened_at.as_millis() - origin) / SECOND,
                alert
                    .cleared_at
                    .map(|at| (at.as_millis() - origin) / SECOND),
            )
        })
        .collect();
        assert_eq!(
            previewed,
            alerts_of(&harness.pool, rule, origin).await,
            "{}",
            rule.name
        );
    }

    // Every transition is in the trail and queued for MQTT.
    let client = harness.pool.get().await.unwrap();
    let counts = client
        .query_one(
            "SELECT (SELECT count(*) FROM analytics.alert_events),
                    (SELECT count(*) FROM analytics.notifications WHERE channel = 'mqtt')",
            &[],
        )
        .await
        .unwrap();
    assert_eq!((counts.get::<_, i64>(0), counts.get::<_, i64>(1)), (10, 10));
    drop(harness.redis);
}

#[tokio::test]
async fn a_new_leader_rebuilds_a_pending_count_and_open_alerts_without_duplicates() {
    let harness = Harness::start().await;
    let origin = origin();
    harness
        .write("b1_steam_pressure", origin, -60..400, |s| {
            Some(if (100..300).contains(&s) { 14.0 } else { 10.0 })
        })
        .await;
    let rule = harness
        .rule(
            "Steam pressure high",
            "b1_steam_pressure",
            RuleKind::Threshold {
                agg: Agg::Min,
                op: Op::Gt,
                threshold: 12.5,
                clear_threshold: 12.0,
                window: Duration::from_secs(10),
                for_: Duration::from_secs(60),
            },
        )
        .await;
    let options = EvaluationOptions {
        interval: Duration::from_secs(10),
        grace: Duration::ZERO,
    };
    // Condition holds from tick 110; the first leader evaluates up to 140
    // (pending), then stops.
    let mut first = Evaluator::new(harness.stores.clone(), NotifyOptions::default(), &options);
    first.take_over(origin).await.unwrap();
    for tick in evaluate::ticks(origin, origin + 140 * SECOND, 10 * SECOND) {
        first.tick(tick).await.unwrap();
    }
    assert!(alerts_of(&harness.pool, &rule, origin).await.is_empty());
    // A second leader takes over at 150 with the pending count rebuilt
    // from InfluxDB: it fires at 170 (held 60 s since 110), not 60 s later.
    let mut second = Evaluator::new(harness.stores.clone(), NotifyOptions::default(), &options);
    second.take_over(origin + 150 * SECOND).await.unwrap();
    for tick in evaluate::ticks(origin + 150 * SECOND, origin + 200 * SECOND, 10 * SECOND) {
        second.tick(tick).await.unwrap();
    }
    assert_eq!(
        alerts_of(&harness.pool, &rule, origin).await,
        vec![(170, None)]
    );
    // A third takes over while it fires: it neither opens a duplicate nor
    // loses it, and clears it on time.
    let mut third = Evaluator::new(harness.stores.clone(), NotifyOptions::default(), &options);
    third.take_over(origin + 210 * SECOND).await.unwrap();
    for tick in evaluate::ticks(origin + 210 * SECOND, origin + 390 * SECOND, 10 * SECOND) {
        third.tick(tick).await.unwrap();
    }
    assert_eq!(
        alerts_of(&harness.pool, &rule, origin).await,
        vec![(170, Some(310))]
    );
}

#[tokio::test]
async fn one_process_leads_and_another_takes_over_when_it_dies() {
    let harness = Harness::start().await;
    // No reading ever: a no-data rule on every sensor of the site fires at
    // its first tick.
    harness
        .rule(
            "Sensor silent",
            "*",
            RuleKind::NoData {
                timeout: Duration::from_secs(1),
            },
        )
        .await;
    let options = EvaluationOptions {
        interval: Duration::from_secs(1),
        grace: Duration::ZERO,
    };
    let spawn = |shutdown: tokio_util::sync::CancellationToken| {
        tokio::spawn(stoker_analytics::live::run(
            harness.stores.clone(),
            NotifyOptions::default(),
            options.clone(),
            stoker_analytics::live::Metrics::default(),
            shutdown,
        ))
    };
    let (first_stop, second_stop) = (
        tokio_util::sync::CancellationToken::new(),
        tokio_util::sync::CancellationToken::new(),
    );
    let first = spawn(first_stop.clone());
    let open = |pool: Pool| async move { store::open_alerts(&pool, None).await.unwrap().len() };
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while open(harness.pool.clone()).await < 1 {
        assert!(
            tokio::time::Instant::now() < deadline,
            "no alert from the first process"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // A second process starts, follows, then the leader dies without
    // cleaning up (its task is aborted mid-flight).
    let second = spawn(second_stop.clone());
    tokio::time::sleep(Duration::from_millis(2_500)).await;
    assert_eq!(
        open(harness.pool.clone()).await,
        1,
        "the follower opened nothing"
    );
    first.abort();
    let died = tokio::time::Instant::now();
    harness.sensor("b1_flue_temp", "temperature", "°C").await;
    let deadline = died + Duration::from_secs(10);
    while open(harness.pool.clone()).await < 2 {
        assert!(
            tokio::time::Instant::now() < deadline,
            "the second process did not take over"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // Took over within two intervals (plus the new sensor's first tick).
    assert!(
        died.elapsed() < Duration::from_secs(4),
        "took {:?}",
        died.elapsed()
    );
    tokio::time::sleep(Duration::from_millis(2_500)).await;
    let client = harness.pool.get().await.unwrap();
    let row = client
        .query_one(
            "SELECT count(*), count(DISTINCT (rule_id, site, sensor)) FROM analytics.alerts",
            &[],
        )
        .await
        .unwrap();
    assert_eq!(
        (row.get::<_, i64>(0), row.get::<_, i64>(1)),
        (2, 2),
        "no duplicate alerts"
    );
    second_stop.cancel();
    tokio::time::timeout(Duration::from_secs(5), second)
        .await
        .unwrap()
        .unwrap();
    first_stop.cancel();
}

mod rollup {
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
    async fn rollup_agrees(
        influx: &stoker_timeseries::Influx,
        start: EpochMillis,
        end: EpochMillis,
    ) {
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
}
