//! The leader's notification duties, after each tick: escalating alerts
//! left unacknowledged past their rule's `escalate_after`, and the alarm
//! floods' digests and ends. Only the leader runs them, so escalations and
//! digests are not doubled by a second process (each is also one
//! transaction that checks again under a row lock).

use std::collections::HashMap;
use std::time::Duration;

use chrono::{DateTime, Utc};
use stoker_stores::Stores;
use uuid::Uuid;

use crate::Result;
use crate::notify::{self, NotifyOptions};
use crate::store;

/// Escalates what is due and tends the floods, as of `now`.
pub(super) async fn tend(
    stores: &Stores,
    outbox: &NotifyOptions,
    now: DateTime<Utc>,
) -> Result<()> {
    let rules = stoker_metadata::enabled_alert_rules(&stores.pool).await?;
    let periods: HashMap<Uuid, Duration> = rules
        .iter()
        .filter_map(|rule| rule.escalate_after.map(|period| (rule.id, period)))
        .collect();
    for escalation in store::escalate(&stores.pool, outbox, &periods, now).await? {
        let alert = &escalation.alert;
        tracing::warn!(alert = %alert.id, rule = alert.rule_name.as_deref().unwrap_or_default(), site = %alert.site, sensor = alert.sensor.as_deref().unwrap_or_default(), severity = %alert.severity, round = escalation.round, "alert escalated: still unacknowledged");
    }
    let floods = notify::tend_floods(&stores.pool, outbox, now).await?;
    if floods != notify::FloodReport::default() {
        tracing::debug!(?floods, "alarm floods tended");
    }
    Ok(())
}
