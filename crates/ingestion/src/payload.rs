//! Payload parsing: the JSON shapes of DESIGN.md, before any registry
//! lookup. A malformed message is refused whole; a reading whose value or
//! timestamp is wrong is refused alone, and the rest of its message stands.
//!
//! The parse streams through serde visitors rather than building a
//! `serde_json::Value`: sensor keys are borrowed from the payload and the
//! only allocation per message is the vector of readings. When the shape
//! is wrong, the visitor leaves the precise refusal in a side slot and
//! aborts the parse.

use std::borrow::Cow;
use std::cell::RefCell;
use std::fmt;

use serde::de::{self, DeserializeSeed, Deserializer, IgnoredAny, MapAccess, SeqAccess, Visitor};
use stoker_domain::EpochMillis;

use crate::Reason;

/// Largest accepted payload (DESIGN.md).
pub(crate) const MAX_PAYLOAD_BYTES: usize = 256 * 1024;

/// A reading as the payload states it, not yet checked against the registry.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct RawReading<'a> {
    /// The sensor key as written (validated later).
    pub sensor: Cow<'a, str>,
    /// The value, or why it is not one.
    pub value: Result<f64, Refusal>,
    /// The timestamp, when the payload gives one.
    pub timestamp: Option<EpochMillis>,
}

/// Why a message or one reading of it is refused, with a precise detail.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Refusal {
    pub reason: Reason,
    pub detail: String,
}

impl Refusal {
    pub(crate) fn new(reason: Reason, detail: impl Into<String>) -> Self {
        Self {
            reason,
            detail: detail.into(),
        }
    }
}

fn check_size(payload: &[u8]) -> Result<(), Refusal> {
    if payload.len() > MAX_PAYLOAD_BYTES {
        return Err(Refusal::new(
            Reason::PayloadTooLarge,
            format!(
                "payload is {} bytes; the limit is {MAX_PAYLOAD_BYTES}",
                payload.len()
            ),
        ));
    }
    Ok(())
}

/// Runs a seed over the payload; a refusal the visitors left wins over
/// serde's own error (which then only says where the parse stopped).
fn parse<'a, T>(
    payload: &'a [u8],
    seed: impl for<'s> FnOnce(&'s Slot) -> Seeded<'s, T>,
) -> Result<T, Refusal>
where
    for<'s> Seeded<'s, T>: DeserializeSeed<'a, Value = T>,
{
    check_size(payload)?;
    let slot = Slot::default();
    let mut deserializer = serde_json::Deserializer::from_slice(payload);
    let outcome = seed(&slot)
        .deserialize(&mut deserializer)
        .and_then(|value| deserializer.end().map(|()| value));
    match (outcome, slot.0.into_inner()) {
        (Ok(value), _) => Ok(value),
        (Err(_), Some(refusal)) => Err(refusal),
        (Err(error), None) => Err(Refusal::new(
            Reason::MalformedJson,
            format!("invalid JSON: {error}"),
        )),
    }
}

/// Where a visitor leaves the precise refusal before aborting the parse.
#[derive(Debug, Default)]
pub(crate) struct Slot(RefCell<Option<Refusal>>);

impl Slot {
    fn refuse<E: de::Error>(&self, refusal: Refusal) -> E {
        let message = refusal.detail.clone();
        self.0.borrow_mut().get_or_insert(refusal);
        E::custom(message)
    }
}

/// A seed that knows the slot; `T` says what it parses.
pub(crate) struct Seeded<'s, T> {
    slot: &'s Slot,
    kind: std::marker::PhantomData<T>,
}

fn seeded<T>(slot: &Slot) -> Seeded<'_, T> {
    Seeded {
        slot,
        kind: std::marker::PhantomData,
    }
}

/// Parses a `sites/{site}/telemetry` payload: `{"ts", "values"}`, an array
/// of those, or a flat map of sensor to value (with an optional `ts`).
pub(crate) fn parse_telemetry(payload: &[u8]) -> Result<Vec<RawReading<'_>>, Refusal> {
    parse(payload, seeded::<Telemetry<'_>>).map(|telemetry| telemetry.0)
}

/// Parses a `sites/{site}/sensors/{sensor}` payload: a bare number, or
/// `{"value": …, "ts": …}`.
pub(crate) fn parse_sensor_value<'a>(
    payload: &'a [u8],
    sensor: &'a str,
) -> Result<RawReading<'a>, Refusal> {
    let (value, timestamp) = parse(payload, seeded::<SensorValue>)?.0;
    Ok(RawReading {
        sensor: Cow::Borrowed(sensor),
        value: value.into_value(sensor),
        timestamp,
    })
}

/// Every reading of a telemetry payload.
pub(crate) struct Telemetry<'a>(Vec<RawReading<'a>>);

impl<'de, 's> DeserializeSeed<'de> for Seeded<'s, Telemetry<'de>> {
    type Value = Telemetry<'de>;

    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<Self::Value, D::Error> {
        deserializer.deserialize_any(TelemetryVisitor { slot: self.slot })
    }
}

struct TelemetryVisitor<'s> {
    slot: &'s Slot,
}

impl<'de> Visitor<'de> for TelemetryVisitor<'_> {
    type Value = Telemetry<'de>;

    fn expecting(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        formatter.write_str("an object or an array of objects")
    }

    fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<Self::Value, A::Error> {
        let mut readings = Vec::new();
        read_message(map, &mut readings, self.slot, None)?;
        Ok(Telemetry(readings))
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut sequence: A) -> Result<Self::Value, A::Error> {
        let mut readings = Vec::new();
        let mut index = 0;
        while let Some(()) = sequence.next_element_seed(MessageSeed {
            slot: self.slot,
            readings: &mut readings,
            index,
        })? {
            index += 1;
        }
        Ok(Telemetry(readings))
    }

    fn visit_bool<E: de::Error>(self, value: bool) -> Result<Self::Value, E> {
        Err(self.not_a_message(Kind::Bool(value)))
    }
    fn visit_i64<E: de::Error>(self, value: i64) -> Result<Self::Value, E> {
        Err(self.not_a_message(Kind::Text(value.to_string())))
    }
    fn visit_u64<E: de::Error>(self, value: u64) -> Result<Self::Value, E> {
        Err(self.not_a_message(Kind::Text(value.to_string())))
    }
    fn visit_f64<E: de::Error>(self, value: f64) -> Result<Self::Value, E> {
        Err(self.not_a_message(Kind::Text(value.to_string())))
    }
    fn visit_str<E: de::Error>(self, value: &str) -> Result<Self::Value, E> {
        Err(self.not_a_message(Kind::String(value)))
    }
    fn visit_unit<E: de::Error>(self) -> Result<Self::Value, E> {
        Err(self.not_a_message(Kind::Null))
    }
}

impl TelemetryVisitor<'_> {
    fn not_a_message<E: de::Error>(&self, kind: Kind<'_>) -> E {
        self.slot.refuse(shape(format!(
            "expected an object or an array of objects, got {kind}"
        )))
    }
}

/// One element of an array: must be a message object.
struct MessageSeed<'s, 'r, 'de> {
    slot: &'s Slot,
    readings: &'r mut Vec<RawReading<'de>>,
    index: usize,
}

impl<'de> DeserializeSeed<'de> for MessageSeed<'_, '_, 'de> {
    type Value = ();

    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<(), D::Error> {
        deserializer.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for MessageSeed<'_, '_, 'de> {
    type Value = ();

    fn expecting(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        formatter.write_str("a message object")
    }

    fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<(), A::Error> {
        read_message(map, self.readings, self.slot, Some(self.index))
    }

    fn visit_bool<E: de::Error>(self, _: bool) -> Result<(), E> {
        Err(self.not_an_object())
    }
    fn visit_i64<E: de::Error>(self, _: i64) -> Result<(), E> {
        Err(self.not_an_object())
    }
    fn visit_u64<E: de::Error>(self, _: u64) -> Result<(), E> {
        Err(self.not_an_object())
    }
    fn visit_f64<E: de::Error>(self, _: f64) -> Result<(), E> {
        Err(self.not_an_object())
    }
    fn visit_str<E: de::Error>(self, _: &str) -> Result<(), E> {
        Err(self.not_an_object())
    }
    fn visit_unit<E: de::Error>(self) -> Result<(), E> {
        Err(self.not_an_object())
    }
    fn visit_seq<A: SeqAccess<'de>>(self, _: A) -> Result<(), A::Error> {
        Err(self.not_an_object())
    }
}

impl MessageSeed<'_, '_, '_> {
    fn not_an_object<E: de::Error>(&self) -> E {
        self.slot.refuse(shape(format!(
            "element {} of the array is not an object",
            self.index
        )))
    }
}

/// Reads one `{"ts", "values"}` object or flat map into `readings`.
fn read_message<'de, A: MapAccess<'de>>(
    mut map: A,
    readings: &mut Vec<RawReading<'de>>,
    slot: &Slot,
    element: Option<usize>,
) -> Result<(), A::Error> {
    let at = |detail: String| match element {
        Some(index) => format!("element {index}: {detail}"),
        None => detail,
    };
    let first = readings.len();
    let mut timestamp = None;
    let mut nested = false;
    let mut flat: Option<Cow<'de, str>> = None;
    while let Some(key) = map.next_key::<Key<'de>>()? {
        match key.0.as_ref() {
            "ts" => {
                let value: Timestamp = map.next_value()?;
                timestamp = Some(value.into_millis().map_err(|refusal| {
                    slot.refuse(Refusal::new(refusal.reason, at(refusal.detail)))
                })?);
            }
            "values" if flat.is_none() => {
                nested = true;
                map.next_value_seed(ValuesSeed {
                    slot,
                    readings,
                    element,
                })?;
            }
            _ if nested || key.0 == "values" => {
                let extra = if nested {
                    key.0
                } else {
                    flat.take().unwrap_or_default()
                };
                return Err(slot.refuse(shape(at(format!(
                    "unexpected field {extra:?} beside \"values\" (expected only \"ts\" and \"values\")"
                )))));
            }
            _ => {
                let value: Scalar = map.next_value()?;
                let sensor = key.0;
                flat.get_or_insert_with(|| sensor.clone());
                readings.push(RawReading {
                    value: value.into_value(&sensor),
                    sensor,
                    timestamp: None,
                });
            }
        }
    }
    if readings.len() == first {
        return Err(slot.refuse(shape(at("the message holds no reading".to_owned()))));
    }
    for reading in &mut readings[first..] {
        reading.timestamp = timestamp;
    }
    Ok(())
}

/// The `values` object.
struct ValuesSeed<'s, 'r, 'de> {
    slot: &'s Slot,
    readings: &'r mut Vec<RawReading<'de>>,
    element: Option<usize>,
}

impl<'de> DeserializeSeed<'de> for ValuesSeed<'_, '_, 'de> {
    type Value = ();

    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<(), D::Error> {
        deserializer.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for ValuesSeed<'_, '_, 'de> {
    type Value = ();

    fn expecting(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        formatter.write_str("an object of sensor values")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<(), A::Error> {
        while let Some(key) = map.next_key::<Key<'de>>()? {
            let value: Scalar = map.next_value()?;
            self.readings.push(RawReading {
                value: value.into_value(&key.0),
                sensor: key.0,
                timestamp: None,
            });
        }
        Ok(())
    }

    fn visit_seq<A: SeqAccess<'de>>(self, _: A) -> Result<(), A::Error> {
        Err(self.not_an_object(Kind::Array))
    }
    fn visit_bool<E: de::Error>(self, value: bool) -> Result<(), E> {
        Err(self.not_an_object(Kind::Bool(value)))
    }
    fn visit_i64<E: de::Error>(self, value: i64) -> Result<(), E> {
        Err(self.not_an_object(Kind::Text(value.to_string())))
    }
    fn visit_u64<E: de::Error>(self, value: u64) -> Result<(), E> {
        Err(self.not_an_object(Kind::Text(value.to_string())))
    }
    fn visit_f64<E: de::Error>(self, value: f64) -> Result<(), E> {
        Err(self.not_an_object(Kind::Text(value.to_string())))
    }
    fn visit_str<E: de::Error>(self, value: &str) -> Result<(), E> {
        Err(self.not_an_object(Kind::String(value)))
    }
    fn visit_unit<E: de::Error>(self) -> Result<(), E> {
        Err(self.not_an_object(Kind::Null))
    }
}

impl ValuesSeed<'_, '_, '_> {
    fn not_an_object<E: de::Error>(&self, kind: Kind<'_>) -> E {
        let detail = format!("\"values\" must be an object, got {kind}");
        let detail = match self.element {
            Some(index) => format!("element {index}: {detail}"),
            None => detail,
        };
        self.slot.refuse(shape(detail))
    }
}

/// The `sites/{site}/sensors/{sensor}` payload.
pub(crate) struct SensorValue((Scalar, Option<EpochMillis>));

impl<'de, 's> DeserializeSeed<'de> for Seeded<'s, SensorValue> {
    type Value = SensorValue;

    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<Self::Value, D::Error> {
        deserializer.deserialize_any(SensorValueVisitor { slot: self.slot })
    }
}

struct SensorValueVisitor<'s> {
    slot: &'s Slot,
}

impl<'de> Visitor<'de> for SensorValueVisitor<'_> {
    type Value = SensorValue;

    fn expecting(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        formatter.write_str("a number or {\"value\": …, \"ts\": …}")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
        let mut value = None;
        let mut timestamp = None;
        while let Some(key) = map.next_key::<Key<'de>>()? {
            match key.0.as_ref() {
                "value" => value = Some(map.next_value::<Scalar>()?),
                "ts" => {
                    let ts: Timestamp = map.next_value()?;
                    timestamp = Some(
                        ts.into_millis()
                            .map_err(|refusal| self.slot.refuse(refusal))?,
                    );
                }
                other => {
                    return Err(self.slot.refuse(shape(format!(
                        "unexpected field {other:?} (expected only \"value\" and \"ts\")"
                    ))));
                }
            }
        }
        match value {
            Some(value) => Ok(SensorValue((value, timestamp))),
            None => Err(self.slot.refuse(shape(
                "expected a number or an object with \"value\"".to_owned(),
            ))),
        }
    }

    fn visit_f64<E: de::Error>(self, value: f64) -> Result<Self::Value, E> {
        Ok(SensorValue((Scalar::Number(value), None)))
    }
    fn visit_i64<E: de::Error>(self, value: i64) -> Result<Self::Value, E> {
        Ok(SensorValue((Scalar::Number(value as f64), None)))
    }
    fn visit_u64<E: de::Error>(self, value: u64) -> Result<Self::Value, E> {
        Ok(SensorValue((Scalar::Number(value as f64), None)))
    }
    fn visit_str<E: de::Error>(self, value: &str) -> Result<Self::Value, E> {
        Ok(SensorValue((
            Scalar::Other(Kind::String(value).to_string()),
            None,
        )))
    }
    fn visit_bool<E: de::Error>(self, value: bool) -> Result<Self::Value, E> {
        Ok(SensorValue((Scalar::Other(value.to_string()), None)))
    }
    fn visit_unit<E: de::Error>(self) -> Result<Self::Value, E> {
        Ok(SensorValue((Scalar::Other("null".into()), None)))
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut sequence: A) -> Result<Self::Value, A::Error> {
        while sequence.next_element::<IgnoredAny>()?.is_some() {}
        Ok(SensorValue((Scalar::Other("an array".into()), None)))
    }
}

/// A map key, borrowed from the payload when it has no escapes.
struct Key<'de>(Cow<'de, str>);

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

/// A reading's value: a number, or a description of what came instead.
enum Scalar {
    Number(f64),
    Other(String),
}

impl Scalar {
    fn into_value(self, sensor: &str) -> Result<f64, Refusal> {
        match self {
            Scalar::Number(number) if number.is_finite() => Ok(number),
            Scalar::Number(number) => Err(non_numeric(sensor, &number.to_string())),
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

impl<'de> de::Deserialize<'de> for Scalar {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct ScalarVisitor;
        impl<'de> Visitor<'de> for ScalarVisitor {
            type Value = Scalar;
            fn expecting(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
                formatter.write_str("a value")
            }
            fn visit_f64<E: de::Error>(self, value: f64) -> Result<Scalar, E> {
                Ok(Scalar::Number(value))
            }
            fn visit_i64<E: de::Error>(self, value: i64) -> Result<Scalar, E> {
                Ok(Scalar::Number(value as f64))
            }
            fn visit_u64<E: de::Error>(self, value: u64) -> Result<Scalar, E> {
                Ok(Scalar::Number(value as f64))
            }
            fn visit_str<E: de::Error>(self, value: &str) -> Result<Scalar, E> {
                Ok(Scalar::Other(Kind::String(value).to_string()))
            }
            fn visit_bool<E: de::Error>(self, value: bool) -> Result<Scalar, E> {
                Ok(Scalar::Other(value.to_string()))
            }
            fn visit_unit<E: de::Error>(self) -> Result<Scalar, E> {
                Ok(Scalar::Other("null".into()))
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut sequence: A) -> Result<Scalar, A::Error> {
                while sequence.next_element::<IgnoredAny>()?.is_some() {}
                Ok(Scalar::Other("an array".into()))
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Scalar, A::Error> {
                while map.next_entry::<IgnoredAny, IgnoredAny>()?.is_some() {}
                Ok(Scalar::Other("an object".into()))
            }
        }
        deserializer.deserialize_any(ScalarVisitor)
    }
}

/// `ts`: epoch milliseconds (an integer) or an RFC 3339 string.
enum Timestamp {
    Millis(Option<i64>),
    Text(String),
    Other(String),
}

impl Timestamp {
    fn into_millis(self) -> Result<EpochMillis, Refusal> {
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

/// What a JSON value is, for messages.
enum Kind<'a> {
    Null,
    Bool(bool),
    Text(String),
    String(&'a str),
    Array,
}

impl fmt::Display for Kind<'_> {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Kind::Null => formatter.write_str("null"),
            Kind::Bool(flag) => write!(formatter, "{flag}"),
            Kind::Text(text) => formatter.write_str(text),
            Kind::String(text) => write!(formatter, "the string {}", excerpt(&format!("{text:?}"))),
            Kind::Array => formatter.write_str("an array"),
        }
    }
}

fn shape(detail: String) -> Refusal {
    Refusal::new(Reason::MalformedJson, detail)
}

fn excerpt(text: &str) -> String {
    if text.chars().count() <= 40 {
        text.to_owned()
    } else {
        format!("{}…", text.chars().take(40).collect::<String>())
    }
}

/// The check behind the `payload` fuzz target and the test that replays
/// its corpus: any bytes through both parsers must never panic, and what
/// comes out must hold the parsers' promises. Not an API.
#[doc(hidden)]
pub mod fuzzing {
    use super::{MAX_PAYLOAD_BYTES, RawReading, Refusal, parse_sensor_value, parse_telemetry};
    use crate::Reason;

    /// The sensor key the `sites/{site}/sensors/{sensor}` parse is given.
    const SENSOR: &str = "b1_flue_temp";

    /// Parses `data` as both topic shapes and checks the invariants:
    /// - a message is refused whole only as too large (exactly when it is
    ///   over the limit), malformed or with a bad timestamp, with a detail;
    /// - an accepted message is syntactically valid JSON, whole;
    /// - every accepted reading's value is finite, and every refused one
    ///   is refused as `non_numeric` with a detail naming its sensor;
    /// - a sensor-topic reading carries the topic's sensor key.
    ///
    /// Returns the number of readings accepted by either parse. Panics on
    /// a broken invariant.
    pub fn check_payload(data: &[u8]) -> usize {
        let too_large = data.len() > MAX_PAYLOAD_BYTES;
        let telemetry = parse_telemetry(data);
        let sensor = parse_sensor_value(data, SENSOR);
        for refusal in [telemetry.as_ref().err(), sensor.as_ref().err()]
            .into_iter()
            .flatten()
        {
            check_message_refusal(refusal, too_large, data);
        }
        let accepted = telemetry.is_ok() || sensor.is_ok();
        if accepted {
            assert!(!too_large, "a payload over the limit was accepted");
            assert!(
                serde_json::from_slice::<serde::de::IgnoredAny>(data).is_ok(),
                "accepted a payload that is not JSON: {:?}",
                String::from_utf8_lossy(data)
            );
        }
        let mut readings = 0;
        if let Ok(telemetry) = &telemetry {
            for reading in telemetry {
                readings += check_reading(reading);
            }
        }
        if let Ok(reading) = &sensor {
            assert_eq!(reading.sensor, SENSOR);
            readings += check_reading(reading);
        }
        readings
    }

    fn check_message_refusal(refusal: &Refusal, too_large: bool, data: &[u8]) {
        assert!(!refusal.detail.is_empty(), "{refusal:?}");
        assert_eq!(
            refusal.reason == Reason::PayloadTooLarge,
            too_large,
            "{refusal:?} for {} bytes",
            data.len()
        );
        assert!(
            matches!(
                refusal.reason,
                Reason::PayloadTooLarge | Reason::MalformedJson | Reason::InvalidTimestamp
            ),
            "a whole message refused as {:?}",
            refusal.reason
        );
    }

    fn check_reading(reading: &RawReading<'_>) -> usize {
        match &reading.value {
            Ok(value) => {
                assert!(
                    value.is_finite(),
                    "accepted {value} for {:?}",
                    reading.sensor
                );
                1
            }
            Err(refusal) => {
                assert_eq!(refusal.reason, Reason::NonNumeric, "{refusal:?}");
                assert!(
                    refusal.detail.contains(&format!("{:?}", reading.sensor)),
                    "the detail names the sensor: {refusal:?}"
                );
                0
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ok(value: f64) -> Result<f64, Refusal> {
        Ok(value)
    }

    fn millis(value: i64) -> Option<EpochMillis> {
        Some(EpochMillis::from_millis(value).unwrap())
    }

    #[test]
    fn object_with_ts_and_values() {
        let readings = parse_telemetry(
            br#"{"ts": 1732269600000, "values": {"b1_flue_temp": 181.2, "b1_steam_pressure": 10.4}}"#,
        )
        .unwrap();
        assert_eq!(readings.len(), 2);
        assert!(
            readings
                .iter()
                .all(|reading| reading.timestamp == millis(1_732_269_600_000))
        );
        let flue = readings
            .iter()
            .find(|reading| reading.sensor == "b1_flue_temp")
            .unwrap();
        assert_eq!(flue.value, ok(181.2));
    }

    #[test]
    fn array_of_objects_with_rfc3339_timestamps() {
        let readings = parse_telemetry(
            br#"[{"ts": "2024-11-22T10:00:00Z", "values": {"a": 1}},
                 {"ts": "2024-11-22T10:00:01.500+00:00", "values": {"a": 2}}]"#,
        )
        .unwrap();
        assert_eq!(readings[0].timestamp, millis(1_732_269_600_000));
        assert_eq!(readings[1].timestamp, millis(1_732_269_601_500));
        assert_eq!(readings[1].value, ok(2.0));
    }

    #[test]
    fn flat_map_without_ts_uses_receive_time() {
        let readings = parse_telemetry(br#"{"b1_flue_temp": 181.2}"#).unwrap();
        assert_eq!(
            readings,
            vec![RawReading {
                sensor: "b1_flue_temp".into(),
                value: ok(181.2),
                timestamp: None
            }]
        );
    }

    #[test]
    fn one_bad_value_does_not_spoil_the_message() {
        let readings =
            parse_telemetry(br#"{"values": {"a": 1.5, "b": "high", "c": null, "d": true}}"#)
                .unwrap();
        let refused: Vec<_> = readings
            .iter()
            .filter(|reading| reading.value.is_err())
            .collect();
        assert_eq!(refused.len(), 3);
        assert!(
            refused
                .iter()
                .all(|reading| reading.value.as_ref().unwrap_err().reason == Reason::NonNumeric)
        );
        let detail = &readings
            .iter()
            .find(|r| r.sensor == "b")
            .unwrap()
            .value
            .as_ref()
            .unwrap_err()
            .detail;
        assert_eq!(
            detail,
            "value of \"b\" is the string \"high\", not a finite number"
        );
    }

    #[test]
    fn malformed_payloads_are_refused_with_a_reason() {
        for (payload, reason, detail) in [
            (&b"{not json"[..], Reason::MalformedJson, "invalid JSON"),
            (
                b"42",
                Reason::MalformedJson,
                "expected an object or an array",
            ),
            (
                b"[1]",
                Reason::MalformedJson,
                "element 0 of the array is not an object",
            ),
            (
                br#"{"values": [1]}"#,
                Reason::MalformedJson,
                "\"values\" must be an object",
            ),
            (br#"{"values": {}}"#, Reason::MalformedJson, "no reading"),
            (
                br#"{"values": {"a": 1}, "extra": 2}"#,
                Reason::MalformedJson,
                "unexpected field \"extra\"",
            ),
            (
                br#"{"ts": "yesterday", "values": {"a": 1}}"#,
                Reason::InvalidTimestamp,
                "\"ts\" \"yesterday\"",
            ),
            (
                br#"{"ts": 1.5, "values": {"a": 1}}"#,
                Reason::InvalidTimestamp,
                "epoch milliseconds",
            ),
            (br#"{"a": 1e999}"#, Reason::MalformedJson, "invalid JSON"),
        ] {
            let refusal = parse_telemetry(payload).unwrap_err();
            assert_eq!(
                refusal.reason,
                reason,
                "{}",
                String::from_utf8_lossy(payload)
            );
            assert!(
                refusal.detail.contains(detail),
                "{:?} lacks {detail:?}",
                refusal.detail
            );
        }
    }

    #[test]
    fn ts_may_follow_the_values_and_keys_may_be_escaped() {
        let readings = parse_telemetry(
            br#"{"values": {"b\u0031_flue": 1, "b2": {"x": 1}}, "ts": 1732269600000}"#,
        )
        .unwrap();
        assert_eq!(readings[0].sensor, "b1_flue");
        assert!(
            readings
                .iter()
                .all(|reading| reading.timestamp == millis(1_732_269_600_000))
        );
        let nested = readings[1].value.as_ref().unwrap_err();
        assert_eq!(
            nested.detail,
            "value of \"b2\" is an object, not a finite number"
        );
    }

    #[test]
    fn errors_inside_an_array_name_the_element() {
        let refusal = parse_telemetry(br#"[{"values": {"a": 1}}, {"values": 5}]"#).unwrap_err();
        assert_eq!(refusal.reason, Reason::MalformedJson);
        assert_eq!(
            refusal.detail,
            "element 1: \"values\" must be an object, got 5"
        );
        let refusal = parse_telemetry(br#"[{"ts": "soon", "values": {"a": 1}}]"#).unwrap_err();
        assert_eq!(refusal.reason, Reason::InvalidTimestamp);
        assert!(
            refusal.detail.starts_with("element 0: "),
            "{}",
            refusal.detail
        );
        let refusal = parse_telemetry(br#"{"a": 1, "values": {"b": 2}}"#).unwrap_err();
        assert!(
            refusal
                .detail
                .contains("unexpected field \"a\" beside \"values\""),
            "{}",
            refusal.detail
        );
    }

    #[test]
    fn oversized_payloads_are_refused_before_parsing() {
        let payload = vec![b' '; MAX_PAYLOAD_BYTES + 1];
        assert_eq!(
            parse_telemetry(&payload).unwrap_err().reason,
            Reason::PayloadTooLarge
        );
    }

    #[test]
    fn sensor_topic_takes_a_bare_number_or_an_object() {
        assert_eq!(parse_sensor_value(b"81.5", "t").unwrap().value, ok(81.5));
        let reading = parse_sensor_value(br#"{"value": 81.5, "ts": 1732269600000}"#, "t").unwrap();
        assert_eq!(
            (reading.value, reading.timestamp),
            (ok(81.5), millis(1_732_269_600_000))
        );
        assert_eq!(
            parse_sensor_value(br#""hot""#, "t")
                .unwrap()
                .value
                .unwrap_err()
                .reason,
            Reason::NonNumeric
        );
        assert_eq!(
            parse_sensor_value(br#"{"v": 1}"#, "t").unwrap_err().reason,
            Reason::MalformedJson
        );
    }

    /// Replays the committed corpus of the `payload` fuzz target (`fuzz/`),
    /// so CI checks every input the fuzzer found interesting.
    #[test]
    fn fuzz_corpus_replays() {
        let directory =
            std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../fuzz/corpus/payload");
        let mut replayed = 0;
        for entry in std::fs::read_dir(&directory).expect("the fuzz corpus is committed") {
            let data = std::fs::read(entry.unwrap().path()).unwrap();
            fuzzing::check_payload(&data);
            replayed += 1;
        }
        assert!(replayed > 0, "no corpus in {}", directory.display());
    }

    #[test]
    fn fuzz_check_holds_for_hand_picked_payloads() {
        for payload in [
            &br#"{"ts": 1732269600000, "values": {"a": 1, "b": "x", "c": null}}"#[..],
            br#"[{"ts": "2024-11-22T10:00:00Z", "values": {"a": 1e308}}, {"b": -0}]"#,
            br#"{"value": 81.5, "ts": 1}"#,
            b"81.5",
            br#"{"a\u0000\"": [1, {"x": []}]}"#,
            b"[]",
            b"{\"ts\": 1e400}",
            &[0xFF, 0xFE],
        ] {
            fuzzing::check_payload(payload);
        }
        assert_eq!(
            fuzzing::check_payload(&vec![b' '; MAX_PAYLOAD_BYTES + 1]),
            0
        );
    }
}
