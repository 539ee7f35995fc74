//! Building blocks of Stoker's benchmarks (`src/bin/*`): the benchmark
//! fleet and its payloads, a bare InfluxDB HTTP client, tight MQTT
//! publishers and subscribers, a watch on a Sparkplug host's STATE and
//! rebirth requests, `/proc` sampling of processes, the `stoker`
//! child process and the CPU accounting around it, the parts every report
//! shares, and the frame each benchmark binary runs in.
//!
//! Everything here measures from the outside: the process under test is the
//! real `stoker` binary, and the figures come from the broker, InfluxDB and
//! the kernel, never from Stoker's own counters.

pub mod fleet;
pub mod harness;
pub mod influx;
pub mod mqtt;
pub mod process;
pub mod procstat;
pub mod report;
pub mod sparkplug;

use std::sync::OnceLock;
use std::time::{Instant, SystemTime, UNIX_EPOCH};

/// Wall-clock time in epoch milliseconds.
pub fn wall_millis() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|elapsed| elapsed.as_millis() as i64)
        .unwrap_or_default()
}

static STARTED: OnceLock<Instant> = OnceLock::new();

/// Seconds since the benchmark started (the first call of this function).
pub fn since_start() -> f64 {
    STARTED.get_or_init(Instant::now).elapsed().as_secs_f64()
}

/// Prints a progress line prefixed with the time since the benchmark started.
#[macro_export]
macro_rules! progress {
    ($($arg:tt)*) => {
        println!("[{:>7.1}s] {}", $crate::since_start(), format_args!($($arg)*))
    };
}

/// `1234567` as `1,234,567`.
pub fn thousands(value: u64) -> String {
    let digits = value.to_string();
    let mut out = String::with_capacity(digits.len() + digits.len() / 3);
    let first = match digits.len() % 3 {
        0 => 3,
        rest => rest,
    };
    for (index, digit) in digits.chars().enumerate() {
        if index >= first && index % 3 == first % 3 {
            out.push(',');
        }
        out.push(digit);
    }
    out
}

/// A rate, rounded, with thousands separators.
pub fn rate(value: f64) -> String {
    if value.is_finite() && value >= 0.0 {
        thousands(value.round() as u64)
    } else {
        "n/a".into()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn thousands_are_separated() {
        assert_eq!(thousands(0), "0");
        assert_eq!(thousands(999), "999");
        assert_eq!(thousands(1_000), "1,000");
        assert_eq!(thousands(1_234_567), "1,234,567");
    }
}
