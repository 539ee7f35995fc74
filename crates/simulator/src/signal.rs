//! A small process model of a boiler house, so that the readings move the
//! way a real plant's do: steam demand wanders slowly, the burner follows it,
//! and every other quantity follows the burner through its own first-order
//! lag. Readings add measurement noise and are clamped to the sensor's valid
//! range, so ingestion never rejects them. Injected faults (`--faults`) act
//! on the readings, not on the model, and draw nothing from the random
//! stream: every reading a fault leaves alone is the same as without faults.

use std::f64::consts::TAU;

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

use crate::faults::SiteFaults;
use crate::fleet::{Digital, Measurement, SEQUENCER_STATES, SignalSpec, boilers_for, sensor_slot};

/// Burner firing is limited to this band, as by a real burner's turndown
/// (low fire) and the operator's margin below full fire.
const LOAD_MIN: f64 = 0.30;
const LOAD_MAX: f64 = 0.95;
/// Mean steam demand and the amplitude of its slow swing.
const DEMAND_MEAN: f64 = 0.625;
const DEMAND_SWING: f64 = 0.2;
/// The steam demand also wanders around its swing (an Ornstein–Uhlenbeck
/// process): standard deviation and correlation time.
const DEMAND_WANDER: f64 = 0.06;
const DEMAND_CORRELATION_SECONDS: f64 = 180.0;
const PRESSURE_SETPOINT_BAR: f64 = 10.5;
const ATMOSPHERE_BAR: f64 = 1.013;

/// Time constants (seconds) of the first-order lags: how quickly each
/// quantity follows the burner.
const LAG_BURNER: f64 = 20.0;
const LAG_PRESSURE: f64 = 30.0;
const LAG_FLUE: f64 = 45.0;
const LAG_FEEDWATER_TEMP: f64 = 120.0;
const LAG_FEEDWATER_FLOW: f64 = 15.0;
const LAG_LEVEL_FAST: f64 = 8.0;
const LAG_LEVEL_SLOW: f64 = 60.0;
const LAG_O2: f64 = 10.0;
const LAG_STACK: f64 = 90.0;
const LAG_FUEL: f64 = 4.0;
const LAG_BLOWDOWN: f64 = 40.0;

/// Smoothing factors of the lags for one tick, computed once per site.
#[derive(Debug, Clone, Copy)]
struct Smoothing {
    burner: f64,
    pressure: f64,
    flue: f64,
    feedwater_temp: f64,
    feedwater_flow: f64,
    level_fast: f64,
    level_slow: f64,
    o2: f64,
    stack: f64,
    fuel: f64,
    blowdown: f64,
    /// Per-tick decay of the demand's wander and the spread of its
    /// innovation, from the exact discretisation of the OU process (stable
    /// for any tick length, unlike Euler steps).
    wander_decay: f64,
    wander_spread: f64,
}

impl Smoothing {
    fn new(tick_seconds: f64) -> Self {
        let lag = |time_constant: f64| 1.0 - (-tick_seconds / time_constant).exp();
        let wander_decay = (-tick_seconds / DEMAND_CORRELATION_SECONDS).exp();
        Self {
            burner: lag(LAG_BURNER),
            pressure: lag(LAG_PRESSURE),
            flue: lag(LAG_FLUE),
            feedwater_temp: lag(LAG_FEEDWATER_TEMP),
            feedwater_flow: lag(LAG_FEEDWATER_FLOW),
            level_fast: lag(LAG_LEVEL_FAST),
            level_slow: lag(LAG_LEVEL_SLOW),
            o2: lag(LAG_O2),
            stack: lag(LAG_STACK),
            fuel: lag(LAG_FUEL),
            blowdown: lag(LAG_BLOWDOWN),
            wander_decay,
            wander_spread: DEMAND_WANDER * (1.0 - wander_decay * wander_decay).sqrt(),
        }
    }
}

/// The state of one boiler. Fractions are of full fire (0..1).
#[derive(Debug, Clone)]
struct Boiler {
    swing_period_seconds: f64,
    swing_phase: f64,
    level_period_seconds: f64,
    level_phase: f64,
    wander: f64,
    demand: f64,
    load: f64,
    pressure: f64,
    flue_temp: f64,
    feedwater_temp: f64,
    feedwater_flow: f64,
    load_fast: f64,
    load_slow: f64,
    o2: f64,
    stack_temp: f64,
    fuel_flow: f64,
    blowdown_temp: f64,
}

impl Boiler {
    /// A boiler in steady state at its starting demand, so the first
    /// readings are already plausible.
    fn new(rng: &mut StdRng) -> Self {
        let swing_period_seconds = rng.random_range(15.0..45.0) * 60.0;
        let swing_phase = rng.random_range(0.0..TAU);
        let level_period_seconds = rng.random_range(4.0..8.0) * 60.0;
        let level_phase = rng.random_range(0.0..TAU);
        let wander = DEMAND_WANDER * gaussian(rng);
        let demand = demand_at(0.0, swing_period_seconds, swing_phase, wander);
        let load = demand;
        let pressure = pressure_target(load, demand);
        Self {
            swing_period_seconds,
            swing_phase,
            level_period_seconds,
            level_phase,
            wander,
            demand,
            load,
            pressure,
            flue_temp: flue_temp_target(load),
            feedwater_temp: feedwater_temp_target(load),
            feedwater_flow: feedwater_flow_target(load),
            load_fast: load,
            load_slow: load,
            o2: o2_target(load),
            stack_temp: stack_temp_target(load),
            fuel_flow: fuel_flow_target(load),
            blowdown_temp: blowdown_temp_target(pressure),
        }
    }

    fn step(&mut self, rng: &mut StdRng, smoothing: &Smoothing, elapsed_seconds: f64) {
        self.wander =
            self.wander * smoothing.wander_decay + smoothing.wander_spread * gaussian(rng);
        self.demand = demand_at(
            elapsed_seconds,
            self.swing_period_seconds,
            self.swing_phase,
            self.wander,
        );
        follow(&mut self.load, self.demand, smoothing.burner);
        let load = self.load;
        follow(
            &mut self.pressure,
            pressure_target(load, self.demand),
            smoothing.pressure,
        );
        follow(&mut self.flue_temp, flue_temp_target(load), smoothing.flue);
        follow(
            &mut self.feedwater_temp,
            feedwater_temp_target(load),
            smoothing.feedwater_temp,
        );
        follow(
            &mut self.feedwater_flow,
            feedwater_flow_target(load),
            smoothing.feedwater_flow,
        );
        follow(&mut self.load_fast, load, smoothing.level_fast);
        follow(&mut self.load_slow, load, smoothing.level_slow);
        follow(&mut self.o2, o2_target(load), smoothing.o2);
        follow(
            &mut self.stack_temp,
            stack_temp_target(load),
            smoothing.stack,
        );
        follow(&mut self.fuel_flow, fuel_flow_target(load), smoothing.fuel);
        follow(
            &mut self.blowdown_temp,
            blowdown_temp_target(self.pressure),
            smoothing.blowdown,
        );
    }

    /// The true value of a measurement and the standard deviation of the
    /// noise a sensor adds to it.
    fn value(&self, measurement: Measurement, elapsed_seconds: f64) -> (f64, f64) {
        match measurement {
            Measurement::SteamPressure => (self.pressure, 0.02),
            Measurement::FlueTemp => (self.flue_temp, 0.6),
            Measurement::WaterTemp => (self.feedwater_temp, 0.15),
            Measurement::FeedwaterFlow => (self.feedwater_flow, 0.15),
            Measurement::DrumLevel => {
                // Swell and shrink: a rising firing rate makes the drum's
                // water swell before the level controller catches up, so the
                // level follows the difference of a fast and a slow lag of
                // the load, plus the controller's slow hunting.
                let swell = 40.0 * (self.load_fast - self.load_slow);
                let hunting = 1.2
                    * (TAU * elapsed_seconds / self.level_period_seconds + self.level_phase).sin();
                (50.0 + swell + hunting, 0.3)
            }
            Measurement::FlueO2 => (self.o2, 0.05),
            Measurement::BurnerLoad => (100.0 * self.load, 0.2),
            Measurement::StackTemp => (self.stack_temp, 0.4),
            Measurement::FuelFlow => (self.fuel_flow, 4.0),
            Measurement::BlowdownTemp => (self.blowdown_temp, 0.2),
        }
    }
}

/// The burner sequencer cuts the flame out when steam demand falls to
/// this share of full fire (below what low fire can hold the pressure
/// at), and starts again once demand has risen above `CUT_IN`.
const CUT_OUT: f64 = 0.42;
const CUT_IN: f64 = 0.47;
/// How long a start's pre-purge and ignition take, and how long a lockout
/// lasts before the (simulated) operator resets it.
const PURGE_SECONDS: f64 = 30.0;
const IGNITION_SECONDS: f64 = 5.0;
const LOCKOUT_SECONDS: f64 = 120.0;
/// Every this many ignitions, one fails (no flame proven): lockout.
const FAILED_IGNITION_EVERY: u32 = 7;

/// A burner sequencer: `off` → `purge` → `ignition` → `firing`, back to
/// `off` at the low-fire cut-out, and `lockout` when an ignition fails.
/// Driven by its boiler's steam demand; it draws nothing from the random
/// stream, so the measurements are the same with or without `--digital`.
/// (The measurements' model keeps firing at low fire while the sequencer
/// is off: the digital signals follow the model, not the reverse.)
#[derive(Debug, Clone, Copy, PartialEq)]
struct Sequencer {
    /// Index in [`SEQUENCER_STATES`].
    state: usize,
    /// Seconds in the current state.
    since: f64,
    ignitions: u32,
}

const OFF: usize = 0;
const PURGE: usize = 1;
const IGNITION: usize = 2;
const FIRING: usize = 3;
const LOCKOUT: usize = 4;

impl Sequencer {
    fn new(demand: f64) -> Self {
        Self {
            state: if demand > CUT_OUT { FIRING } else { OFF },
            since: 0.0,
            ignitions: 0,
        }
    }

    fn step(&mut self, demand: f64, tick_seconds: f64) {
        self.since += tick_seconds;
        let next = match self.state {
            FIRING if demand < CUT_OUT => OFF,
            OFF if demand > CUT_IN => PURGE,
            PURGE if self.since >= PURGE_SECONDS => IGNITION,
            IGNITION if self.since >= IGNITION_SECONDS => {
                self.ignitions += 1;
                if self.ignitions.is_multiple_of(FAILED_IGNITION_EVERY) {
                    LOCKOUT
                } else {
                    FIRING
                }
            }
            LOCKOUT if self.since >= LOCKOUT_SECONDS => OFF,
            same => same,
        };
        if next != self.state {
            self.state = next;
            self.since = 0.0;
        }
    }
}

/// A digital signal's value, as a message carries it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum SignalValue {
    Boolean(bool),
    State(&'static str),
}

/// Steam demand: a slow swing (the plant's consumers) plus a wander,
/// limited to what the burner can fire.
fn demand_at(elapsed_seconds: f64, period_seconds: f64, phase: f64, wander: f64) -> f64 {
    let swing = DEMAND_SWING * (TAU * elapsed_seconds / period_seconds + phase).sin();
    (DEMAND_MEAN + swing + wander).clamp(LOAD_MIN, LOAD_MAX)
}

/// The pressure controller droops a little with load, and pressure rises
/// while the burner fires more than the steam demand takes (and falls while
/// it fires less).
fn pressure_target(load: f64, demand: f64) -> f64 {
    PRESSURE_SETPOINT_BAR - 0.5 * (load - 0.6) + 6.0 * (load - demand)
}

fn flue_temp_target(load: f64) -> f64 {
    140.0 + 90.0 * load
}

fn feedwater_temp_target(load: f64) -> f64 {
    105.0 + 4.0 * load
}

fn feedwater_flow_target(load: f64) -> f64 {
    8.0 + 20.0 * load
}

/// More air per unit of fuel at low fire, so more oxygen left in the flue gas.
fn o2_target(load: f64) -> f64 {
    6.5 - 3.5 * load
}

/// After the economiser, so cooler than the flue gas leaving the boiler.
fn stack_temp_target(load: f64) -> f64 {
    95.0 + 70.0 * load
}

fn fuel_flow_target(load: f64) -> f64 {
    1500.0 * load
}

/// Blowdown water leaves the drum at about its saturation temperature;
/// `100 °C · p^0.25` (p absolute, in bar) is within a few degrees of the
/// steam tables between 1 and 25 bar.
fn blowdown_temp_target(pressure_bar: f64) -> f64 {
    100.0 * (pressure_bar.max(0.0) + ATMOSPHERE_BAR).powf(0.25) - 3.0
}

/// One step of a first-order lag towards `target`.
fn follow(state: &mut f64, target: f64, smoothing: f64) {
    *state += (target - *state) * smoothing;
}

/// A standard normal sample (Box–Muller), to avoid a dependency on
/// `rand_distr` for one distribution.
fn gaussian(rng: &mut StdRng) -> f64 {
    // 1 - [0, 1) is (0, 1], so the logarithm is finite.
    let radius = (-2.0 * (1.0 - rng.random::<f64>()).ln()).sqrt();
    radius * (TAU * rng.random::<f64>()).cos()
}

/// The signals of one site: its boilers and the random stream that drives
/// them. The same seed, site and tick length give the same readings.
#[derive(Debug)]
pub(crate) struct SiteSignals {
    rng: StdRng,
    smoothing: Smoothing,
    tick_seconds: f64,
    elapsed_seconds: f64,
    boilers: Vec<Boiler>,
    /// One per boiler, beside it.
    sequencers: Vec<Sequencer>,
    faults: SiteFaults,
}

impl SiteSignals {
    pub(crate) fn new(seed: u64, site_index: usize, sensors: usize, tick_seconds: f64) -> Self {
        // Each site gets its own stream (and so its own phases), spread out
        // by the golden-ratio increment so neighbouring sites do not get
        // related seeds.
        let site_seed =
            seed.wrapping_add((site_index as u64 + 1).wrapping_mul(0x9E37_79B9_7F4A_7C15));
        let mut rng = StdRng::seed_from_u64(site_seed);
        let boilers: Vec<Boiler> = (0..boilers_for(sensors).max(1))
            .map(|_| Boiler::new(&mut rng))
            .collect();
        let sequencers = boilers
            .iter()
            .map(|boiler| Sequencer::new(boiler.demand))
            .collect();
        Self {
            rng,
            smoothing: Smoothing::new(tick_seconds),
            tick_seconds,
            elapsed_seconds: 0.0,
            boilers,
            sequencers,
            faults: SiteFaults::default(),
        }
    }

    /// The same signals with `faults` injected.
    pub(crate) fn with_faults(self, faults: SiteFaults) -> Self {
        Self { faults, ..self }
    }

    /// Advances the plant by one tick.
    pub(crate) fn step(&mut self) {
        self.elapsed_seconds += self.tick_seconds;
        for (boiler, sequencer) in self.boilers.iter_mut().zip(&mut self.sequencers) {
            boiler.step(&mut self.rng, &self.smoothing, self.elapsed_seconds);
            sequencer.step(boiler.demand, self.tick_seconds);
        }
        self.faults.advance(self.elapsed_seconds);
    }

    /// The current value of a digital signal (`--digital`).
    pub(crate) fn signal(&self, signal: &SignalSpec) -> SignalValue {
        let state = self
            .sequencers
            .get(signal.boiler)
            .map_or(OFF, |sequencer| sequencer.state);
        match signal.digital {
            Digital::BurnerOn => SignalValue::Boolean(state == FIRING),
            Digital::Sequencer => SignalValue::State(SEQUENCER_STATES[state]),
        }
    }

    /// The current reading of the site's sensor at `sensor_index` (message
    /// order): finite and inside the sensor's valid range, or `None` while
    /// the sensor is silent.
    pub(crate) fn reading(&mut self, sensor_index: usize) -> Option<f64> {
        let (boiler, entry) = sensor_slot(sensor_index);
        let (value, noise) = self.boilers[boiler].value(entry.measurement, self.elapsed_seconds);
        // The noise is drawn even for a sensor that a fault silences or
        // overrides, so that the other sensors' readings stay the same.
        let healthy = value + noise * gaussian(&mut self.rng);
        let reading = self.faults.apply(
            sensor_index,
            self.elapsed_seconds,
            self.tick_seconds,
            healthy,
        )?;
        // The model cannot produce NaN, but a reading ingestion would reject
        // must never leave the simulator, so guard rather than trust.
        Some(if reading.is_finite() {
            reading.clamp(entry.min, entry.max)
        } else {
            (entry.min + entry.max) / 2.0
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fleet::CATALOGUE;

    #[test]
    fn every_reading_is_finite_and_in_range_over_many_steps() {
        for (seed, tick_seconds) in [(1, 1.0), (2, 0.02), (3, 5.0), (4, 600.0), (5, 0.001)] {
            let sensors = 30;
            let mut signals = SiteSignals::new(seed, 0, sensors, tick_seconds);
            for _ in 0..20_000 {
                signals.step();
                for index in 0..sensors {
                    let (_, entry) = sensor_slot(index);
                    let reading = signals.reading(index).unwrap();
                    assert!(reading.is_finite());
                    assert!(
                        (entry.min..=entry.max).contains(&reading),
                        "{} = {reading} outside {}..{} (tick {tick_seconds} s)",
                        entry.name,
                        entry.min,
                        entry.max
                    );
                }
            }
        }
    }

    /// Mean, min and max of each measurement of boiler 1 over two simulated
    /// hours at one reading per second.
    fn statistics(seed: u64) -> Vec<(f64, f64, f64)> {
        let mut signals = SiteSignals::new(seed, 0, CATALOGUE.len(), 1.0);
        let mut sums = vec![(0.0, f64::MAX, f64::MIN); CATALOGUE.len()];
        let steps = 7200;
        for _ in 0..steps {
            signals.step();
            for (index, (sum, min, max)) in sums.iter_mut().enumerate() {
                let reading = signals.reading(index).unwrap();
                *sum += reading;
                *min = min.min(reading);
                *max = max.max(reading);
            }
        }
        sums.into_iter()
            .map(|(sum, min, max)| (sum / f64::from(steps), min, max))
            .collect()
    }

    #[test]
    fn readings_are_physically_plausible() {
        for seed in 0..5 {
            let stats = statistics(seed);
            let check = |measurement: Measurement, low: f64, high: f64| {
                let index = CATALOGUE
                    .iter()
                    .position(|entry| entry.measurement == measurement)
                    .unwrap();
                let (mean, min, max) = stats[index];
                assert!(
                    low <= min && max <= high,
                    "{measurement:?}: mean {mean}, range {min}..{max} not within {low}..{high}"
                );
            };
            check(Measurement::SteamPressure, 9.5, 11.5);
            check(Measurement::FlueTemp, 160.0, 240.0);
            check(Measurement::WaterTemp, 105.0, 110.0);
            check(Measurement::FeedwaterFlow, 13.0, 28.0);
            check(Measurement::DrumLevel, 43.0, 57.0);
            check(Measurement::FlueO2, 2.9, 5.6);
            check(Measurement::BurnerLoad, 29.0, 96.0);
            check(Measurement::StackTemp, 110.0, 165.0);
            check(Measurement::FuelFlow, 420.0, 1450.0);
            check(Measurement::BlowdownTemp, 175.0, 190.0);
            // The burner load must actually move: a flat line is no demo.
            let load = stats[6];
            assert!(load.2 - load.1 > 10.0, "burner load barely moves: {load:?}");
        }
    }

    #[test]
    fn the_same_seed_gives_the_same_readings_and_sites_differ() {
        let run = |seed: u64, site: usize| {
            let mut signals = SiteSignals::new(seed, site, 12, 1.0);
            (0..100)
                .map(|_| {
                    signals.step();
                    signals.reading(0).unwrap()
                })
                .collect::<Vec<_>>()
        };
        assert_eq!(run(7, 0), run(7, 0));
        assert_ne!(run(7, 0), run(7, 1));
        assert_ne!(run(7, 0), run(8, 0));
    }

    /// Readings of seed 7, site 0, 12 sensors at one tick a second, after
    /// 150, 300, 450 and 600 ticks, as the payload writes them. Recorded
    /// before fault injection existed: without `--faults` the signals must
    /// not change.
    const GOLDEN: [[&str; 12]; 4] = [
        [
            "10.36", "217.39", "108.61", "25.74", "49.27", "3.42", "88.45", "155.98", "1314.29",
            "180.45", "10.58", "178.69",
        ],
        [
            "10.37", "217.96", "108.42", "25.43", "50.61", "3.49", "86.68", "155.86", "1300.38",
            "180.75", "10.60", "179.19",
        ],
        [
            "10.52", "205.51", "107.79", "21.86", "47.09", "4.06", "67.71", "147.74", "1017.79",
            "181.18", "10.57", "179.06",
        ],
        [
            "10.53", "201.33", "108.06", "21.43", "49.26", "4.16", "67.06", "144.77", "1012.31",
            "181.26", "10.65", "177.60",
        ],
    ];

    #[test]
    fn signals_without_faults_are_the_recorded_ones() {
        let mut signals = SiteSignals::new(7, 0, 12, 1.0);
        let mut rows = Vec::new();
        for step in 1..=600 {
            signals.step();
            let row: Vec<String> = (0..12)
                .map(|index| format!("{:.2}", signals.reading(index).unwrap() + 0.0))
                .collect();
            if step % 150 == 0 {
                rows.push(row);
            }
        }
        assert_eq!(rows, GOLDEN);
    }

    #[test]
    fn the_sequencer_cuts_out_restarts_and_locks_out() {
        let mut sequencer = Sequencer::new(0.6);
        assert_eq!(SEQUENCER_STATES[sequencer.state], "firing");
        let mut seen = Vec::new();
        let mut record = |sequencer: &Sequencer| {
            let name = SEQUENCER_STATES[sequencer.state];
            if seen.last() != Some(&name) {
                seen.push(name);
            }
        };
        record(&sequencer);
        // Seven starts: demand drops below the cut-out, then rises again.
        for _ in 0..FAILED_IGNITION_EVERY {
            for (demand, seconds) in [(0.40, 10), (0.50, 60), (0.50, 150)] {
                for _ in 0..seconds {
                    sequencer.step(demand, 1.0);
                    record(&sequencer);
                }
            }
        }
        assert_eq!(&seen[..5], ["firing", "off", "purge", "ignition", "firing"]);
        assert!(seen.contains(&"lockout"), "{seen:?}");
        let lockout = seen.iter().position(|name| *name == "lockout").unwrap();
        assert_eq!(seen[lockout - 1], "ignition");
        assert_eq!(seen[lockout + 1], "off");
    }

    /// The demo rule on the sequencer (README, `--digital`), judged by
    /// analytics' own steps at every second: it fires on each lockout and
    /// clears when the sequencer leaves it.
    #[test]
    fn the_lockout_rule_fires_on_each_lockout_and_clears_after_it() {
        use stoker_analytics::engine::{Phase, Series, Transition};
        use stoker_analytics::evaluate::{self, Target, Watch};
        use stoker_domain::{EpochMillis, SensorKind, States};

        let draft: stoker_rules::RuleDraft = serde_json::from_value(serde_json::json!({
            "name": "Burner lockout", "kind": "threshold", "site": "boiler-house-1",
            "sensor": "b1_sequencer", "op": "==", "threshold": "lockout", "window": "10s",
            "severity": "critical"
        }))
        .unwrap();
        let rule = stoker_rules::NewAlertRule::parse(&draft).unwrap();
        let record = stoker_rules::Record {
            id: uuid::Uuid::nil(),
            version: 1,
            created_at: chrono::DateTime::UNIX_EPOCH,
            updated_at: chrono::DateTime::UNIX_EPOCH,
        };
        // A second per row: the scenario of the test above, as InfluxDB
        // holds it (the state's index).
        let mut sequencer = Sequencer::new(0.6);
        let mut states = Vec::new();
        for _ in 0..FAILED_IGNITION_EVERY * 2 {
            for (demand, seconds) in [(0.40, 10), (0.50, 60), (0.50, 150)] {
                for _ in 0..seconds {
                    sequencer.step(demand, 1.0);
                    states.push(sequencer.state);
                }
            }
        }
        let buckets = states.iter().enumerate().map(|(second, &state)| {
            let value = state as f64;
            stoker_timeseries::BucketStats {
                start: EpochMillis::from_millis(second as i64 * 1000).unwrap(),
                count: 1,
                sum: value,
                min: value,
                max: value,
                first: value,
                last: value,
                stddev: 0.0,
            }
        });
        let target = Target {
            site: stoker_domain::SiteSlug::parse("boiler-house-1").unwrap(),
            sensor: stoker_domain::SensorKey::parse("b1_sequencer").unwrap(),
            unit: stoker_domain::Unit::parse("-").unwrap(),
            created_ms: 0,
            kind: SensorKind::State,
            states: States::parse(SEQUENCER_STATES).unwrap(),
        };
        let data = std::collections::HashMap::from([(
            ("boiler-house-1".to_owned(), "b1_sequencer".to_owned()),
            Series::new(1000, buckets.collect()),
        )]);
        let watch = Watch {
            rule: rule.into_rule(record),
            targets: vec![target],
        };
        let ticks = (1..=states.len() as i64).map(|second| second * 1000);
        let steps = evaluate::replay(&watch, &data, 1000, &mut [Phase::Quiet], ticks);
        // Each lockout: fired at the tick after its first second, cleared
        // at the tick after its last.
        let mut episodes = Vec::new();
        for (second, pair) in states.windows(2).enumerate() {
            match (pair[0] == LOCKOUT, pair[1] == LOCKOUT) {
                (false, true) => episodes.push((second as i64 + 2) * 1000),
                (true, false) => episodes.push((second as i64 + 2) * 1000),
                _ => {}
            }
        }
        assert!(episodes.len() >= 2, "a lockout, fired and cleared");
        let seen: Vec<i64> = steps.iter().map(|step| step.tick).collect();
        assert_eq!(seen, episodes);
        assert!(matches!(steps[0].transition, Transition::Fire(value) if value == LOCKOUT as f64));
        assert!(matches!(steps[1].transition, Transition::Clear(_)));
    }

    #[test]
    fn digital_signals_follow_the_sequencer_and_leave_the_readings_alone() {
        let args = crate::args::SimulateArgs {
            digital: true,
            ..crate::args::SimulateArgs::default()
        };
        let site = &crate::fleet::fleet(&args)[0];
        let mut with = SiteSignals::new(7, 0, 12, 1.0);
        let mut without = SiteSignals::new(7, 0, 12, 1.0);
        for _ in 0..3_600 {
            with.step();
            without.step();
            let burner = with.signal(&site.signals[0]);
            let SignalValue::State(state) = with.signal(&site.signals[1]) else {
                panic!("a sequencer is a state");
            };
            assert_eq!(burner, SignalValue::Boolean(state == "firing"));
            assert_eq!(with.reading(0), without.reading(0));
        }
    }

    #[test]
    fn load_drives_the_other_quantities() {
        // At steady state, a higher load means hotter flue gas, more fuel
        // and less oxygen.
        let low = 0.35;
        let high = 0.9;
        assert!(flue_temp_target(high) > flue_temp_target(low));
        assert!(fuel_flow_target(high) > fuel_flow_target(low));
        assert!(o2_target(high) < o2_target(low));
        assert!((3.0..=6.0).contains(&o2_target(high)));
        assert!((3.0..=6.0).contains(&o2_target(low)));
        // Saturation at 10.5 bar(g) is about 186 °C.
        assert!((blowdown_temp_target(10.5) - 183.0).abs() < 5.0);
    }
}
