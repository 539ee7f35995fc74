//! An alert's life as pure changes of its row (ISA-18.2, DESIGN.md "Alarm
//! management"): each returns the event's transition name, or why the
//! change is refused; the transactions in `transitions` lock the row,
//! apply one and write it back.
//!
//! - the condition fires: a new alert is `unacknowledged`; one not closed
//!   is reactivated (`cleared_unacknowledged` → `unacknowledged`, or a
//!   latched alert's condition holding again);
//! - the condition clears: `unacknowledged` → `cleared_unacknowledged`,
//!   `acknowledged` → `closed`; a latching rule's alert stays active
//!   (`latched_at` set) until an operator resets it;
//! - acknowledge: `unacknowledged` → `acknowledged`,
//!   `cleared_unacknowledged` → `closed`;
//! - reset (only a latched alert whose condition has cleared): as if the
//!   condition cleared now;
//! - resolve: any alert not closed → `closed`;
//! - shelve and unshelve: any alert not closed; closing empties the shelf.

use chrono::{DateTime, Utc};
use stoker_domain::ReadingValue;

use super::{Alert, AlertState};
use crate::{Error, Result};

impl Alert {
    /// Its condition fired again while the alert is not closed: active
    /// again (`cleared_unacknowledged` → `unacknowledged`), or a latched
    /// alert no longer latched. `None`: nothing changes (it is active and
    /// not latched, or closed: a new alert is opened).
    pub(super) fn reactivate(
        &mut self,
        at: DateTime<Utc>,
        value: Option<ReadingValue>,
        message: &str,
    ) -> Option<&'static str> {
        match self.state {
            AlertState::Closed => None,
            AlertState::ClearedUnacknowledged => {
                self.state = AlertState::Unacknowledged;
                self.active = true;
                self.activated_at = at;
                self.resolved_at = None;
                self.resolved_by = None;
                self.value = value;
                message.clone_into(&mut self.message);
                Some("reactivated")
            }
            AlertState::Unacknowledged | AlertState::Acknowledged => {
                self.latched_at.take()?;
                self.value = value;
                message.clone_into(&mut self.message);
                Some("reactivated")
            }
        }
    }

    /// Its condition cleared at `at` (`by`: `analytics`): inactive, or for
    /// a latching rule's alert, latched. `None`: nothing changes (not
    /// active, or already latched).
    pub(super) fn clear(
        &mut self,
        at: DateTime<Utc>,
        by: &str,
        latching: bool,
    ) -> Option<&'static str> {
        if !self.active {
            return None;
        }
        if latching {
            if self.latched_at.is_some() {
                return None;
            }
            self.latched_at = Some(at);
            return Some("latched");
        }
        Some(self.end_active(at, by))
    }

    /// Ends its active life: `closed` if acknowledged, else
    /// `cleared_unacknowledged`; the transition's name.
    fn end_active(&mut self, at: DateTime<Utc>, by: &str) -> &'static str {
        self.active = false;
        self.latched_at = None;
        self.resolved_at = Some(at);
        self.resolved_by = Some(by.to_owned());
        if self.state == AlertState::Acknowledged {
            self.close();
            "closed"
        } else {
            self.state = AlertState::ClearedUnacknowledged;
            "cleared"
        }
    }

    /// Closed: the shelf, if any, goes with it.
    fn close(&mut self) {
        self.state = AlertState::Closed;
        self.shelved_until = None;
        self.shelved_by = None;
        self.shelve_reason = None;
    }

    fn refuse(&self, action: &'static str) -> Error {
        Error::InvalidTransition {
            id: self.id,
            state: self.state,
            action,
        }
    }

    /// Acknowledged by `by`: `unacknowledged` → `acknowledged`,
    /// `cleared_unacknowledged` → `closed`.
    pub(super) fn acknowledge(&mut self, at: DateTime<Utc>, by: &str) -> Result<&'static str> {
        match self.state {
            AlertState::Unacknowledged => self.state = AlertState::Acknowledged,
            AlertState::ClearedUnacknowledged => self.close(),
            AlertState::Acknowledged | AlertState::Closed => {
                return Err(self.refuse("acknowledged"));
            }
        }
        self.acknowledged_at = Some(at);
        self.acknowledged_by = Some(by.to_owned());
        Ok("acknowledged")
    }

    /// Reset by `by`: only a latched alert (its latching rule's condition
    /// has cleared) may be; it becomes inactive, `closed` if acknowledged,
    /// else `cleared_unacknowledged`.
    pub(super) fn reset(&mut self, at: DateTime<Utc>, by: &str) -> Result<&'static str> {
        if !self.active {
            return Err(self.refuse("reset"));
        }
        if self.latched_at.is_none() {
            return Err(Error::NotLatched(self.id));
        }
        self.end_active(at, by);
        Ok("reset")
    }

    /// Resolved (closed) by hand by `by`, whatever its state but closed.
    pub(super) fn resolve(&mut self, at: DateTime<Utc>, by: &str) -> Result<&'static str> {
        if self.state == AlertState::Closed {
            return Err(self.refuse("resolved"));
        }
        self.active = false;
        self.latched_at = None;
        self.resolved_at = Some(at);
        self.resolved_by = Some(by.to_owned());
        self.close();
        Ok("resolved")
    }

    /// Shelved by `by` until `until` (a shelved alert may be shelved again:
    /// the new shelf replaces the old).
    pub(super) fn shelve(
        &mut self,
        until: DateTime<Utc>,
        by: &str,
        reason: &str,
    ) -> Result<&'static str> {
        if self.state == AlertState::Closed {
            return Err(self.refuse("shelved"));
        }
        self.shelved_until = Some(until);
        self.shelved_by = Some(by.to_owned());
        self.shelve_reason = Some(reason.to_owned());
        Ok("shelved")
    }

    /// Taken off the shelf (by hand, or at its expiry).
    pub(super) fn unshelve(&mut self) -> Result<&'static str> {
        if self.shelved_until.is_none() {
            return Err(Error::NotShelved(self.id));
        }
        self.shelved_until = None;
        self.shelved_by = None;
        self.shelve_reason = None;
        Ok("unshelved")
    }

    /// Whether it is shelved at `at`.
    pub fn is_shelved(&self, at: DateTime<Utc>) -> bool {
        self.shelved_until.is_some_and(|until| until > at)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use uuid::Uuid;

    fn alert() -> Alert {
        let at = DateTime::from_timestamp_millis(1_795_000_000_000).unwrap();
        Alert {
            id: Uuid::nil(),
            rule_id: Some(Uuid::nil()),
            rule_name: Some("High".into()),
            kind: "threshold".into(),
            severity: "warning".into(),
            site: "boiler-house-1".into(),
            sensor: Some("b1_steam_pressure".into()),
            gateway: None,
            state: AlertState::Unacknowledged,
            active: true,
            opened_at: at,
            value: None,
            threshold: None,
            message: "m".into(),
            acknowledged_at: None,
            acknowledged_by: None,
            resolved_at: None,
            resolved_by: None,
            activated_at: at,
            latched_at: None,
            shelved_until: None,
            shelved_by: None,
            shelve_reason: None,
            cause: None,
            consequence: None,
            operator_action: None,
            response_time: None,
            version: 1,
            suppressed: None,
        }
    }

    fn now() -> DateTime<Utc> {
        DateTime::from_timestamp_millis(1_795_000_060_000).unwrap()
    }

    #[test]
    fn clearing_before_an_acknowledgement_leaves_it_until_acknowledged() {
        let mut alert = alert();
        assert_eq!(alert.clear(now(), "analytics", false), Some("cleared"));
        assert_eq!(alert.state, AlertState::ClearedUnacknowledged);
        assert!(!alert.active);
        assert_eq!(alert.clear(now(), "analytics", false), None);
        assert_eq!(alert.reactivate(now(), None, "again"), Some("reactivated"));
        assert_eq!(
            (alert.state, alert.active, alert.resolved_at),
            (AlertState::Unacknowledged, true, None)
        );
        alert.clear(now(), "analytics", false);
        assert_eq!(alert.acknowledge(now(), "anna").unwrap(), "acknowledged");
        assert_eq!(alert.state, AlertState::Closed);
        assert_eq!(
            alert.reactivate(now(), None, "again"),
            None,
            "closed: a new one"
        );
    }

    #[test]
    fn clearing_an_acknowledged_alert_closes_it() {
        let mut alert = alert();
        alert.acknowledge(now(), "anna").unwrap();
        assert!(alert.acknowledge(now(), "bob").is_err());
        assert_eq!(alert.clear(now(), "analytics", false), Some("closed"));
        assert_eq!(alert.state, AlertState::Closed);
        assert_eq!(alert.resolved_by.as_deref(), Some("analytics"));
    }

    #[test]
    fn a_latched_alert_stays_active_until_reset() {
        let mut alert = alert();
        assert!(matches!(
            alert.reset(now(), "anna"),
            Err(Error::NotLatched(_))
        ));
        assert_eq!(alert.clear(now(), "analytics", true), Some("latched"));
        assert!(alert.active && alert.latched_at.is_some());
        assert_eq!(alert.clear(now(), "analytics", true), None);
        assert_eq!(alert.reset(now(), "anna").unwrap(), "reset");
        assert_eq!(alert.state, AlertState::ClearedUnacknowledged);
        assert_eq!(alert.resolved_by.as_deref(), Some("anna"));
        assert!(alert.reset(now(), "anna").is_err());

        let mut acknowledged = self::alert();
        acknowledged.acknowledge(now(), "anna").unwrap();
        acknowledged.clear(now(), "analytics", true);
        assert_eq!(acknowledged.reset(now(), "anna").unwrap(), "reset");
        assert_eq!(acknowledged.state, AlertState::Closed);
    }

    #[test]
    fn shelving_is_on_top_of_the_state_and_ends_with_it() {
        let mut alert = alert();
        assert!(matches!(alert.unshelve(), Err(Error::NotShelved(_))));
        let until = now() + chrono::Duration::minutes(30);
        assert_eq!(
            alert.shelve(until, "anna", "sensor swap").unwrap(),
            "shelved"
        );
        assert!(alert.is_shelved(now()));
        assert!(!alert.is_shelved(until));
        assert_eq!(alert.resolve(now(), "anna").unwrap(), "resolved");
        assert_eq!(alert.shelved_until, None);
        assert!(alert.shelve(until, "anna", "again").is_err());
    }
}
