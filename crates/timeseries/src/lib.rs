//! InfluxDB access for Stoker: the only crate that builds line protocol or
//! InfluxQL.
//!
//! Layout:
//! - `options`: the `INFLUX_*` settings.
//! - `client`: [`Influx`], a connection that detects the server's version
//!   from `/ping` and writes through `/write` (1.x) or `/api/v2/write`
//!   (2.x/3.x), both with the same HTTP client; reads are InfluxQL through
//!   `/query`, which every version answers.
//! - [`line`](mod@line): the one line-protocol encoder (every line Stoker
//!   writes, escaping in one place), [`LineBatch`] for readings and
//!   [`encode_point`] for points whose tag values may be any text (fuzzed
//!   against InfluxData's parser: `fuzz/`).
//! - `influxql`: escaping and the typed queries Stoker runs.
//! - `states`: state sensors' readings by name ([`Influx::state_names`]).
//! - `rollup`: the data lifecycle: retention setup (`rollup::setup`), the
//!   1-minute rollup `readings_1m` with its progress and late marks, and
//!   history reads over it (`rollup::history`).
//!
//! Layout in InfluxDB (DESIGN.md): measurement `readings`, tags `site`,
//! `sensor`, `type`, field `value` (a float: a boolean as 0/1, a state as
//! its index in the sensor's states, whose name is string field `state`),
//! millisecond timestamps. A point is
//! identified by measurement, tags and timestamp, so writing a batch twice
//! stores it once.
//!
//! ```no_run
//! # async fn example() -> stoker_timeseries::Result<()> {
//! use stoker_domain::{EpochMillis, SensorKey, SensorType, SiteSlug};
//! use stoker_timeseries::{Influx, InfluxOptions, LineBatch};
//!
//! let influx = Influx::connect(&InfluxOptions::default()).await?;
//! let mut batch = LineBatch::default();
//! batch.push(
//!     &SiteSlug::parse("boiler-house-1").unwrap(),
//!     &SensorKey::parse("b1_flue_temp").unwrap(),
//!     &SensorType::parse("temperature").unwrap(),
//!     181.2,
//!     EpochMillis::now(),
//! );
//! influx.write(&batch).await?;
//! # Ok(()) }
//! ```

mod client;
mod influxql;
pub mod line;
mod options;
pub mod rollup;
mod states;

pub use client::{BucketStats, Flavor, Influx, LatestPoint, SeriesBuckets};
pub use influxql::{Aggregate, Columns, SeriesFilter, SeriesMatch};
pub use line::{LineBatch, LineError, check_tag_value, encode_point};
pub use options::{DEFAULT_RAW_RETENTION, DEFAULT_ROLLUP_RETENTION, InfluxOptions, read_ca_file};

/// What can go wrong talking to InfluxDB.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// `INFLUX_URL` is not an http(s) URL.
    #[error("INFLUX_URL {url:?} is invalid: {reason}")]
    InvalidUrl {
        /// The configured URL.
        url: String,
        /// What is wrong with it.
        reason: String,
    },
    /// No answer: connection refused, reset or timed out.
    #[error("InfluxDB at {url} is unreachable: {source}")]
    Unreachable {
        /// The URL that was tried.
        url: String,
        /// The transport error.
        #[source]
        source: reqwest::Error,
    },
    /// Something answered `/ping` but it is not InfluxDB.
    #[error(
        "{url} answered /ping without an X-Influxdb-Version header: is INFLUX_URL an InfluxDB?"
    )]
    NotInflux {
        /// The URL that was tried.
        url: String,
    },
    /// InfluxDB refused the request (4xx): sending it again will not help.
    #[error("InfluxDB refused the request ({status}): {message}")]
    Rejected {
        /// The HTTP status.
        status: u16,
        /// InfluxDB's explanation.
        message: String,
    },
    /// InfluxDB failed the request (5xx or a broken connection): it may
    /// succeed later.
    #[error("InfluxDB is unavailable ({status:?}): {message}")]
    Unavailable {
        /// The HTTP status, when there was an answer.
        status: Option<u16>,
        /// What happened.
        message: String,
    },
    /// A query ran and InfluxDB reported an error for it.
    #[error("InfluxQL query failed: {message}")]
    Query {
        /// InfluxDB's message.
        message: String,
    },
    /// The answer was not the JSON InfluxDB sends.
    #[error("unexpected answer from InfluxDB: {0}")]
    Decode(String),
}

impl Error {
    /// Whether trying again later may succeed (the server is down or
    /// overloaded), as opposed to a request it will never accept.
    pub fn is_transient(&self) -> bool {
        matches!(self, Error::Unreachable { .. } | Error::Unavailable { .. })
    }
}

/// Result with this crate's [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;
