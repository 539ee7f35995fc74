//! Leadership: alias tables and `seq` need one reader per edge node, so
//! one ingest process at a time runs the host session, the holder of
//! Postgres advisory lock [`LOCK_KEY`] (`stoker_postgres::try_lead`, a
//! session of its own that Postgres frees when the process dies). The
//! others try again every [`RETRY`]; the leader checks every [`CHECK`]
//! that its lock session still answers and steps down when it does not.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use stoker_postgres::{Pool, PostgresOptions};
use tokio_util::sync::CancellationToken;

use super::LOCK_KEY;
use super::bindings::Bindings;
use super::events;
use super::session::{self, Settings, Shared};
use super::stats::SparkplugStats;
use crate::queue::QueueSender;
use crate::stats::Stats;

/// How often a follower tries to take the lead.
const RETRY: Duration = Duration::from_secs(2);

/// How often the leader checks that it still holds the lock.
const CHECK: Duration = Duration::from_secs(2);

/// What the host needs from the process.
#[derive(Debug)]
pub(crate) struct Host {
    pub settings: Settings,
    pub pool: Pool,
    pub postgres: PostgresOptions,
    pub envelopes: QueueSender,
    pub ingest: Arc<Stats>,
    pub stats: Arc<SparkplugStats>,
}

/// Follows the gateway bindings, records events, and runs the host session
/// whenever this process leads, until `shutdown`.
pub(crate) async fn run(host: Host, shutdown: CancellationToken) {
    let bindings = Arc::new(Bindings::default());
    let follow = tokio::spawn(Arc::clone(&bindings).follow(
        host.pool.clone(),
        host.postgres.clone(),
        shutdown.clone(),
    ));
    let (events, receiver) = events::queue(Arc::clone(&host.stats));
    // Its own token: the events queued until the session stops are recorded.
    let events_stop = CancellationToken::new();
    let recorder = tokio::spawn(events::run(
        host.pool.clone(),
        receiver,
        Arc::clone(&host.stats),
        events_stop.clone(),
    ));
    let shared = Shared {
        bindings: Arc::clone(&bindings),
        envelopes: host.envelopes.clone(),
        ingest: Arc::clone(&host.ingest),
        stats: Arc::clone(&host.stats),
        events,
    };
    tracing::info!(host_id = %host.settings.host_id, groups = ?host.settings.groups.iter().map(|group| group.as_str()).collect::<Vec<_>>(), "Sparkplug host started; taking the lead when no other ingest process holds it");
    let mut unreachable = false;
    loop {
        if shutdown.is_cancelled() {
            break;
        }
        match stoker_postgres::try_lead(&host.postgres, LOCK_KEY).await {
            Ok(Some(leadership)) => {
                unreachable = false;
                // Bindings first: readings of a gateway not known yet
                // would be refused as unbound.
                while !bindings.is_loaded() && !shutdown.is_cancelled() {
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
                host.stats.leader.store(true, Ordering::Release);
                tracing::info!(host_id = %host.settings.host_id, bound_gateways = bindings.len(), "leading the Sparkplug host");
                let stop = shutdown.child_token();
                let watch = async {
                    loop {
                        tokio::select! {
                            () = stop.cancelled() => break,
                            () = tokio::time::sleep(CHECK) => {}
                        }
                        if !leadership.holds().await {
                            tracing::warn!(
                                "lost the Sparkplug leadership (its Postgres session ended); stepping down"
                            );
                            stop.cancel();
                            break;
                        }
                    }
                };
                let running = session::run(
                    host.settings.clone(),
                    shared.clone(),
                    stop.clone(),
                    shutdown.clone(),
                );
                tokio::join!(watch, async {
                    running.await;
                    stop.cancel();
                });
                drop(leadership);
                host.stats.leader.store(false, Ordering::Release);
            }
            Ok(None) => unreachable = false,
            Err(error) => {
                if !unreachable {
                    unreachable = true;
                    tracing::warn!(%error, "cannot reach Postgres to take the Sparkplug leadership; trying again");
                }
            }
        }
        tokio::select! {
            () = shutdown.cancelled() => break,
            () = tokio::time::sleep(RETRY) => {}
        }
    }
    events_stop.cancel();
    let _ = recorder.await;
    let _ = follow.await;
}
