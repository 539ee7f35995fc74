//! The Sparkplug host's counters and gauges, read at scrape time into
//! Prometheus metrics (`stoker_sparkplug_*`).

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeMetric};
use prometheus_client::metrics::MetricType;
use prometheus_client::metrics::counter::ConstCounter;
use prometheus_client::metrics::gauge::ConstGauge;
use prometheus_client::registry::Registry;
use stoker_sparkplug::{MessageType, RefusalReason};

/// The refusal of readings from a gateway bound to no site.
pub(crate) const UNBOUND_GATEWAY: &str = "unbound_gateway";

/// Every refusal reason the host counts: the protocol's, then its own.
const REASONS: usize = RefusalReason::ALL.len() + 1;

/// Message types counted: the edge nodes' eight, and STATE.
const TYPES: usize = MessageType::ALL.len() + 1;

/// Live counters of the Sparkplug host, shared by its tasks.
#[derive(Debug, Default)]
pub(crate) struct SparkplugStats {
    /// Messages received, by type (`MessageType::ALL`'s order, then STATE);
    /// a message on an invalid topic counts only as refused `invalid_topic`.
    pub messages: [AtomicU64; TYPES],
    /// Readings the protocol core gave, handed to the writer.
    pub readings: AtomicU64,
    /// Refusals by reason (`RefusalReason::ALL`'s order, then `unbound_gateway`).
    pub refusals: [AtomicU64; REASONS],
    /// Rebirth requests (NCMD) published.
    pub rebirth_requests: AtomicU64,
    /// Births and deaths recorded in metadata.
    pub events_recorded: AtomicU64,
    /// Births and deaths not recorded (the queue to Postgres was full).
    pub events_unrecorded: AtomicU64,
    /// STATE messages published, online and offline.
    pub state_online_published: AtomicU64,
    pub state_offline_published: AtomicU64,
    /// Set while this process leads the Sparkplug host.
    pub leader: AtomicBool,
    /// Set while this process's STATE says online.
    pub online: AtomicBool,
}

impl SparkplugStats {
    /// Counts a message of an edge node's type, or (`None`) a STATE message.
    pub(crate) fn message(&self, message_type: Option<MessageType>) {
        let index = match message_type {
            Some(message_type) => MessageType::ALL
                .iter()
                .position(|known| *known == message_type)
                .unwrap_or(TYPES - 1),
            None => TYPES - 1,
        };
        self.messages[index].fetch_add(1, Ordering::Relaxed);
    }

    pub(crate) fn refusal(&self, reason: RefusalReason) {
        let index = RefusalReason::ALL
            .iter()
            .position(|known| *known == reason)
            .unwrap_or(REASONS - 1);
        self.refusals[index].fetch_add(1, Ordering::Relaxed);
    }

    pub(crate) fn unbound(&self, readings: u64) {
        self.refusals[REASONS - 1].fetch_add(readings, Ordering::Relaxed);
    }
}

fn reason_names() -> impl Iterator<Item = &'static str> {
    RefusalReason::ALL
        .iter()
        .map(|reason| reason.as_str())
        .chain([UNBOUND_GATEWAY])
}

fn type_names() -> impl Iterator<Item = &'static str> {
    MessageType::ALL
        .iter()
        .map(|message_type| message_type.as_str())
        .chain(["STATE"])
}

#[derive(Debug)]
struct Collected(Arc<SparkplugStats>);

impl Collector for Collected {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        let stats = &self.0;
        let load = |counter: &AtomicU64| counter.load(Ordering::Relaxed);
        let mut messages = encoder.encode_descriptor(
            "stoker_sparkplug_messages",
            "Sparkplug messages received by this process while it led the host, by type.",
            None,
            MetricType::Counter,
        )?;
        for (index, name) in type_names().enumerate() {
            ConstCounter::new(load(&stats.messages[index]))
                .encode(messages.encode_family(&[("type", name)])?)?;
        }
        let mut refusals = encoder.encode_descriptor(
            "stoker_sparkplug_refusals",
            "Sparkplug messages or metrics refused by the host, by reason (readings the writer refuses count in stoker_ingest_readings_rejected).",
            None,
            MetricType::Counter,
        )?;
        for (index, name) in reason_names().enumerate() {
            ConstCounter::new(load(&stats.refusals[index]))
                .encode(refusals.encode_family(&[("reason", name)])?)?;
        }
        let mut state = encoder.encode_descriptor(
            "stoker_sparkplug_state_published",
            "STATE messages this process published, by the state they announce.",
            None,
            MetricType::Counter,
        )?;
        ConstCounter::new(load(&stats.state_online_published))
            .encode(state.encode_family(&[("online", "true")])?)?;
        ConstCounter::new(load(&stats.state_offline_published))
            .encode(state.encode_family(&[("online", "false")])?)?;
        let counters: [(&str, &str, u64); 4] = [
            (
                "stoker_sparkplug_readings",
                "Readings decoded from Sparkplug metrics and handed to the writer.",
                load(&stats.readings),
            ),
            (
                "stoker_sparkplug_rebirth_requests",
                "Rebirth requests (NCMD Node Control/Rebirth) published.",
                load(&stats.rebirth_requests),
            ),
            (
                "stoker_sparkplug_events_recorded",
                "Edge node and device births and deaths recorded in metadata.",
                load(&stats.events_recorded),
            ),
            (
                "stoker_sparkplug_events_unrecorded",
                "Births and deaths not recorded in metadata (its queue was full while Postgres was away).",
                load(&stats.events_unrecorded),
            ),
        ];
        for (name, help, value) in counters {
            ConstCounter::new(value).encode(encoder.encode_descriptor(
                name,
                help,
                None,
                MetricType::Counter,
            )?)?;
        }
        let gauges: [(&str, &str, bool); 2] = [
            (
                "stoker_sparkplug_leader",
                "1 while this process leads the Sparkplug host (holds its advisory lock).",
                stats.leader.load(Ordering::Relaxed),
            ),
            (
                "stoker_sparkplug_state_online",
                "1 while this process's Sparkplug STATE says online.",
                stats.online.load(Ordering::Relaxed),
            ),
        ];
        for (name, help, value) in gauges {
            ConstGauge::new(i64::from(value)).encode(encoder.encode_descriptor(
                name,
                help,
                None,
                MetricType::Gauge,
            )?)?;
        }
        Ok(())
    }
}

/// Registers the Sparkplug host's metrics.
pub(crate) fn register(registry: &mut Registry, stats: &Arc<SparkplugStats>) {
    registry.register_collector(Box::new(Collected(Arc::clone(stats))));
}
