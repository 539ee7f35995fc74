//! The evaluation loop's Prometheus metrics.

use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;

/// Prometheus metrics of the evaluation loop.
#[derive(Debug, Clone)]
pub struct Metrics {
    pub(super) ticks: Counter,
    pub(super) tick_errors: Counter,
    pub(super) tick_seconds: Histogram,
    pub(super) judged: Gauge,
    pub(super) fired: Counter,
    pub(super) cleared: Counter,
    pub(super) leader: Gauge,
}

impl Default for Metrics {
    fn default() -> Self {
        Self {
            ticks: Counter::default(),
            tick_errors: Counter::default(),
            tick_seconds: Histogram::new(exponential_buckets(0.01, 2.0, 12)),
            judged: Gauge::default(),
            fired: Counter::default(),
            cleared: Counter::default(),
            leader: Gauge::default(),
        }
    }
}

impl Metrics {
    /// Adds the loop's metrics to a registry.
    pub fn register(&self, registry: &mut Registry) {
        registry.register(
            "stoker_analytics_ticks",
            "Ticks evaluated by this process while it led.",
            self.ticks.clone(),
        );
        registry.register(
            "stoker_analytics_tick_errors",
            "Ticks not evaluated because a store failed (logged).",
            self.tick_errors.clone(),
        );
        registry.register(
            "stoker_analytics_tick_seconds",
            "Seconds per evaluated tick.",
            self.tick_seconds.clone(),
        );
        registry.register(
            "stoker_analytics_judged",
            "(rule, sensor) pairs judged at the last tick.",
            self.judged.clone(),
        );
        registry.register(
            "stoker_analytics_alerts_fired",
            "Alerts opened by this process.",
            self.fired.clone(),
        );
        registry.register(
            "stoker_analytics_alerts_cleared",
            "Alerts resolved by this process (rule cleared, or rule or sensor gone).",
            self.cleared.clone(),
        );
        registry.register(
            "stoker_analytics_leader",
            "1 while this process holds the evaluation leadership.",
            self.leader.clone(),
        );
    }
}
