//! Where HTTP hands payloads to ingestion: the same queue as the broker's
//! messages, answered once the accepted readings are durable.

use std::sync::Arc;
use std::sync::atomic::Ordering;

use crate::envelope::{self, BodyRefusal, LineWrite, Receipt};
use crate::registry::SharedRegistry;
use crate::stats::Stats;
use crate::{journal, payload, queue};

/// Where HTTP hands payloads to ingestion. Cheap to clone.
#[derive(Debug, Clone)]
pub struct Intake {
    pub(crate) envelopes: queue::QueueSender,
    pub(crate) stats: Arc<Stats>,
    pub(crate) registry: Arc<SharedRegistry>,
}

/// Why a payload could not be taken now.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum IntakeError {
    /// The spool is full or the writer a whole queue behind: retry later.
    #[error(
        "ingestion is saturated (InfluxDB unavailable and the spool full, or a full queue); retry later"
    )]
    Busy,
    /// Ingestion is shutting down.
    #[error("ingestion is shutting down")]
    Stopping,
}

impl Intake {
    /// Says this process has just changed sites or sensors in Postgres
    /// (the API, after it created or changed one): the next reading that
    /// names a site or sensor the registry lacks reloads it at once, even
    /// within a second of the last forced reload, so telemetry posted right
    /// after the change is not refused while the change notice is on its
    /// way.
    pub fn metadata_changed(&self) {
        self.registry.allow_forced_reload();
    }

    /// Submits a `sites/{site}/telemetry` body and waits until its accepted
    /// readings are durable; the receipt says what was refused and why.
    pub async fn submit(&self, site: &str, payload: bytes::Bytes) -> Result<Receipt, IntakeError> {
        self.send(Self::telemetry(site), payload, None, false).await
    }

    /// Refuses a body of `length` bytes, over the limit, without reading
    /// it: counted and recorded like any refusal.
    pub async fn submit_oversized(&self, site: &str, length: u64) -> Result<Receipt, IntakeError> {
        self.send(
            Self::telemetry(site),
            bytes::Bytes::new(),
            Some(length),
            true,
        )
        .await
    }

    /// Submits a line-protocol body (an InfluxDB-compatible write, already
    /// decompressed) and waits until its accepted readings are durable;
    /// the receipt names each refused line and reading, with its line.
    pub async fn submit_lines(
        &self,
        write: LineWrite,
        payload: bytes::Bytes,
    ) -> Result<Receipt, IntakeError> {
        let target = envelope::Target::Lines {
            write,
            refused: None,
        };
        self.send(target, payload, None, false).await
    }

    /// Refuses a line-protocol body that could not be read (over the
    /// limit, or not the gzip it claims to be): counted and recorded like
    /// any refusal.
    pub async fn refuse_lines(
        &self,
        write: LineWrite,
        refused: BodyRefusal,
    ) -> Result<Receipt, IntakeError> {
        let target = envelope::Target::Lines {
            write,
            refused: Some(refused),
        };
        self.send(target, bytes::Bytes::new(), None, true).await
    }

    /// The largest body `submit` and `submit_lines` take (256 KiB,
    /// DESIGN.md); larger ones are refused as `payload_too_large`.
    pub const MAX_PAYLOAD_BYTES: usize = payload::MAX_PAYLOAD_BYTES;

    fn telemetry(site: &str) -> envelope::Target {
        envelope::Target::Telemetry {
            site: site.to_owned(),
        }
    }

    async fn send(
        &self,
        target: envelope::Target,
        payload: bytes::Bytes,
        oversized: Option<u64>,
        refusal_only: bool,
    ) -> Result<Receipt, IntakeError> {
        // A refusal stores nothing, so it is taken even while the spool is
        // full: it is counted and recorded like any other.
        if self.stats.spool_full.load(Ordering::Acquire) && !refusal_only {
            return Err(IntakeError::Busy);
        }
        let (reply, receipt) = tokio::sync::oneshot::channel();
        let envelope = envelope::Envelope {
            source: journal::Source::Http,
            target,
            payload,
            received: stoker_domain::EpochMillis::now(),
            ack: None,
            reply: Some(reply),
            oversized,
        };
        match self.envelopes.try_send(envelope) {
            Ok(()) => {}
            Err(queue::SendError::Full) => return Err(IntakeError::Busy),
            Err(queue::SendError::Closed) => return Err(IntakeError::Stopping),
        }
        // Dropped unanswered: the batch could be neither written nor spooled.
        receipt.await.map_err(|_| IntakeError::Busy)
    }
}
