//! What a sensor's readings are (DESIGN.md, "Signals that are not
//! numbers"): its [`SensorKind`], the [`States`] a `state` sensor declares,
//! and a reading's value in its kind ([`ReadingValue`]).
//!
//! InfluxDB holds every kind as the float field `value` (a boolean as 0/1,
//! a state as its index in `states`), so a sensor's kind never changes and
//! its states only grow: [`ReadingValue::from_stored`] turns such a float
//! back into the native value.

use std::fmt;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::ParseError;

/// What a sensor's readings are.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum SensorKind {
    /// A finite number, within the sensor's valid range (the default).
    #[default]
    Numeric,
    /// `true` or `false`: burner on, flame detected, pump running.
    Boolean,
    /// One of the sensor's declared states: a sequencer's `firing`.
    State,
}

impl SensorKind {
    /// Every kind, in the order of its discriminant.
    pub const ALL: [SensorKind; 3] = [SensorKind::Numeric, SensorKind::Boolean, SensorKind::State];

    /// The kind's stable name: `numeric`, `boolean`, `state`.
    pub fn as_str(self) -> &'static str {
        match self {
            SensorKind::Numeric => "numeric",
            SensorKind::Boolean => "boolean",
            SensorKind::State => "state",
        }
    }

    /// The kind named `text`.
    pub fn parse(text: &str) -> Result<Self, ParseError> {
        Self::ALL
            .into_iter()
            .find(|kind| kind.as_str() == text)
            .ok_or_else(|| ParseError::Kind(text.chars().take(80).collect()))
    }

    /// What a value of this kind is, in words (for refusals).
    pub fn expects(self) -> &'static str {
        match self {
            SensorKind::Numeric => "a finite number",
            SensorKind::Boolean => "true or false",
            SensorKind::State => "the name of one of its states, as a string",
        }
    }
}

impl fmt::Display for SensorKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl Serialize for SensorKind {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(self.as_str())
    }
}

impl<'de> Deserialize<'de> for SensorKind {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = String::deserialize(deserializer)?;
        Self::parse(&text).map_err(serde::de::Error::custom)
    }
}

/// One state a `state` sensor may report, e.g. `firing`: 1 to 63
/// characters of letters, digits, `_`, `.`, `:` or `-`, starting with a
/// letter or digit (so it needs no escaping in a Redis value, an InfluxDB
/// string field or an MQTT payload).
#[derive(Clone, PartialEq, Eq, Hash, Debug)]
pub struct StateName(String);

impl StateName {
    /// The longest name `parse` accepts, in characters (all ASCII).
    pub const MAX_LEN: usize = 63;
    /// The rule `parse` checks as a regular expression, for schemas.
    pub const PATTERN: &'static str = "^[A-Za-z0-9][A-Za-z0-9_.:-]{0,62}$";

    /// Whether `value` follows [`StateName::PATTERN`].
    pub fn is_valid(value: &str) -> bool {
        let bytes = value.as_bytes();
        matches!(bytes.first(), Some(b'a'..=b'z' | b'A'..=b'Z' | b'0'..=b'9'))
            && bytes.len() <= Self::MAX_LEN
            && bytes
                .iter()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'.' | b':' | b'-'))
    }

    /// Parses a state name.
    pub fn parse(value: impl Into<String>) -> Result<Self, ParseError> {
        let value = value.into();
        if Self::is_valid(&value) {
            Ok(Self(value))
        } else {
            Err(ParseError::Identifier {
                what: "state name",
                value: value.chars().take(80).collect(),
                rule: "1 to 63 characters of A-Z, a-z, 0-9, '_', '.', ':' or '-', starting with a letter or digit",
            })
        }
    }

    /// The name as a string slice.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for StateName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl Serialize for StateName {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&self.0)
    }
}

/// A `state` sensor's declared states, in order: a reading's index in the
/// list is what InfluxDB stores. Distinct names, at most
/// [`States::MAX_COUNT`]; empty for the other kinds.
#[derive(Clone, PartialEq, Eq, Debug, Default)]
pub struct States(Vec<StateName>);

impl States {
    /// Most states a sensor declares.
    pub const MAX_COUNT: usize = 256;

    /// Parses a list of names: each a [`StateName`], none twice, at most
    /// [`States::MAX_COUNT`].
    pub fn parse<I, S>(names: I) -> Result<Self, ParseError>
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        let mut states: Vec<StateName> = Vec::new();
        for name in names {
            let name =
                StateName::parse(name).map_err(|error| ParseError::States(error.to_string()))?;
            if states.contains(&name) {
                return Err(ParseError::States(format!(
                    "state {name:?} is listed twice"
                )));
            }
            if states.len() == Self::MAX_COUNT {
                return Err(ParseError::States(format!(
                    "a sensor declares at most {} states",
                    Self::MAX_COUNT
                )));
            }
            states.push(name);
        }
        Ok(Self(states))
    }

    /// The index of the state named `name`: what InfluxDB stores.
    pub fn index_of(&self, name: &str) -> Option<u32> {
        self.0
            .iter()
            .position(|state| state.as_str() == name)
            .and_then(|index| u32::try_from(index).ok())
    }

    /// The state at `index`.
    pub fn name(&self, index: u32) -> Option<&StateName> {
        self.0.get(usize::try_from(index).ok()?)
    }

    /// The states, in order.
    pub fn as_slice(&self) -> &[StateName] {
        &self.0
    }

    /// The names, in order, as strings.
    pub fn names(&self) -> impl Iterator<Item = &str> {
        self.0.iter().map(StateName::as_str)
    }

    /// Number of states.
    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// Whether none is declared.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// The first of `earlier`'s states that this list does not keep at its
    /// index, if any: a list may only grow at its end, since InfluxDB
    /// holds the index.
    pub fn first_not_kept<'a>(&self, earlier: &'a States) -> Option<(usize, &'a StateName)> {
        earlier
            .0
            .iter()
            .enumerate()
            .find(|(index, state)| self.0.get(*index) != Some(*state))
    }
}

impl Serialize for States {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        self.0.serialize(serializer)
    }
}

/// A reading's value in its sensor's kind, as the API and Redis give it:
/// JSON `81.5`, `true` or `"firing"`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum ReadingValue {
    /// A `boolean` sensor's reading.
    Boolean(bool),
    /// A `numeric` sensor's reading (or an aggregate such as a mean).
    Number(f64),
    /// A `state` sensor's reading: the state's name.
    State(String),
}

impl ReadingValue {
    /// The value of a reading of `kind` whose InfluxDB field `value` is
    /// `stored`: 0/1 for a boolean (any non-zero is `true`), the index in
    /// `states` for a state. `None` for a state index `states` lacks.
    pub fn from_stored(kind: SensorKind, states: &States, stored: f64) -> Option<Self> {
        match kind {
            SensorKind::Numeric => Some(ReadingValue::Number(stored)),
            SensorKind::Boolean => Some(ReadingValue::Boolean(stored != 0.0)),
            SensorKind::State => {
                if !(stored >= 0.0 && stored.fract() == 0.0 && stored <= f64::from(u32::MAX)) {
                    return None;
                }
                states
                    .name(stored as u32)
                    .map(|name| ReadingValue::State(name.as_str().to_owned()))
            }
        }
    }

    /// The number, for a numeric value.
    pub fn as_number(&self) -> Option<f64> {
        match self {
            ReadingValue::Number(number) => Some(*number),
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kinds_have_stable_names() {
        for kind in SensorKind::ALL {
            assert_eq!(SensorKind::parse(kind.as_str()), Ok(kind));
        }
        assert_eq!(SensorKind::default(), SensorKind::Numeric);
        assert!(SensorKind::parse("Boolean").is_err());
        assert_eq!(
            serde_json::to_string(&SensorKind::State).unwrap(),
            "\"state\""
        );
    }

    #[test]
    fn state_names_follow_their_pattern() {
        for good in [
            "off",
            "purge",
            "Ignition",
            "lockout:2",
            "a.b-c_d",
            &"x".repeat(63),
        ] {
            assert!(StateName::parse(good).is_ok(), "{good}");
        }
        for bad in [
            "",
            "-off",
            "a b",
            "a\"b",
            "a\\b",
            "é",
            "a,b",
            &"x".repeat(64),
        ] {
            assert!(StateName::parse(bad).is_err(), "{bad:?}");
        }
        assert!(StateName::PATTERN.ends_with(&format!("{{0,{}}}$", StateName::MAX_LEN - 1)));
    }

    #[test]
    fn states_are_distinct_and_only_grow() {
        let states = States::parse(["off", "purge", "firing"]).unwrap();
        assert_eq!(states.index_of("firing"), Some(2));
        assert_eq!(states.index_of("lockout"), None);
        assert_eq!(states.name(1).unwrap().as_str(), "purge");
        assert!(States::parse(["off", "off"]).is_err());
        assert!(States::parse(["off", "bad name"]).is_err());
        assert!(States::parse((0..=States::MAX_COUNT).map(|i| format!("s{i}"))).is_err());
        let grown = States::parse(["off", "purge", "firing", "lockout"]).unwrap();
        assert_eq!(grown.first_not_kept(&states), None);
        let reordered = States::parse(["purge", "off", "firing"]).unwrap();
        assert_eq!(
            reordered
                .first_not_kept(&states)
                .map(|(index, name)| (index, name.as_str())),
            Some((0, "off"))
        );
        let shrunk = States::parse(["off", "purge"]).unwrap();
        assert_eq!(
            shrunk.first_not_kept(&states).map(|(index, _)| index),
            Some(2)
        );
    }

    #[test]
    fn stored_floats_become_native_values() {
        let states = States::parse(["off", "firing"]).unwrap();
        assert_eq!(
            ReadingValue::from_stored(SensorKind::Boolean, &states, 1.0),
            Some(ReadingValue::Boolean(true))
        );
        assert_eq!(
            ReadingValue::from_stored(SensorKind::Boolean, &States::default(), 0.0),
            Some(ReadingValue::Boolean(false))
        );
        assert_eq!(
            ReadingValue::from_stored(SensorKind::State, &states, 1.0),
            Some(ReadingValue::State("firing".into()))
        );
        for missing in [2.0, -1.0, 0.5, f64::NAN] {
            assert_eq!(
                ReadingValue::from_stored(SensorKind::State, &states, missing),
                None
            );
        }
        assert_eq!(
            ReadingValue::from_stored(SensorKind::Numeric, &states, 81.5),
            Some(ReadingValue::Number(81.5))
        );
    }

    #[test]
    fn values_are_native_json() {
        for (value, json) in [
            (ReadingValue::Boolean(true), "true"),
            (ReadingValue::Number(81.5), "81.5"),
            (ReadingValue::State("firing".into()), "\"firing\""),
        ] {
            assert_eq!(serde_json::to_string(&value).unwrap(), json);
            assert_eq!(serde_json::from_str::<ReadingValue>(json).unwrap(), value);
        }
        assert_eq!(
            serde_json::from_str::<ReadingValue>("12").unwrap(),
            ReadingValue::Number(12.0)
        );
    }
}
