//! The backtest of a rule over a recorded day reports the alarm KPIs that
//! the live loop's alerts over that day measure.

use std::time::Duration;

use stoker_analytics::evaluate::{self, Watch};
use stoker_analytics::kpi::{self, KpiRange, KpiScope};
use stoker_analytics::live::{EvaluationOptions, Evaluator};
use stoker_analytics::notify::NotifyOptions;
use stoker_domain::{EpochMillis, SensorKey, SensorType};
use stoker_rules::{Agg, Op, RuleKind, Threshold};
use stoker_timeseries::LineBatch;

use crate::harness::*;

const DAY: i64 = 86_400 * SECOND;

/// The recorded pressure `second` seconds into the day: 10 bar, with a
/// chattering valve (14 and 10 bar every other reading) for 2 minutes at
/// 02:00 and for 5 minutes at 06:00 (a flood: more than 10 alarms within
/// 10 minutes), 14 bar from 10:00 to 13:00, and short peaks.
fn pressure(second: i64) -> f64 {
    let reading = second / 10;
    let chattering = (2 * 3_600..2 * 3_600 + 120).contains(&second)
        || (6 * 3_600..6 * 3_600 + 300).contains(&second);
    if chattering {
        if reading % 2 == 0 { 14.0 } else { 10.0 }
    } else if (10 * 3_600..13 * 3_600).contains(&second) || second.rem_euclid(7_200) < 30 {
        14.0
    } else {
        10.0
    }
}

#[tokio::test]
async fn a_backtest_over_a_recorded_day_reports_the_live_loops_kpis() {
    let harness = Harness::start().await;
    harness.age_sensors().await;
    // A tick-aligned day that ended a few minutes ago.
    let origin = (EpochMillis::now().as_millis() - DAY - 10 * 60 * SECOND).div_euclid(10 * SECOND)
        * 10
        * SECOND;
    let mut batch = LineBatch::default();
    let (sensor, sensor_type) = (
        SensorKey::parse("b1_steam_pressure").unwrap(),
        SensorType::parse("pressure").unwrap(),
    );
    for second in (-600..86_400 + 60).step_by(10) {
        batch.push(
            &site(),
            &sensor,
            &sensor_type,
            pressure(second),
            EpochMillis::from_millis(origin + second * SECOND).unwrap(),
        );
    }
    harness.influx.influx().write(&batch).await.unwrap();
    let rule = harness
        .rule(
            "Steam pressure high",
            "b1_steam_pressure",
            RuleKind::Threshold {
                agg: Some(Agg::Mean),
                op: Op::Gt,
                threshold: Threshold::Number(12.5),
                clear_threshold: Some(12.0),
                window: Duration::from_secs(10),
                for_: Duration::ZERO,
            },
        )
        .await;

    let options = EvaluationOptions {
        interval: Duration::from_secs(10),
        grace: Duration::ZERO,
    };
    let mut evaluator = Evaluator::new(harness.stores.clone(), NotifyOptions::default(), &options);
    evaluator.take_over(origin).await.unwrap();
    for tick in evaluate::ticks(origin, origin + DAY, 10 * SECOND) {
        evaluator.tick(tick).await.unwrap();
    }
    let range = KpiRange {
        start: EpochMillis::from_millis(origin).unwrap().to_datetime(),
        end: EpochMillis::from_millis(origin + DAY)
            .unwrap()
            .to_datetime(),
    };
    let live = kpi::measure(
        &harness.pool,
        &KpiScope {
            site: Some(site()),
            within: None,
        },
        range,
    )
    .await
    .unwrap();

    let registry = stoker_metadata::registry(&harness.pool).await.unwrap();
    let watch = Watch {
        targets: evaluate::targets(&rule.selector, &registry),
        rule: rule.clone(),
    };
    let (start, end) = (
        EpochMillis::from_millis(origin).unwrap(),
        EpochMillis::from_millis(origin + DAY).unwrap(),
    );
    let alerts = evaluate::backtest(harness.influx.influx(), &watch, start, end, 10 * SECOND)
        .await
        .unwrap();
    let backtested = kpi::of_backtest(&rule, &alerts, start, end);
    assert_eq!(backtested, live);

    // The day's figures: 6 activations at 02:00 (every 20 s for 2
    // minutes), 15 at 06:00, one from 10:00 to 13:00, and the 30 s peaks
    // every two hours (00:00 … 22:00, but 02:00, 06:00, 10:00 and 12:00,
    // which the other episodes hold).
    assert_eq!(live.peak_10min, 15, "{live:?}");
    assert_eq!(live.alarms, 6 + 15 + 1 + 8, "{live:?}");
    assert!(
        live.flood_share > 0.0 && live.flood_share < 0.01,
        "{live:?}"
    );
    assert_eq!(live.chattering, 1, "{live:?}");
    assert_eq!(live.stale, 0);
    assert_eq!(live.top.len(), 1);
    assert_eq!(live.top[0].rule_name, "Steam pressure high");
    assert_eq!(live.time_to_ack_s.median, None);
    assert_eq!(live.suppressed, 0);
    assert!(live.start < live.end && live.end - live.start == chrono::Duration::hours(24));
    drop(harness.redis);
}
