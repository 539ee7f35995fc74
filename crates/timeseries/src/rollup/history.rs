//! History reads over the rollup ([`Influx::history_with_rollup`]): the
//! minutes the rollup holds come from `readings_1m`, only the rest from
//! the raw readings, merged into one value per bucket.

use std::collections::BTreeMap;
use std::time::Duration;

use stoker_domain::{EpochMillis, SensorKey, SiteSlug};

use super::{MINUTE_MS, ROLLUP_MEASUREMENT, ROLLUP_POLICY, ceil_minute, floor_minute};
use crate::client::Series;
use crate::influxql::{identifier, literal};
use crate::line::MEASUREMENT;
use crate::{Aggregate, Influx, Result};

impl Influx {
    /// One sensor's history like [`Influx::history`], with the minutes
    /// the rollup holds (those before `rolled_through`) read from the
    /// rollup and only the rest from the raw readings. `every` must be a
    /// whole number of minutes, or everything is read raw.
    ///
    /// The mean of a bucket is then the sum of its minutes' sums over the
    /// sum of their counts: the raw mean up to float rounding.
    #[allow(clippy::too_many_arguments)]
    pub async fn history_with_rollup(
        &self,
        site: &SiteSlug,
        sensor: &SensorKey,
        start: EpochMillis,
        end: EpochMillis,
        every: Duration,
        aggregate: Aggregate,
        rolled_through: EpochMillis,
    ) -> Result<Vec<(EpochMillis, f64)>> {
        let every_ms = i64::try_from(every.as_millis()).unwrap_or(i64::MAX);
        let rolled_start = ceil_minute(start);
        let rolled_end = floor_minute(end).min(rolled_through);
        if every_ms % MINUTE_MS != 0 || rolled_end <= rolled_start {
            return self
                .history(site, sensor, start, end, every, aggregate)
                .await;
        }
        // Oldest part first, so that `last` takes the newest part's value.
        let mut statements = Vec::with_capacity(3);
        if start < rolled_start {
            statements.push(partial_query(
                site,
                sensor,
                (start, rolled_start),
                every_ms,
                aggregate,
                Part::Raw,
            ));
        }
        let minutes = (rolled_end.as_millis() - rolled_start.as_millis()) / MINUTE_MS;
        statements.push(partial_query(
            site,
            sensor,
            (rolled_start, rolled_end),
            every_ms,
            aggregate,
            if minutes <= PLAIN_MINUTES {
                Part::RollupMinutes
            } else {
                Part::Rollup
            },
        ));
        if rolled_end < end {
            statements.push(partial_query(
                site,
                sensor,
                (rolled_end, end),
                every_ms,
                aggregate,
                Part::Raw,
            ));
        }
        let series = self.query(&statements.join("; ")).await?;
        Ok(merge_partials(&series, aggregate, every_ms))
    }
}

/// One part of a history read: what its buckets contribute to
/// `aggregate`, named `sum`/`count` (mean), `min`, `max` or `last`.
fn partial_query(
    site: &SiteSlug,
    sensor: &SensorKey,
    (start, end): (EpochMillis, EpochMillis),
    every_ms: i64,
    aggregate: Aggregate,
    part: Part,
) -> String {
    let selected = match (aggregate, part) {
        (Aggregate::Mean, Part::Raw) => "sum(\"value\") AS \"sum\", count(\"value\") AS \"count\"",
        (Aggregate::Mean, Part::Rollup) => "sum(\"sum\") AS \"sum\", sum(\"count\") AS \"count\"",
        (Aggregate::Mean, Part::RollupMinutes) => "\"sum\", \"count\"",
        (Aggregate::Min, Part::Raw) => "min(\"value\") AS \"min\"",
        (Aggregate::Min, Part::Rollup) => "min(\"min\") AS \"min\"",
        (Aggregate::Min, Part::RollupMinutes) => "\"min\"",
        (Aggregate::Max, Part::Raw) => "max(\"value\") AS \"max\"",
        (Aggregate::Max, Part::Rollup) => "max(\"max\") AS \"max\"",
        (Aggregate::Max, Part::RollupMinutes) => "\"max\"",
        (Aggregate::Last, Part::Raw) => "last(\"value\") AS \"last\"",
        (Aggregate::Last, Part::Rollup) => "last(\"last\") AS \"last\"",
        (Aggregate::Last, Part::RollupMinutes) => "\"last\"",
    };
    let from = match part {
        Part::Raw => identifier(MEASUREMENT),
        Part::Rollup | Part::RollupMinutes => format!(
            "{}.{}",
            identifier(ROLLUP_POLICY),
            identifier(ROLLUP_MEASUREMENT)
        ),
    };
    let group = match part {
        Part::RollupMinutes => String::new(),
        Part::Raw | Part::Rollup => format!(" GROUP BY time({every_ms}ms) fill(none)"),
    };
    format!(
        "SELECT {selected} FROM {from} WHERE \"site\" = {} AND \"sensor\" = {} \
         AND time >= {}ms AND time < {}ms{group}",
        literal(site.as_str()),
        literal(sensor.as_str()),
        start.as_millis(),
        end.as_millis(),
    )
}

/// Where one part of a history read comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Part {
    /// Raw readings, bucketed by InfluxDB.
    Raw,
    /// Rollup minutes, bucketed by InfluxDB (long ranges).
    Rollup,
    /// Rollup minutes as they are, bucketed here: InfluxDB 1.x spends
    /// about as much per `GROUP BY time` bucket and function as per
    /// point read, so up to [`PLAIN_MINUTES`] rows are cheaper fetched.
    RollupMinutes,
}

/// The most rollup minutes a history read fetches row by row.
const PLAIN_MINUTES: i64 = 7 * 1_440;

/// Combines the parts' buckets (oldest part first) into one value per
/// bucket.
fn merge_partials(
    series: &[Series],
    aggregate: Aggregate,
    every_ms: i64,
) -> Vec<(EpochMillis, f64)> {
    #[derive(Default)]
    struct Bucket {
        sum: f64,
        count: f64,
        value: Option<f64>,
    }
    let mut buckets: BTreeMap<i64, Bucket> = BTreeMap::new();
    for one in series {
        let at = |name: &str| one.columns.iter().position(|column| column == name);
        let (time, first, second) = match aggregate {
            Aggregate::Mean => (at("time"), at("sum"), at("count")),
            Aggregate::Min => (at("time"), at("min"), None),
            Aggregate::Max => (at("time"), at("max"), None),
            Aggregate::Last => (at("time"), at("last"), None),
        };
        let number = |row: &[serde_json::Value], index: Option<usize>| {
            index
                .and_then(|index| row.get(index))
                .and_then(serde_json::Value::as_f64)
        };
        for row in &one.values {
            // Rows of rollup minutes fall into their bucket here; those
            // InfluxDB bucketed start one already.
            let Some(start) = time
                .and_then(|index| row.get(index))
                .and_then(serde_json::Value::as_i64)
                .map(|at| at - at.rem_euclid(every_ms.max(1)))
            else {
                continue;
            };
            let Some(value) = number(row, first) else {
                continue;
            };
            let bucket = buckets.entry(start).or_default();
            match aggregate {
                Aggregate::Mean => {
                    let Some(count) = number(row, second) else {
                        continue;
                    };
                    bucket.sum += value;
                    bucket.count += count;
                    bucket.value = Some(bucket.sum / bucket.count);
                }
                Aggregate::Min => {
                    bucket.value = Some(bucket.value.map_or(value, |old| old.min(value)));
                }
                Aggregate::Max => {
                    bucket.value = Some(bucket.value.map_or(value, |old| old.max(value)));
                }
                Aggregate::Last => bucket.value = Some(value),
            }
        }
    }
    buckets
        .into_iter()
        .filter_map(|(start, bucket)| Some((EpochMillis::from_millis(start).ok()?, bucket.value?)))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(millis: i64) -> EpochMillis {
        EpochMillis::from_millis(millis).unwrap()
    }

    #[test]
    fn parts_merge_into_one_value_per_bucket() {
        let part = |columns: &[&str], values: Vec<Vec<serde_json::Value>>| Series {
            tags: BTreeMap::new(),
            columns: columns.iter().map(|name| (*name).to_owned()).collect(),
            values,
        };
        let head = part(
            &["time", "sum", "count"],
            vec![vec![0.into(), 3.0.into(), 1.into()]],
        );
        let rolled = part(
            &["time", "sum", "count"],
            vec![
                vec![0.into(), 9.0.into(), 3.into()],
                vec![120_000.into(), 4.0.into(), 2.into()],
            ],
        );
        assert_eq!(
            merge_partials(&[head, rolled], Aggregate::Mean, 60_000),
            vec![(at(0), 3.0), (at(120_000), 2.0)]
        );
        let older = part(&["time", "last"], vec![vec![0.into(), 1.0.into()]]);
        let newer = part(&["time", "last"], vec![vec![0.into(), 7.0.into()]]);
        assert_eq!(
            merge_partials(&[older, newer], Aggregate::Last, 60_000),
            vec![(at(0), 7.0)]
        );
    }
}
