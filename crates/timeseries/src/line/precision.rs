//! The unit of the timestamps in a write's lines.

/// The unit of a line's timestamp, as the write names it (`precision=`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Precision {
    /// `ns` (2.x), `n` (1.x): the default.
    Nanoseconds,
    /// `us` (2.x), `u` (1.x).
    Microseconds,
    /// `ms`.
    Milliseconds,
    /// `s`.
    Seconds,
    /// `m` (1.x only).
    Minutes,
    /// `h` (1.x only).
    Hours,
}

impl Precision {
    /// The names `POST /api/v2/write` takes (InfluxDB 2.x).
    pub const V2_NAMES: [&'static str; 4] = ["ns", "us", "ms", "s"];
    /// The names `POST /write` takes: InfluxDB 1.x's, and 2.x's spellings
    /// of the same units.
    pub const V1_NAMES: [&'static str; 8] = ["n", "ns", "u", "us", "ms", "s", "m", "h"];

    /// A 2.x precision name (`ns`, `us`, `ms`, `s`).
    pub fn from_v2(name: &str) -> Option<Self> {
        match name {
            "ns" => Some(Self::Nanoseconds),
            "us" => Some(Self::Microseconds),
            "ms" => Some(Self::Milliseconds),
            "s" => Some(Self::Seconds),
            _ => None,
        }
    }

    /// A 1.x precision name (`n`, `u`, `ms`, `s`, `m`, `h`; `ns` and `us`
    /// too).
    pub fn from_v1(name: &str) -> Option<Self> {
        match name {
            "n" | "ns" => Some(Self::Nanoseconds),
            "u" | "us" => Some(Self::Microseconds),
            "ms" => Some(Self::Milliseconds),
            "s" => Some(Self::Seconds),
            "m" => Some(Self::Minutes),
            "h" => Some(Self::Hours),
            _ => None,
        }
    }

    /// The 2.x name of the unit (`m` and `h` for the 1.x-only ones).
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Nanoseconds => "ns",
            Self::Microseconds => "us",
            Self::Milliseconds => "ms",
            Self::Seconds => "s",
            Self::Minutes => "m",
            Self::Hours => "h",
        }
    }

    /// A timestamp in this unit as epoch milliseconds, rounded down (toward
    /// the past); `None` when it overflows.
    pub fn to_millis(self, value: i64) -> Option<i64> {
        match self {
            Self::Nanoseconds => Some(value.div_euclid(1_000_000)),
            Self::Microseconds => Some(value.div_euclid(1_000)),
            Self::Milliseconds => Some(value),
            Self::Seconds => value.checked_mul(1_000),
            Self::Minutes => value.checked_mul(60_000),
            Self::Hours => value.checked_mul(3_600_000),
        }
    }
}
