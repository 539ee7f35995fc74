//! The leaves of a payload: map keys, reading values and timestamps,
//! each described in words when it is not what it should be.

use std::borrow::Cow;
use std::fmt;

use serde::de::{self, Deserializer, IgnoredAny, MapAccess, SeqAccess, Visitor};
use stoker_domain::EpochMillis;

use super::refusal::{RawValue, Refusal, excerpt};
use crate::Reason;

/// A map key, borrowed from the payload when it has no escapes.
pub(super) struct Key<'de>(pub(super) Cow<'de, str>);

impl<'de> de::Deserialize<'de> for Key<'de> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct KeyVisitor;
        impl<'de> Visitor<'de> for KeyVisitor {
            type Value = Key<'de>;
            fn expecting(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
                formatter.write_str("a string key")
            }
            fn visit_borrowed_str<E: de::Error>(self, value: &'de str) -> Result<Key<'de>, E> {
                Ok(Key(Cow::Borrowed(value)))
            }
            fn visit_str<E: de::Error>(self, value: &str) -> Result<Key<'de>, E> {
                Ok(Key(Cow::Owned(value.to_owned())))
            }
        }
        deserializer.deserialize_str(KeyVisitor)
    }
}

/// A reading's value: a number, a boolean or a string (borrowed from the
/// payload when it has no escapes), or a description of what came instead.
pub(super) enum Scalar<'de> {
    Number(f64),
    Boolean(bool),
    Text(Cow<'de, str>),
    Other(String),
}

impl<'de> Scalar<'de> {
    /// The value, or the refusal of a value of no kind (null, an array, an
    /// object, a number that is not finite): which kind a value must be
    /// is the registry's to say.
    pub(super) fn into_value(self, sensor: &str) -> Result<RawValue<'de>, Refusal> {
        match self {
            Scalar::Number(number) if number.is_finite() => Ok(RawValue::Number(number)),
            Scalar::Number(number) => Err(non_numeric(sensor, &number.to_string())),
            Scalar::Boolean(flag) => Ok(RawValue::Boolean(flag)),
            Scalar::Text(text) => Ok(RawValue::Text(text)),
            Scalar::Other(kind) => Err(non_numeric(sensor, &kind)),
        }
    }
}

fn non_numeric(sensor: &str, kind: &str) -> Refusal {
    Refusal::new(
        Reason::NonNumeric,
        format!("value of {sensor:?} is {kind}, not a finite number"),
    )
}

impl<'de> de::Deserialize<'de> for Scalar<'de> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct ScalarVisitor;
        impl<'de> Visitor<'de> for ScalarVisitor {
            type Value = Scalar<'de>;
            fn expecting(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
                formatter.write_str("a value")
            }
            fn visit_f64<E: de::Error>(self, value: f64) -> Result<Scalar<'de>, E> {
                Ok(Scalar::Number(value))
            }
            fn visit_i64<E: de::Error>(self, value: i64) -> Result<Scalar<'de>, E> {
                Ok(Scalar::Number(value as f64))
            }
            fn visit_u64<E: de::Error>(self, value: u64) -> Result<Scalar<'de>, E> {
                Ok(Scalar::Number(value as f64))
            }
            fn visit_borrowed_str<E: de::Error>(self, value: &'de str) -> Result<Scalar<'de>, E> {
                Ok(Scalar::Text(Cow::Borrowed(value)))
            }
            fn visit_str<E: de::Error>(self, value: &str) -> Result<Scalar<'de>, E> {
                Ok(Scalar::Text(Cow::Owned(value.to_owned())))
            }
            fn visit_bool<E: de::Error>(self, value: bool) -> Result<Scalar<'de>, E> {
                Ok(Scalar::Boolean(value))
            }
            fn visit_unit<E: de::Error>(self) -> Result<Scalar<'de>, E> {
                Ok(Scalar::Other("null".into()))
            }
            fn visit_seq<A: SeqAccess<'de>>(
                self,
                mut sequence: A,
            ) -> Result<Scalar<'de>, A::Error> {
                while sequence.next_element::<IgnoredAny>()?.is_some() {}
                Ok(Scalar::Other("an array".into()))
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Scalar<'de>, A::Error> {
                while map.next_entry::<IgnoredAny, IgnoredAny>()?.is_some() {}
                Ok(Scalar::Other("an object".into()))
            }
        }
        deserializer.deserialize_any(ScalarVisitor)
    }
}

/// `ts`: epoch milliseconds (an integer) or an RFC 3339 string.
pub(super) enum Timestamp {
    Millis(Option<i64>),
    Text(String),
    Other(String),
}

impl Timestamp {
    pub(super) fn into_millis(self) -> Result<EpochMillis, Refusal> {
        let (parsed, shown) = match self {
            Timestamp::Millis(Some(millis)) => {
                (EpochMillis::from_millis(millis).ok(), millis.to_string())
            }
            Timestamp::Millis(None) => (None, "a number out of range".to_owned()),
            Timestamp::Text(text) => (EpochMillis::parse_rfc3339(&text).ok(), format!("{text:?}")),
            Timestamp::Other(shown) => (None, shown),
        };
        parsed.ok_or_else(|| {
            Refusal::new(
                Reason::InvalidTimestamp,
                format!(
                    "\"ts\" {} is neither epoch milliseconds nor an RFC 3339 string",
                    excerpt(&shown)
                ),
            )
        })
    }
}

impl<'de> de::Deserialize<'de> for Timestamp {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct TimestampVisitor;
        impl<'de> Visitor<'de> for TimestampVisitor {
            type Value = Timestamp;
            fn expecting(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
                formatter.write_str("epoch milliseconds or an RFC 3339 string")
            }
            fn visit_i64<E: de::Error>(self, value: i64) -> Result<Timestamp, E> {
                Ok(Timestamp::Millis(Some(value)))
            }
            fn visit_u64<E: de::Error>(self, value: u64) -> Result<Timestamp, E> {
                Ok(Timestamp::Millis(i64::try_from(value).ok()))
            }
            fn visit_f64<E: de::Error>(self, value: f64) -> Result<Timestamp, E> {
                Ok(Timestamp::Other(value.to_string()))
            }
            fn visit_str<E: de::Error>(self, value: &str) -> Result<Timestamp, E> {
                Ok(Timestamp::Text(value.to_owned()))
            }
            fn visit_bool<E: de::Error>(self, value: bool) -> Result<Timestamp, E> {
                Ok(Timestamp::Other(value.to_string()))
            }
            fn visit_unit<E: de::Error>(self) -> Result<Timestamp, E> {
                Ok(Timestamp::Other("null".into()))
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut sequence: A) -> Result<Timestamp, A::Error> {
                while sequence.next_element::<IgnoredAny>()?.is_some() {}
                Ok(Timestamp::Other("an array".into()))
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Timestamp, A::Error> {
                while map.next_entry::<IgnoredAny, IgnoredAny>()?.is_some() {}
                Ok(Timestamp::Other("an object".into()))
            }
        }
        deserializer.deserialize_any(TimestampVisitor)
    }
}
