//! One evaluating process among several: the holder of a session-level
//! Postgres advisory lock on a connection of its own. When that process
//! dies, Postgres ends its session and frees the lock; another process
//! takes it at its next tick.

use std::time::Duration;

use stoker_metadata::PostgresOptions;
use tokio::task::JoinHandle;

use crate::Result;

/// The advisory lock's key: `hashtext('stoker_analytics_leader')` would do
/// as well; a constant keeps it readable in `pg_locks`.
pub const LOCK_KEY: i64 = 0x5354_4f4b_4552_0001;

/// How long a leadership check may take before the leader steps down.
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

/// Takes the evaluation's leadership if no other process holds it.
pub async fn try_lead(options: &PostgresOptions) -> Result<Option<Leadership>> {
    try_lead_with(options, LOCK_KEY).await
}

/// Takes the leadership of advisory lock `key` if no other process holds it.
pub async fn try_lead_with(options: &PostgresOptions, key: i64) -> Result<Option<Leadership>> {
    let config = options.pg_config()?;
    let (client, connection) =
        tokio::time::timeout(CHECK_TIMEOUT, config.connect(tokio_postgres::NoTls))
            .await
            .map_err(|_| {
                crate::Error::Leader(format!("no connection within {CHECK_TIMEOUT:?}"))
            })??;
    let connection = tokio::spawn(async move {
        if let Err(error) = connection.await {
            tracing::debug!(%error, "analytics leader connection ended");
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
