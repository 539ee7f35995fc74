//! The evaluation loop: at every tick (a multiple of `ANALYTICS_INTERVAL`,
//! evaluated `ANALYTICS_GRACE` later so that readings of the tick's last
//! moments have arrived) the leader reads the enabled rules and the sensor
//! registry, runs one InfluxQL query per group of rules sharing a plan,
//! steps every rule for every sensor it selects, and records what fired or
//! cleared. Only the process holding the Postgres advisory lock evaluates
//! ([`LOCK_KEY`]); the others try to take it at every tick.
//!
//! The leader's state (which rule is pending or firing for which sensor)
//! lives in memory and is mirrored to Redis (`alert_state`). It is never
//! read back from there: a new leader rebuilds it from Postgres (open
//! alerts are firing) and InfluxDB (a threshold's pending `for` count is
//! replayed over the ticks before), so a Redis loss loses nothing.

use std::collections::{HashMap, HashSet};
use std::time::Duration;

use serde::Serialize;
use stoker_domain::{EpochMillis, SensorKey, SiteSlug};
use stoker_postgres::Leadership;
use stoker_rules::{AlertRule, RuleKind};
use stoker_stores::Stores;
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

use crate::Result;
use crate::engine::{self, Phase, Transition};
use crate::evaluate::{self, Step, Watch};
use crate::notify::NotifyOptions;
use crate::store::{self, Suppression, Verdict};

mod gateways;
mod metrics;
mod mirror;
mod notices;
mod options;
mod shelves;
mod suppression;

pub use metrics::Metrics;
pub use options::EvaluationOptions;

/// The evaluation's advisory lock (`stoker_postgres::try_lead`):
/// `hashtext('stoker_analytics_leader')` would do as well; a constant
/// keeps it readable in `pg_locks`.
pub const LOCK_KEY: i64 = 0x5354_4f4b_4552_0001;

/// What one tick did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct TickReport {
    /// The tick, epoch milliseconds.
    pub tick: i64,
    /// Enabled rules.
    pub rules: usize,
    /// (rule, sensor) pairs judged.
    pub judged: usize,
    /// InfluxDB queries run.
    pub queries: usize,
    /// Alerts opened or reactivated.
    pub fired: usize,
    /// Alerts cleared (rule cleared, or its rule or sensor gone; a
    /// gateway back or unbound).
    pub cleared: usize,
    /// Alarms suppressed at this tick (recorded, not announced): fired
    /// suppressed, or open and still suppressed (a rule or sensor out of
    /// service, a maintenance window, an offline gateway's `no_data`,
    /// `suppress_when`).
    pub suppressed: usize,
    /// Alerts taken off their shelf at its expiry.
    pub unshelved: usize,
}

type StateKey = (Uuid, SiteSlug, SensorKey);

/// The leader's evaluation state and what it writes to.
#[derive(Debug)]
pub struct Evaluator {
    stores: Stores,
    outbox: NotifyOptions,
    interval_ms: i64,
    phases: HashMap<StateKey, Phase>,
    /// Keys mirrored to Redis at the last tick.
    mirrored: HashSet<StateKey>,
    /// What each group read at the last tick.
    windows: HashMap<engine::Plan, evaluate::Window>,
    /// The (rule, sensor) pairs the rule selects but cannot judge
    /// (`evaluate::misfits`), each logged once while it lasts.
    misfits: HashSet<StateKey>,
    /// Why each open alarm is suppressed, as recorded.
    suppressed: HashMap<StateKey, Suppression>,
    /// The deciding sensors' last values (`suppress_when`).
    deciders: suppression::Deciders,
}

impl Evaluator {
    /// An evaluator with no state yet: call [`Evaluator::take_over`] first.
    pub fn new(stores: Stores, outbox: NotifyOptions, options: &EvaluationOptions) -> Self {
        Self {
            stores,
            outbox,
            interval_ms: i64::try_from(options.interval.as_millis()).unwrap_or(10_000),
            phases: HashMap::new(),
            mirrored: HashSet::new(),
            windows: HashMap::new(),
            misfits: HashSet::new(),
            suppressed: HashMap::new(),
            deciders: suppression::Deciders::default(),
        }
    }

    /// Rebuilds the state as of just before tick `tick`: open alerts are
    /// firing; a threshold's pending `for` count is replayed from InfluxDB
    /// over the ticks before.
    pub async fn take_over(&mut self, tick: i64) -> Result<()> {
        self.phases.clear();
        self.windows.clear();
        self.suppressed.clear();
        self.deciders.clear();
        for alert in store::open_alerts(&self.stores.pool, None).await? {
            // A gateway's alert has no rule phase: its rows are its state.
            // Only an active alert whose condition holds is firing (a
            // latched one's condition has cleared).
            let (Some(rule_id), Some(sensor)) = (alert.rule_id, alert.sensor.as_deref()) else {
                continue;
            };
            if !alert.active || alert.latched_at.is_some() {
                continue;
            }
            let (Ok(site), Ok(sensor)) = (SiteSlug::parse(&alert.site), SensorKey::parse(sensor))
            else {
                continue;
            };
            if let Some(why) = alert.suppressed {
                self.suppressed
                    .insert((rule_id, site.clone(), sensor.clone()), why);
            }
            self.phases.insert(
                (rule_id, site, sensor),
                Phase::Firing {
                    since: alert.opened_at.timestamp_millis(),
                },
            );
        }
        let rules = stoker_metadata::enabled_alert_rules(&self.stores.pool).await?;
        let registry = stoker_metadata::registry(&self.stores.pool).await?;
        let watches: Vec<Watch> = evaluate::watches(rules, &registry)
            .into_iter()
            .filter(|watch| matches!(watch.rule.kind, RuleKind::Threshold { for_, .. } if !for_.is_zero()))
            .collect();
        for (plan, group) in evaluate::groups(&watches, self.interval_ms) {
            let longest = group
                .iter()
                .map(|watch| match watch.rule.kind {
                    RuleKind::Threshold { for_, .. } => {
                        i64::try_from(for_.as_millis()).unwrap_or(0)
                    }
                    _ => 0,
                })
                .max()
                .unwrap_or(0);
            let ticks = evaluate::ticks(
                tick - longest - self.interval_ms,
                tick - 1,
                self.interval_ms,
            );
            let (Some(first), Some(last)) = (ticks.clone().next(), ticks.clone().last()) else {
                continue;
            };
            let data = evaluate::fetch(
                &self.stores.influx,
                plan,
                &evaluate::filter(&group),
                evaluate::columns(&group),
                first,
                last,
            )
            .await?;
            for watch in group {
                let mut phases: Vec<Phase> = watch
                    .targets
                    .iter()
                    .map(|target| {
                        self.phases
                            .get(&key(watch, target))
                            .copied()
                            .unwrap_or_default()
                    })
                    .collect();
                let open: Vec<bool> = phases
                    .iter()
                    .map(|phase| matches!(phase, Phase::Firing { .. }))
                    .collect();
                evaluate::replay(watch, &data, plan.bucket_ms, &mut phases, ticks.clone());
                let hold = match watch.rule.kind {
                    RuleKind::Threshold { for_, .. } => {
                        i64::try_from(for_.as_millis()).unwrap_or(0)
                    }
                    _ => 0,
                };
                for ((target, phase), was_open) in watch.targets.iter().zip(phases).zip(open) {
                    // An open alert stays firing (the next tick clears it if
                    // the value has cleared); otherwise only a pending count
                    // carries over. A replay that fired without an open
                    // alert means the condition held while no process led:
                    // pending since long enough, it fires at the next tick.
                    let carried = match (was_open, phase) {
                        (true, _) => continue,
                        (false, Phase::Pending { since }) => Phase::Pending { since },
                        (false, Phase::Firing { since }) => Phase::Pending {
                            since: since - hold,
                        },
                        (false, Phase::Quiet) => continue,
                    };
                    self.phases.insert(key(watch, target), carried);
                }
            }
        }
        Ok(())
    }

    /// Evaluates tick `tick`: every enabled rule for every sensor it selects.
    pub async fn tick(&mut self, tick: i64) -> Result<TickReport> {
        let mut report = TickReport {
            tick,
            ..TickReport::default()
        };
        let rules = stoker_metadata::enabled_alert_rules(&self.stores.pool).await?;
        report.rules = rules.len();
        let registry = stoker_metadata::registry(&self.stores.pool).await?;
        self.note_misfits(&rules, &registry);
        self.unshelve_expired(&mut report).await?;
        let gateway_states = stoker_metadata::gateway_states(&self.stores.pool).await?;
        self.gateway_alarms(&gateway_states, &mut report).await?;
        let silenced = gateways::silenced_sensors(&gateway_states);
        let watches = evaluate::watches(rules, &registry);
        let (context, queries) = suppression::Context::load(
            &self.stores,
            &mut self.deciders,
            &watches,
            &registry,
            tick,
            self.interval_ms,
        )
        .await?;
        report.queries += queries;
        let mut watched: HashSet<StateKey> = HashSet::new();
        let mut planned = HashSet::new();
        for (plan, group) in evaluate::groups(&watches, self.interval_ms) {
            let window = self.windows.entry(plan).or_default();
            let data = evaluate::fetch_into(
                &self.stores.influx,
                plan,
                &evaluate::filter(&group),
                evaluate::columns(&group),
                tick,
                window,
            )
            .await?;
            planned.insert(plan);
            report.queries += 1;
            for watch in group {
                let keys: Vec<StateKey> = watch
                    .targets
                    .iter()
                    .map(|target| key(watch, target))
                    .collect();
                let mut phases: Vec<Phase> = keys
                    .iter()
                    .map(|key| self.phases.get(key).copied().unwrap_or_default())
                    .collect();
                let steps = evaluate::replay(
                    watch,
                    &data,
                    plan.bucket_ms,
                    &mut phases,
                    std::iter::once(tick),
                );
                report.judged += keys.len();
                let firing: Vec<bool> = phases
                    .iter()
                    .map(|phase| matches!(phase, Phase::Firing { .. }))
                    .collect();
                for (key, phase) in keys.into_iter().zip(phases) {
                    if phase == Phase::Quiet {
                        self.phases.remove(&key);
                    } else {
                        self.phases.insert(key.clone(), phase);
                    }
                    watched.insert(key);
                }
                let mut stepped = HashSet::new();
                for step in steps {
                    let target = &watch.targets[step.target];
                    let is_silenced = silenced.contains(&(&target.site, &target.sensor));
                    let why = context.why(&self.deciders, &watch.rule, target, is_silenced);
                    stepped.insert(step.target);
                    let state_key = key(watch, target);
                    match (step.transition, &why) {
                        (Transition::Fire(_), Some((reason, _))) => {
                            report.suppressed += 1;
                            self.suppressed.insert(state_key, *reason);
                        }
                        _ => {
                            self.suppressed.remove(&state_key);
                        }
                    }
                    let why = why
                        .as_ref()
                        .map(|(reason, sentence)| (*reason, sentence.as_str()));
                    self.apply(watch, step, &data, why, &mut report).await?;
                }
                // The alarms open before this tick: suppressed or announced
                // as the tick finds them.
                for (index, target) in watch.targets.iter().enumerate() {
                    if !firing[index] || stepped.contains(&index) {
                        continue;
                    }
                    let is_silenced = silenced.contains(&(&target.site, &target.sensor));
                    let why = context.why(&self.deciders, &watch.rule, target, is_silenced);
                    self.sync_suppression(watch, target, tick, why, &mut report)
                        .await?;
                }
            }
        }
        self.phases.retain(|key, _| watched.contains(key));
        let phases = &self.phases;
        self.suppressed
            .retain(|key, _| matches!(phases.get(key), Some(Phase::Firing { .. })));
        self.windows.retain(|plan, _| planned.contains(plan));
        self.retire_unwatched(tick, &watched, &mut report).await?;
        self.mirror(tick).await;
        Ok(report)
    }

    /// Logs, once while it lasts, each sensor a rule selects but cannot
    /// judge (`evaluate::misfits`: a sensor created after the rule, which
    /// the API checked against the sensors of its time); it is skipped.
    fn note_misfits(&mut self, rules: &[AlertRule], registry: &[stoker_metadata::RegistryEntry]) {
        let mut current = HashSet::new();
        for rule in rules {
            let targets = evaluate::targets(&rule.selector, registry);
            for (target, reason) in evaluate::misfits(&rule.kind, &targets) {
                let key = (rule.id, target.site.clone(), target.sensor.clone());
                if !self.misfits.contains(&key) {
                    tracing::warn!(rule = %rule.name, rule_id = %rule.id, site = %target.site, sensor = %target.sensor, reason = %reason, "alert rule cannot judge a sensor it selects: skipped");
                }
                current.insert(key);
            }
        }
        self.misfits = current;
    }

    async fn apply(
        &self,
        watch: &Watch,
        step: Step,
        data: &HashMap<evaluate::SeriesKey, engine::Series>,
        suppressed: Option<(Suppression, &str)>,
        report: &mut TickReport,
    ) -> Result<()> {
        let target = &watch.targets[step.target];
        let mut verdict = Verdict {
            rule: &watch.rule,
            site: &target.site,
            sensor: &target.sensor,
            at: EpochMillis::from_millis(step.tick).unwrap_or_else(|_| EpochMillis::now()),
            value: match step.transition {
                Transition::Fire(value) => evaluate::fired_value(&watch.rule.kind, target, value),
                Transition::Clear(value) => Some(engine::reported(
                    &watch.rule.kind,
                    target.kind,
                    &target.states,
                    value,
                )),
            },
            message: engine::describe(&watch.rule.kind, step.transition, target.reads()),
            explanation: None,
        };
        if let Transition::Fire(_) = step.transition {
            let key = (
                target.site.as_str().to_owned(),
                target.sensor.as_str().to_owned(),
            );
            let empty = engine::Series::default();
            let series = data.get(&key).unwrap_or(&empty);
            verdict.explanation = Some(engine::explain(
                &watch.rule,
                series,
                step.tick,
                verdict.value.as_ref(),
                step.held_ms,
            ));
        }
        let changed = match step.transition {
            Transition::Fire(_) => {
                let alert = store::open_alert_suppressed(
                    &self.stores.pool,
                    &self.outbox,
                    &verdict,
                    suppressed,
                )
                .await?;
                if let Some(alert) = &alert {
                    report.fired += 1;
                    match suppressed {
                        Some((reason, sentence)) => {
                            tracing::info!(alert = %alert.id, rule = %watch.rule.name, site = %target.site, sensor = %target.sensor, severity = %alert.severity, message = %verdict.message, suppressed = %reason, "alert fired, suppressed (not announced): {sentence}");
                        }
                        None => {
                            tracing::info!(alert = %alert.id, rule = %watch.rule.name, site = %target.site, sensor = %target.sensor, severity = %alert.severity, message = %verdict.message, "alert fired");
                        }
                    }
                }
                alert.is_some()
            }
            Transition::Clear(_) => {
                let alert = store::clear_alert(&self.stores.pool, &self.outbox, &verdict).await?;
                if let Some(alert) = &alert {
                    report.cleared += 1;
                    tracing::info!(alert = %alert.id, rule = %watch.rule.name, site = %target.site, sensor = %target.sensor, message = %verdict.message, "alert cleared");
                }
                alert.is_some()
            }
        };
        if changed {
            self.forget_dashboard(&target.site).await;
        }
        Ok(())
    }

    /// Resolves open alerts whose rule is disabled or deleted, or whose
    /// sensor is gone or no longer selected.
    async fn retire_unwatched(
        &self,
        tick: i64,
        watched: &HashSet<StateKey>,
        report: &mut TickReport,
    ) -> Result<()> {
        let at = EpochMillis::from_millis(tick).unwrap_or_else(|_| EpochMillis::now());
        for alert in store::open_alerts(&self.stores.pool, None).await? {
            // Gateway alerts are `gateway_alarms`' to resolve; an alert
            // already cleared waits for its acknowledgement.
            if !alert.active {
                continue;
            }
            let (Some(rule_id), Some(sensor)) = (alert.rule_id, alert.sensor.as_deref()) else {
                continue;
            };
            let (Ok(site), Ok(sensor)) = (SiteSlug::parse(&alert.site), SensorKey::parse(sensor))
            else {
                continue;
            };
            if watched.contains(&(rule_id, site.clone(), sensor)) {
                continue;
            }
            let message = "its rule is disabled or deleted, or no longer selects this sensor";
            if store::retire(&self.stores.pool, &self.outbox, alert.id, at, message)
                .await?
                .is_some()
            {
                report.cleared += 1;
                tracing::info!(alert = %alert.id, rule = alert.rule_name.as_deref().unwrap_or_default(), site = %alert.site, sensor = alert.sensor.as_deref().unwrap_or_default(), "alert resolved: {message}");
                self.forget_dashboard(&site).await;
            }
        }
        Ok(())
    }

    pub(super) async fn forget_dashboard(&self, site: &SiteSlug) {
        if let Err(error) = self.stores.cache.forget_dashboard(site).await {
            tracing::debug!(%error, %site, "could not drop the cached dashboard");
        }
    }
}

fn key(watch: &Watch, target: &evaluate::Target) -> StateKey {
    (watch.rule.id, target.site.clone(), target.sensor.clone())
}

/// The latest tick whose evaluation may start at `now` (ticks are
/// evaluated `grace` after they pass).
pub fn due_tick(now: i64, interval_ms: i64, grace_ms: i64) -> i64 {
    (now - grace_ms).div_euclid(interval_ms) * interval_ms
}

/// Runs the evaluation loop until `shutdown`: tries to lead at every tick,
/// and evaluates while it leads. Errors of one tick are logged; the next
/// tick tries again.
pub async fn run(
    stores: Stores,
    outbox: NotifyOptions,
    options: EvaluationOptions,
    metrics: Metrics,
    shutdown: CancellationToken,
) {
    let interval_ms = i64::try_from(options.interval.as_millis()).unwrap_or(10_000);
    let grace_ms = i64::try_from(options.grace.as_millis()).unwrap_or(0);
    let mut evaluator = Evaluator::new(stores.clone(), outbox, &options);
    let mut leadership: Option<Leadership> = None;
    let mut last_tick = due_tick(EpochMillis::now().as_millis(), interval_ms, grace_ms);
    tracing::info!(interval = ?options.interval, grace = ?options.grace, "alert evaluation started");
    loop {
        let next = last_tick + interval_ms;
        let wait = next + grace_ms - EpochMillis::now().as_millis();
        tokio::select! {
            () = shutdown.cancelled() => break,
            () = tokio::time::sleep(Duration::from_millis(u64::try_from(wait).unwrap_or(0))) => {}
        }
        let due = due_tick(EpochMillis::now().as_millis(), interval_ms, grace_ms);
        if due > next {
            tracing::warn!(
                skipped = (due - next) / interval_ms,
                "evaluation is behind; skipping to the latest tick"
            );
        }
        last_tick = due.max(next);
        if let Some(held) = &leadership
            && !held.holds().await
        {
            tracing::warn!(
                "lost the analytics leadership (its Postgres connection ended); trying to take it back"
            );
            leadership = None;
            metrics.leader.set(0);
        }
        if leadership.is_none() {
            match stoker_postgres::try_lead(&stores.postgres, LOCK_KEY).await {
                Ok(Some(held)) => {
                    tracing::info!("leading alert evaluation");
                    if let Err(error) = evaluator.take_over(last_tick).await {
                        tracing::warn!(%error, "could not rebuild the alert state; trying again at the next tick");
                        continue;
                    }
                    leadership = Some(held);
                    metrics.leader.set(1);
                }
                Ok(None) => continue,
                Err(error) => {
                    tracing::warn!(%error, "cannot reach Postgres to take the analytics leadership");
                    continue;
                }
            }
        }
        let started = std::time::Instant::now();
        match evaluator.tick(last_tick).await {
            Ok(report) => {
                metrics.ticks.inc();
                metrics
                    .tick_seconds
                    .observe(started.elapsed().as_secs_f64());
                metrics
                    .judged
                    .set(i64::try_from(report.judged).unwrap_or(i64::MAX));
                metrics.fired.inc_by(report.fired as u64);
                metrics.cleared.inc_by(report.cleared as u64);
                tracing::debug!(?report, elapsed = ?started.elapsed(), "tick evaluated");
            }
            Err(error) => {
                metrics.tick_errors.inc();
                tracing::warn!(%error, tick = last_tick, "tick not evaluated");
            }
        }
        if let Err(error) = notices::tend(&stores, &evaluator.outbox, chrono::Utc::now()).await {
            tracing::warn!(%error, "escalations and flood digests not tended; trying again at the next tick");
        }
    }
    tracing::info!("alert evaluation stopped");
}
