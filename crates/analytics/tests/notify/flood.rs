//! Alarm floods: twenty alarms in two minutes at one site produce one
//! digest, not twenty messages; the flood's start and end are recorded and
//! nothing is lost.

use std::time::Duration;

use chrono::{DateTime, Utc};
use rumqttc::{AsyncClient, Event, MqttOptions, Packet, QoS};
use serde_json::Value;
use stoker_analytics::notify;
use stoker_domain::EpochMillis;
use stoker_testkit::{SYSTEM_BROKER_PORT, unique_client_id};

use crate::email::{critical_rule, email_options, fire, wait_for_messages};
use crate::smtp::{SmtpServer, subject_and_text};
use crate::support::*;

fn at(millis: i64) -> DateTime<Utc> {
    DateTime::from_timestamp_millis(millis).unwrap()
}

/// Everything published under `{prefix}alerts/#`: (topic, payload).
struct Subscriber {
    received: tokio::sync::mpsc::UnboundedReceiver<(String, String)>,
    task: tokio::task::JoinHandle<()>,
}

impl Subscriber {
    async fn start(prefix: &str) -> Self {
        let mut options = MqttOptions::new(
            unique_client_id("test-floods"),
            "127.0.0.1",
            SYSTEM_BROKER_PORT,
        );
        options.set_max_packet_size(1024 * 1024, 1024 * 1024);
        let (client, mut eventloop) = AsyncClient::new(options, 100);
        client
            .subscribe(format!("{prefix}alerts/#"), QoS::AtLeastOnce)
            .await
            .unwrap();
        let (sender, received) = tokio::sync::mpsc::unbounded_channel();
        let (subscribed, is_subscribed) = tokio::sync::oneshot::channel();
        let task = tokio::spawn(async move {
            let _client = client;
            let mut subscribed = Some(subscribed);
            while let Ok(event) = eventloop.poll().await {
                match event {
                    Event::Incoming(Packet::SubAck(_)) => {
                        if let Some(subscribed) = subscribed.take() {
                            let _ = subscribed.send(());
                        }
                    }
                    Event::Incoming(Packet::Publish(publish)) => {
                        let payload = String::from_utf8_lossy(&publish.payload).into_owned();
                        let _ = sender.send((publish.topic.clone(), payload));
                    }
                    _ => {}
                }
            }
        });
        tokio::time::timeout(PATIENCE, is_subscribed)
            .await
            .unwrap()
            .unwrap();
        Self { received, task }
    }

    /// What arrived until nothing more came for a while.
    async fn drain(&mut self) -> Vec<(String, String)> {
        let mut all = Vec::new();
        while let Ok(Some(message)) =
            tokio::time::timeout(Duration::from_secs(2), self.received.recv()).await
        {
            all.push(message);
        }
        all
    }
}

impl Drop for Subscriber {
    fn drop(&mut self) {
        self.task.abort();
    }
}

#[tokio::test]
async fn twenty_alarms_in_two_minutes_make_one_digest_not_twenty_messages() {
    let (postgres, pool) = setup().await;
    let server = SmtpServer::start().await;
    let receiver = Receiver::start(|_| 200).await;
    let mut options = email_options(
        &format!("smtp://127.0.0.1:{}", server.port),
        &["shift@boiler.example"],
    );
    options.webhooks = vec![receiver.url.parse().unwrap()];
    // The defaults: more than 10 alarms in 10 minutes, a digest per 2 min.
    assert_eq!(options.flood.count, 10);
    assert_eq!(options.flood.window, Duration::from_secs(600));
    assert_eq!(options.flood.digest_every, Duration::from_secs(120));
    let rule = critical_rule(&pool, None).await;
    let mut subscriber = Subscriber::start(&options.topic_prefix).await;
    let running = Running::start(&pool, &postgres, options.clone(), &system_broker());

    // Twenty alarms, one every six seconds, from two minutes ago.
    let start = EpochMillis::now().as_millis() - 120_000;
    let mut alerts = Vec::new();
    for index in 0..20 {
        let sensor = format!("b{}_flue_temp", index + 1);
        alerts.push(fire(&pool, &options, &rule, &sensor, start + index * 6_000).await);
    }
    // The eleventh started the flood.
    let client = pool.get().await.unwrap();
    let flood = client
        .query_one(
            "SELECT id, site, started_at, ended_at FROM analytics.floods",
            &[],
        )
        .await
        .unwrap();
    let started_at: DateTime<Utc> = flood.get(2);
    assert_eq!(flood.get::<_, String>(1), "boiler-house-1");
    assert_eq!(started_at, at(start + 10 * 6_000));
    assert!(flood.get::<_, Option<DateTime<Utc>>>(3).is_none());

    // Not yet due: no digest.
    let report = notify::tend_floods(&pool, &options, at(start + 120_000))
        .await
        .unwrap();
    assert_eq!((report.flooding, report.digests), (1, 0));
    // Due two minutes after the flood started: one digest of the ten held.
    let digest_at = at(start + 10 * 6_000 + 120_000);
    let report = notify::tend_floods(&pool, &options, digest_at)
        .await
        .unwrap();
    assert_eq!((report.flooding, report.digests, report.ended), (1, 1, 0));
    // Nothing new held: no second digest.
    let report = notify::tend_floods(&pool, &options, at(start + 10 * 6_000 + 300_000))
        .await
        .unwrap();
    assert_eq!(report.digests, 0);

    let topic = options.topic(&site());
    let digest_topic = options.digest_topic(&site());
    let mut messages: Vec<(String, String)> = Vec::new();
    eventually("the ten alarms and the digest are published", || {
        let more = subscriber.received.try_recv().ok();
        if let Some(message) = more {
            messages.push(message);
        }
        let done = messages.iter().filter(|(t, _)| *t == topic).count() == 10
            && messages.iter().any(|(t, _)| *t == digest_topic);
        std::future::ready(done.then_some(()))
    })
    .await;
    messages.extend(subscriber.drain().await);
    let emails = wait_for_messages(&server, 11).await;
    eventually("the webhook receives eleven requests", || {
        std::future::ready((receiver.received().len() >= 11).then_some(()))
    })
    .await;
    tokio::time::sleep(Duration::from_secs(1)).await;
    running.stop().await;

    // MQTT: the ten alarms before the flood, then one digest of the ten in it.
    let alarms: Vec<&(String, String)> = messages.iter().filter(|(t, _)| *t == topic).collect();
    assert_eq!(alarms.len(), 10, "{messages:?}");
    let digests: Vec<&(String, String)> = messages
        .iter()
        .filter(|(t, _)| *t == digest_topic)
        .collect();
    assert_eq!(digests.len(), 1, "{messages:?}");
    assert_eq!(messages.len(), 11, "{messages:?}");
    let digest: Value = serde_json::from_str(&digests[0].1).unwrap();
    assert_eq!(digest["digest"]["site"], "boiler-house-1");
    assert_eq!(digest["digest"]["alarms"], 10);
    assert_eq!(digest["digest"]["notices"], 10);
    let listed: Vec<&str> = digest["notices"]
        .as_array()
        .unwrap()
        .iter()
        .map(|notice| notice["alert"]["sensor"].as_str().unwrap())
        .collect();
    let expected: Vec<String> = (11..=20).map(|n| format!("b{n}_flue_temp")).collect();
    assert_eq!(listed, expected);

    // E-mail and webhooks: the same eleven, not twenty.
    assert_eq!(server.messages().len(), 11);
    let digest_mails: Vec<_> = emails
        .iter()
        .filter(|message| {
            subject_and_text(message)
                .0
                .contains("Alarm flood at boiler-house-1")
        })
        .collect();
    assert_eq!(digest_mails.len(), 1);
    let (_, text) = subject_and_text(digest_mails[0]);
    for sensor in &expected {
        assert!(text.contains(sensor.as_str()), "{sensor} in {text}");
    }
    let hooks = receiver.received();
    assert_eq!(hooks.len(), 11);
    let digest_hooks: Vec<_> = hooks
        .iter()
        .filter(|hook| hook.headers.contains_key("x-stoker-digest-id"))
        .collect();
    assert_eq!(digest_hooks.len(), 1);
    assert!(digest_hooks[0].is_signed());
    assert!(!digest_hooks[0].headers.contains_key("x-stoker-event-id"));

    // Nothing lost: the held rows stay, marked with their digest.
    let held = client
        .query_one(
            "SELECT count(*), count(digested_in), count(DISTINCT event_id)
             FROM analytics.notifications WHERE held_by IS NOT NULL",
            &[],
        )
        .await
        .unwrap();
    assert_eq!(
        (
            held.get::<_, i64>(0),
            held.get::<_, i64>(1),
            held.get::<_, i64>(2)
        ),
        (30, 30, 10)
    );

    // Ten minutes after the last alarm the window is empty: the flood ends.
    let report = notify::tend_floods(&pool, &options, at(start + 19 * 6_000 + 601_000))
        .await
        .unwrap();
    assert_eq!((report.flooding, report.ended, report.digests), (0, 1, 0));
    let ended: Option<DateTime<Utc>> = client
        .query_one("SELECT ended_at FROM analytics.floods", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(ended, Some(at(start + 19 * 6_000 + 601_000)));
    // The next alarm goes out on its own again.
    let event: i64 = {
        let alert = fire(
            &pool,
            &options,
            &rule,
            "b1_steam_pressure",
            start + 19 * 6_000 + 602_000,
        )
        .await;
        client
            .query_one(
                "SELECT id FROM analytics.alert_events WHERE alert_id = $1",
                &[&alert.id],
            )
            .await
            .unwrap()
            .get(0)
    };
    let rows = notifications(&pool, event).await;
    assert_eq!(rows.len(), 3);
    let held_rows: i64 = client
        .query_one(
            "SELECT count(*) FROM analytics.notifications WHERE event_id = $1 AND held_by IS NOT NULL",
            &[&event],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(held_rows, 0);
    drop(alerts);
}
