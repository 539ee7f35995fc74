//! The hand-off from the MQTT event loop (and HTTP) to the writer.
//!
//! Unbounded on purpose: the event loop must never wait on the writer.
//! Acknowledgements leave through the same event loop, so an event loop
//! blocked on a full queue would stop the very acks that let the writer
//! drain it. The cost: under sustained overload (publishers faster than
//! InfluxDB over minutes) the queue holds the backlog and memory grows; the
//! depth is exported as `stoker_ingest_queued_messages`. HTTP checks the
//! depth before it adds more.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use tokio::sync::mpsc;

use crate::writer::Envelope;

/// Adds messages for the writer. Cheap to clone.
#[derive(Debug, Clone)]
pub(crate) struct QueueSender {
    sender: mpsc::UnboundedSender<Envelope>,
    depth: Arc<AtomicUsize>,
}

/// The writer's end.
#[derive(Debug)]
pub(crate) struct QueueReceiver {
    receiver: mpsc::UnboundedReceiver<Envelope>,
    depth: Arc<AtomicUsize>,
}

/// A new queue, and its depth for gauges and admission checks.
pub(crate) fn queue() -> (QueueSender, QueueReceiver, Arc<AtomicUsize>) {
    let (sender, receiver) = mpsc::unbounded_channel();
    let depth = Arc::new(AtomicUsize::new(0));
    (
        QueueSender {
            sender,
            depth: Arc::clone(&depth),
        },
        QueueReceiver {
            receiver,
            depth: Arc::clone(&depth),
        },
        depth,
    )
}

impl QueueSender {
    /// Queues a message; gives it back when the writer has stopped.
    pub fn send(&self, envelope: Envelope) -> Result<(), Box<Envelope>> {
        self.depth.fetch_add(1, Ordering::AcqRel);
        self.sender.send(envelope).map_err(|returned| {
            self.depth.fetch_sub(1, Ordering::AcqRel);
            Box::new(returned.0)
        })
    }

    /// Messages waiting for the writer.
    pub fn depth(&self) -> usize {
        self.depth.load(Ordering::Acquire)
    }
}

impl QueueReceiver {
    /// The next message; `None` once every sender is gone.
    pub async fn recv(&mut self) -> Option<Envelope> {
        let envelope = self.receiver.recv().await?;
        self.depth.fetch_sub(1, Ordering::AcqRel);
        Some(envelope)
    }

    /// A message already waiting, without waiting for one.
    pub fn try_recv(&mut self) -> Option<Envelope> {
        let envelope = self.receiver.try_recv().ok()?;
        self.depth.fetch_sub(1, Ordering::AcqRel);
        Some(envelope)
    }

    /// Refuses further messages (shutdown).
    pub fn close(&mut self) {
        self.receiver.close();
    }
}
