//! How a rule judges one sensor at one evaluation time: pure functions, the
//! same for the live loop and for the backtest, so both raise the same
//! alerts from the same readings.
//!
//! Time is cut into ticks, multiples of the evaluation interval since the
//! epoch. At tick `t` a rule looks at readings in `[t - window, t)`, summed
//! up from per-bucket statistics ([`BucketStats`]) whose bucket size divides
//! the interval and every span of the rule ([`Plan`]). Combining buckets in
//! Rust, rather than asking InfluxDB for one mean per window, is what makes
//! a live tick and a backtest tick see bit-identical values.
//!
//! Per kind, the value a tick measures ([`measure`]) and how it fires and
//! clears ([`step`]):
//! - threshold: `agg` over the window; fires when `op threshold` has held
//!   at every tick for `for` (the first tick that holds starts the count),
//!   clears when `op clear_threshold` no longer holds; a boolean or state
//!   threshold (`==`, `!=`) is first mapped to the number InfluxDB stores
//!   for the sensor ([`on_sensor`]: 0/1, the state's index), and the alert
//!   clears when the comparison no longer holds;
//! - rate of change: (last − first reading in the window) ÷ the window in
//!   minutes; fires on `op rate_per_min`, clears when `op
//!   clear_rate_per_min` no longer holds;
//! - no data: readings in `[t - timeout, t)`; fires at 0, clears at ≥ 1;
//! - anomaly: z = (mean of the window − mean of the baseline before it) ÷
//!   the baseline's standard deviation; fires when |z| > `z`, clears when
//!   |z| ≤ `clear_z`.
//!
//! A tick without a value (no reading in the window; for anomaly also a
//! baseline of fewer than two readings or without spread) changes nothing
//! for a firing alert and restarts a pending `for` count.

use std::time::Duration;

use stoker_domain::ReadingValue;
use stoker_rules::{Agg, RuleKind, Threshold};
use stoker_timeseries::{BucketStats, Columns};

mod explain;
mod typed;

pub use explain::{MAX_EXPLAINED_BUCKETS, explain};
pub use typed::{Reads, compares_typed, on_sensor, reported};

/// Milliseconds of a rule duration (durations are validated to whole
/// milliseconds that fit).
fn millis(duration: Duration) -> i64 {
    i64::try_from(duration.as_millis()).unwrap_or(i64::MAX)
}

/// What a rule needs from InfluxDB at each tick: buckets of `bucket_ms`
/// covering `[t - lookback_ms, t)`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Plan {
    /// The bucket size: divides the interval and every span of the rule.
    pub bucket_ms: i64,
    /// How far back from the tick the rule reads.
    pub lookback_ms: i64,
}

impl Plan {
    /// The plan of a rule evaluated every `interval_ms`.
    pub fn of(kind: &RuleKind, interval_ms: i64) -> Self {
        let spans: Vec<i64> = match *kind {
            RuleKind::Threshold { window, .. } | RuleKind::RateOfChange { window, .. } => {
                vec![millis(window)]
            }
            RuleKind::NoData { timeout } => vec![millis(timeout)],
            RuleKind::Anomaly {
                window, baseline, ..
            } => vec![millis(window), millis(baseline)],
        };
        let bucket_ms = spans
            .iter()
            .fold(interval_ms.max(1), |bucket, &span| gcd(bucket, span));
        Self {
            bucket_ms,
            lookback_ms: spans.iter().sum(),
        }
    }
}

/// A threshold's aggregate (`last` unless set: validated rules always set
/// it).
fn agg_of(agg: Option<Agg>) -> Agg {
    agg.unwrap_or(Agg::Last)
}

/// The bucket statistics a rule reads (besides the count, always read).
pub fn columns(kind: &RuleKind) -> Columns {
    match *kind {
        RuleKind::Threshold { agg, .. } => match agg_of(agg) {
            Agg::Mean => Columns {
                sum: true,
                ..Columns::default()
            },
            Agg::Min => Columns {
                min: true,
                ..Columns::default()
            },
            Agg::Max => Columns {
                max: true,
                ..Columns::default()
            },
            Agg::Last => Columns {
                last: true,
                ..Columns::default()
            },
        },
        RuleKind::RateOfChange { .. } => Columns {
            first: true,
            last: true,
            ..Columns::default()
        },
        RuleKind::NoData { .. } => Columns::default(),
        RuleKind::Anomaly { .. } => Columns {
            sum: true,
            stddev: true,
            ..Columns::default()
        },
    }
}

fn gcd(mut a: i64, mut b: i64) -> i64 {
    while b != 0 {
        (a, b) = (b, a % b);
    }
    a.abs().max(1)
}

/// One series' buckets, indexed by time: what [`measure`] reads.
#[derive(Debug, Clone, Default)]
pub struct Series {
    bucket_ms: i64,
    /// Non-empty buckets, oldest first (as InfluxDB returns them).
    buckets: Vec<BucketStats>,
}

impl Series {
    /// A series from InfluxDB's buckets of `bucket_ms`, oldest first.
    pub fn new(bucket_ms: i64, mut buckets: Vec<BucketStats>) -> Self {
        buckets.sort_by_key(|bucket| bucket.start);
        Self { bucket_ms, buckets }
    }

    /// An empty series (a sensor without readings in the range).
    pub fn empty(bucket_ms: i64) -> Self {
        Self {
            bucket_ms,
            buckets: Vec::new(),
        }
    }

    /// The buckets starting in `[from, to)`, oldest first.
    fn range(&self, from: i64, to: i64) -> &[BucketStats] {
        let begin = self
            .buckets
            .partition_point(|bucket| bucket.start.as_millis() < from);
        let end = self
            .buckets
            .partition_point(|bucket| bucket.start.as_millis() < to);
        &self.buckets[begin..end.max(begin)]
    }

    /// The readings of `[from, to)` summed up; `None` without any.
    pub fn summary(&self, from: i64, to: i64) -> Option<Summary> {
        debug_assert!(self.bucket_ms <= 0 || from % self.bucket_ms == 0);
        Summary::of(self.range(from, to))
    }
}

/// Readings of a span, summed up from its buckets in time order.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Summary {
    /// How many.
    pub count: u64,
    /// Their mean.
    pub mean: f64,
    /// The lowest.
    pub min: f64,
    /// The highest.
    pub max: f64,
    /// The oldest.
    pub first: f64,
    /// The newest.
    pub last: f64,
    /// Sample standard deviation (0 for fewer than two readings).
    pub stddev: f64,
}

impl Summary {
    fn of(buckets: &[BucketStats]) -> Option<Self> {
        let (first, last) = (buckets.first()?, buckets.last()?);
        let mut count = 0_u64;
        let mut sum = 0.0;
        let (mut min, mut max) = (f64::INFINITY, f64::NEG_INFINITY);
        for bucket in buckets {
            count += bucket.count;
            sum += bucket.sum;
            min = min.min(bucket.min);
            max = max.max(bucket.max);
        }
        if count == 0 {
            return None;
        }
        let mean = sum / count as f64;
        // Pooled sample variance: the spread within each bucket plus the
        // spread of the bucket means around the overall mean.
        let stddev = if count < 2 {
            0.0
        } else {
            let mut squares = 0.0;
            for bucket in buckets {
                let n = bucket.count as f64;
                let bucket_mean = bucket.sum / n;
                squares += (n - 1.0) * bucket.stddev * bucket.stddev
                    + n * (bucket_mean - mean) * (bucket_mean - mean);
            }
            (squares / (count as f64 - 1.0)).max(0.0).sqrt()
        };
        Some(Self {
            count,
            mean,
            min,
            max,
            first: first.first,
            last: last.last,
            stddev,
        })
    }

    fn aggregate(&self, agg: Agg) -> f64 {
        match agg {
            Agg::Mean => self.mean,
            Agg::Min => self.min,
            Agg::Max => self.max,
            Agg::Last => self.last,
        }
    }
}

/// The value a rule measures for one sensor at tick `t` (see the module
/// docs); `None` when there is nothing to judge.
pub fn measure(kind: &RuleKind, series: &Series, t: i64) -> Option<f64> {
    match *kind {
        RuleKind::Threshold { agg, window, .. } => series
            .summary(t - millis(window), t)
            .map(|summary| summary.aggregate(agg_of(agg))),
        RuleKind::RateOfChange { window, .. } => {
            let summary = series.summary(t - millis(window), t)?;
            if summary.count < 2 {
                return None;
            }
            let minutes = millis(window) as f64 / 60_000.0;
            Some((summary.last - summary.first) / minutes)
        }
        RuleKind::NoData { timeout } => Some(
            series
                .summary(t - millis(timeout), t)
                .map_or(0.0, |summary| summary.count as f64),
        ),
        RuleKind::Anomaly {
            window, baseline, ..
        } => {
            let recent_from = t - millis(window);
            let recent = series.summary(recent_from, t)?;
            let before = series.summary(recent_from - millis(baseline), recent_from)?;
            if before.count < 2 || before.stddev <= 0.0 || !before.stddev.is_finite() {
                return None;
            }
            Some((recent.mean - before.mean) / before.stddev)
        }
    }
}

/// Whether `value` fires the rule (for a threshold: the condition whose
/// hold starts the `for` count). A boolean or state threshold must have
/// been mapped through [`on_sensor`]: unmapped, it never fires.
pub fn fires(kind: &RuleKind, value: f64) -> bool {
    match *kind {
        RuleKind::Threshold {
            op, ref threshold, ..
        } => threshold
            .as_number()
            .is_some_and(|limit| op.holds(value, limit)),
        RuleKind::RateOfChange {
            op, rate_per_min, ..
        } => op.holds(value, rate_per_min),
        RuleKind::NoData { .. } => value < 1.0,
        RuleKind::Anomaly { z, .. } => value.abs() > z,
    }
}

/// Whether `value` clears a firing rule: past the clear value, on the
/// other side of the hysteresis band (`==`, `!=`: the comparison no longer
/// holds).
pub fn clears(kind: &RuleKind, value: f64) -> bool {
    match *kind {
        RuleKind::Threshold {
            op,
            ref threshold,
            clear_threshold,
            ..
        } => match clear_threshold.or(threshold.as_number()) {
            Some(limit) => !op.holds(value, limit),
            None => true,
        },
        RuleKind::RateOfChange {
            op,
            clear_rate_per_min,
            ..
        } => !op.holds(value, clear_rate_per_min),
        RuleKind::NoData { .. } => value >= 1.0,
        RuleKind::Anomaly { clear_z, .. } => value.abs() <= clear_z,
    }
}

/// Where a rule stands for one sensor.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub enum Phase {
    /// Not firing.
    #[default]
    Quiet,
    /// A threshold's condition holds since tick `since`, not yet for `for`.
    Pending {
        /// The first tick at which it held.
        since: i64,
    },
    /// Firing since tick `since`.
    Firing {
        /// The tick at which it fired.
        since: i64,
    },
}

/// A change a tick brings.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Transition {
    /// The rule fires with this value.
    Fire(f64),
    /// The rule clears with this value.
    Clear(f64),
}

/// The next phase after tick `t` measured `value`, and the transition if
/// the alert fires or clears.
pub fn step(
    kind: &RuleKind,
    phase: Phase,
    t: i64,
    value: Option<f64>,
) -> (Phase, Option<Transition>) {
    let hold_ms = match *kind {
        RuleKind::Threshold { for_, .. } => millis(for_),
        _ => 0,
    };
    match (phase, value) {
        (Phase::Firing { .. }, None) => (phase, None),
        (Phase::Firing { .. }, Some(value)) if clears(kind, value) => {
            (Phase::Quiet, Some(Transition::Clear(value)))
        }
        (Phase::Firing { .. }, Some(_)) => (phase, None),
        (_, None) => (Phase::Quiet, None),
        (_, Some(value)) if !fires(kind, value) => (Phase::Quiet, None),
        (phase, Some(value)) => {
            let since = match phase {
                Phase::Pending { since } => since,
                _ => t,
            };
            if t - since >= hold_ms {
                (Phase::Firing { since: t }, Some(Transition::Fire(value)))
            } else {
                (Phase::Pending { since }, None)
            }
        }
    }
}

/// The limit a firing value was compared with (stored with the alert), in
/// the rule's own terms: a boolean or state threshold as itself.
pub fn limit(kind: &RuleKind) -> Option<ReadingValue> {
    match kind {
        RuleKind::Threshold { threshold, .. } => Some(match threshold {
            Threshold::Number(number) => ReadingValue::Number(*number),
            Threshold::Boolean(flag) => ReadingValue::Boolean(*flag),
            Threshold::State(name) => ReadingValue::State(name.as_str().to_owned()),
        }),
        RuleKind::RateOfChange { rate_per_min, .. } => Some(ReadingValue::Number(*rate_per_min)),
        RuleKind::NoData { .. } => None,
        RuleKind::Anomaly { z, .. } => Some(ReadingValue::Number(*z)),
    }
}

/// A measured value for people: at most three decimals, no trailing
/// zeros (`12.758666…` → `12.759`, `13.0` → `13`).
fn shown(value: f64) -> String {
    let text = format!("{value:.3}");
    let text = text.trim_end_matches('0').trim_end_matches('.');
    if text == "-0" {
        "0".into()
    } else {
        text.to_owned()
    }
}

/// One sentence saying why an alert fired or cleared, e.g. `mean over 1m
/// = 13.2 bar, > 12.5 for 30s`, or `last over 30s = lockout, == "lockout"`
/// for a rule comparing a state (`kind` is the rule as written, not
/// mapped through [`on_sensor`]).
pub fn describe(kind: &RuleKind, transition: Transition, reads: Reads<'_>) -> String {
    let format_duration = |duration: Duration| humantime::format_duration(duration).to_string();
    let unit = if reads.unit.is_empty() {
        String::new()
    } else {
        format!(" {}", reads.unit)
    };
    if let RuleKind::Threshold {
        agg,
        op,
        threshold,
        window,
        for_,
        ..
    } = kind
        && compares_typed(kind)
    {
        let (Transition::Fire(value) | Transition::Clear(value)) = transition;
        let seen = match reported(kind, reads.kind, reads.states, value) {
            ReadingValue::Boolean(flag) => flag.to_string(),
            ReadingValue::State(name) => name,
            ReadingValue::Number(number) => shown(number),
        };
        let observed = format!(
            "{} over {} = {seen}",
            agg_of(*agg).as_str(),
            format_duration(*window)
        );
        return match transition {
            Transition::Fire(_) if for_.is_zero() => {
                format!("{observed}, {} {threshold}", op.as_str())
            }
            Transition::Fire(_) => format!(
                "{observed}, {} {threshold} for {}",
                op.as_str(),
                format_duration(*for_)
            ),
            Transition::Clear(_) => format!("{observed}, no longer {} {threshold}", op.as_str()),
        };
    }
    match (kind.clone(), transition) {
        (
            RuleKind::Threshold {
                agg,
                op,
                threshold,
                window,
                for_,
                ..
            },
            Transition::Fire(value),
        ) => {
            let held = if for_.is_zero() {
                String::new()
            } else {
                format!(" for {}", format_duration(for_))
            };
            format!(
                "{} over {} = {}{unit}, {} {threshold}{held}",
                agg_of(agg).as_str(),
                format_duration(window),
                shown(value),
                op.as_str()
            )
        }
        (
            RuleKind::Threshold {
                agg,
                op,
                threshold,
                clear_threshold,
                window,
                ..
            },
            Transition::Clear(value),
        ) => format!(
            "{} over {} = {}{unit}, no longer {} {}",
            agg_of(agg).as_str(),
            format_duration(window),
            shown(value),
            op.as_str(),
            clear_threshold.map_or_else(|| threshold.to_string(), |clear| clear.to_string())
        ),
        (
            RuleKind::RateOfChange {
                op,
                rate_per_min,
                window,
                ..
            },
            Transition::Fire(value),
        ) => format!(
            "change over {} = {}{unit}/min, {} {rate_per_min}",
            format_duration(window),
            shown(value),
            op.as_str()
        ),
        (
            RuleKind::RateOfChange {
                op,
                clear_rate_per_min,
                window,
                ..
            },
            Transition::Clear(value),
        ) => format!(
            "change over {} = {}{unit}/min, no longer {} {clear_rate_per_min}",
            format_duration(window),
            shown(value),
            op.as_str()
        ),
        (RuleKind::NoData { timeout }, Transition::Fire(_)) => {
            format!("no reading for {}", format_duration(timeout))
        }
        (RuleKind::NoData { .. }, Transition::Clear(value)) => {
            format!("readings again ({} in the timeout)", shown(value))
        }
        (
            RuleKind::Anomaly {
                z,
                window,
                baseline,
                ..
            },
            Transition::Fire(value),
        ) => format!(
            "mean over {} is {value:.2} standard deviations from the {} before it (limit {z})",
            format_duration(window),
            format_duration(baseline)
        ),
        (RuleKind::Anomaly { clear_z, .. }, Transition::Clear(value)) => {
            format!("back within {clear_z} standard deviations ({value:.2})")
        }
    }
}

#[cfg(test)]
mod tests {
    use stoker_domain::{EpochMillis, SensorKind, States};
    use stoker_rules::Op;

    use super::*;

    const SECOND: i64 = 1000;

    /// A series of one reading per second, value given by `f(second)`.
    fn series_per_second(
        bucket_ms: i64,
        seconds: std::ops::Range<i64>,
        f: impl Fn(i64) -> Option<f64>,
    ) -> Series {
        let mut buckets: Vec<BucketStats> = Vec::new();
        for second in seconds {
            let Some(value) = f(second) else { continue };
            let start = (second * SECOND).div_euclid(bucket_ms) * bucket_ms;
            match buckets.last_mut() {
                Some(bucket) if bucket.start.as_millis() == start => {
                    // Welford-free: recompute stddev from sums is not needed
                    // for these tests except where asserted.
                    let n = bucket.count as f64;
                    let mean = bucket.sum / n;
                    let new_mean = (bucket.sum + value) / (n + 1.0);
                    let m2 = bucket.stddev * bucket.stddev * (n - 1.0)
                        + (value - mean) * (value - new_mean);
                    bucket.count += 1;
                    bucket.sum += value;
                    bucket.min = bucket.min.min(value);
                    bucket.max = bucket.max.max(value);
                    bucket.last = value;
                    bucket.stddev = (m2 / n).sqrt();
                }
                _ => buckets.push(BucketStats {
                    start: EpochMillis::from_millis(start).unwrap(),
                    count: 1,
                    sum: value,
                    min: value,
                    max: value,
                    first: value,
                    last: value,
                    stddev: 0.0,
                }),
            }
        }
        Series::new(bucket_ms, buckets)
    }

    fn threshold(agg: Agg, for_secs: u64) -> RuleKind {
        RuleKind::Threshold {
            agg: Some(agg),
            op: Op::Gt,
            threshold: Threshold::Number(12.5),
            clear_threshold: Some(12.0),
            window: Duration::from_secs(30),
            for_: Duration::from_secs(for_secs),
        }
    }

    #[test]
    fn plans_use_the_largest_bucket_dividing_every_span() {
        assert_eq!(
            Plan::of(&threshold(Agg::Mean, 0), 10 * SECOND),
            Plan {
                bucket_ms: 10 * SECOND,
                lookback_ms: 30 * SECOND
            }
        );
        let anomaly = RuleKind::Anomaly {
            window: Duration::from_secs(15),
            baseline: Duration::from_secs(3600),
            z: 3.0,
            clear_z: 2.0,
        };
        assert_eq!(
            Plan::of(&anomaly, 10 * SECOND),
            Plan {
                bucket_ms: 5 * SECOND,
                lookback_ms: 3615 * SECOND
            }
        );
    }

    #[test]
    fn summaries_pool_buckets_exactly() {
        let values = |second: i64| Some((second % 7) as f64 * 1.5);
        let series = series_per_second(10 * SECOND, 0..60, values);
        let summary = series.summary(0, 60 * SECOND).unwrap();
        let all: Vec<f64> = (0..60).filter_map(values).collect();
        let mean = all.iter().sum::<f64>() / 60.0;
        let variance = all.iter().map(|v| (v - mean) * (v - mean)).sum::<f64>() / 59.0;
        assert_eq!(summary.count, 60);
        assert!((summary.mean - mean).abs() < 1e-12);
        assert!(
            (summary.stddev - variance.sqrt()).abs() < 1e-9,
            "{} vs {}",
            summary.stddev,
            variance.sqrt()
        );
        assert_eq!((summary.first, summary.last), (0.0, (59 % 7) as f64 * 1.5));
        assert_eq!(series.summary(60 * SECOND, 70 * SECOND), None);
    }

    /// Runs a rule over ticks every 10 s and returns (tick, transition).
    fn run(
        kind: &RuleKind,
        series: &Series,
        ticks: std::ops::Range<i64>,
    ) -> Vec<(i64, Transition)> {
        let mut phase = Phase::Quiet;
        let mut out = Vec::new();
        for tick in ticks.step_by(10) {
            let t = tick * SECOND;
            let (next, transition) = step(kind, phase, t, measure(kind, series, t));
            phase = next;
            if let Some(transition) = transition {
                out.push((tick, transition));
            }
        }
        out
    }

    #[test]
    fn a_threshold_fires_after_holding_for_its_duration_and_clears_past_the_clear_value() {
        // 10 below, then 14 from second 100 to 200, then 11.
        let series = series_per_second(10 * SECOND, 0..400, |s| {
            Some(if (100..200).contains(&s) { 14.0 } else { 10.0 })
        });
        let transitions = run(&threshold(Agg::Min, 20), &series, 0..400);
        // min over 30 s > 12.5 first at tick 130 ([100, 130)); held 20 s → 150.
        // min ≤ 12 again at tick 210 ([180, 210) has a 10).
        assert_eq!(
            transitions,
            vec![
                (150, Transition::Fire(14.0)),
                (210, Transition::Clear(10.0))
            ]
        );
    }

    #[test]
    fn a_value_oscillating_inside_the_hysteresis_band_fires_once() {
        // 13 (above 12.5) and 12.2 (between clear 12 and trigger) alternating
        // every 10 s for 10 minutes: one alert, no flapping.
        let series = series_per_second(10 * SECOND, 0..700, |s| {
            Some(if s < 60 {
                10.0
            } else if (s / 10) % 2 == 0 {
                13.0
            } else {
                12.2
            })
        });
        let rule = RuleKind::Threshold {
            agg: Some(Agg::Last),
            op: Op::Gt,
            threshold: Threshold::Number(12.5),
            clear_threshold: Some(12.0),
            window: Duration::from_secs(10),
            for_: Duration::ZERO,
        };
        let transitions = run(&rule, &series, 0..700);
        assert_eq!(transitions.len(), 1, "{transitions:?}");
        assert!(matches!(transitions[0].1, Transition::Fire(_)));
    }

    #[test]
    fn a_pending_threshold_restarts_when_the_condition_breaks() {
        // Above for 20 s, below for 10 s, above again: for = 30 s never
        // completes in the first stretch.
        let series = series_per_second(10 * SECOND, 0..200, |s| {
            Some(match s {
                0..60 => 10.0,
                60..80 => 14.0,
                80..90 => 10.0,
                _ => 14.0,
            })
        });
        let rule = RuleKind::Threshold {
            agg: Some(Agg::Last),
            op: Op::Gt,
            threshold: Threshold::Number(12.5),
            clear_threshold: Some(12.0),
            window: Duration::from_secs(10),
            for_: Duration::from_secs(30),
        };
        // Last > 12.5 at ticks 70, 80; 90 breaks; 100, 110, 120, 130 → fires at 130.
        assert_eq!(
            run(&rule, &series, 0..200),
            vec![(130, Transition::Fire(14.0))]
        );
    }

    #[test]
    fn rate_of_change_is_the_change_across_the_window_per_minute() {
        // Flat at 50, then rising 0.1 per second (6 per minute) from 100 s
        // to 250 s, then flat.
        let series = series_per_second(10 * SECOND, 0..500, |s| {
            Some(50.0 + 0.1 * (s.clamp(100, 250) - 100) as f64)
        });
        let rule = RuleKind::RateOfChange {
            op: Op::Gt,
            rate_per_min: 4.0,
            clear_rate_per_min: 1.0,
            window: Duration::from_secs(60),
        };
        let transitions = run(&rule, &series, 0..500);
        assert_eq!(transitions.len(), 2, "{transitions:?}");
        let (fired_at, Transition::Fire(rate)) = transitions[0] else {
            panic!()
        };
        // [t-60, t) first rises by > 4 per minute once ≥ 41 s of it rise.
        assert_eq!(fired_at, 150);
        assert!((rate - 4.9).abs() < 1e-9, "{rate}");
        assert!(matches!(transitions[1], (300, Transition::Clear(_))));
    }

    #[test]
    fn no_data_fires_on_silence_and_clears_with_the_next_reading() {
        let series = series_per_second(10 * SECOND, 0..600, |s| {
            (!(200..400).contains(&s)).then_some(1.0)
        });
        let rule = RuleKind::NoData {
            timeout: Duration::from_secs(60),
        };
        // Ticks from 60 s: before that the window reaches back before the
        // sensor's first reading.
        assert_eq!(
            run(&rule, &series, 60..600),
            vec![(260, Transition::Fire(0.0)), (410, Transition::Clear(10.0))]
        );
        // A sensor that never reported fires at the first tick.
        assert_eq!(
            run(&rule, &Series::empty(10 * SECOND), 0..20),
            vec![(0, Transition::Fire(0.0))]
        );
    }

    #[test]
    fn an_anomaly_fires_on_a_spike_against_its_baseline() {
        // Noise of ±1 around 100, then a 30 s excursion to 110.
        let series = series_per_second(10 * SECOND, 0..1200, |s| {
            Some(if (900..930).contains(&s) {
                110.0
            } else {
                100.0 + if s % 2 == 0 { 1.0 } else { -1.0 }
            })
        });
        let rule = RuleKind::Anomaly {
            window: Duration::from_secs(30),
            baseline: Duration::from_secs(600),
            z: 3.0,
            clear_z: 1.5,
        };
        let transitions = run(&rule, &series, 0..1200);
        assert_eq!(transitions.len(), 2, "{transitions:?}");
        assert!(matches!(transitions[0], (910, Transition::Fire(z)) if z > 3.0));
        assert!(matches!(transitions[1].1, Transition::Clear(z) if z.abs() <= 1.5));
    }

    #[test]
    fn values_are_shown_with_at_most_three_decimals() {
        assert_eq!(shown(12.758_666_666_666_667), "12.759");
        assert_eq!(shown(1.539_999_999_999_999_1), "1.54");
        assert_eq!(shown(13.0), "13");
        assert_eq!(shown(-0.0001), "0");
        assert_eq!(shown(-2.5), "-2.5");
    }

    #[test]
    fn descriptions_say_what_was_seen() {
        assert_eq!(
            describe(
                &threshold(Agg::Mean, 30),
                Transition::Fire(13.2),
                Reads::numbers("bar")
            ),
            "mean over 30s = 13.2 bar, > 12.5 for 30s"
        );
        assert_eq!(
            describe(
                &threshold(Agg::Mean, 0),
                Transition::Clear(11.9),
                Reads::numbers("bar")
            ),
            "mean over 30s = 11.9 bar, no longer > 12"
        );
        let states = sequencer_states();
        let reads = Reads {
            unit: "",
            kind: SensorKind::State,
            states: &states,
        };
        let rule = equality(Op::Eq, lockout(), 10);
        assert_eq!(
            describe(&rule, Transition::Fire(4.0), reads),
            "last over 10s = lockout, == \"lockout\" for 10s"
        );
        assert_eq!(
            describe(&rule, Transition::Clear(0.0), reads),
            "last over 10s = off, no longer == \"lockout\""
        );
        let reads = Reads {
            unit: "",
            kind: SensorKind::Boolean,
            states: &States::default(),
        };
        assert_eq!(
            describe(
                &equality(Op::Ne, Threshold::Boolean(true), 0),
                Transition::Fire(0.0),
                reads
            ),
            "last over 10s = false, != true"
        );
    }

    fn sequencer_states() -> States {
        States::parse(["off", "purge", "ignition", "firing", "lockout"]).unwrap()
    }

    fn lockout() -> Threshold {
        Threshold::State(stoker_domain::StateName::parse("lockout").unwrap())
    }

    fn equality(op: Op, threshold: Threshold, for_secs: u64) -> RuleKind {
        RuleKind::Threshold {
            agg: Some(Agg::Last),
            op,
            threshold,
            clear_threshold: None,
            window: Duration::from_secs(10),
            for_: Duration::from_secs(for_secs),
        }
    }

    #[test]
    fn a_state_rule_fires_while_the_state_holds_and_clears_when_it_leaves() {
        // firing (3), lockout (4) from second 100 to 160, then off (0).
        let series = series_per_second(10 * SECOND, 0..300, |s| {
            Some(match s {
                0..100 => 3.0,
                100..160 => 4.0,
                _ => 0.0,
            })
        });
        let written = equality(Op::Eq, lockout(), 20);
        let states = sequencer_states();
        let judged = on_sensor(&written, SensorKind::State, &states).unwrap();
        assert!(matches!(
            judged,
            RuleKind::Threshold {
                threshold: Threshold::Number(4.0),
                ..
            }
        ));
        // last == lockout at ticks 110..=160; held 20 s → fires at 130;
        // the tick at 170 sees off.
        assert_eq!(
            run(&judged, &series, 0..300),
            vec![(130, Transition::Fire(4.0)), (170, Transition::Clear(0.0))]
        );
        // Unmapped, it never fires; a sensor without the state, or of
        // another kind, cannot be judged.
        assert!(run(&written, &series, 0..300).is_empty());
        let fewer = States::parse(["off", "firing"]).unwrap();
        assert!(on_sensor(&written, SensorKind::State, &fewer).is_err());
        assert!(on_sensor(&written, SensorKind::Numeric, &States::default()).is_err());
        assert_eq!(
            reported(&written, SensorKind::State, &states, 4.0),
            ReadingValue::State("lockout".into())
        );
        assert_eq!(limit(&written), Some(ReadingValue::State("lockout".into())));
    }

    #[test]
    fn a_boolean_rule_compares_true_as_one() {
        // on (1) from 50 to 120, off (0) otherwise.
        let series = series_per_second(10 * SECOND, 0..200, |s| {
            Some(if (50..120).contains(&s) { 1.0 } else { 0.0 })
        });
        let none = States::default();
        let on = on_sensor(
            &equality(Op::Eq, Threshold::Boolean(true), 0),
            SensorKind::Boolean,
            &none,
        )
        .unwrap();
        assert_eq!(
            run(&on, &series, 0..200),
            vec![(60, Transition::Fire(1.0)), (130, Transition::Clear(0.0))]
        );
        // != true: the other way round, from the first tick.
        let off = on_sensor(
            &equality(Op::Ne, Threshold::Boolean(true), 0),
            SensorKind::Boolean,
            &none,
        )
        .unwrap();
        assert_eq!(
            run(&off, &series, 10..200),
            vec![
                (10, Transition::Fire(0.0)),
                (60, Transition::Clear(1.0)),
                (130, Transition::Fire(0.0))
            ]
        );
        assert_eq!(
            reported(&on, SensorKind::Boolean, &none, 1.0),
            ReadingValue::Boolean(true)
        );
    }
}
