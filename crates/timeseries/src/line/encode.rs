//! The line-protocol encoder: the one place Stoker writes line protocol
//! ([`push_line`]) and escapes it ([`escape_tag_value`]), with the checked
//! entry point for points whose tag values come from outside
//! ([`encode_point`]).

use stoker_domain::EpochMillis;

/// A field's value.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) enum Field<'a> {
    /// A float, as [`push_float`] writes it. A value that is not finite is
    /// left out of the line: line protocol has no such float.
    Float(f64),
    /// An integer, written `…i`.
    Integer(i64),
    /// A string, written in double quotes with `"` and `\` escaped.
    Text(&'a str),
}

/// Appends one point as a line of line protocol, `\n` included:
/// `measurement[,key=value…] field=value[,field=value…] ms`, millisecond
/// precision. Every line Stoker writes goes through here: readings
/// ([`LineBatch::push`](super::LineBatch::push)), checked points
/// ([`encode_point`]), and the rollup's minutes, progress and marks.
///
/// Tag values are escaped ([`escape_tag_value`]), and a tag whose value is
/// empty is left out (line protocol cannot carry an empty tag value, and
/// InfluxDB treats a missing tag as empty). The measurement, tag keys and
/// field names are written as they are: callers pass plain names. A float
/// field that is not finite is left out; callers see to it that at least
/// one field remains. Writes straight into `out`, allocating nothing else.
#[inline]
pub(crate) fn push_line(
    out: &mut String,
    measurement: &str,
    tags: &[(&str, &str)],
    fields: &[(&str, Field<'_>)],
    timestamp: i64,
) {
    push_series(out, measurement, tags);
    push_fields(out, fields, timestamp);
}

/// Appends the series of a line, its measurement and tags, as
/// [`push_line`] writes them (tag values escaped, empty ones left out).
#[inline]
pub(crate) fn push_series(out: &mut String, measurement: &str, tags: &[(&str, &str)]) {
    out.push_str(measurement);
    for (key, value) in tags {
        if value.is_empty() {
            continue;
        }
        out.push(',');
        out.push_str(key);
        out.push('=');
        escape_tag_value(out, value);
    }
}

/// Appends the rest of a line after its series, as [`push_line`] writes
/// it: ` field=value[,…] ms\n`.
#[inline]
pub(crate) fn push_fields(out: &mut String, fields: &[(&str, Field<'_>)], timestamp: i64) {
    let mut written = fields
        .iter()
        .filter(|(_, value)| !matches!(value, Field::Float(float) if !float.is_finite()));
    if let Some(first) = written.next() {
        out.push(' ');
        push_field(out, first);
    }
    for field in written {
        out.push(',');
        push_field(out, field);
    }
    out.push(' ');
    out.push_str(itoa::Buffer::new().format(timestamp));
    out.push('\n');
}

/// Appends `name=value`: a float as [`push_float`] writes it, an integer
/// with its `i`.
#[inline]
fn push_field(out: &mut String, (name, value): &(&str, Field<'_>)) {
    out.push_str(name);
    out.push('=');
    match *value {
        Field::Float(float) => push_float(out, float),
        Field::Integer(integer) => {
            out.push_str(itoa::Buffer::new().format(integer));
            out.push('i');
        }
        Field::Text(text) => push_string_field(out, text),
    }
}

/// Appends a string field value: in double quotes, with `"` and `\`
/// escaped (line protocol's rule for field strings). A newline cannot be
/// escaped and would end the line, so it is written as a space.
fn push_string_field(out: &mut String, text: &str) {
    out.push('"');
    if !text.contains(['"', '\\', '\n']) {
        out.push_str(text);
    } else {
        for character in text.chars() {
            match character {
                '"' | '\\' => {
                    out.push('\\');
                    out.push(character);
                }
                '\n' => out.push(' '),
                other => out.push(other),
            }
        }
    }
    out.push('"');
}

/// Appends a finite `value` as a line-protocol float.
///
/// ryu prints the shortest text that reads back as the same f64, much
/// faster than `fmt`, with an exponent for very large or small magnitudes
/// (`1e300`, `2.5e-12`). InfluxDB's Go parser and `influxdb-line-protocol`
/// 2.0 read an exponent with or without a sign, but earlier releases of
/// InfluxData's Rust parser (IOx) only with one, so a positive exponent is
/// written `e+300`. No allocation.
pub(crate) fn push_float(out: &mut String, value: f64) {
    let mut buffer = ryu::Buffer::new();
    let text = buffer.format_finite(value);
    match text.split_once('e') {
        Some((mantissa, exponent)) if !exponent.starts_with('-') => {
            out.push_str(mantissa);
            out.push_str("e+");
            out.push_str(exponent);
        }
        _ => out.push_str(text),
    }
}

/// Escapes a tag value the way InfluxDB's own encoder does: commas, spaces
/// and `=` take a backslash; a backslash is written as it is.
///
/// For a value that [`check_tag_value`] accepts (every slug and key, and
/// any text without newlines, tabs or a backslash at the end or before a
/// backslash, comma or space), every InfluxDB parser reads back
/// exactly `value`. For any other value the text follows InfluxDB 1.x/2.x's
/// Go rules (which leave `\\` as two backslashes), so a value read back
/// from such a server is written as that server stored it; but InfluxDB 3
/// reads `\\` as one backslash. Callers with values from outside should
/// check them first, or use [`encode_point`], which does.
fn escape_tag_value(out: &mut String, value: &str) {
    if !value.contains([',', ' ', '=']) {
        out.push_str(value);
        return;
    }
    for character in value.chars() {
        if matches!(character, ',' | ' ' | '=') {
            out.push('\\');
        }
        out.push(character);
    }
}

/// Why a point cannot be written as line protocol.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum LineError {
    /// The field value is NaN or infinite: line protocol has no such float.
    #[error("the value is not a finite number")]
    NonFiniteValue,
    /// A measurement, tag key or field key is empty or holds a character
    /// that would need escaping (only plain names are written).
    #[error(
        "{0:?} is not a plain name (non-empty, without spaces, commas, =, quotes, backslashes or control characters)"
    )]
    InvalidName(String),
    /// The same tag key twice: InfluxDB refuses the line.
    #[error("tag {0:?} appears twice")]
    DuplicateTag(String),
    /// A tag value that line protocol cannot carry so that every InfluxDB
    /// version reads it back unchanged (see [`check_tag_value`]).
    #[error("the value of tag {key:?} cannot be written as line protocol: {reason}")]
    UnrepresentableTagValue {
        /// The tag's key.
        key: String,
        /// What is wrong with its value.
        reason: &'static str,
    },
}

/// Whether every InfluxDB version reads `value`, as [`encode_point`]
/// escapes it, back unchanged; `Err` says why not.
///
/// Line protocol has no escape for a newline (it ends the line) or a tab
/// (InfluxDB 3 ends the tag there), and backslashes are read differently:
/// InfluxDB 1.x/2.x (Go) take `\\` as two backslashes and `\,` `\ ` `\=`
/// as escapes, InfluxDB 3 and the documented rule take `\\` as one. So a
/// value with a backslash at its end or before a backslash, comma or space
/// has no text that all of them read the same. (Before `=` it is fine: `\=`
/// reads as backslash and `=` everywhere, as InfluxDB 3 needs no escape for
/// `=` in a tag value.) (Empty values are fine here; line
/// protocol cannot carry them either, so [`encode_point`] omits the tag.)
pub fn check_tag_value(value: &str) -> Result<(), &'static str> {
    let bytes = value.as_bytes();
    for (index, byte) in bytes.iter().enumerate() {
        match byte {
            b'\n' => return Err("it holds a newline"),
            b'\t' => return Err("it holds a tab"),
            b'\\' => match bytes.get(index + 1) {
                None => return Err("it ends with a backslash"),
                Some(b'\\' | b',' | b' ') => {
                    return Err("it holds a backslash before a backslash, comma or space");
                }
                Some(_) => {}
            },
            _ => {}
        }
    }
    Ok(())
}

/// Whether `name` is written as it is: non-empty, no space, comma, `=`,
/// quote, backslash or control character, and not starting with `#` (a
/// comment line) or `_` (reserved by InfluxDB 2).
fn is_plain_name(name: &str) -> bool {
    !name.is_empty()
        && !name.starts_with(['#', '_'])
        && !name.chars().any(|character| {
            matches!(character, ' ' | ',' | '=' | '"' | '\\') || character.is_control()
        })
}

/// Appends one point as a line of line protocol, `\n` included:
/// `measurement,key=value,… field=value ms`, millisecond precision.
///
/// Tag values may be any text [`check_tag_value`] accepts; they are
/// escaped, and a tag whose value is empty is omitted (line protocol cannot
/// carry an empty tag value, and InfluxDB treats a missing tag as empty).
/// The measurement, tag keys and field key must be plain names. On error
/// nothing is appended. [`LineBatch::push`](super::LineBatch::push) is the
/// fast path for readings.
pub fn encode_point(
    out: &mut String,
    measurement: &str,
    tags: &[(&str, &str)],
    field: &str,
    value: f64,
    timestamp: EpochMillis,
) -> Result<(), LineError> {
    if !value.is_finite() {
        return Err(LineError::NonFiniteValue);
    }
    for name in [measurement, field] {
        if !is_plain_name(name) {
            return Err(LineError::InvalidName(name.to_owned()));
        }
    }
    for (index, (key, tag)) in tags.iter().enumerate() {
        if !is_plain_name(key) {
            return Err(LineError::InvalidName((*key).to_owned()));
        }
        if tags[..index].iter().any(|(earlier, _)| earlier == key) {
            return Err(LineError::DuplicateTag((*key).to_owned()));
        }
        check_tag_value(tag).map_err(|reason| LineError::UnrepresentableTagValue {
            key: (*key).to_owned(),
            reason,
        })?;
    }
    push_line(
        out,
        measurement,
        tags,
        &[(field, Field::Float(value))],
        timestamp.as_millis(),
    );
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tag_values_are_escaped() {
        let mut out = String::new();
        escape_tag_value(&mut out, "a b,c=d");
        assert_eq!(out, r"a\ b\,c\=d");
    }

    #[test]
    fn string_fields_are_quoted_and_escaped() {
        let mut out = String::new();
        push_line(
            &mut out,
            "m",
            &[("t", "x")],
            &[
                ("value", Field::Float(2.0)),
                ("state", Field::Text("firing")),
            ],
            5,
        );
        assert_eq!(out, "m,t=x value=2.0,state=\"firing\" 5\n");
        let mut out = String::new();
        push_string_field(&mut out, "a\"b\\c\nd");
        assert_eq!(out, r#""a\"b\\c d""#);
    }

    #[test]
    fn positive_exponents_carry_a_sign() {
        for (value, text) in [
            (1e300, "1e+300"),
            (-1.5e16, "-1.5e+16"),
            (2.5e-12, "2.5e-12"),
            (81.0, "81.0"),
        ] {
            let mut out = String::new();
            push_float(&mut out, value);
            assert_eq!(out, text);
            assert_eq!(out.parse::<f64>().unwrap(), value);
        }
    }

    #[test]
    fn encode_point_escapes_omits_and_refuses() {
        let at = EpochMillis::from_millis(1_732_269_600_000).unwrap();
        let mut out = String::new();
        encode_point(
            &mut out,
            "readings",
            &[("site", "a b,c=d\"é\\x"), ("sensor", ""), ("type", "t")],
            "value",
            1.5,
            at,
        )
        .unwrap();
        assert_eq!(
            out,
            "readings,site=a\\ b\\,c\\=d\"é\\x,type=t value=1.5 1732269600000\n"
        );
        for (value, error) in [
            ("a\nb", "it holds a newline"),
            ("a\tb", "it holds a tab"),
            ("ab\\", "it ends with a backslash"),
            (
                "a\\\\b",
                "it holds a backslash before a backslash, comma or space",
            ),
            (
                "a\\,b",
                "it holds a backslash before a backslash, comma or space",
            ),
            (
                "a\\ b",
                "it holds a backslash before a backslash, comma or space",
            ),
        ] {
            let mut out = String::new();
            let refused = encode_point(&mut out, "readings", &[("site", value)], "value", 1.0, at);
            assert_eq!(
                refused,
                Err(LineError::UnrepresentableTagValue {
                    key: "site".into(),
                    reason: error
                })
            );
            assert!(out.is_empty());
        }
        let mut out = String::new();
        assert_eq!(
            encode_point(&mut out, "readings", &[], "value", f64::NAN, at),
            Err(LineError::NonFiniteValue)
        );
        assert_eq!(
            encode_point(
                &mut out,
                "readings",
                &[("a", "1"), ("a", "2")],
                "value",
                1.0,
                at
            ),
            Err(LineError::DuplicateTag("a".into()))
        );
        assert_eq!(
            encode_point(&mut out, "read ings", &[], "value", 1.0, at),
            Err(LineError::InvalidName("read ings".into()))
        );
        assert!(out.is_empty());
    }
}
