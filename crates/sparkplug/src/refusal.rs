//! Why a message, or one metric of it, yields no reading.

use std::fmt;

/// The reason for a refusal, with a stable name for counters and logs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum RefusalReason {
    /// The topic is not a Sparkplug B topic.
    InvalidTopic,
    /// The payload is not a Sparkplug B protobuf payload, or lacks what its
    /// message type requires (a birth's metric names, a data message's `seq`).
    MalformedPayload,
    /// Data, a device birth or a device death from an edge node or device
    /// whose birth this host has not seen (a rebirth is requested).
    BeforeBirth,
    /// The message's `seq` is not one more than the previous message's
    /// (a rebirth is requested).
    SequenceGap,
    /// The edge node's state is unknown since a gap or an unknown alias,
    /// and its new birth has not arrived yet.
    AwaitingRebirth,
    /// A data message names an alias or metric its birth did not announce
    /// (a rebirth is requested).
    UnknownMetric,
    /// Two metrics of one edge node map to one sensor key, or a birth gives
    /// one alias or name to two metrics.
    AmbiguousMetric,
    /// A metric name with no letter or digit, so no sensor key.
    InvalidMetricName,
    /// A datatype Stoker does not store (DataSet, Template, Bytes, arrays…).
    UnsupportedDatatype,
    /// A value that does not fit its datatype, or is missing.
    InvalidValue,
    /// A metric explicitly null (`is_null`).
    NullValue,
    /// A transient metric (`is_transient`): of interest to a host, but
    /// not to be stored in a historian (the specification's words).
    TransientMetric,
    /// A timestamp outside what InfluxDB stores, or none for a historical metric.
    InvalidTimestamp,
}

impl RefusalReason {
    /// Every reason, for counters.
    pub const ALL: [RefusalReason; 13] = [
        RefusalReason::InvalidTopic,
        RefusalReason::MalformedPayload,
        RefusalReason::BeforeBirth,
        RefusalReason::SequenceGap,
        RefusalReason::AwaitingRebirth,
        RefusalReason::UnknownMetric,
        RefusalReason::AmbiguousMetric,
        RefusalReason::InvalidMetricName,
        RefusalReason::UnsupportedDatatype,
        RefusalReason::InvalidValue,
        RefusalReason::NullValue,
        RefusalReason::TransientMetric,
        RefusalReason::InvalidTimestamp,
    ];

    /// The stable name of the reason, e.g. `ambiguous_metric`.
    pub fn as_str(self) -> &'static str {
        match self {
            RefusalReason::InvalidTopic => "invalid_topic",
            RefusalReason::MalformedPayload => "malformed_payload",
            RefusalReason::BeforeBirth => "before_birth",
            RefusalReason::SequenceGap => "sequence_gap",
            RefusalReason::AwaitingRebirth => "awaiting_rebirth",
            RefusalReason::UnknownMetric => "unknown_metric",
            RefusalReason::AmbiguousMetric => "ambiguous_metric",
            RefusalReason::InvalidMetricName => "invalid_metric_name",
            RefusalReason::UnsupportedDatatype => "unsupported_datatype",
            RefusalReason::InvalidValue => "invalid_value",
            RefusalReason::NullValue => "null_value",
            RefusalReason::TransientMetric => "transient_metric",
            RefusalReason::InvalidTimestamp => "invalid_timestamp",
        }
    }
}

impl fmt::Display for RefusalReason {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        formatter.write_str(self.as_str())
    }
}

/// A refused message or metric: the reason and a precise detail naming
/// the edge node, device and metric concerned.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refusal {
    /// Why.
    pub reason: RefusalReason,
    /// The metric's name, when one metric is refused (not the whole message).
    pub metric: Option<String>,
    /// What exactly is wrong, in words.
    pub detail: String,
}

impl Refusal {
    pub(crate) fn message(reason: RefusalReason, detail: impl Into<String>) -> Self {
        Self {
            reason,
            metric: None,
            detail: detail.into(),
        }
    }

    pub(crate) fn metric(
        reason: RefusalReason,
        metric: impl Into<String>,
        detail: impl Into<String>,
    ) -> Self {
        Self {
            reason,
            metric: Some(metric.into()),
            detail: detail.into(),
        }
    }
}

impl fmt::Display for Refusal {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(formatter, "{}: {}", self.reason, self.detail)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_distinct_snake_case() {
        let names: std::collections::HashSet<_> = RefusalReason::ALL
            .iter()
            .map(|reason| reason.as_str())
            .collect();
        assert_eq!(names.len(), RefusalReason::ALL.len());
        for name in names {
            assert!(
                name.bytes().all(|b| b.is_ascii_lowercase() || b == b'_'),
                "{name}"
            );
        }
    }
}
