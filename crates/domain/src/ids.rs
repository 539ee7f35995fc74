//! Identifiers: slugs, keys, types and units.

use std::fmt;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::ParseError;

const SLUG_RULE: &str =
    "1 to 63 characters of a-z, 0-9, '_' or '-', starting with a letter or digit";
const TYPE_RULE: &str = "1 to 32 characters of a-z, 0-9 or '_', starting with a letter";

/// Longest slug or sensor key, in characters (all ASCII).
const SLUG_MAX_LEN: usize = 63;
/// [`is_slug`] as a regular expression, for schemas (JSON Schema's dialect).
const SLUG_PATTERN: &str = "^[a-z0-9][a-z0-9_-]{0,62}$";
/// Longest sensor type, in characters (all ASCII).
const TYPE_MAX_LEN: usize = 32;
/// [`is_type_name`] as a regular expression, for schemas.
const TYPE_PATTERN: &str = "^[a-z][a-z0-9_]{0,31}$";

/// `[a-z0-9][a-z0-9_-]{0,62}`: safe as an InfluxDB tag, SQL literal, Redis key
/// part and MQTT topic level without any escaping.
fn is_slug(value: &str) -> bool {
    let bytes = value.as_bytes();
    matches!(bytes.first(), Some(b'a'..=b'z' | b'0'..=b'9'))
        && bytes.len() <= SLUG_MAX_LEN
        && bytes
            .iter()
            .all(|b| matches!(b, b'a'..=b'z' | b'0'..=b'9' | b'_' | b'-'))
}

fn is_type_name(value: &str) -> bool {
    let bytes = value.as_bytes();
    matches!(bytes.first(), Some(b'a'..=b'z'))
        && bytes.len() <= TYPE_MAX_LEN
        && bytes
            .iter()
            .all(|b| matches!(b, b'a'..=b'z' | b'0'..=b'9' | b'_'))
}

fn excerpt(value: &str) -> String {
    value.chars().take(80).collect()
}

macro_rules! identifier {
    ($(#[$doc:meta])* $name:ident, $what:literal, $check:path, $rule:expr, $pattern:expr, $max_len:expr) => {
        $(#[$doc])*
        #[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
        pub struct $name(String);

        impl $name {
            /// The rule `parse` checks, as a regular expression (ECMA 262,
            /// as JSON Schema reads it), for schemas.
            pub const PATTERN: &'static str = $pattern;
            /// The longest value `parse` accepts, in characters.
            pub const MAX_LEN: usize = $max_len;

            /// Parses and validates the identifier.
            pub fn parse(value: impl Into<String>) -> Result<Self, ParseError> {
                let value = value.into();
                if $check(&value) {
                    Ok(Self(value))
                } else {
                    Err(ParseError::Identifier { what: $what, value: excerpt(&value), rule: $rule })
                }
            }

            /// The identifier as a string slice.
            pub fn as_str(&self) -> &str {
                &self.0
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }

        impl fmt::Debug for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                fmt::Debug::fmt(&self.0, f)
            }
        }

        // Hash and Eq agree with `str`'s, so maps keyed by the newtype can be
        // searched with a `&str` taken straight from a payload.
        impl std::borrow::Borrow<str> for $name {
            fn borrow(&self) -> &str {
                &self.0
            }
        }

        impl AsRef<str> for $name {
            fn as_ref(&self) -> &str {
                &self.0
            }
        }

        impl std::str::FromStr for $name {
            type Err = ParseError;
            fn from_str(value: &str) -> Result<Self, ParseError> {
                Self::parse(value)
            }
        }

        impl Serialize for $name {
            fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
                serializer.serialize_str(&self.0)
            }
        }

        impl<'de> Deserialize<'de> for $name {
            fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
                let value = String::deserialize(deserializer)?;
                Self::parse(value).map_err(serde::de::Error::custom)
            }
        }
    };
}

identifier!(
    /// A site's slug, unique across Stoker, e.g. `boiler-house-1`.
    SiteSlug, "site slug", is_slug, SLUG_RULE, SLUG_PATTERN, SLUG_MAX_LEN
);
identifier!(
    /// A sensor's key, unique within its site, e.g. `b1_flue_temp`.
    SensorKey, "sensor key", is_slug, SLUG_RULE, SLUG_PATTERN, SLUG_MAX_LEN
);
identifier!(
    /// A sensor's type, e.g. `pressure`, `temperature`; an InfluxDB tag and
    /// what alert rules select on.
    SensorType, "sensor type", is_type_name, TYPE_RULE, TYPE_PATTERN, TYPE_MAX_LEN
);

/// A measurement unit label such as `bar`, `°C` or `m3/h`.
#[derive(Clone, PartialEq, Eq, Hash, Debug)]
pub struct Unit(String);

impl Unit {
    /// The longest unit `parse` accepts, in characters.
    pub const MAX_LEN: usize = 32;
    /// The rule `parse` checks as a regular expression, for schemas: 1 to
    /// 32 characters, none a control character (Unicode's `Cc`).
    pub const PATTERN: &'static str = "^[^\\u0000-\\u001f\\u007f-\\u009f]{1,32}$";

    /// Parses a unit: 1 to 32 characters, none of them a control character.
    pub fn parse(value: impl Into<String>) -> Result<Self, ParseError> {
        let value = value.into();
        let length = value.chars().count();
        if (1..=Self::MAX_LEN).contains(&length) && !value.chars().any(char::is_control) {
            Ok(Self(value))
        } else {
            Err(ParseError::Unit(excerpt(&value)))
        }
    }

    /// The unit as a string slice.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for Unit {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl Serialize for Unit {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&self.0)
    }
}

impl<'de> Deserialize<'de> for Unit {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        Self::parse(String::deserialize(deserializer)?).map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slugs_follow_the_design_rule() {
        for good in ["a", "0", "boiler-house-1", "b1_flue_temp", &"a".repeat(63)] {
            assert!(SiteSlug::parse(good).is_ok(), "{good} should parse");
            assert!(SensorKey::parse(good).is_ok(), "{good} should parse");
        }
        for bad in [
            "",
            "-a",
            "_a",
            "A",
            "a b",
            "a,b",
            "a=b",
            "a'b",
            "a\"b",
            "é",
            &"a".repeat(64),
        ] {
            assert!(SiteSlug::parse(bad).is_err(), "{bad:?} should not parse");
        }
    }

    #[test]
    fn sensor_types_are_lowercase_identifiers() {
        assert!(SensorType::parse("pressure").is_ok());
        assert!(SensorType::parse("o2").is_ok());
        assert!(SensorType::parse("2o").is_err());
        assert!(SensorType::parse("flue-temp").is_err());
        assert!(SensorType::parse("").is_err());
    }

    #[test]
    fn errors_name_the_identifier_and_the_rule() {
        let error = SiteSlug::parse("Boiler House").unwrap_err().to_string();
        assert!(error.contains("site slug \"Boiler House\""), "{error}");
        assert!(error.contains("a-z"), "{error}");
    }

    #[test]
    fn units_accept_printable_labels() {
        assert!(Unit::parse("°C").is_ok());
        assert!(Unit::parse("m3/h").is_ok());
        assert!(Unit::parse("").is_err());
        assert!(Unit::parse("a\nb").is_err());
        assert!(Unit::parse("x".repeat(33)).is_err());
    }

    #[test]
    fn the_patterns_state_the_lengths_the_parsers_check() {
        for (pattern, max_len) in [
            (SiteSlug::PATTERN, SiteSlug::MAX_LEN),
            (SensorKey::PATTERN, SensorKey::MAX_LEN),
            (SensorType::PATTERN, SensorType::MAX_LEN),
        ] {
            assert!(
                pattern.ends_with(&format!("{{0,{}}}$", max_len - 1)),
                "{pattern}"
            );
            assert!(SiteSlug::parse("a".repeat(SiteSlug::MAX_LEN)).is_ok());
        }
        assert!(Unit::PATTERN.ends_with(&format!("{{1,{}}}$", Unit::MAX_LEN)));
        assert!(Unit::parse("x".repeat(Unit::MAX_LEN)).is_ok());
        assert!(Unit::parse("x".repeat(Unit::MAX_LEN + 1)).is_err());
        assert!(SensorType::parse("a".repeat(SensorType::MAX_LEN)).is_ok());
        assert!(SensorType::parse("a".repeat(SensorType::MAX_LEN + 1)).is_err());
    }

    #[test]
    fn serde_round_trip_validates() {
        let slug: SiteSlug = serde_json::from_str("\"site-1\"").unwrap();
        assert_eq!(serde_json::to_string(&slug).unwrap(), "\"site-1\"");
        assert!(serde_json::from_str::<SiteSlug>("\"Site 1\"").is_err());
    }
}
