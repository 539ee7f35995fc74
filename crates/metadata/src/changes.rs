//! Change notifications: LISTEN on the channel the metadata triggers use.
//!
//! Every changed row of `sites`, `sensors` and `alert_rules` is announced on
//! channel `stoker_metadata` as `{table}:{site slug}`, or `{table}:*` when
//! any site may be concerned (an alert rule without a site, a TRUNCATE,
//! every change to `api_keys`). [`watch_changes`] turns them into a bare
//! generation counter, [`watch_change_events`] into [`Change`]s.

use std::time::Duration;

use futures::StreamExt;
use stoker_domain::SiteSlug;
use tokio::sync::{broadcast, watch};
use tokio_postgres::AsyncMessage;
use tokio_util::sync::CancellationToken;

use crate::{PostgresOptions, Result};

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

/// What a listener reports to its caller.
enum Event<'a> {
    /// The LISTEN is in place (after every (re)connection).
    Listening,
    /// A notification arrived with this payload.
    Notification(&'a str),
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
    run(options, shutdown, move |_event| {
        generation.send_modify(|value| *value += 1);
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
    run(options, shutdown, move |event| {
        let change = match event {
            Event::Listening => Change::everything(),
            Event::Notification(payload) => Change::from_payload(payload),
        };
        // An error only means that nobody listens right now.
        let _ = sender.send(change);
    })
    .await
}

/// Listens until `shutdown`, reconnecting with backoff (reset once a
/// connection has listened) while Postgres is away.
async fn run(
    options: PostgresOptions,
    shutdown: CancellationToken,
    mut report: impl FnMut(Event<'_>) + Send,
) -> Result<()> {
    let config = options.pg_config()?;
    let mut backoff = FIRST_BACKOFF;
    while !shutdown.is_cancelled() {
        match listen(&config, &mut report, &shutdown).await {
            Ok(()) => return Ok(()),
            Err(failure) => {
                if failure.listened {
                    backoff = FIRST_BACKOFF;
                }
                tracing::warn!(error = %failure.error, retry_in = ?backoff, "metadata change listener lost its connection");
                tokio::select! {
                    () = shutdown.cancelled() => return Ok(()),
                    () = tokio::time::sleep(backoff) => {}
                }
                backoff = (backoff * 2).min(MAX_BACKOFF);
            }
        }
    }
    Ok(())
}

/// Why a connection ended before shutdown.
struct Failure {
    /// Whether the LISTEN had been in place.
    listened: bool,
    error: String,
}

impl Failure {
    fn before_listening(error: impl ToString) -> Self {
        Self {
            listened: false,
            error: error.to_string(),
        }
    }
}

/// One connection's life: returns `Ok` on shutdown, `Err` when the
/// connection breaks.
async fn listen(
    config: &tokio_postgres::Config,
    report: &mut (impl FnMut(Event<'_>) + Send),
    shutdown: &CancellationToken,
) -> Result<(), Failure> {
    let (client, mut connection) = config
        .connect(tokio_postgres::NoTls)
        .await
        .map_err(Failure::before_listening)?;
    let (messages_tx, mut messages) = tokio::sync::mpsc::unbounded_channel();
    // The connection must be polled for the LISTEN to be sent and for
    // notifications to arrive; forward them to this task.
    let driver = tokio::spawn(async move {
        let mut stream = futures::stream::poll_fn(move |context| connection.poll_message(context));
        while let Some(message) = stream.next().await {
            let stop = message.is_err();
            if messages_tx.send(message).is_err() || stop {
                break;
            }
        }
    });
    let outcome = async {
        client
            .batch_execute(&format!("LISTEN {CHANNEL}"))
            .await
            .map_err(Failure::before_listening)?;
        report(Event::Listening);
        tracing::debug!("listening for metadata changes");
        loop {
            tokio::select! {
                () = shutdown.cancelled() => break Ok(()),
                message = messages.recv() => match message {
                    Some(Ok(AsyncMessage::Notification(notification))) => {
                        report(Event::Notification(notification.payload()));
                    }
                    Some(Ok(_)) => {}
                    Some(Err(error)) => break Err(Failure { listened: true, error: error.to_string() }),
                    None => break Err(Failure { listened: true, error: "the connection closed".to_owned() }),
                }
            }
        }
    }
    .await;
    driver.abort();
    outcome
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
