//! Settling: what follows a batch's write, in dispatch order.

use std::sync::atomic::Ordering;

use tokio::sync::mpsc;

use super::{Batch, Writer};
use crate::journal::Entries;

impl Writer {
    /// Completes a batch once its write is over: acknowledges its
    /// messages, answers its HTTP callers, and hands its latest values and
    /// journal entries on. A batch that could not be made durable (shutdown
    /// with the spool full) is acknowledged to nobody: the broker
    /// redelivers, HTTP callers get 503.
    pub(super) async fn settle(
        &self,
        mut batch: Batch,
        durable: bool,
        journal_backlog: &mut Entries,
    ) {
        if !durable {
            tracing::warn!(
                readings = batch.lines.len(),
                messages = batch.acks.len(),
                "neither InfluxDB nor the full spool took the last batch before shutdown; its messages stay unacknowledged for redelivery"
            );
            return;
        }
        if !batch.lines.is_empty() {
            self.stats
                .accepted
                .fetch_add(batch.lines.len() as u64, Ordering::Relaxed);
            self.stats.batches.fetch_add(1, Ordering::Relaxed);
            self.histograms
                .batch_readings
                .observe(batch.lines.len() as f64);
        }
        if let Some(acker) = &self.acker {
            for ack in batch.acks.drain(..) {
                if acker.ack(ack) {
                    self.stats.acked.fetch_add(1, Ordering::Relaxed);
                }
            }
        }
        if let Some(oldest) = batch.oldest {
            self.histograms
                .lag_seconds
                .observe(oldest.elapsed().as_secs_f64());
        }
        for (reply, receipt) in batch.replies.drain(..) {
            // The caller may have gone; its readings are stored all the same.
            let _ = reply.send(receipt);
        }
        journal_backlog.merge(std::mem::take(&mut batch.journal), &self.stats);
        if !journal_backlog.is_empty() {
            match self.journal.try_send(std::mem::take(journal_backlog)) {
                Ok(()) => {}
                // The journal task is behind: keep the entries for the next batch.
                Err(
                    mpsc::error::TrySendError::Full(entries)
                    | mpsc::error::TrySendError::Closed(entries),
                ) => *journal_backlog = entries,
            }
        }
        if !batch.latest.is_empty() {
            let latest: Vec<_> = batch.latest.into_values().collect();
            if self.latest.try_send(latest).is_err() {
                // The cache task is behind (Redis slow or down): skip this
                // update; the next reading of each sensor refreshes it.
                self.stats.cache_errors.fetch_add(1, Ordering::Relaxed);
            }
        }
    }
}
