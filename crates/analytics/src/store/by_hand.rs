//! An operator's actions on an alert (acknowledge, resolve, reset,
//! shelve, unshelve), each recorded in the alert's trail and in the audit
//! trail in its transaction, and the shelves the evaluation loop takes off
//! at their expiry.

use std::time::Duration;

use chrono::{DateTime, Utc};
use stoker_metadata::Actor;
use stoker_postgres::Pool;
use uuid::Uuid;

use super::rows::alert_by_id;
use super::transitions::{Draft, commit_change, record, save};
use super::{ANALYTICS, Alert, Outbox};
use crate::{Error, Result};

/// The longest reason a shelf may give, in characters.
pub const MAX_SHELVE_REASON_CHARS: usize = 1000;

/// Acknowledges an alert on behalf of `actor` (`unacknowledged` →
/// `acknowledged`, `cleared_unacknowledged` → `closed`), recorded in the
/// alert's trail and in the audit trail.
pub async fn acknowledge(pool: &Pool, outbox: &dyn Outbox, id: Uuid, actor: &str) -> Result<Alert> {
    change_by_hand(pool, outbox, id, actor, Action::Acknowledge).await
}

/// Resolves (closes) an alert that is not closed on behalf of `actor`,
/// recorded in the alert's trail and in the audit trail. The rule does not
/// fire again for that sensor until its condition has cleared and returned.
pub async fn resolve(pool: &Pool, outbox: &dyn Outbox, id: Uuid, actor: &str) -> Result<Alert> {
    change_by_hand(pool, outbox, id, actor, Action::Resolve).await
}

/// Resets a latched alert (its latching rule's condition has cleared) on
/// behalf of `actor`: it becomes inactive, `closed` if acknowledged, else
/// `cleared_unacknowledged`. An alert whose condition still holds, or that
/// is not latched, is refused ([`Error::NotLatched`]).
pub async fn reset(pool: &Pool, outbox: &dyn Outbox, id: Uuid, actor: &str) -> Result<Alert> {
    change_by_hand(pool, outbox, id, actor, Action::Reset).await
}

/// Shelves an alert that is not closed for `duration` on behalf of
/// `actor`, with a reason: it is not announced until the shelf expires
/// (the evaluation loop then takes it off, [`unshelve_expired`]) or an
/// operator unshelves it. At most its rule's `max_shelve` (8 h for an alert
/// without a rule, or whose rule is gone).
pub async fn shelve(
    pool: &Pool,
    outbox: &dyn Outbox,
    id: Uuid,
    actor: &str,
    duration: Duration,
    reason: &str,
) -> Result<Alert> {
    let reason = reason.trim();
    if reason.is_empty() {
        return Err(Error::InvalidShelve {
            field: "reason",
            message: "reason is required: say why the alert is shelved".into(),
        });
    }
    let chars = reason.chars().count();
    if chars > MAX_SHELVE_REASON_CHARS {
        return Err(Error::InvalidShelve {
            field: "reason",
            message: format!(
                "reason must be at most {MAX_SHELVE_REASON_CHARS} characters, not {chars}"
            ),
        });
    }
    if reason
        .chars()
        .any(|c| c.is_control() && c != '\n' && c != '\t')
    {
        return Err(Error::InvalidShelve {
            field: "reason",
            message: "reason must not hold control characters other than line breaks and tabs"
                .into(),
        });
    }
    if duration < Duration::from_secs(1) {
        return Err(Error::InvalidShelve {
            field: "for",
            message: "for must be at least 1s".into(),
        });
    }
    change_by_hand(
        pool,
        outbox,
        id,
        actor,
        Action::Shelve {
            duration,
            reason: reason.to_owned(),
        },
    )
    .await
}

/// Takes an alert off its shelf on behalf of `actor`; announced again if
/// its condition is active.
pub async fn unshelve(pool: &Pool, outbox: &dyn Outbox, id: Uuid, actor: &str) -> Result<Alert> {
    change_by_hand(pool, outbox, id, actor, Action::Unshelve).await
}

/// Takes every alert whose shelf expired by `now` off it, on behalf of
/// analytics (each its own transaction); an alert whose condition is still
/// active is announced again. Returns the alerts unshelved.
pub async fn unshelve_expired(
    pool: &Pool,
    outbox: &dyn Outbox,
    now: DateTime<Utc>,
) -> Result<Vec<Alert>> {
    let ids: Vec<Uuid> = pool
        .get()
        .await?
        .query(
            "SELECT id FROM analytics.alerts WHERE shelved_until <= $1 ORDER BY shelved_until",
            &[&now],
        )
        .await?
        .iter()
        .map(|row| row.try_get(0))
        .collect::<Result<_, _>>()?;
    let mut unshelved = Vec::new();
    for id in ids {
        let mut client = pool.get().await?;
        let transaction = client.transaction().await?;
        let mut alert = alert_by_id(&*transaction, id, true).await?;
        let Some(until) = alert.shelved_until.filter(|until| *until <= now) else {
            continue;
        };
        let transition = alert.unshelve()?;
        let detail = format!(
            "the shelf expired at {}",
            until.to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
        );
        let draft = Draft {
            transition,
            at: now,
            actor: ANALYTICS,
            value: None,
            detail: &detail,
            explanation: None,
        };
        unshelved.push(commit_change(transaction, outbox, &alert, draft).await?);
    }
    Ok(unshelved)
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

/// What an operator may do to an alert.
#[derive(Debug, Clone)]
enum Action {
    Acknowledge,
    Resolve,
    Reset,
    Shelve { duration: Duration, reason: String },
    Unshelve,
}

/// The longest an alert may be shelved: its rule's `max_shelve`, or the
/// default for an alert without a rule or whose rule is gone.
async fn max_shelve(pool: &Pool, alert: &Alert) -> Result<Duration> {
    let Some(rule_id) = alert.rule_id else {
        return Ok(stoker_rules::DEFAULT_MAX_SHELVE);
    };
    match stoker_metadata::get_alert_rule(pool, rule_id).await {
        Ok(rule) => Ok(rule.max_shelve),
        Err(stoker_metadata::Error::AlertRuleNotFound(_)) => Ok(stoker_rules::DEFAULT_MAX_SHELVE),
        Err(stoker_metadata::Error::Postgres(error)) => Err(Error::Postgres(error)),
        Err(other) => Err(Error::Metadata(other)),
    }
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
    let mut alert = current.clone();
    let now = Utc::now();
    let (transition, detail) = match &action {
        Action::Acknowledge => (alert.acknowledge(now, actor)?, None),
        Action::Resolve => (alert.resolve(now, actor)?, None),
        Action::Reset => (alert.reset(now, actor)?, None),
        Action::Shelve { duration, reason } => {
            let max = max_shelve(pool, &current).await?;
            if *duration > max {
                return Err(Error::ShelveTooLong {
                    id,
                    requested: *duration,
                    max,
                });
            }
            let until = now
                + chrono::Duration::from_std(*duration).map_err(|_| Error::ShelveTooLong {
                    id,
                    requested: *duration,
                    max,
                })?;
            let transition = alert.shelve(until, actor, reason)?;
            let detail = format!(
                "shelved by {actor} until {}: {reason}",
                until.to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
            );
            (transition, Some(detail))
        }
        Action::Unshelve => (alert.unshelve()?, None),
    };
    let alert = save(&transaction, &alert).await?;
    audit_by_hand(&transaction, actor, transition, &current, &alert).await?;
    let detail = detail.unwrap_or_else(|| format!("{transition} by {actor}"));
    let draft = Draft {
        transition,
        at: now,
        actor,
        value: None,
        detail: &detail,
        explanation: None,
    };
    record(&transaction, outbox, &alert, draft).await?;
    transaction.commit().await?;
    Ok(alert)
}
