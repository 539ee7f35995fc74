//! The writer: validates readings against the registry, batches them,
//! writes each batch to InfluxDB, then acknowledges its messages, then
//! updates the latest values in Redis.
//!
//! The order is the delivery guarantee: a message is acknowledged only once
//! every accepted reading in it is durable in InfluxDB. Redis comes last
//! and off the critical path: it is only a cache.
//!
//! Layout, one responsibility per module (each an `impl Writer` block over
//! the types defined here):
//! - `batch`: the loop: takes envelopes, closes a batch when it is full or
//!   its linger is over, keeps up to `writes_in_flight` writes going and
//!   settles them in dispatch order;
//! - `validate`: parses and checks each message into the pending batch,
//!   counting, logging (rate-limited by `RejectionLog`) and recording every
//!   refusal;
//! - `lines`: a line-protocol body, line by line, through `validate`'s
//!   checks;
//! - `sparkplug`: a message the Sparkplug host decoded: its readings
//!   through `validate`'s checks, the protocol's refusals recorded;
//! - `durable`: makes a batch durable, in InfluxDB or the spool;
//! - `settle`: what follows a durable batch: acknowledgements, HTTP
//!   receipts, latest values and journal entries.

mod batch;
mod durable;
mod lines;
mod settle;
mod sparkplug;
mod validate;

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use stoker_domain::EpochMillis;
use stoker_postgres::Pool;
use stoker_timeseries::{Influx, LineBatch};
use tokio::sync::{Notify, mpsc, oneshot};
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use crate::Reason;
use crate::envelope::{Acker, PendingAck, Receipt};
use crate::journal::Entries;
use crate::latest::LatestValues;
use crate::metrics::Histograms;
use crate::registry::{Fast, SensorEntry, SharedRegistry, Typed};
use crate::spool::Spool;
use crate::stats::Stats;

/// Batch size and linger.
#[derive(Debug, Clone, Copy)]
pub(crate) struct BatchLimits {
    pub max_points: usize,
    pub linger: Duration,
    /// InfluxDB writes in flight at once (at least 1).
    pub writes_in_flight: usize,
}

pub(crate) struct Writer {
    pub registry: Arc<SharedRegistry>,
    /// Postgres, to reload the registry when a message names a sensor it
    /// does not know yet.
    pub pool: Pool,
    pub influx: Influx,
    pub spool: Arc<Spool>,
    pub replay: Arc<Notify>,
    pub histograms: Histograms,
    pub stats: Arc<Stats>,
    /// The broker connection's acknowledgements; none without MQTT.
    pub acker: Option<Acker>,
    pub latest: mpsc::Sender<LatestValues>,
    pub journal: mpsc::Sender<Entries>,
    pub limits: BatchLimits,
    pub shutdown: CancellationToken,
}

/// Latest value per sensor within one batch: the newest reading wins.
type LatestBySensor = HashMap<u64, (Arc<SensorEntry>, Typed, EpochMillis), Fast>;

/// A batch on its way to InfluxDB, with everything that waits on it.
struct Batch {
    lines: LineBatch,
    acks: Vec<PendingAck>,
    replies: Vec<(oneshot::Sender<Receipt>, Receipt)>,
    latest: LatestBySensor,
    journal: Entries,
    oldest: Option<std::time::Instant>,
}

impl Batch {
    fn is_empty(&self) -> bool {
        self.lines.is_empty()
            && self.acks.is_empty()
            && self.replies.is_empty()
            && self.journal.is_empty()
    }
}

/// What is waiting for the next flush.
struct Pending {
    lines: LineBatch,
    acks: Vec<PendingAck>,
    /// HTTP callers waiting for their readings to be durable.
    replies: Vec<(oneshot::Sender<Receipt>, Receipt)>,
    latest: LatestBySensor,
    journal: Entries,
    log: RejectionLog,
    deadline: Option<Instant>,
    /// When the batch's oldest message arrived (for the lag histogram).
    oldest: Option<std::time::Instant>,
}

/// At most one log line per rejection reason every [`LOG_EVERY`], with the
/// number of further rejections it stands for: a sensor gone mad must not
/// flood the log (every rejection is still counted and recorded).
#[derive(Debug, Default)]
struct RejectionLog {
    last: [Option<Instant>; Reason::ALL.len()],
    suppressed: [u64; Reason::ALL.len()],
}

const LOG_EVERY: Duration = Duration::from_secs(10);

impl RejectionLog {
    /// Whether to log this one; if so, how many were suppressed before it.
    fn admit(&mut self, reason: Reason) -> Option<u64> {
        let index = reason as usize;
        let now = Instant::now();
        match self.last[index] {
            Some(last) if now.duration_since(last) < LOG_EVERY => {
                self.suppressed[index] += 1;
                None
            }
            _ => {
                self.last[index] = Some(now);
                Some(std::mem::take(&mut self.suppressed[index]))
            }
        }
    }
}

impl Pending {
    /// Nothing yet, with room for a batch of `capacity` readings.
    fn with_capacity(capacity: usize) -> Self {
        Self {
            lines: LineBatch::with_capacity(capacity),
            acks: Vec::new(),
            replies: Vec::new(),
            latest: HashMap::default(),
            journal: Entries::default(),
            log: RejectionLog::default(),
            deadline: None,
            oldest: None,
        }
    }

    /// Takes what accumulated, leaving an empty batch with room for the next.
    fn take_batch(&mut self, capacity: usize) -> Batch {
        // As many sensors as this batch had: the next one rarely has fewer.
        let latest = HashMap::with_capacity_and_hasher(self.latest.len(), Fast::default());
        let lines = if self.lines.is_empty() {
            LineBatch::default()
        } else {
            std::mem::replace(&mut self.lines, LineBatch::with_capacity(capacity))
        };
        Batch {
            lines,
            acks: std::mem::take(&mut self.acks),
            replies: std::mem::take(&mut self.replies),
            latest: std::mem::replace(&mut self.latest, latest),
            journal: std::mem::take(&mut self.journal),
            oldest: self.oldest.take(),
        }
    }

    /// Encodes a reading as DESIGN.md stores its kind: field `value` a
    /// float (a boolean 0/1, a state its index), plus a state's name as
    /// field `state`.
    fn push_reading(&mut self, entry: &Arc<SensorEntry>, value: Typed, timestamp: EpochMillis) {
        match value {
            Typed::Number(number) => self.lines.push_in(&entry.series, number, timestamp),
            Typed::Boolean(flag) => {
                let stored = if flag { 1.0 } else { 0.0 };
                self.lines.push_in(&entry.series, stored, timestamp);
            }
            Typed::State(index) => {
                let name = entry.states.name(index).map_or("", |name| name.as_str());
                self.lines
                    .push_state_in(&entry.series, index, name, timestamp);
            }
        }
        match self.latest.get_mut(&entry.serial) {
            Some(newest) if newest.2 > timestamp => {}
            Some(newest) => {
                newest.1 = value;
                newest.2 = timestamp;
            }
            None => {
                self.latest
                    .insert(entry.serial, (Arc::clone(entry), value, timestamp));
            }
        }
    }
}
