//! Sensor faults (`stoker simulate --faults`), so that a demo shows alert
//! rules firing and clearing.
//!
//! The faults follow a fixed schedule that repeats every `--fault-cycle`
//! (default 8 min) from the start of the run, whatever the seed: the seed
//! shapes only the healthy signal underneath. All of them concern boiler 1
//! of the first site (`boiler-house-1` with the default `--site-prefix`),
//! each its own sensor; the other sites and sensors stay healthy, and a
//! fault whose sensor is beyond `--sensors` is left out. Faults act on the
//! readings, not on the process model (a stuck O2 reading does not change
//! the burner), and every start and end is logged at INFO, e.g.
//! `fault: overpressure on boiler-house-1/b1_steam_pressure starts, 4m`.
//! [`fault_plan`] gives the schedule of a run.
//!
//! At the default cycle (times from the start of each cycle, m:ss; healthy
//! bands as the signal tests check them):
//!
//! | sensor (type, unit, valid range) | healthy | fault | when | readings during the fault |
//! | --- | --- | --- | --- | --- |
//! | `b1_flue_o2` (`o2`, %, 0–21) | 2.9–5.6 | stuck | 0:30–3:00 | exactly 20.9, the reading of air |
//! | `b1_steam_pressure` (`pressure`, bar, 0–25) | 9.5–11.5 | overpressure | 1:00–5:00 | 40 s ramp up; two 80 s swings between 12.25 and 13.05; 40 s ramp down |
//! | `b1_water_temp` (`temperature`, °C, 0–200) | 105–110 | drifting | 1:30–4:30 | healthy + 3 °C/min, up to +9 °C; back at once at the end |
//! | `b1_feedwater_flow` (`flow`, m3/h, 0–60) | 13–28 | silent | 3:00–6:00 | none: the key is left out of the messages |
//! | `b1_flue_temp` (`temperature`, °C, 0–600) | 160–240 | spiking | 5:00–7:40 | 560 for one reading just after 5:00, 6:15 and 7:30, healthy between |
//!
//! Every faulty value is inside the sensor's registered range, so ingestion
//! accepts it. The stuck value is a fixed one rather than the last healthy
//! reading because a flat line inside the healthy band is invisible to
//! every kind of alert rule. Another `--fault-cycle` scales every time
//! (start, duration, ramp, swing period, spike spacing) in proportion and
//! leaves the values as they are, so the drift rate grows as the cycle
//! shrinks.
//!
//! Rules that fire during each fault, clear after it and stay quiet on the
//! healthy signal, each with `"site": "boiler-house-1"` and the sensor's
//! key. The tests below check this with analytics' own engine, through the
//! backtest's steps, evaluated at every reading (one a second), over two
//! fault cycles of several seeds and over two hours of healthy signal of
//! ten seeds.
//!
//! | fault | rule | fires, clears (default cycle) |
//! | --- | --- | --- |
//! | stuck | `threshold`: `agg` min, `op` >, `threshold` 15, `clear_threshold` 10, `window` 60s, `for` 0s | 1:30, 3:00 |
//! | overpressure | `threshold`: `agg` mean, `op` >, `threshold` 12.5, `clear_threshold` 12.0, `window` 30s, `for` 30s | about 2:25, 4:50 |
//! | drifting | `rate_of_change`: `op` >, `rate_per_min` 1.5, `clear_rate_per_min` 1.0, `window` 2m | about 2:30, 4:30 |
//! | silent | `no_data`: `timeout` 120s | 5:00, 6:00 |
//! | spiking | `anomaly`: `window` 15s, `baseline` 45s, `z` 6, `clear_z` 2 | at each spike, 15 s later |
//!
//! The swing takes the pressure, and its 30 s mean, below 12.5 bar twice
//! during the episode but never below 12.0: with `clear_threshold` 12.5 the
//! alert would clear and fire again each time. The spikes are 75 s apart,
//! more than the anomaly rule's window and baseline together, so no spike is
//! in the baseline the next is measured against; in those tests healthy
//! flue temperatures reach z 4.4 at most. A rule evaluated less often than
//! its window lasts may miss a spike. With a shorter `--fault-cycle`,
//! shorten the rules' windows, `for` and timeout in proportion.

use std::f64::consts::TAU;
use std::fmt;
use std::time::Duration;

use crate::args::{DEFAULT_FAULT_CYCLE, SimulateArgs};
use crate::fleet::{CATALOGUE, Measurement, SiteSpec, sensor_key};
use crate::names::site_slug;

/// Stuck: the flue O2 analyser's reading freezes at that of air, a flat
/// line far above the 3–6 % of a firing boiler.
const STUCK_O2_PERCENT: f64 = 20.9;
/// Drifting: the feedwater temperature reading climbs this far above the
/// true temperature, steadily over the whole fault, and drops back when the
/// fault ends (the transmitter is recalibrated).
const DRIFT_CELSIUS: f64 = 9.0;
/// Spiking: each spike is one reading of this flue temperature, far above
/// the 160–240 °C of normal firing and inside the sensor's 0–600 °C.
const SPIKE_CELSIUS: f64 = 560.0;
/// Spikes per spiking fault, and the time between them (at the default
/// cycle): longer than an anomaly rule's window and baseline together, so
/// that no spike is in the baseline the next one is compared with.
const SPIKES: u32 = 3;
const SPIKE_SPACING_SECONDS: f64 = 75.0;
/// Overpressure: the steam pressure leaves the controller's 9.5–11.5 bar,
/// swings around this centre by this much (12.25–13.05 bar), and comes
/// back. The swing crosses a trigger of 12.5 bar both ways while staying
/// above 12.0 bar, so only a rule with hysteresis stays firing throughout.
const OVERPRESSURE_CENTRE_BAR: f64 = 12.65;
const OVERPRESSURE_SWING_BAR: f64 = 0.4;
/// How long the pressure takes to leave and to return to its normal band,
/// and the period of the swing (at the default cycle).
const OVERPRESSURE_RAMP_SECONDS: f64 = 40.0;
const OVERPRESSURE_PERIOD_SECONDS: f64 = 80.0;

/// What goes wrong with a sensor.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum FaultKind {
    /// The sensor repeats exactly the same value.
    Stuck,
    /// The sensor's value drifts away steadily, then returns.
    Drifting,
    /// Short, isolated readings far outside the normal band.
    Spiking,
    /// The sensor publishes nothing.
    Silent,
    /// The boiler's steam pressure rises above its operating band, swings
    /// around there, and comes back.
    Overpressure,
}

impl FaultKind {
    /// The kind's name: `stuck`, `drifting`, `spiking`, `silent` or
    /// `overpressure`.
    pub fn as_str(self) -> &'static str {
        match self {
            FaultKind::Stuck => "stuck",
            FaultKind::Drifting => "drifting",
            FaultKind::Spiking => "spiking",
            FaultKind::Silent => "silent",
            FaultKind::Overpressure => "overpressure",
        }
    }
}

impl fmt::Display for FaultKind {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        formatter.write_str(self.as_str())
    }
}

/// One fault of a run: which sensor, what goes wrong, and when. The fault
/// recurs every `cycle`, from `start` to `start + duration` after the run's
/// start and every later cycle's.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FaultSpec {
    /// The site's slug, e.g. `boiler-house-1`.
    pub site: String,
    /// The sensor's key, e.g. `b1_steam_pressure`.
    pub sensor: String,
    /// What goes wrong.
    pub kind: FaultKind,
    /// When the fault starts within each cycle (whole milliseconds).
    pub start: Duration,
    /// How long the fault lasts (whole milliseconds).
    pub duration: Duration,
    /// How often the fault recurs: `--fault-cycle`.
    pub cycle: Duration,
}

impl FaultSpec {
    /// Whether the fault is on `elapsed` after the run's start.
    pub fn is_active(&self, elapsed: Duration) -> bool {
        self.seconds_into(elapsed.as_secs_f64()).is_some()
    }

    /// How far into the fault `elapsed_seconds` after the run's start is,
    /// if the fault is on then.
    fn seconds_into(&self, elapsed_seconds: f64) -> Option<f64> {
        let in_cycle = elapsed_seconds.rem_euclid(self.cycle.as_secs_f64());
        let into = in_cycle - self.start.as_secs_f64();
        (into >= 0.0 && into < self.duration.as_secs_f64()).then_some(into)
    }

    /// The factor from the default cycle's times to this fault's.
    fn time_scale(&self) -> f64 {
        self.cycle.as_secs_f64() / DEFAULT_FAULT_CYCLE.as_secs_f64()
    }
}

/// A row of the schedule, in times of the default cycle.
struct PlannedFault {
    kind: FaultKind,
    /// Boiler 1's sensor of this measurement.
    measurement: Measurement,
    start_seconds: f64,
    duration_seconds: f64,
}

/// The schedule, by start. Each fault is on its own sensor, and each ends
/// before its cycle does, so a sensor is healthy for at least half of every
/// cycle: long enough for rules to clear and their baselines to recover.
const SCHEDULE: [PlannedFault; 5] = [
    PlannedFault {
        kind: FaultKind::Stuck,
        measurement: Measurement::FlueO2,
        start_seconds: 30.0,
        duration_seconds: 150.0,
    },
    PlannedFault {
        kind: FaultKind::Overpressure,
        measurement: Measurement::SteamPressure,
        start_seconds: 60.0,
        duration_seconds: 240.0,
    },
    PlannedFault {
        kind: FaultKind::Drifting,
        measurement: Measurement::WaterTemp,
        start_seconds: 90.0,
        duration_seconds: 180.0,
    },
    PlannedFault {
        kind: FaultKind::Silent,
        measurement: Measurement::FeedwaterFlow,
        start_seconds: 180.0,
        duration_seconds: 180.0,
    },
    PlannedFault {
        kind: FaultKind::Spiking,
        measurement: Measurement::FlueTemp,
        start_seconds: 300.0,
        duration_seconds: 160.0,
    },
];

/// The faults a run with these options injects, by start: none without
/// `--faults`; otherwise the schedule of the module documentation on the
/// first site, less the faults of sensors beyond `--sensors`. Deterministic:
/// the same options always give the same plan, whatever the seed.
pub fn fault_plan(args: &SimulateArgs) -> Vec<FaultSpec> {
    if !args.faults {
        return Vec::new();
    }
    let cycle = args.fault_cycle;
    let site = site_slug(&args.site_prefix, 1);
    let scaled = |seconds: f64| {
        let exact = cycle.mul_f64(seconds / DEFAULT_FAULT_CYCLE.as_secs_f64());
        Duration::from_millis(exact.as_millis().try_into().unwrap_or(u64::MAX))
    };
    SCHEDULE
        .iter()
        .filter_map(|planned| {
            let index = CATALOGUE
                .iter()
                .position(|entry| entry.measurement == planned.measurement)?;
            (index < args.sensors as usize).then(|| FaultSpec {
                site: site.clone(),
                sensor: sensor_key(index),
                kind: planned.kind,
                start: scaled(planned.start_seconds),
                duration: scaled(planned.duration_seconds),
                cycle,
            })
        })
        .collect()
}

/// The reading of a sensor `seconds_into` its fault `spec`, given the
/// reading the healthy sensor would send; `None` when it sends nothing.
/// `tick_seconds` is the time between readings: a spike lasts one.
fn faulty_reading(
    spec: &FaultSpec,
    seconds_into: f64,
    tick_seconds: f64,
    healthy: f64,
) -> Option<f64> {
    let duration_seconds = spec.duration.as_secs_f64();
    let time_scale = spec.time_scale();
    match spec.kind {
        FaultKind::Stuck => Some(STUCK_O2_PERCENT),
        FaultKind::Drifting => Some(healthy + drift_offset(seconds_into, duration_seconds)),
        FaultKind::Spiking => Some(if is_spike(seconds_into, time_scale, tick_seconds) {
            SPIKE_CELSIUS
        } else {
            healthy
        }),
        FaultKind::Silent => None,
        FaultKind::Overpressure => Some(overpressure(
            seconds_into,
            duration_seconds,
            time_scale,
            healthy,
        )),
    }
}

/// How far the drifting reading is above the true value: a straight line
/// from 0 to [`DRIFT_CELSIUS`] over the fault.
fn drift_offset(seconds_into: f64, duration_seconds: f64) -> f64 {
    DRIFT_CELSIUS * seconds_into / duration_seconds
}

/// Whether the reading `seconds_into` a spiking fault is a spike: the
/// reading one tick after the fault's start and after every
/// [`SPIKE_SPACING_SECONDS`] (scaled) from there. Each spike covers one
/// tick, so it catches exactly one reading at any rate; it is centred on a
/// reading where the readings fall a whole number of ticks after the
/// fault's start (as at whole readings per second and the default cycle),
/// so that rounding in the readings' times cannot move them across its
/// edges.
fn is_spike(seconds_into: f64, time_scale: f64, tick_seconds: f64) -> bool {
    (0..SPIKES).any(|spike| {
        let at = f64::from(spike) * SPIKE_SPACING_SECONDS * time_scale + tick_seconds;
        (at - tick_seconds / 2.0..at + tick_seconds / 2.0).contains(&seconds_into)
    })
}

/// The steam pressure `seconds_into` an overpressure episode: the healthy
/// pressure blends (smoothly, over the ramp) into a swing around
/// [`OVERPRESSURE_CENTRE_BAR`], and back at the end.
fn overpressure(seconds_into: f64, duration_seconds: f64, time_scale: f64, healthy: f64) -> f64 {
    let ramp = OVERPRESSURE_RAMP_SECONDS * time_scale;
    let period = OVERPRESSURE_PERIOD_SECONDS * time_scale;
    let weight = smoothstep(seconds_into.min(duration_seconds - seconds_into) / ramp);
    let episode = OVERPRESSURE_CENTRE_BAR
        + OVERPRESSURE_SWING_BAR * (TAU * (seconds_into - ramp) / period).sin();
    healthy + weight * (episode - healthy)
}

/// 0 below 0, 1 above 1, and an S-curve between, so a ramp has no kink.
fn smoothstep(fraction: f64) -> f64 {
    let fraction = fraction.clamp(0.0, 1.0);
    fraction * fraction * (3.0 - 2.0 * fraction)
}

/// The faults of one site while the run publishes it.
#[derive(Debug, Default)]
pub(crate) struct SiteFaults {
    faults: Vec<InjectedFault>,
}

/// A fault of the plan on one of the site's sensors.
#[derive(Debug)]
struct InjectedFault {
    spec: FaultSpec,
    /// The sensor's position in the site's messages.
    sensor_index: usize,
    /// Whether the fault was on at the last tick, to log its start and end.
    active: bool,
}

impl SiteFaults {
    /// The faults of `plan` that concern `site`.
    pub(crate) fn new(plan: &[FaultSpec], site: &SiteSpec) -> Self {
        let faults = plan
            .iter()
            .filter(|spec| spec.site == site.slug)
            .filter_map(|spec| {
                let sensor_index = site
                    .sensors
                    .iter()
                    .position(|sensor| sensor.key == spec.sensor)?;
                Some(InjectedFault {
                    spec: spec.clone(),
                    sensor_index,
                    active: false,
                })
            })
            .collect();
        Self { faults }
    }

    /// Notes the time of the new tick, and logs each fault that has started
    /// or ended since the last one.
    pub(crate) fn advance(&mut self, elapsed_seconds: f64) {
        for fault in &mut self.faults {
            let active = fault.spec.seconds_into(elapsed_seconds).is_some();
            if active == fault.active {
                continue;
            }
            fault.active = active;
            let FaultSpec {
                site,
                sensor,
                kind,
                duration,
                ..
            } = &fault.spec;
            if active {
                let duration = humantime::format_duration(*duration);
                tracing::info!(
                    fault = %kind,
                    %site,
                    %sensor,
                    %duration,
                    "fault: {kind} on {site}/{sensor} starts, {duration}"
                );
            } else {
                tracing::info!(
                    fault = %kind,
                    %site,
                    %sensor,
                    "fault: {kind} on {site}/{sensor} ends"
                );
            }
        }
    }

    /// The reading the sensor at `sensor_index` sends `elapsed_seconds`
    /// after the run's start, given the one it would send if healthy;
    /// `None` when it sends nothing.
    pub(crate) fn apply(
        &self,
        sensor_index: usize,
        elapsed_seconds: f64,
        tick_seconds: f64,
        healthy: f64,
    ) -> Option<f64> {
        for fault in &self.faults {
            if fault.sensor_index == sensor_index
                && let Some(seconds_into) = fault.spec.seconds_into(elapsed_seconds)
            {
                return faulty_reading(&fault.spec, seconds_into, tick_seconds, healthy);
            }
        }
        Some(healthy)
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;
    use std::ops::Range;

    use chrono::DateTime;
    use stoker_analytics::engine::{self, Phase, Plan, Series, Transition};
    use stoker_analytics::evaluate::{self, Target, Watch};
    use stoker_domain::{EpochMillis, SensorKey, SiteSlug, Unit};
    use stoker_rules::{
        Agg, NewAlertRule, Op, Record, RuleKind, RuleSelector, Severity, Threshold,
    };
    use stoker_timeseries::BucketStats;
    use uuid::Uuid;

    use super::*;
    use crate::fleet::fleet;
    use crate::signal::SiteSignals;

    const SENSORS: usize = 12;
    // Positions of boiler 1's sensors in a site's messages.
    const STEAM_PRESSURE: usize = 0;
    const FLUE_TEMP: usize = 1;
    const WATER_TEMP: usize = 2;
    const FEEDWATER_FLOW: usize = 3;
    const FLUE_O2: usize = 5;

    fn faulty_args() -> SimulateArgs {
        SimulateArgs {
            faults: true,
            ..SimulateArgs::default()
        }
    }

    fn spec_of(kind: FaultKind) -> FaultSpec {
        fault_plan(&faulty_args())
            .into_iter()
            .find(|spec| spec.kind == kind)
            .unwrap()
    }

    /// Readings of the first site's twelve sensors, one tick a second for
    /// `seconds`: row `i` is the message `i + 1` seconds into the run.
    fn readings(seed: u64, args: &SimulateArgs, seconds: usize) -> Vec<Vec<Option<f64>>> {
        let site = &fleet(args)[0];
        let mut signals = SiteSignals::new(seed, 0, SENSORS, 1.0)
            .with_faults(SiteFaults::new(&fault_plan(args), site));
        (0..seconds)
            .map(|_| {
                signals.step();
                (0..SENSORS).map(|index| signals.reading(index)).collect()
            })
            .collect()
    }

    fn column(rows: &[Vec<Option<f64>>], index: usize) -> Vec<Option<f64>> {
        rows.iter().map(|row| row[index]).collect()
    }

    fn present(values: &[Option<f64>]) -> Vec<f64> {
        values.iter().flatten().copied().collect()
    }

    /// The time (seconds into the run) of row `row`.
    fn time_of(row: usize) -> f64 {
        (row + 1) as f64
    }

    // The suggested rules of the module documentation, judged by
    // analytics' own engine through the backtest's steps, at every reading
    // (one a second): row `row`'s reading is at `row` seconds, and the tick
    // at the end of that second judges it.

    /// A reading a second.
    const ROW_MS: i64 = 1000;

    fn tick_of(row: usize) -> i64 {
        (row as i64 + 1) * ROW_MS
    }

    fn seconds(seconds: usize) -> Duration {
        Duration::from_secs(seconds as u64)
    }

    /// A sensor's readings as the engine reads them: a bucket per reading.
    fn series(values: &[Option<f64>]) -> Series {
        let buckets = values
            .iter()
            .enumerate()
            .filter_map(|(row, value)| {
                let value = (*value)?;
                Some(BucketStats {
                    start: EpochMillis::from_millis(row as i64 * ROW_MS).unwrap(),
                    count: 1,
                    sum: value,
                    min: value,
                    max: value,
                    first: value,
                    last: value,
                    stddev: 0.0,
                })
            })
            .collect();
        Series::new(ROW_MS, buckets)
    }

    /// What `kind` measures at each row; `None` where the engine has
    /// nothing to judge.
    fn measured(values: &[Option<f64>], kind: RuleKind) -> Vec<Option<f64>> {
        let series = series(values);
        (0..values.len())
            .map(|row| engine::measure(&kind, &series, tick_of(row)))
            .collect()
    }

    /// Rate-of-change rule: the engine's change per minute over the last
    /// `window` seconds.
    fn rate_per_min(values: &[Option<f64>], window: usize) -> Vec<Option<f64>> {
        let kind = RuleKind::RateOfChange {
            op: Op::Gt,
            rate_per_min: 1.5,
            clear_rate_per_min: 1.0,
            window: seconds(window),
        };
        measured(values, kind)
    }

    /// Anomaly rule: how many standard deviations of the `baseline` seconds
    /// before the window the mean of the last `window` seconds is from the
    /// baseline's mean.
    fn z_score(values: &[Option<f64>], window: usize, baseline: usize) -> Vec<Option<f64>> {
        let kind = RuleKind::Anomaly {
            window: seconds(window),
            baseline: seconds(baseline),
            z: 6.0,
            clear_z: 2.0,
        };
        measured(values, kind)
            .into_iter()
            .map(|z| z.map(f64::abs))
            .collect()
    }

    /// The rows during which `kind` is firing for a sensor with these
    /// readings (created at the run's start), by the backtest's replay from
    /// the first row with a whole lookback of history.
    fn alerts(values: &[Option<f64>], kind: RuleKind) -> Vec<Range<usize>> {
        let site = SiteSlug::parse("boiler-house-1").unwrap();
        let sensor = SensorKey::parse("b1_sensor").unwrap();
        let selector = RuleSelector {
            site: Some(site.clone()),
            sensor: Some(sensor.clone()),
            sensor_type: None,
        };
        let rule = NewAlertRule::new(
            "suggested",
            selector,
            kind.clone(),
            Severity::Warning,
            true,
            None,
        )
        .unwrap()
        .into_rule(Record {
            id: Uuid::nil(),
            version: 1,
            created_at: DateTime::UNIX_EPOCH,
            updated_at: DateTime::UNIX_EPOCH,
        });
        let watch = Watch {
            rule,
            targets: vec![Target {
                site: site.clone(),
                sensor: sensor.clone(),
                unit: Unit::parse("unit").unwrap(),
                created_ms: 0,
                kind: stoker_domain::SensorKind::Numeric,
                states: stoker_domain::States::default(),
            }],
        };
        let data = HashMap::from([(
            (site.as_str().to_owned(), sensor.as_str().to_owned()),
            series(values),
        )]);
        // The replay starts once the rule's whole lookback has readings,
        // as a backtest's range starts with history before it.
        let first_row = usize::try_from(Plan::of(&kind, ROW_MS).lookback_ms / ROW_MS - 1).unwrap();
        let ticks = (first_row..values.len()).map(tick_of);
        let steps = evaluate::replay(&watch, &data, ROW_MS, &mut [Phase::Quiet], ticks);
        let mut alerts = Vec::new();
        let mut firing_since = None;
        for step in steps {
            let row = usize::try_from(step.tick / ROW_MS - 1).unwrap();
            match step.transition {
                Transition::Fire(_) => firing_since = Some(row),
                Transition::Clear(_) => alerts.extend(firing_since.take().map(|since| since..row)),
            }
        }
        alerts.extend(firing_since.map(|since| since..values.len()));
        alerts
    }

    /// A threshold rule on `agg` over `window` seconds, held `for_` seconds.
    fn threshold_rule(
        values: &[Option<f64>],
        agg: Agg,
        (threshold, clear_threshold): (f64, f64),
        window: usize,
        for_: usize,
    ) -> Vec<Range<usize>> {
        let kind = RuleKind::Threshold {
            agg: Some(agg),
            op: Op::Gt,
            threshold: Threshold::Number(threshold),
            clear_threshold: Some(clear_threshold),
            window: seconds(window),
            for_: seconds(for_),
        };
        alerts(values, kind)
    }

    // The suggested rules of the module documentation.
    fn overpressure_rule(pressure: &[Option<f64>]) -> Vec<Range<usize>> {
        threshold_rule(pressure, Agg::Mean, (12.5, 12.0), 30, 30)
    }
    fn stuck_rule(o2: &[Option<f64>]) -> Vec<Range<usize>> {
        threshold_rule(o2, Agg::Min, (15.0, 10.0), 60, 0)
    }
    fn drift_rule(temperature: &[Option<f64>]) -> Vec<Range<usize>> {
        let kind = RuleKind::RateOfChange {
            op: Op::Gt,
            rate_per_min: 1.5,
            clear_rate_per_min: 1.0,
            window: seconds(120),
        };
        alerts(temperature, kind)
    }
    fn spike_rule(temperature: &[Option<f64>]) -> Vec<Range<usize>> {
        let kind = RuleKind::Anomaly {
            window: seconds(15),
            baseline: seconds(45),
            z: 6.0,
            clear_z: 2.0,
        };
        alerts(temperature, kind)
    }
    fn silence_rule(flow: &[Option<f64>]) -> Vec<Range<usize>> {
        alerts(
            flow,
            RuleKind::NoData {
                timeout: seconds(120),
            },
        )
    }

    /// The rows of `spec`'s occurrences in a run of `rows` rows.
    fn occurrences(spec: &FaultSpec, rows: usize) -> Vec<Range<usize>> {
        let mut occurrences: Vec<Range<usize>> = Vec::new();
        for row in 0..rows {
            if spec.is_active(Duration::from_secs_f64(time_of(row))) {
                match occurrences.last_mut() {
                    Some(last) if last.end == row => last.end = row + 1,
                    _ => occurrences.push(row..row + 1),
                }
            }
        }
        occurrences
    }

    /// Checks that every alert starts during an occurrence of the fault
    /// and ends at most `slack` rows after it, and that each occurrence
    /// has `per_occurrence` alerts.
    fn assert_alerts_follow_the_fault(
        alerts: &[Range<usize>],
        occurrences: &[Range<usize>],
        per_occurrence: usize,
        slack: usize,
        what: &str,
    ) {
        for occurrence in occurrences {
            let during: Vec<&Range<usize>> = alerts
                .iter()
                .filter(|alert| occurrence.contains(&alert.start))
                .collect();
            assert_eq!(
                during.len(),
                per_occurrence,
                "{what}: alerts {alerts:?} during fault {occurrence:?}"
            );
            for alert in during {
                assert!(
                    alert.end <= occurrence.end + slack,
                    "{what}: alert {alert:?} outlasts fault {occurrence:?}"
                );
            }
        }
        for alert in alerts {
            assert!(
                occurrences
                    .iter()
                    .any(|occurrence| occurrence.contains(&alert.start)),
                "{what}: alert {alert:?} outside faults {occurrences:?}"
            );
        }
    }

    /// Two cycles and a little, ending before the third cycle's first fault.
    const FAULTY_RUN_SECONDS: usize = 985;
    /// Two hours: long enough that a rule firing on a healthy signal would.
    const HEALTHY_RUN_SECONDS: usize = 7200;

    #[test]
    fn plan_is_the_documented_schedule() {
        let plan = fault_plan(&faulty_args());
        let rows: Vec<(&str, &str, FaultKind, u64, u64)> = plan
            .iter()
            .map(|spec| {
                assert_eq!(spec.cycle, Duration::from_secs(480));
                (
                    spec.site.as_str(),
                    spec.sensor.as_str(),
                    spec.kind,
                    spec.start.as_secs(),
                    spec.duration.as_secs(),
                )
            })
            .collect();
        assert_eq!(
            rows,
            [
                ("boiler-house-1", "b1_flue_o2", FaultKind::Stuck, 30, 150),
                (
                    "boiler-house-1",
                    "b1_steam_pressure",
                    FaultKind::Overpressure,
                    60,
                    240
                ),
                (
                    "boiler-house-1",
                    "b1_water_temp",
                    FaultKind::Drifting,
                    90,
                    180
                ),
                (
                    "boiler-house-1",
                    "b1_feedwater_flow",
                    FaultKind::Silent,
                    180,
                    180
                ),
                (
                    "boiler-house-1",
                    "b1_flue_temp",
                    FaultKind::Spiking,
                    300,
                    160
                ),
            ]
        );
        // Every fault ends within its cycle, and the sensors are distinct.
        for spec in &plan {
            assert!(spec.start + spec.duration < spec.cycle, "{spec:?}");
        }
        let mut sensors: Vec<&str> = plan.iter().map(|spec| spec.sensor.as_str()).collect();
        sensors.sort_unstable();
        sensors.dedup();
        assert_eq!(sensors.len(), plan.len());
    }

    #[test]
    fn plan_is_empty_without_faults_and_skips_sensors_the_run_lacks() {
        assert!(fault_plan(&SimulateArgs::default()).is_empty());
        let kinds = |sensors: u32| -> Vec<FaultKind> {
            fault_plan(&SimulateArgs {
                sensors,
                ..faulty_args()
            })
            .iter()
            .map(|spec| spec.kind)
            .collect()
        };
        assert_eq!(kinds(1), [FaultKind::Overpressure]);
        assert_eq!(
            kinds(3),
            [
                FaultKind::Overpressure,
                FaultKind::Drifting,
                FaultKind::Spiking
            ]
        );
        assert_eq!(kinds(6).len(), 5);
    }

    #[test]
    fn plan_scales_with_the_cycle_and_follows_the_site_prefix() {
        let plan = fault_plan(&SimulateArgs {
            site_prefix: "plant".to_owned(),
            fault_cycle: Duration::from_secs(8),
            sites: 3,
            ..faulty_args()
        });
        assert_eq!(plan.len(), 5);
        assert!(plan.iter().all(|spec| spec.site == "plant-1"));
        let overpressure = &plan[1];
        assert_eq!(overpressure.start, Duration::from_secs(1));
        assert_eq!(overpressure.duration, Duration::from_secs(4));
        assert_eq!(overpressure.cycle, Duration::from_secs(8));
        // Odd cycles round to whole milliseconds.
        let plan = fault_plan(&SimulateArgs {
            fault_cycle: Duration::from_secs(7),
            ..faulty_args()
        });
        assert_eq!(plan[0].start, Duration::from_micros(437_000));
    }

    #[test]
    fn a_fault_is_on_from_its_start_to_its_end_in_every_cycle() {
        let spec = spec_of(FaultKind::Silent);
        let on = |seconds: f64| spec.is_active(Duration::from_secs_f64(seconds));
        for cycle in [0.0, 480.0, 4800.0] {
            assert!(!on(cycle + 179.999));
            assert!(on(cycle + 180.0));
            assert!(on(cycle + 359.999));
            assert!(!on(cycle + 360.0));
        }
    }

    #[test]
    fn stuck_reading_is_one_constant_value_during_the_fault() {
        let spec = spec_of(FaultKind::Stuck);
        for (seconds_into, healthy) in [(0.0, 3.1), (10.0, 5.5), (149.9, 4.2)] {
            assert_eq!(
                faulty_reading(&spec, seconds_into, 1.0, healthy),
                Some(STUCK_O2_PERCENT)
            );
        }
        let occurrences = occurrences(&spec, FAULTY_RUN_SECONDS);
        for seed in 0..5 {
            let o2 = column(&readings(seed, &faulty_args(), FAULTY_RUN_SECONDS), FLUE_O2);
            for (row, value) in o2.iter().enumerate() {
                let value = value.unwrap();
                if occurrences
                    .iter()
                    .any(|occurrence| occurrence.contains(&row))
                {
                    assert_eq!(value, STUCK_O2_PERCENT, "row {row}");
                } else {
                    assert!((2.5..6.0).contains(&value), "row {row}: {value}");
                }
            }
            assert_alerts_follow_the_fault(&stuck_rule(&o2), &occurrences, 1, 1, "stuck");
        }
    }

    #[test]
    fn drift_climbs_at_the_stated_rate_and_returns() {
        let spec = spec_of(FaultKind::Drifting);
        let duration = spec.duration.as_secs_f64();
        // 9 °C over 3 min: 3 °C a minute at the default cycle.
        for seconds_into in [0.0, 30.0, 100.0, 119.0] {
            let per_minute =
                drift_offset(seconds_into + 60.0, duration) - drift_offset(seconds_into, duration);
            assert!((per_minute - 3.0).abs() < 1e-9, "{per_minute}");
        }
        assert_eq!(faulty_reading(&spec, 0.0, 1.0, 107.0), Some(107.0));
        let occurrences = occurrences(&spec, FAULTY_RUN_SECONDS);
        for seed in 0..5 {
            let temperature = column(
                &readings(seed, &faulty_args(), FAULTY_RUN_SECONDS),
                WATER_TEMP,
            );
            let rates = rate_per_min(&temperature, 120);
            for occurrence in &occurrences {
                // Two minutes into the drift the rule's window holds only
                // drifting readings: the rate is the drift's, give or take
                // the process and the noise.
                for rate in &rates[occurrence.start + 120..occurrence.end] {
                    let rate = rate.unwrap();
                    assert!((2.0..4.0).contains(&rate), "{rate} °C/min");
                }
                // Once it ends, the reading is back where it started.
                let before = temperature[occurrence.start - 1].unwrap();
                let after = temperature[occurrence.end].unwrap();
                assert!((after - before).abs() < 1.5, "{before} → {after}");
            }
            assert_alerts_follow_the_fault(
                &drift_rule(&temperature),
                &occurrences,
                1,
                1,
                "drifting",
            );
        }
    }

    #[test]
    fn each_spike_is_one_reading_far_outside_the_band() {
        let spec = spec_of(FaultKind::Spiking);
        let duration = spec.duration.as_secs_f64();
        for tick_seconds in [0.05, 0.3, 1.0, 5.0] {
            // Readings as the publishing loop times them: by adding ticks.
            let mut seconds_into = 0.0;
            let mut spikes = 0;
            while seconds_into < duration {
                spikes += usize::from(is_spike(seconds_into, 1.0, tick_seconds));
                seconds_into += tick_seconds;
            }
            assert_eq!(spikes, 3, "tick {tick_seconds} s");
        }
        assert_eq!(faulty_reading(&spec, 75.0, 1.0, 200.0), Some(200.0));
        assert_eq!(faulty_reading(&spec, 76.0, 1.0, 200.0), Some(SPIKE_CELSIUS));
        assert_eq!(faulty_reading(&spec, 77.0, 1.0, 200.0), Some(200.0));
        assert!(SPIKE_CELSIUS <= CATALOGUE[FLUE_TEMP].max);

        let occurrences = occurrences(&spec, FAULTY_RUN_SECONDS);
        for seed in 0..10 {
            let temperature = column(
                &readings(seed, &faulty_args(), FAULTY_RUN_SECONDS),
                FLUE_TEMP,
            );
            let z = z_score(&temperature, 15, 45);
            let spike_rows: Vec<usize> = (0..temperature.len())
                .filter(|row| temperature[*row] == Some(SPIKE_CELSIUS))
                .collect();
            assert_eq!(spike_rows.len(), 3 * occurrences.len(), "{spike_rows:?}");
            for row in spike_rows {
                // While the spike is in the rule's window, the window is
                // more than 6 standard deviations off its baseline.
                for z in &z[row..row + 15] {
                    assert!(z.unwrap() > 6.0, "spike at row {row}: z {z:?}");
                }
            }
            assert_alerts_follow_the_fault(
                &spike_rule(&temperature),
                &occurrences,
                3,
                16,
                "spiking",
            );
        }
    }

    #[test]
    fn a_silent_sensor_sends_nothing_for_longer_than_two_minutes() {
        let spec = spec_of(FaultKind::Silent);
        assert_eq!(faulty_reading(&spec, 0.0, 1.0, 20.0), None);
        assert!(spec.duration > Duration::from_secs(150));
        let occurrences = occurrences(&spec, FAULTY_RUN_SECONDS);
        let flow = column(
            &readings(3, &faulty_args(), FAULTY_RUN_SECONDS),
            FEEDWATER_FLOW,
        );
        for (row, value) in flow.iter().enumerate() {
            let silent = occurrences
                .iter()
                .any(|occurrence| occurrence.contains(&row));
            assert_eq!(value.is_none(), silent, "row {row}");
        }
        assert_alerts_follow_the_fault(&silence_rule(&flow), &occurrences, 1, 1, "silent");
    }

    #[test]
    fn overpressure_swings_around_the_trigger_and_falls_back() {
        let spec = spec_of(FaultKind::Overpressure);
        let duration = spec.duration.as_secs_f64();
        for healthy in [9.5, 10.5, 11.5] {
            let pressure: Vec<Option<f64>> = (0..spec.duration.as_secs() as usize + 60)
                .map(|second| {
                    let seconds_into = second as f64;
                    Some(if seconds_into < duration {
                        overpressure(seconds_into, duration, 1.0, healthy)
                    } else {
                        healthy
                    })
                })
                .collect();
            // Between the ramps, the pressure crosses 12.5 bar downwards
            // at least twice but never falls to 12.0 bar.
            let plateau = present(&pressure[40..200]);
            let crossings = plateau
                .windows(2)
                .filter(|pair| pair[0] >= 12.5 && pair[1] < 12.5)
                .count();
            assert!(crossings >= 2, "{crossings} crossings");
            assert!(plateau.iter().all(|bar| (12.0..13.1).contains(bar)));
            // It starts and ends at the healthy pressure.
            assert_eq!(pressure[0], Some(healthy));
            assert!((pressure[239].unwrap() - healthy).abs() < 0.01);
            // The suggested rule fires once and clears once the pressure
            // is back; without hysteresis it would flap.
            let fired = overpressure_rule(&pressure);
            assert_eq!(fired.len(), 1, "{fired:?}");
            assert!(fired[0].end < 240 + 30, "{fired:?}");
            let flapping = threshold_rule(&pressure, Agg::Mean, (12.5, 12.5), 30, 30);
            assert!(flapping.len() >= 2, "{flapping:?}");
        }
        let occurrences = occurrences(&spec, FAULTY_RUN_SECONDS);
        for seed in 0..5 {
            let pressure = column(
                &readings(seed, &faulty_args(), FAULTY_RUN_SECONDS),
                STEAM_PRESSURE,
            );
            assert_alerts_follow_the_fault(
                &overpressure_rule(&pressure),
                &occurrences,
                1,
                30,
                "overpressure",
            );
        }
    }

    #[test]
    fn suggested_rules_stay_quiet_without_faults() {
        for seed in 0..10 {
            let rows = readings(seed, &SimulateArgs::default(), HEALTHY_RUN_SECONDS);
            let quiet = |fired: Vec<Range<usize>>, what: &str| {
                assert!(fired.is_empty(), "seed {seed}: {what} fired at {fired:?}");
            };
            quiet(
                overpressure_rule(&column(&rows, STEAM_PRESSURE)),
                "overpressure",
            );
            quiet(stuck_rule(&column(&rows, FLUE_O2)), "stuck");
            quiet(drift_rule(&column(&rows, WATER_TEMP)), "drifting");
            quiet(spike_rule(&column(&rows, FLUE_TEMP)), "spiking");
            quiet(silence_rule(&column(&rows, FEEDWATER_FLOW)), "silent");
        }
    }

    #[test]
    fn faults_leave_every_other_reading_as_it_was() {
        let plan = fault_plan(&faulty_args());
        let healthy = readings(11, &SimulateArgs::default(), FAULTY_RUN_SECONDS);
        let faulty = readings(11, &faulty_args(), FAULTY_RUN_SECONDS);
        let faulty_sensors: Vec<usize> = plan
            .iter()
            .map(|spec| {
                CATALOGUE
                    .iter()
                    .position(|entry| spec.sensor == format!("b1_{}", entry.name))
                    .unwrap()
            })
            .collect();
        for (row, (healthy, faulty)) in healthy.iter().zip(&faulty).enumerate() {
            let elapsed = Duration::from_secs_f64(time_of(row));
            for index in 0..SENSORS {
                let affected = plan
                    .iter()
                    .zip(&faulty_sensors)
                    .any(|(spec, sensor)| *sensor == index && spec.is_active(elapsed));
                if !affected {
                    assert_eq!(healthy[index], faulty[index], "row {row}, sensor {index}");
                }
            }
        }
    }

    #[test]
    fn each_start_and_end_is_noticed_once() {
        let args = faulty_args();
        let mut faults = SiteFaults::new(&fault_plan(&args), &fleet(&args)[0]);
        let mut changes = vec![0; faults.faults.len()];
        for second in 1..=960 {
            let before: Vec<bool> = faults.faults.iter().map(|fault| fault.active).collect();
            faults.advance(f64::from(second));
            for (index, fault) in faults.faults.iter().enumerate() {
                changes[index] += usize::from(fault.active != before[index]);
            }
        }
        // Two cycles: each fault started and ended twice.
        assert_eq!(changes, [4; 5]);
        // Other sites have no faults.
        let second_site = SiteFaults::new(
            &fault_plan(&args),
            &fleet(&SimulateArgs { sites: 2, ..args })[1],
        );
        assert!(second_site.faults.is_empty());
    }
}
