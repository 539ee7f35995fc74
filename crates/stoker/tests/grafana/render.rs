//! Grafana's substitution of variables and macros into a query, as far as
//! Stoker's dashboards use it.
//!
//! Grafana interpolates template variables (the dashboard's own, and its
//! built-ins such as `$__interval`) in the browser, then the SQL data
//! source expands its macros (`$__timeFilter(col)`, …) on the server. This
//! does the same in the same order, formats variables the way each data
//! source does, and refuses anything it does not know: a query that still
//! holds a `$name`, `${…}` or `[[…]]` afterwards is an error, so a typo in
//! a dashboard, or a macro the test does not implement, fails the test
//! instead of reaching the database half substituted.

use std::collections::HashMap;

use stoker_domain::EpochMillis;

use crate::dashboards::Language;

/// The dashboard time range the queries run with, in epoch milliseconds.
#[derive(Debug, Clone, Copy)]
pub(crate) struct TimeRange {
    /// `$__from`: the start.
    pub from_ms: i64,
    /// `$__to`: the end.
    pub to_ms: i64,
}

/// A template variable's current value(s).
#[derive(Debug, Clone)]
pub(crate) struct Binding {
    /// The selected values (all of them for "All"; one for a repeated panel).
    pub values: Vec<String>,
    /// Whether the variable is multi-value or has "All": Grafana then
    /// formats it as a list (quoted literals for SQL, a regex alternation
    /// for InfluxQL), even when a repeated panel binds a single value.
    pub multi: bool,
}

/// The dashboard's variables by name.
pub(crate) type Bindings = HashMap<String, Binding>;

/// What a query is rendered with.
#[derive(Debug)]
pub(crate) struct Context<'a> {
    /// Which data source runs it (formats and macros differ).
    pub language: Language,
    /// The time range.
    pub range: TimeRange,
    /// `$__interval` in milliseconds.
    pub interval_ms: i64,
    /// The dashboard's variables.
    pub variables: &'a Bindings,
}

/// The query as Grafana would send it, or why it cannot be rendered.
pub(crate) fn render(query: &str, context: &Context<'_>) -> Result<String, String> {
    let interpolated = interpolate(query, context)?;
    let expanded = match context.language {
        Language::Sql => expand_macros(&interpolated, context)?,
        Language::InfluxQl => interpolated,
    };
    match leftover(&expanded) {
        Some(token) => Err(format!("{token:?} is left unsubstituted in: {expanded}")),
        None => Ok(expanded),
    }
}

/// Whether `c` may appear in a variable or macro name (Grafana's `\w`).
fn is_name_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || c == '_'
}

/// Replaces `$name` and `${name}` by their values. A `$__name(` is a SQL
/// macro: left for [`expand_macros`], with the variables in its arguments
/// replaced. A `$` not followed by a name (a regex anchor, `/^…$/`) stays.
fn interpolate(query: &str, context: &Context<'_>) -> Result<String, String> {
    let mut out = String::with_capacity(query.len());
    let mut rest = query;
    while let Some(dollar) = rest.find('$') {
        out.push_str(&rest[..dollar]);
        let after = &rest[dollar + 1..];
        if let Some(braced) = after.strip_prefix('{') {
            let end = braced
                .find('}')
                .ok_or_else(|| format!("unclosed ${{ in: {query}"))?;
            let inner = &braced[..end];
            if inner.contains(':') || inner.contains('.') {
                return Err(format!(
                    "${{{inner}}}: variable formats and fields are not supported by this test"
                ));
            }
            out.push_str(&value(inner, context)?);
            rest = &braced[end + 1..];
            continue;
        }
        let length = after.find(|c| !is_name_char(c)).unwrap_or(after.len());
        let name = &after[..length];
        if name.is_empty() {
            out.push('$');
        } else if name.starts_with("__") && after[length..].starts_with('(') {
            out.push('$');
            out.push_str(name);
        } else {
            out.push_str(&value(name, context)?);
        }
        rest = &after[length..];
    }
    out.push_str(rest);
    Ok(out)
}

/// A built-in or dashboard variable's text.
fn value(name: &str, context: &Context<'_>) -> Result<String, String> {
    let TimeRange { from_ms, to_ms } = context.range;
    match (name, context.language) {
        ("__interval" | "interval", _) => Ok(format_interval(context.interval_ms)),
        ("__interval_ms", _) => Ok(context.interval_ms.to_string()),
        ("timeFilter", Language::InfluxQl) => {
            Ok(format!("time >= {from_ms}ms and time <= {to_ms}ms"))
        }
        _ => context
            .variables
            .get(name)
            .map(|binding| format_variable(binding, context.language))
            .ok_or_else(|| {
                format!(
                    "${name} is neither a variable of the dashboard nor a built-in this test knows"
                )
            }),
    }
}

/// Formats a variable as the data source's `interpolateVariable` does.
fn format_variable(binding: &Binding, language: Language) -> String {
    let first = binding.values.first().map(String::as_str).unwrap_or("");
    match (language, binding.multi) {
        (Language::Sql, true) => binding
            .values
            .iter()
            .map(|value| format!("'{}'", value.replace('\'', "''")))
            .collect::<Vec<_>>()
            .join(","),
        (Language::Sql, false) => first.replace('\'', "''"),
        (Language::InfluxQl, true) => {
            let escaped: Vec<String> = binding.values.iter().map(|v| escape_regex(v)).collect();
            match escaped.as_slice() {
                [one] => one.clone(),
                many => format!("({})", many.join("|")),
            }
        }
        (Language::InfluxQl, false) => first.to_owned(),
    }
}

/// Grafana's `escapeRegex`.
fn escape_regex(value: &str) -> String {
    let mut out = String::with_capacity(value.len());
    for c in value.chars() {
        if "\\^$*+?.()|[]{}/".contains(c) {
            out.push('\\');
        }
        out.push(c);
    }
    out
}

/// `$__interval`'s text: `10s`, `1m`, `2h`, `500ms`, … (Grafana's
/// `secondsToHms` for the round values it picks).
fn format_interval(ms: i64) -> String {
    const UNITS: [(i64, &str); 4] = [
        (86_400_000, "d"),
        (3_600_000, "h"),
        (60_000, "m"),
        (1_000, "s"),
    ];
    UNITS.iter().find(|(size, _)| ms % size == 0).map_or_else(
        || format!("{ms}ms"),
        |(size, unit)| format!("{}{unit}", ms / size),
    )
}

/// Parses an interval as Grafana writes it (`10s`, `1m`, `'5m'`, `>1m` for
/// a panel's minimum interval) into milliseconds.
pub(crate) fn parse_interval(text: &str) -> Result<i64, String> {
    let trimmed = text
        .trim()
        .trim_start_matches('>')
        .trim_matches(['\'', '"']);
    let digits = trimmed
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(trimmed.len());
    let (number, unit) = trimmed.split_at(digits);
    let number: i64 = number
        .parse()
        .map_err(|_| format!("interval {text:?} does not start with a number"))?;
    let unit_ms = match unit {
        "ms" => 1,
        "s" => 1_000,
        "m" => 60_000,
        "h" => 3_600_000,
        "d" => 86_400_000,
        "w" => 604_800_000,
        _ => return Err(format!("interval {text:?} has an unknown unit")),
    };
    Ok(number * unit_ms)
}

/// A time as Grafana's SQL macros write it: RFC 3339, UTC.
fn timestamp(ms: i64) -> Result<String, String> {
    let at = EpochMillis::from_millis(ms).map_err(|error| error.to_string())?;
    Ok(at
        .to_datetime()
        .format("%Y-%m-%dT%H:%M:%S%.3fZ")
        .to_string())
}

/// Expands the SQL macros the dashboards use, as Grafana's Postgres data
/// source renders them; any other macro is an error.
fn expand_macros(query: &str, context: &Context<'_>) -> Result<String, String> {
    let from = timestamp(context.range.from_ms)?;
    let to = timestamp(context.range.to_ms)?;
    let mut out = String::with_capacity(query.len());
    let mut rest = query;
    while let Some(start) = rest.find("$__") {
        out.push_str(&rest[..start]);
        let after = &rest[start + 1..];
        let length = after.find(|c| !is_name_char(c)).unwrap_or(after.len());
        let name = &after[..length];
        let Some(arguments_and_rest) = after[length..].strip_prefix('(') else {
            // Not a macro call: reported as left over by `render`.
            out.push('$');
            out.push_str(name);
            rest = &after[length..];
            continue;
        };
        let (arguments, remainder) = split_arguments(arguments_and_rest)
            .ok_or_else(|| format!("${name}( is not closed in: {query}"))?;
        let expansion = match (name, arguments.as_slice()) {
            ("__timeFilter", [column]) => format!("{column} BETWEEN '{from}' AND '{to}'"),
            ("__timeFrom", []) => format!("'{from}'"),
            ("__timeTo", []) => format!("'{to}'"),
            ("__timeGroupAlias", [column, interval]) => {
                let seconds = parse_interval(interval)? as f64 / 1000.0;
                format!("floor(extract(epoch from {column})/{seconds})*{seconds} AS \"time\"")
            }
            _ => {
                return Err(format!(
                    "macro ${name} with {} argument(s) is not implemented by this test",
                    arguments.len()
                ));
            }
        };
        out.push_str(&expansion);
        rest = remainder;
    }
    out.push_str(rest);
    Ok(out)
}

/// Splits `a, f(b, c))…` at its top-level commas up to the closing
/// parenthesis; returns the trimmed arguments (none for `()`) and the text
/// after the parenthesis.
fn split_arguments(text: &str) -> Option<(Vec<String>, &str)> {
    let mut depth = 0usize;
    let mut arguments = Vec::new();
    let mut current = String::new();
    for (index, c) in text.char_indices() {
        match c {
            '(' => depth += 1,
            ')' if depth == 0 => {
                if !current.trim().is_empty() || !arguments.is_empty() {
                    arguments.push(current.trim().to_owned());
                }
                return Some((arguments, &text[index + 1..]));
            }
            ')' => depth -= 1,
            ',' if depth == 0 => {
                arguments.push(current.trim().to_owned());
                current.clear();
                continue;
            }
            _ => {}
        }
        current.push(c);
    }
    None
}

/// The first variable, macro or `[[…]]` left in a rendered query.
fn leftover(query: &str) -> Option<String> {
    if let Some(start) = query.find("[[") {
        return Some(query[start..].chars().take(30).collect());
    }
    query.match_indices('$').find_map(|(index, _)| {
        let after = &query[index + 1..];
        after
            .starts_with(|c: char| is_name_char(c) || c == '{')
            .then(|| query[index..].chars().take(30).collect())
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const RANGE: TimeRange = TimeRange {
        from_ms: 1_795_000_000_000,
        to_ms: 1_795_007_200_000,
    };

    fn context(language: Language, variables: &Bindings) -> Context<'_> {
        Context {
            language,
            range: RANGE,
            interval_ms: 60_000,
            variables,
        }
    }

    fn bindings(multi: bool, values: &[&str]) -> Bindings {
        let binding = Binding {
            values: values.iter().map(|value| value.to_string()).collect(),
            multi,
        };
        Bindings::from([("site".to_owned(), binding)])
    }

    #[test]
    fn influxql_gets_its_time_filter_interval_and_variables() {
        let variables = bindings(false, &["boiler-house-1"]);
        let rendered = render(
            r#"SELECT mean("value") FROM "readings" WHERE "site" =~ /^$site$/ AND "site" = '${site}' AND $timeFilter GROUP BY time($__interval)"#,
            &context(Language::InfluxQl, &variables),
        )
        .unwrap();
        assert_eq!(
            rendered,
            r#"SELECT mean("value") FROM "readings" WHERE "site" =~ /^boiler-house-1$/ AND "site" = 'boiler-house-1' AND time >= 1795000000000ms and time <= 1795007200000ms GROUP BY time(1m)"#
        );
    }

    #[test]
    fn multi_value_variables_become_a_regex_or_a_list_of_literals() {
        let variables = bindings(true, &["a.b", "c'd"]);
        let influx = render("/^$site$/", &context(Language::InfluxQl, &variables)).unwrap();
        assert_eq!(influx, r"/^(a\.b|c'd)$/");
        let sql = render("site IN ($site)", &context(Language::Sql, &variables)).unwrap();
        assert_eq!(sql, "site IN ('a.b','c''d')");
    }

    #[test]
    fn sql_macros_are_expanded_after_the_variables_in_their_arguments() {
        let variables = Bindings::new();
        let rendered = render(
            "SELECT $__timeGroupAlias(e.at, $__interval), $__interval_ms FROM t \
             WHERE $__timeFilter(e.at) AND x < $__timeTo() AND y > $__timeFrom()",
            &context(Language::Sql, &variables),
        )
        .unwrap();
        assert_eq!(
            rendered,
            "SELECT floor(extract(epoch from e.at)/60)*60 AS \"time\", 60000 FROM t \
             WHERE e.at BETWEEN '2026-11-18T11:06:40.000Z' AND '2026-11-18T13:06:40.000Z' \
             AND x < '2026-11-18T13:06:40.000Z' AND y > '2026-11-18T11:06:40.000Z'"
        );
    }

    #[test]
    fn anything_unknown_or_left_over_is_an_error() {
        let variables = bindings(false, &["boiler-house-1"]);
        let influx = context(Language::InfluxQl, &variables);
        let sql = context(Language::Sql, &variables);
        assert!(render("WHERE $sensor", &influx).is_err());
        assert!(render("WHERE ${site:csv}", &influx).is_err());
        assert!(render("WHERE [[site]]", &influx).is_err());
        assert!(render("WHERE $__timeFilter(time)", &influx).is_err());
        assert!(render("WHERE $timeFilter", &sql).is_err());
        assert!(render("WHERE $__unixEpochFilter(at)", &sql).is_err());
        assert!(render("WHERE $__timeFilter(at", &sql).is_err());
        // A regex anchor or a dollar inside a literal is no variable.
        assert!(render("WHERE x ~ '^a$' AND y = '$'", &sql).is_ok());
    }

    #[test]
    fn intervals_read_and_print_as_grafana_writes_them() {
        assert_eq!(parse_interval("1m"), Ok(60_000));
        assert_eq!(parse_interval(">10s"), Ok(10_000));
        assert_eq!(parse_interval("'5m'"), Ok(300_000));
        assert!(parse_interval("5 minutes").is_err());
        assert_eq!(format_interval(10_000), "10s");
        assert_eq!(format_interval(3_600_000), "1h");
        assert_eq!(format_interval(1_500), "1500ms");
    }
}
