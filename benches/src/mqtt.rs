//! Tight MQTT clients on rumqttc: a publisher that keeps up to 1,000 QoS 1
//! messages in flight and counts PUBACKs (or sends QoS 0, counting what
//! its connection wrote), and a bare QoS 1 subscriber that counts
//! deliveries (auto-ack).

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use anyhow::{Context, anyhow};
use bytes::Bytes;
use rumqttc::{AsyncClient, Event, EventLoop, Incoming, MqttOptions, Outgoing, QoS};
use tokio::task::JoinHandle;
use tokio::time::Instant;

/// Messages a publisher keeps in flight (unacknowledged by the broker).
pub const IN_FLIGHT: u16 = 1000;
/// Requests queued between a client handle and its event loop.
const REQUEST_CHANNEL: usize = 10_000;
/// Longest wait for the broker's CONNACK or SUBACK.
const HANDSHAKE: Duration = Duration::from_secs(10);

fn options(port: u16, client_id: &str) -> MqttOptions {
    let mut options = MqttOptions::new(client_id, "127.0.0.1", port);
    options
        .set_clean_session(true)
        .set_keep_alive(Duration::from_secs(30))
        .set_inflight(IN_FLIGHT)
        .set_max_packet_size(1024 * 1024, 1024 * 1024);
    options
}

/// Polls until the CONNACK arrives.
async fn handshake(eventloop: &mut EventLoop, port: u16) -> anyhow::Result<()> {
    let deadline = Instant::now() + HANDSHAKE;
    loop {
        let event = tokio::time::timeout_at(deadline, eventloop.poll())
            .await
            .map_err(|_| anyhow!("no CONNACK from the broker on port {port} within {HANDSHAKE:?}"))?
            .with_context(|| format!("connecting to the broker on port {port}"))?;
        if let Event::Incoming(Incoming::ConnAck(_)) = event {
            return Ok(());
        }
    }
}

/// A QoS 1 (or QoS 0) publisher; its event loop runs in a task of its own.
#[derive(Debug)]
pub struct Publisher {
    client: AsyncClient,
    published: AtomicU64,
    acked: Arc<AtomicU64>,
    written: Arc<AtomicU64>,
    failed: Arc<AtomicBool>,
    task: JoinHandle<anyhow::Result<()>>,
}

impl Publisher {
    /// Connects (clean session) and starts counting PUBACKs.
    pub async fn connect(port: u16, client_id: &str) -> anyhow::Result<Self> {
        let (client, mut eventloop) = AsyncClient::new(options(port, client_id), REQUEST_CHANNEL);
        handshake(&mut eventloop, port).await?;
        let acked = Arc::new(AtomicU64::new(0));
        let written = Arc::new(AtomicU64::new(0));
        let failed = Arc::new(AtomicBool::new(false));
        let task = {
            let acked = Arc::clone(&acked);
            let written = Arc::clone(&written);
            let failed = Arc::clone(&failed);
            tokio::spawn(async move {
                loop {
                    match eventloop.poll().await {
                        Ok(Event::Incoming(Incoming::PubAck(_))) => {
                            acked.fetch_add(1, Ordering::Relaxed);
                        }
                        Ok(Event::Outgoing(Outgoing::Publish(_))) => {
                            written.fetch_add(1, Ordering::Relaxed);
                        }
                        Ok(Event::Outgoing(Outgoing::Disconnect)) => return Ok(()),
                        Ok(_) => {}
                        Err(error) => {
                            failed.store(true, Ordering::Release);
                            return Err(anyhow!("publisher connection lost: {error}"));
                        }
                    }
                }
            })
        };
        Ok(Self {
            client,
            published: AtomicU64::new(0),
            acked,
            written,
            failed,
            task,
        })
    }

    /// Queues one QoS 1 message (waits while the request channel is full).
    pub async fn publish(&self, topic: &str, payload: Bytes) -> anyhow::Result<()> {
        self.publish_with(topic, payload, QoS::AtLeastOnce).await
    }

    /// Queues one QoS 0 message (waits while the request channel is full):
    /// no acknowledgement, [`Publisher::written`] counts it once its
    /// connection wrote it.
    pub async fn publish_at_most_once(&self, topic: &str, payload: Bytes) -> anyhow::Result<()> {
        self.publish_with(topic, payload, QoS::AtMostOnce).await
    }

    async fn publish_with(&self, topic: &str, payload: Bytes, qos: QoS) -> anyhow::Result<()> {
        if self.failed.load(Ordering::Acquire) {
            return Err(anyhow!("publisher connection lost"));
        }
        self.client
            .publish_bytes(topic, qos, false, payload)
            .await
            .context("queueing a publish")?;
        self.published.fetch_add(1, Ordering::Relaxed);
        Ok(())
    }

    /// Whether the connection to the broker was lost.
    pub fn is_lost(&self) -> bool {
        self.failed.load(Ordering::Acquire)
    }

    /// Messages queued so far.
    pub fn published(&self) -> u64 {
        self.published.load(Ordering::Relaxed)
    }

    /// Messages the connection wrote to the broker so far (any QoS).
    pub fn written(&self) -> u64 {
        self.written.load(Ordering::Relaxed)
    }

    /// PUBACKs received so far.
    pub fn acked(&self) -> u64 {
        self.acked.load(Ordering::Relaxed)
    }

    /// Waits until the broker has acknowledged every queued message.
    pub async fn wait_acked(&self, limit: Duration) -> anyhow::Result<()> {
        let deadline = Instant::now() + limit;
        while self.acked() < self.published() {
            if self.failed.load(Ordering::Acquire) {
                return Err(anyhow!("publisher connection lost before every PUBACK"));
            }
            if Instant::now() >= deadline {
                return Err(anyhow!(
                    "the broker acknowledged {} of {} messages within {limit:?}",
                    self.acked(),
                    self.published()
                ));
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        Ok(())
    }

    /// Disconnects and stops the event loop.
    pub async fn close(self) {
        let _ = self.client.try_disconnect();
        if tokio::time::timeout(Duration::from_secs(2), &mut { self.task })
            .await
            .is_err()
        {
            // The event loop did not see its DISCONNECT go out; the task is
            // dropped with the runtime.
        }
    }
}

/// A bare QoS 1 subscriber that counts deliveries and acknowledges them
/// (rumqttc's automatic acks).
#[derive(Debug)]
pub struct Subscriber {
    client: AsyncClient,
    received: Arc<AtomicU64>,
    task: JoinHandle<anyhow::Result<()>>,
}

impl Subscriber {
    /// Connects (clean session), subscribes to `filter` at QoS 1 and waits
    /// for the SUBACK.
    pub async fn connect(port: u16, client_id: &str, filter: &str) -> anyhow::Result<Self> {
        let (client, mut eventloop) = AsyncClient::new(options(port, client_id), REQUEST_CHANNEL);
        handshake(&mut eventloop, port).await?;
        client.subscribe(filter, QoS::AtLeastOnce).await?;
        let deadline = Instant::now() + HANDSHAKE;
        loop {
            let event = tokio::time::timeout_at(deadline, eventloop.poll())
                .await
                .map_err(|_| anyhow!("no SUBACK within {HANDSHAKE:?}"))??;
            if let Event::Incoming(Incoming::SubAck(_)) = event {
                break;
            }
        }
        let received = Arc::new(AtomicU64::new(0));
        let task = {
            let received = Arc::clone(&received);
            tokio::spawn(async move {
                loop {
                    match eventloop.poll().await {
                        Ok(Event::Incoming(Incoming::Publish(_))) => {
                            received.fetch_add(1, Ordering::Relaxed);
                        }
                        Ok(Event::Outgoing(Outgoing::Disconnect)) => return Ok(()),
                        Ok(_) => {}
                        Err(error) => return Err(anyhow!("subscriber connection lost: {error}")),
                    }
                }
            })
        };
        Ok(Self {
            client,
            received,
            task,
        })
    }

    /// Messages delivered so far.
    pub fn received(&self) -> u64 {
        self.received.load(Ordering::Relaxed)
    }

    /// Whether the connection was lost.
    pub fn is_lost(&self) -> bool {
        self.task.is_finished()
    }

    /// Disconnects and stops the event loop.
    pub async fn close(self) {
        let _ = self.client.try_disconnect();
        let _ = tokio::time::timeout(Duration::from_secs(2), &mut { self.task }).await;
    }
}
