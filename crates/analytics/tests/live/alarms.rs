//! Alarm management in the evaluation loop: a fired event explains
//! itself, a latching rule's alert waits for its reset, and a shelved
//! alert is recorded, not announced, until its shelf expires.

use std::time::Duration;
use stoker_analytics::evaluate;
use stoker_analytics::live::{EvaluationOptions, Evaluator};
use stoker_analytics::notify::NotifyOptions;
use stoker_analytics::store::{self, AlertFilter, AlertState};
use stoker_rules::{Agg, AlertRule, Op, RuleKind, Threshold};

use crate::harness::*;

fn high_pressure() -> RuleKind {
    RuleKind::Threshold {
        agg: Some(Agg::Mean),
        op: Op::Gt,
        threshold: Threshold::Number(12.5),
        clear_threshold: Some(12.0),
        window: Duration::from_secs(30),
        for_: Duration::from_secs(20),
    }
}

async fn only_alert(harness: &Harness, rule: &AlertRule) -> store::Alert {
    let filter = AlertFilter {
        rule_id: Some(rule.id),
        ..AlertFilter::default()
    };
    let mut alerts = store::list_alerts(&harness.pool, &filter, 10, None)
        .await
        .unwrap()
        .items;
    assert_eq!(alerts.len(), 1, "{alerts:?}");
    alerts.remove(0)
}

fn new_evaluator(harness: &Harness) -> Evaluator {
    let options = EvaluationOptions {
        interval: Duration::from_secs(10),
        grace: Duration::ZERO,
    };
    Evaluator::new(harness.stores.clone(), NotifyOptions::default(), &options)
}

#[tokio::test]
async fn a_latching_alert_explains_its_firing_and_waits_for_its_reset() {
    let harness = Harness::start().await;
    let origin = origin();
    harness
        .write("b1_steam_pressure", origin, -60..400, |s| {
            Some(if (100..200).contains(&s) { 14.0 } else { 10.0 })
        })
        .await;
    let rule = harness
        .rule("Steam pressure trip", "b1_steam_pressure", high_pressure())
        .await;
    // Make it latching, as an engineer would with a PATCH.
    let mut draft = stoker_rules::RuleDraft::from(&rule);
    draft.latching = Some(true);
    let latching = stoker_rules::NewAlertRule::parse(&draft).unwrap();
    let rule = stoker_metadata::update_alert_rule(
        &harness.pool,
        &stoker_metadata::Actor::Cli,
        rule.id,
        rule.version,
        &latching,
    )
    .await
    .unwrap();
    assert!(rule.latching);

    let mut evaluator = new_evaluator(&harness);
    evaluator.take_over(origin).await.unwrap();
    for tick in evaluate::ticks(origin, origin + 390 * SECOND, 10 * SECOND) {
        evaluator.tick(tick).await.unwrap();
    }
    // Fired at 140, its condition cleared at 220: still active, latched.
    let alert = only_alert(&harness, &rule).await;
    assert_eq!(
        (alert.state, alert.active),
        (AlertState::Unacknowledged, true)
    );
    assert_eq!(
        alert.latched_at.unwrap().timestamp_millis(),
        origin + 220 * SECOND
    );
    let (_, events) = store::get_alert(&harness.pool, alert.id).await.unwrap();
    let transitions: Vec<&str> = events.iter().map(|e| e.transition.as_str()).collect();
    assert_eq!(transitions, ["fired", "latched"]);

    // The fired event explains itself.
    let explanation = events[0].explanation.as_ref().unwrap();
    assert_eq!(explanation["rule_id"], rule.id.to_string());
    assert_eq!(explanation["rule_version"], rule.version);
    assert_eq!(explanation["aggregate"], "mean");
    assert_eq!(explanation["op"], ">");
    assert_eq!(explanation["threshold"], 12.5);
    assert_eq!(explanation["clear"], 12.0);
    assert_eq!(explanation["window"], "30s");
    assert_eq!(explanation["held_for_ms"], 20_000);
    assert_eq!(explanation["held_for"], "20s");
    assert_eq!(explanation["value"], 14.0);
    let buckets = explanation["buckets"].as_array().unwrap();
    assert!(!buckets.is_empty(), "{explanation}");
    let readings: u64 = buckets
        .iter()
        .map(|bucket| bucket["count"].as_u64().unwrap())
        .sum();
    assert_eq!(readings, 30, "one reading a second over the 30 s window");
    assert!(
        buckets.iter().all(|bucket| bucket["mean"] == 14.0),
        "{explanation}"
    );
    assert!(events[1].explanation.is_none());

    // A new leader does not take the latched alert for firing.
    let mut successor = new_evaluator(&harness);
    successor.take_over(origin + 400 * SECOND).await.unwrap();
    successor.tick(origin + 400 * SECOND).await.unwrap();
    assert!(only_alert(&harness, &rule).await.active);

    // The operator resets it: cleared, waiting for the acknowledgement.
    let reset = store::reset(
        &harness.pool,
        &NotifyOptions::default(),
        alert.id,
        "operator",
    )
    .await
    .unwrap();
    assert_eq!(reset.state, AlertState::ClearedUnacknowledged);
}

#[tokio::test]
async fn a_shelved_alert_is_not_announced_and_is_announced_again_when_its_shelf_expires() {
    let harness = Harness::start().await;
    let origin = origin();
    // High from 100 s to 200 s and again from 300 s on.
    harness
        .write("b1_steam_pressure", origin, -60..500, |s| {
            Some(if (100..200).contains(&s) || s >= 300 {
                14.0
            } else {
                10.0
            })
        })
        .await;
    let rule = harness
        .rule("Steam pressure high", "b1_steam_pressure", high_pressure())
        .await;
    let mut evaluator = new_evaluator(&harness);
    evaluator.take_over(origin).await.unwrap();
    for tick in evaluate::ticks(origin, origin + 150 * SECOND, 10 * SECOND) {
        evaluator.tick(tick).await.unwrap();
    }
    let alert = only_alert(&harness, &rule).await;
    store::shelve(
        &harness.pool,
        &NotifyOptions::default(),
        alert.id,
        "operator",
        Duration::from_secs(8),
        "pressure transmitter recalibration",
    )
    .await
    .unwrap();
    let started = std::time::Instant::now();
    // Cleared at 220 and reactivated at 340 while shelved.
    for tick in evaluate::ticks(origin + 160 * SECOND, origin + 390 * SECOND, 10 * SECOND) {
        let report = evaluator.tick(tick).await.unwrap();
        assert_eq!(report.unshelved, 0, "not expired at {tick}");
    }
    assert!(
        started.elapsed() < Duration::from_secs(8),
        "the ticks outlasted the shelf"
    );
    tokio::time::sleep(Duration::from_millis(8100).saturating_sub(started.elapsed())).await;
    let report = evaluator.tick(origin + 400 * SECOND).await.unwrap();
    assert_eq!(report.unshelved, 1);

    let (alert, events) = store::get_alert(&harness.pool, alert.id).await.unwrap();
    assert!(alert.active && alert.shelved_until.is_none());
    let trail: Vec<(&str, &str)> = events
        .iter()
        .map(|event| (event.transition.as_str(), event.actor.as_str()))
        .collect();
    assert_eq!(
        trail,
        [
            ("fired", "analytics"),
            ("shelved", "operator"),
            ("cleared", "analytics"),
            ("reactivated", "analytics"),
            ("unshelved", "analytics"),
        ]
    );
    assert!(
        events[3].explanation.is_some(),
        "a reactivation explains itself"
    );
    let client = harness.pool.get().await.unwrap();
    let announced: Vec<String> = client
        .query(
            "SELECT e.transition FROM analytics.notifications n
             JOIN analytics.alert_events e ON e.id = n.event_id
             WHERE n.channel = 'mqtt' ORDER BY n.id",
            &[],
        )
        .await
        .unwrap()
        .iter()
        .map(|row| row.get(0))
        .collect();
    assert_eq!(announced, ["fired", "unshelved"]);
}
