//! MQTT notifications: exactly the body, and attempts until a broker is back.

use rumqttc::{AsyncClient, Event, MqttOptions, Packet, QoS};
use std::time::Duration;
use stoker_analytics::notify::Dispatcher;
use stoker_analytics::notify::NotifyOptions;
use stoker_testkit::{BrokerTls, SYSTEM_BROKER_PORT, TestBroker, TestCa, unique_client_id};

use crate::support::*;

#[tokio::test]
async fn mqtt_subscribers_receive_exactly_the_body() {
    subscribers_receive_exactly_the_body(SYSTEM_BROKER_PORT, |pool, postgres, options| {
        Running::start(pool, postgres, options, &system_broker())
    })
    .await;
}

#[tokio::test]
async fn notifications_reach_a_tls_broker_that_requires_a_client_certificate() {
    let ca = TestCa::new();
    let broker = TestBroker::start_tls(&BrokerTls {
        ca_file: ca.ca_file().to_owned(),
        server: ca.server("broker", &["localhost"]),
        require_client_cert: true,
    })
    .await;
    let client = ca.client("notify", "stoker-notify");
    let tls = stoker_tls::MqttTlsOptions {
        ca_file: Some(ca.ca_file().to_owned()),
        client_cert: Some(client.cert.clone()),
        client_key: Some(client.key.clone()),
    };
    // The test subscribes on the broker's plain listener.
    subscribers_receive_exactly_the_body(broker.port(), |pool, postgres, options| {
        let dispatcher = Dispatcher::new(
            pool.clone(),
            &postgres.options(),
            options,
            &broker.tls_url("localhost"),
        )
        .and_then(|dispatcher| dispatcher.with_mqtt_tls(&tls))
        .unwrap();
        Running::spawn(dispatcher)
    })
    .await;
}

/// A subscriber on `port` receives exactly the body of one notification
/// that the dispatcher `start` makes delivers.
async fn subscribers_receive_exactly_the_body(
    port: u16,
    start: impl FnOnce(&stoker_postgres::Pool, &stoker_testkit::TestPostgres, NotifyOptions) -> Running,
) {
    let (postgres, pool) = setup().await;
    let options = options(&[]);
    let topic = options.topic(&site());

    let mut subscriber = MqttOptions::new(unique_client_id("test-alerts"), "127.0.0.1", port);
    subscriber.set_max_packet_size(1024 * 1024, 1024 * 1024);
    let (client, mut eventloop) = AsyncClient::new(subscriber, 10);
    client.subscribe(&topic, QoS::AtLeastOnce).await.unwrap();
    let (publishes, mut arrived) = tokio::sync::mpsc::unbounded_channel();
    let (subscribed, is_subscribed) = tokio::sync::oneshot::channel();
    let listening = tokio::spawn(async move {
        let mut subscribed = Some(subscribed);
        while let Ok(event) = eventloop.poll().await {
            match event {
                Event::Incoming(Packet::SubAck(_)) => {
                    if let Some(subscribed) = subscribed.take() {
                        let _ = subscribed.send(());
                    }
                }
                Event::Incoming(Packet::Publish(publish)) => {
                    let _ = publishes.send(publish);
                }
                _ => {}
            }
        }
    });
    tokio::time::timeout(PATIENCE, is_subscribed)
        .await
        .expect("the broker confirms the subscription")
        .unwrap();

    let (event, body) = enqueue_committed(&pool, &options).await;
    let running = start(&pool, &postgres, options);
    let publish = tokio::time::timeout(PATIENCE, arrived.recv())
        .await
        .expect("the alert arrives")
        .unwrap();
    let row = wait_for(&pool, event, "mqtt", "the publish is delivered", |row| {
        row.delivered
    })
    .await;
    running.stop().await;
    let _ = client.disconnect().await;
    listening.abort();

    assert_eq!(publish.topic, topic);
    assert_eq!(publish.payload.as_ref(), body.as_bytes());
    assert_eq!(publish.qos, QoS::AtLeastOnce);
    assert!(!publish.retain);
    assert_eq!((row.attempts, row.failed), (1, false));
    assert!(arrived.try_recv().is_err(), "one publish per transition");
}

#[tokio::test]
async fn a_broker_that_is_down_fails_attempts_until_it_is_back() {
    let (postgres, pool) = setup().await;
    let mut broker = TestBroker::start().await;
    broker.stop();
    let options = NotifyOptions {
        max_attempts: 1000,
        timeout: Duration::from_millis(300),
        ..options(&[])
    };
    let (event, _) = enqueue_committed(&pool, &options).await;
    let running = Running::start(&pool, &postgres, options, &broker.url());
    let failing = wait_for(&pool, event, "mqtt", "attempts fail", |row| {
        row.attempts >= 2 && row.last_error.is_some()
    })
    .await;
    assert!(!failing.delivered && !failing.failed);
    let error = failing.last_error.unwrap();
    assert!(error.contains("broker"), "{error}");

    broker.restart().await;
    let row = wait_for(&pool, event, "mqtt", "the publish is delivered", |row| {
        row.delivered
    })
    .await;
    running.stop().await;
    assert!(row.attempts > failing.attempts && !row.failed);
}
