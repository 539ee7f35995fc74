//! Which sensor a metric is (DESIGN.md, "Sparkplug B", Mapping), and which
//! metrics are the protocol's own rather than readings.

use stoker_domain::SensorKey;

/// Metric names (or prefixes, ending in `/`) that are protocol, not readings:
/// `bdSeq`, `Node Control/*`, `Properties/*` (DESIGN.md) and the device
/// analogue of node control, `Device Control/*` (the specification's
/// DBIRTH section).
const PROTOCOL: [&str; 4] = ["bdSeq", "Node Control/", "Device Control/", "Properties/"];

/// Whether a metric of this name is the protocol's, not a reading.
pub fn is_protocol_metric(name: &str) -> bool {
    PROTOCOL.iter().any(|protocol| {
        if protocol.ends_with('/') {
            name.starts_with(protocol)
        } else {
            name == *protocol
        }
    })
}

/// The sensor key of a metric: `{metric}` for a node metric,
/// `{device}/{metric}` for a device metric, lowercased, every run of
/// characters outside `[a-z0-9_-]` made one `_`, leading `_` and `-`
/// trimmed, cut to 63 characters.
///
/// ```
/// use stoker_sparkplug::sensor_key;
/// assert_eq!(sensor_key(None, "Flue Temp (°C)").unwrap().as_str(), "flue_temp_c_");
/// assert_eq!(sensor_key(Some("Boiler 1"), "Steam/Pressure").unwrap().as_str(), "boiler_1_steam_pressure");
/// assert!(sensor_key(None, "/°/").is_err());
/// ```
pub fn sensor_key(device: Option<&str>, metric: &str) -> Result<SensorKey, KeyError> {
    let mut key = String::with_capacity(device.map_or(0, |d| d.len() + 1) + metric.len());
    let mut in_run = false;
    let full = device.into_iter().chain(std::iter::once(metric));
    for (index, part) in full.enumerate() {
        // The `/` between device and metric is outside the set like any other.
        let separator = (index > 0).then_some('/');
        for character in separator.into_iter().chain(part.chars()) {
            for lower in character.to_lowercase() {
                if matches!(lower, 'a'..='z' | '0'..='9' | '_' | '-') {
                    if (lower == '_' || lower == '-') && key.is_empty() {
                        continue;
                    }
                    key.push(lower);
                    in_run = false;
                } else if !in_run {
                    in_run = true;
                    if !key.is_empty() {
                        key.push('_');
                    }
                }
            }
        }
    }
    key.truncate(SensorKey::MAX_LEN);
    SensorKey::parse(key).map_err(|_| KeyError {
        device: device.map(|d| d.chars().take(80).collect()),
        metric: metric.chars().take(80).collect(),
    })
}

/// A metric whose name leaves no sensor key (no letter or digit in it).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("metric {metric:?}{} maps to no sensor key: its name has no letter or digit", .device.as_ref().map(|d| format!(" of device {d:?}")).unwrap_or_default())]
pub struct KeyError {
    /// The device, for a device metric (first 80 characters).
    pub device: Option<String>,
    /// The metric name (first 80 characters).
    pub metric: String,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(device: Option<&str>, metric: &str) -> String {
        sensor_key(device, metric).unwrap().as_str().to_owned()
    }

    #[test]
    fn lowercases_and_joins_device_and_metric() {
        assert_eq!(key(None, "SteamPressure"), "steampressure");
        assert_eq!(key(Some("B1"), "flue_temp"), "b1_flue_temp");
        assert_eq!(
            key(Some("boiler-1"), "Inputs/Burner On"),
            "boiler-1_inputs_burner_on"
        );
    }

    #[test]
    fn runs_outside_the_set_become_one_underscore() {
        assert_eq!(key(None, "a  //  b"), "a_b");
        assert_eq!(key(None, "Temp (°C)"), "temp_c_");
        assert_eq!(
            key(None, "a._b"),
            "a__b",
            "an existing '_' is kept beside a run"
        );
        assert_eq!(key(None, "Temperatür"), "temperat_r");
    }

    #[test]
    fn leading_underscores_and_dashes_are_trimmed() {
        assert_eq!(key(None, "__-x"), "x");
        assert_eq!(key(None, "/Inputs/A"), "inputs_a");
        assert_eq!(key(None, "-_ 9"), "9");
        assert_eq!(key(Some("_d"), "m"), "d_m");
    }

    #[test]
    fn cut_to_63_characters() {
        let long = "m".repeat(100);
        assert_eq!(key(None, &long).len(), 63);
        assert_eq!(key(Some("dev"), &long), format!("dev_{}", "m".repeat(59)));
    }

    #[test]
    fn names_without_letters_or_digits_map_to_nothing() {
        for name in ["", "///", "°", "__", "-", " _ "] {
            let error = sensor_key(None, name).unwrap_err();
            assert!(error.to_string().contains("no letter or digit"), "{name}");
        }
        assert!(
            sensor_key(Some("°"), "°")
                .unwrap_err()
                .to_string()
                .contains("of device")
        );
    }

    #[test]
    fn protocol_metrics() {
        for name in [
            "bdSeq",
            "Node Control/Rebirth",
            "Node Control/Next Server",
            "Device Control/Rebirth",
            "Properties/Hardware Make",
        ] {
            assert!(is_protocol_metric(name), "{name}");
        }
        for name in [
            "bdSeqs",
            "Node Control",
            "Flue Temp",
            "Controls/Rebirth",
            "properties/x",
        ] {
            assert!(!is_protocol_metric(name), "{name}");
        }
    }
}
