//! The telemetry message body, written by hand: at a few thousand messages
//! a second a serde map per message would allocate a key string per reading,
//! while this writes the pre-rendered keys into one buffer per message.

use std::fmt::Write as _;

use crate::fleet::{SensorSpec, SignalSpec};
use crate::signal::SignalValue;

/// Writes `{"ts": <epoch ms>, "values": {"<key>": <reading>, …}}` for a
/// site's sensors (every site of a run has the same keys).
#[derive(Debug)]
pub(crate) struct Encoder {
    /// `"b1_steam_pressure":` and so on, JSON-escaped once.
    rendered_keys: Vec<String>,
    /// The same for the digital signals (`--digital`), written after them.
    signal_keys: Vec<String>,
    /// The longest payload so far, so each new buffer is allocated once at
    /// the right size.
    capacity: usize,
}

impl Encoder {
    pub(crate) fn new(sensors: &[SensorSpec]) -> Self {
        let rendered_keys: Vec<String> = sensors.iter().map(|sensor| render(&sensor.key)).collect();
        // A reading is at most "-1234567.89," in practice.
        let capacity = 32
            + rendered_keys
                .iter()
                .map(|key| key.len() + 12)
                .sum::<usize>();
        Self {
            rendered_keys,
            signal_keys: Vec::new(),
            capacity,
        }
    }

    /// The same encoder, also writing these digital signals.
    pub(crate) fn with_signals(mut self, signals: &[SignalSpec]) -> Self {
        self.signal_keys = signals.iter().map(|signal| render(&signal.key)).collect();
        // A signal's value is at most `"ignition",`.
        self.capacity += self
            .signal_keys
            .iter()
            .map(|key| key.len() + 12)
            .sum::<usize>();
        self
    }

    /// The payload of one message; `reading(i)` gives the value of the
    /// `i`-th sensor, or `None` to leave that sensor out. Readings are
    /// rounded to two decimals, which is finer than the sensors' noise.
    #[cfg(test)]
    pub(crate) fn encode(
        &mut self,
        ts_millis: i64,
        reading: impl FnMut(usize) -> Option<f64>,
    ) -> Vec<u8> {
        self.encode_with_signals(ts_millis, reading, |_| SignalValue::Boolean(false))
    }

    /// [`encode`](Self::encode), with each digital signal's value from
    /// `signal(i)` after the readings: `true`, `"firing"`.
    pub(crate) fn encode_with_signals(
        &mut self,
        ts_millis: i64,
        mut reading: impl FnMut(usize) -> Option<f64>,
        mut signal: impl FnMut(usize) -> SignalValue,
    ) -> Vec<u8> {
        let mut payload = String::with_capacity(self.capacity);
        // Writing into a String cannot fail, so the fmt::Results are ignored.
        let _ = write!(payload, r#"{{"ts":{ts_millis},"values":{{"#);
        let mut first = true;
        for (index, key) in self.rendered_keys.iter().enumerate() {
            let Some(value) = reading(index) else {
                continue;
            };
            if !first {
                payload.push(',');
            }
            first = false;
            payload.push_str(key);
            // Adding 0.0 turns -0.0 into 0.0, so no "-0.00" appears.
            let _ = write!(payload, "{:.2}", value + 0.0);
        }
        for (index, key) in self.signal_keys.iter().enumerate() {
            if !first {
                payload.push(',');
            }
            first = false;
            payload.push_str(key);
            // State names are plain ASCII words: no escaping needed.
            match signal(index) {
                SignalValue::Boolean(flag) => {
                    let _ = write!(payload, "{flag}");
                }
                SignalValue::State(name) => {
                    let _ = write!(payload, "\"{name}\"");
                }
            }
        }
        payload.push_str("}}");
        self.capacity = self.capacity.max(payload.len());
        payload.into_bytes()
    }
}

/// `"key":`, JSON-escaped.
fn render(key: &str) -> String {
    let mut rendered =
        serde_json::to_string(key).expect("serializing a string to JSON cannot fail");
    rendered.push(':');
    rendered
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::args::SimulateArgs;
    use crate::fleet::fleet;

    #[test]
    fn payload_is_the_telemetry_object_of_the_contract() {
        let sites = fleet(&SimulateArgs {
            sensors: 3,
            ..SimulateArgs::default()
        });
        let mut encoder = Encoder::new(&sites[0].sensors);
        let values = [10.434_999, 181.2, -0.0];
        let payload = encoder.encode(1_732_269_600_000, |index| Some(values[index]));
        assert_eq!(
            std::str::from_utf8(&payload).unwrap(),
            r#"{"ts":1732269600000,"values":{"b1_steam_pressure":10.43,"b1_flue_temp":181.20,"b1_water_temp":0.00}}"#
        );
        let parsed: serde_json::Value = serde_json::from_slice(&payload).unwrap();
        assert_eq!(parsed["ts"], 1_732_269_600_000_i64);
        let readings = parsed["values"].as_object().unwrap();
        assert_eq!(readings.len(), 3);
        assert_eq!(readings["b1_flue_temp"], 181.2);
    }

    #[test]
    fn digital_signals_follow_the_readings_natively() {
        let sites = fleet(&SimulateArgs {
            sensors: 2,
            digital: true,
            ..SimulateArgs::default()
        });
        let mut encoder = Encoder::new(&sites[0].sensors).with_signals(&sites[0].signals);
        let payload = encoder.encode_with_signals(
            7,
            |_| Some(1.0),
            |index| match index {
                0 => SignalValue::Boolean(true),
                _ => SignalValue::State("firing"),
            },
        );
        assert_eq!(
            std::str::from_utf8(&payload).unwrap(),
            r#"{"ts":7,"values":{"b1_steam_pressure":1.00,"b1_flue_temp":1.00,"b1_burner_on":true,"b1_sequencer":"firing"}}"#
        );
        assert!(payload.len() <= encoder.capacity);
    }

    #[test]
    fn payload_leaves_out_silent_sensors() {
        let sites = fleet(&SimulateArgs {
            sensors: 3,
            ..SimulateArgs::default()
        });
        let mut encoder = Encoder::new(&sites[0].sensors);
        let payload = encoder.encode(5, |index| (index != 0).then_some(1.5));
        assert_eq!(
            std::str::from_utf8(&payload).unwrap(),
            r#"{"ts":5,"values":{"b1_flue_temp":1.50,"b1_water_temp":1.50}}"#
        );
        let payload = encoder.encode(5, |index| (index != 1).then_some(1.5));
        assert_eq!(
            std::str::from_utf8(&payload).unwrap(),
            r#"{"ts":5,"values":{"b1_steam_pressure":1.50,"b1_water_temp":1.50}}"#
        );
    }

    #[test]
    fn payload_with_every_sensor_parses_and_fits_its_buffer() {
        let sites = fleet(&SimulateArgs {
            sensors: 1000,
            ..SimulateArgs::default()
        });
        let mut encoder = Encoder::new(&sites[0].sensors);
        let capacity = encoder.capacity;
        let payload = encoder.encode(1, |_| Some(1999.99));
        assert!(payload.len() <= capacity, "{} > {capacity}", payload.len());
        assert!(payload.len() < 256 * 1024);
        let parsed: serde_json::Value = serde_json::from_slice(&payload).unwrap();
        assert_eq!(parsed["values"].as_object().unwrap().len(), 1000);
    }
}
