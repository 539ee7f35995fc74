//! The stores a Stoker process works with, as one value: built once at
//! start (the `stoker` binary connects, migrates and sets them up) and
//! shared by every role the process runs (ingestion, analytics), each
//! taking a clone. Every handle is cheap to clone and shares its
//! connections.
//!
//! A crate of its own because both role crates and the binary need it,
//! and none of the store crates may know the others.
//!
//! ```no_run
//! # async fn example() -> Result<(), Box<dyn std::error::Error>> {
//! use stoker_postgres::PostgresOptions;
//! use stoker_stores::Stores;
//! let postgres = PostgresOptions::default();
//! let stores = Stores {
//!     pool: stoker_postgres::connect(&postgres)?,
//!     postgres,
//!     influx: stoker_timeseries::Influx::connect(&Default::default()).await?,
//!     cache: stoker_cache::Cache::connect(&Default::default())?,
//! };
//! # drop(stores);
//! # Ok(()) }
//! ```

#![warn(missing_docs)]

use stoker_cache::Cache;
use stoker_postgres::{Pool, PostgresOptions};
use stoker_timeseries::Influx;

/// Postgres, InfluxDB and Redis, as a process's roles read and write them.
#[derive(Debug, Clone)]
pub struct Stores {
    /// Postgres pool (sensor registry, rules, alerts, journal).
    pub pool: Pool,
    /// Postgres settings, for the connections outside the pool: LISTEN
    /// connections and the advisory locks of leadership.
    pub postgres: PostgresOptions,
    /// InfluxDB (readings).
    pub influx: Influx,
    /// Redis (latest values, alert state mirror, dashboards to drop).
    pub cache: Cache,
}
