//! InfluxQL text: escaping, and the queries Stoker runs.
//!
//! Identifiers come from validated slugs and keys, and are still quoted;
//! string literals are escaped. Nothing reaches InfluxDB unescaped.

use std::fmt::Write as _;

use stoker_domain::{EpochMillis, SensorKey, SensorType, SiteSlug};

use crate::line::MEASUREMENT;

/// A double-quoted identifier: `"` and `\` take a backslash.
pub(crate) fn identifier(name: &str) -> String {
    let mut out = String::with_capacity(name.len() + 2);
    out.push('"');
    for character in name.chars() {
        if matches!(character, '"' | '\\') {
            out.push('\\');
        }
        out.push(character);
    }
    out.push('"');
    out
}

/// A single-quoted string literal: `'` and `\` take a backslash.
pub(crate) fn literal(value: &str) -> String {
    let mut out = String::with_capacity(value.len() + 2);
    out.push('\'');
    for character in value.chars() {
        if matches!(character, '\'' | '\\') {
            out.push('\\');
        }
        out.push(character);
    }
    out.push('\'');
    out
}

/// The last reading of every sensor of a site.
pub(crate) fn latest_per_sensor(site: &SiteSlug) -> String {
    format!(
        "SELECT last(\"value\") AS \"value\" FROM {} WHERE \"site\" = {} GROUP BY \"sensor\", \"type\"",
        identifier(MEASUREMENT),
        literal(site.as_str()),
    )
}

/// How many readings a site has, over all time.
pub(crate) fn count_readings(site: &SiteSlug) -> String {
    format!(
        "SELECT count(\"value\") FROM {} WHERE \"site\" = {}",
        identifier(MEASUREMENT),
        literal(site.as_str()),
    )
}

/// One sensor's raw readings in `[start, end)`, oldest first.
pub(crate) fn readings(
    site: &SiteSlug,
    sensor: &SensorKey,
    start: EpochMillis,
    end: EpochMillis,
) -> String {
    readings_field("value", site, sensor, start, end)
}

/// One state sensor's raw readings in `[start, end)` as the names in
/// field `state`, oldest first.
pub(crate) fn state_names(
    site: &SiteSlug,
    sensor: &SensorKey,
    start: EpochMillis,
    end: EpochMillis,
) -> String {
    readings_field("state", site, sensor, start, end)
}

fn readings_field(
    field: &str,
    site: &SiteSlug,
    sensor: &SensorKey,
    start: EpochMillis,
    end: EpochMillis,
) -> String {
    let mut query = format!(
        "SELECT {} FROM {} WHERE \"site\" = {} AND \"sensor\" = {}",
        identifier(field),
        identifier(MEASUREMENT),
        literal(site.as_str()),
        literal(sensor.as_str()),
    );
    let _ = write!(
        query,
        " AND time >= {}ms AND time < {}ms ORDER BY time ASC",
        start.as_millis(),
        end.as_millis()
    );
    query
}

/// How a history bucket sums up its readings.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Aggregate {
    /// The arithmetic mean.
    Mean,
    /// The lowest reading.
    Min,
    /// The highest reading.
    Max,
    /// The newest reading.
    Last,
}

impl Aggregate {
    /// Every aggregate, for parsers and documentation.
    pub const ALL: [Aggregate; 4] = [
        Aggregate::Mean,
        Aggregate::Min,
        Aggregate::Max,
        Aggregate::Last,
    ];

    /// The name in URLs (`agg=mean`) and InfluxQL (`mean(...)`).
    pub fn as_str(self) -> &'static str {
        match self {
            Aggregate::Mean => "mean",
            Aggregate::Min => "min",
            Aggregate::Max => "max",
            Aggregate::Last => "last",
        }
    }

    /// Parses `mean`, `min`, `max` or `last`.
    pub fn parse(value: &str) -> Option<Self> {
        Self::ALL
            .into_iter()
            .find(|aggregate| aggregate.as_str() == value)
    }
}

/// One sensor's readings in `[start, end)` summed up per `every_ms`
/// bucket (aligned to the epoch); empty buckets are left out.
pub(crate) fn history(
    site: &SiteSlug,
    sensor: &SensorKey,
    start: EpochMillis,
    end: EpochMillis,
    every_ms: u64,
    aggregate: Aggregate,
) -> String {
    format!(
        "SELECT {}(\"value\") AS \"value\" FROM {} WHERE \"site\" = {} AND \"sensor\" = {} \
         AND time >= {}ms AND time < {}ms GROUP BY time({}ms) fill(none)",
        aggregate.as_str(),
        identifier(MEASUREMENT),
        literal(site.as_str()),
        literal(sensor.as_str()),
        start.as_millis(),
        end.as_millis(),
        every_ms.max(1),
    )
}

/// Which series a query reads: those matching any of `any_of`; every
/// series when empty.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct SeriesFilter {
    /// Conjunctions of tag equalities, OR-ed together.
    pub any_of: Vec<SeriesMatch>,
}

/// Tags a series must have; `None` matches any value.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct SeriesMatch {
    /// The `site` tag.
    pub site: Option<SiteSlug>,
    /// The `sensor` tag.
    pub sensor: Option<SensorKey>,
    /// The `type` tag.
    pub sensor_type: Option<SensorType>,
}

impl SeriesFilter {
    /// ` AND (…)` for the WHERE clause; empty when every series is read
    /// (no conjunctions, or one that matches everything).
    fn condition(&self) -> String {
        let mut alternatives = Vec::with_capacity(self.any_of.len());
        for matched in &self.any_of {
            let mut terms = Vec::with_capacity(3);
            if let Some(site) = &matched.site {
                terms.push(format!("\"site\" = {}", literal(site.as_str())));
            }
            if let Some(sensor) = &matched.sensor {
                terms.push(format!("\"sensor\" = {}", literal(sensor.as_str())));
            }
            if let Some(sensor_type) = &matched.sensor_type {
                terms.push(format!("\"type\" = {}", literal(sensor_type.as_str())));
            }
            if terms.is_empty() {
                return String::new();
            }
            alternatives.push(format!("({})", terms.join(" AND ")));
        }
        if alternatives.is_empty() {
            String::new()
        } else {
            format!(" AND ({})", alternatives.join(" OR "))
        }
    }
}

/// Which statistics a [`bucket_stats`] query asks for besides `count`
/// (always read). Each costs InfluxDB 1.x a cursor per series, about as
/// much as the whole query with one function, so a query asks only for
/// what its rules read.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Columns {
    /// `sum`.
    pub sum: bool,
    /// `min`.
    pub min: bool,
    /// `max`.
    pub max: bool,
    /// `first`.
    pub first: bool,
    /// `last`.
    pub last: bool,
    /// `stddev` (sample).
    pub stddev: bool,
}

impl Columns {
    /// Every statistic.
    pub const ALL: Columns = Columns {
        sum: true,
        min: true,
        max: true,
        first: true,
        last: true,
        stddev: true,
    };

    /// What either asks for.
    pub fn union(self, other: Columns) -> Columns {
        Columns {
            sum: self.sum || other.sum,
            min: self.min || other.min,
            max: self.max || other.max,
            first: self.first || other.first,
            last: self.last || other.last,
            stddev: self.stddev || other.stddev,
        }
    }

    /// The functions selected, `count` first.
    pub(crate) fn names(self) -> Vec<&'static str> {
        let mut names = vec!["count"];
        for (wanted, name) in [
            (self.sum, "sum"),
            (self.min, "min"),
            (self.max, "max"),
            (self.first, "first"),
            (self.last, "last"),
            (self.stddev, "stddev"),
        ] {
            if wanted {
                names.push(name);
            }
        }
        names
    }
}

/// Per series (site, sensor) and per `bucket_ms` bucket (aligned to the
/// epoch) of `[start, end)`: the count of readings and the `columns`
/// asked for, each named as its function; empty buckets left out.
pub(crate) fn bucket_stats(
    filter: &SeriesFilter,
    start: EpochMillis,
    end: EpochMillis,
    bucket_ms: u64,
    columns: Columns,
) -> String {
    let selected: Vec<String> = columns
        .names()
        .iter()
        .map(|name| format!("{name}(\"value\") AS \"{name}\""))
        .collect();
    format!(
        "SELECT {} FROM {} \
         WHERE time >= {}ms AND time < {}ms{} GROUP BY time({}ms), \"site\", \"sensor\" fill(none)",
        selected.join(", "),
        identifier(MEASUREMENT),
        start.as_millis(),
        end.as_millis(),
        filter.condition(),
        bucket_ms.max(1),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bucket_stats_filters_by_any_of_the_matches() {
        let filter = SeriesFilter {
            any_of: vec![
                SeriesMatch {
                    site: Some(SiteSlug::parse("b-1").unwrap()),
                    sensor_type: Some(SensorType::parse("pressure").unwrap()),
                    ..SeriesMatch::default()
                },
                SeriesMatch {
                    sensor: Some(SensorKey::parse("t_1").unwrap()),
                    ..SeriesMatch::default()
                },
            ],
        };
        let query = bucket_stats(
            &filter,
            EpochMillis::from_millis(0).unwrap(),
            EpochMillis::from_millis(60_000).unwrap(),
            10_000,
            Columns {
                sum: true,
                last: true,
                ..Columns::default()
            },
        );
        assert_eq!(
            query,
            "SELECT count(\"value\") AS \"count\", sum(\"value\") AS \"sum\", last(\"value\") AS \"last\" \
             FROM \"readings\" WHERE time >= 0ms AND time < 60000ms AND ((\"site\" = 'b-1' AND \"type\" = 'pressure') \
             OR (\"sensor\" = 't_1')) GROUP BY time(10000ms), \"site\", \"sensor\" fill(none)"
        );
        let everything = SeriesFilter {
            any_of: vec![SeriesMatch::default(), filter.any_of[0].clone()],
        };
        let query = bucket_stats(
            &everything,
            EpochMillis::from_millis(0).unwrap(),
            EpochMillis::from_millis(1).unwrap(),
            1,
            Columns::ALL,
        );
        assert!(!query.contains("site\" ="), "{query}");
        assert!(
            query.starts_with("SELECT count(\"value\") AS \"count\", sum("),
            "{query}"
        );
    }

    #[test]
    fn history_groups_by_time_with_every_value_quoted() {
        let query = history(
            &SiteSlug::parse("b-1").unwrap(),
            &SensorKey::parse("t_1").unwrap(),
            EpochMillis::from_millis(1_000).unwrap(),
            EpochMillis::from_millis(61_000).unwrap(),
            60_000,
            Aggregate::Max,
        );
        assert_eq!(
            query,
            "SELECT max(\"value\") AS \"value\" FROM \"readings\" WHERE \"site\" = 'b-1' AND \"sensor\" = 't_1' \
             AND time >= 1000ms AND time < 61000ms GROUP BY time(60000ms) fill(none)"
        );
        assert_eq!(Aggregate::parse("last"), Some(Aggregate::Last));
        assert_eq!(Aggregate::parse("median"), None);
    }

    #[test]
    fn quotes_and_backslashes_are_escaped() {
        assert_eq!(literal(r"a'b\c"), r"'a\'b\\c'");
        assert_eq!(identifier(r#"a"b\c"#), r#""a\"b\\c""#);
    }

    #[test]
    fn queries_quote_every_value() {
        let site = SiteSlug::parse("boiler-house-1").unwrap();
        assert_eq!(
            latest_per_sensor(&site),
            "SELECT last(\"value\") AS \"value\" FROM \"readings\" WHERE \"site\" = 'boiler-house-1' GROUP BY \"sensor\", \"type\""
        );
    }
}
