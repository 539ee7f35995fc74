//! Alerts and their event trail in Postgres (schema `analytics`): the
//! source of truth for what fired, who acknowledged it and what resolved it.
//! An alert's life (`life`) is ISA-18.2's: two facts, active and
//! acknowledged, named by its [`AlertState`]; shelving on top.
//!
//! Every transition is one transaction: the alert row changes, an event is
//! appended (`analytics.alert_events`, which refuses updates and deletes),
//! and the [`Outbox`] queues its notifications, unless the alert is
//! suppressed ([`Suppression`]): a suppressed alert's events are recorded,
//! never announced, until an `unsuppressed` event announces it. A partial unique index
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

mod by_hand;
mod escalation;
mod life;
mod read;
mod rows;
mod transitions;

pub use by_hand::{
    MAX_SHELVE_REASON_CHARS, acknowledge, reset, resolve, shelve, unshelve, unshelve_expired,
};
pub use escalation::{Escalation, escalate};
pub use read::{AlertFilter, StateFilter, alerted_since, get_alert, list_alerts, open_alerts};
pub use transitions::{
    GATEWAY_OFFLINE, GATEWAY_OFFLINE_SEVERITY, GatewayVerdict, Verdict, clear_alert,
    clear_gateway_alert, open_alert, open_alert_suppressed, open_gateway_alert, retire,
    set_suppression,
};

/// Where an alert stands (ISA-18.2): whether its condition is active and
/// whether someone acknowledged it, in one name.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum AlertState {
    /// Active, and nobody has acknowledged it yet.
    Unacknowledged,
    /// Active; someone said they are on it.
    Acknowledged,
    /// Back to normal before anyone acknowledged it: it stays in the list
    /// until someone does.
    ClearedUnacknowledged,
    /// Back to normal and acknowledged, or resolved by hand: over.
    Closed,
}

impl AlertState {
    /// Every state, in the order of an alert's life.
    pub const ALL: [AlertState; 4] = [
        AlertState::Unacknowledged,
        AlertState::Acknowledged,
        AlertState::ClearedUnacknowledged,
        AlertState::Closed,
    ];

    /// The name in JSON, SQL and URLs.
    pub fn as_str(self) -> &'static str {
        match self {
            AlertState::Unacknowledged => "unacknowledged",
            AlertState::Acknowledged => "acknowledged",
            AlertState::ClearedUnacknowledged => "cleared_unacknowledged",
            AlertState::Closed => "closed",
        }
    }

    /// Whether the condition is active in this state.
    pub fn is_active(self) -> bool {
        matches!(self, AlertState::Unacknowledged | AlertState::Acknowledged)
    }

    fn parse(text: &str) -> Result<Self> {
        Self::ALL
            .into_iter()
            .find(|state| state.as_str() == text)
            .ok_or_else(|| Error::InvalidRow {
                what: "alert state",
                reason: format!("{text:?}"),
            })
    }
}

impl fmt::Display for AlertState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Why an alert is suppressed: recorded, never announced (DESIGN.md,
/// "Alarm management").
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Suppression {
    /// Its rule's `suppress_when` holds on another sensor of the site.
    SuppressWhen,
    /// Its sensor's gateway is offline (or its device dead): a `no_data`
    /// alarm the gateway's own alarm explains.
    GatewayOffline,
    /// Its rule or its sensor is out of service.
    OutOfService,
    /// Its site is in a maintenance window.
    Maintenance,
}

impl Suppression {
    /// Every reason, as JSON and SQL name them.
    pub const NAMES: [&'static str; 4] = [
        "suppress_when",
        "gateway_offline",
        "out_of_service",
        "maintenance",
    ];

    /// The name in JSON and SQL.
    pub fn as_str(self) -> &'static str {
        match self {
            Suppression::SuppressWhen => "suppress_when",
            Suppression::GatewayOffline => "gateway_offline",
            Suppression::OutOfService => "out_of_service",
            Suppression::Maintenance => "maintenance",
        }
    }

    fn parse(text: &str) -> Result<Self> {
        match text {
            "suppress_when" => Ok(Suppression::SuppressWhen),
            "gateway_offline" => Ok(Suppression::GatewayOffline),
            "out_of_service" => Ok(Suppression::OutOfService),
            "maintenance" => Ok(Suppression::Maintenance),
            other => Err(Error::InvalidRow {
                what: "alert suppression",
                reason: format!("{other:?}"),
            }),
        }
    }
}

impl fmt::Display for Suppression {
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
    /// Whether its condition is active (`unacknowledged`, `acknowledged`);
    /// a latched alert stays active after its condition cleared until an
    /// operator resets it.
    pub active: bool,
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
    /// When its active life last ended: its condition cleared, or an
    /// operator reset or resolved it; `None` while active.
    pub resolved_at: Option<DateTime<Utc>>,
    /// Who ended it: `analytics` when its condition cleared, else the
    /// operator's name.
    pub resolved_by: Option<String>,
    /// When it last fired or was reactivated.
    pub activated_at: DateTime<Utc>,
    /// When the condition of its latching rule cleared: it stays active
    /// until an operator resets it (`None`: not latched).
    pub latched_at: Option<DateTime<Utc>>,
    /// Shelved by an operator until then: not announced meanwhile.
    pub shelved_until: Option<DateTime<Utc>>,
    /// Who shelved it.
    pub shelved_by: Option<String>,
    /// Why it was shelved.
    pub shelve_reason: Option<String>,
    /// Its rule's rationalization when it fired: what causes it.
    pub cause: Option<String>,
    /// What follows if nobody acts.
    pub consequence: Option<String>,
    /// What the operator should do.
    pub operator_action: Option<String>,
    /// How soon the operator must act (`10m`).
    pub response_time: Option<String>,
    /// Bumped on every change.
    pub version: i64,
    /// Why it is suppressed (recorded, not announced); `None`: announced.
    pub suppressed: Option<Suppression>,
}

/// One transition of an alert, as the trail keeps it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct AlertEvent {
    /// Its id (increasing).
    pub id: i64,
    /// The alert.
    pub alert_id: Uuid,
    /// `fired`, `acknowledged`, `resolved` (by hand), `cleared` (its
    /// condition returned to normal before an acknowledgement), `closed`
    /// (it returned to normal once acknowledged), `reactivated` (its
    /// condition returned while it was not closed), `latched` (the
    /// condition of its latching rule cleared), `reset`, `shelved`,
    /// `unshelved`, `suppressed` (recorded, not announced: the detail says
    /// why) or `unsuppressed` (announced from then on).
    pub transition: String,
    /// When.
    pub at: DateTime<Utc>,
    /// Who: `analytics` or an API key's name.
    pub actor: String,
    /// The value seen, if any (typed as the alert's `value`).
    pub value: Option<ReadingValue>,
    /// Why.
    pub detail: String,
    /// What a `fired` or `reactivated` decision was computed from: the
    /// rule's version, the aggregate, the bucket values, the trigger and
    /// clear values, how long the condition had held.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub explanation: Option<serde_json::Value>,
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
