//! Each rule kind fires and clears on time, and the backtest agrees.

use std::time::Duration;
use stoker_analytics::evaluate::{self, Watch};
use stoker_analytics::live::{EvaluationOptions, Evaluator};
use stoker_analytics::notify::NotifyOptions;
use stoker_domain::EpochMillis;
use stoker_rules::{Agg, Op, RuleKind, Threshold};

use crate::harness::*;

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
                agg: Some(Agg::Mean),
                op: Op::Gt,
                threshold: Threshold::Number(12.5),
                clear_threshold: Some(12.0),
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
