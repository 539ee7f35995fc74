//! InfluxQL text: escaping, and the queries Stoker runs.
//!
//! Identifiers come from validated slugs and keys, and are still quoted;
//! string literals are escaped. Nothing reaches InfluxDB unescaped.

use std::fmt::Write as _;

use stoker_domain::{EpochMillis, SensorKey, SiteSlug};

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
    let mut query = format!(
        "SELECT \"value\" FROM {} WHERE \"site\" = {} AND \"sensor\" = {}",
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

#[cfg(test)]
mod tests {
    use super::*;

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
