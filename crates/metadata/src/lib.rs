//! Sites, sensors (and, later, alert rules and API keys) in Postgres, schema
//! `metadata`: the source of truth for what exists.
//!
//! Layout:
//! - `options`: [`PostgresOptions`] (`DATABASE_URL` or `POSTGRES_*`) and
//!   [`connect`], which builds the one connection pool a process shares.
//! - `migrations`: [`migrate`] for this crate's schema and
//!   [`run_schema_migrations`], the runner every crate uses for its own
//!   schema (a history table per schema, under an advisory lock).
//! - `sites`, `sensors`: repository functions; all SQL lives there.
//! - `changes`: [`watch_changes`], a LISTEN on `stoker_metadata` so that
//!   in-memory copies of the registry refresh as soon as it changes.
//!
//! ```no_run
//! # async fn example() -> stoker_metadata::Result<()> {
//! use stoker_metadata::{NewSite, PostgresOptions};
//! let pool = stoker_metadata::connect(&PostgresOptions::default())?;
//! stoker_metadata::migrate(&pool).await?;
//! let site = NewSite::parse("boiler-house-1", "Boiler house 1", "Europe/Berlin").unwrap();
//! stoker_metadata::create_site(&pool, &site).await?;
//! # Ok(()) }
//! ```

mod changes;
mod migrations;
mod options;
mod sensors;
mod sites;

pub use changes::watch_changes;
pub use deadpool_postgres::Pool;
pub use migrations::{migrate, run_schema_migrations};
pub use options::{PostgresOptions, connect};
pub use sensors::{NewSensor, RegistryEntry, Sensor, create_sensor, list_sensors, registry};
pub use sites::{NewSite, Site, create_site, get_site, list_sites};

use stoker_domain::{SensorKey, SiteSlug};

/// What can go wrong with metadata.
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
    /// A row holds a value the domain types refuse (written outside Stoker).
    #[error("stored {what} is invalid: {reason}")]
    InvalidRow {
        /// The kind of value.
        what: &'static str,
        /// Why it was refused.
        reason: String,
    },
    /// No site has this slug.
    #[error("site {0} does not exist")]
    SiteNotFound(SiteSlug),
    /// A site with this slug exists already.
    #[error("site {0} already exists")]
    SiteExists(SiteSlug),
    /// The site has a sensor with this key already.
    #[error("sensor {sensor} already exists at site {site}")]
    SensorExists {
        /// The site.
        site: SiteSlug,
        /// The sensor's key.
        sensor: SensorKey,
    },
    /// The timezone is not an IANA name Postgres knows.
    #[error("timezone {0:?} is unknown: use an IANA name such as Europe/Berlin or UTC")]
    UnknownTimezone(String),
}

impl Error {
    /// Whether Postgres itself is unreachable (as opposed to a refused request).
    pub fn is_unavailable(&self) -> bool {
        match self {
            Error::Unavailable(_) => true,
            Error::Query(error) => error.is_closed() || error.as_db_error().is_none(),
            _ => false,
        }
    }
}

/// Result with this crate's [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Whether a query failed on a unique constraint.
fn is_unique_violation(error: &tokio_postgres::Error) -> bool {
    error.code() == Some(&tokio_postgres::error::SqlState::UNIQUE_VIOLATION)
}
