//! Suppression by design (DESIGN.md, "Alarm management"): a rule's
//! `suppress_when` names another sensor of the watched sensor's site and a
//! comparison; while it holds, the rule's alarms are recorded as
//! suppressed and never announced (no low-O2 alarm while the burner is
//! off). The comparison is typed like a threshold's: `>`, `>=`, `<`, `<=`
//! with a number; `==`, `!=` with a boolean or a state's name.

use serde::{Deserialize, Serialize};
use stoker_domain::{SensorKey, SensorKind, States};

use crate::field::{Field, FieldError, Shape, Value};
use crate::threshold::{Op, Threshold, finite};

/// The field's name in JSON.
const FIELD: &str = "suppress_when";

/// While `sensor` (of the same site as the sensor a rule watches) compared
/// with `value` by `op` holds, the rule's alarms are suppressed.
/// JSON: `{"sensor":"b1_burner_on","op":"==","value":false}`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SuppressWhen {
    /// The sensor whose latest value decides.
    pub sensor: SensorKey,
    /// The comparison.
    pub op: Op,
    /// What its latest value is compared with: a number for `>`, `>=`,
    /// `<`, `<=`; a boolean or a state's name for `==`, `!=`.
    pub value: Threshold,
}

impl SuppressWhen {
    /// Checks that the value is of the type the operator compares (a
    /// finite number for an ordering; a boolean or a state's name for
    /// `==`/`!=`); the error names `suppress_when`.
    pub fn check(&self) -> Result<(), FieldError> {
        let op = self.op.as_str();
        match (&self.value, self.op.orders_numbers()) {
            (Threshold::Number(number), true) => finite(FIELD, *number).map_err(|_| {
                (
                    FIELD,
                    format!("suppress_when.value must be a finite number, not {number}"),
                )
            }),
            (Threshold::Number(number), false) => Err((
                FIELD,
                format!(
                    "with op {op} suppress_when.value is a boolean (true, false) or a state name, \
                     not the number {number}: compare numbers with >, >=, < or <="
                ),
            )),
            (other, true) => Err((
                FIELD,
                format!(
                    "with op {op} suppress_when.value is a number; {other} is a value of a {} \
                     sensor, compared with == or !=",
                    other.sensor_kind().as_str()
                ),
            )),
            (_, false) => Ok(()),
        }
    }

    /// The number InfluxDB stores for the value on the deciding sensor
    /// (of `kind`, with `states`), or why the sensor cannot be compared
    /// with it. An ordering compares whatever number the sensor stores (a
    /// boolean's 0/1, as a rule ordering numbers does).
    pub fn stored_for(&self, kind: SensorKind, states: &States) -> Result<f64, String> {
        match (&self.value, self.op.orders_numbers()) {
            (Threshold::Number(number), true) => Ok(*number),
            (value, _) => value.stored_for(kind, states),
        }
    }

    /// Whether the deciding sensor's latest stored value `latest` makes
    /// the condition hold, its value being stored as `limit`
    /// ([`SuppressWhen::stored_for`]).
    pub fn holds(&self, latest: f64, limit: f64) -> bool {
        self.op.holds(latest, limit)
    }
}

impl std::fmt::Display for SuppressWhen {
    /// `b1_burner_on == false`.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} {} {}", self.sensor, self.op.as_str(), self.value)
    }
}

impl Field for SuppressWhen {
    type Draft = SuppressWhen;
    const SHAPE: Shape = Shape::Condition;

    fn to_value(&self) -> Option<Value> {
        Some(Value::Condition(self.clone()))
    }
    fn from_value(field: &'static str, value: Option<Value>) -> Result<Self, FieldError> {
        match value {
            Some(Value::Condition(condition)) => Ok(condition),
            Some(_) => Err((field, format!("{field} must be a condition"))),
            None => Err((field, format!("{field} is missing"))),
        }
    }
    fn to_draft(&self) -> Option<SuppressWhen> {
        Some(self.clone())
    }
    fn from_draft(_field: &'static str, draft: &SuppressWhen) -> Result<Self, FieldError> {
        draft.check()?;
        Ok(draft.clone())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(json: serde_json::Value) -> Result<SuppressWhen, String> {
        let draft: SuppressWhen = serde_json::from_value(json).map_err(|e| e.to_string())?;
        SuppressWhen::from_draft(FIELD, &draft).map_err(|(_, message)| message)
    }

    #[test]
    fn a_condition_is_typed_like_a_threshold() {
        let burner_off =
            parse(serde_json::json!({"sensor":"b1_burner_on","op":"==","value":false})).unwrap();
        assert_eq!(burner_off.to_string(), "b1_burner_on == false");
        assert_eq!(
            burner_off.stored_for(SensorKind::Boolean, &States::default()),
            Ok(0.0)
        );
        assert!(burner_off.holds(0.0, 0.0));
        assert!(!burner_off.holds(1.0, 0.0));
        let low_load = parse(serde_json::json!({"sensor":"b1_load","op":"<","value":5})).unwrap();
        assert_eq!(
            low_load.stored_for(SensorKind::Numeric, &States::default()),
            Ok(5.0)
        );
        let states = States::parse(["off", "purge", "firing"]).unwrap();
        let not_firing =
            parse(serde_json::json!({"sensor":"b1_sequencer","op":"!=","value":"firing"})).unwrap();
        assert_eq!(not_firing.stored_for(SensorKind::State, &states), Ok(2.0));
        assert!(
            not_firing
                .stored_for(SensorKind::Numeric, &States::default())
                .is_err()
        );
        assert!(
            parse(serde_json::json!({"sensor":"b1_load","op":"==","value":5}))
                .unwrap_err()
                .contains("not the number 5")
        );
        assert!(
            parse(serde_json::json!({"sensor":"b1_burner_on","op":">","value":true}))
                .unwrap_err()
                .contains("is a number")
        );
        assert!(parse(serde_json::json!({"sensor":"B1","op":"==","value":true})).is_err());
        assert!(parse(serde_json::json!({"sensor":"b1","op":"==","value":true,"x":1})).is_err());
    }
}
