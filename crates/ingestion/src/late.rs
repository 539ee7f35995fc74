//! Late readings: a batch stored more than
//! [`LATE_AFTER_MS`](stoker_timeseries::rollup::LATE_AFTER_MS) after its
//! oldest reading is marked for the rollup job, whether the writer stored
//! it or the spool replay did.

use stoker_domain::EpochMillis;
use stoker_timeseries::{Influx, LineBatch};

/// Tells the rollup job about a batch just stored whose oldest reading is
/// more than `LATE_AFTER_MS` old, so that it rolls those minutes again.
/// The readings are durable already; a failed mark is logged (the minutes
/// can be re-rolled with `stoker influx rollup`).
pub(crate) async fn mark_if_late(influx: &Influx, batch: &LineBatch) {
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
