//! Stoker's shared domain types.
//!
//! Every identifier that reaches InfluxQL, SQL, a Redis key or an MQTT topic
//! is one of these newtypes, and the only way to get one is its `parse`
//! constructor. That makes "no unescaped value reaches a query" a property
//! of the types rather than of each call site.
//!
//! - [`SiteSlug`], [`SensorKey`]: `[a-z0-9][a-z0-9_-]{0,62}` (DESIGN.md).
//! - [`SensorType`]: `[a-z][a-z0-9_]{0,31}`, e.g. `pressure`, `temperature`.
//! - [`Unit`]: a short printable label such as `bar` or `°C`.
//! - [`ValidRange`]: a sensor's accepted value range.
//! - [`SensorKind`], [`StateName`], [`States`]: what a sensor's readings
//!   are (numbers, booleans or states), and [`ReadingValue`], a reading's
//!   value in its kind.
//! - [`EpochMillis`]: a reading's timestamp at millisecond precision.
//! - [`Secret`]: a password or token that never prints.
//! - [`OutOfService`]: a sensor or rule taken out of service until a time,
//!   with a reason ([`checked_reason`]).
//! - [`SiteZone`]: a site's IANA timezone and where its local days begin.
//!
//! ```
//! use stoker_domain::{SiteSlug, SensorKey};
//! let site = SiteSlug::parse("boiler-house-1").unwrap();
//! let sensor = SensorKey::parse("b1_flue_temp").unwrap();
//! assert_eq!(format!("{site}/{sensor}"), "boiler-house-1/b1_flue_temp");
//! assert!(SiteSlug::parse("Boiler House").is_err());
//! ```

mod broker;
mod error;
mod ids;
mod kind;
mod local_time;
mod range;
mod secret;
mod service;
mod time;

pub use broker::BrokerAddress;
pub use error::error_chain;
pub use ids::{SensorKey, SensorType, SiteSlug, Unit};
pub use kind::{ReadingValue, SensorKind, StateName, States};
pub use local_time::{DAY_MS, SiteZone};
pub use range::ValidRange;
pub use secret::{Secret, redact_url};
pub use service::{MAX_REASON_CHARS, OutOfService, checked_reason};
pub use time::EpochMillis;

/// Why a value could not become one of the domain types.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum ParseError {
    /// A slug or key that does not match its pattern.
    #[error("{what} {value:?} is invalid: {rule}")]
    Identifier {
        /// Which kind of identifier ("site slug", "sensor key", …).
        what: &'static str,
        /// The rejected value (truncated to 80 characters).
        value: String,
        /// The rule it breaks, in words.
        rule: &'static str,
    },
    /// A unit label that is empty, too long or has control characters.
    #[error("unit {0:?} is invalid: 1 to 32 printable characters")]
    Unit(String),
    /// A range whose minimum is not below its maximum, or a bound that is not finite.
    #[error("valid range is invalid: {0}")]
    Range(String),
    /// A timestamp that is neither epoch milliseconds nor RFC 3339, or out of range.
    #[error("timestamp {0:?} is invalid: expected epoch milliseconds or an RFC 3339 string")]
    Timestamp(String),
    /// A sensor kind that is not `numeric`, `boolean` or `state`.
    #[error("kind {0:?} is invalid: expected numeric, boolean or state")]
    Kind(String),
    /// A list of states with a bad name, a name twice, or too many names.
    #[error("states are invalid: {0}")]
    States(String),
    /// A timezone name the IANA database does not hold.
    #[error("timezone {0:?} is not an IANA timezone name such as Europe/Berlin")]
    Timezone(String),
    /// A duration that is not of the form `500ms`, `30s`, `5m`, `24h`.
    #[error("duration {0:?} is invalid: expected a number and a unit, e.g. 500ms, 30s, 5m, 24h")]
    Duration(String),
}

/// Parses a duration written as `500ms`, `30s`, `5m`, `24h` or `1h 30m`:
/// the form used by every setting and alert rule.
pub fn parse_duration(text: &str) -> Result<std::time::Duration, ParseError> {
    text.trim()
        .parse::<humantime::Duration>()
        .map(Into::into)
        .map_err(|_| ParseError::Duration(text.chars().take(64).collect()))
}
