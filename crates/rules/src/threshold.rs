//! How rules compare: the aggregate ([`Agg`]), the operator ([`Op`]) and
//! what a threshold rule compares with ([`Threshold`]: a number for `>`,
//! `>=`, `<`, `<=`, or a value of a boolean or state sensor for `==` and
//! `!=`, DESIGN.md's "Signals that are not numbers"), and the checks of a
//! trigger value against its clear value.

use std::fmt;

use serde::de::{self, Visitor};
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use stoker_domain::{SensorKind, StateName, States};

use crate::field::{Field, FieldError, Shape, Value, names};

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

names! {
    /// How readings within a window are reduced to the value a threshold
    /// rule compares. A boolean threshold (`== true`) takes `last`, `min`
    /// (true throughout the window) or `max` (true at some time in it); a
    /// state threshold takes `last` only. Both default to `last`, as a
    /// boolean or state sensor's history does.
    pub enum Agg as "agg" {
        /// The mean of the window.
        Mean = "mean",
        /// The lowest reading of the window.
        Min = "min",
        /// The highest reading of the window.
        Max = "max",
        /// The newest reading of the window.
        Last = "last",
    }
}

names! {
    /// How a rule compares the observed value with its trigger value.
    pub enum Op as "op" {
        /// Fires above the trigger value.
        Gt = ">",
        /// Fires at or above the trigger value.
        Ge = ">=",
        /// Fires below the trigger value.
        Lt = "<",
        /// Fires at or below the trigger value.
        Le = "<=",
        /// Fires while the value equals the trigger value (a boolean or a
        /// state; no clear value).
        Eq = "==",
        /// Fires while the value differs from the trigger value (a boolean
        /// or a state; no clear value).
        Ne = "!=",
    }
}

impl Op {
    /// Whether the rule fires on high values (`>`, `>=`): its clear value
    /// must then be at or below its trigger value, and at or above it
    /// otherwise.
    pub fn fires_high(self) -> bool {
        matches!(self, Op::Gt | Op::Ge)
    }

    /// Whether it orders numbers (`>`, `>=`, `<`, `<=`, with a clear
    /// value), as opposed to testing a boolean or a state (`==`, `!=`).
    pub fn orders_numbers(self) -> bool {
        !matches!(self, Op::Eq | Op::Ne)
    }

    /// Whether `value` compared with `limit` by this operator holds. For
    /// `==` and `!=` both are the numbers InfluxDB stores for a boolean
    /// (0/1) or a state (its index), exact integers.
    #[allow(clippy::float_cmp)]
    pub fn holds(self, value: f64, limit: f64) -> bool {
        match self {
            Op::Gt => value > limit,
            Op::Ge => value >= limit,
            Op::Lt => value < limit,
            Op::Le => value <= limit,
            Op::Eq => value == limit,
            Op::Ne => value != limit,
        }
    }
}

/// A threshold compared by `>`, `>=`, `<`, `<=`: an aggregate, a finite
/// number and a clear value on the quiet side of it.
pub(crate) fn ordered_threshold(
    agg: Option<Agg>,
    op: Op,
    threshold: &Threshold,
    clear_threshold: Option<f64>,
) -> Result<(), FieldError> {
    let op_name = op.as_str();
    if agg.is_none() {
        return Err(("agg", format!("agg is required for op {op_name}")));
    }
    let Threshold::Number(threshold) = *threshold else {
        return Err((
            "threshold",
            format!(
                "with op {op_name} the threshold is a number; {threshold} is a value of a {} \
                 sensor, compared with == or !=",
                threshold.sensor_kind().as_str()
            ),
        ));
    };
    finite("threshold", threshold)?;
    let Some(clear_threshold) = clear_threshold else {
        return Err((
            "clear_threshold",
            format!("clear_threshold is required for op {op_name}"),
        ));
    };
    finite("clear_threshold", clear_threshold)?;
    hysteresis(
        op,
        "threshold",
        threshold,
        "clear_threshold",
        clear_threshold,
    )
}

/// A threshold compared by `==` or `!=`: a boolean or a state name, an
/// aggregate that gives one (see [`Agg`]), and no clear value.
pub(crate) fn typed_threshold(
    agg: Option<Agg>,
    op: Op,
    threshold: &Threshold,
    clear_threshold: Option<f64>,
) -> Result<(), FieldError> {
    let op_name = op.as_str();
    let agg = agg.unwrap_or(Agg::Last);
    match threshold {
        Threshold::Number(number) => {
            return Err((
                "threshold",
                format!(
                    "with op {op_name} the threshold is a boolean (true, false) or a state \
                     name, not the number {number}: compare numbers with >, >=, < or <="
                ),
            ));
        }
        Threshold::Boolean(_) if agg == Agg::Mean => {
            return Err((
                "agg",
                "agg mean of a boolean sensor is the share of true readings, not a boolean: \
                 a boolean threshold takes agg last, min or max"
                    .to_owned(),
            ));
        }
        Threshold::State(_) if agg != Agg::Last => {
            return Err((
                "agg",
                format!(
                    "agg {} of a state sensor's readings is no state: a state threshold takes agg last",
                    agg.as_str()
                ),
            ));
        }
        Threshold::Boolean(_) | Threshold::State(_) => {}
    }
    if let Some(clear_threshold) = clear_threshold {
        return Err((
            "clear_threshold",
            format!(
                "clear_threshold ({clear_threshold}) does not apply to op {op_name}: the alert \
                 clears when the comparison no longer holds"
            ),
        ));
    }
    Ok(())
}

pub(crate) fn finite(field: &'static str, value: f64) -> Result<(), FieldError> {
    if value.is_finite() {
        Ok(())
    } else {
        Err((field, format!("{field} must be a finite number")))
    }
}

pub(crate) fn hysteresis(
    op: Op,
    trigger_field: &'static str,
    trigger: f64,
    clear_field: &'static str,
    clear: f64,
) -> Result<(), FieldError> {
    if op.fires_high() && clear > trigger {
        Err((
            clear_field,
            format!(
                "with op {} the alert clears at or below where it fires: \
                 {clear_field} ({clear}) must be at most {trigger_field} ({trigger})",
                op.as_str()
            ),
        ))
    } else if !op.fires_high() && clear < trigger {
        Err((
            clear_field,
            format!(
                "with op {} the alert clears at or above where it fires: \
                 {clear_field} ({clear}) must be at least {trigger_field} ({trigger})",
                op.as_str()
            ),
        ))
    } else {
        Ok(())
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
