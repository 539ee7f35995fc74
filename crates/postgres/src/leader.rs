//! One process among several: the holder of a session-level Postgres
//! advisory lock on a connection of its own. When that process dies,
//! Postgres ends its session and frees the lock; another process takes it
//! at its next try. Analytics' evaluation loop and its rollup job each
//! lead through a lock of their own.

use std::time::Duration;

use tokio::task::JoinHandle;

use crate::{Error, PostgresOptions, Result};

/// How long taking or checking the leadership may take before it counts
/// as failed (a leader then steps down).
const CHECK_TIMEOUT: Duration = Duration::from_secs(5);

/// The lock, held while this value lives (dropping it closes the session).
#[derive(Debug)]
pub struct Leadership {
    client: tokio_postgres::Client,
    connection: JoinHandle<()>,
}

impl Drop for Leadership {
    fn drop(&mut self) {
        self.connection.abort();
    }
}

/// Takes the leadership of advisory lock `key` if no other process holds
/// it: `Ok(None)` when another does. The key is a constant of the caller
/// (readable in `pg_locks`), one per job that must run once.
pub async fn try_lead(options: &PostgresOptions, key: i64) -> Result<Option<Leadership>> {
    let connector = options.connector()?;
    let (client, connection) = tokio::time::timeout(CHECK_TIMEOUT, connector.connect())
        .await
        .map_err(|_| Error::ConnectTimeout(CHECK_TIMEOUT))??;
    let connection = tokio::spawn(async move {
        if let Err(error) = connection.await {
            tracing::debug!(%error, key, "leader connection ended");
        }
    });
    let row = client
        .query_one("SELECT pg_try_advisory_lock($1)", &[&key])
        .await?;
    let held: bool = row.try_get(0)?;
    let leadership = Leadership { client, connection };
    Ok(held.then_some(leadership))
}

impl Leadership {
    /// Whether the lock is still held: its session answers.
    pub async fn holds(&self) -> bool {
        if self.client.is_closed() {
            return false;
        }
        matches!(
            tokio::time::timeout(CHECK_TIMEOUT, self.client.simple_query("SELECT 1")).await,
            Ok(Ok(_))
        )
    }
}
