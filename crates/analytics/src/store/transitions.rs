//! The transitions of an alert: each one transaction that changes the
//! alert, appends its event and queues its notifications.

use chrono::{DateTime, Utc};
use serde::Serialize;
use stoker_domain::{EpochMillis, ReadingValue, SensorKey, SiteSlug};
use stoker_metadata::Actor;
use stoker_postgres::Pool;
use stoker_rules::AlertRule;
use tokio_postgres::{Row, Transaction};
use uuid::Uuid;

use super::rows::{
    COLUMNS, EVENT_COLUMNS, alert_by_id, alert_from_row, event_from_row, timestamp, typed_columns,
};
use super::{ANALYTICS, Alert, AlertEvent, AlertState, Outbox, Suppression};
use crate::{Error, Result};

/// What a notification carries: the event and the alert after it.
#[derive(Debug, Serialize)]
struct Notice<'a> {
    event: &'a AlertEvent,
    alert: &'a Alert,
}

/// An event about to be appended.
#[derive(Debug)]
struct Draft<'a> {
    transition: &'a str,
    at: DateTime<Utc>,
    actor: &'a str,
    value: Option<&'a ReadingValue>,
    detail: &'a str,
}

/// Appends an event and queues its notifications.
async fn record(
    transaction: &Transaction<'_>,
    outbox: &dyn Outbox,
    alert: &Alert,
    draft: Draft<'_>,
) -> Result<AlertEvent> {
    let Draft {
        transition,
        at,
        actor,
        value,
        detail,
    } = draft;
    let site = SiteSlug::parse(&alert.site).map_err(|error| Error::InvalidRow {
        what: "alert site",
        reason: error.to_string(),
    })?;
    let (number, flag, state) = typed_columns(value);
    let row = transaction
        .query_one(
            &format!(
                "INSERT INTO analytics.alert_events
                     (alert_id, transition, at, actor, value, detail, value_flag, value_state)
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8)
                 RETURNING {EVENT_COLUMNS}"
            ),
            &[
                &alert.id,
                &transition,
                &at,
                &actor,
                &number,
                &detail,
                &flag,
                &state,
            ],
        )
        .await?;
    let event = event_from_row(&row)?;
    if alert.suppressed.is_some() {
        // Recorded, never announced.
        return Ok(event);
    }
    let body = serde_json::to_string(&Notice {
        event: &event,
        alert,
    })
    .map_err(|error| Error::Encode(error.to_string()))?;
    outbox.enqueue(transaction, event.id, &site, &body).await?;
    Ok(event)
}

/// What the evaluation loop records when a rule fires or clears for a
/// sensor.
#[derive(Debug, Clone)]
pub struct Verdict<'a> {
    /// The rule.
    pub rule: &'a AlertRule,
    /// The site.
    pub site: &'a SiteSlug,
    /// The sensor.
    pub sensor: &'a SensorKey,
    /// The tick at which it fired or cleared.
    pub at: EpochMillis,
    /// The value that fired or cleared it: a number, or in the sensor's
    /// type for a rule comparing a boolean or a state.
    pub value: Option<ReadingValue>,
    /// Why, in one sentence.
    pub message: String,
}

/// Opens an alert unless one is open for the same rule and sensor; returns
/// it when it was opened.
pub async fn open_alert(
    pool: &Pool,
    outbox: &dyn Outbox,
    firing: &Verdict<'_>,
) -> Result<Option<Alert>> {
    open_alert_suppressed(pool, outbox, firing, None).await
}

/// Like [`open_alert`], suppressed when `suppressed` names why (with a
/// sentence): the alert is recorded with its `fired` and `suppressed`
/// events, and nothing is announced.
pub async fn open_alert_suppressed(
    pool: &Pool,
    outbox: &dyn Outbox,
    firing: &Verdict<'_>,
    suppressed: Option<(Suppression, &str)>,
) -> Result<Option<Alert>> {
    let mut client = pool.get().await?;
    let transaction = client.transaction().await?;
    let at = timestamp(firing.at);
    let (value, value_flag, value_state) = typed_columns(firing.value.as_ref());
    let limit = crate::engine::limit(&firing.rule.kind);
    let (threshold, threshold_flag, threshold_state) = typed_columns(limit.as_ref());
    let row = transaction
        .query_opt(
            &format!(
                "INSERT INTO analytics.alerts
                     (id, rule_id, rule_name, kind, severity, site, sensor, state, opened_at,
                      value, threshold, message, value_flag, value_state, threshold_flag,
                      threshold_state, suppressed)
                 VALUES ($1, $2, $3, $4, $5, $6, $7, 'firing', $8, $9, $10, $11, $12, $13, $14,
                         $15, $16)
                 ON CONFLICT (rule_id, site, sensor) WHERE state <> 'resolved' DO NOTHING
                 RETURNING {COLUMNS}"
            ),
            &[
                &Uuid::now_v7(),
                &firing.rule.id,
                &firing.rule.name,
                &firing.rule.kind.name(),
                &firing.rule.severity.as_str(),
                &firing.site.as_str(),
                &firing.sensor.as_str(),
                &at,
                &value,
                &threshold,
                &firing.message,
                &value_flag,
                &value_state,
                &threshold_flag,
                &threshold_state,
                &suppressed.map(|(why, _)| why.as_str()),
            ],
        )
        .await?;
    let Some(row) = row else {
        return Ok(None);
    };
    let alert = alert_from_row(&row)?;
    record(&transaction, outbox, &alert, firing.draft("fired")).await?;
    if let Some((_, detail)) = suppressed {
        let draft = Draft {
            detail,
            ..firing.draft("suppressed")
        };
        record(&transaction, outbox, &alert, draft).await?;
    }
    transaction.commit().await?;
    Ok(Some(alert))
}

/// Sets or lifts the suppression of the open alert of a rule and sensor
/// (`None`: announced again) if it differs, with a `suppressed` event
/// (the sentence says why; not announced) or an `unsuppressed` one (which
/// announces the alert, still open); returns the alert when it changed.
pub async fn set_suppression(
    pool: &Pool,
    outbox: &dyn Outbox,
    rule: &AlertRule,
    site: &SiteSlug,
    sensor: &SensorKey,
    at: EpochMillis,
    suppressed: Option<(Suppression, &str)>,
) -> Result<Option<Alert>> {
    let mut client = pool.get().await?;
    let transaction = client.transaction().await?;
    let why = suppressed.map(|(why, _)| why.as_str());
    let row = transaction
        .query_opt(
            &format!(
                "UPDATE analytics.alerts SET suppressed = $4, version = version + 1
                 WHERE rule_id = $1 AND site = $2 AND sensor = $3 AND state <> 'resolved'
                   AND suppressed IS DISTINCT FROM $4
                 RETURNING {COLUMNS}"
            ),
            &[&rule.id, &site.as_str(), &sensor.as_str(), &why],
        )
        .await?;
    let detail = match suppressed {
        Some((_, detail)) => detail.to_owned(),
        None => "no longer suppressed: announced".to_owned(),
    };
    let draft = Draft {
        transition: if suppressed.is_some() {
            "suppressed"
        } else {
            "unsuppressed"
        },
        at: timestamp(at),
        actor: ANALYTICS,
        value: None,
        detail: &detail,
    };
    settle(transaction, outbox, row, draft).await
}

/// Records a transition of the alert row a statement returned (none:
/// nothing changed, nothing to record) and commits.
async fn settle(
    transaction: deadpool_postgres::Transaction<'_>,
    outbox: &dyn Outbox,
    row: Option<Row>,
    draft: Draft<'_>,
) -> Result<Option<Alert>> {
    let Some(row) = row else {
        return Ok(None);
    };
    let alert = alert_from_row(&row)?;
    record(&transaction, outbox, &alert, draft).await?;
    transaction.commit().await?;
    Ok(Some(alert))
}

impl<'a> Verdict<'a> {
    /// The evaluation loop's event for this verdict.
    fn draft(&'a self, transition: &'a str) -> Draft<'a> {
        Draft {
            transition,
            at: timestamp(self.at),
            actor: ANALYTICS,
            value: self.value.as_ref(),
            detail: &self.message,
        }
    }
}

/// Resolves the open alert of a rule and sensor because the rule cleared;
/// returns it when there was one.
pub async fn clear_alert(
    pool: &Pool,
    outbox: &dyn Outbox,
    clearing: &Verdict<'_>,
) -> Result<Option<Alert>> {
    let Verdict {
        rule, site, sensor, ..
    } = *clearing;
    let mut client = pool.get().await?;
    let transaction = client.transaction().await?;
    let at = timestamp(clearing.at);
    let row = transaction
        .query_opt(
            &format!(
                "UPDATE analytics.alerts
                 SET state = 'resolved', resolved_at = $4, resolved_by = $5, version = version + 1
                 WHERE rule_id = $1 AND site = $2 AND sensor = $3 AND state <> 'resolved'
                 RETURNING {COLUMNS}"
            ),
            &[&rule.id, &site.as_str(), &sensor.as_str(), &at, &ANALYTICS],
        )
        .await?;
    settle(transaction, outbox, row, clearing.draft("resolved")).await
}

/// The kind of the alert a gateway that went offline raises.
pub const GATEWAY_OFFLINE: &str = "gateway_offline";

/// The severity of a `gateway_offline` alert: every sensor the gateway
/// feeds is blind until it returns.
pub const GATEWAY_OFFLINE_SEVERITY: &str = "critical";

/// What the evaluation loop records when a gateway went offline or came
/// back.
#[derive(Debug, Clone)]
pub struct GatewayVerdict<'a> {
    /// The site it is bound to.
    pub site: &'a SiteSlug,
    /// The Sparkplug group id.
    pub group: &'a str,
    /// The Sparkplug edge node id.
    pub edge_node: &'a str,
    /// When it died (opening) or was born again (resolving).
    pub at: EpochMillis,
    /// Why, in one sentence.
    pub message: String,
}

impl<'a> GatewayVerdict<'a> {
    fn draft(&'a self, transition: &'a str) -> Draft<'a> {
        Draft {
            transition,
            at: timestamp(self.at),
            actor: ANALYTICS,
            value: None,
            detail: &self.message,
        }
    }
}

/// Opens the `gateway_offline` alert of a gateway that died at
/// `offline.at`, unless one is open for it or one was opened since that
/// death (an operator may have resolved it by hand: one death, one
/// alert); returns it when it was opened.
pub async fn open_gateway_alert(
    pool: &Pool,
    outbox: &dyn Outbox,
    offline: &GatewayVerdict<'_>,
) -> Result<Option<Alert>> {
    let mut client = pool.get().await?;
    let transaction = client.transaction().await?;
    let at = timestamp(offline.at);
    let row = transaction
        .query_opt(
            &format!(
                "INSERT INTO analytics.alerts
                     (id, kind, severity, site, state, opened_at, message,
                      gateway_group, gateway_edge_node)
                 SELECT $1, $2, $3, $4, 'firing', $5, $6, $7, $8
                 WHERE NOT EXISTS (
                     SELECT 1 FROM analytics.alerts
                     WHERE kind = $2 AND gateway_group = $7 AND gateway_edge_node = $8
                       AND (state <> 'resolved' OR opened_at >= $5))
                 ON CONFLICT (gateway_group, gateway_edge_node)
                     WHERE kind = 'gateway_offline' AND state <> 'resolved' DO NOTHING
                 RETURNING {COLUMNS}"
            ),
            &[
                &Uuid::now_v7(),
                &GATEWAY_OFFLINE,
                &GATEWAY_OFFLINE_SEVERITY,
                &offline.site.as_str(),
                &at,
                &offline.message,
                &offline.group,
                &offline.edge_node,
            ],
        )
        .await?;
    settle(transaction, outbox, row, offline.draft("fired")).await
}

/// Resolves the open `gateway_offline` alert of a gateway that is online
/// again (or, with another message, no longer bound); returns it when
/// there was one.
pub async fn clear_gateway_alert(
    pool: &Pool,
    outbox: &dyn Outbox,
    back: &GatewayVerdict<'_>,
) -> Result<Option<Alert>> {
    let mut client = pool.get().await?;
    let transaction = client.transaction().await?;
    let at = timestamp(back.at);
    let row = transaction
        .query_opt(
            &format!(
                "UPDATE analytics.alerts
                 SET state = 'resolved', resolved_at = greatest($3, opened_at), resolved_by = $4,
                     version = version + 1
                 WHERE kind = 'gateway_offline' AND gateway_group = $1 AND gateway_edge_node = $2
                   AND state <> 'resolved'
                 RETURNING {COLUMNS}"
            ),
            &[&back.group, &back.edge_node, &at, &ANALYTICS],
        )
        .await?;
    settle(transaction, outbox, row, back.draft("resolved")).await
}

/// Resolves an open alert on behalf of analytics for a reason other than
/// its rule clearing (the rule was disabled or deleted, the sensor went);
/// returns it when it was open.
pub async fn retire(
    pool: &Pool,
    outbox: &dyn Outbox,
    id: Uuid,
    at: EpochMillis,
    message: &str,
) -> Result<Option<Alert>> {
    let mut client = pool.get().await?;
    let transaction = client.transaction().await?;
    let at = timestamp(at);
    let row = transaction
        .query_opt(
            &format!(
                "UPDATE analytics.alerts
                 SET state = 'resolved', resolved_at = $2, resolved_by = $3, version = version + 1
                 WHERE id = $1 AND state <> 'resolved'
                 RETURNING {COLUMNS}"
            ),
            &[&id, &at, &ANALYTICS],
        )
        .await?;
    let draft = Draft {
        transition: "resolved",
        at,
        actor: ANALYTICS,
        value: None,
        detail: message,
    };
    settle(transaction, outbox, row, draft).await
}

/// Acknowledges a firing alert on behalf of `actor` (an API key's name),
/// recorded in the alert's trail and in the audit trail.
pub async fn acknowledge(pool: &Pool, outbox: &dyn Outbox, id: Uuid, actor: &str) -> Result<Alert> {
    change_by_hand(pool, outbox, id, actor, Action::Acknowledge).await
}

/// Resolves an open alert on behalf of `actor` (an API key's name),
/// recorded in the alert's trail and in the audit trail. The rule does not fire
/// again for that sensor until its condition has cleared and returned.
pub async fn resolve(pool: &Pool, outbox: &dyn Outbox, id: Uuid, actor: &str) -> Result<Alert> {
    change_by_hand(pool, outbox, id, actor, Action::Resolve).await
}

/// Records an operator's action on an alert in the audit trail
/// (`metadata.audit_events`), in the transaction of the change.
async fn audit_by_hand(
    transaction: &deadpool_postgres::Transaction<'_>,
    actor: &str,
    action: &str,
    before: &Alert,
    after: &Alert,
) -> Result<()> {
    let json = |alert: &Alert| {
        serde_json::to_value(alert).map_err(|error| Error::Encode(error.to_string()))
    };
    let change = stoker_metadata::AuditChange {
        entity: stoker_metadata::Entity::Alert,
        id: after.id.to_string(),
        site: Some(after.site.as_str()),
        action,
        before: Some(json(before)?),
        after: Some(json(after)?),
    };
    stoker_metadata::record_audit(transaction, &Actor::Key(actor.to_owned()), change)
        .await
        .map_err(|error| match error {
            stoker_metadata::Error::Postgres(error) => Error::Postgres(error),
            other => Error::Metadata(other),
        })
}

#[derive(Debug, Clone, Copy)]
enum Action {
    Acknowledge,
    Resolve,
}

async fn change_by_hand(
    pool: &Pool,
    outbox: &dyn Outbox,
    id: Uuid,
    actor: &str,
    action: Action,
) -> Result<Alert> {
    let mut client = pool.get().await?;
    let transaction = client.transaction().await?;
    let current = alert_by_id(&*transaction, id, true).await?;
    let (allowed, past, sql) = match action {
        Action::Acknowledge => (
            current.state == AlertState::Firing,
            "acknowledged",
            "UPDATE analytics.alerts
             SET state = 'acknowledged', acknowledged_at = now(), acknowledged_by = $2,
                 version = version + 1
             WHERE id = $1",
        ),
        Action::Resolve => (
            current.state != AlertState::Resolved,
            "resolved",
            "UPDATE analytics.alerts
             SET state = 'resolved', resolved_at = now(), resolved_by = $2, version = version + 1
             WHERE id = $1",
        ),
    };
    if !allowed {
        return Err(Error::InvalidTransition {
            id,
            state: current.state,
            action: past,
        });
    }
    let sql = format!("{sql} RETURNING {COLUMNS}");
    let row = transaction.query_one(&sql, &[&id, &actor]).await?;
    let alert = alert_from_row(&row)?;
    audit_by_hand(&transaction, actor, past, &current, &alert).await?;
    let at = match action {
        Action::Acknowledge => alert.acknowledged_at,
        Action::Resolve => alert.resolved_at,
    }
    .unwrap_or_else(Utc::now);
    let detail = format!("{past} by {actor}");
    let draft = Draft {
        transition: past,
        at,
        actor,
        value: None,
        detail: &detail,
    };
    record(&transaction, outbox, &alert, draft).await?;
    transaction.commit().await?;
    Ok(alert)
}
