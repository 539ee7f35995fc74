//! Latest values: the newest reading per sensor of each settled batch,
//! cached in Redis by a task of its own, off the writer's path.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::Ordering;

use stoker_cache::Cache;
use stoker_domain::EpochMillis;
use tokio::sync::mpsc;

use crate::registry::{Fast, SensorEntry, Typed};
use crate::stats::Stats;

/// One batch's newest value per sensor: the sensor, value and timestamp.
pub(crate) type LatestValues = Vec<(Arc<SensorEntry>, Typed, EpochMillis)>;

/// Applies latest values to Redis, one script call at a time, off the
/// writer's path; the batches that queued up while Redis answered the last
/// call are merged into the next one (the newest value per sensor wins), as
/// a group commit: under load, caching costs in proportion to the sensors,
/// not to the readings, and a quiet writer's batch is cached at once. Each
/// sensor's key and JSON end are encoded once, in its registry entry.
/// Failures are counted and logged, never retried: the next reading of
/// each sensor refreshes its value.
pub(crate) async fn run_latest_updates(
    cache: Cache,
    stats: Arc<Stats>,
    mut batches: mpsc::Receiver<LatestValues>,
) {
    let mut failing = false;
    while let Some(mut batch) = batches.recv().await {
        let mut queued = Vec::new();
        while let Ok(more) = batches.try_recv() {
            queued.push(more);
        }
        if !queued.is_empty() {
            batch = merge(batch, queued);
        }
        let values: Vec<_> = batch
            .iter()
            .map(|(entry, value, timestamp)| {
                let slot = entry.latest_slot.get_or_init(|| {
                    cache.latest_slot(&entry.site, &entry.key, &entry.sensor_type, &entry.unit)
                });
                (slot, entry.native(*value), *timestamp)
            })
            .collect();
        let keyed: Vec<_> = values
            .iter()
            .map(|(slot, value, timestamp)| (*slot, value, *timestamp))
            .collect();
        match cache.set_latest_slots(&keyed).await {
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

/// One batch of the newest value per sensor out of several, in order.
fn merge(first: LatestValues, more: Vec<LatestValues>) -> LatestValues {
    let mut newest: HashMap<u64, usize, Fast> =
        HashMap::with_capacity_and_hasher(first.len(), Fast::default());
    let mut merged: LatestValues = Vec::with_capacity(first.len());
    for item in first.into_iter().chain(more.into_iter().flatten()) {
        match newest.get(&item.0.serial) {
            Some(&at) => {
                if merged[at].2 <= item.2 {
                    merged[at] = item;
                }
            }
            None => {
                newest.insert(item.0.serial, merged.len());
                merged.push(item);
            }
        }
    }
    merged
}
