//! Rules applied to the sensors they select, grouped so that one InfluxQL
//! query serves every rule of a group, and stepped tick by tick: what the
//! live loop does at each tick and what a backtest does over a range.

use std::collections::{BTreeMap, HashMap};

use serde::Serialize;
use stoker_domain::{EpochMillis, ReadingValue, SensorKey, SensorKind, SiteSlug, States, Unit};
use stoker_metadata::RegistryEntry;
use stoker_rules::{AlertRule, RuleKind, RuleSelector};
use stoker_timeseries::{BucketStats, Columns, Influx, SeriesFilter, SeriesMatch};

use crate::engine::{self, Phase, Plan, Reads, Series, Transition};
use crate::{Error, Result};

/// A sensor a rule watches.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Target {
    /// The site.
    pub site: SiteSlug,
    /// The sensor.
    pub sensor: SensorKey,
    /// Its unit (for messages).
    pub unit: Unit,
    /// When it was created, epoch milliseconds: a no-data rule does not
    /// judge it before it is older than the rule's timeout.
    pub created_ms: i64,
    /// What its readings are: a rule comparing a boolean or a state reads
    /// InfluxDB's numbers through it.
    pub kind: SensorKind,
    /// A state sensor's states.
    pub states: States,
}

impl Target {
    /// How descriptions name its values.
    pub fn reads(&self) -> Reads<'_> {
        Reads {
            unit: self.unit.as_str(),
            kind: self.kind,
            states: &self.states,
        }
    }
}

/// A rule with the sensors it selects.
#[derive(Debug, Clone)]
pub struct Watch {
    /// The rule.
    pub rule: AlertRule,
    /// The sensors it selects, in registry order.
    pub targets: Vec<Target>,
}

/// The sensors of the registry a selector picks.
pub fn targets(selector: &RuleSelector, registry: &[RegistryEntry]) -> Vec<Target> {
    registry
        .iter()
        .filter(|entry| selector.matches(&entry.site, &entry.key, &entry.sensor_type))
        .map(|entry| Target {
            site: entry.site.clone(),
            sensor: entry.key.clone(),
            unit: entry.unit.clone(),
            created_ms: entry.created_at.timestamp_millis(),
            kind: entry.kind,
            states: entry.states.clone(),
        })
        .collect()
}

/// The sensors among `targets` that a rule of `kind` cannot judge, with
/// why: a boolean or state threshold (`==`, `!=`) on a sensor of another
/// kind, or a state the sensor does not declare. Every other rule judges
/// every sensor it selects.
pub fn misfits<'a>(kind: &RuleKind, targets: &'a [Target]) -> Vec<(&'a Target, String)> {
    targets
        .iter()
        .filter_map(|target| {
            engine::on_sensor(kind, target.kind, &target.states)
                .err()
                .map(|reason| (target, reason))
        })
        .collect()
}

/// Every rule with the sensors it selects and can judge ([`misfits`] are
/// left out: the API refuses a rule that misfits a sensor when it is
/// written, and a sensor created later that misfits is not watched); rules
/// that select none are kept (they watch nothing until a matching sensor
/// appears).
pub fn watches(rules: Vec<AlertRule>, registry: &[RegistryEntry]) -> Vec<Watch> {
    rules
        .into_iter()
        .map(|rule| Watch {
            targets: targets(&rule.selector, registry)
                .into_iter()
                .filter(|target| engine::on_sensor(&rule.kind, target.kind, &target.states).is_ok())
                .collect(),
            rule,
        })
        .collect()
}

/// Rules by the plan they share: one query per plan and tick.
pub fn groups(watches: &[Watch], interval_ms: i64) -> BTreeMap<Plan, Vec<&Watch>> {
    let mut groups: BTreeMap<Plan, Vec<&Watch>> = BTreeMap::new();
    for watch in watches {
        if !watch.targets.is_empty() {
            groups
                .entry(Plan::of(&watch.rule.kind, interval_ms))
                .or_default()
                .push(watch);
        }
    }
    groups
}

/// More selectors than this in one group and the query reads every series
/// instead of OR-ing them all (the answer is filtered in memory anyway).
const MAX_FILTER_TERMS: usize = 50;

/// The series a group of rules reads: the OR of their selectors.
pub fn filter(watches: &[&Watch]) -> SeriesFilter {
    if watches.len() > MAX_FILTER_TERMS {
        return SeriesFilter::default();
    }
    SeriesFilter {
        any_of: watches
            .iter()
            .map(|watch| SeriesMatch {
                site: watch.rule.selector.site.clone(),
                sensor: watch.rule.selector.sensor.clone(),
                sensor_type: watch.rule.selector.sensor_type.clone(),
            })
            .collect(),
    }
}

/// The statistics a group of rules reads.
pub fn columns(watches: &[&Watch]) -> Columns {
    watches.iter().fold(Columns::default(), |columns, watch| {
        columns.union(engine::columns(&watch.rule.kind))
    })
}

/// A series' identity in fetched data.
pub type SeriesKey = (String, String);

/// Raw buckets of `[start, end)` per series.
async fn read_buckets(
    influx: &Influx,
    plan: Plan,
    filter: &SeriesFilter,
    columns: Columns,
    start: i64,
    end: i64,
) -> Result<HashMap<SeriesKey, Vec<BucketStats>>> {
    let start = EpochMillis::from_millis(start).map_err(out_of_range)?;
    let end = EpochMillis::from_millis(end).map_err(out_of_range)?;
    let bucket = u64::try_from(plan.bucket_ms).unwrap_or(1);
    let answer = influx
        .bucket_stats(filter, start, end, bucket, columns)
        .await?;
    Ok(answer
        .into_iter()
        .map(|series| ((series.site, series.sensor), series.buckets))
        .collect())
}

/// The buckets a plan needs for the ticks `first_tick..=last_tick`, per
/// series.
pub async fn fetch(
    influx: &Influx,
    plan: Plan,
    filter: &SeriesFilter,
    columns: Columns,
    first_tick: i64,
    last_tick: i64,
) -> Result<HashMap<SeriesKey, Series>> {
    let buckets = read_buckets(
        influx,
        plan,
        filter,
        columns,
        first_tick - plan.lookback_ms,
        last_tick,
    )
    .await?;
    Ok(buckets
        .into_iter()
        .map(|(key, buckets)| (key, Series::new(plan.bucket_ms, buckets)))
        .collect())
}

/// The buckets one group read at earlier ticks, so that the next tick
/// reads only the buckets since (a past bucket does not change once its
/// tick is evaluated; a reading stored later than the grace is seen by
/// backtests, not by the live loop).
#[derive(Debug, Default)]
pub struct Window {
    filter: SeriesFilter,
    columns: Columns,
    /// The end of what was read (exclusive): the last tick.
    until: i64,
    series: HashMap<SeriesKey, Vec<BucketStats>>,
}

/// Like [`fetch`] for one tick, reading only what `window` lacks and
/// keeping the result in it. The buckets are those [`fetch`] would read,
/// so the values are identical.
pub async fn fetch_into(
    influx: &Influx,
    plan: Plan,
    filter: &SeriesFilter,
    columns: Columns,
    tick: i64,
    window: &mut Window,
) -> Result<HashMap<SeriesKey, Series>> {
    let from = tick - plan.lookback_ms;
    let reusable = window.filter == *filter
        && window.columns == columns
        && window.until <= tick
        && window.until > from;
    if reusable {
        let fresh = read_buckets(influx, plan, filter, columns, window.until, tick).await?;
        for (key, buckets) in fresh {
            window.series.entry(key).or_default().extend(buckets);
        }
    } else {
        window.filter = filter.clone();
        window.columns = columns;
        window.series = read_buckets(influx, plan, filter, columns, from, tick).await?;
    }
    window.until = tick;
    window.series.retain(|_, buckets| {
        buckets.retain(|bucket| bucket.start.as_millis() >= from);
        !buckets.is_empty()
    });
    Ok(window
        .series
        .iter()
        .map(|(key, buckets)| (key.clone(), Series::new(plan.bucket_ms, buckets.clone())))
        .collect())
}

fn out_of_range(error: stoker_domain::ParseError) -> Error {
    Error::InvalidRange(error.to_string())
}

/// The ticks of `[start, end]`: multiples of `interval_ms`.
pub fn ticks(start: i64, end: i64, interval_ms: i64) -> impl Iterator<Item = i64> + Clone {
    let first = start.div_euclid(interval_ms) * interval_ms
        + if start.rem_euclid(interval_ms) == 0 {
            0
        } else {
            interval_ms
        };
    (0..)
        .map(move |index| first + index * interval_ms)
        .take_while(move |tick| *tick <= end)
}

/// What one rule did for one sensor at one tick.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Step {
    /// The tick.
    pub tick: i64,
    /// The target's index in its watch.
    pub target: usize,
    /// Fired or cleared, with the value.
    pub transition: Transition,
    /// For a firing, how long the condition had held (a threshold's
    /// pending `for` count; 0 when it fired at its first tick).
    pub held_ms: i64,
}

/// Steps one watch through `ticks` over fetched data, from and into
/// `phases` (one per target, in target order); returns the transitions in
/// tick order.
pub fn replay(
    watch: &Watch,
    data: &HashMap<SeriesKey, Series>,
    bucket_ms: i64,
    phases: &mut [Phase],
    ticks: impl Iterator<Item = i64> + Clone,
) -> Vec<Step> {
    let empty = Series::empty(bucket_ms);
    let mut steps = Vec::new();
    for (index, target) in watch.targets.iter().enumerate() {
        let key = (
            target.site.as_str().to_owned(),
            target.sensor.as_str().to_owned(),
        );
        let series = data.get(&key).unwrap_or(&empty);
        // A boolean or state threshold compares the numbers InfluxDB holds
        // for this sensor; a sensor it cannot judge is not stepped.
        let Ok(kind) = engine::on_sensor(&watch.rule.kind, target.kind, &target.states) else {
            continue;
        };
        // A sensor younger than a no-data rule's timeout has not been
        // silent that long, whatever it sent.
        let judged_from = match watch.rule.kind {
            RuleKind::NoData { timeout } => {
                target.created_ms + i64::try_from(timeout.as_millis()).unwrap_or(i64::MAX)
            }
            _ => i64::MIN,
        };
        for tick in ticks.clone() {
            let value = if tick < judged_from {
                None
            } else {
                engine::measure(&kind, series, tick)
            };
            let before = phases[index];
            let (next, transition) = engine::step(&kind, before, tick, value);
            phases[index] = next;
            if let Some(transition) = transition {
                let held_ms = match before {
                    Phase::Pending { since } => tick - since,
                    _ => 0,
                };
                steps.push(Step {
                    tick,
                    target: index,
                    transition,
                    held_ms,
                });
            }
        }
    }
    steps.sort_by_key(|step| (step.tick, step.target));
    steps
}

/// An alert a backtest would have raised.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct PreviewAlert {
    /// The site.
    pub site: SiteSlug,
    /// The sensor.
    pub sensor: SensorKey,
    /// When it would have fired (a tick).
    pub opened_at: EpochMillis,
    /// The value that fired it (none for no data), in the sensor's type
    /// for a rule comparing a boolean or a state.
    pub value: Option<ReadingValue>,
    /// Why, in one sentence.
    pub message: String,
    /// When it would have cleared; none if still firing at the end.
    pub cleared_at: Option<EpochMillis>,
    /// Why it cleared.
    pub cleared_message: Option<String>,
}

/// At most this many buckets (series × buckets per series) per backtest.
pub const MAX_BACKTEST_BUCKETS: i64 = 5_000_000;

/// The alerts `watch` would have raised over `[start, end]` evaluated every
/// `interval_ms`: the live loop's steps over the same ticks, starting quiet.
pub async fn backtest(
    influx: &Influx,
    watch: &Watch,
    start: EpochMillis,
    end: EpochMillis,
    interval_ms: i64,
) -> Result<Vec<PreviewAlert>> {
    let plan = Plan::of(&watch.rule.kind, interval_ms);
    let (start, end) = (start.as_millis(), end.as_millis());
    let buckets = (end - start + plan.lookback_ms) / plan.bucket_ms.max(1) + 1;
    let series = i64::try_from(watch.targets.len()).unwrap_or(i64::MAX);
    if buckets.saturating_mul(series) > MAX_BACKTEST_BUCKETS {
        return Err(Error::TooLarge(format!(
            "this backtest would read {} buckets of {} ms for {series} sensors; at most {MAX_BACKTEST_BUCKETS} \
             (series × buckets) are read: shorten the range or narrow the rule's selector",
            buckets, plan.bucket_ms
        )));
    }
    let all_ticks = ticks(start, end, interval_ms);
    let Some(first_tick) = all_ticks.clone().next() else {
        return Ok(Vec::new());
    };
    if watch.targets.is_empty() {
        return Ok(Vec::new());
    }
    let last_tick = all_ticks.clone().last().unwrap_or(first_tick);
    let data = fetch(
        influx,
        plan,
        &filter(&[watch]),
        engine::columns(&watch.rule.kind),
        first_tick,
        last_tick,
    )
    .await?;
    let mut phases = vec![Phase::Quiet; watch.targets.len()];
    let steps = replay(watch, &data, plan.bucket_ms, &mut phases, all_ticks);
    Ok(episodes(watch, &steps))
}

/// Pairs fire and clear steps into alerts, per target, oldest first.
fn episodes(watch: &Watch, steps: &[Step]) -> Vec<PreviewAlert> {
    let mut open: HashMap<usize, usize> = HashMap::new();
    let mut alerts: Vec<PreviewAlert> = Vec::new();
    for step in steps {
        let target = &watch.targets[step.target];
        let message = engine::describe(&watch.rule.kind, step.transition, target.reads());
        let at = EpochMillis::from_millis(step.tick).unwrap_or_else(|_| EpochMillis::now());
        match step.transition {
            Transition::Fire(value) => {
                open.insert(step.target, alerts.len());
                alerts.push(PreviewAlert {
                    site: target.site.clone(),
                    sensor: target.sensor.clone(),
                    opened_at: at,
                    value: fired_value(&watch.rule.kind, target, value),
                    message,
                    cleared_at: None,
                    cleared_message: None,
                });
            }
            Transition::Clear(_) => {
                if let Some(index) = open.remove(&step.target) {
                    alerts[index].cleared_at = Some(at);
                    alerts[index].cleared_message = Some(message);
                }
            }
        }
    }
    alerts
}

/// The value stored with a fired alert: none for no data (there was none),
/// in the sensor's type for a rule comparing a boolean or a state.
pub fn fired_value(kind: &RuleKind, target: &Target, value: f64) -> Option<ReadingValue> {
    match kind {
        RuleKind::NoData { .. } => None,
        _ => Some(engine::reported(kind, target.kind, &target.states, value)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ticks_are_the_multiples_inside_the_range() {
        assert_eq!(ticks(0, 30, 10).collect::<Vec<_>>(), vec![0, 10, 20, 30]);
        assert_eq!(ticks(1, 29, 10).collect::<Vec<_>>(), vec![10, 20]);
        assert_eq!(ticks(-5, 5, 10).collect::<Vec<_>>(), vec![0]);
        assert_eq!(ticks(11, 19, 10).count(), 0);
    }
}
