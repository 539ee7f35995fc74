//! Measured alarm performance (ISA-18.2 / IEC 62682, DESIGN.md "Alarm
//! management"): what a list of alarm activations says about a range.
//!
//! One definition serves two sources. [`compute`] takes activations as a
//! list: the backtest's simulated alerts, or any test's. [`measure`] reads
//! the same figures from the alerts' trails in `analytics.alert_events`
//! (an alert holds one activation per `fired` or `reactivated` event: a
//! condition that returns while its alert is not closed reactivates it) in
//! one query: each rule-and-sensor pair's activation times, waits for
//! acknowledgement, stale and suppressed counts gathered into a row, from
//! which the sliding-window figures (peak, floods, chattering), the
//! percentiles and the bad actors are computed by the same code as
//! [`compute`]'s. A test holds both to the same answers.
//!
//! The figures, over the activations that began in `[start, end)`:
//! - `alarms`: how many; `alarms_per_hour`: that over the range's hours.
//! - `peak_10min`: the most activations at one site within 10 minutes
//!   (any 10 minutes: a sliding window, both ends included).
//! - `flood_share`: the share of the range during which some site was in
//!   flood, that is, had more than 10 activations within the 10 minutes
//!   up to that instant (ISA-18.2's figure, [`FLOOD_ALARMS`] in
//!   [`FLOOD_WINDOW`]).
//! - `chattering`: how many rule-and-sensor pairs chattered, i.e. had 3
//!   or more activations within one minute (a pair counts once however
//!   often it chattered).
//! - `stale`: activations that stayed active more than 24 hours, as known
//!   at the range's end (cleared later, or not at all, counts).
//! - `top`: the ten rule-and-sensor pairs with the most activations
//!   (most first; ties by site, sensor, rule id), each with its count and
//!   its rule's name at its newest activation.
//! - `time_to_ack_s`: `median` and `p90` of the seconds from activation to
//!   acknowledgement over the acknowledged ones (continuous percentiles,
//!   as Postgres' `percentile_cont`), null when none was.
//! - `suppressed`: suppressed activations (by design, out of service,
//!   maintenance), counted apart and left out of every other figure.
//!
//! `gateway_offline` alarms have no rule and sensor: they count in every
//! figure but `chattering` and `top`.

use std::collections::HashMap;
use std::time::Duration;

use chrono::{DateTime, Utc};
use serde::Serialize;
use stoker_domain::{EpochMillis, SiteZone};
use stoker_rules::AlertRule;
use uuid::Uuid;

use crate::evaluate::PreviewAlert;

mod measure;

pub use measure::{KpiScope, measure};

/// A flood is more than this many activations at one site…
pub const FLOOD_ALARMS: usize = 10;
/// …within this long.
pub const FLOOD_WINDOW: Duration = Duration::from_secs(600);
/// A pair chatters with this many activations…
pub const CHATTER_ALARMS: usize = 3;
/// …within this long.
pub const CHATTER_WINDOW: Duration = Duration::from_secs(60);
/// An activation active longer than this is stale.
pub const STALE_AFTER: Duration = Duration::from_secs(24 * 3600);
/// How many bad actors `top` lists.
pub const TOP: usize = 10;

/// One activation of an alarm: the moment its condition became active.
#[derive(Debug, Clone, PartialEq)]
pub struct Activation {
    /// The site.
    pub site: String,
    /// The rule; none for a `gateway_offline` alarm.
    pub rule_id: Option<Uuid>,
    /// The rule's name then.
    pub rule_name: Option<String>,
    /// The sensor; none for a `gateway_offline` alarm.
    pub sensor: Option<String>,
    /// When it became active.
    pub activated_at: DateTime<Utc>,
    /// When it returned to normal (or was closed by hand); none: still
    /// active.
    pub cleared_at: Option<DateTime<Utc>>,
    /// When an operator acknowledged it.
    pub acknowledged_at: Option<DateTime<Utc>>,
    /// Recorded but not announced (suppressed by design, out of service,
    /// in a maintenance window).
    pub suppressed: bool,
}

impl Activation {
    /// A backtest's simulated alert as an activation of `rule_id`'s rule
    /// `rule_name`: never acknowledged, never suppressed.
    pub fn simulated(rule_id: Uuid, rule_name: &str, alert: &PreviewAlert) -> Self {
        Self {
            site: alert.site.as_str().to_owned(),
            rule_id: Some(rule_id),
            rule_name: Some(rule_name.to_owned()),
            sensor: Some(alert.sensor.as_str().to_owned()),
            activated_at: alert.opened_at.to_datetime(),
            cleared_at: alert.cleared_at.map(EpochMillis::to_datetime),
            acknowledged_at: None,
            suppressed: false,
        }
    }
}

/// The range measured: activations that began in `[start, end)`; `end`
/// is also the moment "still active" is judged at (the caller takes a
/// future end as now).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct KpiRange {
    /// The first instant.
    pub start: DateTime<Utc>,
    /// The instant after the last.
    pub end: DateTime<Utc>,
}

impl KpiRange {
    fn micros(self) -> (i64, i64) {
        (self.start.timestamp_micros(), self.end.timestamp_micros())
    }

    fn contains(self, at: DateTime<Utc>) -> bool {
        self.start <= at && at < self.end
    }
}

/// A rule-and-sensor pair among the most frequent.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct BadActor {
    /// The rule.
    pub rule_id: Uuid,
    /// Its name at the pair's newest activation in the range.
    pub rule_name: String,
    /// The site.
    pub site: String,
    /// The sensor.
    pub sensor: String,
    /// Its activations in the range.
    pub count: u64,
}

/// How long operators took to acknowledge.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct AckTimes {
    /// Activations acknowledged.
    pub acknowledged: u64,
    /// Median seconds from activation to acknowledgement; none when none.
    pub median: Option<f64>,
    /// 90th percentile of the same.
    pub p90: Option<f64>,
}

/// The alarm KPIs of a range (see the module's documentation).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Kpis {
    /// The range's first instant.
    pub start: DateTime<Utc>,
    /// The instant after its last.
    pub end: DateTime<Utc>,
    /// Activations (not suppressed).
    pub alarms: u64,
    /// `alarms` per hour of the range.
    pub alarms_per_hour: f64,
    /// Most activations at one site within 10 minutes.
    pub peak_10min: u64,
    /// Share of the range (0 to 1) some site was in flood.
    pub flood_share: f64,
    /// Rule-and-sensor pairs that chattered.
    pub chattering: u64,
    /// Activations active more than 24 h.
    pub stale: u64,
    /// The ten most frequent rule-and-sensor pairs.
    pub top: Vec<BadActor>,
    /// Time to acknowledge.
    pub time_to_ack_s: AckTimes,
    /// Suppressed activations, counted apart.
    pub suppressed: u64,
}

/// What both sources reduce the activations to before [`finish`].
#[derive(Debug, Default)]
struct Parts {
    alarms: u64,
    suppressed: u64,
    stale: u64,
    acknowledged: u64,
    ack_median: Option<f64>,
    ack_p90: Option<f64>,
    peak: u64,
    /// Flood intervals `[from, to]` in microseconds, any order, overlapping.
    floods: Vec<(i64, i64)>,
    pairs: Vec<PairCount>,
}

/// One rule-and-sensor pair's activations.
#[derive(Debug, Clone, PartialEq, Eq)]
struct PairCount {
    rule_id: Uuid,
    site: String,
    sensor: String,
    count: u64,
    chattered: bool,
}

fn micros(duration: Duration) -> i64 {
    i64::try_from(duration.as_micros()).unwrap_or(i64::MAX)
}

/// The KPIs of `activations` over `range` (those outside it are left out).
pub fn compute(activations: &[Activation], range: KpiRange) -> Kpis {
    let (_, end) = range.micros();
    let mut parts = Parts::default();
    let mut by_site: HashMap<&str, Vec<i64>> = HashMap::new();
    let mut by_pair: HashMap<(Uuid, &str, &str), Vec<i64>> = HashMap::new();
    let mut names: HashMap<(Uuid, &str, &str), (i64, &str)> = HashMap::new();
    let mut ack_seconds = Vec::new();
    for activation in activations
        .iter()
        .filter(|activation| range.contains(activation.activated_at))
    {
        if activation.suppressed {
            parts.suppressed += 1;
            continue;
        }
        parts.alarms += 1;
        let at = activation.activated_at.timestamp_micros();
        let active_until = activation
            .cleared_at
            .map_or(end, |cleared| cleared.timestamp_micros().min(end));
        if active_until - at > micros(STALE_AFTER) {
            parts.stale += 1;
        }
        if let Some(acknowledged) = activation.acknowledged_at {
            ack_seconds.push((acknowledged.timestamp_micros() - at) as f64 / 1e6);
        }
        by_site
            .entry(activation.site.as_str())
            .or_default()
            .push(at);
        if let (Some(rule_id), Some(sensor)) = (activation.rule_id, &activation.sensor) {
            let key = (rule_id, activation.site.as_str(), sensor.as_str());
            by_pair.entry(key).or_default().push(at);
            let name = activation.rule_name.as_deref().unwrap_or_default();
            let newest = names.entry(key).or_insert((at, name));
            if at > newest.0 {
                *newest = (at, name);
            }
        }
    }
    for times in by_site.values_mut() {
        site_figures(times, end, &mut parts);
    }
    for ((rule_id, site, sensor), times) in &mut by_pair {
        parts.pairs.push(pair_count(
            *rule_id,
            (*site).to_owned(),
            (*sensor).to_owned(),
            times,
        ));
    }
    ack_figures(ack_seconds, &mut parts);
    finish(range, parts, |pair| {
        names
            .get(&(pair.rule_id, pair.site.as_str(), pair.sensor.as_str()))
            .map(|(_, name)| (*name).to_owned())
            .unwrap_or_default()
    })
}

/// The KPIs a backtest of `rule` reports for the alerts it would have
/// raised over `[start, end)`: the same figures [`measure`] gives for the
/// alerts the live loop raised (none acknowledged or suppressed).
pub fn of_backtest(
    rule: &AlertRule,
    alerts: &[PreviewAlert],
    start: EpochMillis,
    end: EpochMillis,
) -> Kpis {
    let activations: Vec<Activation> = alerts
        .iter()
        .map(|alert| Activation::simulated(rule.id, &rule.name, alert))
        .collect();
    compute(
        &activations,
        KpiRange {
            start: start.to_datetime(),
            end: end.to_datetime(),
        },
    )
}

/// The KPIs of each of `days` (as [`SiteZone::day_boundaries`] gives
/// them: `n + 1` boundaries, `n` days), over the activations that began
/// in each; the last day ends at `end` at the latest.
pub fn daily(activations: &[Activation], days: &[EpochMillis], end: DateTime<Utc>) -> Vec<Kpis> {
    days.windows(2)
        .filter_map(|day| {
            let range = KpiRange {
                start: day[0].to_datetime(),
                end: day[1].to_datetime().min(end),
            };
            (range.start < range.end).then(|| compute(activations, range))
        })
        .collect()
}

/// The boundaries of the local days of `zone` that cover `range`, for
/// [`daily`].
pub fn local_days(zone: SiteZone, range: KpiRange) -> Vec<EpochMillis> {
    let at = |time: DateTime<Utc>| {
        EpochMillis::from_millis(time.timestamp_millis()).unwrap_or_else(|_| EpochMillis::now())
    };
    zone.day_boundaries(at(range.start), at(range.end), 1)
}

/// The acknowledgement figures from the seconds each acknowledged
/// activation waited, into `parts`.
fn ack_figures(mut seconds: Vec<f64>, parts: &mut Parts) {
    seconds.sort_by(f64::total_cmp);
    parts.acknowledged = seconds.len() as u64;
    parts.ack_median = percentile_cont(&seconds, 0.5);
    parts.ack_p90 = percentile_cont(&seconds, 0.9);
}

/// One site's peak and flood intervals, from its activation times (sorted
/// here), into `parts`.
fn site_figures(times: &mut [i64], end: i64, parts: &mut Parts) {
    times.sort_unstable();
    parts.peak = parts.peak.max(peak_within(times, micros(FLOOD_WINDOW)));
    parts
        .floods
        .extend(flood_intervals(times, micros(FLOOD_WINDOW), end));
}

/// One rule-and-sensor pair's count and whether it chattered, from its
/// activation times (sorted here).
fn pair_count(rule_id: Uuid, site: String, sensor: String, times: &mut [i64]) -> PairCount {
    times.sort_unstable();
    let span = CHATTER_ALARMS - 1;
    PairCount {
        rule_id,
        site,
        sensor,
        count: times.len() as u64,
        chattered: times
            .windows(CHATTER_ALARMS)
            .any(|window| window[span] - window[0] <= micros(CHATTER_WINDOW)),
    }
}

/// The most of `times` (sorted) within `window` of one another, both ends
/// included.
fn peak_within(times: &[i64], window: i64) -> u64 {
    let mut first = 0;
    let mut peak = 0;
    for (last, at) in times.iter().enumerate() {
        while times[first] < at - window {
            first += 1;
        }
        peak = peak.max(last - first + 1);
    }
    peak as u64
}

/// When a site whose activations are `times` (sorted) is in flood: at `t`
/// when more than [`FLOOD_ALARMS`] of them lie in `[t − window, t]`. For
/// the activation that is the newest of such a group, from it until the
/// oldest of the group leaves the window; cut at `end`.
fn flood_intervals(times: &[i64], window: i64, end: i64) -> Vec<(i64, i64)> {
    times
        .iter()
        .enumerate()
        .skip(FLOOD_ALARMS)
        .filter_map(|(index, at)| {
            let oldest = times[index - FLOOD_ALARMS];
            (*at - oldest <= window).then_some((*at, (oldest + window).min(end)))
        })
        .filter(|(from, to)| from < to)
        .collect()
}

/// The length of the union of closed intervals.
fn union_length(mut intervals: Vec<(i64, i64)>) -> i64 {
    intervals.sort_unstable();
    let mut total = 0;
    let mut current: Option<(i64, i64)> = None;
    for (from, to) in intervals {
        current = match current {
            Some((start, reach)) if from <= reach => Some((start, reach.max(to))),
            Some((start, reach)) => {
                total += reach - start;
                Some((from, to))
            }
            None => Some((from, to)),
        };
    }
    total + current.map_or(0, |(start, reach)| reach - start)
}

/// Postgres' `percentile_cont` over sorted values: the value at
/// `fraction × (n − 1)`, interpolated linearly, computed as Postgres does.
fn percentile_cont(sorted: &[f64], fraction: f64) -> Option<f64> {
    let rows = sorted.len();
    if rows == 0 {
        return None;
    }
    let position = fraction * (rows - 1) as f64;
    let first = position.floor();
    let second = position.ceil();
    let low = *sorted.get(first as usize)?;
    if second <= first {
        return Some(low);
    }
    let high = *sorted.get(second as usize)?;
    Some(low + (high - low) * (position - first))
}

/// The figures from the parts, the same for both sources.
fn finish(range: KpiRange, parts: Parts, name_of: impl Fn(&PairCount) -> String) -> Kpis {
    let (start, end) = range.micros();
    let span = (end - start).max(1);
    let mut pairs = parts.pairs;
    pairs.sort_by(|a, b| {
        b.count
            .cmp(&a.count)
            .then_with(|| a.site.cmp(&b.site))
            .then_with(|| a.sensor.cmp(&b.sensor))
            .then_with(|| a.rule_id.cmp(&b.rule_id))
    });
    let chattering = pairs.iter().filter(|pair| pair.chattered).count() as u64;
    let top = pairs
        .iter()
        .take(TOP)
        .map(|pair| BadActor {
            rule_id: pair.rule_id,
            rule_name: name_of(pair),
            site: pair.site.clone(),
            sensor: pair.sensor.clone(),
            count: pair.count,
        })
        .collect();
    Kpis {
        start: range.start,
        end: range.end,
        alarms: parts.alarms,
        alarms_per_hour: parts.alarms as f64 * 3.6e9 / span as f64,
        peak_10min: parts.peak,
        flood_share: union_length(parts.floods) as f64 / span as f64,
        chattering,
        stale: parts.stale,
        top,
        time_to_ack_s: AckTimes {
            acknowledged: parts.acknowledged,
            median: parts.ack_median,
            p90: parts.ack_p90,
        },
        suppressed: parts.suppressed,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(seconds: i64) -> DateTime<Utc> {
        DateTime::from_timestamp(1_800_000_000 + seconds, 0).unwrap()
    }

    fn activation(site: &str, rule: u128, sensor: &str, seconds: i64) -> Activation {
        Activation {
            site: site.into(),
            rule_id: Some(Uuid::from_u128(rule)),
            rule_name: Some(format!("rule {rule}")),
            sensor: Some(sensor.into()),
            activated_at: at(seconds),
            cleared_at: Some(at(seconds + 5)),
            acknowledged_at: None,
            suppressed: false,
        }
    }

    fn hour() -> KpiRange {
        KpiRange {
            start: at(0),
            end: at(3600),
        }
    }

    #[test]
    fn nothing_measures_zero() {
        let kpis = compute(&[], hour());
        assert_eq!(kpis.alarms, 0);
        assert_eq!(kpis.alarms_per_hour, 0.0);
        assert_eq!(kpis.flood_share, 0.0);
        assert_eq!(kpis.time_to_ack_s.median, None);
        assert!(kpis.top.is_empty());
    }

    #[test]
    fn a_flood_is_the_eleventh_alarm_within_ten_minutes_until_the_first_leaves() {
        // Eleven alarms, one a minute from 0 s: in flood from the eleventh
        // (600 s) until the first is 10 minutes old (600 s): an instant.
        // Twelve alarms 30 s apart from 1000 s: the eleventh at 1300 s,
        // the twelfth at 1330 s; the first leaves at 1600 s, the second at
        // 1630 s: in flood over [1300, 1630].
        let mut activations: Vec<Activation> = (0..11)
            .map(|minute| activation("a", 1, &format!("s{minute}"), minute * 60))
            .collect();
        activations.extend(
            (0..12).map(|index| activation("a", 2, &format!("t{index}"), 1000 + index * 30)),
        );
        let kpis = compute(&activations, hour());
        assert_eq!(kpis.alarms, 23);
        assert_eq!(kpis.peak_10min, 12);
        assert_eq!(kpis.flood_share, 330.0 / 3600.0);
        assert_eq!(kpis.alarms_per_hour, 23.0);
        // Another site's alarms do not make this one's flood.
        let mut split = activations.clone();
        for one in split.iter_mut().step_by(2) {
            one.site = "b".into();
        }
        assert_eq!(compute(&split, hour()).flood_share, 0.0);
    }

    #[test]
    fn chattering_pairs_count_once_and_top_lists_the_most_frequent() {
        let mut activations = vec![
            activation("a", 1, "x", 0),
            activation("a", 1, "x", 20),
            activation("a", 1, "x", 60),
            activation("a", 1, "x", 500),
            activation("a", 1, "x", 510),
            activation("a", 1, "x", 520),
            // Three within 61 s: not chattering.
            activation("a", 2, "y", 0),
            activation("a", 2, "y", 30),
            activation("a", 2, "y", 61),
        ];
        activations.push(activation("a", 3, "z", 100));
        let kpis = compute(&activations, hour());
        assert_eq!(kpis.chattering, 1);
        let top: Vec<(&str, u64)> = kpis
            .top
            .iter()
            .map(|actor| (actor.sensor.as_str(), actor.count))
            .collect();
        assert_eq!(top, vec![("x", 6), ("y", 3), ("z", 1)]);
        assert_eq!(kpis.top[0].rule_name, "rule 1");
    }

    #[test]
    fn stale_ack_times_and_suppressed_are_measured_apart() {
        let day = 24 * 3600;
        let range = KpiRange {
            start: at(0),
            end: at(3 * day),
        };
        let mut long = activation("a", 1, "x", 0);
        long.cleared_at = Some(at(day + 1));
        let mut open = activation("a", 1, "y", 10);
        open.cleared_at = None;
        let mut young = activation("a", 1, "z", 2 * day + 10);
        young.cleared_at = None;
        let mut acknowledged: Vec<Activation> = [10, 20, 30, 100]
            .iter()
            .enumerate()
            .map(|(index, seconds)| {
                let mut one = activation("a", 4, &format!("k{index}"), 1000);
                one.acknowledged_at = Some(at(1000 + seconds));
                one
            })
            .collect();
        let mut muted = activation("a", 5, "m", 50);
        muted.suppressed = true;
        acknowledged.extend([long, open, young, muted]);
        let kpis = compute(&acknowledged, range);
        assert_eq!(kpis.stale, 2);
        assert_eq!(kpis.suppressed, 1);
        assert_eq!(kpis.alarms, 7);
        assert_eq!(kpis.time_to_ack_s.acknowledged, 4);
        assert_eq!(kpis.time_to_ack_s.median, Some(25.0));
        // 0.9 × 3 = 2.7: 30 + 0.7 × 70.
        assert_eq!(
            kpis.time_to_ack_s.p90,
            Some(30.0 + (100.0 - 30.0) * (2.7 - 2.0))
        );
    }

    #[test]
    fn daily_figures_follow_local_days() {
        let zone = SiteZone::parse("Europe/Berlin").unwrap();
        let range = KpiRange {
            start: DateTime::parse_from_rfc3339("2026-03-28T00:00:00+01:00")
                .unwrap()
                .with_timezone(&Utc),
            end: DateTime::parse_from_rfc3339("2026-03-30T00:00:00+02:00")
                .unwrap()
                .with_timezone(&Utc),
        };
        let days = local_days(zone, range);
        assert_eq!(days.len(), 3);
        let mut late = activation("a", 1, "x", 0);
        // 23:30 local on the 28th (CET): the first day.
        late.activated_at = DateTime::parse_from_rfc3339("2026-03-28T22:30:00Z")
            .unwrap()
            .with_timezone(&Utc);
        let kpis = daily(&[late], &days, range.end);
        assert_eq!(kpis.len(), 2);
        assert_eq!((kpis[0].alarms, kpis[1].alarms), (1, 0));
        assert_eq!(kpis[1].end - kpis[1].start, chrono::Duration::hours(23));
    }

    #[test]
    fn unions_merge_overlaps() {
        assert_eq!(union_length(vec![(0, 10), (5, 20), (30, 40), (40, 41)]), 31);
        assert_eq!(union_length(vec![]), 0);
        assert_eq!(peak_within(&[0, 1, 2, 10, 11], 9), 3);
        assert_eq!(peak_within(&[0, 10], 10), 2);
    }
}
