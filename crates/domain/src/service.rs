//! Out of service (DESIGN.md, "Alarm management"): a sensor or an alert
//! rule an operator took out for maintenance, until a given time, with a
//! reason. Its alarms are recorded as suppressed, never announced.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

/// The longest reason of an out-of-service or a maintenance window, in
/// characters.
pub const MAX_REASON_CHARS: usize = 500;

/// A sensor's or a rule's time out of service.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OutOfService {
    /// Until when (exclusive): in service again from then on.
    pub until: DateTime<Utc>,
    /// Why, as the operator said.
    pub reason: String,
    /// Who took it out (an API key's or a person's name).
    pub by: String,
    /// Since when.
    pub since: DateTime<Utc>,
}

impl OutOfService {
    /// Whether it is out of service at `at`.
    pub fn holds_at(&self, at: DateTime<Utc>) -> bool {
        at < self.until
    }
}

/// A reason as an operator gives it: trimmed, 1 to [`MAX_REASON_CHARS`]
/// characters, no NUL (Postgres refuses it in text). `Err` says what is
/// wrong.
pub fn checked_reason(reason: &str) -> Result<String, String> {
    let reason = reason.trim();
    if reason.is_empty() || reason.chars().count() > MAX_REASON_CHARS {
        return Err(format!(
            "reason must be 1 to {MAX_REASON_CHARS} characters once trimmed"
        ));
    }
    if reason.contains('\0') {
        return Err("reason must not contain NUL".to_owned());
    }
    Ok(reason.to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reasons_are_trimmed_and_bounded() {
        assert_eq!(
            checked_reason(" burner service ").unwrap(),
            "burner service"
        );
        assert!(checked_reason("  ").is_err());
        assert!(checked_reason("a\0b").is_err());
        assert!(checked_reason(&"x".repeat(501)).is_err());
        let until = DateTime::<Utc>::from_timestamp(1_000, 0).unwrap();
        let out = OutOfService {
            until,
            reason: "service".into(),
            by: "ops".into(),
            since: DateTime::<Utc>::from_timestamp(0, 0).unwrap(),
        };
        assert!(out.holds_at(DateTime::<Utc>::from_timestamp(999, 0).unwrap()));
        assert!(!out.holds_at(until));
    }
}
