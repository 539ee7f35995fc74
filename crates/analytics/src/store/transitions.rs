//! The transitions of an alert: each one transaction that locks the alert,
//! changes it (`life`), appends its event and queues its notifications
//! (none while the alert is shelved). Those the evaluation loop makes are
//! here; an operator's are in `by_hand`.

use chrono::{DateTime, Utc};
use serde::Serialize;
use stoker_domain::{EpochMillis, ReadingValue, SensorKey, SiteSlug};
use stoker_postgres::Pool;
use stoker_rules::AlertRule;
use tokio_postgres::Transaction;
use uuid::Uuid;

use super::rows::{
    COLUMNS, EVENT_COLUMNS, alert_by_id, alert_from_row, event_from_row, timestamp, typed_columns,
};
use super::{ANALYTICS, Alert, AlertEvent, Outbox, Suppression};
use crate::{Error, Result};

/// What a notification carries: the event and the alert after it.
#[derive(Debug, Serialize)]
struct Notice<'a> {
    event: &'a AlertEvent,
    alert: &'a Alert,
}

/// An event about to be appended.
#[derive(Debug)]
pub(super) struct Draft<'a> {
    pub(super) transition: &'a str,
    pub(super) at: DateTime<Utc>,
    pub(super) actor: &'a str,
    pub(super) value: Option<&'a ReadingValue>,
    pub(super) detail: &'a str,
    pub(super) explanation: Option<&'a serde_json::Value>,
}

/// Whether an event of `alert` (as it is after the event) is announced: a
/// shelved alert's transitions are recorded, not announced; taking it off
/// the shelf announces it again if its condition is still active.
fn announced(alert: &Alert, transition: &str) -> bool {
    alert.suppressed.is_none()
        && !alert.is_shelved(Utc::now())
        && (transition != "unshelved" || alert.active)
}

/// Appends an event and queues its notifications.
pub(super) async fn record(
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
        explanation,
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
                     (alert_id, transition, at, actor, value, detail, value_flag, value_state,
                      explanation)
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)
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
                &explanation,
            ],
        )
        .await?;
    let event = event_from_row(&row)?;
    if announced(alert, transition) {
        let body = serde_json::to_string(&Notice {
            event: &event,
            alert,
        })
        .map_err(|error| Error::Encode(error.to_string()))?;
        outbox.enqueue(transaction, event.id, &site, &body).await?;
    } else {
        tracing::info!(alert = %alert.id, transition, suppressed = ?alert.suppressed, shelved_until = ?alert.shelved_until, "alert transition recorded, not announced: the alert is shelved or suppressed");
    }
    Ok(event)
}

/// Writes back what a transition changed (every column an alert's life
/// changes) and returns the row as stored.
pub(super) async fn save(transaction: &Transaction<'_>, alert: &Alert) -> Result<Alert> {
    let (value, value_flag, value_state) = typed_columns(alert.value.as_ref());
    let row = transaction
        .query_one(
            &format!(
                "UPDATE analytics.alerts
                 SET state = $2, active = $3, activated_at = $4, acknowledged_at = $5,
                     acknowledged_by = $6, resolved_at = $7, resolved_by = $8, latched_at = $9,
                     shelved_until = $10, shelved_by = $11, shelve_reason = $12, value = $13,
                     value_flag = $14, value_state = $15, message = $16, suppressed = $17,
                     version = version + 1
                 WHERE id = $1
                 RETURNING {COLUMNS}"
            ),
            &[
                &alert.id,
                &alert.state.as_str(),
                &alert.active,
                &alert.activated_at,
                &alert.acknowledged_at,
                &alert.acknowledged_by,
                &alert.resolved_at,
                &alert.resolved_by,
                &alert.latched_at,
                &alert.shelved_until,
                &alert.shelved_by,
                &alert.shelve_reason,
                &value,
                &value_flag,
                &value_state,
                &alert.message,
                &alert.suppressed.map(Suppression::as_str),
            ],
        )
        .await?;
    alert_from_row(&row)
}

/// Saves a changed alert, records its event and commits; the alert as
/// stored.
pub(super) async fn commit_change(
    transaction: deadpool_postgres::Transaction<'_>,
    outbox: &dyn Outbox,
    changed: &Alert,
    draft: Draft<'_>,
) -> Result<Alert> {
    let alert = save(&transaction, changed).await?;
    record(&transaction, outbox, &alert, draft).await?;
    transaction.commit().await?;
    Ok(alert)
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
    /// What a firing was computed from (`engine::explain`), kept with the
    /// `fired` or `reactivated` event.
    pub explanation: Option<serde_json::Value>,
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
                 WHERE rule_id = $1 AND site = $2 AND sensor = $3 AND state <> 'closed'
                   AND suppressed IS DISTINCT FROM $4
                 RETURNING {COLUMNS}"
            ),
            &[&rule.id, &site.as_str(), &sensor.as_str(), &why],
        )
        .await?;
    let Some(row) = row else {
        return Ok(None);
    };
    let alert = alert_from_row(&row)?;
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
        explanation: None,
    };
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
            explanation: match transition {
                "fired" | "reactivated" => self.explanation.as_ref(),
                _ => None,
            },
        }
    }
}

/// A rule's alert for one sensor that is not closed, locked.
async fn not_closed(
    transaction: &Transaction<'_>,
    rule_id: Uuid,
    site: &SiteSlug,
    sensor: &SensorKey,
) -> Result<Option<Alert>> {
    transaction
        .query_opt(
            &format!(
                "SELECT {COLUMNS} FROM analytics.alerts
                 WHERE rule_id = $1 AND site = $2 AND sensor = $3 AND state <> 'closed'
                 FOR UPDATE"
            ),
            &[&rule_id, &site.as_str(), &sensor.as_str()],
        )
        .await?
        .as_ref()
        .map(alert_from_row)
        .transpose()
}

/// The rule's condition fired for a sensor: opens an alert, or reactivates
/// the one not closed (cleared before anyone acknowledged it, or latched);
/// returns it when it was opened or reactivated.
pub async fn open_alert(
    pool: &Pool,
    outbox: &dyn Outbox,
    firing: &Verdict<'_>,
) -> Result<Option<Alert>> {
    open_alert_suppressed(pool, outbox, firing, None).await
}

/// Like [`open_alert`], suppressed when `suppressed` names why (with a
/// sentence): the alert is recorded with its `fired` (or `reactivated`)
/// and `suppressed` events, and nothing is announced.
pub async fn open_alert_suppressed(
    pool: &Pool,
    outbox: &dyn Outbox,
    firing: &Verdict<'_>,
    suppressed: Option<(Suppression, &str)>,
) -> Result<Option<Alert>> {
    let mut client = pool.get().await?;
    let transaction = client.transaction().await?;
    let at = timestamp(firing.at);
    if let Some(mut alert) =
        not_closed(&transaction, firing.rule.id, firing.site, firing.sensor).await?
    {
        let Some(transition) = alert.reactivate(at, firing.value.clone(), &firing.message) else {
            return Ok(None);
        };
        alert.suppressed = suppressed.map(|(why, _)| why);
        let draft = firing.draft(transition);
        let alert = save(&transaction, &alert).await?;
        record(&transaction, outbox, &alert, draft).await?;
        if let Some((_, detail)) = suppressed {
            let draft = Draft {
                detail,
                ..firing.draft("suppressed")
            };
            record(&transaction, outbox, &alert, draft).await?;
        }
        transaction.commit().await?;
        return Ok(Some(alert));
    }
    let (value, value_flag, value_state) = typed_columns(firing.value.as_ref());
    let limit = crate::engine::limit(&firing.rule.kind);
    let (threshold, threshold_flag, threshold_state) = typed_columns(limit.as_ref());
    let rule = firing.rule;
    let text =
        |text: &Option<stoker_rules::Rationale>| text.as_ref().map(|text| text.as_str().to_owned());
    let response_time_ms = rule
        .response_time
        .map(|duration| i64::try_from(duration.as_millis()).unwrap_or(i64::MAX));
    let row = transaction
        .query_opt(
            &format!(
                "INSERT INTO analytics.alerts
                     (id, rule_id, rule_name, kind, severity, site, sensor, state, opened_at,
                      value, threshold, message, value_flag, value_state, threshold_flag,
                      threshold_state, active, activated_at, cause, consequence, operator_action,
                      response_time_ms, suppressed)
                 VALUES ($1, $2, $3, $4, $5, $6, $7, 'unacknowledged', $8, $9, $10, $11, $12, $13,
                         $14, $15, true, $8, $16, $17, $18, $19, $20)
                 ON CONFLICT (rule_id, site, sensor) WHERE state <> 'closed' DO NOTHING
                 RETURNING {COLUMNS}"
            ),
            &[
                &Uuid::now_v7(),
                &rule.id,
                &rule.name,
                &rule.kind.name(),
                &rule.severity.as_str(),
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
                &text(&rule.cause),
                &text(&rule.consequence),
                &text(&rule.operator_action),
                &response_time_ms,
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

/// The rule's condition cleared for a sensor: its active alert becomes
/// `cleared_unacknowledged` or `closed`, or, for a latching rule, stays
/// active, latched until an operator resets it; returns it when it changed.
pub async fn clear_alert(
    pool: &Pool,
    outbox: &dyn Outbox,
    clearing: &Verdict<'_>,
) -> Result<Option<Alert>> {
    let mut client = pool.get().await?;
    let transaction = client.transaction().await?;
    let Some(mut alert) = not_closed(
        &transaction,
        clearing.rule.id,
        clearing.site,
        clearing.sensor,
    )
    .await?
    else {
        return Ok(None);
    };
    let Some(transition) = alert.clear(timestamp(clearing.at), ANALYTICS, clearing.rule.latching)
    else {
        return Ok(None);
    };
    let draft = clearing.draft(transition);
    commit_change(transaction, outbox, &alert, draft)
        .await
        .map(Some)
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
    fn draft(&'a self, transition: &'a str, at: DateTime<Utc>) -> Draft<'a> {
        Draft {
            transition,
            at,
            actor: ANALYTICS,
            value: None,
            detail: &self.message,
            explanation: None,
        }
    }
}

/// A gateway's `gateway_offline` alert that is not closed, locked.
async fn gateway_not_closed(
    transaction: &Transaction<'_>,
    group: &str,
    edge_node: &str,
) -> Result<Option<Alert>> {
    transaction
        .query_opt(
            &format!(
                "SELECT {COLUMNS} FROM analytics.alerts
                 WHERE kind = 'gateway_offline' AND gateway_group = $1 AND gateway_edge_node = $2
                   AND state <> 'closed'
                 FOR UPDATE"
            ),
            &[&group, &edge_node],
        )
        .await?
        .as_ref()
        .map(alert_from_row)
        .transpose()
}

/// Opens the `gateway_offline` alert of a gateway that died at
/// `offline.at`, or reactivates its alert that is not closed and cleared
/// before that death; nothing if one is active, or one was activated since
/// that death (an operator may have resolved it by hand: one death, one
/// alert). Returns it when it was opened or reactivated.
pub async fn open_gateway_alert(
    pool: &Pool,
    outbox: &dyn Outbox,
    offline: &GatewayVerdict<'_>,
) -> Result<Option<Alert>> {
    let mut client = pool.get().await?;
    let transaction = client.transaction().await?;
    let at = timestamp(offline.at);
    if let Some(mut alert) =
        gateway_not_closed(&transaction, offline.group, offline.edge_node).await?
    {
        let cleared_before = alert.resolved_at.is_some_and(|cleared| cleared <= at);
        if alert.active || !cleared_before {
            return Ok(None);
        }
        let Some(transition) = alert.reactivate(at, None, &offline.message) else {
            return Ok(None);
        };
        let draft = offline.draft(transition, at);
        return commit_change(transaction, outbox, &alert, draft)
            .await
            .map(Some);
    }
    let row = transaction
        .query_opt(
            &format!(
                "INSERT INTO analytics.alerts
                     (id, kind, severity, site, state, opened_at, message,
                      gateway_group, gateway_edge_node, active, activated_at)
                 SELECT $1, $2, $3, $4, 'unacknowledged', $5, $6, $7, $8, true, $5
                 WHERE NOT EXISTS (
                     SELECT 1 FROM analytics.alerts
                     WHERE kind = $2 AND gateway_group = $7 AND gateway_edge_node = $8
                       AND (state <> 'closed' OR activated_at >= $5))
                 ON CONFLICT (gateway_group, gateway_edge_node)
                     WHERE kind = 'gateway_offline' AND state <> 'closed' DO NOTHING
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
    let Some(row) = row else {
        return Ok(None);
    };
    let alert = alert_from_row(&row)?;
    record(&transaction, outbox, &alert, offline.draft("fired", at)).await?;
    transaction.commit().await?;
    Ok(Some(alert))
}

/// The gateway of an active `gateway_offline` alert is online again (or,
/// with another message, no longer bound): the alert becomes
/// `cleared_unacknowledged`, or `closed` if acknowledged; returns it when
/// there was one.
pub async fn clear_gateway_alert(
    pool: &Pool,
    outbox: &dyn Outbox,
    back: &GatewayVerdict<'_>,
) -> Result<Option<Alert>> {
    let mut client = pool.get().await?;
    let transaction = client.transaction().await?;
    let Some(mut alert) = gateway_not_closed(&transaction, back.group, back.edge_node).await?
    else {
        return Ok(None);
    };
    let at = timestamp(back.at).max(alert.activated_at);
    let Some(transition) = alert.clear(at, ANALYTICS, false) else {
        return Ok(None);
    };
    let draft = back.draft(transition, at);
    commit_change(transaction, outbox, &alert, draft)
        .await
        .map(Some)
}

/// Ends an active alert on behalf of analytics for a reason other than its
/// rule clearing (the rule was disabled or deleted, the sensor went): as
/// if its condition cleared, latching or not; returns it when it changed.
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
    let mut alert = alert_by_id(&*transaction, id, true).await?;
    let Some(transition) = alert.clear(at, ANALYTICS, false) else {
        return Ok(None);
    };
    let draft = Draft {
        transition,
        at,
        actor: ANALYTICS,
        value: None,
        detail: message,
        explanation: None,
    };
    commit_change(transaction, outbox, &alert, draft)
        .await
        .map(Some)
}
