//! Reading timestamps.

use std::fmt;

use chrono::{DateTime, SecondsFormat, Utc};
use serde::{Deserialize, Serialize};

use crate::ParseError;

/// Milliseconds since the Unix epoch, UTC: InfluxDB's precision for readings.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct EpochMillis(i64);

/// Years 1677–2262 are what InfluxDB's nanosecond timestamps can hold.
const MIN_MILLIS: i64 = -9_223_372_036_854;
const MAX_MILLIS: i64 = 9_223_372_036_854;

impl EpochMillis {
    /// The earliest timestamp [`from_millis`](Self::from_millis) accepts.
    pub const MIN_MILLIS: i64 = MIN_MILLIS;
    /// The latest timestamp [`from_millis`](Self::from_millis) accepts.
    pub const MAX_MILLIS: i64 = MAX_MILLIS;
    /// RFC 3339 times [`parse_rfc3339`](Self::parse_rfc3339) accepts, as a
    /// regular expression for schemas: a subset (years 1700 to 2199, days
    /// 1 to 28, so every match is a real date inside the range above).
    pub const RFC3339_PATTERN: &'static str = "^(1[7-9]|2[01])[0-9]{2}-(0[1-9]|1[0-2])-(0[1-9]|1[0-9]|2[0-8])T([01][0-9]|2[0-3]):[0-5][0-9]:[0-5][0-9](\\.[0-9]{1,9})?(Z|[+-]([01][0-9]|2[0-3]):[0-5][0-9])$";

    /// A timestamp from epoch milliseconds, refused outside what InfluxDB stores.
    pub fn from_millis(millis: i64) -> Result<Self, ParseError> {
        if (MIN_MILLIS..=MAX_MILLIS).contains(&millis) {
            Ok(Self(millis))
        } else {
            Err(ParseError::Timestamp(millis.to_string()))
        }
    }

    /// The current time.
    pub fn now() -> Self {
        Self(Utc::now().timestamp_millis())
    }

    /// Parses an RFC 3339 string such as `2024-11-22T10:00:00Z`.
    pub fn parse_rfc3339(text: &str) -> Result<Self, ParseError> {
        let parsed = DateTime::parse_from_rfc3339(text)
            .map_err(|_| ParseError::Timestamp(text.chars().take(64).collect()))?;
        Self::from_millis(parsed.timestamp_millis())
    }

    /// Milliseconds since the epoch.
    pub fn as_millis(self) -> i64 {
        self.0
    }

    /// The same instant as a chrono `DateTime`.
    pub fn to_datetime(self) -> DateTime<Utc> {
        DateTime::from_timestamp_millis(self.0).unwrap_or_default()
    }

    /// This instant plus `millis`, saturating at the earliest and latest
    /// instants an `EpochMillis` holds (those InfluxDB can store).
    pub fn plus_millis(self, millis: i64) -> Self {
        Self(self.0.saturating_add(millis).clamp(MIN_MILLIS, MAX_MILLIS))
    }
}

impl fmt::Display for EpochMillis {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(
            &self
                .to_datetime()
                .to_rfc3339_opts(SecondsFormat::Millis, true),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc3339_and_millis_agree() {
        let from_text = EpochMillis::parse_rfc3339("2024-11-22T10:00:00.000Z").unwrap();
        assert_eq!(
            from_text,
            EpochMillis::from_millis(1_732_269_600_000).unwrap()
        );
        assert_eq!(from_text.to_string(), "2024-11-22T10:00:00.000Z");
        let offset = EpochMillis::parse_rfc3339("2024-11-22T11:00:00+01:00").unwrap();
        assert_eq!(offset, from_text);
    }

    #[test]
    fn nonsense_is_refused() {
        assert!(EpochMillis::parse_rfc3339("yesterday").is_err());
        assert!(EpochMillis::from_millis(i64::MAX).is_err());
    }

    #[test]
    fn arithmetic_stays_within_the_instants_influxdb_holds() {
        let earliest = EpochMillis::from_millis(EpochMillis::MIN_MILLIS).unwrap();
        let latest = EpochMillis::from_millis(EpochMillis::MAX_MILLIS).unwrap();
        assert_eq!(earliest.plus_millis(-86_400_000), earliest);
        assert_eq!(latest.plus_millis(86_400_000), latest);
        assert_eq!(
            earliest.plus_millis(1).as_millis(),
            EpochMillis::MIN_MILLIS + 1
        );
    }
}
