//! Latest values: the newest reading per sensor of each settled batch,
//! cached in Redis by a task of its own, off the writer's path.

use std::sync::Arc;
use std::sync::atomic::Ordering;

use stoker_cache::{Cache, LatestValue};
use stoker_domain::EpochMillis;
use tokio::sync::mpsc;

use crate::registry::{SensorEntry, Typed};
use crate::stats::Stats;

/// One batch's newest value per sensor: the sensor, value and timestamp.
pub(crate) type LatestValues = Vec<(Arc<SensorEntry>, Typed, EpochMillis)>;

/// Applies latest values to Redis, one script call per batch, off the
/// writer's path. Failures are counted and logged, never retried: the next
/// reading of each sensor refreshes its value.
pub(crate) async fn run_latest_updates(
    cache: Cache,
    stats: Arc<Stats>,
    mut batches: mpsc::Receiver<LatestValues>,
) {
    let mut failing = false;
    while let Some(batch) = batches.recv().await {
        let values: Vec<LatestValue> = batch
            .iter()
            .map(|(entry, value, timestamp)| LatestValue {
                value: entry.native(*value),
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
