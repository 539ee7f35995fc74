//! The fleet a run publishes: which sites, which sensors, and what each
//! sensor measures.

use serde::Serialize;

use crate::args::SimulateArgs;
use crate::names::site_slug;

/// Every simulated site is in the same time zone: the fleet is one
/// operator's plant.
const TIMEZONE: &str = "Europe/Berlin";

/// What one boiler measures, in the order sensors are handed out.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Measurement {
    SteamPressure,
    FlueTemp,
    WaterTemp,
    FeedwaterFlow,
    DrumLevel,
    FlueO2,
    BurnerLoad,
    StackTemp,
    FuelFlow,
    BlowdownTemp,
}

/// A row of the per-boiler catalogue.
#[derive(Debug)]
pub(crate) struct CatalogueEntry {
    pub(crate) measurement: Measurement,
    pub(crate) name: &'static str,
    pub(crate) sensor_type: &'static str,
    pub(crate) unit: &'static str,
    pub(crate) min: f64,
    pub(crate) max: f64,
}

const fn entry(
    measurement: Measurement,
    name: &'static str,
    sensor_type: &'static str,
    unit: &'static str,
    min: f64,
    max: f64,
) -> CatalogueEntry {
    CatalogueEntry {
        measurement,
        name,
        sensor_type,
        unit,
        min,
        max,
    }
}

/// The sensors of one boiler. `--sensors` hands them out boiler by boiler:
/// 12 sensors are boiler 1's ten and boiler 2's first two.
pub(crate) const CATALOGUE: [CatalogueEntry; 10] = [
    entry(
        Measurement::SteamPressure,
        "steam_pressure",
        "pressure",
        "bar",
        0.0,
        25.0,
    ),
    entry(
        Measurement::FlueTemp,
        "flue_temp",
        "temperature",
        "°C",
        0.0,
        600.0,
    ),
    entry(
        Measurement::WaterTemp,
        "water_temp",
        "temperature",
        "°C",
        0.0,
        200.0,
    ),
    entry(
        Measurement::FeedwaterFlow,
        "feedwater_flow",
        "flow",
        "m3/h",
        0.0,
        60.0,
    ),
    entry(
        Measurement::DrumLevel,
        "drum_level",
        "level",
        "%",
        0.0,
        100.0,
    ),
    entry(Measurement::FlueO2, "flue_o2", "o2", "%", 0.0, 21.0),
    entry(
        Measurement::BurnerLoad,
        "burner_load",
        "load",
        "%",
        0.0,
        100.0,
    ),
    entry(
        Measurement::StackTemp,
        "stack_temp",
        "temperature",
        "°C",
        0.0,
        400.0,
    ),
    entry(
        Measurement::FuelFlow,
        "fuel_flow",
        "flow",
        "Nm3/h",
        0.0,
        2000.0,
    ),
    entry(
        Measurement::BlowdownTemp,
        "blowdown_temp",
        "temperature",
        "°C",
        0.0,
        250.0,
    ),
];

/// A simulated burner sequencer's states, in the order registered (the
/// order InfluxDB's index follows).
pub(crate) const SEQUENCER_STATES: [&str; 5] = ["off", "purge", "ignition", "firing", "lockout"];

/// A boiler's digital signals (`--digital`), two per boiler in this order.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Digital {
    /// `b{n}_burner_on`: the flame is on (the sequencer is firing).
    BurnerOn,
    /// `b{n}_sequencer`: the burner sequencer's state.
    Sequencer,
}

/// A simulated boolean or state sensor, serialized exactly as the API's
/// create-sensor body.
#[derive(Debug, Clone, Serialize)]
pub struct SignalSpec {
    /// `b{boiler}_burner_on` or `b{boiler}_sequencer`.
    pub key: String,
    /// `burner` or `sequencer`.
    #[serde(rename = "type")]
    pub sensor_type: String,
    /// `-`: these signals have no unit.
    pub unit: String,
    /// `boolean` or `state`.
    pub kind: &'static str,
    /// A state sensor's states.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub states: Vec<&'static str>,
    /// The boiler (0-based) whose signal it is.
    #[serde(skip)]
    pub(crate) boiler: usize,
    #[serde(skip)]
    pub(crate) digital: Digital,
}

/// The digital signals of a site whose sensors span `boilers` boilers.
fn signals(boilers: usize) -> Vec<SignalSpec> {
    (0..boilers)
        .flat_map(|boiler| {
            let number = boiler + 1;
            [
                SignalSpec {
                    key: format!("b{number}_burner_on"),
                    sensor_type: "burner".to_owned(),
                    unit: "-".to_owned(),
                    kind: "boolean",
                    states: Vec::new(),
                    boiler,
                    digital: Digital::BurnerOn,
                },
                SignalSpec {
                    key: format!("b{number}_sequencer"),
                    sensor_type: "sequencer".to_owned(),
                    unit: "-".to_owned(),
                    kind: "state",
                    states: SEQUENCER_STATES.to_vec(),
                    boiler,
                    digital: Digital::Sequencer,
                },
            ]
        })
        .collect()
}

/// The catalogue row and boiler (0-based) of a site's sensor by position.
pub(crate) fn sensor_slot(index: usize) -> (usize, &'static CatalogueEntry) {
    (index / CATALOGUE.len(), &CATALOGUE[index % CATALOGUE.len()])
}

/// Number of boilers a site needs for `sensors` sensors.
pub(crate) fn boilers_for(sensors: usize) -> usize {
    sensors.div_ceil(CATALOGUE.len())
}

/// A simulated site (boiler house), as created through the API.
#[derive(Debug, Clone, Serialize)]
pub struct SiteSpec {
    /// The site's slug, `{site_prefix}-{n}`, counting from 1.
    pub slug: String,
    /// Human-readable name, e.g. "Boiler house 3".
    pub name: String,
    /// IANA time zone.
    pub timezone: String,
    /// The sensors the site publishes, in message order.
    pub sensors: Vec<SensorSpec>,
    /// Its boilers' digital signals (`--digital`; empty otherwise),
    /// published after the sensors.
    pub signals: Vec<SignalSpec>,
}

/// A simulated sensor, serialized exactly as the API's create-sensor body.
#[derive(Debug, Clone, Serialize)]
pub struct SensorSpec {
    /// `b{boiler}_{measurement}`, e.g. `b1_steam_pressure`.
    pub key: String,
    /// Lowercase sensor type, e.g. `pressure`.
    #[serde(rename = "type")]
    pub sensor_type: String,
    /// Unit of the readings, e.g. `bar`.
    pub unit: String,
    /// Lowest valid reading; every simulated reading is at least this.
    pub min: f64,
    /// Highest valid reading; every simulated reading is at most this.
    pub max: f64,
}

/// The sites and sensors a run with these options publishes. Deterministic:
/// the same options always give the same fleet (the seed changes only the
/// signals).
pub fn fleet(args: &SimulateArgs) -> Vec<SiteSpec> {
    let sensors: Vec<SensorSpec> = (0..args.sensors as usize)
        .map(|index| {
            let (_, entry) = sensor_slot(index);
            SensorSpec {
                key: sensor_key(index),
                sensor_type: entry.sensor_type.to_owned(),
                unit: entry.unit.to_owned(),
                min: entry.min,
                max: entry.max,
            }
        })
        .collect();
    let digital = if args.digital {
        signals(boilers_for(args.sensors as usize))
    } else {
        Vec::new()
    };
    let name_prefix = display_name(&args.site_prefix);
    (1..=args.sites)
        .map(|number| SiteSpec {
            slug: site_slug(&args.site_prefix, number),
            name: format!("{name_prefix} {number}"),
            timezone: TIMEZONE.to_owned(),
            sensors: sensors.clone(),
            signals: digital.clone(),
        })
        .collect()
}

/// The key of a site's sensor by position: `b{boiler}_{measurement}`.
pub(crate) fn sensor_key(index: usize) -> String {
    let (boiler, entry) = sensor_slot(index);
    format!("b{}_{}", boiler + 1, entry.name)
}

/// "boiler-house" → "Boiler house".
fn display_name(prefix: &str) -> String {
    let spaced = prefix.replace(['-', '_'], " ");
    let mut characters = spaced.trim().chars();
    match characters.next() {
        Some(first) => first.to_uppercase().chain(characters).collect(),
        None => "Site".to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::names::{MAX_SENSORS_PER_SITE, is_identifier};

    /// Sensor types are lowercase identifiers: `[a-z][a-z0-9_]*`.
    fn is_sensor_type(text: &str) -> bool {
        let bytes = text.as_bytes();
        matches!(bytes.first(), Some(b'a'..=b'z'))
            && bytes
                .iter()
                .all(|byte| matches!(byte, b'a'..=b'z' | b'0'..=b'9' | b'_'))
    }

    #[test]
    fn default_fleet_is_one_site_with_boiler_one_and_two_sensors_of_boiler_two() {
        let fleet = fleet(&SimulateArgs::default());
        assert_eq!(fleet.len(), 1);
        let site = &fleet[0];
        assert_eq!(site.slug, "boiler-house-1");
        assert_eq!(site.name, "Boiler house 1");
        assert_eq!(site.timezone, "Europe/Berlin");
        let keys: Vec<&str> = site
            .sensors
            .iter()
            .map(|sensor| sensor.key.as_str())
            .collect();
        assert_eq!(
            keys,
            [
                "b1_steam_pressure",
                "b1_flue_temp",
                "b1_water_temp",
                "b1_feedwater_flow",
                "b1_drum_level",
                "b1_flue_o2",
                "b1_burner_load",
                "b1_stack_temp",
                "b1_fuel_flow",
                "b1_blowdown_temp",
                "b2_steam_pressure",
                "b2_flue_temp",
            ]
        );
        assert_eq!(site.sensors[0].sensor_type, "pressure");
        assert_eq!(site.sensors[0].unit, "bar");
        assert_eq!((site.sensors[0].min, site.sensors[0].max), (0.0, 25.0));
        assert_eq!(site.sensors[8].unit, "Nm3/h");
    }

    #[test]
    fn every_slug_key_and_type_follows_the_contract() {
        let args = SimulateArgs {
            sites: 250,
            sensors: MAX_SENSORS_PER_SITE,
            ..SimulateArgs::default()
        };
        let fleet = fleet(&args);
        assert_eq!(fleet.len(), 250);
        assert_eq!(fleet[249].slug, "boiler-house-250");
        let mut slugs = std::collections::HashSet::new();
        for site in &fleet {
            assert!(is_identifier(&site.slug), "{}", site.slug);
            assert!(slugs.insert(site.slug.as_str()), "duplicate {}", site.slug);
            assert_eq!(site.sensors.len(), MAX_SENSORS_PER_SITE as usize);
        }
        let mut keys = std::collections::HashSet::new();
        for sensor in &fleet[0].sensors {
            assert!(is_identifier(&sensor.key), "{}", sensor.key);
            assert!(keys.insert(sensor.key.as_str()), "duplicate {}", sensor.key);
            assert!(
                is_sensor_type(&sensor.sensor_type),
                "{}",
                sensor.sensor_type
            );
            assert!(sensor.min < sensor.max);
        }
        assert_eq!(fleet[0].sensors.last().unwrap().key, "b100_blowdown_temp");
    }

    #[test]
    fn sensor_spec_serializes_as_the_create_sensor_body() {
        let sensor = &fleet(&SimulateArgs::default())[0].sensors[1];
        let body = serde_json::to_value(sensor).unwrap();
        assert_eq!(
            body,
            serde_json::json!({
                "key": "b1_flue_temp", "type": "temperature", "unit": "°C", "min": 0.0, "max": 600.0
            })
        );
    }

    #[test]
    fn digital_signals_are_two_per_boiler_with_their_kinds() {
        assert!(fleet(&SimulateArgs::default())[0].signals.is_empty());
        let site = &fleet(&SimulateArgs {
            digital: true,
            ..SimulateArgs::default()
        })[0];
        let keys: Vec<&str> = site
            .signals
            .iter()
            .map(|signal| signal.key.as_str())
            .collect();
        assert_eq!(
            keys,
            [
                "b1_burner_on",
                "b1_sequencer",
                "b2_burner_on",
                "b2_sequencer"
            ]
        );
        assert_eq!(
            serde_json::to_value(&site.signals[0]).unwrap(),
            serde_json::json!({"key": "b1_burner_on", "type": "burner", "unit": "-", "kind": "boolean"})
        );
        assert_eq!(
            serde_json::to_value(&site.signals[1]).unwrap(),
            serde_json::json!({"key": "b1_sequencer", "type": "sequencer", "unit": "-", "kind": "state",
                               "states": ["off", "purge", "ignition", "firing", "lockout"]})
        );
    }

    #[test]
    fn identifier_rule() {
        for good in ["a", "0", "boiler-house-1", "b1_flue_o2", &"a".repeat(63)] {
            assert!(is_identifier(good), "{good}");
        }
        for bad in ["", "-a", "_a", "A", "a b", "a.b", "ä", &"a".repeat(64)] {
            assert!(!is_identifier(bad), "{bad}");
        }
    }

    #[test]
    fn display_name_capitalises_the_prefix() {
        assert_eq!(display_name("boiler-house"), "Boiler house");
        assert_eq!(display_name("plant_north"), "Plant north");
        assert_eq!(display_name("7"), "7");
    }
}
