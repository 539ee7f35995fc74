//! Alert rules evaluated on the InfluxDB history.
//!
//! Layout:
//! - `engine`: how a rule judges one sensor at one tick (pure; shared by
//!   the live loop and the backtest).
//! - `evaluate`: rules applied to the sensors they select, grouped by plan
//!   (one query per group and tick), stepped tick by tick; the backtest.
//! - `kpi`: measured alarm performance (alarms per hour, peak, floods,
//!   chattering, stale, bad actors, time to acknowledge) of a list of
//!   activations (the backtest's) or of the recorded alerts (SQL).
//! - `live`: the evaluation loop (interval, grace, takeover, Redis mirror);
//!   one process evaluates, the holder of a Postgres advisory lock
//!   (`stoker_postgres::try_lead`).
//! - `store`: alerts and their append-only event trail in Postgres; each
//!   transition queues its notifications in the same transaction.
//! - `notify`: the notification outbox (`analytics.notifications`): each
//!   alert transition is announced on MQTT `alerts/{site}` and POSTed,
//!   signed, to the configured webhooks, with retries and a bound.
//! - `rollup`: the job that keeps InfluxDB's 1-minute rollup
//!   (`readings_1m`) up to date, led by one process like the evaluation.

pub mod engine;
pub mod evaluate;
pub mod kpi;
pub mod live;
pub mod notify;
pub mod rollup;
pub mod store;

use stoker_postgres::Pool;

mod embedded {
    refinery::embed_migrations!("../../migrations/analytics");
}

/// Applies the `analytics` schema's migrations. Re-running is a no-op.
pub async fn migrate(pool: &Pool) -> Result<()> {
    stoker_postgres::run_schema_migrations(pool, "analytics", embedded::migrations::runner())
        .await?;
    Ok(())
}

/// What can go wrong in analytics.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// Postgres is unavailable, or a query failed.
    #[error(transparent)]
    Postgres(#[from] stoker_postgres::Error),
    /// Metadata (rules, sensors) could not be read.
    #[error(transparent)]
    Metadata(#[from] stoker_metadata::Error),
    /// InfluxDB could not answer.
    #[error(transparent)]
    Influx(#[from] stoker_timeseries::Error),
    /// No alert has this id.
    #[error("alert {0} does not exist")]
    AlertNotFound(uuid::Uuid),
    /// The alert's state does not allow the change asked for.
    #[error("alert {id} is {state}: it cannot be {action}")]
    InvalidTransition {
        /// The alert.
        id: uuid::Uuid,
        /// Its current state.
        state: store::AlertState,
        /// What was asked (`acknowledged`, `resolved`, `reset`, `shelved`).
        action: &'static str,
    },
    /// A reset asked of an alert that is not latched: its condition still
    /// holds, or its rule does not latch.
    #[error(
        "alert {0} is not latched: only an alert of a latching rule whose condition has cleared can be reset"
    )]
    NotLatched(uuid::Uuid),
    /// An unshelve asked of an alert that is not shelved.
    #[error("alert {0} is not shelved")]
    NotShelved(uuid::Uuid),
    /// A shelf longer than the alert's rule allows.
    #[error(
        "alert {id} may be shelved for at most {} (its rule's max_shelve), not {}",
        humantime::format_duration(*max),
        humantime::format_duration(*requested)
    )]
    ShelveTooLong {
        /// The alert.
        id: uuid::Uuid,
        /// How long was asked.
        requested: std::time::Duration,
        /// The rule's `max_shelve`.
        max: std::time::Duration,
    },
    /// A shelf without a reason, or of no length.
    #[error("{message}")]
    InvalidShelve {
        /// The field at fault (`for`, `reason`).
        field: &'static str,
        /// What is wrong.
        message: String,
    },
    /// A stored row holds a value Stoker does not write.
    #[error("stored {what} is invalid: {reason}")]
    InvalidRow {
        /// The kind of value.
        what: &'static str,
        /// Why it was refused.
        reason: String,
    },
    /// The notification outbox refused the event.
    #[error("notification outbox: {0}")]
    Notify(#[from] notify::Error),
    /// A time outside what InfluxDB stores.
    #[error("time out of range: {0}")]
    InvalidRange(String),
    /// A backtest would read too much.
    #[error("{0}")]
    TooLarge(String),
    /// An event could not be written as JSON.
    #[error("alert event cannot be encoded: {0}")]
    Encode(String),
}

/// Analytics' results.
pub type Result<T, E = Error> = std::result::Result<T, E>;

stoker_postgres::wraps_postgres_errors!(Error);
