//! E-mail: alert events arrive at a real SMTP server (aiosmtpd), plain or
//! over STARTTLS with a login, through the same outbox as MQTT and
//! webhooks.

use std::time::Duration;

use serde_json::json;
use stoker_analytics::notify::{self, EmailOptions, NotifyOptions, SmtpUrl};
use stoker_analytics::store::{self, AlertEvent, Verdict};
use stoker_domain::{EpochMillis, ReadingValue, SensorKey};
use stoker_metadata::{Actor, NewSite};
use stoker_postgres::Pool;
use stoker_rules::{AlertRule, NewAlertRule};
use stoker_testkit::TestCa;

use crate::smtp::{SmtpServer, subject_and_text};
use crate::support::*;

/// Settings that e-mail `to` (critical alerts to `critical` as well)
/// through `smtp_url`.
pub(crate) fn email_options(smtp_url: &str, to: &[&str]) -> NotifyOptions {
    NotifyOptions {
        email: EmailOptions {
            smtp_url: Some(SmtpUrl::parse(smtp_url).unwrap()),
            from: Some("Stoker <stoker@boiler.example>".parse().unwrap()),
            to: to.iter().map(|address| address.parse().unwrap()).collect(),
            escalate_to: vec!["chief@boiler.example".parse().unwrap()],
            ..EmailOptions::default()
        },
        ..options(&[])
    }
}

/// The site, and a critical rule on it (escalated after `escalate_after`).
pub(crate) async fn critical_rule(pool: &Pool, escalate_after: Option<Duration>) -> AlertRule {
    let site = NewSite::parse("boiler-house-1", "Boiler house 1", "UTC").unwrap();
    if stoker_metadata::get_site(pool, site.slug()).await.is_err() {
        stoker_metadata::create_site(pool, &Actor::Cli, &site)
            .await
            .unwrap();
    }
    let draft: stoker_rules::RuleDraft = serde_json::from_value(serde_json::json!({
        "name": "Steam pressure high", "site": site.slug().as_str(), "kind": "threshold",
        "agg": "mean", "op": ">", "threshold": 12.5, "clear_threshold": 12.0,
        "window": "1m", "for": "30s", "severity": "critical",
        "escalate_after": escalate_after.map(|period| humantime::format_duration(period).to_string()),
    }))
    .unwrap();
    let rule = NewAlertRule::parse(&draft).unwrap();
    stoker_metadata::create_alert_rule(pool, &Actor::Cli, &rule)
        .await
        .unwrap()
}

/// Opens the rule's alert for `sensor` at `at` (epoch ms), as the
/// evaluation loop does; returns it.
pub(crate) async fn fire(
    pool: &Pool,
    options: &NotifyOptions,
    rule: &AlertRule,
    sensor: &str,
    at: i64,
) -> store::Alert {
    let site = site();
    let sensor = SensorKey::parse(sensor).unwrap();
    store::open_alert(
        pool,
        options,
        &Verdict {
            rule,
            site: &site,
            sensor: &sensor,
            at: EpochMillis::from_millis(at).unwrap(),
            value: Some(ReadingValue::Number(13.2)),
            message: format!("mean over 1m = 13.2 bar, > 12.5 for 30s ({sensor})"),
            explanation: None,
        },
    )
    .await
    .unwrap()
    .expect("the alert opens")
}

/// Waits until the server holds `count` messages; returns them.
pub(crate) async fn wait_for_messages(server: &SmtpServer, count: usize) -> Vec<serde_json::Value> {
    eventually(&format!("{count} e-mails arrive"), || async {
        let messages = server.messages();
        (messages.len() >= count).then_some(messages)
    })
    .await
}

#[tokio::test]
async fn an_alert_is_emailed_with_its_explanation_and_operator_action() {
    let (postgres, pool) = setup().await;
    let server = SmtpServer::start().await;
    let options = email_options(
        &format!("smtp://127.0.0.1:{}", server.port),
        &["shift@boiler.example", "night@boiler.example"],
    );
    let rule = critical_rule(&pool, None).await;

    // As the evaluation loop records it for a rule without rationalization.
    let alert = fire(
        &pool,
        &options,
        &rule,
        "b1_steam_pressure",
        EpochMillis::now().as_millis(),
    )
    .await;
    // And a notice as the loop writes it for a rule with its
    // rationalization (on the alert) and an explained decision (the
    // explanation on the event).
    let event = new_event(&pool).await;
    let rich = json!({
        "event": {"id": event, "alert_id": alert.id, "transition": "fired",
                  "at": "2026-12-07T10:00:00Z", "actor": "analytics",
                  "detail": "mean over 1m = 13.2 bar, > 12.5 for 30s",
                  "explanation": {"rule_version": 3, "aggregate": "mean",
                                  "buckets": [13.1, 13.3], "threshold": 12.5,
                                  "clear_threshold": 12.0, "held_for": "30s"}},
        "alert": {"id": alert.id, "rule_name": "Steam pressure high", "site": "boiler-house-1",
                  "sensor": "b1_steam_pressure", "severity": "critical",
                  "state": "unacknowledged", "value": 13.2, "threshold": 12.5,
                  "message": "mean over 1m = 13.2 bar, > 12.5 for 30s",
                  "cause": "Steam demand dropped faster than the burner",
                  "operator_action": "Reduce the firing rate; check the safety valve",
                  "response_time": "5m"}
    })
    .to_string();
    let mut client = pool.get().await.unwrap();
    let tx = client.transaction().await.unwrap();
    notify::enqueue(&tx, &options, event, &site(), &rich)
        .await
        .unwrap();
    tx.commit().await.unwrap();
    drop(client);

    let running = Running::start(&pool, &postgres, options.clone(), &system_broker());
    let messages = wait_for_messages(&server, 2).await;
    wait_for(&pool, event, "email", "the e-mail is delivered", |row| {
        row.delivered
    })
    .await;
    running.stop().await;

    assert_eq!(messages.len(), 2, "{messages:?}");
    for message in &messages {
        assert_eq!(message["mail_from"], "stoker@boiler.example");
        assert_eq!(
            message["rcpt_tos"],
            json!(["shift@boiler.example", "night@boiler.example"])
        );
    }
    // Sent side by side, both of an unacknowledged alert: tell them apart
    // by their event (the rich notice's is of 2026-12-07 10:00).
    let (rich, fired): (Vec<_>, Vec<_>) = messages
        .iter()
        .map(subject_and_text)
        .partition(|(_, text)| text.contains("Event: fired at 2026-12-07T10:00:00Z"));
    assert_eq!((fired.len(), rich.len()), (1, 1), "{messages:?}");
    let (subject, text) = fired[0].clone();
    assert_eq!(
        subject,
        "[Stoker] CRITICAL boiler-house-1/b1_steam_pressure Steam pressure high: unacknowledged"
    );
    for expected in [
        "Message: mean over 1m = 13.2 bar, > 12.5 for 30s (b1_steam_pressure)",
        "Value: 13.2",
        "Threshold: 12.5",
        "Severity: critical",
    ] {
        assert!(text.contains(expected), "{expected:?} in {text}");
    }
    // Its rule has no rationalization and the decision no explanation.
    assert!(!text.contains("Operator action"), "{text}");
    assert!(!text.contains("Explanation:"), "{text}");

    let (subject, text) = rich[0].clone();
    assert!(subject.contains("unacknowledged"), "{subject}");
    for expected in [
        "Operator action: Reduce the firing rate; check the safety valve",
        "Cause: Steam demand dropped faster than the burner",
        "Response time: 5m",
        "Explanation:",
        "buckets: [13.1,13.3]",
        "held_for: 30s",
        "rule_version: 3",
    ] {
        assert!(text.contains(expected), "{expected:?} in {text}");
    }
    // The e-mail row records what was sent.
    let rows = notifications(&pool, event).await;
    let email = rows.iter().find(|row| row.channel == "email").unwrap();
    assert_eq!(email.target, "shift@boiler.example,night@boiler.example");
    assert!(
        email.body.contains("Reduce the firing rate"),
        "{}",
        email.body
    );
}

#[tokio::test]
async fn email_goes_over_starttls_with_a_login_and_never_shows_the_password() {
    let (postgres, pool) = setup().await;
    let ca = TestCa::new();
    let cert = ca.server("smtp", &["localhost"]);
    let server = SmtpServer::start_with(Some(&cert), Some(("alerts", "s3cr@t-pw"))).await;
    let mut options = email_options(
        &format!(
            "smtp://alerts:s3cr%40t-pw@localhost:{}?tls=required",
            server.port
        ),
        &["shift@boiler.example"],
    );
    options.email.smtp_ca_file = Some(ca.ca_file().to_owned());
    let shown = format!("{options:?}");
    assert!(!shown.contains("s3cr"), "{shown}");
    let (event, _) = enqueue_committed(&pool, &options).await;
    let running = Running::start(&pool, &postgres, options.clone(), &system_broker());
    let messages = wait_for_messages(&server, 1).await;
    wait_for(&pool, event, "email", "the e-mail is delivered", |row| {
        row.delivered
    })
    .await;
    running.stop().await;
    assert_eq!(messages[0]["tls"], true, "{:?}", messages[0]);
    assert_eq!(messages[0]["login"], "alerts");

    // A wrong password: the attempt fails, and its error names the server,
    // not the password.
    let mut wrong = options.clone();
    wrong.email.smtp_url = Some(
        SmtpUrl::parse(&format!(
            "smtp://alerts:n0t-th%40t@localhost:{}?tls=required",
            server.port
        ))
        .unwrap(),
    );
    let (event, _) = enqueue_committed(&pool, &wrong).await;
    let running = Running::start(&pool, &postgres, wrong, &system_broker());
    let row = wait_for(&pool, event, "email", "the e-mail attempt fails", |row| {
        row.last_error.is_some()
    })
    .await;
    running.stop().await;
    let error = row.last_error.unwrap();
    assert!(
        error.contains(&format!("localhost:{}", server.port)),
        "{error}"
    );
    assert!(!error.contains("n0t-th"), "{error}");
    assert_eq!(server.messages().len(), 1);

    // Without the CA, the server's certificate is refused.
    let mut untrusted = options.clone();
    untrusted.email.smtp_ca_file = None;
    let (event, _) = enqueue_committed(&pool, &untrusted).await;
    let running = Running::start(&pool, &postgres, untrusted, &system_broker());
    let row = wait_for(&pool, event, "email", "the e-mail attempt fails", |row| {
        row.last_error.is_some()
    })
    .await;
    running.stop().await;
    assert!(!row.delivered);
    assert_eq!(server.messages().len(), 1);
}

/// The trail's `escalated` events of an alert.
pub(crate) async fn escalations(pool: &Pool, alert: uuid::Uuid) -> Vec<AlertEvent> {
    store::get_alert(pool, alert)
        .await
        .unwrap()
        .1
        .into_iter()
        .filter(|event| event.transition == "escalated")
        .collect()
}
