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

#[cfg(test)]
mod tests {
    use super::*;

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
