//! The check behind the `line_parse` fuzz target and the test that replays
//! its corpus: arbitrary bytes as a write's body. [`parse()`](super::parse)
//! must never panic, number its lines within the body, give only lines
//! that hold InfluxDB's rules (a measurement, distinct non-empty tags, at
//! least one field, finite floats), and read each line it accepts, written
//! out again with every escape InfluxDB's rules need ([`write_line`]),
//! back to the same line, unless a name (measurement, tag, field key)
//! holds a newline: InfluxDB's line splitter and its field scanner treat
//! backslashes and leading spaces differently, so a newline can end up
//! inside a name, and no line protocol writes such a name back (the line
//! is still read as InfluxDB reads it). Not an API.

use std::fmt::Write as _;

use super::encode::push_float;
use super::{FieldValue, Line, parse};

/// Runs the check over fuzz input; panics on a failure. Returns how many
/// lines parsed and how many were refused.
pub fn check_parse(data: &[u8]) -> (usize, usize) {
    let most = 1 + data.iter().filter(|byte| **byte == b'\n').count();
    let mut last = 0;
    let (mut parsed, mut refused) = (0, 0);
    for outcome in parse(data) {
        let number = match &outcome {
            Ok(line) => line.number,
            Err(error) => error.line,
        };
        assert!(
            number > last && number <= most,
            "line {number} after {last} (of {most})"
        );
        last = number;
        match outcome {
            Ok(line) => {
                check_line(&line);
                parsed += 1;
                if has_newline_in_a_name(&line) {
                    continue;
                }
                let text = write_line(&line);
                let again: Vec<_> = parse(text.as_bytes()).collect();
                match again.as_slice() {
                    [Ok(read)] => {
                        assert_eq!(read.measurement, line.measurement, "{text:?}");
                        assert_eq!(read.tags, line.tags, "{text:?}");
                        assert_eq!(read.timestamp, line.timestamp, "{text:?}");
                        assert_eq!(read.fields.len(), line.fields.len(), "{text:?}");
                        for ((key, value), (read_key, read_value)) in
                            line.fields.iter().zip(&read.fields)
                        {
                            assert_eq!(read_key, key, "{text:?}");
                            same_value(value, read_value, &text);
                        }
                    }
                    other => panic!("{line:?} written as {text:?} reads back as {other:?}"),
                }
            }
            Err(error) => {
                assert!(error.text.chars().count() <= 101, "{error}");
                assert!(error.to_string().starts_with(&format!("line {number}: ")));
                refused += 1;
            }
        }
    }
    (parsed, refused)
}

fn has_newline_in_a_name(line: &Line<'_>) -> bool {
    line.measurement.contains('\n')
        || line
            .tags
            .iter()
            .any(|(key, value)| key.contains('\n') || value.contains('\n'))
        || line.fields.iter().any(|(key, _)| key.contains('\n'))
}

fn check_line(line: &Line<'_>) {
    assert!(!line.measurement.is_empty(), "{line:?}");
    for (index, (key, value)) in line.tags.iter().enumerate() {
        assert!(!key.is_empty() && !value.is_empty(), "{line:?}");
        assert!(
            line.tags[..index].iter().all(|(earlier, _)| earlier != key),
            "{line:?}"
        );
    }
    assert!(!line.fields.is_empty(), "{line:?}");
    for (key, value) in &line.fields {
        assert!(!key.is_empty(), "{line:?}");
        if let FieldValue::Float(float) = value {
            assert!(float.is_finite(), "{line:?}");
        }
    }
}

fn same_value(written: &FieldValue<'_>, read: &FieldValue<'_>, text: &str) {
    match (written, read) {
        (FieldValue::Float(a), FieldValue::Float(b)) => {
            assert_eq!(a.to_bits(), b.to_bits(), "{text:?}");
        }
        _ => assert_eq!(written, read, "{text:?}"),
    }
}

/// A line as line protocol with every escape InfluxDB 1.x/2.x's rules
/// need: `,` and space in the measurement; `,`, `=` and space in tag keys,
/// tag values and field keys; `"` and `\` in string values. No newline at
/// the end.
pub fn write_line(line: &Line<'_>) -> String {
    let mut out = String::new();
    escape(&mut out, &line.measurement, &[',', ' ']);
    for (key, value) in &line.tags {
        out.push(',');
        escape(&mut out, key, &[',', '=', ' ']);
        out.push('=');
        escape(&mut out, value, &[',', '=', ' ']);
    }
    for (index, (key, value)) in line.fields.iter().enumerate() {
        out.push(if index == 0 { ' ' } else { ',' });
        escape(&mut out, key, &[',', '=', ' ']);
        out.push('=');
        match value {
            FieldValue::Float(float) => push_float(&mut out, *float),
            FieldValue::Integer(integer) => {
                let _ = write!(out, "{integer}i");
            }
            FieldValue::Unsigned(unsigned) => {
                let _ = write!(out, "{unsigned}u");
            }
            FieldValue::Boolean(flag) => out.push_str(if *flag { "true" } else { "false" }),
            FieldValue::String(text) => {
                out.push('"');
                escape(&mut out, text, &['"', '\\']);
                out.push('"');
            }
        }
    }
    if let Some(timestamp) = line.timestamp {
        let _ = write!(out, " {timestamp}");
    }
    out
}

fn escape(out: &mut String, text: &str, special: &[char]) {
    for character in text.chars() {
        if special.contains(&character) {
            out.push('\\');
        }
        out.push(character);
    }
}
