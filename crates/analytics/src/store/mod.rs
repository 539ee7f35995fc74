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
use stoker_domain::{ReadingValue, SiteSlug};
use tokio_postgres::Transaction;
use uuid::Uuid;

use crate::{Error, Result};

mod escalation;
mod read;
mod rows;
mod transitions;

pub use escalation::{Escalation, escalate};
pub use read::{AlertFilter, StateFilter, alerted_since, get_alert, list_alerts, open_alerts};
pub use transitions::{
    GATEWAY_OFFLINE, GATEWAY_OFFLINE_SEVERITY, GatewayVerdict, Verdict, acknowledge, clear_alert,
    clear_gateway_alert, open_alert, open_gateway_alert, resolve, retire,
};

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

/// The Sparkplug gateway a `gateway_offline` alert is about.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize)]
pub struct GatewayRef {
    /// The Sparkplug group id.
    pub group: String,
    /// The Sparkplug edge node id.
    pub edge_node: String,
}

/// An alert as stored and as the API shows it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Alert {
    /// Its id.
    pub id: Uuid,
    /// The rule that raised it; `None` for a `gateway_offline` alert.
    pub rule_id: Option<Uuid>,
    /// The rule's name when it fired; `None` for a `gateway_offline` alert.
    pub rule_name: Option<String>,
    /// The rule's kind, or `gateway_offline`.
    pub kind: String,
    /// `info`, `warning` or `critical`.
    pub severity: String,
    /// The site.
    pub site: String,
    /// The sensor; `None` for a `gateway_offline` alert.
    pub sensor: Option<String>,
    /// The gateway a `gateway_offline` alert is about; `None` for a rule's.
    pub gateway: Option<GatewayRef>,
    /// Where it stands.
    pub state: AlertState,
    /// The evaluation time at which it fired.
    pub opened_at: DateTime<Utc>,
    /// The value that fired it (none for `no_data`): a number, or for a
    /// rule comparing a boolean or state sensor, `true`/`false` or the
    /// state's name.
    pub value: Option<ReadingValue>,
    /// What the value was compared with, in the same type.
    pub threshold: Option<ReadingValue>,
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
    /// The value seen, if any (typed as the alert's `value`).
    pub value: Option<ReadingValue>,
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
