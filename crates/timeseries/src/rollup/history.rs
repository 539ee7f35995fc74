//! History reads over the rollup ([`Influx::history_with_rollup`], and
//! [`Influx::history_buckets`] with each bucket's count of readings): the
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

/// One bucket of a history read ([`Influx::history_buckets`]).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct HistoryBucket {
    /// The bucket's start (buckets are aligned to the epoch).
    pub start: EpochMillis,
    /// The aggregate asked for, over the bucket's readings.
    pub value: f64,
    /// How many readings the bucket holds.
    pub count: u64,
}

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
        let read = HistoryRead {
            site,
            sensor,
            range: (start, end),
            every_ms: i64::try_from(every.as_millis()).unwrap_or(i64::MAX),
            aggregate,
            counted: false,
        };
        let Some(statements) = read.over_rollup(rolled_through) else {
            return self
                .history(site, sensor, start, end, every, aggregate)
                .await;
        };
        let series = self.query(&statements.join("; ")).await?;
        Ok(
            merge_partials(&series, aggregate, &epoch_buckets(read.every_ms))
                .into_iter()
                .map(|bucket| (bucket.start, bucket.value))
                .collect(),
        )
    }

    /// [`Influx::history_with_rollup`] with each bucket's count of
    /// readings (from the rollup's `count` where it reads the rollup),
    /// oldest first; buckets without readings are left out. Asking for
    /// the count costs InfluxDB one more function per bucket, so the
    /// reads that do not show it use `history_with_rollup`.
    #[allow(clippy::too_many_arguments)]
    pub async fn history_buckets(
        &self,
        site: &SiteSlug,
        sensor: &SensorKey,
        start: EpochMillis,
        end: EpochMillis,
        every: Duration,
        aggregate: Aggregate,
        rolled_through: EpochMillis,
    ) -> Result<Vec<HistoryBucket>> {
        let read = HistoryRead {
            site,
            sensor,
            range: (start, end),
            every_ms: i64::try_from(every.as_millis()).unwrap_or(i64::MAX),
            aggregate,
            counted: true,
        };
        let statements = read
            .over_rollup(rolled_through)
            .unwrap_or_else(|| vec![read.part((start, end), Part::Raw)]);
        let series = self.query(&statements.join("; ")).await?;
        Ok(merge_partials(
            &series,
            aggregate,
            &epoch_buckets(read.every_ms),
        ))
    }

    /// One sensor's history in buckets of uneven length, such as a site's
    /// local days (23 or 25 hours across a daylight-saving change): bucket
    /// `i` is `[boundaries[i], boundaries[i + 1])`, so `n + 1` boundaries
    /// give `n` buckets, and only the readings of `[start, end)` (within
    /// them) count. InfluxDB groups by the largest width that divides
    /// every boundary (an hour for a zone whose offsets are whole hours),
    /// over the rollup as [`Influx::history_buckets`] does, and the parts
    /// are summed up here into their buckets; a mean is Σ sum / Σ count,
    /// as over the rollup. Each bucket's count of readings is given.
    #[allow(clippy::too_many_arguments)]
    pub async fn history_between(
        &self,
        site: &SiteSlug,
        sensor: &SensorKey,
        boundaries: &[EpochMillis],
        start: EpochMillis,
        end: EpochMillis,
        aggregate: Aggregate,
        rolled_through: EpochMillis,
    ) -> Result<Vec<HistoryBucket>> {
        let (Some(first), Some(last)) = (boundaries.first(), boundaries.last()) else {
            return Ok(Vec::new());
        };
        let (start, end) = (start.max(*first), end.min(*last));
        if start >= end {
            return Ok(Vec::new());
        }
        let read = HistoryRead {
            site,
            sensor,
            range: (start, end),
            every_ms: common_width(boundaries),
            aggregate,
            counted: true,
        };
        let statements = read
            .over_rollup(rolled_through)
            .unwrap_or_else(|| vec![read.part((start, end), Part::Raw)]);
        let series = self.query(&statements.join("; ")).await?;
        let starts: Vec<i64> = boundaries.iter().map(|at| at.as_millis()).collect();
        let bucket_of = |at: i64| {
            let index = starts
                .partition_point(|start| *start <= at)
                .checked_sub(1)?;
            (index + 1 < starts.len()).then(|| starts[index])
        };
        Ok(merge_partials(&series, aggregate, &bucket_of))
    }
}

/// The largest width, in whole minutes where it can be, that divides every
/// boundary (measured from the epoch, as InfluxDB aligns `GROUP BY time`),
/// at most a day. A boundary off the whole minute (a zone's local mean time
/// before standard time) is taken to its minute: its bucket may then gain
/// or lose those seconds.
fn common_width(boundaries: &[EpochMillis]) -> i64 {
    fn gcd(a: i64, b: i64) -> i64 {
        if b == 0 { a } else { gcd(b, a % b) }
    }
    let width = boundaries.iter().fold(stoker_domain::DAY_MS, |width, at| {
        gcd(width, at.as_millis().rem_euclid(stoker_domain::DAY_MS))
    });
    if width % MINUTE_MS == 0 {
        width
    } else {
        MINUTE_MS
    }
}

/// Where a time falls in buckets of `every_ms` aligned to the epoch.
fn epoch_buckets(every_ms: i64) -> impl Fn(i64) -> Option<i64> {
    move |at| Some(at - at.rem_euclid(every_ms.max(1)))
}

/// What one history read asks for.
#[derive(Debug, Clone, Copy)]
struct HistoryRead<'a> {
    site: &'a SiteSlug,
    sensor: &'a SensorKey,
    range: (EpochMillis, EpochMillis),
    every_ms: i64,
    aggregate: Aggregate,
    /// Whether each bucket's count of readings is read too.
    counted: bool,
}

impl HistoryRead<'_> {
    /// The statements of a read over the rollup, oldest part first (so
    /// that `last` takes the newest part's value); `None` when the rollup
    /// holds no whole minute of the range or `every` is not a whole number
    /// of minutes (everything is then read raw).
    fn over_rollup(&self, rolled_through: EpochMillis) -> Option<Vec<String>> {
        let (start, end) = self.range;
        let rolled_start = ceil_minute(start);
        let rolled_end = floor_minute(end).min(rolled_through);
        if self.every_ms % MINUTE_MS != 0 || rolled_end <= rolled_start {
            return None;
        }
        let mut statements = Vec::with_capacity(3);
        if start < rolled_start {
            statements.push(self.part((start, rolled_start), Part::Raw));
        }
        let minutes = (rolled_end.as_millis() - rolled_start.as_millis()) / MINUTE_MS;
        statements.push(self.part(
            (rolled_start, rolled_end),
            if minutes <= PLAIN_MINUTES {
                Part::RollupMinutes
            } else {
                Part::Rollup
            },
        ));
        if rolled_end < end {
            statements.push(self.part((rolled_end, end), Part::Raw));
        }
        Some(statements)
    }

    fn part(&self, range: (EpochMillis, EpochMillis), part: Part) -> String {
        partial_query(
            self.site,
            self.sensor,
            range,
            self.every_ms,
            self.aggregate,
            (part, self.counted),
        )
    }
}

/// One part of a history read: what its buckets contribute to
/// `aggregate`, named `sum`/`count` (mean), `min`, `max` or `last`, and
/// when `counted`, the count of readings as `count` too.
fn partial_query(
    site: &SiteSlug,
    sensor: &SensorKey,
    (start, end): (EpochMillis, EpochMillis),
    every_ms: i64,
    aggregate: Aggregate,
    (part, counted): (Part, bool),
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
    // A mean reads the count already.
    let count = match (counted && aggregate != Aggregate::Mean, part) {
        (false, _) => "",
        (true, Part::Raw) => ", count(\"value\") AS \"count\"",
        (true, Part::Rollup) => ", sum(\"count\") AS \"count\"",
        (true, Part::RollupMinutes) => ", \"count\"",
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
        "SELECT {selected}{count} FROM {from} WHERE \"site\" = {} AND \"sensor\" = {} \
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
/// bucket, with its count of readings where the parts read it (else 0).
fn merge_partials(
    series: &[Series],
    aggregate: Aggregate,
    bucket_of: &dyn Fn(i64) -> Option<i64>,
) -> Vec<HistoryBucket> {
    #[derive(Default)]
    struct Bucket {
        sum: f64,
        count: f64,
        readings: u64,
        value: Option<f64>,
    }
    let mut buckets: BTreeMap<i64, Bucket> = BTreeMap::new();
    for one in series {
        let at = |name: &str| one.columns.iter().position(|column| column == name);
        let (time, first, counted) = match aggregate {
            Aggregate::Mean => (at("time"), at("sum"), at("count")),
            Aggregate::Min => (at("time"), at("min"), at("count")),
            Aggregate::Max => (at("time"), at("max"), at("count")),
            Aggregate::Last => (at("time"), at("last"), at("count")),
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
                .and_then(bucket_of)
            else {
                continue;
            };
            let Some(value) = number(row, first) else {
                continue;
            };
            let readings = number(row, counted);
            if aggregate == Aggregate::Mean && readings.is_none() {
                continue;
            }
            let bucket = buckets.entry(start).or_default();
            // Counts are whole numbers well within 2^53.
            bucket.readings += readings.map_or(0, |count| count as u64);
            match aggregate {
                Aggregate::Mean => {
                    let count = readings.unwrap_or_default();
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
        .filter_map(|(start, bucket)| {
            Some(HistoryBucket {
                start: EpochMillis::from_millis(start).ok()?,
                value: bucket.value?,
                count: bucket.readings,
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(millis: i64) -> EpochMillis {
        EpochMillis::from_millis(millis).unwrap()
    }

    fn bucket(start: i64, value: f64, count: u64) -> HistoryBucket {
        HistoryBucket {
            start: at(start),
            value,
            count,
        }
    }

    fn part(columns: &[&str], values: Vec<Vec<serde_json::Value>>) -> Series {
        Series {
            tags: BTreeMap::new(),
            columns: columns.iter().map(|name| (*name).to_owned()).collect(),
            values,
        }
    }

    #[test]
    fn parts_merge_into_one_value_per_bucket() {
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
            merge_partials(&[head, rolled], Aggregate::Mean, &epoch_buckets(60_000)),
            vec![bucket(0, 3.0, 4), bucket(120_000, 2.0, 2)]
        );
        let older = part(&["time", "last"], vec![vec![0.into(), 1.0.into()]]);
        let newer = part(&["time", "last"], vec![vec![0.into(), 7.0.into()]]);
        assert_eq!(
            merge_partials(&[older, newer], Aggregate::Last, &epoch_buckets(60_000)),
            vec![bucket(0, 7.0, 0)],
            "no count asked for"
        );
    }

    #[test]
    fn counted_parts_add_their_counts_up() {
        // Rollup minutes (bucketed here) and a raw tail in 2-minute buckets.
        let minutes = part(
            &["time", "max", "count"],
            vec![
                vec![0.into(), 5.0.into(), 6.into()],
                vec![60_000.into(), 11.0.into(), 6.into()],
                vec![120_000.into(), 17.0.into(), 6.into()],
            ],
        );
        let raw = part(
            &["time", "max", "count"],
            vec![vec![120_000.into(), 20.0.into(), 2.into()]],
        );
        assert_eq!(
            merge_partials(&[minutes, raw], Aggregate::Max, &epoch_buckets(120_000)),
            vec![bucket(0, 11.0, 12), bucket(120_000, 20.0, 8)]
        );
    }

    #[test]
    fn uneven_buckets_are_grouped_by_the_width_dividing_every_boundary() {
        let hour = 3_600_000;
        // Berlin's days around the spring change: 23:00 and 22:00 UTC.
        let days = [at(-hour), at(23 * hour), at(46 * hour)];
        assert_eq!(common_width(&days), hour);
        assert_eq!(common_width(&[at(0), at(86_400_000)]), 86_400_000);
        assert_eq!(
            common_width(&[at(30 * 60_000), at(86_400_000)]),
            30 * 60_000
        );
        assert_eq!(common_width(&[at(1_234), at(86_400_000)]), MINUTE_MS);
        let starts: Vec<i64> = days.iter().map(|day| day.as_millis()).collect();
        let hours = part(
            &["time", "sum", "count"],
            (-1..45)
                .map(|h| vec![(h * hour).into(), 2.0.into(), 2.into()])
                .collect(),
        );
        let bucket_of = |at: i64| {
            let index = starts
                .partition_point(|start| *start <= at)
                .checked_sub(1)?;
            (index + 1 < starts.len()).then(|| starts[index])
        };
        assert_eq!(
            merge_partials(&[hours], Aggregate::Mean, &bucket_of),
            vec![bucket(-hour, 1.0, 48), bucket(23 * hour, 1.0, 44)]
        );
    }

    #[test]
    fn a_counted_read_asks_each_part_for_its_count() {
        let site = SiteSlug::parse("b-1").unwrap();
        let sensor = SensorKey::parse("t").unwrap();
        let read = |aggregate, counted| HistoryRead {
            site: &site,
            sensor: &sensor,
            range: (at(30_000), at(600_000)),
            every_ms: 60_000,
            aggregate,
            counted,
        };
        let statements = read(Aggregate::Last, true)
            .over_rollup(at(300_000))
            .unwrap();
        assert_eq!(statements.len(), 3, "{statements:?}");
        assert!(
            statements[0].starts_with(
                "SELECT last(\"value\") AS \"last\", count(\"value\") AS \"count\" FROM"
            )
        );
        assert!(statements[1].starts_with("SELECT \"last\", \"count\" FROM"));
        assert!(
            statements[2].starts_with(
                "SELECT last(\"value\") AS \"last\", count(\"value\") AS \"count\" FROM"
            )
        );
        let uncounted = read(Aggregate::Last, false)
            .over_rollup(at(300_000))
            .unwrap();
        assert!(
            uncounted
                .iter()
                .all(|statement| !statement.contains("count")),
            "{uncounted:?}"
        );
        let mean = read(Aggregate::Mean, true)
            .over_rollup(at(300_000))
            .unwrap();
        assert_eq!(
            mean[0].matches("count").count(),
            2,
            "the mean's own count only: {}",
            mean[0]
        );
        assert!(
            read(Aggregate::Max, true).over_rollup(at(0)).is_none(),
            "no rollup yet"
        );
    }
}
