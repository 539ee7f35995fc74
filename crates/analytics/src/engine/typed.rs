//! Rules comparing a boolean or state sensor's own values (`==`, `!=`):
//! how their threshold maps to the numbers InfluxDB stores for a sensor,
//! and how what they measure reads in the sensor's type.

use stoker_domain::{ReadingValue, SensorKind, States};
use stoker_rules::{RuleKind, Threshold};

/// The rule as it judges one sensor of `sensor_kind` with `states`: a
/// boolean or state threshold becomes the number InfluxDB stores for it
/// on that sensor (0/1, the state's index), which `==`/`!=` compare with
/// the aggregate; other rules are unchanged. The error says why the
/// sensor cannot be judged by the rule (another kind, an undeclared state).
pub fn on_sensor(
    kind: &RuleKind,
    sensor_kind: SensorKind,
    states: &States,
) -> Result<RuleKind, String> {
    match kind {
        RuleKind::Threshold { op, threshold, .. } if !op.orders_numbers() => {
            let stored = threshold.stored_for(sensor_kind, states)?;
            let mut judged = kind.clone();
            if let RuleKind::Threshold { threshold, .. } = &mut judged {
                *threshold = Threshold::Number(stored);
            }
            Ok(judged)
        }
        _ => Ok(kind.clone()),
    }
}

/// Whether the rule compares a sensor's own values (a boolean or a state,
/// by `==`/`!=`), so that what it measures reads in the sensor's type.
pub fn compares_typed(kind: &RuleKind) -> bool {
    matches!(kind, RuleKind::Threshold { op, .. } if !op.orders_numbers())
}

/// What a rule measured, as an alert reports it: for a rule comparing a
/// boolean or state sensor's values, the value in the sensor's type (the
/// number when the sensor's states lack it); otherwise the number.
pub fn reported(
    kind: &RuleKind,
    sensor_kind: SensorKind,
    states: &States,
    value: f64,
) -> ReadingValue {
    if compares_typed(kind) {
        ReadingValue::from_stored(sensor_kind, states, value).unwrap_or(ReadingValue::Number(value))
    } else {
        ReadingValue::Number(value)
    }
}

/// How a description names the sensor's values: the unit of its numbers,
/// and its kind and states for a rule comparing its own values.
#[derive(Debug, Clone, Copy)]
pub struct Reads<'a> {
    /// The unit (empty for none).
    pub unit: &'a str,
    /// The sensor's kind.
    pub kind: SensorKind,
    /// A state sensor's states.
    pub states: &'a States,
}

impl<'a> Reads<'a> {
    /// A numeric sensor's values in `unit`.
    pub fn numbers(unit: &'a str) -> Self {
        static NONE: std::sync::LazyLock<States> = std::sync::LazyLock::new(States::default);
        Self {
            unit,
            kind: SensorKind::Numeric,
            states: &NONE,
        }
    }
}
