//! Change notifications: LISTEN on the channel the registry triggers use.

use std::time::Duration;

use futures::StreamExt;
use tokio::sync::watch;
use tokio_postgres::AsyncMessage;
use tokio_util::sync::CancellationToken;

use crate::{PostgresOptions, Result};

/// The channel `metadata.announce_change()` notifies.
const CHANNEL: &str = "stoker_metadata";

/// Keeps a LISTEN connection open and bumps `generation` on every change
/// to sites or sensors, and after every (re)connection, since changes made
/// while disconnected were not announced. Runs until `shutdown`;
/// reconnects with backoff while Postgres is away.
pub async fn watch_changes(
    options: PostgresOptions,
    generation: watch::Sender<u64>,
    shutdown: CancellationToken,
) -> Result<()> {
    let config = options.pg_config()?;
    let mut backoff = Duration::from_millis(250);
    while !shutdown.is_cancelled() {
        match listen(&config, &generation, &shutdown).await {
            Ok(()) => return Ok(()),
            Err(error) => {
                tracing::warn!(%error, retry_in = ?backoff, "metadata change listener lost its connection");
                tokio::select! {
                    () = shutdown.cancelled() => return Ok(()),
                    () = tokio::time::sleep(backoff) => {}
                }
                backoff = (backoff * 2).min(Duration::from_secs(10));
            }
        }
    }
    Ok(())
}

/// One connection's life: returns `Ok` on shutdown, `Err` when the
/// connection breaks.
async fn listen(
    config: &tokio_postgres::Config,
    generation: &watch::Sender<u64>,
    shutdown: &CancellationToken,
) -> Result<(), String> {
    let (client, mut connection) = config
        .connect(tokio_postgres::NoTls)
        .await
        .map_err(|error| error.to_string())?;
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
    client
        .batch_execute(&format!("LISTEN {CHANNEL}"))
        .await
        .map_err(|error| error.to_string())?;
    generation.send_modify(|value| *value += 1);
    tracing::debug!("listening for metadata changes");
    let outcome = loop {
        tokio::select! {
            () = shutdown.cancelled() => break Ok(()),
            message = messages.recv() => match message {
                Some(Ok(AsyncMessage::Notification(_))) => {
                    generation.send_modify(|value| *value += 1);
                }
                Some(Ok(_)) => {}
                Some(Err(error)) => break Err(error.to_string()),
                None => break Err("the connection closed".to_owned()),
            }
        }
    };
    driver.abort();
    outcome
}
