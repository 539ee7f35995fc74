//! Rules comparing boolean and state sensors (`==`, `!=`) fire and clear on
//! what InfluxDB holds for them (0/1, a state's index), report their value
//! and threshold in the sensor's type, and the backtest agrees.

use std::time::Duration;
use stoker_metadata::Actor;

use stoker_analytics::evaluate;
use stoker_analytics::live::{EvaluationOptions, Evaluator};
use stoker_analytics::notify::NotifyOptions;
use stoker_analytics::store::{self, AlertFilter};
use stoker_domain::{
    EpochMillis, ReadingValue, SensorKey, SensorKind, SensorType, StateName, States, Unit,
    ValidRange,
};
use stoker_metadata::NewSensor;
use stoker_rules::{Op, RuleKind, Threshold};
use stoker_timeseries::LineBatch;

use crate::harness::*;

const SEQUENCER_STATES: [&str; 5] = ["off", "purge", "ignition", "firing", "lockout"];

async fn typed_sensor(harness: &Harness, key: &str, kind: SensorKind, states: &[&str]) {
    let sensor = NewSensor {
        key: SensorKey::parse(key).unwrap(),
        sensor_type: SensorType::parse("burner").unwrap(),
        unit: Unit::parse("-").unwrap(),
        kind,
        states: States::parse(states.iter().copied()).unwrap(),
        range: ValidRange::new(None, None).unwrap(),
    };
    stoker_metadata::create_sensor(&harness.pool, &Actor::Cli, &site(), &sensor)
        .await
        .unwrap();
}

/// One reading per second over `seconds` after `origin`, as ingestion
/// stores them: a boolean as 0/1, a state as its index (and its name).
async fn write_typed(
    harness: &Harness,
    sensor: &str,
    origin: i64,
    seconds: std::ops::Range<i64>,
    value: impl Fn(i64) -> ReadingValue,
) {
    let mut batch = LineBatch::default();
    let key = SensorKey::parse(sensor).unwrap();
    let sensor_type = SensorType::parse("burner").unwrap();
    let states = States::parse(SEQUENCER_STATES).unwrap();
    for second in seconds {
        let at = EpochMillis::from_millis(origin + second * SECOND).unwrap();
        match value(second) {
            ReadingValue::Boolean(flag) => {
                batch.push(&site(), &key, &sensor_type, f64::from(u8::from(flag)), at);
            }
            ReadingValue::State(name) => {
                let index = states.index_of(&name).unwrap();
                batch.push_state(&site(), &key, &sensor_type, index, &name, at);
            }
            ReadingValue::Number(number) => batch.push(&site(), &key, &sensor_type, number, at),
        }
    }
    harness.influx.influx().write(&batch).await.unwrap();
}

fn equality(op: Op, threshold: Threshold, for_secs: u64) -> RuleKind {
    RuleKind::Threshold {
        agg: None,
        op,
        threshold,
        clear_threshold: None,
        window: Duration::from_secs(10),
        for_: Duration::from_secs(for_secs),
    }
}

fn state(name: &str) -> ReadingValue {
    ReadingValue::State(name.to_owned())
}

#[tokio::test]
async fn state_and_boolean_rules_fire_and_clear_in_the_sensors_type() {
    let harness = Harness::start().await;
    typed_sensor(
        &harness,
        "b1_sequencer",
        SensorKind::State,
        &SEQUENCER_STATES,
    )
    .await;
    typed_sensor(&harness, "b1_burner_on", SensorKind::Boolean, &[]).await;
    harness.age_sensors().await;
    let origin = origin();
    // The sequencer fires, locks out from 100 s to 160 s, is off, locks
    // out again from 400 s to 450 s.
    write_typed(&harness, "b1_sequencer", origin, -60..600, |s| match s {
        i64::MIN..100 => state("firing"),
        100..160 | 400..450 => state("lockout"),
        _ => state("off"),
    })
    .await;
    // The burner is on from 50 s to 120 s and from 300 s to 330 s.
    write_typed(&harness, "b1_burner_on", origin, -60..600, |s| {
        ReadingValue::Boolean((50..120).contains(&s) || (300..330).contains(&s))
    })
    .await;

    let lockout = Threshold::State(StateName::parse("lockout").unwrap());
    let locked_out = harness
        .rule(
            "Burner lockout",
            "b1_sequencer",
            equality(Op::Eq, lockout, 10),
        )
        .await;
    let burning = harness
        .rule(
            "Burner on",
            "b1_burner_on",
            equality(Op::Eq, Threshold::Boolean(true), 0),
        )
        .await;
    // Written past the API (which refuses it): the sequencer has no such
    // state, so the rule judges nothing.
    let standby = harness
        .rule(
            "Burner standby",
            "b1_sequencer",
            equality(
                Op::Eq,
                Threshold::State(StateName::parse("standby").unwrap()),
                0,
            ),
        )
        .await;
    assert!(matches!(
        &locked_out.kind,
        RuleKind::Threshold {
            agg: Some(stoker_rules::Agg::Last),
            ..
        }
    ));

    let options = EvaluationOptions {
        interval: Duration::from_secs(10),
        grace: Duration::ZERO,
    };
    let mut evaluator = Evaluator::new(harness.stores.clone(), NotifyOptions::default(), &options);
    evaluator.take_over(origin).await.unwrap();
    for tick in evaluate::ticks(origin, origin + 590 * SECOND, 10 * SECOND) {
        let report = evaluator.tick(tick).await.unwrap();
        assert_eq!(report.judged, 2, "the standby rule judges no sensor");
    }

    // last over 10 s == lockout from tick 110 (the bucket [100, 110)),
    // held 10 s → fires at 120; off at tick 170. Again 410 → 420, 460.
    assert_eq!(
        alerts_of(&harness.pool, &locked_out, origin).await,
        vec![(120, Some(170)), (420, Some(460))]
    );
    // true from tick 60 to 120, and 310 to 330.
    assert_eq!(
        alerts_of(&harness.pool, &burning, origin).await,
        vec![(60, Some(130)), (310, Some(340))]
    );
    assert!(alerts_of(&harness.pool, &standby, origin).await.is_empty());

    // The alert, its trail and its JSON speak the sensor's type.
    let filter = AlertFilter {
        rule_id: Some(locked_out.id),
        ..AlertFilter::default()
    };
    let page = store::list_alerts(&harness.pool, &filter, 10, None)
        .await
        .unwrap();
    let alert = &page.items[0];
    assert_eq!(alert.value, Some(state("lockout")));
    assert_eq!(alert.threshold, Some(state("lockout")));
    assert_eq!(
        alert.message,
        "last over 10s = lockout, == \"lockout\" for 10s"
    );
    let json = serde_json::to_value(alert).unwrap();
    assert_eq!(json["value"], "lockout");
    assert_eq!(json["threshold"], "lockout");
    let (_, events) = store::get_alert(&harness.pool, alert.id).await.unwrap();
    assert_eq!(events[0].value, Some(state("lockout")));
    assert_eq!(events[1].value, Some(state("off")));
    assert_eq!(
        events[1].detail,
        "last over 10s = off, no longer == \"lockout\""
    );

    let filter = AlertFilter {
        rule_id: Some(burning.id),
        ..AlertFilter::default()
    };
    let page = store::list_alerts(&harness.pool, &filter, 10, None)
        .await
        .unwrap();
    let alert = &page.items[0];
    assert_eq!(alert.value, Some(ReadingValue::Boolean(true)));
    assert_eq!(alert.threshold, Some(ReadingValue::Boolean(true)));
    let json = serde_json::to_value(alert).unwrap();
    assert_eq!(
        (&json["value"], &json["threshold"]),
        (&true.into(), &true.into())
    );
    let (_, events) = store::get_alert(&harness.pool, alert.id).await.unwrap();
    assert_eq!(events[1].value, Some(ReadingValue::Boolean(false)));

    // The backtest replays the same steps over the same buckets.
    let registry = stoker_metadata::registry(&harness.pool).await.unwrap();
    let watches = evaluate::watches(vec![locked_out, burning, standby], &registry);
    let at = |second: i64| EpochMillis::from_millis(origin + second * SECOND).unwrap();
    let preview = evaluate::backtest(
        harness.influx.influx(),
        &watches[0],
        at(0),
        at(590),
        10 * SECOND,
    )
    .await
    .unwrap();
    let seen: Vec<_> = preview
        .iter()
        .map(|alert| {
            (
                (alert.opened_at.as_millis() - origin) / SECOND,
                alert.value.clone(),
                alert
                    .cleared_at
                    .map(|at| (at.as_millis() - origin) / SECOND),
            )
        })
        .collect();
    assert_eq!(
        seen,
        vec![
            (120, Some(state("lockout")), Some(170)),
            (420, Some(state("lockout")), Some(460))
        ]
    );
    let preview = evaluate::backtest(
        harness.influx.influx(),
        &watches[1],
        at(0),
        at(590),
        10 * SECOND,
    )
    .await
    .unwrap();
    assert_eq!(preview.len(), 2);
    assert_eq!(preview[0].value, Some(ReadingValue::Boolean(true)));
    assert!(watches[2].targets.is_empty(), "standby fits no sensor");
}
