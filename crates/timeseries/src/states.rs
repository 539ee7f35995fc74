//! State sensors' readings by name: the string field `state` written
//! beside the index in `value` (DESIGN.md, "Signals that are not numbers").

use stoker_domain::{EpochMillis, SensorKey, SiteSlug};

use crate::{Influx, Result, influxql};

impl Influx {
    /// A state sensor's readings in `[start, end)` as the state names
    /// stored beside their index (field `state`), oldest first.
    pub async fn state_names(
        &self,
        site: &SiteSlug,
        sensor: &SensorKey,
        start: EpochMillis,
        end: EpochMillis,
    ) -> Result<Vec<(EpochMillis, String)>> {
        let series = self
            .query(&influxql::state_names(site, sensor, start, end))
            .await?;
        Ok(series
            .iter()
            .flat_map(|series| &series.values)
            .filter_map(|row| {
                let millis = row.first()?.as_i64()?;
                let name = row.get(1)?.as_str()?;
                Some((EpochMillis::from_millis(millis).ok()?, name.to_owned()))
            })
            .collect())
    }
}
