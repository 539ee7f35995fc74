//! Change notifications: LISTEN on the channel the metadata triggers use.
//!
//! Every changed row of `sites`, `sensors` and `alert_rules` is announced on
//! channel `stoker_metadata` as `{table}:{site slug}`, or `{table}:*` when
//! any site may be concerned (an alert rule without a site, a TRUNCATE,
//! every change to `api_keys`). [`watch_changes`] turns them into a bare
//! generation counter, [`watch_change_events`] into [`Change`]s.

use std::time::Duration;

use stoker_domain::SiteSlug;
use stoker_postgres::{Listener, Notice, PostgresOptions};
use tokio::sync::{broadcast, watch};
use tokio_util::sync::CancellationToken;

use crate::Result;

/// The channel the `metadata.announce_*` trigger functions notify.
const CHANNEL: &str = "stoker_metadata";

/// The first wait before reconnecting, doubled after every failure.
const FIRST_BACKOFF: Duration = Duration::from_millis(250);
/// The longest wait before reconnecting.
const MAX_BACKOFF: Duration = Duration::from_secs(10);

/// What changed: a table (`sites`, `sensors`, `alert_rules`, `api_keys`)
/// and the site concerned. `site: None` means any site may be concerned;
/// `table: "*"` means anything may have changed (sent after every
/// (re)connection, since changes made while disconnected were not
/// announced): reload everything.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Change {
    /// The table whose rows changed, or `*` for any.
    pub table: String,
    /// The site concerned, or `None` for any.
    pub site: Option<SiteSlug>,
}

impl Change {
    /// "Anything may have changed": reload everything.
    pub fn everything() -> Self {
        Self {
            table: "*".to_owned(),
            site: None,
        }
    }

    /// Reads a notification payload, `{table}:{site slug}` or `{table}:*`.
    /// A payload without a (valid) site concerns any site.
    pub fn from_payload(payload: &str) -> Self {
        let (table, site) = payload.split_once(':').unwrap_or((payload, "*"));
        Self {
            table: table.to_owned(),
            site: SiteSlug::parse(site).ok(),
        }
    }

    /// Whether the change may concern `table`.
    pub fn concerns(&self, table: &str) -> bool {
        self.table == "*" || self.table == table
    }
}

/// Keeps a LISTEN connection open and bumps `generation` on every change
/// to the metadata tables (sites, sensors, alert rules, API keys), and
/// after every (re)connection, since changes made while disconnected were
/// not announced. Runs until `shutdown`; reconnects with backoff while
/// Postgres is away. [`watch_change_events`] says what changed.
pub async fn watch_changes(
    options: PostgresOptions,
    generation: watch::Sender<u64>,
    shutdown: CancellationToken,
) -> Result<()> {
    watch_changes_to(options, &[], generation, shutdown).await
}

/// [`watch_changes`] for changes to `tables` only (every table when
/// empty), and every (re)connection: a reader of sites and sensors is not
/// woken by each gateway birth or alert rule.
pub async fn watch_changes_to(
    options: PostgresOptions,
    tables: &'static [&'static str],
    generation: watch::Sender<u64>,
    shutdown: CancellationToken,
) -> Result<()> {
    run(options, shutdown, move |notice| {
        let wanted = match notice {
            Notice::Listening => true,
            Notice::Notification(payload) => {
                let change = Change::from_payload(payload);
                tables.is_empty() || tables.iter().any(|table| change.concerns(table))
            }
        };
        if wanted {
            generation.send_modify(|value| *value += 1);
        }
    })
    .await
}

/// Keeps a LISTEN connection open and sends a [`Change`] for every changed
/// row of the metadata tables, and [`Change::everything`] after every
/// (re)connection, since changes made while disconnected were not
/// announced. Having no receiver at the moment is fine; a receiver that
/// lags (`RecvError::Lagged`) should reload everything. Runs until
/// `shutdown`; reconnects with backoff while Postgres is away.
pub async fn watch_change_events(
    options: PostgresOptions,
    sender: broadcast::Sender<Change>,
    shutdown: CancellationToken,
) -> Result<()> {
    run(options, shutdown, move |notice| {
        let change = match notice {
            Notice::Listening => Change::everything(),
            Notice::Notification(payload) => Change::from_payload(payload),
        };
        // An error only means that nobody listens right now.
        let _ = sender.send(change);
    })
    .await
}

/// Listens on [`CHANNEL`] until `shutdown`, reconnecting with backoff
/// while Postgres is away.
async fn run(
    options: PostgresOptions,
    shutdown: CancellationToken,
    report: impl FnMut(Notice<'_>),
) -> Result<()> {
    Listener::new(options.connector()?, CHANNEL)
        .with_backoff(FIRST_BACKOFF, MAX_BACKOFF)
        .run(shutdown, report, |lost| {
            tracing::warn!(error = %lost.error, retry_in = ?lost.retry_in, "metadata change listener lost its connection");
        })
        .await;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn payloads_name_a_table_and_maybe_a_site() {
        assert_eq!(
            Change::from_payload("sensors:boiler-house-1"),
            Change {
                table: "sensors".into(),
                site: Some(SiteSlug::parse("boiler-house-1").unwrap())
            }
        );
        let any = Change::from_payload("alert_rules:*");
        assert_eq!((any.table.as_str(), any.site), ("alert_rules", None));
        // V1's payload: the bare table name.
        assert_eq!(Change::from_payload("sites").site, None);
        assert!(Change::everything().concerns("sensors"));
        assert!(!Change::from_payload("api_keys:*").concerns("sensors"));
    }
}
