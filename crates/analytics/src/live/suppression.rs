//! Whether an alarm is suppressed at a tick, and why (DESIGN.md, "Alarm
//! management"): its rule or its sensor out of service, its site in a
//! maintenance window, its sensor's gateway offline (a `no_data` alarm),
//! or its rule's `suppress_when` holding on another sensor of the site, in
//! that order. A suppressed alarm is recorded (with why) and never
//! announced.
//!
//! What it takes is read once per tick, not per sensor: the sensors out of
//! service and the maintenance windows (two Postgres queries), and the
//! latest value of every deciding sensor (`suppress_when`'s) in one
//! InfluxDB query over the buckets since the previous tick ([`Deciders`]:
//! the last known value of each, kept for [`DECIDER_LOOKBACK_MS`]; a
//! deciding sensor silent for longer decides nothing, so its alarms are
//! announced).

use std::collections::{HashMap, HashSet};

use chrono::{DateTime, Utc};
use stoker_domain::{EpochMillis, OutOfService, SensorKey, SensorKind, SiteSlug, States};
use stoker_metadata::RegistryEntry;
use stoker_rules::{AlertRule, RuleKind};
use stoker_timeseries::{Columns, Influx, SeriesFilter, SeriesMatch};

use super::{Evaluator, TickReport, key};
use crate::Result;
use crate::evaluate::{SeriesKey, Target, Watch};
use crate::store::{self, Suppression};

/// How long the last value of a deciding sensor holds: a sensor silent
/// for longer decides nothing.
pub(super) const DECIDER_LOOKBACK_MS: i64 = 3_600_000;

/// More (site, sensor) pairs than this and the query names the deciding
/// sensors' keys only (or reads every series past as many keys).
const MAX_FILTER_TERMS: usize = 50;

/// The last value of each deciding sensor, kept across ticks so that a
/// tick reads only the buckets since the previous one.
#[derive(Debug, Default)]
pub(super) struct Deciders {
    filter: SeriesFilter,
    /// The end of what was read (exclusive): the last tick.
    until: i64,
    /// Per series: the start of the newest bucket with a reading, and that
    /// bucket's last value.
    last: HashMap<SeriesKey, (i64, f64)>,
}

impl Deciders {
    /// Forgets what was read (a new leader reads again).
    pub(super) fn clear(&mut self) {
        *self = Self::default();
    }

    /// Reads what `needed` lacks up to `tick`: the buckets since the last
    /// tick, or the whole lookback when the set changed. Returns the
    /// queries run (0 or 1).
    async fn refresh(
        &mut self,
        influx: &Influx,
        needed: &HashSet<(SiteSlug, SensorKey)>,
        tick: i64,
        interval_ms: i64,
    ) -> Result<usize> {
        if needed.is_empty() {
            self.clear();
            return Ok(0);
        }
        let filter = filter(needed);
        let from = tick - DECIDER_LOOKBACK_MS;
        if filter == self.filter && self.until == tick {
            return Ok(0);
        }
        let reusable = filter == self.filter && self.until < tick && self.until > from;
        let (start, bucket) = if reusable {
            (self.until, interval_ms)
        } else {
            self.last.clear();
            (from, DECIDER_LOOKBACK_MS)
        };
        let columns = Columns {
            last: true,
            ..Columns::default()
        };
        let (Ok(start_at), Ok(end_at)) = (
            EpochMillis::from_millis(start),
            EpochMillis::from_millis(tick),
        ) else {
            return Ok(0);
        };
        let answer = influx
            .bucket_stats(
                &filter,
                start_at,
                end_at,
                u64::try_from(bucket).unwrap_or(1),
                columns,
            )
            .await?;
        for series in answer {
            if let Some(newest) = series.buckets.last() {
                self.last.insert(
                    (series.site, series.sensor),
                    (newest.start.as_millis(), newest.last),
                );
            }
        }
        self.last
            .retain(|_, (start, _)| *start + DECIDER_LOOKBACK_MS > from);
        self.filter = filter;
        self.until = tick;
        Ok(1)
    }

    fn value(&self, site: &SiteSlug, sensor: &SensorKey) -> Option<f64> {
        self.last
            .get(&(site.as_str().to_owned(), sensor.as_str().to_owned()))
            .map(|(_, value)| *value)
    }
}

/// The series the deciding sensors are.
fn filter(needed: &HashSet<(SiteSlug, SensorKey)>) -> SeriesFilter {
    if needed.len() <= MAX_FILTER_TERMS {
        let mut any_of: Vec<SeriesMatch> = needed
            .iter()
            .map(|(site, sensor)| SeriesMatch {
                site: Some(site.clone()),
                sensor: Some(sensor.clone()),
                sensor_type: None,
            })
            .collect();
        any_of.sort_by(|a, b| (&a.site, &a.sensor).cmp(&(&b.site, &b.sensor)));
        return SeriesFilter { any_of };
    }
    let mut sensors: Vec<&SensorKey> = needed.iter().map(|(_, sensor)| sensor).collect();
    sensors.sort();
    sensors.dedup();
    if sensors.len() > MAX_FILTER_TERMS {
        return SeriesFilter::default();
    }
    SeriesFilter {
        any_of: sensors
            .into_iter()
            .map(|sensor| SeriesMatch {
                site: None,
                sensor: Some(sensor.clone()),
                sensor_type: None,
            })
            .collect(),
    }
}

/// What decides suppression at one tick.
#[derive(Debug, Default)]
pub(super) struct Context {
    at: DateTime<Utc>,
    sensors_out: HashMap<(SiteSlug, SensorKey), OutOfService>,
    /// The sites in a maintenance window at the tick, with the sentence.
    maintenance: HashMap<SiteSlug, String>,
    /// Each deciding sensor's kind and states, by site and key.
    deciders: HashMap<(SiteSlug, SensorKey), (SensorKind, States)>,
}

impl Context {
    /// Reads what decides suppression at `tick` for `watches`: the sensors
    /// out of service, the maintenance windows and (through `deciders`,
    /// refreshed) the deciding sensors' latest values. Returns the context
    /// and the InfluxDB queries run.
    pub(super) async fn load(
        stores: &stoker_stores::Stores,
        deciders: &mut Deciders,
        watches: &[Watch],
        registry: &[RegistryEntry],
        tick: i64,
        interval_ms: i64,
    ) -> Result<(Self, usize)> {
        let at = EpochMillis::from_millis(tick)
            .map(EpochMillis::to_datetime)
            .unwrap_or_else(|_| Utc::now());
        let sensors_out = stoker_metadata::sensors_out_of_service(&stores.pool)
            .await?
            .into_iter()
            .map(|(site, sensor, service)| ((site, sensor), service))
            .collect();
        let mut maintenance = HashMap::new();
        for (window, timezone) in
            stoker_metadata::current_maintenance_windows(&stores.pool, at).await?
        {
            if window.covers(at, timezone) {
                maintenance.entry(window.site.clone()).or_insert_with(|| {
                    format!(
                        "site {} is in maintenance window {}: {}",
                        window.site, window.id, window.reason
                    )
                });
            }
        }
        let mut needed: HashSet<(SiteSlug, SensorKey)> = HashSet::new();
        for watch in watches {
            if let Some(condition) = &watch.rule.suppress_when {
                for target in &watch.targets {
                    needed.insert((target.site.clone(), condition.sensor.clone()));
                }
            }
        }
        let kinds = registry
            .iter()
            .filter(|entry| needed.contains(&(entry.site.clone(), entry.key.clone())))
            .map(|entry| {
                (
                    (entry.site.clone(), entry.key.clone()),
                    (entry.kind, entry.states.clone()),
                )
            })
            .collect();
        let queries = deciders
            .refresh(&stores.influx, &needed, tick, interval_ms)
            .await?;
        Ok((
            Self {
                at,
                sensors_out,
                maintenance,
                deciders: kinds,
            },
            queries,
        ))
    }

    /// Why `rule`'s alarm for `target` is suppressed at the tick, with a
    /// sentence; `None`: announced. `silenced`: the target's gateway is
    /// offline or its device dead.
    pub(super) fn why(
        &self,
        deciders: &Deciders,
        rule: &AlertRule,
        target: &Target,
        silenced: bool,
    ) -> Option<(Suppression, String)> {
        if let Some(service) = rule
            .out_of_service
            .as_ref()
            .filter(|service| service.holds_at(self.at))
        {
            return Some((
                Suppression::OutOfService,
                format!(
                    "rule {:?} is out of service until {} ({} by {})",
                    rule.name,
                    service
                        .until
                        .to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
                    service.reason,
                    service.by
                ),
            ));
        }
        if let Some(service) = self
            .sensors_out
            .get(&(target.site.clone(), target.sensor.clone()))
            .filter(|service| service.holds_at(self.at))
        {
            return Some((
                Suppression::OutOfService,
                format!(
                    "sensor {} is out of service until {} ({} by {})",
                    target.sensor,
                    service
                        .until
                        .to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
                    service.reason,
                    service.by
                ),
            ));
        }
        if let Some(sentence) = self.maintenance.get(&target.site) {
            return Some((Suppression::Maintenance, sentence.clone()));
        }
        if silenced && matches!(rule.kind, RuleKind::NoData { .. }) {
            return Some((
                Suppression::GatewayOffline,
                format!(
                    "the gateway of sensor {} is offline (or its device dead): its own alarm explains the silence",
                    target.sensor
                ),
            ));
        }
        let condition = rule.suppress_when.as_ref()?;
        let (kind, states) = self
            .deciders
            .get(&(target.site.clone(), condition.sensor.clone()))?;
        let limit = condition.stored_for(*kind, states).ok()?;
        let latest = deciders.value(&target.site, &condition.sensor)?;
        condition.holds(latest, limit).then(|| {
            (
                Suppression::SuppressWhen,
                format!(
                    "suppress_when holds: {} at site {} (its latest value {})",
                    condition,
                    target.site,
                    stoker_domain::ReadingValue::from_stored(*kind, states, latest)
                        .and_then(|value| serde_json::to_string(&value).ok())
                        .unwrap_or_else(|| latest.to_string())
                ),
            )
        })
    }
}

impl Evaluator {
    /// Records a change of an open alarm's suppression: suppressed (not
    /// announced) or announced again (`unsuppressed`, while it is still
    /// open).
    pub(super) async fn sync_suppression(
        &mut self,
        watch: &Watch,
        target: &Target,
        tick: i64,
        why: Option<(Suppression, String)>,
        report: &mut TickReport,
    ) -> Result<()> {
        let state_key = key(watch, target);
        let now = why.as_ref().map(|(reason, _)| *reason);
        if now.is_some() {
            report.suppressed += 1;
        }
        if self.suppressed.get(&state_key).copied() == now {
            return Ok(());
        }
        match now {
            Some(reason) => self.suppressed.insert(state_key, reason),
            None => self.suppressed.remove(&state_key),
        };
        let at = EpochMillis::from_millis(tick).unwrap_or_else(|_| EpochMillis::now());
        let changed = store::set_suppression(
            &self.stores.pool,
            &self.outbox,
            &watch.rule,
            &target.site,
            &target.sensor,
            at,
            why.as_ref()
                .map(|(reason, sentence)| (*reason, sentence.as_str())),
        )
        .await?;
        if let Some(alert) = changed {
            match &why {
                Some((reason, sentence)) => {
                    tracing::info!(alert = %alert.id, rule = %watch.rule.name, site = %target.site, sensor = %target.sensor, suppressed = %reason, "alert suppressed: {sentence}");
                }
                None => {
                    tracing::info!(alert = %alert.id, rule = %watch.rule.name, site = %target.site, sensor = %target.sensor, "alert no longer suppressed: announced");
                }
            }
            self.forget_dashboard(&target.site).await;
        }
        Ok(())
    }
}
