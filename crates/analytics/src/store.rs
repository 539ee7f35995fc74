//! Alerts and their event trail in Postgres (schema `analytics`): the
//! source of truth for what fired, who acknowledged it and what resolved it.
//!
//! Every transition is one transaction: the alert row changes, an event is
//! appended (`analytics.alert_events`, which refuses updates and deletes),
//! and the [`Outbox`] queues its notifications. A partial unique index
//! keeps at most one open alert per rule and sensor, whichever process
//! tries to open a second.

use std::fmt;

use chrono::{DateTime, Utc};
use futures::future::BoxFuture;
use serde::Serialize;
use stoker_domain::{EpochMillis, SensorKey, SiteSlug};
use stoker_metadata::Page;
use stoker_postgres::Pool;
use stoker_rules::AlertRule;
use tokio_postgres::{Row, Transaction};
use uuid::Uuid;

use crate::{Error, Result};

/// Where an alert stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum AlertState {
    /// Raised and not yet seen by anyone.
    Firing,
    /// Someone said they are on it; still open.
    Acknowledged,
    /// Over: cleared by analytics, or resolved by someone.
    Resolved,
}

impl AlertState {
    /// The name in JSON, SQL and URLs.
    pub fn as_str(self) -> &'static str {
        match self {
            AlertState::Firing => "firing",
            AlertState::Acknowledged => "acknowledged",
            AlertState::Resolved => "resolved",
        }
    }

    fn parse(text: &str) -> Result<Self> {
        match text {
            "firing" => Ok(AlertState::Firing),
            "acknowledged" => Ok(AlertState::Acknowledged),
            "resolved" => Ok(AlertState::Resolved),
            other => Err(Error::InvalidRow {
                what: "alert state",
                reason: format!("{other:?}"),
            }),
        }
    }
}

impl fmt::Display for AlertState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// An alert as stored and as the API shows it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Alert {
    /// Its id.
    pub id: Uuid,
    /// The rule that raised it.
    pub rule_id: Uuid,
    /// The rule's name when it fired.
    pub rule_name: String,
    /// The rule's kind.
    pub kind: String,
    /// `info`, `warning` or `critical`.
    pub severity: String,
    /// The site.
    pub site: String,
    /// The sensor.
    pub sensor: String,
    /// Where it stands.
    pub state: AlertState,
    /// The evaluation time at which it fired.
    pub opened_at: DateTime<Utc>,
    /// The value that fired it (none for `no_data`).
    pub value: Option<f64>,
    /// What the value was compared with.
    pub threshold: Option<f64>,
    /// Why it fired, in one sentence.
    pub message: String,
    /// When it was acknowledged.
    pub acknowledged_at: Option<DateTime<Utc>>,
    /// Who acknowledged it (an API key's name).
    pub acknowledged_by: Option<String>,
    /// When it was resolved.
    pub resolved_at: Option<DateTime<Utc>>,
    /// Who resolved it: `analytics` when its rule cleared, else an API
    /// key's name.
    pub resolved_by: Option<String>,
    /// Bumped on every change.
    pub version: i64,
}

/// One transition of an alert, as the trail keeps it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct AlertEvent {
    /// Its id (increasing).
    pub id: i64,
    /// The alert.
    pub alert_id: Uuid,
    /// `fired`, `acknowledged` or `resolved`.
    pub transition: String,
    /// When.
    pub at: DateTime<Utc>,
    /// Who: `analytics` or an API key's name.
    pub actor: String,
    /// The value seen, if any.
    pub value: Option<f64>,
    /// Why.
    pub detail: String,
}

/// The actor name of the evaluation loop.
pub const ANALYTICS: &str = "analytics";

/// Queues an event's notifications in the transaction that records it.
pub trait Outbox: Send + Sync {
    /// Queues the notifications of event `event_id` of an alert at `site`;
    /// `body` is the JSON sent.
    fn enqueue<'a>(
        &'a self,
        transaction: &'a Transaction<'a>,
        event_id: i64,
        site: &'a SiteSlug,
        body: &'a str,
    ) -> BoxFuture<'a, Result<()>>;
}

/// The real outbox: MQTT `alerts/{site}` and the configured webhooks.
impl Outbox for crate::notify::NotifyOptions {
    fn enqueue<'a>(
        &'a self,
        transaction: &'a Transaction<'a>,
        event_id: i64,
        site: &'a SiteSlug,
        body: &'a str,
    ) -> BoxFuture<'a, Result<()>> {
        Box::pin(async move {
            crate::notify::enqueue(transaction, self, event_id, site, body).await?;
            Ok(())
        })
    }
}

/// An outbox that sends nothing (tests of the store alone).
#[derive(Debug, Clone, Copy, Default)]
pub struct NoOutbox;

impl Outbox for NoOutbox {
    fn enqueue<'a>(
        &'a self,
        _transaction: &'a Transaction<'a>,
        _event_id: i64,
        _site: &'a SiteSlug,
        _body: &'a str,
    ) -> BoxFuture<'a, Result<()>> {
        Box::pin(async { Ok(()) })
    }
}

const COLUMNS: &str = "id, rule_id, rule_name, kind, severity, site, sensor, state, opened_at, \
     value, threshold, message, acknowledged_at, acknowledged_by, resolved_at, resolved_by, version";

fn alert_from_row(row: &Row) -> Result<Alert> {
    Ok(Alert {
        id: row.try_get("id")?,
        rule_id: row.try_get("rule_id")?,
        rule_name: row.try_get("rule_name")?,
        kind: row.try_get("kind")?,
        severity: row.try_get("severity")?,
        site: row.try_get("site")?,
        sensor: row.try_get("sensor")?,
        state: AlertState::parse(row.try_get("state")?)?,
        opened_at: row.try_get("opened_at")?,
        value: row.try_get("value")?,
        threshold: row.try_get("threshold")?,
        message: row.try_get("message")?,
        acknowledged_at: row.try_get("acknowledged_at")?,
        acknowledged_by: row.try_get("acknowledged_by")?,
        resolved_at: row.try_get("resolved_at")?,
        resolved_by: row.try_get("resolved_by")?,
        version: row.try_get("version")?,
    })
}

fn event_from_row(row: &Row) -> Result<AlertEvent> {
    Ok(AlertEvent {
        id: row.try_get("id")?,
        alert_id: row.try_get("alert_id")?,
        transition: row.try_get("transition")?,
        at: row.try_get("at")?,
        actor: row.try_get("actor")?,
        value: row.try_get("value")?,
        detail: row.try_get("detail")?,
    })
}

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
    value: Option<f64>,
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
    let row = transaction
        .query_one(
            "INSERT INTO analytics.alert_events (alert_id, transition, at, actor, value, detail)
             VALUES ($1, $2, $3, $4, $5, $6)
             RETURNING id, alert_id, transition, at, actor, value, detail",
            &[&alert.id, &transition, &at, &actor, &value, &detail],
        )
        .await?;
    let event = event_from_row(&row)?;
    let body = serde_json::to_string(&Notice {
        event: &event,
        alert,
    })
    .map_err(|error| Error::Encode(error.to_string()))?;
    outbox.enqueue(transaction, event.id, &site, &body).await?;
    Ok(event)
}

fn timestamp(at: EpochMillis) -> DateTime<Utc> {
    at.to_datetime()
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
    /// The value that fired or cleared it.
    pub value: Option<f64>,
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
    let mut client = pool.get().await?;
    let transaction = client.transaction().await?;
    let at = timestamp(firing.at);
    let row = transaction
        .query_opt(
            &format!(
                "INSERT INTO analytics.alerts
                     (id, rule_id, rule_name, kind, severity, site, sensor, state, opened_at,
                      value, threshold, message)
                 VALUES ($1, $2, $3, $4, $5, $6, $7, 'firing', $8, $9, $10, $11)
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
                &firing.value,
                &crate::engine::limit(&firing.rule.kind),
                &firing.message,
            ],
        )
        .await?;
    settle(transaction, outbox, row, firing.draft("fired")).await
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
            value: self.value,
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

/// Acknowledges a firing alert on behalf of `actor`.
pub async fn acknowledge(pool: &Pool, outbox: &dyn Outbox, id: Uuid, actor: &str) -> Result<Alert> {
    change_by_hand(pool, outbox, id, actor, Action::Acknowledge).await
}

/// Resolves an open alert on behalf of `actor`. The rule does not fire
/// again for that sensor until its condition has cleared and returned.
pub async fn resolve(pool: &Pool, outbox: &dyn Outbox, id: Uuid, actor: &str) -> Result<Alert> {
    change_by_hand(pool, outbox, id, actor, Action::Resolve).await
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

/// Which alerts a list shows.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct AlertFilter {
    /// `open` (firing or acknowledged), `firing`, `acknowledged`,
    /// `resolved`; none: all.
    pub state: Option<StateFilter>,
    /// One site's alerts only.
    pub site: Option<SiteSlug>,
    /// One sensor's alerts only.
    pub sensor: Option<SensorKey>,
    /// One rule's alerts only.
    pub rule_id: Option<Uuid>,
}

/// The `state` of a list query.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StateFilter {
    /// Firing or acknowledged.
    Open,
    /// Exactly this state.
    Is(AlertState),
}

impl StateFilter {
    /// Every name `parse` takes.
    pub const NAMES: [&'static str; 4] = ["open", "firing", "acknowledged", "resolved"];

    /// Parses `open`, `firing`, `acknowledged` or `resolved`.
    pub fn parse(text: &str) -> Option<Self> {
        match text {
            "open" => Some(StateFilter::Open),
            other => AlertState::parse(other).ok().map(StateFilter::Is),
        }
    }
}

/// Alerts, newest first, `limit` per page after the cursor `after` (a
/// page's `next_after`).
pub async fn list_alerts(
    pool: &Pool,
    filter: &AlertFilter,
    limit: i64,
    after: Option<&str>,
) -> Result<Page<Alert>> {
    let (after_at, after_id) = match after {
        None => (None, None),
        Some(cursor) => {
            let (at, id) = parse_cursor(cursor).ok_or_else(|| Error::InvalidRow {
                what: "cursor",
                reason: format!("{cursor:?} is not an alert cursor"),
            })?;
            (Some(at), Some(id))
        }
    };
    let (open_only, state) = match filter.state {
        None => (false, None),
        Some(StateFilter::Open) => (true, None),
        Some(StateFilter::Is(state)) => (false, Some(state.as_str())),
    };
    let client = pool.get().await?;
    let rows = client
        .query(
            &format!(
                "SELECT {COLUMNS} FROM analytics.alerts
                 WHERE (NOT $1 OR state <> 'resolved')
                   AND ($2::text IS NULL OR state = $2)
                   AND ($3::text IS NULL OR site = $3)
                   AND ($4::text IS NULL OR sensor = $4)
                   AND ($5::uuid IS NULL OR rule_id = $5)
                   AND ($6::timestamptz IS NULL OR (opened_at, id) < ($6, $7))
                 ORDER BY opened_at DESC, id DESC
                 LIMIT $8"
            ),
            &[
                &open_only,
                &state,
                &filter.site.as_ref().map(SiteSlug::as_str),
                &filter.sensor.as_ref().map(SensorKey::as_str),
                &filter.rule_id,
                &after_at,
                &after_id,
                &(limit.clamp(1, stoker_metadata::MAX_PAGE_LIMIT) + 1),
            ],
        )
        .await?;
    let alerts = rows
        .iter()
        .map(alert_from_row)
        .collect::<Result<Vec<_>>>()?;
    Ok(Page::from_rows(alerts, limit, cursor))
}

/// The cursor after `alert`: its opening time in microseconds and its id.
fn cursor(alert: &Alert) -> String {
    format!("{}_{}", alert.opened_at.timestamp_micros(), alert.id)
}

fn parse_cursor(text: &str) -> Option<(DateTime<Utc>, Uuid)> {
    let (micros, id) = text.split_once('_')?;
    let at = DateTime::from_timestamp_micros(micros.parse().ok()?)?;
    Some((at, Uuid::parse_str(id).ok()?))
}

/// The alert with this id, locked until the end of the transaction when
/// `for_update` (the transaction changes it).
async fn alert_by_id(
    client: &impl tokio_postgres::GenericClient,
    id: Uuid,
    for_update: bool,
) -> Result<Alert> {
    let lock = if for_update { " FOR UPDATE" } else { "" };
    let row = client
        .query_opt(
            &format!("SELECT {COLUMNS} FROM analytics.alerts WHERE id = $1{lock}"),
            &[&id],
        )
        .await?
        .ok_or(Error::AlertNotFound(id))?;
    alert_from_row(&row)
}

/// One alert with its event trail, oldest event first.
pub async fn get_alert(pool: &Pool, id: Uuid) -> Result<(Alert, Vec<AlertEvent>)> {
    let client = pool.get().await?;
    let alert = alert_by_id(&**client, id, false).await?;
    let events = client
        .query(
            "SELECT id, alert_id, transition, at, actor, value, detail
             FROM analytics.alert_events WHERE alert_id = $1 ORDER BY id",
            &[&id],
        )
        .await?
        .iter()
        .map(event_from_row)
        .collect::<Result<Vec<_>>>()?;
    Ok((alert, events))
}

/// Every open alert (the evaluation loop's starting point), or one site's.
pub async fn open_alerts(pool: &Pool, site: Option<&SiteSlug>) -> Result<Vec<Alert>> {
    let client = pool.get().await?;
    let rows = client
        .query(
            &format!(
                "SELECT {COLUMNS} FROM analytics.alerts
                 WHERE state <> 'resolved' AND ($1::text IS NULL OR site = $1)
                 ORDER BY opened_at DESC, id DESC"
            ),
            &[&site.map(SiteSlug::as_str)],
        )
        .await?;
    rows.iter().map(alert_from_row).collect()
}

/// The newest opening time of any alert (open or not) of a rule and sensor
/// since `since`: tells the loop, after a takeover, whether an episode it
/// replays was already alerted (and maybe resolved by hand).
pub async fn alerted_since(
    pool: &Pool,
    rule_id: Uuid,
    site: &SiteSlug,
    sensor: &SensorKey,
    since: EpochMillis,
) -> Result<bool> {
    let client = pool.get().await?;
    let row = client
        .query_one(
            "SELECT EXISTS (SELECT 1 FROM analytics.alerts
                            WHERE rule_id = $1 AND site = $2 AND sensor = $3 AND opened_at >= $4)",
            &[
                &rule_id,
                &site.as_str(),
                &sensor.as_str(),
                &timestamp(since),
            ],
        )
        .await?;
    Ok(row.try_get(0)?)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cursors_round_trip() {
        let at = DateTime::from_timestamp_micros(1_795_000_000_123_456).unwrap();
        let id = Uuid::now_v7();
        assert_eq!(
            parse_cursor(&format!("{}_{id}", at.timestamp_micros())),
            Some((at, id))
        );
        assert_eq!(parse_cursor("nonsense"), None);
        assert_eq!(parse_cursor("12_not-a-uuid"), None);
    }

    #[test]
    fn state_filters_parse() {
        assert_eq!(StateFilter::parse("open"), Some(StateFilter::Open));
        assert_eq!(
            StateFilter::parse("acknowledged"),
            Some(StateFilter::Is(AlertState::Acknowledged))
        );
        assert_eq!(StateFilter::parse("closed"), None);
    }
}
