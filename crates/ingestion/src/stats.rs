//! Counters of what ingestion received, stored and refused.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};

use crate::Reason;

/// Live counters, shared by the ingestion tasks.
#[derive(Debug, Default)]
pub(crate) struct Stats {
    pub messages: AtomicU64,
    pub accepted: AtomicU64,
    pub rejected: [AtomicU64; Reason::ALL.len()],
    pub batches: AtomicU64,
    pub write_errors: AtomicU64,
    pub cache_errors: AtomicU64,
    pub acked: AtomicU64,
    pub spooled_batches: AtomicU64,
    pub replayed_batches: AtomicU64,
    pub rejections_unrecorded: AtomicU64,
    /// Set while the spool refuses batches: HTTP answers 503.
    pub spool_full: std::sync::atomic::AtomicBool,
}

/// A copy of the counters at one moment.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct StatsSnapshot {
    /// Messages received (MQTT publishes, HTTP bodies).
    pub messages: u64,
    /// Readings written to InfluxDB.
    pub accepted: u64,
    /// Readings (or whole messages) refused, by reason.
    pub rejected: BTreeMap<&'static str, u64>,
    /// Batches written to InfluxDB.
    pub batches: u64,
    /// Failed InfluxDB writes (each retried).
    pub write_errors: u64,
    /// Failed latest-value updates in Redis (not retried: Redis is a cache).
    pub cache_errors: u64,
    /// MQTT messages acknowledged after their readings were durable.
    pub acked: u64,
    /// Batches written to the spool because InfluxDB could not take them.
    pub spooled_batches: u64,
    /// Spooled batches replayed into InfluxDB.
    pub replayed_batches: u64,
    /// Rejections counted and logged but not recorded in Postgres (the
    /// in-memory bound was reached while Postgres was slow or away).
    pub rejections_unrecorded: u64,
}

impl StatsSnapshot {
    /// All refused readings, whatever the reason.
    pub fn rejected_total(&self) -> u64 {
        self.rejected.values().sum()
    }
}

impl Stats {
    pub(crate) fn reject(&self, reason: Reason, count: u64) {
        self.rejected[reason as usize].fetch_add(count, Ordering::Relaxed);
    }

    pub(crate) fn snapshot(&self) -> StatsSnapshot {
        let load = |counter: &AtomicU64| counter.load(Ordering::Relaxed);
        StatsSnapshot {
            messages: load(&self.messages),
            accepted: load(&self.accepted),
            rejected: Reason::ALL
                .iter()
                .map(|reason| (reason.as_str(), load(&self.rejected[*reason as usize])))
                .filter(|(_, count)| *count > 0)
                .collect(),
            batches: load(&self.batches),
            write_errors: load(&self.write_errors),
            cache_errors: load(&self.cache_errors),
            acked: load(&self.acked),
            spooled_batches: load(&self.spooled_batches),
            replayed_batches: load(&self.replayed_batches),
            rejections_unrecorded: load(&self.rejections_unrecorded),
        }
    }
}
