//! Telemetry ingestion: MQTT (and, later, HTTP) payloads validated against
//! the sensor registry, written to InfluxDB in batches, acknowledged once
//! durable, and cached as latest values in Redis.
//!
//! Data flow inside the crate:
//!
//! ```text
//! broker ─▶ mqtt::Connection (reader half) ─queue, bounded in bytes─▶ writer::Writer
//!             parse + validate (payload, registry) ─▶ LineBatch ─▶ InfluxDB
//!             ─▶ acknowledge (mqtt::Connection, writer half) ─▶ latest values ─▶ Redis task
//! ```
//!
//! - `envelope`: what intake hands the writer (message, topic, ack handle,
//!   HTTP receipt), below `mqtt`, `queue` and `writer` alike.
//! - `payload`: the JSON shapes of DESIGN.md, and line protocol (the
//!   InfluxDB-compatible writes) mapped to the same readings.
//! - `registry`: sensors in memory, reloaded on every metadata change.
//! - `queue`: the hand-off from intake to the writer, bounded in bytes.
//! - `writer`: batching, validation, the durable write, then settling in
//!   the write → ack → cache order.
//! - `spool`: batches on disk while InfluxDB is down, and their replay.
//! - `late`: marks late batches for the rollup.
//! - `latest`: the Redis task for latest values.
//! - `journal`: counts and refusals, in Postgres.
//! - `mqtt`: connection, subscriptions, manual acknowledgements.
//! - `sparkplug`: the Sparkplug B host application (one ingest process
//!   leads it): its own connection and STATE, each message through
//!   `stoker-sparkplug`'s protocol core, readings into the same queue.
//!
//! ```no_run
//! # async fn example(pool: stoker_postgres::Pool, influx: stoker_timeseries::Influx, cache: stoker_cache::Cache) -> stoker_ingestion::Result<()> {
//! use stoker_ingestion::{IngestOptions, Ingestion};
//! use stoker_stores::Stores;
//! let shutdown = tokio_util::sync::CancellationToken::new();
//! let stores = Stores { pool, postgres: Default::default(), influx, cache };
//! let ingestion = Ingestion::start(&IngestOptions::default(), stores, shutdown.clone()).await?;
//! shutdown.cancel();
//! ingestion.wait().await;
//! # Ok(()) }
//! ```

mod envelope;
mod intake;
mod journal;
mod late;
mod latest;
mod metrics;
mod mqtt;
mod payload;
mod queue;
mod registry;
mod sparkplug;
mod spool;
mod stats;
mod writer;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use stoker_domain::parse_duration;
use stoker_stores::Stores;
use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

pub use envelope::{BodyRefusal, LineWrite, Receipt, Refused};
pub use intake::{Intake, IntakeError};
pub use journal::migrate;
pub use mqtt::{MqttOptions, client_options, client_options_tls, probe as probe_broker};
/// The payload parsers' invariants as one function, for the `payload`
/// fuzz target (`fuzz/`) and the test that replays its corpus. Not an API.
#[doc(hidden)]
pub use payload::fuzzing;
pub use sparkplug::{Groups as SparkplugGroups, SparkplugOptions};
pub use stats::StatsSnapshot;

use registry::SharedRegistry;
use stats::Stats;
use writer::{BatchLimits, Writer};

/// Why a reading (or a whole message) was refused. The names are stable:
/// they label metrics and the rejected-readings log.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Reason {
    /// The payload is larger than 256 KiB.
    PayloadTooLarge,
    /// Not JSON, or not one of the accepted shapes.
    MalformedJson,
    /// `ts` is neither epoch milliseconds nor RFC 3339.
    InvalidTimestamp,
    /// The topic is outside `sites/{site}/…`.
    InvalidTopic,
    /// The site is not registered.
    UnknownSite,
    /// The sensor is not registered at its site.
    UnknownSensor,
    /// The value is not a finite number.
    NonNumeric,
    /// The value is outside the sensor's valid range.
    OutOfRange,
    /// The timestamp is more than 5 minutes after the receive time.
    FutureTimestamp,
    /// The timestamp is older than InfluxDB keeps raw readings
    /// (`INFLUX_RAW_RETENTION`): InfluxDB would drop it.
    TooOld,
    /// The value is of another kind than the sensor's: a boolean for a
    /// numeric sensor, a number for a state sensor, … (a string for a
    /// numeric sensor stays `non_numeric`, as before kinds).
    WrongKind,
    /// A state sensor's reading names a state the sensor does not declare.
    UnknownState,
    /// A line of line protocol that does not parse, or that names no
    /// reading (a `sensor` tag without a `value` field, or no tag of the
    /// name `sensor_prefix_tag` gives).
    MalformedLine,
    /// A line of line protocol whose site the write's API key may not
    /// write (a key limited to other sites).
    ForbiddenSite,
}

impl Reason {
    /// Every reason, in the order of their discriminants.
    pub const ALL: [Reason; 14] = [
        Reason::PayloadTooLarge,
        Reason::MalformedJson,
        Reason::InvalidTimestamp,
        Reason::InvalidTopic,
        Reason::UnknownSite,
        Reason::UnknownSensor,
        Reason::NonNumeric,
        Reason::OutOfRange,
        Reason::FutureTimestamp,
        Reason::TooOld,
        Reason::WrongKind,
        Reason::UnknownState,
        Reason::MalformedLine,
        Reason::ForbiddenSite,
    ];

    /// The stable name of the reason.
    pub fn as_str(self) -> &'static str {
        match self {
            Reason::PayloadTooLarge => "payload_too_large",
            Reason::MalformedJson => "malformed_json",
            Reason::InvalidTimestamp => "invalid_timestamp",
            Reason::InvalidTopic => "invalid_topic",
            Reason::UnknownSite => "unknown_site",
            Reason::UnknownSensor => "unknown_sensor",
            Reason::NonNumeric => "non_numeric",
            Reason::OutOfRange => "out_of_range",
            Reason::FutureTimestamp => "future_timestamp",
            Reason::TooOld => "too_old",
            Reason::WrongKind => "wrong_kind",
            Reason::UnknownState => "unknown_state",
            Reason::MalformedLine => "malformed_line",
            Reason::ForbiddenSite => "forbidden_site",
        }
    }
}

/// What can stop ingestion from starting, or its schema from migrating.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// `MQTT_URL` is not a usable broker URL.
    #[error("MQTT_URL {url:?} is invalid: {reason}")]
    InvalidMqttUrl {
        /// The URL, password hidden.
        url: String,
        /// What is wrong.
        reason: String,
    },
    /// The spool directory cannot be used.
    #[error(transparent)]
    Spool(#[from] spool::SpoolError),
    /// Shutdown was requested before the registry could be loaded.
    #[error("stopped before the sensor registry could be loaded from Postgres")]
    Stopped,
    /// Postgres failed (the `ingestion` schema's migrations).
    #[error(transparent)]
    Postgres(#[from] stoker_postgres::Error),
}

/// Result with this crate's [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// How often ingestion logs what it did since the last report.
const PROGRESS_INTERVAL: Duration = Duration::from_secs(60);

/// Logs a line of counts every [`PROGRESS_INTERVAL`] in which anything
/// arrived, so an operator tailing the log sees readings flowing.
async fn report_progress(stats: Arc<Stats>, shutdown: CancellationToken) {
    let mut last = stats.snapshot();
    let mut ticker = tokio::time::interval(PROGRESS_INTERVAL);
    ticker.tick().await;
    loop {
        tokio::select! {
            () = shutdown.cancelled() => break,
            _ = ticker.tick() => {}
        }
        let now = stats.snapshot();
        if now.messages != last.messages {
            tracing::info!(
                messages = now.messages - last.messages,
                accepted = now.accepted - last.accepted,
                rejected = now.rejected_total() - last.rejected_total(),
                write_errors = now.write_errors - last.write_errors,
                interval_s = PROGRESS_INTERVAL.as_secs(),
                "ingestion progress"
            );
        }
        last = now;
    }
}

/// Batching settings.
#[derive(Debug, Clone, clap::Args)]
pub struct IngestOptions {
    #[command(flatten)]
    #[allow(missing_docs)]
    pub mqtt: MqttOptions,

    #[command(flatten)]
    #[allow(missing_docs)]
    pub sparkplug: SparkplugOptions,

    /// Most readings in one InfluxDB write.
    #[arg(
        id = "ingest_batch_size",
        long = "batch-size",
        env = "INGEST_BATCH_SIZE",
        default_value_t = 20_000
    )]
    pub batch_size: usize,

    /// Longest a reading waits for its batch to fill before it is written (and its message acknowledged).
    #[arg(id = "ingest_linger", long = "batch-linger", env = "INGEST_BATCH_LINGER", default_value = "100ms", value_parser = parse_duration)]
    pub linger: Duration,

    /// InfluxDB writes in flight at once; acknowledgements keep the order of receipt regardless.
    #[arg(
        id = "ingest_writes_in_flight",
        long = "writes-in-flight",
        env = "INGEST_WRITES_IN_FLIGHT",
        default_value_t = 4
    )]
    pub writes_in_flight: usize,

    /// Directory of the on-disk spool that holds batches while InfluxDB is down (one per process).
    #[arg(
        id = "ingest_spool_dir",
        long = "spool-dir",
        env = "INGEST_SPOOL_DIR",
        default_value = "spool"
    )]
    pub spool_dir: std::path::PathBuf,

    /// Rejected readings kept in Postgres (ingestion.rejected_readings); the oldest beyond it are pruned.
    #[arg(
        id = "ingest_keep_rejected",
        long = "keep-rejected",
        env = "INGEST_KEEP_REJECTED",
        default_value_t = 100_000
    )]
    pub keep_rejected: i64,

    /// Most megabytes the spool holds; when full, ingestion stops acknowledging (MQTT) and answers 503 (HTTP).
    #[arg(
        id = "ingest_spool_max_mb",
        long = "spool-max-mb",
        env = "INGEST_SPOOL_MAX_MB",
        default_value_t = 1024
    )]
    pub spool_max_mb: u64,

    /// Most megabytes of received messages waiting for the writer; when full, ingestion stops reading from the broker (which keeps the backlog) and answers 503 to HTTP. Bounds memory under overload.
    #[arg(
        id = "ingest_queue_max_mb",
        long = "queue-max-mb",
        env = "INGEST_QUEUE_MAX_MB",
        default_value_t = 8
    )]
    pub queue_max_mb: usize,
}

impl Default for IngestOptions {
    fn default() -> Self {
        Self {
            mqtt: MqttOptions::default(),
            sparkplug: SparkplugOptions::default(),
            batch_size: 20_000,
            linger: Duration::from_millis(100),
            writes_in_flight: 4,
            spool_dir: "spool".into(),
            spool_max_mb: 1024,
            queue_max_mb: 8,
            keep_rejected: 100_000,
        }
    }
}

/// A running ingestion.
#[derive(Debug)]
pub struct Ingestion {
    stats: Arc<Stats>,
    connected: Arc<AtomicBool>,
    intake: Intake,
    spool: Arc<spool::Spool>,
    queued: Arc<std::sync::atomic::AtomicUsize>,
    histograms: metrics::Histograms,
    sparkplug: Option<Arc<sparkplug::SparkplugStats>>,
    tasks: Vec<JoinHandle<()>>,
}

impl Ingestion {
    /// Loads the sensor registry (waiting for Postgres if needed), connects
    /// to the broker and starts ingesting. Runs until `shutdown`; then
    /// flushes, acknowledges and disconnects (see [`Ingestion::wait`]).
    pub async fn start(
        options: &IngestOptions,
        stores: Stores,
        shutdown: CancellationToken,
    ) -> Result<Self> {
        let connection = mqtt::Connection::new(&options.mqtt)?;
        Self::start_with(options, stores, shutdown, Some(connection)).await
    }

    /// Starts ingestion for HTTP alone (the `api` role): the same writer,
    /// spool and journal, no broker connection.
    pub async fn start_without_mqtt(
        options: &IngestOptions,
        stores: Stores,
        shutdown: CancellationToken,
    ) -> Result<Self> {
        Self::start_with(options, stores, shutdown, None).await
    }

    async fn start_with(
        options: &IngestOptions,
        stores: Stores,
        shutdown: CancellationToken,
        connection: Option<mqtt::Connection>,
    ) -> Result<Self> {
        let spool = Arc::new(spool::Spool::open(
            &options.spool_dir,
            options.spool_max_mb.saturating_mul(1024 * 1024),
        )?);
        let (segments, bytes) = spool.depth();
        if segments > 0 {
            tracing::info!(segments, bytes, directory = %options.spool_dir.display(), "the spool holds batches from an earlier run; replaying them");
        }
        let replay = Arc::new(tokio::sync::Notify::new());
        let spool_handle = Arc::clone(&spool);
        let histograms = metrics::Histograms::default();
        let registry = Arc::new(SharedRegistry::default());
        if !registry.load_initial(&stores.pool, &shutdown).await {
            return Err(Error::Stopped);
        }
        let stats = Arc::new(Stats::default());
        let connected = connection.as_ref().map_or_else(
            || Arc::new(AtomicBool::new(true)),
            |connection| Arc::clone(&connection.connected),
        );
        let (envelopes_tx, envelopes_rx, queued) =
            queue::queue(options.queue_max_mb.saturating_mul(1024 * 1024));
        let (latest_tx, latest_rx) = mpsc::channel(64);
        let (journal_tx, journal_rx) = mpsc::channel(64);
        let writer = Writer {
            registry: Arc::clone(&registry),
            pool: stores.pool.clone(),
            influx: stores.influx.clone(),
            spool: Arc::clone(&spool),
            replay: Arc::clone(&replay),
            histograms: histograms.clone(),
            stats: Arc::clone(&stats),
            acker: connection.as_ref().map(mqtt::Connection::acker),
            latest: latest_tx,
            journal: journal_tx,
            limits: BatchLimits {
                max_points: options.batch_size.max(1),
                linger: options.linger,
                writes_in_flight: options.writes_in_flight.max(1),
            },
            shutdown: shutdown.clone(),
        };
        let intake = Intake {
            envelopes: envelopes_tx.clone(),
            stats: Arc::clone(&stats),
            registry: Arc::clone(&registry),
        };
        // The Sparkplug host needs a broker: not in the `api` role.
        let sparkplug = if connection.is_some() {
            sparkplug::host(options, &stores, &envelopes_tx, &stats)?
        } else {
            None
        };
        let sparkplug_stats = sparkplug.as_ref().map(|host| Arc::clone(&host.stats));
        let mut tasks = vec![
            tokio::spawn(Arc::clone(&registry).follow_changes(
                stores.pool.clone(),
                stores.postgres,
                shutdown.clone(),
            )),
            tokio::spawn(writer.run(envelopes_rx)),
            tokio::spawn(journal::run(
                stores.pool,
                options.keep_rejected,
                Arc::clone(&stats),
                journal_rx,
            )),
            tokio::spawn(latest::run_latest_updates(
                stores.cache,
                Arc::clone(&stats),
                latest_rx,
            )),
            tokio::spawn(spool::run_replay(
                spool,
                stores.influx,
                replay,
                Arc::clone(&stats),
                shutdown.clone(),
            )),
            tokio::spawn(report_progress(Arc::clone(&stats), shutdown.clone())),
        ];
        if let Some(host) = sparkplug {
            tasks.push(tokio::spawn(sparkplug::run(host, shutdown.clone())));
        }
        if let Some(connection) = connection {
            tasks.push(tokio::spawn(connection.run(envelopes_tx, shutdown)));
        }
        Ok(Self {
            stats,
            connected,
            intake,
            spool: spool_handle,
            queued,
            histograms,
            sparkplug: sparkplug_stats,
            tasks,
        })
    }

    /// Adds ingestion's metrics to a Prometheus registry.
    pub fn register_metrics(&self, registry: &mut prometheus_client::registry::Registry) {
        metrics::register(
            registry,
            metrics::Sources {
                stats: &self.stats,
                spool: &self.spool,
                connected: &self.connected,
                queued: &self.queued,
                histograms: &self.histograms,
            },
        );
        if let Some(stats) = &self.sparkplug {
            sparkplug::register(registry, stats);
        }
    }

    /// The handle HTTP submits payloads through.
    pub fn intake(&self) -> Intake {
        self.intake.clone()
    }

    /// The counters so far.
    pub fn stats(&self) -> StatsSnapshot {
        self.stats.snapshot()
    }

    /// Messages received and waiting for the writer.
    pub fn queued_messages(&self) -> usize {
        self.queued.load(Ordering::Acquire)
    }

    /// Whether the broker connection is up and subscribed.
    pub fn is_connected(&self) -> bool {
        self.connected.load(Ordering::Acquire)
    }

    /// A probe that says whether the broker connection is up and
    /// subscribed, for readiness reports.
    pub fn readiness_probe(&self) -> impl Fn() -> bool + Send + Sync + 'static {
        let connected = Arc::clone(&self.connected);
        move || connected.load(Ordering::Acquire)
    }

    /// Waits until every task has finished after shutdown: the last batch
    /// written and acknowledged, the broker session closed.
    pub async fn wait(self) {
        for task in self.tasks {
            if let Err(error) = task.await {
                tracing::error!(%error, "an ingestion task failed");
            }
        }
    }
}
