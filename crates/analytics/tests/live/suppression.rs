//! Suppressed alarms (DESIGN.md, "Alarm management"): recorded with why,
//! never announced (no notification queued), and announced once the
//! suppression ends while they are still active: `suppress_when` on
//! another sensor of the site, a maintenance window, a sensor or rule out
//! of service.

use std::time::Duration;

use chrono::Utc;
use stoker_analytics::live::{EvaluationOptions, Evaluator};
use stoker_analytics::notify::NotifyOptions;
use stoker_analytics::store::{self, AlertFilter, Suppression};
use stoker_domain::{EpochMillis, SensorKey, SensorKind, SensorType, States, Unit, ValidRange};
use stoker_metadata::{Actor, NewMaintenanceWindow, NewSensor, Schedule, TakeOut};
use stoker_rules::{
    Agg, AlertRule, NewAlertRule, Op, RuleKind, RuleSelector, Severity, SuppressWhen, Threshold,
};

use crate::harness::*;

fn low_o2() -> RuleKind {
    RuleKind::Threshold {
        agg: Some(Agg::Mean),
        op: Op::Lt,
        threshold: Threshold::Number(2.0),
        clear_threshold: Some(3.0),
        window: Duration::from_secs(30),
        for_: Duration::ZERO,
    }
}

async fn o2_rule(harness: &Harness, suppress_when: Option<SuppressWhen>) -> AlertRule {
    let rule = NewAlertRule::new(
        "Flue O2 low",
        RuleSelector {
            site: Some(site()),
            sensor: Some(SensorKey::parse("b1_flue_o2").unwrap()),
            sensor_type: None,
        },
        low_o2(),
        Severity::Warning,
        true,
        suppress_when,
    )
    .unwrap();
    stoker_metadata::create_alert_rule(&harness.pool, &Actor::Cli, &rule)
        .await
        .unwrap()
}

async fn evaluate(harness: &Harness, origin: i64, seconds: std::ops::RangeInclusive<i64>) {
    let options = EvaluationOptions {
        interval: Duration::from_secs(10),
        grace: Duration::ZERO,
    };
    let mut evaluator = Evaluator::new(harness.stores.clone(), NotifyOptions::default(), &options);
    evaluator
        .take_over(origin + seconds.start() * SECOND)
        .await
        .unwrap();
    for tick in seconds.step_by(10) {
        evaluator.tick(origin + tick * SECOND).await.unwrap();
    }
}

/// The rule's alerts, oldest first.
async fn alerts(harness: &Harness, rule: &AlertRule) -> Vec<store::Alert> {
    let filter = AlertFilter {
        rule_id: Some(rule.id),
        ..AlertFilter::default()
    };
    let mut alerts = store::list_alerts(&harness.pool, &filter, 100, None)
        .await
        .unwrap()
        .items;
    alerts.sort_by_key(|alert| alert.opened_at);
    alerts
}

/// The transitions of the rule's alerts that queued a notification, in
/// order: what was announced.
async fn announced(harness: &Harness, rule: &AlertRule) -> Vec<String> {
    harness
        .pool
        .get()
        .await
        .unwrap()
        .query(
            "SELECT e.transition FROM analytics.notifications n
             JOIN analytics.alert_events e ON e.id = n.event_id
             JOIN analytics.alerts a ON a.id = e.alert_id
             WHERE a.rule_id = $1 ORDER BY e.id",
            &[&rule.id],
        )
        .await
        .unwrap()
        .iter()
        .map(|row| row.get(0))
        .collect()
}

async fn transitions(harness: &Harness, alert: &store::Alert) -> Vec<String> {
    let (_, events) = store::get_alert(&harness.pool, alert.id).await.unwrap();
    events.into_iter().map(|event| event.transition).collect()
}

/// One activation of an alert (its `fired` or a `reactivated` event) as
/// its trail tells it: whether the store recorded it suppressed (its
/// `suppressed` event, with why), and whether it queued a notification.
#[derive(Debug)]
struct Activation {
    at: chrono::DateTime<Utc>,
    suppressed: Option<String>,
    announced: bool,
}

/// The activations of `alert`, oldest first.
async fn activations(harness: &Harness, alert: &store::Alert) -> Vec<Activation> {
    let rows = harness
        .pool
        .get()
        .await
        .unwrap()
        .query(
            "SELECT e.transition, e.at, e.detail,
                    EXISTS (SELECT 1 FROM analytics.notifications n WHERE n.event_id = e.id)
             FROM analytics.alert_events e WHERE e.alert_id = $1 ORDER BY e.id",
            &[&alert.id],
        )
        .await
        .unwrap();
    let mut activations: Vec<Activation> = Vec::new();
    for row in rows {
        let transition: String = row.get(0);
        match transition.as_str() {
            "fired" | "reactivated" => activations.push(Activation {
                at: row.get(1),
                suppressed: None,
                announced: row.get(3),
            }),
            "suppressed" => {
                if let Some(last) = activations.last_mut() {
                    last.suppressed = Some(row.get(2));
                }
            }
            _ => {}
        }
    }
    activations
}

#[tokio::test]
async fn a_low_o2_alarm_is_suppressed_while_the_burner_is_off_and_announced_when_it_is_on() {
    let harness = Harness::start().await;
    harness.sensor("b1_flue_o2", "o2", "%").await;
    let burner = NewSensor {
        key: SensorKey::parse("b1_burner_on").unwrap(),
        sensor_type: SensorType::parse("burner").unwrap(),
        unit: Unit::parse("-").unwrap(),
        kind: SensorKind::Boolean,
        states: States::default(),
        range: ValidRange::new(None, None).unwrap(),
    };
    stoker_metadata::create_sensor(&harness.pool, &Actor::Cli, &site(), &burner)
        .await
        .unwrap();
    let burner_off = SuppressWhen {
        sensor: SensorKey::parse("b1_burner_on").unwrap(),
        op: Op::Eq,
        value: Threshold::Boolean(false),
    };
    let rule = o2_rule(&harness, Some(burner_off.clone())).await;
    assert_eq!(rule.suppress_when, Some(burner_off), "stored and read back");
    let origin = origin();
    // The burner is off (0) until 150 s, then on (1). The O2 is low while
    // it is off, normal from 100 s, and low again from 250 s with the
    // burner on.
    harness
        .write("b1_burner_on", origin, -60..400, |s| {
            Some(if s < 150 { 0.0 } else { 1.0 })
        })
        .await;
    harness
        .write("b1_flue_o2", origin, -60..400, |s| {
            Some(if (100..250).contains(&s) { 5.0 } else { 1.0 })
        })
        .await;
    evaluate(&harness, origin, 10..=400).await;

    // One alert: the condition returned (the burner on) before anyone
    // acknowledged the suppressed activation, and reactivated it.
    let alerts = alerts(&harness, &rule).await;
    assert_eq!(alerts.len(), 1, "{alerts:?}");
    let alert = &alerts[0];
    assert_eq!(
        transitions(&harness, alert).await,
        ["fired", "suppressed", "cleared", "reactivated"],
        "cleared while the burner was off"
    );
    assert_eq!(alert.suppressed, None, "{alert:?}");
    let activations = activations(&harness, alert).await;
    assert_eq!(activations.len(), 2, "{activations:?}");
    let (off, on) = (&activations[0], &activations[1]);
    assert!(off.suppressed.is_some() && !off.announced, "{off:?}");
    assert!(on.suppressed.is_none() && on.announced, "{on:?}");
    assert!(on.at.timestamp_millis() >= origin + 250 * SECOND);
    assert_eq!(
        announced(&harness, &rule).await,
        ["reactivated"],
        "only the alarm with the burner on is announced"
    );
}

#[tokio::test]
async fn a_maintenance_window_records_suppressed_alarms_and_announces_none() {
    let harness = Harness::start().await;
    harness.sensor("b1_flue_o2", "o2", "%").await;
    let rule = o2_rule(&harness, None).await;
    let origin = origin();
    let at = |second: i64| {
        EpochMillis::from_millis(origin + second * SECOND)
            .unwrap()
            .to_datetime()
    };
    let window = NewMaintenanceWindow::new(
        site(),
        Schedule::Once {
            starts_at: at(0),
            ends_at: at(300),
        },
        "burner overhaul",
    )
    .unwrap();
    stoker_metadata::create_maintenance_window(&harness.pool, &Actor::Cli, &window)
        .await
        .unwrap();
    // Low O2 twice inside the window, and once after it.
    harness
        .write("b1_flue_o2", origin, -60..450, |s| {
            Some(match s {
                0..80 | 150..220 | 350..450 => 1.0,
                _ => 5.0,
            })
        })
        .await;
    evaluate(&harness, origin, 10..=440).await;

    // One alert, reactivated each time the O2 was low again before anyone
    // acknowledged it: three activations.
    let alerts = alerts(&harness, &rule).await;
    assert_eq!(alerts.len(), 1, "{alerts:?}");
    assert_eq!(alerts[0].suppressed, None, "{alerts:?}");
    let activations = activations(&harness, &alerts[0]).await;
    assert_eq!(activations.len(), 3, "{activations:?}");
    for inside in &activations[..2] {
        let why = inside.suppressed.as_deref().unwrap_or_default();
        assert!(
            why.contains("burner overhaul"),
            "the trail says why: {inside:?}"
        );
        assert!(!inside.announced, "{inside:?}");
    }
    assert!(activations[2].suppressed.is_none() && activations[2].announced);
    assert_eq!(
        announced(&harness, &rule).await,
        ["reactivated"],
        "nothing announced inside the window"
    );
}

#[tokio::test]
async fn a_sensor_or_rule_out_of_service_records_suppressed_alarms_and_announces_none() {
    let harness = Harness::start().await;
    harness.sensor("b1_flue_o2", "o2", "%").await;
    let rule = o2_rule(&harness, None).await;
    let o2 = SensorKey::parse("b1_flue_o2").unwrap();
    let until = Utc::now() + chrono::Duration::hours(2);
    let take_out = TakeOut::new(until, "analyser calibration", Utc::now()).unwrap();
    let actor = Actor::Key("engineer".into());
    let sensor = stoker_metadata::set_sensor_out_of_service(
        &harness.pool,
        &actor,
        &site(),
        &o2,
        Some(&take_out),
    )
    .await
    .unwrap();
    let service = sensor.out_of_service.unwrap();
    assert_eq!(
        (service.reason.as_str(), service.by.as_str()),
        ("analyser calibration", "engineer")
    );
    let origin = origin();
    harness
        .write("b1_flue_o2", origin, -60..200, |s| {
            Some(if s < 80 { 1.0 } else { 5.0 })
        })
        .await;
    evaluate(&harness, origin, 10..=190).await;
    let first = alerts(&harness, &rule).await;
    assert_eq!(first.len(), 1);
    assert_eq!(first[0].suppressed, Some(Suppression::OutOfService));

    // Back in service; the rule out of service instead.
    stoker_metadata::set_sensor_out_of_service(&harness.pool, &actor, &site(), &o2, None)
        .await
        .unwrap();
    let rule_out =
        stoker_metadata::set_rule_out_of_service(&harness.pool, &actor, rule.id, Some(&take_out))
            .await
            .unwrap();
    assert!(rule_out.out_of_service.is_some());
    assert_eq!(rule_out.version, rule.version, "not a change of definition");
    harness
        .write("b1_flue_o2", origin, 200..400, |s| {
            Some(if s < 280 { 1.0 } else { 5.0 })
        })
        .await;
    evaluate(&harness, origin, 200..=390).await;
    // The returning condition reactivated the same alert, suppressed again.
    let all = alerts(&harness, &rule).await;
    assert_eq!(all.len(), 1, "{all:?}");
    assert_eq!(all[0].suppressed, Some(Suppression::OutOfService));
    let activations = activations(&harness, &all[0]).await;
    assert_eq!(activations.len(), 2, "{activations:?}");
    assert!(
        activations
            .iter()
            .all(|activation| activation.suppressed.is_some() && !activation.announced),
        "{activations:?}"
    );
    assert!(announced(&harness, &rule).await.is_empty());

    // Each change is in the audit trail under who made it.
    let trail = stoker_metadata::list_audit_page(
        &harness.pool,
        &stoker_metadata::AuditFilter {
            actor: Some("engineer".into()),
            ..stoker_metadata::AuditFilter::default()
        },
        100,
        None,
    )
    .await
    .unwrap();
    let mut actions: Vec<(String, String)> = trail
        .items
        .iter()
        .map(|event| (event.entity.as_str().to_owned(), event.action.clone()))
        .collect();
    actions.sort();
    assert_eq!(
        actions,
        [
            ("alert_rule".to_owned(), "out_of_service".to_owned()),
            ("sensor".to_owned(), "in_service".to_owned()),
            ("sensor".to_owned(), "out_of_service".to_owned()),
        ]
    );
}
