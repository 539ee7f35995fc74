//! The writer: validates readings against the registry, batches them,
//! writes each batch to InfluxDB, then acknowledges its messages, then
//! updates the latest values in Redis.
//!
//! The order is the delivery guarantee: a message is acknowledged only once
//! every accepted reading in it is durable in InfluxDB. Redis comes last
//! and off the critical path: it is only a cache.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use bytes::Bytes;
use futures::StreamExt;
use futures::future::BoxFuture;
use futures::stream::FuturesOrdered;
use stoker_cache::{Cache, LatestValue};
use stoker_domain::EpochMillis;
use stoker_postgres::Pool;
use stoker_timeseries::{Influx, LineBatch};
use tokio::sync::{Notify, mpsc, oneshot};
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use crate::Reason;
use crate::journal::{self, Entries, Rejection, Source};
use crate::metrics::Histograms;
use crate::mqtt::{Acker, PendingAck};
use crate::payload::{self, RawReading, Refusal};
use crate::queue::QueueReceiver;
use crate::registry::{SensorEntry, SharedRegistry};
use crate::spool::{Spool, SpoolError};
use crate::stats::Stats;

/// Readings may be at most this far ahead of the receive time (DESIGN.md).
const MAX_FUTURE_MILLIS: i64 = 5 * 60 * 1000;

/// How long a shutdown waits for InfluxDB to take the last batch before it
/// gives up; those messages stay unacknowledged and the broker redelivers.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(10);

/// Which topic (or route) a message came in on.
#[derive(Debug, Clone)]
pub(crate) enum Target {
    /// `sites/{site}/telemetry`.
    Telemetry { site: String },
    /// `sites/{site}/sensors/{sensor}`.
    Sensor { site: String, sensor: String },
    /// A topic outside the layout.
    Unknown { topic: String },
}

/// One message on its way to storage.
#[derive(Debug)]
pub(crate) struct Envelope {
    pub source: Source,
    pub target: Target,
    pub payload: Bytes,
    pub received: EpochMillis,
    /// Set for QoS 1 messages: acknowledged once durable.
    pub ack: Option<PendingAck>,
    /// Set for HTTP requests: answered once durable.
    pub reply: Option<oneshot::Sender<Receipt>>,
    /// Set when an HTTP body was refused unread for its declared length.
    pub oversized: Option<u64>,
}

/// What became of one message, for the HTTP answer.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Receipt {
    /// Readings stored.
    pub accepted: usize,
    /// Readings (or the whole message) refused.
    pub refused: Vec<Refused>,
    /// Whether the message as a whole was refused (malformed, unknown site…).
    pub message_refused: bool,
}

/// One refusal in a [`Receipt`].
#[derive(Debug, Clone, PartialEq)]
pub struct Refused {
    /// The sensor as named, when the refusal is about one reading.
    pub sensor: Option<String>,
    /// Why.
    pub reason: Reason,
    /// A precise explanation.
    pub detail: String,
}

/// Batch size and linger.
#[derive(Debug, Clone, Copy)]
pub(crate) struct BatchLimits {
    pub max_points: usize,
    pub linger: Duration,
    /// InfluxDB writes in flight at once (at least 1).
    pub writes_in_flight: usize,
}

/// Latest value per sensor within one batch: the newest reading wins.
type LatestBySensor = HashMap<u64, (Arc<SensorEntry>, f64, EpochMillis)>;

pub(crate) struct Writer {
    pub registry: Arc<SharedRegistry>,
    /// Postgres, to reload the registry when a message names a sensor it
    /// does not know yet.
    pub pool: Pool,
    pub influx: Influx,
    pub spool: Arc<Spool>,
    pub replay: Arc<Notify>,
    pub histograms: Histograms,
    pub stats: Arc<Stats>,
    /// The broker connection's acknowledgements; none without MQTT.
    pub acker: Option<Acker>,
    pub latest: mpsc::Sender<Vec<(Arc<SensorEntry>, f64, EpochMillis)>>,
    pub journal: mpsc::Sender<Entries>,
    pub limits: BatchLimits,
    pub shutdown: CancellationToken,
}

/// A batch on its way to InfluxDB, with everything that waits on it.
struct Batch {
    lines: LineBatch,
    acks: Vec<PendingAck>,
    replies: Vec<(oneshot::Sender<Receipt>, Receipt)>,
    latest: LatestBySensor,
    journal: Entries,
    oldest: Option<std::time::Instant>,
}

impl Batch {
    fn is_empty(&self) -> bool {
        self.lines.is_empty()
            && self.acks.is_empty()
            && self.replies.is_empty()
            && self.journal.is_empty()
    }
}

/// What is waiting for the next flush.
struct Pending {
    lines: LineBatch,
    acks: Vec<PendingAck>,
    /// HTTP callers waiting for their readings to be durable.
    replies: Vec<(oneshot::Sender<Receipt>, Receipt)>,
    latest: LatestBySensor,
    journal: Entries,
    log: RejectionLog,
    deadline: Option<Instant>,
    /// When the batch's oldest message arrived (for the lag histogram).
    oldest: Option<std::time::Instant>,
}

/// At most one log line per rejection reason every [`LOG_EVERY`], with the
/// number of further rejections it stands for: a sensor gone mad must not
/// flood the log (every rejection is still counted and recorded).
#[derive(Debug, Default)]
struct RejectionLog {
    last: [Option<Instant>; Reason::ALL.len()],
    suppressed: [u64; Reason::ALL.len()],
}

const LOG_EVERY: Duration = Duration::from_secs(10);

impl RejectionLog {
    /// Whether to log this one; if so, how many were suppressed before it.
    fn admit(&mut self, reason: Reason) -> Option<u64> {
        let index = reason as usize;
        let now = Instant::now();
        match self.last[index] {
            Some(last) if now.duration_since(last) < LOG_EVERY => {
                self.suppressed[index] += 1;
                None
            }
            _ => {
                self.last[index] = Some(now);
                Some(std::mem::take(&mut self.suppressed[index]))
            }
        }
    }
}

impl Writer {
    /// Runs until `shutdown`, then drains what was received, writes it,
    /// settles every batch and disconnects from the broker.
    pub async fn run(self, mut envelopes: QueueReceiver) {
        let mut pending = Pending {
            lines: LineBatch::with_capacity(self.limits.max_points),
            acks: Vec::new(),
            replies: Vec::new(),
            latest: HashMap::new(),
            journal: Entries::default(),
            log: RejectionLog::default(),
            deadline: None,
            oldest: None,
        };
        // Writes in flight, settled in the order they were dispatched so
        // that acknowledgements keep the order of receipt.
        let mut in_flight: FuturesOrdered<BoxFuture<'_, (Batch, bool)>> = FuturesOrdered::new();
        let mut journal_backlog = Entries::default();
        loop {
            let deadline = pending.deadline;
            tokio::select! {
                biased;
                () = self.shutdown.cancelled() => break,
                Some((batch, durable)) = in_flight.next(), if !in_flight.is_empty() => {
                    self.settle(batch, durable, &mut journal_backlog).await;
                }
                () = sleep_until(deadline) => {
                    self.dispatch(&mut pending, &mut in_flight, &mut journal_backlog).await;
                }
                envelope = envelopes.recv() => match envelope {
                    Some(envelope) => {
                        self.accept(envelope, &mut pending).await;
                        if pending.lines.len() >= self.limits.max_points {
                            self.dispatch(&mut pending, &mut in_flight, &mut journal_backlog).await;
                        }
                    }
                    None => break,
                },
            }
        }
        // Stop intake, take what is already here, write, settle everything.
        envelopes.close();
        while let Some(envelope) = envelopes.try_recv() {
            self.accept(envelope, &mut pending).await;
        }
        self.dispatch(&mut pending, &mut in_flight, &mut journal_backlog)
            .await;
        while let Some((batch, durable)) = in_flight.next().await {
            self.settle(batch, durable, &mut journal_backlog).await;
        }
        if !journal_backlog.is_empty() {
            let _ = self.journal.send(journal_backlog).await;
        }
        if let Some(acker) = &self.acker {
            acker.disconnect();
        }
    }

    /// Hands the pending batch to a write, waiting for the oldest write in
    /// flight first when the limit is reached.
    async fn dispatch<'a>(
        &'a self,
        pending: &mut Pending,
        in_flight: &mut FuturesOrdered<BoxFuture<'a, (Batch, bool)>>,
        journal_backlog: &mut Entries,
    ) {
        pending.deadline = None;
        let batch = pending.take_batch(self.limits.max_points);
        if batch.is_empty() {
            return;
        }
        while in_flight.len() >= self.limits.writes_in_flight {
            if let Some((done, durable)) = in_flight.next().await {
                self.settle(done, durable, journal_backlog).await;
            }
        }
        in_flight.push_back(Box::pin(async move {
            let durable = batch.lines.is_empty() || self.write_durably(&batch.lines).await;
            (batch, durable)
        }));
    }

    /// Validates one message into the pending batch.
    async fn accept(&self, envelope: Envelope, pending: &mut Pending) {
        self.stats.messages.fetch_add(1, Ordering::Relaxed);
        // Whatever the message brings (readings, or only a settlement for a
        // refused one), it is settled by the next flush.
        pending
            .deadline
            .get_or_insert_with(|| Instant::now() + self.limits.linger);
        pending.oldest.get_or_insert_with(std::time::Instant::now);
        let mut receipt = Receipt::default();
        let readings = match &envelope.target {
            Target::Telemetry { site } => match envelope.oversized {
                Some(length) => Err(Refusal::new(
                    Reason::PayloadTooLarge,
                    format!(
                        "payload is {length} bytes; the limit is {}",
                        payload::MAX_PAYLOAD_BYTES
                    ),
                )),
                None => payload::parse_telemetry(&envelope.payload)
                    .map(|readings| (site.as_str(), readings)),
            },
            Target::Sensor { site, sensor } => {
                payload::parse_sensor_value(&envelope.payload, sensor)
                    .map(|reading| (site.as_str(), vec![reading]))
            }
            Target::Unknown { topic } => Err(Refusal::new(
                Reason::InvalidTopic,
                format!(
                    "topic {topic:?} is not sites/{{site}}/telemetry or sites/{{site}}/sensors/{{sensor}}"
                ),
            )),
        };
        let site_named = envelope.target.site();
        match readings {
            Err(refusal) => {
                self.refuse_message(&envelope, site_named, refusal, 1, &mut receipt, pending)
            }
            Ok((site, readings)) => {
                let mut registry = self.registry.snapshot();
                if registry.lacks_any(site, readings.iter().map(|reading| reading.sensor.as_ref()))
                {
                    registry = self.registry.reload_for_unknown(&self.pool).await;
                }
                match registry.site(site) {
                    None => {
                        let refusal = Refusal::new(
                            Reason::UnknownSite,
                            format!("site {:?} is not registered", excerpt(site)),
                        );
                        self.refuse_message(
                            &envelope,
                            site,
                            refusal,
                            readings.len() as u64,
                            &mut receipt,
                            pending,
                        );
                    }
                    Some(sensors) => {
                        let mut rejected = 0_i64;
                        let oldest = self.oldest_accepted(envelope.received);
                        for reading in readings {
                            match validate(&reading, sensors, envelope.received, oldest) {
                                Ok((entry, value, timestamp)) => {
                                    pending.push_reading(entry, value, timestamp);
                                    receipt.accepted += 1;
                                }
                                Err(refusal) => {
                                    rejected += 1;
                                    self.stats.reject(refusal.reason, 1);
                                    self.record(
                                        &envelope,
                                        site,
                                        Some(&reading.sensor),
                                        &refusal,
                                        pending,
                                    );
                                    receipt.refused.push(Refused {
                                        sensor: Some(excerpt(&reading.sensor)),
                                        reason: refusal.reason,
                                        detail: refusal.detail,
                                    });
                                }
                            }
                        }
                        pending.journal.count(
                            envelope.received,
                            envelope.source,
                            1,
                            receipt.accepted as i64,
                            rejected,
                        );
                    }
                }
            }
        }
        pending.acks.extend(envelope.ack);
        if let Some(reply) = envelope.reply {
            pending.replies.push((reply, receipt));
        }
    }

    /// Completes a batch once its write is over: acknowledges its
    /// messages, answers its HTTP callers, and hands its latest values and
    /// journal entries on. A batch that could not be made durable (shutdown
    /// with the spool full) is acknowledged to nobody: the broker
    /// redelivers, HTTP callers get 503.
    async fn settle(&self, mut batch: Batch, durable: bool, journal_backlog: &mut Entries) {
        if !durable {
            tracing::warn!(
                readings = batch.lines.len(),
                messages = batch.acks.len(),
                "neither InfluxDB nor the full spool took the last batch before shutdown; its messages stay unacknowledged for redelivery"
            );
            return;
        }
        if !batch.lines.is_empty() {
            self.stats
                .accepted
                .fetch_add(batch.lines.len() as u64, Ordering::Relaxed);
            self.stats.batches.fetch_add(1, Ordering::Relaxed);
            self.histograms
                .batch_readings
                .observe(batch.lines.len() as f64);
        }
        if let Some(acker) = &self.acker {
            for ack in batch.acks.drain(..) {
                if acker.ack(ack) {
                    self.stats.acked.fetch_add(1, Ordering::Relaxed);
                }
            }
        }
        if let Some(oldest) = batch.oldest {
            self.histograms
                .lag_seconds
                .observe(oldest.elapsed().as_secs_f64());
        }
        for (reply, receipt) in batch.replies.drain(..) {
            // The caller may have gone; its readings are stored all the same.
            let _ = reply.send(receipt);
        }
        journal_backlog.merge(std::mem::take(&mut batch.journal), &self.stats);
        if !journal_backlog.is_empty() {
            match self.journal.try_send(std::mem::take(journal_backlog)) {
                Ok(()) => {}
                // The journal task is behind: keep the entries for the next batch.
                Err(
                    mpsc::error::TrySendError::Full(entries)
                    | mpsc::error::TrySendError::Closed(entries),
                ) => *journal_backlog = entries,
            }
        }
        if !batch.latest.is_empty() {
            let latest: Vec<_> = batch.latest.into_values().collect();
            if self.latest.try_send(latest).is_err() {
                // The cache task is behind (Redis slow or down): skip this
                // update; the next reading of each sensor refreshes it.
                self.stats.cache_errors.fetch_add(1, Ordering::Relaxed);
            }
        }
    }

    /// The oldest timestamp accepted at `received`: the raw retention
    /// back, less a margin (a twenty-fourth of it, at most an hour) for
    /// the time a batch may wait in the spool. `None`: kept forever.
    fn oldest_accepted(&self, received: EpochMillis) -> Option<EpochMillis> {
        let keep = self.influx.raw_retention()?;
        let margin = (keep / 24).min(Duration::from_secs(3_600));
        let back = i64::try_from((keep - margin).as_millis()).unwrap_or(i64::MAX);
        EpochMillis::from_millis(received.as_millis().saturating_sub(back)).ok()
    }

    /// Makes the batch durable: in InfluxDB, or, when InfluxDB cannot take
    /// it (or a backlog is still replaying, to keep the order), in the
    /// spool. Returns false only when a shutdown outlasted
    /// [`SHUTDOWN_GRACE`] with the spool full.
    async fn write_durably(&self, lines: &LineBatch) -> bool {
        let mut backoff = Duration::from_millis(100);
        let mut give_up_at: Option<Instant> = None;
        loop {
            if self.spool.is_empty() {
                let started = std::time::Instant::now();
                let written = self.influx.write(lines).await;
                self.histograms
                    .write_seconds
                    .observe(started.elapsed().as_secs_f64());
                match written {
                    Ok(()) => {
                        self.stats.spool_full.store(false, Ordering::Release);
                        mark_if_late(&self.influx, lines).await;
                        return true;
                    }
                    Err(error) => {
                        self.stats.write_errors.fetch_add(1, Ordering::Relaxed);
                        if error.is_transient() {
                            tracing::warn!(%error, readings = lines.len(), "InfluxDB write failed; spooling the batch to disk");
                        } else {
                            tracing::error!(%error, readings = lines.len(), "InfluxDB refused a batch; spooling it until an operator fixes InfluxDB");
                        }
                    }
                }
            }
            match spool_append(&self.spool, lines).await {
                Ok(()) => {
                    self.stats.spooled_batches.fetch_add(1, Ordering::Relaxed);
                    self.stats.spool_full.store(false, Ordering::Release);
                    self.replay.notify_one();
                    return true;
                }
                Err(SpoolError::Full { bytes, max_bytes }) => {
                    if !self.stats.spool_full.swap(true, Ordering::AcqRel) {
                        tracing::error!(
                            bytes,
                            max_bytes,
                            "spool full: acknowledging nothing until InfluxDB takes the backlog (the broker keeps the messages)"
                        );
                    }
                }
                Err(error) => {
                    tracing::error!(%error, "cannot spool a batch; retrying (the batch stays unacknowledged)");
                }
            }
            if self.shutdown.is_cancelled() {
                let deadline = *give_up_at.get_or_insert_with(|| Instant::now() + SHUTDOWN_GRACE);
                if Instant::now() >= deadline {
                    return false;
                }
            }
            tokio::time::sleep(backoff).await;
            backoff = (backoff * 2).min(Duration::from_secs(2));
        }
    }

    fn refuse_message(
        &self,
        envelope: &Envelope,
        site: &str,
        refusal: Refusal,
        readings: u64,
        receipt: &mut Receipt,
        pending: &mut Pending,
    ) {
        let readings = readings.max(1);
        self.stats.reject(refusal.reason, readings);
        pending
            .journal
            .count(envelope.received, envelope.source, 1, 0, readings as i64);
        self.record(envelope, site, None, &refusal, pending);
        receipt.message_refused = true;
        receipt.refused.push(Refused {
            sensor: None,
            reason: refusal.reason,
            detail: refusal.detail,
        });
    }

    /// Logs (rate-limited) and records one refusal for the journal.
    fn record(
        &self,
        envelope: &Envelope,
        site: &str,
        sensor: Option<&str>,
        refusal: &Refusal,
        pending: &mut Pending,
    ) {
        let topic = envelope.target.describe();
        if let Some(suppressed) = pending.log.admit(refusal.reason) {
            tracing::warn!(
                reason = refusal.reason.as_str(),
                site,
                sensor,
                topic = %topic,
                detail = %refusal.detail,
                similar_refusals_not_logged = suppressed,
                "reading refused"
            );
        }
        let rejection = Rejection {
            received: envelope.received,
            source: envelope.source,
            reason: refusal.reason,
            site: site.chars().take(200).collect(),
            sensor: sensor.map(|sensor| sensor.chars().take(200).collect()),
            topic,
            detail: refusal.detail.clone(),
            payload_excerpt: journal::excerpt(&envelope.payload),
        };
        if !pending.journal.record(rejection) {
            self.stats
                .rejections_unrecorded
                .fetch_add(1, Ordering::Relaxed);
        }
    }
}

impl Pending {
    /// Takes what accumulated, leaving an empty batch with room for the next.
    fn take_batch(&mut self, capacity: usize) -> Batch {
        let lines = if self.lines.is_empty() {
            LineBatch::default()
        } else {
            std::mem::replace(&mut self.lines, LineBatch::with_capacity(capacity))
        };
        Batch {
            lines,
            acks: std::mem::take(&mut self.acks),
            replies: std::mem::take(&mut self.replies),
            latest: std::mem::take(&mut self.latest),
            journal: std::mem::take(&mut self.journal),
            oldest: self.oldest.take(),
        }
    }

    fn push_reading(&mut self, entry: &Arc<SensorEntry>, value: f64, timestamp: EpochMillis) {
        self.lines.push(
            &entry.site,
            &entry.key,
            &entry.sensor_type,
            value,
            timestamp,
        );
        match self.latest.get_mut(&entry.serial) {
            Some(newest) if newest.2 > timestamp => {}
            Some(newest) => {
                newest.1 = value;
                newest.2 = timestamp;
            }
            None => {
                self.latest
                    .insert(entry.serial, (Arc::clone(entry), value, timestamp));
            }
        }
    }
}

impl Target {
    /// The site as named in the topic or route (not validated).
    fn site(&self) -> &str {
        match self {
            Target::Telemetry { site } | Target::Sensor { site, .. } => site,
            Target::Unknown { .. } => "",
        }
    }

    fn describe(&self) -> String {
        match self {
            Target::Telemetry { site } => format!("sites/{site}/telemetry"),
            Target::Sensor { site, sensor } => format!("sites/{site}/sensors/{sensor}"),
            Target::Unknown { topic } => topic.clone(),
        }
    }
}

/// Checks one reading against its sensor: registered, in range, not in
/// the future, and (when `oldest` is set) not older than InfluxDB keeps.
fn validate<'a>(
    reading: &RawReading,
    sensors: &'a HashMap<stoker_domain::SensorKey, Arc<SensorEntry>>,
    received: EpochMillis,
    oldest: Option<EpochMillis>,
) -> Result<(&'a Arc<SensorEntry>, f64, EpochMillis), Refusal> {
    let entry = sensors.get(reading.sensor.as_ref()).ok_or_else(|| {
        Refusal::new(
            Reason::UnknownSensor,
            format!(
                "sensor {:?} is not registered at this site",
                excerpt(&reading.sensor)
            ),
        )
    })?;
    let value = reading.value.clone()?;
    if !entry.range.contains(value) {
        return Err(Refusal::new(
            Reason::OutOfRange,
            format!(
                "value {value} of {} is outside its valid range [{}, {}]",
                entry.key,
                entry
                    .range
                    .min()
                    .map_or("-inf".into(), |min| min.to_string()),
                entry
                    .range
                    .max()
                    .map_or("+inf".into(), |max| max.to_string()),
            ),
        ));
    }
    let timestamp = reading.timestamp.unwrap_or(received);
    if timestamp.as_millis() > received.as_millis() + MAX_FUTURE_MILLIS {
        return Err(Refusal::new(
            Reason::FutureTimestamp,
            format!(
                "timestamp {timestamp} is more than 5 minutes after the receive time {received}"
            ),
        ));
    }
    if let Some(oldest) = oldest
        && timestamp < oldest
    {
        return Err(Refusal::new(
            Reason::TooOld,
            format!(
                "timestamp {timestamp} is older than InfluxDB keeps raw readings (INFLUX_RAW_RETENTION): the oldest accepted now is {oldest}"
            ),
        ));
    }
    Ok((entry, value, timestamp))
}

fn excerpt(text: &str) -> String {
    text.chars().take(64).collect()
}

async fn sleep_until(deadline: Option<Instant>) {
    match deadline {
        Some(deadline) => tokio::time::sleep_until(deadline).await,
        None => std::future::pending().await,
    }
}

/// Appends to the spool off the async threads (it waits for the disk).
async fn spool_append(spool: &Arc<Spool>, lines: &LineBatch) -> Result<(), SpoolError> {
    let spool = Arc::clone(spool);
    let body = lines.as_str().as_bytes().to_vec();
    tokio::task::spawn_blocking(move || spool.append(&body))
        .await
        .unwrap_or_else(|error| {
            Err(SpoolError::Io {
                path: "spool".into(),
                source: std::io::Error::other(error),
            })
        })
}

/// Replays the spool into InfluxDB, oldest segment first, whenever it is
/// not empty; runs until `shutdown` (what is left replays at the next start).
/// Tells the rollup job about a batch just stored whose oldest reading is
/// more than `LATE_AFTER_MS` old, so that it rolls those minutes again.
/// The readings are durable already; a failed mark is logged (the minutes
/// can be re-rolled with `stoker influx rollup`).
async fn mark_if_late(influx: &Influx, batch: &LineBatch) {
    let Some((oldest, newest)) = batch.time_range() else {
        return;
    };
    let late_before = EpochMillis::now().as_millis() - stoker_timeseries::rollup::LATE_AFTER_MS;
    if oldest.as_millis() >= late_before {
        return;
    }
    if let Err(error) = influx.mark_late(oldest, newest).await {
        tracing::warn!(%error, from = %oldest, to = %newest, "stored late readings but could not mark them for the rollup; run `stoker influx rollup --from {oldest} --to {newest}`");
    }
}

pub(crate) async fn run_replay(
    spool: Arc<Spool>,
    influx: Influx,
    replay: Arc<Notify>,
    stats: Arc<Stats>,
    shutdown: CancellationToken,
) {
    let mut backoff = Duration::from_millis(200);
    let mut replaying = false;
    loop {
        if spool.is_empty() {
            if replaying {
                replaying = false;
                tracing::info!("spool drained: InfluxDB has every spooled reading");
            }
            tokio::select! {
                () = shutdown.cancelled() => return,
                () = replay.notified() => continue,
            }
        }
        if !replaying {
            replaying = true;
            let (segments, bytes) = spool.depth();
            tracing::info!(segments, bytes, "replaying the spool into InfluxDB");
        }
        let oldest = {
            let spool = Arc::clone(&spool);
            tokio::task::spawn_blocking(move || spool.oldest()).await
        };
        let (sequence, body) = match oldest {
            Ok(Ok(Some(segment))) => segment,
            Ok(Ok(None)) => continue,
            Ok(Err(error)) => {
                tracing::error!(%error, "cannot read the spool");
                if sleep_or_stop(&shutdown, Duration::from_secs(5)).await {
                    return;
                }
                continue;
            }
            Err(error) => {
                tracing::error!(%error, "spool reader failed");
                continue;
            }
        };
        let batch = LineBatch::from_encoded(String::from_utf8_lossy(&body).into_owned());
        match influx.write(&batch).await {
            Ok(()) => {
                backoff = Duration::from_millis(200);
                stats.replayed_batches.fetch_add(1, Ordering::Relaxed);
                mark_if_late(&influx, &batch).await;
                let spool = Arc::clone(&spool);
                match tokio::task::spawn_blocking(move || spool.remove(sequence)).await {
                    Ok(Ok(())) => {}
                    Ok(Err(error)) => {
                        tracing::error!(%error, "cannot remove a replayed segment; it will be replayed again (harmless)")
                    }
                    Err(error) => tracing::error!(%error, "spool remover failed"),
                }
            }
            Err(error) => {
                tracing::debug!(%error, retry_in = ?backoff, "InfluxDB still unavailable for the spool replay");
                if sleep_or_stop(&shutdown, backoff).await {
                    return;
                }
                backoff = (backoff * 2).min(Duration::from_secs(5));
            }
        }
    }
}

/// Sleeps; returns true if `shutdown` came first.
async fn sleep_or_stop(shutdown: &CancellationToken, duration: Duration) -> bool {
    tokio::select! {
        () = shutdown.cancelled() => true,
        () = tokio::time::sleep(duration) => false,
    }
}

/// Applies latest values to Redis, one script call per batch, off the
/// writer's path. Failures are counted and logged, never retried: the next
/// reading of each sensor refreshes its value.
pub(crate) async fn run_latest_updates(
    cache: Cache,
    stats: Arc<Stats>,
    mut batches: mpsc::Receiver<Vec<(Arc<SensorEntry>, f64, EpochMillis)>>,
) {
    let mut failing = false;
    while let Some(batch) = batches.recv().await {
        let values: Vec<LatestValue> = batch
            .iter()
            .map(|(entry, value, timestamp)| LatestValue {
                value: *value,
                ts: *timestamp,
                sensor_type: entry.sensor_type.clone(),
                unit: entry.unit.clone(),
            })
            .collect();
        let keyed: Vec<_> = batch
            .iter()
            .zip(&values)
            .map(|((entry, _, _), latest)| (&entry.site, &entry.key, latest))
            .collect();
        match cache.set_latest(&keyed).await {
            Ok(_) if failing => {
                failing = false;
                tracing::info!("Redis is back: latest values are being cached again");
            }
            Ok(_) => {}
            Err(error) => {
                stats.cache_errors.fetch_add(1, Ordering::Relaxed);
                if !failing {
                    failing = true;
                    tracing::warn!(%error, "cannot cache latest values in Redis; ingestion goes on (Redis is only a cache)");
                }
            }
        }
    }
}
