//! The shapes of a payload, as serde visitors: a telemetry message
//! (`{"ts", "values"}`, an array of those, or a flat map) and a
//! sensor-topic value (a bare number, `true`/`false` or a JSON string, or
//! `{"value", "ts"}`). Sensor keys
//! are borrowed from the payload; a wrong shape leaves its refusal in the
//! [`Slot`] and aborts the parse.

use std::borrow::Cow;
use std::fmt;

use serde::de::{self, DeserializeSeed, Deserializer, IgnoredAny, MapAccess, SeqAccess, Visitor};
use stoker_domain::EpochMillis;

use super::refusal::{Kind, RawReading, Refusal, Slot, shape};
use super::scalars::{Key, Scalar, Timestamp};

/// A seed that knows the slot; `T` says what it parses.
pub(super) struct Seeded<'s, T> {
    slot: &'s Slot,
    kind: std::marker::PhantomData<T>,
}

pub(super) fn seeded<T>(slot: &Slot) -> Seeded<'_, T> {
    Seeded {
        slot,
        kind: std::marker::PhantomData,
    }
}

/// Every reading of a telemetry payload.
pub(super) struct Telemetry<'a>(pub(super) Vec<RawReading<'a>>);

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
                let value: Scalar<'de> = map.next_value()?;
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
            let value: Scalar<'de> = map.next_value()?;
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
pub(super) struct SensorValue<'de>(pub(super) (Scalar<'de>, Option<EpochMillis>));

impl<'de, 's> DeserializeSeed<'de> for Seeded<'s, SensorValue<'de>> {
    type Value = SensorValue<'de>;

    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<Self::Value, D::Error> {
        deserializer.deserialize_any(SensorValueVisitor { slot: self.slot })
    }
}

struct SensorValueVisitor<'s> {
    slot: &'s Slot,
}

impl<'de> Visitor<'de> for SensorValueVisitor<'_> {
    type Value = SensorValue<'de>;

    fn expecting(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        formatter.write_str("a number or {\"value\": …, \"ts\": …}")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
        let mut value = None;
        let mut timestamp = None;
        while let Some(key) = map.next_key::<Key<'de>>()? {
            match key.0.as_ref() {
                "value" => value = Some(map.next_value::<Scalar<'de>>()?),
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
    fn visit_borrowed_str<E: de::Error>(self, value: &'de str) -> Result<Self::Value, E> {
        Ok(SensorValue((Scalar::Text(Cow::Borrowed(value)), None)))
    }
    fn visit_str<E: de::Error>(self, value: &str) -> Result<Self::Value, E> {
        Ok(SensorValue((
            Scalar::Text(Cow::Owned(value.to_owned())),
            None,
        )))
    }
    fn visit_bool<E: de::Error>(self, value: bool) -> Result<Self::Value, E> {
        Ok(SensorValue((Scalar::Boolean(value), None)))
    }
    fn visit_unit<E: de::Error>(self) -> Result<Self::Value, E> {
        Ok(SensorValue((Scalar::Other("null".into()), None)))
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut sequence: A) -> Result<Self::Value, A::Error> {
        while sequence.next_element::<IgnoredAny>()?.is_some() {}
        Ok(SensorValue((Scalar::Other("an array".into()), None)))
    }
}
