//! Escalation: an unacknowledged critical alarm escalates after its rule's
//! `escalate_after`, again after each period, and stops once acknowledged.

use std::collections::HashMap;
use std::time::Duration;

use chrono::{DateTime, Utc};
use stoker_analytics::store;
use stoker_domain::EpochMillis;

use crate::email::{critical_rule, email_options, escalations, fire, wait_for_messages};
use crate::smtp::{SmtpServer, subject_and_text};
use crate::support::*;

fn at(millis: i64) -> DateTime<Utc> {
    DateTime::from_timestamp_millis(millis).unwrap()
}

#[tokio::test]
async fn an_unacknowledged_alarm_escalates_until_acknowledged() {
    let (postgres, pool) = setup().await;
    let server = SmtpServer::start().await;
    let options = email_options(
        &format!("smtp://127.0.0.1:{}", server.port),
        &["shift@boiler.example"],
    );
    let period = Duration::from_secs(60);
    let rule = critical_rule(&pool, Some(period)).await;
    assert_eq!(rule.escalate_after, Some(period));
    let periods = HashMap::from([(rule.id, period)]);
    // Opened a little in the past, so the dispatcher's sends come after.
    let opened = EpochMillis::now().as_millis() - 300_000;
    let alert = fire(&pool, &options, &rule, "b1_steam_pressure", opened).await;

    // Not before its period.
    let none = store::escalate(&pool, &options, &periods, at(opened + 59_000))
        .await
        .unwrap();
    assert!(none.is_empty(), "{none:?}");
    // After it: once, however many passes (or processes) look.
    let first = store::escalate(&pool, &options, &periods, at(opened + 61_000))
        .await
        .unwrap();
    assert_eq!(first.len(), 1);
    assert_eq!((first[0].alert.id, first[0].round), (alert.id, 1));
    let passes = futures::future::join_all(
        (0..4).map(|_| store::escalate(&pool, &options, &periods, at(opened + 62_000))),
    )
    .await;
    assert!(passes.into_iter().all(|pass| pass.unwrap().is_empty()));
    // Again one period after the last escalation.
    assert!(
        store::escalate(&pool, &options, &periods, at(opened + 120_000))
            .await
            .unwrap()
            .is_empty()
    );
    let second = store::escalate(&pool, &options, &periods, at(opened + 121_000))
        .await
        .unwrap();
    assert_eq!(second.len(), 1);
    assert_eq!(second[0].round, 2);

    // Acknowledged: no more.
    store::acknowledge(&pool, &options, alert.id, "operator-1")
        .await
        .unwrap();
    assert!(
        store::escalate(&pool, &options, &periods, at(opened + 600_000))
            .await
            .unwrap()
            .is_empty()
    );
    let trail = escalations(&pool, alert.id).await;
    assert_eq!(trail.len(), 2, "{trail:?}");
    assert!(trail[0].detail.contains("escalation 1"), "{:?}", trail[0]);
    assert_eq!(trail[0].actor, "analytics");

    // Each escalation goes to the escalation targets: its own topic and
    // ALERT_ESCALATE_TO, not alerts/{site} or ALERT_EMAIL_TO.
    let rows = notifications(&pool, trail[0].id).await;
    let mqtt = rows.iter().find(|row| row.channel == "mqtt").unwrap();
    assert_eq!(
        mqtt.target,
        format!("{}alerts/boiler-house-1/escalations", options.topic_prefix)
    );
    let email = rows.iter().find(|row| row.channel == "email").unwrap();
    assert_eq!(email.target, "chief@boiler.example");

    // Sent: the alarm to the shift, two escalations and the acknowledgement.
    let running = Running::start(&pool, &postgres, options.clone(), &system_broker());
    let messages = wait_for_messages(&server, 4).await;
    running.stop().await;
    let escalated: Vec<_> = messages
        .iter()
        .filter(|message| subject_and_text(message).0.contains("ESCALATED"))
        .collect();
    assert_eq!(escalated.len(), 2, "{messages:?}");
    for message in escalated {
        assert_eq!(
            message["rcpt_tos"],
            serde_json::json!(["chief@boiler.example"])
        );
        let (subject, text) = subject_and_text(message);
        assert!(
            subject.contains("CRITICAL boiler-house-1/b1_steam_pressure Steam pressure high"),
            "{subject}"
        );
        assert!(text.contains("unacknowledged for"), "{text}");
    }
}

#[tokio::test]
async fn rules_without_escalate_after_and_closed_alarms_do_not_escalate() {
    let (_postgres, pool) = setup().await;
    let options = options(&[]);
    let rule = critical_rule(&pool, None).await;
    let opened = EpochMillis::now().as_millis() - 3_600_000;
    let alert = fire(&pool, &options, &rule, "b1_steam_pressure", opened).await;
    assert!(
        store::escalate(&pool, &options, &HashMap::new(), at(opened + 3_000_000))
            .await
            .unwrap()
            .is_empty()
    );
    // Resolved by hand before its period: never escalated.
    let periods = HashMap::from([(rule.id, Duration::from_secs(60))]);
    store::resolve(&pool, &options, alert.id, "operator-1")
        .await
        .unwrap();
    assert!(
        store::escalate(&pool, &options, &periods, at(opened + 3_000_000))
            .await
            .unwrap()
            .is_empty()
    );
    assert!(escalations(&pool, alert.id).await.is_empty());
}
