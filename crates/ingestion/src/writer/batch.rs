//! Batching: the writer's loop. A batch closes when it holds
//! `max_points` readings or its first message has waited `linger`; up to
//! `writes_in_flight` batches are written at once and settled in the order
//! they were dispatched, so acknowledgements keep the order of receipt.
//!
//! A batch that holds an HTTP caller's readings closes as soon as nothing
//! more is queued and a write may start (fewer than `writes_in_flight`):
//! an MQTT publisher keeps sending while its messages wait (its window is
//! the broker's in-flight limit), so lingering gathers more of them into
//! one write; an HTTP caller waits for its answer before it sends again,
//! so lingering would only delay it (a client posting bodies one after
//! another would get one body per linger). Once every write slot is busy,
//! what arrives meanwhile gathers into the next batch.

use futures::StreamExt;
use futures::future::BoxFuture;
use futures::stream::FuturesOrdered;
use tokio::time::Instant;

use super::{Batch, Pending, Writer};
use crate::journal::Entries;
use crate::queue::QueueReceiver;

impl Writer {
    /// Runs until `shutdown`, then drains what was received, writes it,
    /// settles every batch and disconnects from the broker.
    pub(crate) async fn run(self, mut envelopes: QueueReceiver) {
        let mut pending = Pending::with_capacity(self.limits.max_points);
        // Writes in flight, settled in the order they were dispatched so
        // that acknowledgements keep the order of receipt.
        let mut in_flight: FuturesOrdered<BoxFuture<'_, (Batch, bool)>> = FuturesOrdered::new();
        let mut journal_backlog = Entries::default();
        loop {
            let deadline = pending.deadline;
            tokio::select! {
                biased;
                () = self.shutdown.cancelled() => break,
                Some((batch, durable)) = in_flight.next(), if !in_flight.is_empty() => {
                    self.settle(batch, durable, &mut journal_backlog).await;
                    if self.callers_would_wait(&pending, &in_flight, &envelopes) {
                        self.dispatch(&mut pending, &mut in_flight, &mut journal_backlog).await;
                    }
                }
                () = sleep_until(deadline) => {
                    self.dispatch(&mut pending, &mut in_flight, &mut journal_backlog).await;
                }
                envelope = envelopes.recv() => match envelope {
                    Some(envelope) => {
                        self.accept(envelope, &mut pending).await;
                        if pending.lines.len() >= self.limits.max_points
                            || self.callers_would_wait(&pending, &in_flight, &envelopes)
                        {
                            self.dispatch(&mut pending, &mut in_flight, &mut journal_backlog).await;
                        }
                    }
                    None => break,
                },
            }
        }
        // Stop intake, take what is already here, write, settle everything.
        envelopes.close();
        while let Some(envelope) = envelopes.try_recv() {
            self.accept(envelope, &mut pending).await;
        }
        self.dispatch(&mut pending, &mut in_flight, &mut journal_backlog)
            .await;
        while let Some((batch, durable)) = in_flight.next().await {
            self.settle(batch, durable, &mut journal_backlog).await;
        }
        if !journal_backlog.is_empty() {
            let _ = self.journal.send(journal_backlog).await;
        }
        if let Some(acker) = &self.acker {
            acker.disconnect();
        }
    }

    /// Whether the pending batch holds HTTP callers' readings that would
    /// wait for the linger although nothing more is queued and a write
    /// slot is free.
    fn callers_would_wait<T: std::future::Future>(
        &self,
        pending: &Pending,
        in_flight: &FuturesOrdered<T>,
        envelopes: &QueueReceiver,
    ) -> bool {
        !pending.replies.is_empty()
            && in_flight.len() < self.limits.writes_in_flight
            && envelopes.is_empty()
    }

    /// Hands the pending batch to a write, waiting for the oldest write in
    /// flight first when the limit is reached.
    async fn dispatch<'a>(
        &'a self,
        pending: &mut Pending,
        in_flight: &mut FuturesOrdered<BoxFuture<'a, (Batch, bool)>>,
        journal_backlog: &mut Entries,
    ) {
        pending.deadline = None;
        let batch = pending.take_batch(self.limits.max_points);
        if batch.is_empty() {
            return;
        }
        while in_flight.len() >= self.limits.writes_in_flight {
            if let Some((done, durable)) = in_flight.next().await {
                self.settle(done, durable, journal_backlog).await;
            }
        }
        in_flight.push_back(Box::pin(async move {
            let durable = batch.lines.is_empty() || self.write_durably(&batch.lines).await;
            (batch, durable)
        }));
    }
}

async fn sleep_until(deadline: Option<Instant>) {
    match deadline {
        Some(deadline) => tokio::time::sleep_until(deadline).await,
        None => std::future::pending().await,
    }
}
