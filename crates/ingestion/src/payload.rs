//! Payload parsing: the JSON shapes of DESIGN.md, before any registry
//! lookup. A malformed message is refused whole; a reading whose value or
//! timestamp is wrong is refused alone, and the rest of its message stands.

use serde_json::{Map, Value};
use stoker_domain::EpochMillis;

use crate::Reason;

/// Largest accepted payload (DESIGN.md).
pub(crate) const MAX_PAYLOAD_BYTES: usize = 256 * 1024;

/// A reading as the payload states it, not yet checked against the registry.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct RawReading {
    /// The sensor key as written (validated later).
    pub sensor: String,
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

fn parse_json(payload: &[u8]) -> Result<Value, Refusal> {
    check_size(payload)?;
    serde_json::from_slice(payload)
        .map_err(|error| Refusal::new(Reason::MalformedJson, format!("invalid JSON: {error}")))
}

/// Parses a `sites/{site}/telemetry` payload: `{"ts", "values"}`, an array
/// of those, or a flat map of sensor to value (with an optional `ts`).
pub(crate) fn parse_telemetry(payload: &[u8]) -> Result<Vec<RawReading>, Refusal> {
    let mut readings = Vec::new();
    match parse_json(payload)? {
        Value::Array(messages) => {
            for (index, message) in messages.into_iter().enumerate() {
                let Value::Object(message) = message else {
                    return Err(shape(format!(
                        "element {index} of the array is not an object"
                    )));
                };
                parse_message(message, &mut readings).map_err(|refusal| {
                    Refusal::new(
                        refusal.reason,
                        format!("element {index}: {}", refusal.detail),
                    )
                })?;
            }
        }
        Value::Object(message) => parse_message(message, &mut readings)?,
        other => {
            return Err(shape(format!(
                "expected an object or an array of objects, got {}",
                kind(&other)
            )));
        }
    }
    Ok(readings)
}

/// One `{"ts": …, "values": {…}}` object, or a flat map.
fn parse_message(
    mut message: Map<String, Value>,
    readings: &mut Vec<RawReading>,
) -> Result<(), Refusal> {
    let timestamp = message
        .remove("ts")
        .map(|ts| parse_timestamp(&ts))
        .transpose()?;
    let values = match message.remove("values") {
        Some(Value::Object(values)) => {
            if let Some(extra) = message.keys().next() {
                return Err(shape(format!(
                    "unexpected field {extra:?} beside \"values\" (expected only \"ts\" and \"values\")"
                )));
            }
            values
        }
        Some(other) => {
            return Err(shape(format!(
                "\"values\" must be an object, got {}",
                kind(&other)
            )));
        }
        // A flat map: every remaining field is a sensor.
        None => message,
    };
    if values.is_empty() {
        return Err(shape("the message holds no reading".to_owned()));
    }
    readings.reserve(values.len());
    for (sensor, value) in values {
        let value = number(&sensor, &value);
        readings.push(RawReading {
            sensor,
            value,
            timestamp,
        });
    }
    Ok(())
}

/// Parses a `sites/{site}/sensors/{sensor}` payload: a bare number, or
/// `{"value": …, "ts": …}`.
pub(crate) fn parse_sensor_value(payload: &[u8], sensor: &str) -> Result<RawReading, Refusal> {
    match parse_json(payload)? {
        Value::Object(mut object) => {
            let timestamp = object
                .remove("ts")
                .map(|ts| parse_timestamp(&ts))
                .transpose()?;
            let Some(value) = object.remove("value") else {
                return Err(shape(
                    "expected a number or an object with \"value\"".to_owned(),
                ));
            };
            if let Some(extra) = object.keys().next() {
                return Err(shape(format!(
                    "unexpected field {extra:?} (expected only \"value\" and \"ts\")"
                )));
            }
            Ok(RawReading {
                sensor: sensor.to_owned(),
                value: number(sensor, &value),
                timestamp,
            })
        }
        value => Ok(RawReading {
            sensor: sensor.to_owned(),
            value: number(sensor, &value),
            timestamp: None,
        }),
    }
}

fn number(sensor: &str, value: &Value) -> Result<f64, Refusal> {
    match value.as_f64() {
        Some(number) if number.is_finite() => Ok(number),
        _ => Err(Refusal::new(
            Reason::NonNumeric,
            format!(
                "value of {sensor:?} is {}, not a finite number",
                kind(value)
            ),
        )),
    }
}

/// `ts` is epoch milliseconds (an integer) or an RFC 3339 string.
fn parse_timestamp(value: &Value) -> Result<EpochMillis, Refusal> {
    let invalid = || {
        Refusal::new(
            Reason::InvalidTimestamp,
            format!(
                "\"ts\" {} is neither epoch milliseconds nor an RFC 3339 string",
                excerpt(&value.to_string())
            ),
        )
    };
    match value {
        Value::Number(number) => number
            .as_i64()
            .and_then(|millis| EpochMillis::from_millis(millis).ok())
            .ok_or_else(invalid),
        Value::String(text) => EpochMillis::parse_rfc3339(text).map_err(|_| invalid()),
        _ => Err(invalid()),
    }
}

fn shape(detail: String) -> Refusal {
    Refusal::new(Reason::MalformedJson, detail)
}

fn kind(value: &Value) -> String {
    match value {
        Value::Null => "null".into(),
        Value::Bool(flag) => flag.to_string(),
        Value::Number(number) => number.to_string(),
        Value::String(text) => format!("the string {}", excerpt(&format!("{text:?}"))),
        Value::Array(_) => "an array".into(),
        Value::Object(_) => "an object".into(),
    }
}

fn excerpt(text: &str) -> String {
    if text.chars().count() <= 40 {
        text.to_owned()
    } else {
        format!("{}…", text.chars().take(40).collect::<String>())
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
}
