//! Publishes a short run to the real Mosquitto on 127.0.0.1:1883 under a
//! topic prefix of its own, and checks what a subscriber receives.

use std::collections::HashMap;
use std::time::Duration;

use rumqttc::{AsyncClient, Event, MqttOptions, Packet, QoS};
use stoker_simulator::{SimulateArgs, fleet, run};
use tokio_util::sync::CancellationToken;

const BROKER_HOST: &str = "127.0.0.1";
const BROKER_PORT: u16 = 1883;

#[tokio::test]
async fn a_bounded_run_delivers_every_message_with_the_contract_shape() {
    let run_id: u64 = rand::random();
    let topic_prefix = format!("test-{run_id:016x}/");
    let args = SimulateArgs {
        sites: 2,
        sensors: 12,
        rate: 20.0,
        messages: Some(20),
        qos: 1,
        topic_prefix: topic_prefix.clone(),
        seed: Some(42),
        ..SimulateArgs::default()
    };
    let expected_fleet = fleet(&args);

    // Subscribe first, and wait for the SUBACK, so no message is missed.
    let mut options = MqttOptions::new(
        format!("simulator-test-sub-{run_id:016x}"),
        BROKER_HOST,
        BROKER_PORT,
    );
    options.set_keep_alive(Duration::from_secs(5));
    let (subscriber, mut events) = AsyncClient::new(options, 64);
    subscriber
        .subscribe(format!("{topic_prefix}sites/+/telemetry"), QoS::AtLeastOnce)
        .await
        .unwrap();
    let (messages_tx, mut messages_rx) = tokio::sync::mpsc::unbounded_channel();
    let (subscribed_tx, subscribed_rx) = tokio::sync::oneshot::channel();
    let subscriber_task = tokio::spawn(async move {
        let mut subscribed_tx = Some(subscribed_tx);
        loop {
            match events.poll().await {
                Ok(Event::Incoming(Packet::SubAck(_))) => {
                    if let Some(subscribed_tx) = subscribed_tx.take() {
                        let _ = subscribed_tx.send(());
                    }
                }
                Ok(Event::Incoming(Packet::Publish(publish))) => {
                    if messages_tx.send((publish.topic, publish.payload)).is_err() {
                        return;
                    }
                }
                Ok(Event::Outgoing(rumqttc::Outgoing::Disconnect)) => return,
                Ok(_) => {}
                Err(error) => {
                    panic!("subscriber lost the broker at {BROKER_HOST}:{BROKER_PORT}: {error}")
                }
            }
        }
    });
    tokio::time::timeout(Duration::from_secs(5), subscribed_rx)
        .await
        .expect("no SUBACK within 5 s: is Mosquitto running on 127.0.0.1:1883?")
        .unwrap();

    let publisher_id = format!("simulator-test-pub-{run_id:016x}");
    let publisher = MqttOptions::new(publisher_id.clone(), BROKER_HOST, BROKER_PORT);
    let summary = tokio::time::timeout(
        Duration::from_secs(20),
        run(args, publisher, CancellationToken::new()),
    )
    .await
    .expect("the run did not finish within 20 s")
    .unwrap();
    assert_eq!(summary.messages, 20);
    assert_eq!(summary.readings, 20 * 12);

    let mut per_site: HashMap<String, Vec<i64>> = HashMap::new();
    for _ in 0..20 {
        let (topic, payload) = tokio::time::timeout(Duration::from_secs(5), messages_rx.recv())
            .await
            .expect("a published message did not arrive within 5 s")
            .unwrap();
        let slug = topic
            .strip_prefix(&format!("{topic_prefix}sites/"))
            .and_then(|rest| rest.strip_suffix("/telemetry"))
            .unwrap_or_else(|| panic!("unexpected topic {topic}"));
        let site = expected_fleet
            .iter()
            .find(|site| site.slug == slug)
            .unwrap_or_else(|| panic!("unknown site {slug}"));

        let body: serde_json::Value = serde_json::from_slice(&payload).unwrap();
        let object = body.as_object().unwrap();
        assert_eq!(object.len(), 2, "{body}");
        let ts = object["ts"].as_i64().unwrap();
        let values = object["values"].as_object().unwrap();
        assert_eq!(values.len(), site.sensors.len(), "{body}");
        for sensor in &site.sensors {
            let value = values[&sensor.key].as_f64().unwrap();
            assert!(
                value.is_finite() && (sensor.min..=sensor.max).contains(&value),
                "{} = {value}",
                sensor.key
            );
        }
        per_site.entry(slug.to_owned()).or_default().push(ts);
    }
    // The run is bounded: nothing more arrives.
    assert!(
        tokio::time::timeout(Duration::from_millis(300), messages_rx.recv())
            .await
            .is_err()
    );
    // Both sites publish, each every 1/rate = 50 ms, with rising timestamps.
    assert_eq!(per_site.len(), 2);
    let now = chrono::Utc::now().timestamp_millis();
    for timestamps in per_site.values() {
        assert_eq!(timestamps.len(), 10);
        for pair in timestamps.windows(2) {
            assert_eq!(pair[1] - pair[0], 50, "{timestamps:?}");
        }
        assert!(
            (now - timestamps[0]).abs() < 60_000,
            "{timestamps:?} vs now {now}"
        );
    }

    subscriber.disconnect().await.unwrap();
    let _ = tokio::time::timeout(Duration::from_secs(2), subscriber_task).await;
    discard_session(publisher_id).await;
}

/// A QoS 1 run leaves a persistent session on the broker; connecting once
/// with a clean session under the same client id discards it.
async fn discard_session(client_id: String) {
    let options = MqttOptions::new(client_id, BROKER_HOST, BROKER_PORT);
    let (client, mut events) = AsyncClient::new(options, 8);
    let _ = tokio::time::timeout(Duration::from_secs(5), async {
        loop {
            match events.poll().await {
                Ok(Event::Incoming(Packet::ConnAck(_))) => {
                    let _ = client.try_disconnect();
                }
                Ok(Event::Outgoing(rumqttc::Outgoing::Disconnect)) | Err(_) => return,
                Ok(_) => {}
            }
        }
    })
    .await;
}
