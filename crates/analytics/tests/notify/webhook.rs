//! Webhooks: signed, retried with backoff, recorded as failed or delivered.

use std::time::Duration;
use stoker_analytics::notify::{self, NotifyOptions};

use crate::support::*;

#[tokio::test]
async fn a_webhook_receives_a_signed_notification() {
    let (postgres, pool) = setup().await;
    let receiver = Receiver::start(|_| 200).await;
    let options = options(&[&receiver.url]);
    let (event, body) = enqueue_committed(&pool, &options).await;

    // One row per destination, each with exactly the body.
    let rows = notifications(&pool, event).await;
    assert_eq!(rows.len(), 2, "{rows:?}");
    assert_eq!(rows[0].channel, "mqtt");
    assert_eq!(
        rows[0].target,
        format!("{}alerts/boiler-house-1", options.topic_prefix)
    );
    assert_eq!(rows[1].channel, "webhook");
    assert_eq!(rows[1].target, receiver.url);
    assert!(rows.iter().all(|row| row.body == body && row.attempts == 0));

    let running = Running::start(&pool, &postgres, options, &system_broker());
    let webhook = wait_for(&pool, event, "webhook", "the webhook is delivered", |row| {
        row.delivered
    })
    .await;
    let mqtt = wait_for(
        &pool,
        event,
        "mqtt",
        "the MQTT publish is delivered",
        |row| row.delivered,
    )
    .await;
    running.stop().await;

    assert_eq!((webhook.attempts, webhook.failed), (1, false));
    assert_eq!(webhook.last_error, None);
    assert_eq!((mqtt.attempts, mqtt.failed), (1, false));
    let received = receiver.received();
    assert_eq!(received.len(), 1, "{received:?}");
    let request = &received[0];
    assert_eq!(request.method, "POST");
    assert_eq!(request.body, body);
    assert_eq!(request.header("content-type"), "application/json");
    assert_eq!(request.header("x-stoker-event-id"), event.to_string());
    assert_eq!(request.header("x-stoker-delivery"), webhook.id.to_string());
    let timestamp: i64 = request.header("x-stoker-timestamp").parse().unwrap();
    assert!((timestamp - chrono::Utc::now().timestamp()).abs() < 300);
    assert!(request.is_signed(), "{request:?}");
    let signature = request.header("x-stoker-signature");
    assert!(
        signature.len() == 71
            && signature[7..]
                .chars()
                .all(|c| c.is_ascii_digit() || ('a'..='f').contains(&c)),
        "{signature}"
    );
    // Another secret does not verify.
    assert_ne!(
        signature,
        notify::signature(b"another secret", timestamp, &request.body)
    );
}

#[tokio::test]
async fn a_failing_webhook_is_retried_with_backoff_then_recorded_as_failed() {
    let (postgres, pool) = setup().await;
    let receiver = Receiver::start(|_| 500).await;
    let options = NotifyOptions {
        max_attempts: 4,
        ..options(&[&receiver.url])
    };
    let backoff = options.backoff;
    let (event, body) = enqueue_committed(&pool, &options).await;
    let row = settle_webhook(&postgres, &pool, options, event).await;

    assert_eq!((row.attempts, row.delivered), (4, false));
    assert_eq!(
        row.last_error.as_deref(),
        Some("HTTP 500 Internal Server Error: boiler room flooded")
    );
    let received = receiver.received();
    assert_eq!(received.len(), 4, "{received:?}");
    for request in &received {
        assert_eq!(request.body, body);
        assert_eq!(request.header("x-stoker-delivery"), row.id.to_string());
        assert!(request.is_signed());
    }
    // Each retry waited at least half its backoff (the jitter takes up to half).
    for (pair, retry) in received.windows(2).zip(1u32..) {
        let waited = pair[1].at - pair[0].at;
        let least = backoff * (1 << (retry - 1)) / 2;
        assert!(
            waited + Duration::from_millis(5) >= least,
            "retry {retry} came after {waited:?}, before {least:?}"
        );
    }
}

#[tokio::test]
async fn a_webhook_that_fails_twice_then_succeeds_is_delivered() {
    let (postgres, pool) = setup().await;
    let receiver = Receiver::start(|index| if index < 2 { 503 } else { 204 }).await;
    let options = options(&[&receiver.url]);
    let (event, _) = enqueue_committed(&pool, &options).await;
    let row = settle_webhook(&postgres, &pool, options, event).await;

    assert_eq!((row.attempts, row.failed), (3, false));
    // The record keeps why the last failed attempt failed.
    assert_eq!(
        row.last_error.as_deref(),
        Some("HTTP 503 Service Unavailable: boiler room flooded")
    );
    assert_eq!(receiver.received().len(), 3);
}

#[tokio::test]
async fn a_webhook_that_is_down_fails_with_the_connection_error() {
    let (postgres, pool) = setup().await;
    let url = format!(
        "http://127.0.0.1:{}/hooks/stoker?token=t0k3n",
        closed_port()
    );
    let options = NotifyOptions {
        max_attempts: 2,
        ..options(&[&url])
    };
    let (event, _) = enqueue_committed(&pool, &options).await;
    let row = settle_webhook(&postgres, &pool, options, event).await;

    assert_eq!((row.attempts, row.delivered), (2, false));
    let error = row.last_error.unwrap();
    assert!(error.contains("Connection refused"), "{error}");
    // Never the URL: it may carry a token.
    assert!(
        !error.contains("t0k3n") && !error.contains("127.0.0.1"),
        "{error}"
    );
}

#[tokio::test]
async fn an_https_webhook_signed_by_a_private_ca_is_delivered_and_another_ca_refused() {
    let ca = stoker_testkit::TestCa::new();
    let files = ca.server("webhook", &["localhost"]);
    let certificate = stoker_tls::server::ServerTlsOptions {
        cert: Some(files.cert.clone()),
        key: Some(files.key.clone()),
    }
    .load()
    .unwrap()
    .expect("a certificate");
    let receiver = Receiver::start_tls(|_| 200, certificate.acceptor().unwrap()).await;
    let (postgres, pool) = setup().await;
    let options = options(&[&receiver.url]);
    let (event, body) = enqueue_committed(&pool, &options).await;

    let dispatcher = stoker_analytics::notify::Dispatcher::new(
        pool.clone(),
        &postgres.options(),
        options.clone(),
        &system_broker(),
    )
    .unwrap()
    .with_webhook_ca_file(ca.ca_file())
    .unwrap();
    let running = Running::spawn(dispatcher);
    let webhook = wait_for(&pool, event, "webhook", "the webhook is delivered", |row| {
        row.delivered
    })
    .await;
    running.stop().await;
    assert_eq!((webhook.attempts, webhook.failed), (1, false));
    let received = receiver.received();
    assert_eq!(received.len(), 1, "{received:?}");
    assert_eq!(received[0].body, body);

    // Trusting another CA: the attempt fails, and says why.
    let other = stoker_testkit::TestCa::new();
    let (event, _) = enqueue_committed(&pool, &options).await;
    let dispatcher = stoker_analytics::notify::Dispatcher::new(
        pool.clone(),
        &postgres.options(),
        options,
        &system_broker(),
    )
    .unwrap()
    .with_webhook_ca_file(other.ca_file())
    .unwrap();
    let running = Running::spawn(dispatcher);
    let webhook = wait_for(
        &pool,
        event,
        "webhook",
        "the webhook attempt fails",
        |row| row.last_error.is_some(),
    )
    .await;
    running.stop().await;
    assert!(!webhook.delivered, "{webhook:?}");
    let error = webhook.last_error.clone().unwrap_or_default();
    assert!(error.contains("certificate"), "{webhook:?}");
    assert_eq!(receiver.received().len(), 1);
}
