//! Escalation: an alert still unacknowledged its rule's `escalate_after`
//! after it fired (or after its last escalation) gets an `escalated` event
//! in its trail, whose notifications go to the escalation targets
//! (`notify::enqueue` routes them). Repeated every period until the alert
//! is acknowledged or closed.

use std::collections::HashMap;
use std::time::Duration;

use chrono::{DateTime, Utc};
use serde::Serialize;
use stoker_domain::SiteSlug;
use stoker_postgres::Pool;
use uuid::Uuid;

use super::rows::{COLUMNS, EVENT_COLUMNS, alert_from_row, event_from_row};
use super::{ANALYTICS, Alert, AlertEvent, Outbox};
use crate::notify::ESCALATED;
use crate::{Error, Result};

/// What a notification carries: the event and the alert (as the other
/// transitions' notices).
#[derive(Debug, Serialize)]
struct Notice<'a> {
    event: &'a AlertEvent,
    alert: &'a Alert,
}

/// An alert escalated at this pass.
#[derive(Debug, Clone, PartialEq)]
pub struct Escalation {
    /// The alert (unchanged by its escalation).
    pub alert: Alert,
    /// The `escalated` event.
    pub event: AlertEvent,
    /// Which escalation of the alert this is (1 for the first).
    pub round: i64,
}

/// Escalates, as of `now`, every active, unacknowledged alert (neither
/// suppressed nor shelved: neither is announced) of a rule in
/// `escalate_after` (rule id → period) whose period has passed since it
/// fired or since its last escalation. Each escalation is one transaction
/// that locks the alert and checks again, so two passes (two processes)
/// never escalate one period twice.
pub async fn escalate(
    pool: &Pool,
    outbox: &dyn Outbox,
    escalate_after: &HashMap<Uuid, Duration>,
    now: DateTime<Utc>,
) -> Result<Vec<Escalation>> {
    if escalate_after.is_empty() {
        return Ok(Vec::new());
    }
    let rule_ids: Vec<Uuid> = escalate_after.keys().copied().collect();
    let client = pool.get().await?;
    let candidates = client
        .query(
            "SELECT a.id, a.rule_id FROM analytics.alerts a
             WHERE a.rule_id = ANY($1) AND a.state = 'unacknowledged'
               AND a.suppressed IS NULL
               AND (a.shelved_until IS NULL OR a.shelved_until <= $2)
             ORDER BY a.opened_at, a.id",
            &[&rule_ids, &now],
        )
        .await?;
    drop(client);
    let mut escalated = Vec::new();
    for row in candidates {
        let (id, rule_id): (Uuid, Uuid) = (row.get(0), row.get(1));
        let Some(period) = escalate_after.get(&rule_id) else {
            continue;
        };
        if let Some(escalation) = escalate_one(pool, outbox, id, *period, now).await? {
            escalated.push(escalation);
        }
    }
    Ok(escalated)
}

async fn escalate_one(
    pool: &Pool,
    outbox: &dyn Outbox,
    id: Uuid,
    period: Duration,
    now: DateTime<Utc>,
) -> Result<Option<Escalation>> {
    let mut client = pool.get().await?;
    let transaction = client.transaction().await?;
    let Some(row) = transaction
        .query_opt(
            &format!(
                "SELECT {COLUMNS} FROM analytics.alerts
                 WHERE id = $1 AND state = 'unacknowledged' AND suppressed IS NULL
                   AND (shelved_until IS NULL OR shelved_until <= $2)
                 FOR UPDATE"
            ),
            &[&id, &now],
        )
        .await?
    else {
        return Ok(None);
    };
    let alert = alert_from_row(&row)?;
    let last = transaction
        .query_one(
            "SELECT count(*), max(at) FROM analytics.alert_events
             WHERE alert_id = $1 AND transition = $2",
            &[&id, &ESCALATED],
        )
        .await?;
    let (rounds, last_at): (i64, Option<DateTime<Utc>>) = (last.get(0), last.get(1));
    let since = last_at.unwrap_or(alert.opened_at).max(alert.opened_at);
    let period_chrono = chrono::Duration::from_std(period).unwrap_or(chrono::Duration::MAX);
    if since + period_chrono > now {
        return Ok(None);
    }
    let round = rounds + 1;
    let waited = humantime::format_duration(Duration::from_secs(
        u64::try_from((now - alert.opened_at).num_seconds()).unwrap_or(0),
    ));
    let detail = format!(
        "unacknowledged for {waited} (escalate_after {}): escalation {round}",
        humantime::format_duration(period)
    );
    let site = SiteSlug::parse(&alert.site).map_err(|error| Error::InvalidRow {
        what: "alert site",
        reason: error.to_string(),
    })?;
    let event_row = transaction
        .query_one(
            &format!(
                "INSERT INTO analytics.alert_events (alert_id, transition, at, actor, detail)
                 VALUES ($1, $2, $3, $4, $5)
                 RETURNING {EVENT_COLUMNS}"
            ),
            &[&id, &ESCALATED, &now, &ANALYTICS, &detail],
        )
        .await?;
    let event = event_from_row(&event_row)?;
    let body = serde_json::to_string(&Notice {
        event: &event,
        alert: &alert,
    })
    .map_err(|error| Error::Encode(error.to_string()))?;
    outbox.enqueue(&transaction, event.id, &site, &body).await?;
    transaction.commit().await?;
    Ok(Some(Escalation {
        alert,
        event,
        round,
    }))
}
