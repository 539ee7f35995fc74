//! The journal: the ingestion log (counts per minute and source) and the
//! rejected readings, in Postgres schema `ingestion`.
//!
//! The writer hands over a small batch per flush; this task merges them and
//! writes once a second, off the path readings take to InfluxDB. While
//! Postgres is down the counts wait in memory (they are a few rows) and the
//! rejection records up to a bound; ingestion itself never waits for it.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use chrono::{DateTime, Utc};
use stoker_domain::EpochMillis;
use stoker_postgres::Pool;
use tokio::sync::mpsc;

use crate::stats::Stats;

mod embedded {
    refinery::embed_migrations!("../../migrations/ingestion");
}

/// Applies the `ingestion` schema's migrations. Re-running is a no-op.
pub async fn migrate(pool: &Pool) -> crate::Result<()> {
    stoker_postgres::run_schema_migrations(pool, "ingestion", embedded::migrations::runner())
        .await?;
    Ok(())
}

/// Where a message came in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(crate) enum Source {
    Mqtt,
    Http,
}

impl Source {
    fn as_str(self) -> &'static str {
        match self {
            Source::Mqtt => "mqtt",
            Source::Http => "http",
        }
    }
}

/// One refused reading (or message), as recorded.
#[derive(Debug, Clone)]
pub(crate) struct Rejection {
    pub received: EpochMillis,
    pub source: Source,
    /// The reason's stable name (ingestion's [`crate::Reason`]s, and the
    /// Sparkplug host's).
    pub reason: &'static str,
    pub site: String,
    pub sensor: Option<String>,
    pub topic: String,
    pub detail: String,
    pub payload_excerpt: String,
}

#[derive(Debug, Default, Clone, Copy)]
pub(crate) struct Counts {
    pub messages: i64,
    pub accepted: i64,
    pub rejected: i64,
}

/// What one flush hands to the journal.
#[derive(Debug, Default)]
pub(crate) struct Entries {
    pub counts: HashMap<(i64, Source), Counts>,
    pub rejections: Vec<Rejection>,
}

/// Rejection records kept in memory at most (per flush and while Postgres
/// is away); beyond it, rejections are still counted and logged.
pub(crate) const MAX_PENDING_REJECTIONS: usize = 10_000;

impl Entries {
    fn minute(received: EpochMillis) -> i64 {
        received.as_millis().div_euclid(60_000) * 60_000
    }

    pub(crate) fn count(
        &mut self,
        received: EpochMillis,
        source: Source,
        messages: i64,
        accepted: i64,
        rejected: i64,
    ) {
        let counts = self
            .counts
            .entry((Self::minute(received), source))
            .or_default();
        counts.messages += messages;
        counts.accepted += accepted;
        counts.rejected += rejected;
    }

    /// Keeps a record unless the bound is reached; says whether it was kept.
    pub(crate) fn record(&mut self, rejection: Rejection) -> bool {
        if self.rejections.len() < MAX_PENDING_REJECTIONS {
            self.rejections.push(rejection);
            true
        } else {
            false
        }
    }

    pub(crate) fn merge(&mut self, other: Entries, stats: &Stats) {
        for (key, counts) in other.counts {
            let entry = self.counts.entry(key).or_default();
            entry.messages += counts.messages;
            entry.accepted += counts.accepted;
            entry.rejected += counts.rejected;
        }
        for rejection in other.rejections {
            if !self.record(rejection) {
                stats.rejections_unrecorded.fetch_add(1, Ordering::Relaxed);
            }
        }
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.counts.is_empty() && self.rejections.is_empty()
    }
}

/// Writes the journal every second until the writer, its only sender,
/// has finished (after its last flush at shutdown), then once more.
pub(crate) async fn run(
    pool: Pool,
    keep_rejections: i64,
    stats: Arc<Stats>,
    mut entries: mpsc::Receiver<Entries>,
) {
    let mut pending = Entries::default();
    let mut ticker = tokio::time::interval(Duration::from_secs(1));
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut failing = false;
    let mut flushes: u64 = 0;
    loop {
        let stopping = tokio::select! {
            received = entries.recv() => match received {
                Some(batch) => {
                    pending.merge(batch, &stats);
                    continue;
                }
                None => true,
            },
            _ = ticker.tick() => false,
        };
        if !pending.is_empty() {
            match write(&pool, &pending).await {
                Ok(()) => {
                    pending = Entries::default();
                    if failing {
                        failing = false;
                        tracing::info!("Postgres is back: the ingestion journal is written again");
                    }
                    flushes += 1;
                    if flushes % 60 == 1 {
                        prune(&pool, keep_rejections).await;
                    }
                }
                Err(error) => {
                    if !failing {
                        failing = true;
                        tracing::warn!(%error, "cannot write the ingestion journal; keeping counts in memory (ingestion goes on)");
                    }
                }
            }
        }
        if stopping {
            break;
        }
    }
}

async fn write(pool: &Pool, entries: &Entries) -> stoker_postgres::Result<()> {
    let mut client = pool.get().await?;
    let transaction = client.transaction().await?;
    if !entries.counts.is_empty() {
        let upsert = transaction
            .prepare_cached(
                "INSERT INTO ingestion.ingestion_log (minute, source, messages, accepted, rejected)
                 SELECT * FROM UNNEST($1::timestamptz[], $2::text[], $3::bigint[], $4::bigint[], $5::bigint[])
                 ON CONFLICT (minute, source) DO UPDATE SET
                     messages = ingestion_log.messages + excluded.messages,
                     accepted = ingestion_log.accepted + excluded.accepted,
                     rejected = ingestion_log.rejected + excluded.rejected",
            )
            .await?;
        let mut minutes = Vec::new();
        let mut sources = Vec::new();
        let mut messages = Vec::new();
        let mut accepted = Vec::new();
        let mut rejected = Vec::new();
        for ((minute, source), counts) in &entries.counts {
            minutes.push(DateTime::<Utc>::from_timestamp_millis(*minute).unwrap_or_default());
            sources.push(source.as_str());
            messages.push(counts.messages);
            accepted.push(counts.accepted);
            rejected.push(counts.rejected);
        }
        transaction
            .execute(
                &upsert,
                &[&minutes, &sources, &messages, &accepted, &rejected],
            )
            .await?;
    }
    if !entries.rejections.is_empty() {
        let insert = transaction
            .prepare_cached(
                "INSERT INTO ingestion.rejected_readings
                     (received_at, source, reason, site, sensor, topic, detail, payload_excerpt)
                 SELECT * FROM UNNEST($1::timestamptz[], $2::text[], $3::text[], $4::text[], $5::text[],
                                      $6::text[], $7::text[], $8::text[])",
            )
            .await?;
        let rows = &entries.rejections;
        let received: Vec<DateTime<Utc>> =
            rows.iter().map(|row| row.received.to_datetime()).collect();
        let sources: Vec<&str> = rows.iter().map(|row| row.source.as_str()).collect();
        let reasons: Vec<&str> = rows.iter().map(|row| row.reason).collect();
        let sites: Vec<&str> = rows.iter().map(|row| row.site.as_str()).collect();
        let sensors: Vec<Option<&str>> = rows.iter().map(|row| row.sensor.as_deref()).collect();
        let topics: Vec<&str> = rows.iter().map(|row| row.topic.as_str()).collect();
        let details: Vec<&str> = rows.iter().map(|row| row.detail.as_str()).collect();
        let excerpts: Vec<&str> = rows
            .iter()
            .map(|row| row.payload_excerpt.as_str())
            .collect();
        transaction
            .execute(
                &insert,
                &[
                    &received, &sources, &reasons, &sites, &sensors, &topics, &details, &excerpts,
                ],
            )
            .await?;
    }
    transaction.commit().await?;
    Ok(())
}

/// Keeps the newest `keep` rejected readings.
async fn prune(pool: &Pool, keep: i64) {
    let outcome = async {
        let client = pool.get().await?;
        let removed = client
            .execute(
                "DELETE FROM ingestion.rejected_readings
                 WHERE id <= (SELECT max(id) FROM ingestion.rejected_readings) - $1",
                &[&keep],
            )
            .await?;
        Ok::<_, stoker_postgres::Error>(removed)
    }
    .await;
    match outcome {
        Ok(0) => {}
        Ok(removed) => tracing::debug!(removed, "pruned the oldest rejected readings"),
        Err(error) => tracing::debug!(%error, "cannot prune rejected readings yet"),
    }
}

/// The first characters of a payload, as text, for the record.
pub(crate) fn excerpt(payload: &[u8]) -> String {
    let head = &payload[..payload.len().min(256)];
    String::from_utf8_lossy(head).into_owned()
}
