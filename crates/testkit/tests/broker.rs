//! The broker configuration the project ships keeps what Stoker's delivery
//! guarantees need: an offline persistent session's backlog, beyond
//! Mosquitto's default of 1,000 queued messages.

use std::time::Duration;

use rumqttc::{AsyncClient, Event, MqttOptions, Packet, QoS};
use stoker_testkit::{TestBroker, unique_client_id};

async fn session(port: u16, client_id: &str) -> (AsyncClient, rumqttc::EventLoop) {
    let mut options = MqttOptions::new(client_id, "127.0.0.1", port);
    options.set_clean_session(false);
    AsyncClient::new(options, 100)
}

#[tokio::test]
async fn an_offline_persistent_session_keeps_a_backlog_of_3000_messages() {
    offline_backlog("backlog/+").await;
}

/// Ingestion subscribes through a shared group: the broker must queue for
/// an offline member too, or a lone ingestion process that restarts would
/// lose what was published meanwhile.
#[tokio::test]
async fn an_offline_shared_subscription_member_keeps_its_backlog() {
    offline_backlog("$share/stoker/backlog/+").await;
}

async fn offline_backlog(filter: &str) {
    let broker = TestBroker::start().await;
    let client_id = unique_client_id("backlog");

    // Subscribe with a persistent session, then go offline.
    let (client, mut eventloop) = session(broker.port(), &client_id).await;
    client.subscribe(filter, QoS::AtLeastOnce).await.unwrap();
    loop {
        if let Event::Incoming(Packet::SubAck(_)) = eventloop.poll().await.unwrap() {
            break;
        }
    }
    client.disconnect().await.unwrap();
    while eventloop.poll().await.is_ok() {}

    let messages: Vec<(String, Vec<u8>)> = (0..3000)
        .map(|index| {
            (
                format!("backlog/{}", index % 7),
                index.to_string().into_bytes(),
            )
        })
        .collect();
    broker.publish_qos1(&messages).await;

    // Back online: every message is delivered.
    let (_client, mut eventloop) = session(broker.port(), &client_id).await;
    let mut received = 0;
    while received < messages.len() {
        let Ok(event) = tokio::time::timeout(Duration::from_secs(10), eventloop.poll()).await
        else {
            panic!("only {received} of 3000 queued messages arrived");
        };
        let event = event.unwrap();
        if let Event::Incoming(Packet::Publish(_)) = event {
            received += 1;
        }
    }
    assert_eq!(received, 3000);
}
