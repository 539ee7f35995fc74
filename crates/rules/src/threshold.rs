//! What a threshold rule compares with: a number for `>`, `>=`, `<`, `<=`,
//! or a value of a boolean or state sensor for `==` and `!=` (DESIGN.md,
//! "Signals that are not numbers").

use std::fmt;

use serde::de::{self, Visitor};
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use stoker_domain::{SensorKind, StateName, States};

use crate::field::{Field, FieldError, Shape, Value};

/// A threshold rule's trigger value, typed like the readings it is
/// compared with. JSON: `12.5`, `true`, `"lockout"`.
#[derive(Debug, Clone, PartialEq)]
pub enum Threshold {
    /// A number (numeric comparisons).
    Number(f64),
    /// A boolean sensor's value.
    Boolean(bool),
    /// A state sensor's state, by name.
    State(StateName),
}

impl Threshold {
    /// The number, for a numeric threshold.
    pub fn as_number(&self) -> Option<f64> {
        match self {
            Threshold::Number(number) => Some(*number),
            _ => None,
        }
    }

    /// The sensor kind whose readings this threshold is a value of.
    pub fn sensor_kind(&self) -> SensorKind {
        match self {
            Threshold::Number(_) => SensorKind::Numeric,
            Threshold::Boolean(_) => SensorKind::Boolean,
            Threshold::State(_) => SensorKind::State,
        }
    }

    /// The number InfluxDB stores for this value on a sensor of `kind`
    /// with `states` (a boolean as 0/1, a state as its index in `states`),
    /// or why the sensor cannot be compared with it: another kind, or a
    /// state the sensor does not declare.
    pub fn stored_for(&self, kind: SensorKind, states: &States) -> Result<f64, String> {
        match (self, kind) {
            (Threshold::Number(number), SensorKind::Numeric) => Ok(*number),
            (Threshold::Boolean(flag), SensorKind::Boolean) => Ok(if *flag { 1.0 } else { 0.0 }),
            (Threshold::State(name), SensorKind::State) => states
                .index_of(name.as_str())
                .map(f64::from)
                .ok_or_else(|| {
                    format!(
                        "the sensor's states ({}) do not include {:?}",
                        states.names().collect::<Vec<_>>().join(", "),
                        name.as_str()
                    )
                }),
            (threshold, kind) => Err(format!(
                "threshold {threshold} is a value of a {} sensor, and the sensor is {}",
                threshold.sensor_kind().as_str(),
                kind.as_str()
            )),
        }
    }
}

impl fmt::Display for Threshold {
    /// As written in JSON: `12.5`, `true`, `"lockout"`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Threshold::Number(number) => write!(f, "{number}"),
            Threshold::Boolean(flag) => write!(f, "{flag}"),
            Threshold::State(name) => write!(f, "{:?}", name.as_str()),
        }
    }
}

impl Serialize for Threshold {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        match self {
            Threshold::Number(number) => serializer.serialize_f64(*number),
            Threshold::Boolean(flag) => serializer.serialize_bool(*flag),
            Threshold::State(name) => serializer.serialize_str(name.as_str()),
        }
    }
}

impl<'de> Deserialize<'de> for Threshold {
    /// A number, `true`/`false` or a state's name; the error says which
    /// of them a value is not.
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct ThresholdVisitor;

        impl Visitor<'_> for ThresholdVisitor {
            type Value = Threshold;

            fn expecting(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
                formatter.write_str("a number, true or false, or a state name")
            }

            fn visit_bool<E: de::Error>(self, flag: bool) -> Result<Threshold, E> {
                Ok(Threshold::Boolean(flag))
            }

            fn visit_i64<E: de::Error>(self, number: i64) -> Result<Threshold, E> {
                Ok(Threshold::Number(number as f64))
            }

            fn visit_u64<E: de::Error>(self, number: u64) -> Result<Threshold, E> {
                Ok(Threshold::Number(number as f64))
            }

            fn visit_f64<E: de::Error>(self, number: f64) -> Result<Threshold, E> {
                Ok(Threshold::Number(number))
            }

            fn visit_str<E: de::Error>(self, text: &str) -> Result<Threshold, E> {
                StateName::parse(text)
                    .map(Threshold::State)
                    .map_err(|error| E::custom(format!("not a state name: {error}")))
            }
        }

        deserializer.deserialize_any(ThresholdVisitor)
    }
}

impl Field for Threshold {
    type Draft = Threshold;
    const SHAPE: Shape = Shape::Threshold;

    fn to_value(&self) -> Option<Value> {
        Some(match self {
            Threshold::Number(number) => Value::Number(*number),
            Threshold::Boolean(flag) => Value::Flag(*flag),
            Threshold::State(name) => Value::State(name.clone()),
        })
    }
    fn from_value(field: &'static str, value: Option<Value>) -> Result<Self, FieldError> {
        match value {
            Some(Value::Number(number)) => Ok(Threshold::Number(number)),
            Some(Value::Flag(flag)) => Ok(Threshold::Boolean(flag)),
            Some(Value::State(name)) => Ok(Threshold::State(name)),
            Some(_) => Err((
                field,
                format!("{field} must be a number, a boolean or a state name"),
            )),
            None => Err((field, format!("{field} is missing"))),
        }
    }
    fn to_draft(&self) -> Option<Threshold> {
        Some(self.clone())
    }
    fn from_draft(_field: &'static str, draft: &Threshold) -> Result<Self, FieldError> {
        Ok(draft.clone())
    }
    fn missing(field: &'static str, kind: &str) -> FieldError {
        (field, format!("{field} is required for kind {kind}"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn thresholds_read_as_json_writes_them() {
        for (json, threshold) in [
            ("12.5", Threshold::Number(12.5)),
            ("12", Threshold::Number(12.0)),
            ("true", Threshold::Boolean(true)),
            (
                "\"lockout\"",
                Threshold::State(StateName::parse("lockout").unwrap()),
            ),
        ] {
            assert_eq!(
                serde_json::from_str::<Threshold>(json).unwrap(),
                threshold,
                "{json}"
            );
        }
        assert_eq!(
            serde_json::to_string(&Threshold::Boolean(false)).unwrap(),
            "false"
        );
        let error = serde_json::from_str::<Threshold>("\"lock out\"").unwrap_err();
        assert!(error.to_string().contains("not a state name"), "{error}");
        let error = serde_json::from_str::<Threshold>("[1]").unwrap_err();
        assert!(
            error
                .to_string()
                .contains("a number, true or false, or a state name"),
            "{error}"
        );
    }

    #[test]
    fn a_threshold_maps_to_the_number_influxdb_stores() {
        let states = States::parse(["off", "purge", "firing", "lockout"]).unwrap();
        let lockout = Threshold::State(StateName::parse("lockout").unwrap());
        assert_eq!(lockout.stored_for(SensorKind::State, &states), Ok(3.0));
        assert_eq!(
            Threshold::Boolean(true).stored_for(SensorKind::Boolean, &States::default()),
            Ok(1.0)
        );
        assert_eq!(
            Threshold::Boolean(false).stored_for(SensorKind::Boolean, &States::default()),
            Ok(0.0)
        );
        let unknown = Threshold::State(StateName::parse("standby").unwrap());
        assert_eq!(
            unknown.stored_for(SensorKind::State, &states).unwrap_err(),
            "the sensor's states (off, purge, firing, lockout) do not include \"standby\""
        );
        assert_eq!(
            Threshold::Boolean(true)
                .stored_for(SensorKind::Numeric, &States::default())
                .unwrap_err(),
            "threshold true is a value of a boolean sensor, and the sensor is numeric"
        );
    }
}
