//! The spool's replay: segments go to InfluxDB oldest first, and are
//! removed once InfluxDB has them.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use stoker_timeseries::{Influx, LineBatch};
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

use super::Spool;
use crate::late::mark_if_late;
use crate::stats::Stats;

/// Replays the spool into InfluxDB, oldest segment first, whenever it is
/// not empty; runs until `shutdown` (what is left replays at the next start).
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
