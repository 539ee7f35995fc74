//! Why an alert fired, as data: the `explanation` of its `fired` (or
//! `reactivated`) event. The same buckets [`super::measure`] combined, so
//! an operator (or an engineer tuning the rule) sees what the decision was
//! computed from.

use std::time::Duration;

use serde_json::{Map, Value, json};
use stoker_domain::{EpochMillis, ReadingValue};
use stoker_rules::{AlertRule, RuleKind};
use stoker_timeseries::BucketStats;

use super::{Series, agg_of, columns, limit, millis};

/// At most this many buckets are listed (the newest); `buckets_total`
/// says how many the span held.
pub const MAX_EXPLAINED_BUCKETS: usize = 360;

/// What a firing of `rule` at `tick` was computed from: `series` (the
/// sensor's buckets), the value it measured (`value`, in the sensor's type
/// for a rule comparing a boolean or state) and how long the condition had
/// held before it fired (`held_ms`, a threshold's `for`).
pub fn explain(
    rule: &AlertRule,
    series: &Series,
    tick: i64,
    value: Option<&ReadingValue>,
    held_ms: i64,
) -> Value {
    let kind = &rule.kind;
    let format = |ms: i64| {
        humantime::format_duration(Duration::from_millis(u64::try_from(ms).unwrap_or(0)))
            .to_string()
    };
    let mut explanation = Map::new();
    explanation.insert("rule_id".into(), json!(rule.id));
    explanation.insert("rule_version".into(), json!(rule.version));
    explanation.insert("rule_name".into(), json!(rule.name));
    explanation.insert("kind".into(), json!(kind.name()));
    explanation.insert("evaluated_at".into(), json!(at(tick)));
    let (aggregate, op, clear, span) = match *kind {
        RuleKind::Threshold {
            agg,
            op,
            clear_threshold,
            window,
            for_,
            ..
        } => {
            explanation.insert("for".into(), json!(format(millis(for_))));
            (
                agg_of(agg).as_str(),
                Some(op.as_str()),
                clear_threshold.map(|clear| json!(clear)),
                millis(window),
            )
        }
        RuleKind::RateOfChange {
            op,
            clear_rate_per_min,
            window,
            ..
        } => (
            "rate_per_min",
            Some(op.as_str()),
            Some(json!(clear_rate_per_min)),
            millis(window),
        ),
        RuleKind::NoData { timeout } => ("count", Some("<"), Some(json!(1)), millis(timeout)),
        RuleKind::Anomaly {
            window,
            baseline,
            clear_z,
            ..
        } => {
            let from = tick - millis(window);
            let before = series.summary(from - millis(baseline), from);
            explanation.insert(
                "baseline".into(),
                json!({
                    "from": at(from - millis(baseline)),
                    "to": at(from),
                    "count": before.map_or(0, |summary| summary.count),
                    "mean": before.map(|summary| summary.mean),
                    "stddev": before.map(|summary| summary.stddev),
                }),
            );
            ("z", Some(">|z|"), Some(json!(clear_z)), millis(window))
        }
    };
    explanation.insert("aggregate".into(), json!(aggregate));
    explanation.insert("value".into(), json!(value));
    explanation.insert("op".into(), json!(op));
    explanation.insert("threshold".into(), json!(limit(kind)));
    // A boolean or state comparison clears when it no longer holds.
    explanation.insert("clear".into(), clear.unwrap_or(Value::Null));
    explanation.insert("window".into(), json!(format(span)));
    explanation.insert("held_for".into(), json!(format(held_ms)));
    explanation.insert("held_for_ms".into(), json!(held_ms));
    let buckets = series.range(tick - span, tick);
    explanation.insert("bucket_ms".into(), json!(series.bucket_ms));
    explanation.insert("buckets_total".into(), json!(buckets.len()));
    let wanted = columns(kind);
    let shown = &buckets[buckets.len().saturating_sub(MAX_EXPLAINED_BUCKETS)..];
    explanation.insert(
        "buckets".into(),
        Value::Array(
            shown
                .iter()
                .map(|bucket| bucket_json(bucket, wanted))
                .collect(),
        ),
    );
    Value::Object(explanation)
}

fn at(millis: i64) -> String {
    EpochMillis::from_millis(millis).map_or_else(|_| millis.to_string(), |at| at.to_string())
}

/// A bucket's start, count and the statistics the rule reads (as InfluxDB
/// holds them: a boolean 0/1, a state its index).
fn bucket_json(bucket: &BucketStats, wanted: stoker_timeseries::Columns) -> Value {
    let mut json = Map::new();
    json.insert("start".into(), json!(bucket.start.to_string()));
    json.insert("count".into(), json!(bucket.count));
    if wanted.sum && bucket.count > 0 {
        json.insert("mean".into(), json!(bucket.sum / bucket.count as f64));
    }
    for (name, read, statistic) in [
        ("min", wanted.min, bucket.min),
        ("max", wanted.max, bucket.max),
        ("first", wanted.first, bucket.first),
        ("last", wanted.last, bucket.last),
        ("stddev", wanted.stddev, bucket.stddev),
    ] {
        if read {
            json.insert(name.into(), json!(statistic));
        }
    }
    Value::Object(json)
}
