//! Births and deaths of edge nodes and devices, recorded in metadata
//! (`stoker_metadata::record_gateway_birth` and its siblings; Postgres is
//! the source of truth for a gateway's online state, and analytics raises
//! `gateway_offline` from it). A task of its own, fed through a bounded
//! queue: the message path never waits for Postgres. Events are recorded
//! in the order they happened; while Postgres is away the task retries the
//! oldest, and when the queue is full a new event is counted and logged as
//! unrecorded.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use stoker_metadata::AnnouncedMetric;
use stoker_postgres::Pool;
use stoker_sparkplug::{Announced, Event, datatype_name};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use super::stats::SparkplugStats;

/// Events waiting for Postgres, at most.
const QUEUE: usize = 4_096;

/// How long a shutdown waits for the last events to be recorded.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(5);

/// Where the session hands events. Cheap to clone.
#[derive(Debug, Clone)]
pub(crate) struct EventQueue {
    sender: mpsc::Sender<Event>,
    stats: Arc<SparkplugStats>,
}

/// A queue and the receiver the recording task reads.
pub(crate) fn queue(stats: Arc<SparkplugStats>) -> (EventQueue, mpsc::Receiver<Event>) {
    let (sender, receiver) = mpsc::channel(QUEUE);
    (EventQueue { sender, stats }, receiver)
}

impl EventQueue {
    /// Queues an event for recording; never waits.
    pub(crate) fn push(&self, event: Event) {
        if let Err(error) = self.sender.try_send(event) {
            self.stats.events_unrecorded.fetch_add(1, Ordering::Relaxed);
            let event = match &error {
                mpsc::error::TrySendError::Full(event)
                | mpsc::error::TrySendError::Closed(event) => event,
            };
            tracing::error!(event = %describe(event), "a Sparkplug birth or death cannot be recorded: its queue to Postgres is full; the gateway's online state in metadata is stale until its next birth or death");
        }
    }
}

/// Records events until `shutdown` (then what is queued, for a few seconds).
pub(crate) async fn run(
    pool: Pool,
    mut events: mpsc::Receiver<Event>,
    stats: Arc<SparkplugStats>,
    shutdown: CancellationToken,
) {
    let mut failing = false;
    loop {
        let event = tokio::select! {
            event = events.recv() => match event {
                Some(event) => event,
                None => break,
            },
            () = shutdown.cancelled() => break,
        };
        let mut backoff = Duration::from_millis(200);
        loop {
            match record(&pool, &event).await {
                Ok(bound) => {
                    stats.events_recorded.fetch_add(1, Ordering::Relaxed);
                    if failing {
                        failing = false;
                        tracing::info!(
                            "Postgres is back: Sparkplug births and deaths are recorded again"
                        );
                    }
                    if !bound {
                        tracing::debug!(event = %describe(&event), "not recorded: the gateway is bound to no site");
                    }
                    break;
                }
                Err(error) if error.is_unavailable() => {
                    if !failing {
                        failing = true;
                        tracing::warn!(%error, "cannot record Sparkplug births and deaths; retrying (they wait in memory)");
                    }
                    tokio::select! {
                        () = shutdown.cancelled() => {
                            stats.events_unrecorded.fetch_add(1, Ordering::Relaxed);
                            tracing::error!(event = %describe(&event), "shutting down with Postgres away: a Sparkplug birth or death is not recorded");
                            break;
                        }
                        () = tokio::time::sleep(backoff) => {}
                    }
                    backoff = (backoff * 2).min(Duration::from_secs(5));
                }
                Err(error) => {
                    stats.events_unrecorded.fetch_add(1, Ordering::Relaxed);
                    tracing::error!(%error, event = %describe(&event), "Postgres refused to record a Sparkplug birth or death");
                    break;
                }
            }
        }
    }
    // What the session queued before it stopped.
    let deadline = tokio::time::Instant::now() + SHUTDOWN_GRACE;
    while let Ok(event) = events.try_recv() {
        let recorded = tokio::time::timeout_at(deadline, record(&pool, &event)).await;
        if matches!(recorded, Ok(Ok(_))) {
            stats.events_recorded.fetch_add(1, Ordering::Relaxed);
        } else {
            stats.events_unrecorded.fetch_add(1, Ordering::Relaxed);
            tracing::error!(event = %describe(&event), "shutting down: a Sparkplug birth or death is not recorded");
        }
    }
}

/// One event, one transaction. Returns whether the gateway is bound.
async fn record(pool: &Pool, event: &Event) -> stoker_metadata::Result<bool> {
    match event {
        Event::NodeBirth {
            node,
            bd_seq,
            at,
            metrics,
        } => {
            let bd_seq = stored_bd_seq(*bd_seq);
            let metrics = announced(None, metrics);
            stoker_metadata::record_gateway_birth(
                pool,
                &node.group_id,
                &node.edge_node_id,
                *at,
                bd_seq,
                &metrics,
            )
            .await
        }
        Event::DeviceBirth {
            node,
            device,
            bd_seq,
            at,
            metrics,
        } => {
            // A birth of an earlier session, recorded late, changes nothing.
            let metrics = announced(Some(device), metrics);
            stoker_metadata::record_device_birth(
                pool,
                &node.group_id,
                &node.edge_node_id,
                device,
                *at,
                stored_bd_seq(*bd_seq),
                &metrics,
            )
            .await
        }
        Event::NodeDeath {
            node, at, bd_seq, ..
        } => {
            // A late will of an earlier session leaves the gateway online.
            let bd_seq = stored_bd_seq(*bd_seq);
            stoker_metadata::record_gateway_death(
                pool,
                &node.group_id,
                &node.edge_node_id,
                *at,
                bd_seq,
            )
            .await
        }
        Event::DeviceDeath {
            node,
            device,
            bd_seq,
            at,
        } => {
            // Only that device's sensors: the gateway stays online. A
            // death of an earlier session, recorded late, changes nothing.
            stoker_metadata::record_device_death(
                pool,
                &node.group_id,
                &node.edge_node_id,
                device,
                *at,
                stored_bd_seq(*bd_seq),
            )
            .await
        }
    }
}

/// A `bdSeq` as Postgres holds it (`bigint`); one beyond it (Sparkplug's
/// are 0–255) is unknown, which no record treats as stale.
fn stored_bd_seq(bd_seq: Option<u64>) -> Option<i64> {
    bd_seq.and_then(|bd_seq| i64::try_from(bd_seq).ok())
}

fn announced(device: Option<&str>, metrics: &[Announced]) -> Vec<AnnouncedMetric> {
    metrics
        .iter()
        .map(|metric| AnnouncedMetric {
            device: device.map(str::to_owned),
            metric: metric.metric.to_string(),
            sensor: metric.sensor.clone().ok(),
            datatype: datatype_name(metric.datatype).to_owned(),
        })
        .collect()
}

fn describe(event: &Event) -> String {
    match event {
        Event::NodeBirth { node, at, .. } => format!("NBIRTH of {node} at {at}"),
        Event::NodeDeath { node, at, .. } => format!("NDEATH of {node} at {at}"),
        Event::DeviceBirth {
            node, device, at, ..
        } => format!("DBIRTH of {node}/{device} at {at}"),
        Event::DeviceDeath {
            node, device, at, ..
        } => format!("DDEATH of {node}/{device} at {at}"),
    }
}
