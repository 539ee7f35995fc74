//! Prometheus metrics of ingestion. Counters are read from the live
//! [`Stats`] at scrape time, so the hot path only bumps atomics; the
//! histograms are observed once per batch.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeMetric};
use prometheus_client::metrics::MetricType;
use prometheus_client::metrics::counter::ConstCounter;
use prometheus_client::metrics::gauge::ConstGauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;

use crate::Reason;
use crate::spool::Spool;
use crate::stats::Stats;

/// Histograms observed by the writer.
#[derive(Debug, Clone)]
pub(crate) struct Histograms {
    /// Readings per InfluxDB write.
    pub batch_readings: Histogram,
    /// Seconds per InfluxDB write (successful or not).
    pub write_seconds: Histogram,
    /// Seconds from receiving a batch's oldest message until it is durable.
    pub lag_seconds: Histogram,
}

impl Default for Histograms {
    fn default() -> Self {
        Self {
            batch_readings: Histogram::new(exponential_buckets(1.0, 4.0, 9)),
            write_seconds: Histogram::new(exponential_buckets(0.001, 2.0, 14)),
            lag_seconds: Histogram::new(exponential_buckets(0.005, 2.0, 13)),
        }
    }
}

/// Reads the counters and gauges at scrape time.
#[derive(Debug)]
struct Counters {
    stats: Arc<Stats>,
    spool: Arc<Spool>,
    connected: Arc<AtomicBool>,
    queued: Arc<AtomicUsize>,
}

impl Collector for Counters {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        let snapshot = self.stats.snapshot();
        let counters: [(&str, &str, u64); 8] = [
            (
                "stoker_ingest_messages",
                "Messages received (MQTT publishes and HTTP bodies).",
                snapshot.messages,
            ),
            (
                "stoker_ingest_readings_accepted",
                "Readings made durable (InfluxDB or the spool).",
                snapshot.accepted,
            ),
            (
                "stoker_ingest_batches",
                "Batches written to InfluxDB.",
                snapshot.batches,
            ),
            (
                "stoker_ingest_write_errors",
                "Failed InfluxDB writes (the batch went to the spool).",
                snapshot.write_errors,
            ),
            (
                "stoker_ingest_cache_errors",
                "Latest-value updates Redis did not take.",
                snapshot.cache_errors,
            ),
            (
                "stoker_ingest_acked",
                "MQTT messages acknowledged once durable.",
                snapshot.acked,
            ),
            (
                "stoker_ingest_spooled_batches",
                "Batches written to the spool.",
                snapshot.spooled_batches,
            ),
            (
                "stoker_ingest_replayed_batches",
                "Spooled batches replayed into InfluxDB.",
                snapshot.replayed_batches,
            ),
        ];
        for (name, help, value) in counters {
            let counter = ConstCounter::new(value);
            counter.encode(encoder.encode_descriptor(name, help, None, MetricType::Counter)?)?;
        }
        let mut rejected = encoder.encode_descriptor(
            "stoker_ingest_readings_rejected",
            "Readings refused, by reason.",
            None,
            MetricType::Counter,
        )?;
        for reason in Reason::ALL {
            let count = self.stats.rejected[reason as usize].load(Ordering::Relaxed);
            let labels = [("reason", reason.as_str())];
            ConstCounter::new(count).encode(rejected.encode_family(&labels)?)?;
        }
        let (segments, bytes) = self.spool.depth();
        let gauges: [(&str, &str, i64); 5] = [
            (
                "stoker_ingest_queued_messages",
                "Messages received and waiting for the writer.",
                self.queued.load(Ordering::Relaxed) as i64,
            ),
            (
                "stoker_ingest_spool_segments",
                "Batches waiting in the spool.",
                segments as i64,
            ),
            (
                "stoker_ingest_spool_bytes",
                "Bytes waiting in the spool.",
                bytes as i64,
            ),
            (
                "stoker_ingest_spool_full",
                "1 while the spool refuses batches (nothing is acknowledged).",
                i64::from(self.stats.spool_full.load(Ordering::Relaxed)),
            ),
            (
                "stoker_ingest_mqtt_connected",
                "1 while the broker connection is up and subscribed.",
                i64::from(self.connected.load(Ordering::Relaxed)),
            ),
        ];
        for (name, help, value) in gauges {
            ConstGauge::new(value).encode(encoder.encode_descriptor(
                name,
                help,
                None,
                MetricType::Gauge,
            )?)?;
        }
        Ok(())
    }
}

/// What the metrics read.
pub(crate) struct Sources<'a> {
    pub stats: &'a Arc<Stats>,
    pub spool: &'a Arc<Spool>,
    pub connected: &'a Arc<AtomicBool>,
    pub queued: &'a Arc<AtomicUsize>,
    pub histograms: &'a Histograms,
}

/// Registers every ingestion metric.
pub(crate) fn register(registry: &mut Registry, sources: Sources<'_>) {
    let histograms = sources.histograms;
    registry.register_collector(Box::new(Counters {
        stats: Arc::clone(sources.stats),
        spool: Arc::clone(sources.spool),
        connected: Arc::clone(sources.connected),
        queued: Arc::clone(sources.queued),
    }));
    registry.register(
        "stoker_ingest_batch_readings",
        "Readings per InfluxDB write.",
        histograms.batch_readings.clone(),
    );
    registry.register(
        "stoker_ingest_write_seconds",
        "Duration of InfluxDB writes.",
        histograms.write_seconds.clone(),
    );
    registry.register(
        "stoker_ingest_lag_seconds",
        "Seconds from receiving a batch's oldest message until its readings are durable.",
        histograms.lag_seconds.clone(),
    );
}
