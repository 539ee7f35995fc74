//! How many unacknowledged QoS 1 deliveries does the broker send one
//! client? Against the test broker (shipped config, `max_inflight_messages
//! 1000`): publishes 5,000 messages to a manual-ack subscriber that acks
//! nothing, counts what arrives, then acks only the oldest one and counts
//! again.
//!
//! ```text
//! cargo run --release -p stoker-benches --example mosquitto_inflight_window
//! cargo run --release -p stoker-benches --example mosquitto_inflight_window -- '$share/g/sites/+/telemetry'
//! ```
//!
//! Mosquitto 2.0.11 (Debian 12) prints 1,000 and then 1,000 more: acking
//! the oldest in-flight message lets a whole new window in, so with acks in
//! order the broker's limit holds nothing back. This is why ingestion
//! bounds its own queue and stops reading when it is full.
use std::time::Duration;

use rumqttc::{AsyncClient, Event, Incoming, MqttOptions, QoS};
use stoker_benches::mqtt::Publisher;

#[tokio::main]
async fn main() {
    let broker = stoker_testkit::TestBroker::start().await;
    let mut options = MqttOptions::new(
        stoker_testkit::unique_client_id("probe"),
        "127.0.0.1",
        broker.port(),
    );
    options.set_clean_session(false).set_manual_acks(true);
    let (client, mut eventloop) = AsyncClient::new(options, 8192);
    let filter = std::env::args()
        .nth(1)
        .unwrap_or("sites/+/telemetry".into());
    client.subscribe(filter, QoS::AtLeastOnce).await.unwrap();
    loop {
        if let Ok(Event::Incoming(Incoming::SubAck(_))) = eventloop.poll().await {
            break;
        }
    }
    let publisher = Publisher::connect(broker.port(), "probe-pub")
        .await
        .unwrap();
    for _ in 0..5000 {
        publisher
            .publish("sites/a/telemetry", bytes::Bytes::from(vec![b'x'; 400]))
            .await
            .unwrap();
    }
    let mut received = 0;
    let mut first = None;
    loop {
        match tokio::time::timeout(Duration::from_secs(3), eventloop.poll()).await {
            Ok(Ok(Event::Incoming(Incoming::Publish(p)))) => {
                received += 1;
                if first.is_none() {
                    first = Some(p);
                }
            }
            Ok(Ok(_)) => {}
            Ok(Err(e)) => {
                println!("error {e}");
                break;
            }
            Err(_) => break,
        }
    }
    println!("received without acking: {received}");
    client.ack(&first.unwrap()).await.unwrap();
    let mut more = 0;
    loop {
        match tokio::time::timeout(Duration::from_secs(3), eventloop.poll()).await {
            Ok(Ok(Event::Incoming(Incoming::Publish(_)))) => more += 1,
            Ok(Ok(_)) => {}
            Ok(Err(e)) => {
                println!("error {e}");
                break;
            }
            Err(_) => break,
        }
    }
    println!("received after acking the oldest one: {more}");
}
