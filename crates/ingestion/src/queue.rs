//! The hand-off from the MQTT connection (and HTTP) to the writer, bounded
//! in bytes.
//!
//! This bound is what keeps ingestion's memory flat under overload. When
//! the writer falls behind (InfluxDB slower than the publishers), the queue
//! fills, the MQTT connection stops reading its socket, TCP's window closes
//! and the broker holds the backlog. Acknowledgements leave on the
//! connection's other half, which never waits on this queue, so a full
//! queue cannot stop the acks that drain it. HTTP bodies are refused (503)
//! instead of waiting.
//!
//! The broker's own limit on unacknowledged deliveries cannot do this job:
//! Mosquitto 2.0.11 (Debian 12) lets in another `max_inflight_messages`
//! messages each time the oldest one in flight is acknowledged, so with
//! acknowledgements in order it sends without limit.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use tokio::sync::{Semaphore, mpsc};

use crate::envelope::{Envelope, Target};

/// Bytes an envelope is charged beyond its payload (topic, bookkeeping).
const ENVELOPE_OVERHEAD: usize = 256;

/// Adds messages for the writer. Cheap to clone.
#[derive(Debug, Clone)]
pub(crate) struct QueueSender {
    sender: mpsc::UnboundedSender<(Envelope, u32)>,
    room: Arc<Semaphore>,
    capacity: u32,
    depth: Arc<AtomicUsize>,
}

/// The writer's end.
#[derive(Debug)]
pub(crate) struct QueueReceiver {
    receiver: mpsc::UnboundedReceiver<(Envelope, u32)>,
    room: Arc<Semaphore>,
    depth: Arc<AtomicUsize>,
}

/// Why a message was not queued (it is dropped: an MQTT message stays
/// unacknowledged at the broker, an HTTP request is refused).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum SendError {
    /// The queue is full (only from [`QueueSender::try_send`]).
    Full,
    /// The writer has stopped.
    Closed,
}

/// A queue holding at most `capacity_bytes` of messages (at least 1 MiB),
/// and its depth in messages for gauges.
pub(crate) fn queue(capacity_bytes: usize) -> (QueueSender, QueueReceiver, Arc<AtomicUsize>) {
    let capacity = capacity_bytes.clamp(1 << 20, Semaphore::MAX_PERMITS.min(u32::MAX as usize));
    let (sender, receiver) = mpsc::unbounded_channel();
    let room = Arc::new(Semaphore::new(capacity));
    let depth = Arc::new(AtomicUsize::new(0));
    (
        QueueSender {
            sender,
            room: Arc::clone(&room),
            capacity: capacity as u32,
            depth: Arc::clone(&depth),
        },
        QueueReceiver {
            receiver,
            room,
            depth: Arc::clone(&depth),
        },
        depth,
    )
}

impl QueueSender {
    /// What a message is charged: its payload and overhead, plus what a
    /// Sparkplug message holds decoded (each reading, whose sensor key is
    /// shared with the alias table: a small payload of aliases decodes to
    /// several times its size), at
    /// most the whole queue (a larger one waits for an empty queue).
    fn cost(&self, envelope: &Envelope) -> u32 {
        let decoded = match &envelope.target {
            Target::Sparkplug(decoded) => (decoded.readings.len()
                * std::mem::size_of::<stoker_sparkplug::Reading>())
            .saturating_add(decoded.topic.len()),
            _ => 0,
        };
        let bytes = envelope
            .payload
            .len()
            .saturating_add(ENVELOPE_OVERHEAD)
            .saturating_add(decoded);
        u32::try_from(bytes).unwrap_or(u32::MAX).min(self.capacity)
    }

    /// Queues a message, waiting while the queue is full.
    pub(crate) async fn send(&self, envelope: Envelope) -> Result<(), SendError> {
        let cost = self.cost(&envelope);
        match self.room.acquire_many(cost).await {
            Ok(permit) => permit.forget(),
            Err(_) => return Err(SendError::Closed),
        }
        self.push(envelope, cost)
    }

    /// Queues a message if there is room now.
    pub(crate) fn try_send(&self, envelope: Envelope) -> Result<(), SendError> {
        let cost = self.cost(&envelope);
        match self.room.try_acquire_many(cost) {
            Ok(permit) => permit.forget(),
            Err(tokio::sync::TryAcquireError::NoPermits) => {
                return Err(SendError::Full);
            }
            Err(tokio::sync::TryAcquireError::Closed) => {
                return Err(SendError::Closed);
            }
        }
        self.push(envelope, cost)
    }

    fn push(&self, envelope: Envelope, cost: u32) -> Result<(), SendError> {
        self.depth.fetch_add(1, Ordering::AcqRel);
        self.sender.send((envelope, cost)).map_err(|_| {
            self.depth.fetch_sub(1, Ordering::AcqRel);
            self.room.add_permits(cost as usize);
            SendError::Closed
        })
    }
}

impl QueueReceiver {
    /// The next message; `None` once every sender is gone.
    pub(crate) async fn recv(&mut self) -> Option<Envelope> {
        let taken = self.receiver.recv().await?;
        Some(self.taken(taken))
    }

    /// A message already waiting, without waiting for one.
    pub(crate) fn try_recv(&mut self) -> Option<Envelope> {
        let taken = self.receiver.try_recv().ok()?;
        Some(self.taken(taken))
    }

    fn taken(&self, (envelope, cost): (Envelope, u32)) -> Envelope {
        self.depth.fetch_sub(1, Ordering::AcqRel);
        self.room.add_permits(cost as usize);
        envelope
    }

    /// Whether no message is waiting.
    pub(crate) fn is_empty(&self) -> bool {
        self.receiver.is_empty()
    }

    /// Refuses further messages (shutdown); senders waiting for room are
    /// turned away at once.
    pub(crate) fn close(&mut self) {
        self.room.close();
        self.receiver.close();
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;
    use crate::journal::Source;

    fn envelope(bytes: usize) -> Envelope {
        Envelope {
            source: Source::Http,
            target: Target::Unknown { topic: "t".into() },
            payload: bytes::Bytes::from(vec![b'x'; bytes]),
            received: stoker_domain::EpochMillis::now(),
            ack: None,
            reply: None,
            oversized: None,
        }
    }

    #[test]
    fn a_sparkplug_message_is_charged_its_decoded_readings_too() {
        let (sender, _receiver, _depth) = queue(1 << 20);
        let reading = stoker_sparkplug::Reading {
            sensor: std::sync::Arc::new(stoker_domain::SensorKey::parse("sensor_00").unwrap()),
            metric: "sensor_00".into(),
            timestamp: stoker_domain::EpochMillis::now(),
            value: stoker_sparkplug::MetricValue::Number(1.5),
            is_historical: false,
        };
        let mut sparkplug = envelope(270);
        sparkplug.target = Target::Sparkplug(Box::new(crate::envelope::Decoded {
            topic: "spBv1.0/bench/NDATA/site".into(),
            gateway: None,
            site: None,
            readings: vec![reading; 20],
            refusals: Vec::new(),
        }));
        let plain = sender.cost(&envelope(270)) as usize;
        let per_reading = std::mem::size_of::<stoker_sparkplug::Reading>();
        assert_eq!(
            sender.cost(&sparkplug) as usize,
            plain + 20 * per_reading + "spBv1.0/bench/NDATA/site".len()
        );
    }

    #[tokio::test]
    async fn a_full_queue_makes_senders_wait_until_the_writer_takes_messages() {
        let (sender, mut receiver, depth) = queue(1 << 20);
        let half = (1 << 19) - ENVELOPE_OVERHEAD;
        sender.send(envelope(half)).await.unwrap();
        sender.send(envelope(half)).await.unwrap();
        assert_eq!(depth.load(Ordering::Acquire), 2);
        assert!(matches!(sender.try_send(envelope(1)), Err(SendError::Full)));
        let waiting = tokio::spawn({
            let sender = sender.clone();
            async move { sender.send(envelope(10)).await.is_ok() }
        });
        tokio::time::sleep(Duration::from_millis(50)).await;
        assert!(!waiting.is_finished(), "the sender must wait for room");
        receiver.recv().await.unwrap();
        assert!(waiting.await.unwrap());
        assert_eq!(depth.load(Ordering::Acquire), 2);
    }

    #[tokio::test]
    async fn a_message_larger_than_the_queue_waits_for_an_empty_one() {
        let (sender, mut receiver, _) = queue(1 << 20);
        sender.send(envelope(100)).await.unwrap();
        let big = tokio::spawn({
            let sender = sender.clone();
            async move { sender.send(envelope(4 << 20)).await.is_ok() }
        });
        tokio::time::sleep(Duration::from_millis(50)).await;
        assert!(!big.is_finished());
        receiver.recv().await.unwrap();
        assert!(big.await.unwrap());
        assert_eq!(receiver.recv().await.unwrap().payload.len(), 4 << 20);
    }

    #[tokio::test]
    async fn closing_turns_waiting_senders_away() {
        let (sender, mut receiver, _) = queue(1 << 20);
        sender.send(envelope(1 << 20)).await.unwrap();
        let waiting = tokio::spawn({
            let sender = sender.clone();
            async move { sender.send(envelope(10)).await }
        });
        tokio::time::sleep(Duration::from_millis(20)).await;
        receiver.close();
        assert!(matches!(waiting.await.unwrap(), Err(SendError::Closed)));
        assert!(matches!(
            sender.try_send(envelope(1)),
            Err(SendError::Closed)
        ));
        assert!(receiver.try_recv().is_some(), "what was queued stays");
    }
}
