//! The durable write: a batch goes to InfluxDB, or, when InfluxDB cannot
//! take it (or a backlog is still replaying, to keep the order), to the
//! spool. Only then is it settled.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use stoker_timeseries::LineBatch;
use tokio::time::Instant;

use super::Writer;
use crate::late::mark_if_late;
use crate::spool::{Spool, SpoolError};

/// How long a shutdown waits for InfluxDB to take the last batch before it
/// gives up; those messages stay unacknowledged and the broker redelivers.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(10);

impl Writer {
    /// Makes the batch durable: in InfluxDB, or, when InfluxDB cannot take
    /// it (or a backlog is still replaying, to keep the order), in the
    /// spool. Returns false only when a shutdown outlasted
    /// [`SHUTDOWN_GRACE`] with the spool full.
    pub(super) async fn write_durably(&self, lines: &LineBatch) -> bool {
        let mut backoff = Duration::from_millis(100);
        let mut give_up_at: Option<Instant> = None;
        loop {
            if self.spool.is_empty() {
                let started = std::time::Instant::now();
                let written = self.influx.write(lines).await;
                self.histograms
                    .write_seconds
                    .observe(started.elapsed().as_secs_f64());
                match written {
                    Ok(()) => {
                        self.stats.spool_full.store(false, Ordering::Release);
                        mark_if_late(&self.influx, lines).await;
                        return true;
                    }
                    Err(error) => {
                        self.stats.write_errors.fetch_add(1, Ordering::Relaxed);
                        if error.is_transient() {
                            tracing::warn!(%error, readings = lines.len(), "InfluxDB write failed; spooling the batch to disk");
                        } else {
                            tracing::error!(%error, readings = lines.len(), "InfluxDB refused a batch; spooling it until an operator fixes InfluxDB");
                        }
                    }
                }
            }
            match spool_append(&self.spool, lines).await {
                Ok(()) => {
                    self.stats.spooled_batches.fetch_add(1, Ordering::Relaxed);
                    self.stats.spool_full.store(false, Ordering::Release);
                    self.replay.notify_one();
                    return true;
                }
                Err(SpoolError::Full { bytes, max_bytes }) => {
                    if !self.stats.spool_full.swap(true, Ordering::AcqRel) {
                        tracing::error!(
                            bytes,
                            max_bytes,
                            "spool full: acknowledging nothing until InfluxDB takes the backlog (the broker keeps the messages)"
                        );
                    }
                }
                Err(error) => {
                    tracing::error!(%error, "cannot spool a batch; retrying (the batch stays unacknowledged)");
                }
            }
            if self.shutdown.is_cancelled() {
                let deadline = *give_up_at.get_or_insert_with(|| Instant::now() + SHUTDOWN_GRACE);
                if Instant::now() >= deadline {
                    return false;
                }
            }
            tokio::time::sleep(backoff).await;
            backoff = (backoff * 2).min(Duration::from_secs(2));
        }
    }
}

/// Appends to the spool off the async threads (it waits for the disk).
async fn spool_append(spool: &Arc<Spool>, lines: &LineBatch) -> Result<(), SpoolError> {
    let spool = Arc::clone(spool);
    let body = lines.as_str().as_bytes().to_vec();
    tokio::task::spawn_blocking(move || spool.append(&body))
        .await
        .unwrap_or_else(|error| {
            Err(SpoolError::Io {
                path: "spool".into(),
                source: std::io::Error::other(error),
            })
        })
}
