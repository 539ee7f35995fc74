//! The Postgres plumbing every schema shares: how to reach Postgres, the
//! one connection pool a process holds, the migration runner, the LISTEN
//! change feed, the advisory-lock leadership, and the one error all of
//! them raise. It knows no schema: `stoker-metadata`, analytics' `store`
//! and `notify` and ingestion's `journal` own their tables and wrap
//! [`Error`] in their own error enums (`#[from]`).
//!
//! Layout:
//! - `options`: [`PostgresOptions`] (`DATABASE_URL` or `POSTGRES_*`),
//!   [`connect`], which builds the pool, and [`PgConnector`], through
//!   which every connection (pooled or of its own) is opened.
//! - `tls`: TLS as libpq's `sslmode` and `sslrootcert` say ([`PgTls`],
//!   tokio-postgres' TLS on `stoker-tls`).
//! - `migrations`: [`run_schema_migrations`], one history table per schema
//!   (`{schema}.schema_history`), under an advisory lock.
//! - `listen`: [`Listener`], a LISTEN connection of its own that reports
//!   every notification of one channel, and reconnects with backoff.
//! - `leader`: [`try_lead`], a session-level advisory lock on a connection
//!   of its own: one process among several leads until it dies.
//!
//! ```no_run
//! # async fn example() -> stoker_postgres::Result<()> {
//! use stoker_postgres::PostgresOptions;
//! let pool = stoker_postgres::connect(&PostgresOptions::default())?;
//! let client = pool.get().await?;
//! client.execute("SELECT 1", &[]).await?;
//! # Ok(()) }
//! ```

#![warn(missing_docs)]

mod leader;
mod listen;
mod migrations;
mod options;
mod tls;

pub use deadpool_postgres::Pool;
pub use leader::{Leadership, try_lead};
pub use listen::{Listener, Lost, Notice};
pub use migrations::run_schema_migrations;
pub use options::{PgConnection, PgConnector, PostgresOptions, connect};
pub use tls::{PgTls, PgTlsStream, SslMode};

/// For a schema crate's error that wraps this crate's as
/// `Postgres(#[from] stoker_postgres::Error)`: takes the driver's and the
/// pool's errors too, so `?` works on both. One home for the two impls
/// every schema crate needs.
#[macro_export]
macro_rules! wraps_postgres_errors {
    ($error:ty) => {
        impl From<$crate::__driver::Error> for $error {
            fn from(error: $crate::__driver::Error) -> Self {
                Self::Postgres(error.into())
            }
        }

        impl From<$crate::__pool::PoolError> for $error {
            fn from(error: $crate::__pool::PoolError) -> Self {
                Self::Postgres(error.into())
            }
        }
    };
}

#[doc(hidden)]
pub use deadpool_postgres as __pool;
#[doc(hidden)]
pub use tokio_postgres as __driver;

/// What can go wrong with Postgres itself, whichever schema is queried.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The Postgres settings do not form a valid connection.
    #[error("Postgres settings are invalid ({variable}): {reason}")]
    Config {
        /// The variable to fix.
        variable: &'static str,
        /// What is wrong.
        reason: String,
    },
    /// No connection could be had from the pool: Postgres is down or
    /// unreachable, or every connection is busy.
    #[error("Postgres is unavailable: {0}")]
    Unavailable(#[from] deadpool_postgres::PoolError),
    /// A connection of its own (outside the pool) was not made in time.
    #[error("no connection within {0:?}")]
    ConnectTimeout(std::time::Duration),
    /// A query failed.
    #[error("Postgres query failed: {0}")]
    Query(#[from] tokio_postgres::Error),
    /// Applying a migration failed.
    #[error("migration of schema {schema} failed: {source}")]
    Migration {
        /// The schema being migrated.
        schema: String,
        /// Refinery's error.
        #[source]
        source: refinery::Error,
    },
}

impl Error {
    /// Whether Postgres itself is unreachable (as opposed to a refused request).
    pub fn is_unavailable(&self) -> bool {
        match self {
            Error::Unavailable(_) | Error::ConnectTimeout(_) => true,
            Error::Query(error) => error.is_closed() || error.as_db_error().is_none(),
            _ => false,
        }
    }
}

pub use stoker_domain::error_chain;

/// Result with this crate's [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Whether a query failed on a unique constraint.
pub fn is_unique_violation(error: &tokio_postgres::Error) -> bool {
    error.code() == Some(&tokio_postgres::error::SqlState::UNIQUE_VIOLATION)
}

/// Whether a query failed on a foreign key (a referenced row vanished, or a
/// referencing row appeared, concurrently).
pub fn is_foreign_key_violation(error: &tokio_postgres::Error) -> bool {
    error.code() == Some(&tokio_postgres::error::SqlState::FOREIGN_KEY_VIOLATION)
}
