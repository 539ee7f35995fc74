//! MQTT on the shared broker (or a test's own): topic prefixes, QoS 1
//! publishing that waits for every acknowledgement, and removing a
//! persistent session.

use std::time::Duration;

use crate::unique_client_id;

/// An MQTT topic prefix of the test's own, such as `test/1f3c…/`.
pub fn unique_topic_prefix() -> String {
    format!("test/{}/", uuid::Uuid::new_v4().simple())
}

/// Publishes each `(topic, payload)` at QoS 1 to the local broker and
/// returns once the broker has acknowledged all of them.
pub async fn publish_qos1(messages: &[(String, Vec<u8>)]) {
    publish_qos1_to(SYSTEM_BROKER_PORT, messages).await;
}

/// The machine's own broker, started before the tests (scripts/dev-up).
pub const SYSTEM_BROKER_PORT: u16 = 1883;

/// Publishes at QoS 1 to the broker on `port` and waits for every acknowledgement.
pub async fn publish_qos1_to(port: u16, messages: &[(String, Vec<u8>)]) {
    let mut options =
        rumqttc::MqttOptions::new(unique_client_id("test-publisher"), "127.0.0.1", port);
    options.set_max_packet_size(1024 * 1024, 1024 * 1024);
    let (client, mut eventloop) = rumqttc::AsyncClient::new(options, messages.len() + 10);
    for (topic, payload) in messages {
        client
            .publish(
                topic.as_str(),
                rumqttc::QoS::AtLeastOnce,
                false,
                payload.clone(),
            )
            .await
            .expect("queue publish");
    }
    let mut acknowledged = 0;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    while acknowledged < messages.len() {
        let event = tokio::time::timeout_at(deadline, eventloop.poll())
            .await
            .expect("the broker acknowledges within 30 s")
            .expect("Mosquitto must run on 127.0.0.1:1883 (scripts/dev-up starts it)");
        if let rumqttc::Event::Incoming(rumqttc::Packet::PubAck(_)) = event {
            acknowledged += 1;
        }
    }
    let _ = client.disconnect().await;
    let _ = tokio::time::timeout(Duration::from_secs(2), eventloop.poll()).await;
}

/// Removes the broker's persistent session of `client_id` (a test's
/// ingestion leaves one): connect with a clean session, then disconnect.
pub async fn clear_mqtt_session(client_id: &str) {
    clear_mqtt_session_to(SYSTEM_BROKER_PORT, client_id).await;
}

/// Removes the persistent session of `client_id` on the broker on `port`.
pub async fn clear_mqtt_session_to(port: u16, client_id: &str) {
    let mut options = rumqttc::MqttOptions::new(client_id, "127.0.0.1", port);
    options.set_clean_session(true);
    let (client, mut eventloop) = rumqttc::AsyncClient::new(options, 10);
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    while let Ok(Ok(event)) = tokio::time::timeout_at(deadline, eventloop.poll()).await {
        match event {
            rumqttc::Event::Incoming(rumqttc::Packet::ConnAck(_)) => {
                let _ = client.try_disconnect();
            }
            rumqttc::Event::Outgoing(rumqttc::Outgoing::Disconnect) => break,
            _ => {}
        }
    }
}
