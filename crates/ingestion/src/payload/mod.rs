//! Payload parsing: the JSON shapes of DESIGN.md, before any registry
//! lookup. A malformed message is refused whole; a reading whose value or
//! timestamp is wrong is refused alone, and the rest of its message stands.
//!
//! The parse streams through serde visitors rather than building a
//! `serde_json::Value`: sensor keys are borrowed from the payload and the
//! only allocation per message is the vector of readings. When the shape
//! is wrong, the visitor leaves the precise refusal in a side slot and
//! aborts the parse.
//!
//! Layout: `refusal` (what a parse yields and why it refuses), `scalars`
//! (keys, values, timestamps), `shapes` (the message shapes, built from
//! those), and here the two entry points; `line`: line protocol
//! (InfluxDB-compatible writes) mapped to the same readings.

mod line;
mod refusal;
mod scalars;
mod shapes;

#[doc(hidden)]
pub mod fuzzing;

use std::borrow::Cow;

use serde::de::DeserializeSeed;

pub(crate) use line::{LineOutcome, read_lines};
use refusal::Slot;
pub(crate) use refusal::{RawReading, RawValue, Refusal};
use shapes::{Seeded, SensorValue, Telemetry, seeded};

use crate::Reason;

/// Largest accepted payload (DESIGN.md).
pub(crate) const MAX_PAYLOAD_BYTES: usize = 256 * 1024;

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
    match (outcome, slot.into_refusal()) {
        (Ok(value), _) => Ok(value),
        (Err(_), Some(refusal)) => Err(refusal),
        (Err(error), None) => Err(Refusal::new(
            Reason::MalformedJson,
            format!("invalid JSON: {error}"),
        )),
    }
}

/// Parses a `sites/{site}/telemetry` payload: `{"ts", "values"}`, an array
/// of those, or a flat map of sensor to value (with an optional `ts`).
pub(crate) fn parse_telemetry(payload: &[u8]) -> Result<Vec<RawReading<'_>>, Refusal> {
    parse(payload, seeded::<Telemetry<'_>>).map(|telemetry| telemetry.0)
}

/// Parses a `sites/{site}/sensors/{sensor}` payload: a bare number,
/// `true`/`false` or a JSON string, or `{"value": …, "ts": …}`.
pub(crate) fn parse_sensor_value<'a>(
    payload: &'a [u8],
    sensor: &'a str,
) -> Result<RawReading<'a>, Refusal> {
    let (value, timestamp) = parse(payload, seeded::<SensorValue<'_>>)?.0;
    Ok(RawReading {
        sensor: Cow::Borrowed(sensor),
        value: value.into_value(sensor),
        timestamp,
    })
}

#[cfg(test)]
mod tests {
    use stoker_domain::EpochMillis;

    use super::*;

    fn ok(value: f64) -> Result<RawValue<'static>, Refusal> {
        Ok(RawValue::Number(value))
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
        let readings = parse_telemetry(
            br#"{"values": {"a": 1.5, "b": "high", "c": null, "d": true, "e": [1], "f": {}}}"#,
        )
        .unwrap();
        let refused: Vec<_> = readings
            .iter()
            .filter(|reading| reading.value.is_err())
            .collect();
        assert_eq!(
            refused.len(),
            3,
            "null, an array and an object are no value"
        );
        assert!(
            refused
                .iter()
                .all(|reading| reading.value.as_ref().unwrap_err().reason == Reason::NonNumeric)
        );
        let detail = &readings
            .iter()
            .find(|r| r.sensor == "c")
            .unwrap()
            .value
            .as_ref()
            .unwrap_err()
            .detail;
        assert_eq!(detail, "value of \"c\" is null, not a finite number");
        // A string or a boolean is a value of some kind: the registry says
        // whether it is the sensor's (writer::validate refuses "high" for a
        // numeric sensor as non_numeric, `true` as wrong_kind).
        let value = |sensor: &str| {
            readings
                .iter()
                .find(|r| r.sensor == sensor)
                .unwrap()
                .value
                .clone()
        };
        assert_eq!(value("b"), Ok(RawValue::Text("high".into())));
        assert_eq!(value("d"), Ok(RawValue::Boolean(true)));
    }

    #[test]
    fn strings_without_escapes_are_borrowed_from_the_payload() {
        let readings =
            parse_telemetry(br#"{"values": {"seq": "firing", "esc": "fi\u0072ing"}}"#).unwrap();
        assert!(matches!(
            &readings[0].value,
            Ok(RawValue::Text(std::borrow::Cow::Borrowed("firing")))
        ));
        assert!(matches!(
            &readings[1].value,
            Ok(RawValue::Text(std::borrow::Cow::Owned(text))) if text == "firing"
        ));
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
            parse_sensor_value(br#""hot""#, "t").unwrap().value,
            Ok(RawValue::Text("hot".into()))
        );
        assert_eq!(
            parse_sensor_value(b"true", "t").unwrap().value,
            Ok(RawValue::Boolean(true))
        );
        assert_eq!(
            parse_sensor_value(br#"{"value": false, "ts": 1732269600000}"#, "t")
                .unwrap()
                .value,
            Ok(RawValue::Boolean(false))
        );
        assert_eq!(
            parse_sensor_value(b"null", "t")
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
