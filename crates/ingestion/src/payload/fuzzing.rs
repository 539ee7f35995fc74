//! The check behind the `payload` fuzz target and the test that replays
//! its corpus: any bytes through both parsers must never panic, and what
//! comes out must hold the parsers' promises. Not an API.

use super::{
    MAX_PAYLOAD_BYTES, RawReading, RawValue, Refusal, parse_sensor_value, parse_telemetry,
};
use crate::Reason;

/// The sensor key the `sites/{site}/sensors/{sensor}` parse is given.
const SENSOR: &str = "b1_flue_temp";

/// Parses `data` as both topic shapes and checks the invariants:
/// - a message is refused whole only as too large (exactly when it is
///   over the limit), malformed or with a bad timestamp, with a detail;
/// - an accepted message is syntactically valid JSON, whole;
/// - every accepted reading's value is a finite number, a boolean or a
///   string, and every refused one is refused as `non_numeric` with a
///   detail naming its sensor;
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
        Ok(RawValue::Number(value)) => {
            assert!(
                value.is_finite(),
                "accepted {value} for {:?}",
                reading.sensor
            );
            1
        }
        Ok(RawValue::Integer(_) | RawValue::Boolean(_) | RawValue::Text(_)) => 1,
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
