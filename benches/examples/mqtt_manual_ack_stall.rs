//! A minimal reproduction of the stall `benches/ingest` hits in phase (b):
//! the MQTT pattern of `stoker-ingestion` (manual acks; the rumqttc event
//! loop polled in a task of its own that forwards publishes over an
//! `mpsc::channel(4096)`; a writer that acknowledges in batches through the
//! same client, each ack bounded by 5 s), with no InfluxDB and no Stoker
//! code, against the test broker (shipped config).
//!
//! ```text
//! cargo run --release -p stoker-benches --example mqtt_manual_ack_stall -- 250
//! ```
//!
//! The argument is the number of messages per acknowledged batch (Stoker's
//! default 5,000 readings = 250 messages of 20). With 50 or 250 the
//! received count stops about 4,100 above the acked count and acks start
//! timing out; with 1,000 all 15,000 messages are acknowledged.
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use rumqttc::{AsyncClient, Event, Incoming, MqttOptions, Publish, QoS};
use stoker_benches::mqtt::Publisher;

#[tokio::main]
async fn main() {
    let batch: usize = std::env::args()
        .nth(1)
        .and_then(|a| a.parse().ok())
        .unwrap_or(250);
    let broker = stoker_testkit::TestBroker::start().await;
    let mut options = MqttOptions::new(
        stoker_testkit::unique_client_id("stall-repro"),
        "127.0.0.1",
        broker.port(),
    );
    options.set_clean_session(false).set_manual_acks(true);
    let (client, mut eventloop) = AsyncClient::new(options, 8192);
    client
        .subscribe("sites/+/telemetry", QoS::AtLeastOnce)
        .await
        .unwrap();
    loop {
        if let Ok(Event::Incoming(Incoming::SubAck(_))) = eventloop.poll().await {
            break;
        }
    }
    let (tx, mut rx) = tokio::sync::mpsc::channel::<Publish>(4096);
    let received = Arc::new(AtomicU64::new(0));
    let acked = Arc::new(AtomicU64::new(0));
    let failed = Arc::new(AtomicU64::new(0));
    let r = Arc::clone(&received);
    tokio::spawn(async move {
        loop {
            match eventloop.poll().await {
                Ok(Event::Incoming(Incoming::Publish(p))) => {
                    r.fetch_add(1, Ordering::Relaxed);
                    let _ = tx.send(p).await;
                }
                Ok(_) => {}
                Err(e) => {
                    println!("eventloop error {e}");
                    break;
                }
            }
        }
    });
    let (a, f, c) = (Arc::clone(&acked), Arc::clone(&failed), client.clone());
    tokio::spawn(async move {
        let mut pending = Vec::new();
        loop {
            let next = tokio::time::timeout(Duration::from_millis(100), rx.recv()).await;
            match next {
                Ok(Some(p)) => {
                    pending.push(p);
                    if pending.len() < batch {
                        continue;
                    }
                }
                Ok(None) => break,
                Err(_) => {}
            }
            tokio::time::sleep(Duration::from_millis(10)).await; // "the InfluxDB write"
            for p in pending.drain(..) {
                match tokio::time::timeout(Duration::from_secs(5), c.ack(&p)).await {
                    Ok(Ok(())) => {
                        a.fetch_add(1, Ordering::Relaxed);
                    }
                    _ => {
                        f.fetch_add(1, Ordering::Relaxed);
                    }
                }
            }
        }
    });
    let publisher = Publisher::connect(broker.port(), "repro-pub")
        .await
        .unwrap();
    let total = 15_000;
    for i in 0..total {
        publisher
            .publish(
                "sites/a/telemetry",
                bytes::Bytes::from(vec![b'x'; 400 + i % 2]),
            )
            .await
            .unwrap();
    }
    for _ in 0..20 {
        tokio::time::sleep(Duration::from_secs(1)).await;
        println!(
            "batch {batch}: received {} acked {} ack-timeouts {}",
            received.load(Ordering::Relaxed),
            acked.load(Ordering::Relaxed),
            failed.load(Ordering::Relaxed)
        );
        if acked.load(Ordering::Relaxed) as usize == total {
            break;
        }
    }
}
