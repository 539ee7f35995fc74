//! The line-protocol parser: the reading side of `encode`, for bodies that
//! clients write to Stoker as they would to InfluxDB (`POST /api/v2/write`,
//! `POST /write`).
//!
//! The rules are InfluxDB 1.x/2.x's own (the Go parser, `models/points.go`),
//! so a body InfluxDB takes is read the same here:
//! - lines end at a newline outside a quoted string field; a backslash
//!   takes the byte after it along, so `\` + newline continues the line;
//!   blank lines and lines whose first non-blank byte is `#` are skipped;
//!   a `\r` before the newline (CRLF) is dropped (InfluxDB refuses it);
//! - `measurement[,tag=value…] field=value[,field=value…] [timestamp]`,
//!   sections split by spaces (several allowed, and tabs before fields and
//!   timestamp);
//! - in the measurement, tag keys, tag values and field keys a comma, space
//!   or `=` preceded by a backslash is not a delimiter; `\,`, `\ ` and (not
//!   in the measurement) `\=` read as the character, any other backslash
//!   is kept (`\\` stays two backslashes, as in InfluxDB 1.x/2.x);
//! - field values: floats (`-1.5`, `1e+30`, `.5`; no NaN or infinity),
//!   integers `12i`, unsigned `12u`, booleans `t T true True TRUE f F false
//!   False FALSE`, strings `"…"` in which `\"` and `\\` read as `"` and `\`
//!   (newlines allowed);
//! - the timestamp is an integer (negative allowed) in the write's
//!   [`Precision`](super::Precision); absent, the server's time is used. Only spaces may
//!   follow it.
//!
//! Every refusal names its line (1-based, counting every newline of the
//! body) and what is wrong, in InfluxDB's words with the detail added:
//! `line 3: unable to parse 'cpu value=': missing field value (field
//! "value")`. Tags and fields are borrowed from the body unless an escape
//! makes a copy necessary.

mod values;

use std::borrow::Cow;

use values::{boolean, number, scan_string, unescape};

/// One parsed line.
#[derive(Debug, Clone, PartialEq)]
pub struct Line<'a> {
    /// Its line number in the body, from 1.
    pub number: usize,
    /// The measurement, unescaped.
    pub measurement: Cow<'a, str>,
    /// Tags in the order written, unescaped; keys are distinct.
    pub tags: Vec<(Cow<'a, str>, Cow<'a, str>)>,
    /// Fields in the order written (at least one), keys unescaped.
    pub fields: Vec<(Cow<'a, str>, FieldValue<'a>)>,
    /// The timestamp in the write's precision, when the line has one.
    pub timestamp: Option<i64>,
}

impl Line<'_> {
    /// The value of tag `key`, if the line has it.
    pub fn tag(&self, key: &str) -> Option<&str> {
        self.tags
            .iter()
            .find(|(name, _)| name == key)
            .map(|(_, value)| value.as_ref())
    }
}

/// A field's value.
#[derive(Debug, Clone, PartialEq)]
pub enum FieldValue<'a> {
    /// A float, always finite.
    Float(f64),
    /// `…i`.
    Integer(i64),
    /// `…u`.
    Unsigned(u64),
    /// `t`, `true`, `f`, `false` and their capitalised spellings.
    Boolean(bool),
    /// `"…"`, unescaped.
    String(Cow<'a, str>),
}

/// A line that does not parse.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("line {line}: unable to parse '{text}': {problem}")]
pub struct ParseError {
    /// Its line number in the body, from 1.
    pub line: usize,
    /// The line (at most 100 characters of it, invalid UTF-8 replaced).
    pub text: String,
    /// What is wrong.
    pub problem: Problem,
}

/// What is wrong with a line: InfluxDB's words, with the detail.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Problem {
    /// The line is not UTF-8.
    #[error("the line is not valid UTF-8")]
    NotUtf8,
    /// The line starts with a comma.
    #[error("missing measurement")]
    MissingMeasurement,
    /// A comma is not followed by a tag key.
    #[error("missing tag key")]
    MissingTagKey,
    /// A tag key has no `=value`, or its value is empty.
    #[error("missing tag value")]
    MissingTagValue,
    /// An unescaped `=` inside a tag value.
    #[error("invalid tag format (an unescaped = in the value of tag {0:?})")]
    InvalidTagFormat(String),
    /// The same tag key twice.
    #[error("duplicate tags ({0:?} appears twice)")]
    DuplicateTag(String),
    /// The line ends before its fields.
    #[error("missing fields")]
    MissingFields,
    /// A field with nothing before its `=`.
    #[error("missing field key")]
    MissingFieldKey,
    /// A field with nothing after its `=`.
    #[error("missing field value (field {0:?})")]
    MissingFieldValue(String),
    /// The fields are not `key=value` separated by commas.
    #[error("invalid field format")]
    InvalidFieldFormat,
    /// A number that is not one (or NaN).
    #[error("invalid number {text:?} (field {field:?})")]
    InvalidNumber {
        /// The field.
        field: String,
        /// The value as written.
        text: String,
    },
    /// An integer or unsigned integer out of its type's range.
    #[error("{text:?} is out of range for its type (field {field:?})")]
    NumberOutOfRange {
        /// The field.
        field: String,
        /// The value as written.
        text: String,
    },
    /// A float that does not parse or is out of range (±inf).
    #[error("invalid float {text:?} (field {field:?})")]
    InvalidFloat {
        /// The field.
        field: String,
        /// The value as written.
        text: String,
    },
    /// A value that is neither a number, a string nor a boolean.
    #[error("invalid boolean {text:?} (field {field:?})")]
    InvalidBoolean {
        /// The field.
        field: String,
        /// The value as written.
        text: String,
    },
    /// A string field without its closing quote.
    #[error("unbalanced quotes (field {0:?})")]
    UnbalancedQuotes(String),
    /// The timestamp is not an integer, or out of range.
    #[error("bad timestamp {0:?}")]
    BadTimestamp(String),
    /// Something other than spaces after the timestamp.
    #[error("point is invalid (only spaces may follow the timestamp)")]
    TrailingText,
}

/// The lines of a body, each parsed or refused; blank lines and comments
/// are skipped.
pub fn parse(body: &[u8]) -> Lines<'_> {
    Lines {
        body,
        position: 0,
        line: 1,
    }
}

/// Iterator over the lines of a body ([`parse`]).
#[derive(Debug, Clone)]
pub struct Lines<'a> {
    body: &'a [u8],
    position: usize,
    /// The line number at `position`.
    line: usize,
}

impl<'a> Iterator for Lines<'a> {
    type Item = Result<Line<'a>, ParseError>;

    fn next(&mut self) -> Option<Self::Item> {
        let body = self.body;
        while self.position < body.len() {
            let start = self.position;
            let end = scan_line(body, start).min(body.len());
            let number = self.line;
            self.line += 1 + count_newlines(&body[start..end]);
            self.position = end + 1;
            let mut block = &body[start..end];
            if let [rest @ .., b'\r'] = block {
                block = rest;
            }
            let from = skip_whitespace(block, 0);
            if from >= block.len() || block[from] == b'#' {
                continue;
            }
            let text = &block[from..];
            return Some(parse_line(text, number).map_err(|problem| ParseError {
                line: number,
                text: excerpt(text),
                problem,
            }));
        }
        None
    }
}

fn count_newlines(bytes: &[u8]) -> usize {
    bytes.iter().filter(|byte| **byte == b'\n').count()
}

/// At most 100 characters of a line, for messages.
fn excerpt(text: &[u8]) -> String {
    let text = String::from_utf8_lossy(text);
    if text.chars().count() <= 100 {
        text.into_owned()
    } else {
        format!("{}…", text.chars().take(100).collect::<String>())
    }
}

/// Where the line starting at `start` ends (its newline, or past the end),
/// as InfluxDB's `scanLine` decides: a backslash skips the next byte, and
/// once past the first space a `"` after a field's `=` opens or closes a
/// string in which newlines do not end the line.
fn scan_line(bytes: &[u8], start: usize) -> usize {
    let mut index = start;
    let mut quoted = false;
    let mut fields = false;
    let mut equals = 0_usize;
    let mut commas = 0_usize;
    while index < bytes.len() {
        let byte = bytes[index];
        if byte == b'\\' {
            index += 2;
            continue;
        }
        if byte == b' ' {
            fields = true;
        }
        if fields {
            if !quoted && byte == b'=' {
                index += 1;
                equals += 1;
                continue;
            } else if !quoted && byte == b',' {
                index += 1;
                commas += 1;
                continue;
            } else if byte == b'"' && equals > commas {
                index += 1;
                quoted = !quoted;
                continue;
            }
        }
        if byte == b'\n' && !quoted {
            break;
        }
        index += 1;
    }
    index
}

/// Skips spaces, tabs and NUL bytes (InfluxDB's `skipWhitespace`).
fn skip_whitespace(bytes: &[u8], mut index: usize) -> usize {
    while index < bytes.len() && matches!(bytes[index], b' ' | b'\t' | 0) {
        index += 1;
    }
    index
}

/// Whether the byte at `index` is preceded by a backslash (InfluxDB's test
/// for an escaped delimiter).
fn escaped(bytes: &[u8], index: usize) -> bool {
    index > 0 && bytes[index - 1] == b'\\'
}

fn parse_line(text: &[u8], number: usize) -> Result<Line<'_>, Problem> {
    let text = std::str::from_utf8(text).map_err(|_| Problem::NotUtf8)?;
    let bytes = text.as_bytes();
    let (measurement_end, has_tags) = scan_measurement(bytes)?;
    let measurement = unescape(&text[..measurement_end], b", ");
    let mut tags = Vec::new();
    let mut index = measurement_end;
    if has_tags {
        index = scan_tags(text, measurement_end + 1, &mut tags)?;
    }
    let (fields, index) = scan_fields(text, index)?;
    let timestamp = scan_timestamp(text, index)?;
    Ok(Line {
        number,
        measurement,
        tags,
        fields,
        timestamp,
    })
}

/// The measurement's end and whether tags follow it.
fn scan_measurement(bytes: &[u8]) -> Result<(usize, bool), Problem> {
    if bytes.first().is_none_or(|byte| *byte == b',') {
        return Err(Problem::MissingMeasurement);
    }
    let mut index = 0;
    loop {
        index += 1;
        if index >= bytes.len() {
            return Err(Problem::MissingFields);
        }
        if escaped(bytes, index) {
            continue;
        }
        match bytes[index] {
            b',' => return Ok((index, true)),
            b' ' => return Ok((index, false)),
            _ => {}
        }
    }
}

/// Tags from `index` (after the measurement's comma) to the space before
/// the fields, whose index it returns.
fn scan_tags<'a>(
    text: &'a str,
    mut index: usize,
    tags: &mut Vec<(Cow<'a, str>, Cow<'a, str>)>,
) -> Result<usize, Problem> {
    let bytes = text.as_bytes();
    loop {
        let key_start = index;
        if bytes
            .get(index)
            .is_none_or(|byte| matches!(byte, b' ' | b',' | b'='))
        {
            return Err(Problem::MissingTagKey);
        }
        loop {
            index += 1;
            if index >= bytes.len()
                || (matches!(bytes[index], b' ' | b',') && !escaped(bytes, index))
            {
                return Err(Problem::MissingTagValue);
            }
            if bytes[index] == b'=' && !escaped(bytes, index) {
                break;
            }
        }
        let key = unescape(&text[key_start..index], b", =");
        index += 1;
        let value_start = index;
        if bytes
            .get(index)
            .is_none_or(|byte| matches!(byte, b' ' | b','))
        {
            return Err(Problem::MissingTagValue);
        }
        let more = loop {
            index += 1;
            if index >= bytes.len() {
                return Err(Problem::MissingFields);
            }
            if escaped(bytes, index) {
                continue;
            }
            match bytes[index] {
                b'=' => return Err(Problem::InvalidTagFormat(key.into_owned())),
                b',' => break true,
                b' ' => break false,
                _ => {}
            }
        };
        if tags.iter().any(|(earlier, _)| *earlier == key) {
            return Err(Problem::DuplicateTag(key.into_owned()));
        }
        tags.push((key, unescape(&text[value_start..index], b", =")));
        if !more {
            return Ok(index);
        }
        index += 1;
    }
}

type Fields<'a> = Vec<(Cow<'a, str>, FieldValue<'a>)>;

/// The fields after the space at `index`, and where they end.
fn scan_fields(text: &str, index: usize) -> Result<(Fields<'_>, usize), Problem> {
    let bytes = text.as_bytes();
    let mut index = skip_whitespace(bytes, index);
    if index >= bytes.len() {
        return Err(Problem::MissingFields);
    }
    let mut fields = Vec::with_capacity(2);
    loop {
        let key_start = index;
        if bytes[index] == b'=' {
            return Err(Problem::MissingFieldKey);
        }
        loop {
            match bytes.get(index) {
                None => return Err(Problem::InvalidFieldFormat),
                Some(b'=') if !escaped(bytes, index) => break,
                Some(b' ' | b',') if !escaped(bytes, index) => {
                    return Err(Problem::InvalidFieldFormat);
                }
                Some(_) => index += 1,
            }
        }
        let key = unescape(&text[key_start..index], b", =");
        index += 1;
        let (value, end) = match bytes.get(index) {
            None | Some(b',' | b' ') => return Err(Problem::MissingFieldValue(key.into_owned())),
            Some(b'"') => scan_string(text, index, &key)?,
            Some(byte) => {
                let end = bytes[index..]
                    .iter()
                    .position(|byte| matches!(byte, b',' | b' '))
                    .map_or(bytes.len(), |offset| index + offset);
                let value_text = &text[index..end];
                let value = if byte.is_ascii_digit() || matches!(byte, b'.' | b'-' | b'N' | b'n') {
                    number(value_text, &key)?
                } else {
                    boolean(value_text, &key)?
                };
                (value, end)
            }
        };
        fields.push((key, value));
        index = end;
        match bytes.get(index) {
            None | Some(b' ') => return Ok((fields, index)),
            Some(b',') => {
                index += 1;
                match bytes.get(index) {
                    None | Some(b' ') => return Err(Problem::InvalidFieldFormat),
                    Some(_) => {}
                }
            }
            Some(_) => return Err(Problem::InvalidFieldFormat),
        }
    }
}

/// The timestamp after the fields' end at `index` (a space, or the end).
fn scan_timestamp(text: &str, index: usize) -> Result<Option<i64>, Problem> {
    let bytes = text.as_bytes();
    let start = skip_whitespace(bytes, index);
    if start >= bytes.len() {
        return Ok(None);
    }
    let mut end = start;
    while end < bytes.len() && bytes[end] != b' ' {
        let byte = bytes[end];
        if !(byte.is_ascii_digit() || (end == start && byte == b'-')) {
            let stop = bytes[end..]
                .iter()
                .position(|byte| *byte == b' ')
                .map_or(bytes.len(), |offset| end + offset);
            return Err(Problem::BadTimestamp(text[start..stop].to_owned()));
        }
        end += 1;
    }
    let written = &text[start..end];
    let timestamp = written
        .parse::<i64>()
        .map_err(|_| Problem::BadTimestamp(written.to_owned()))?;
    if bytes[end..].iter().any(|byte| *byte != b' ') {
        return Err(Problem::TrailingText);
    }
    Ok(Some(timestamp))
}

#[cfg(test)]
mod tests {
    use super::super::{Precision, parse_fuzzing};
    use super::*;

    fn one(body: &str) -> Line<'_> {
        let mut lines = parse(body.as_bytes());
        let line = lines.next().expect("a line").expect("parses");
        assert!(lines.next().is_none());
        line
    }

    fn problem(body: &str) -> Problem {
        match parse(body.as_bytes()).next() {
            Some(Err(error)) => error.problem,
            other => panic!("{body:?} gave {other:?}"),
        }
    }

    fn field<'a>(line: &'a Line<'_>, key: &str) -> &'a FieldValue<'a> {
        &line.fields.iter().find(|(name, _)| name == key).unwrap().1
    }

    #[test]
    fn reads_telegrafs_modbus_shape() {
        let line = one(
            "modbus,name=b1,slave_id=1,type=holding_register steam_pressure=10.4,flue_temp=181.2 1733565600000000000\n",
        );
        assert_eq!(line.measurement, "modbus");
        assert_eq!(line.tag("name"), Some("b1"));
        assert_eq!(line.tag("slave_id"), Some("1"));
        assert_eq!(line.tag("site"), None);
        assert_eq!(
            line.fields,
            vec![
                ("steam_pressure".into(), FieldValue::Float(10.4)),
                ("flue_temp".into(), FieldValue::Float(181.2))
            ]
        );
        assert_eq!(line.timestamp, Some(1_733_565_600_000_000_000));
        assert_eq!(line.number, 1);
    }

    #[test]
    fn reads_every_field_type() {
        let line = one(
            r#"m f=-1.5e+3,g=.5,h=7.,i=-12i,u=12u,t=t,T=TRUE,x=True,f=false,F=F,s="on \"auto\", ok \\ \n",e="""#,
        );
        assert_eq!(field(&line, "f"), &FieldValue::Float(-1500.0));
        assert_eq!(field(&line, "g"), &FieldValue::Float(0.5));
        assert_eq!(field(&line, "h"), &FieldValue::Float(7.0));
        assert_eq!(field(&line, "i"), &FieldValue::Integer(-12));
        assert_eq!(field(&line, "u"), &FieldValue::Unsigned(12));
        assert_eq!(field(&line, "t"), &FieldValue::Boolean(true));
        assert_eq!(field(&line, "T"), &FieldValue::Boolean(true));
        assert_eq!(field(&line, "x"), &FieldValue::Boolean(true));
        assert_eq!(field(&line, "f"), &FieldValue::Float(-1500.0));
        assert_eq!(field(&line, "F"), &FieldValue::Boolean(false));
        assert_eq!(
            field(&line, "s"),
            &FieldValue::String(r#"on "auto", ok \ \n"#.into())
        );
        assert_eq!(field(&line, "e"), &FieldValue::String("".into()));
        assert_eq!(line.timestamp, None);
        let extremes = format!("m a={}i,b={}u", i64::MIN, u64::MAX);
        let line = one(&extremes);
        assert_eq!(field(&line, "a"), &FieldValue::Integer(i64::MIN));
        assert_eq!(field(&line, "b"), &FieldValue::Unsigned(u64::MAX));
    }

    #[test]
    fn escapes_follow_influxdb_1_and_2() {
        let line = one(r"my\ meas\,ure=x,t\ a\,g\=k=v\ a\,l\=u\e,z=a\\b f\ i\,e\=ld=1 -5");
        assert_eq!(line.measurement, r"my meas,ure=x");
        assert_eq!(
            line.tags,
            vec![
                (r"t a,g=k".into(), r"v a,l=u\e".into()),
                ("z".into(), r"a\\b".into())
            ]
        );
        assert_eq!(line.fields[0].0, "f i,e=ld");
        assert_eq!(line.timestamp, Some(-5));
        // A backslash before a delimiter escapes it even after a backslash.
        let line = one(r"m,t=a\\,u f=1");
        assert_eq!(line.tags, vec![("t".into(), r"a\,u".into())]);
        assert_eq!(
            problem(r"m,t=a\\,u=b f=1"),
            Problem::InvalidTagFormat("t".into())
        );
        // Borrowed unless an escape needs a copy.
        let line = one("m,t=v f=\"s\"");
        assert!(matches!(line.measurement, Cow::Borrowed(_)));
        assert!(matches!(line.tags[0].1, Cow::Borrowed(_)));
    }

    #[test]
    fn skips_comments_blank_lines_and_takes_crlf_and_spaces() {
        let body =
            "# a comment\r\n\r\n   \n\t# indented comment\nm f=1 10\r\n  m2   f=2   20  \r\nm3 f=3";
        let lines: Vec<_> = parse(body.as_bytes()).map(Result::unwrap).collect();
        assert_eq!(
            lines
                .iter()
                .map(|line| (line.number, line.measurement.as_ref(), line.timestamp))
                .collect::<Vec<_>>(),
            vec![(5, "m", Some(10)), (6, "m2", Some(20)), (7, "m3", None)]
        );
    }

    #[test]
    fn a_quoted_newline_stays_in_its_line_and_is_counted() {
        let body = "m s=\"two\nlines\" 1\nm f=oops\nm f=1";
        let outcomes: Vec<_> = parse(body.as_bytes()).collect();
        assert_eq!(
            outcomes[0].as_ref().unwrap().fields[0].1,
            FieldValue::String("two\nlines".into())
        );
        let error = outcomes[1].as_ref().unwrap_err();
        assert_eq!(error.line, 3);
        assert_eq!(
            error.to_string(),
            "line 3: unable to parse 'm f=oops': invalid boolean \"oops\" (field \"f\")"
        );
        assert_eq!(outcomes[2].as_ref().unwrap().number, 4);
    }

    #[test]
    fn refuses_each_bad_line_with_influxdbs_words_and_the_detail() {
        for (body, expected) in [
            (",t=1 f=1", Problem::MissingMeasurement),
            ("m", Problem::MissingFields),
            ("m,t=1", Problem::MissingFields),
            ("m ", Problem::MissingFields),
            ("m,=1 f=1", Problem::MissingTagKey),
            ("m, f=1", Problem::MissingTagKey),
            ("m,t f=1", Problem::MissingTagValue),
            ("m,t= f=1", Problem::MissingTagValue),
            ("m,t=a=b f=1", Problem::InvalidTagFormat("t".into())),
            ("m,t=1,t=2 f=1", Problem::DuplicateTag("t".into())),
            ("m =1", Problem::MissingFieldKey),
            ("m f=1,=2", Problem::MissingFieldKey),
            ("m f=", Problem::MissingFieldValue("f".into())),
            ("m f=,g=1", Problem::MissingFieldValue("f".into())),
            ("m f", Problem::InvalidFieldFormat),
            ("m f=1,g", Problem::InvalidFieldFormat),
            ("m f=1,", Problem::InvalidFieldFormat),
            ("m f=1, g=2", Problem::InvalidFieldFormat),
            ("m f b=1", Problem::InvalidFieldFormat),
            ("m f=\"x\"y", Problem::InvalidFieldFormat),
            ("m f=\"open", Problem::UnbalancedQuotes("f".into())),
            ("m f=NaN", invalid_number("NaN")),
            ("m f=nan", invalid_number("nan")),
            ("m f=1.5.1", invalid_number("1.5.1")),
            ("m f=1x", invalid_number("1x")),
            ("m f=-", invalid_number("-")),
            ("m f=.", invalid_number(".")),
            ("m f=1.5i", invalid_number("1.5i")),
            ("m f=1e3i", invalid_number("1e3i")),
            ("m f=-1u", invalid_number("-1u")),
            ("m f=1i2", invalid_number("1i2")),
            ("m f=1e999", invalid_float("1e999")),
            ("m f=1e-999", invalid_float("1e-999")),
            ("m f=1e", invalid_float("1e")),
            (
                "m f=9223372036854775808i",
                out_of_range("9223372036854775808i"),
            ),
            (
                "m f=18446744073709551616u",
                out_of_range("18446744073709551616u"),
            ),
            ("m f=+1", invalid_boolean("+1")),
            ("m f=yes", invalid_boolean("yes")),
            ("m f=tRUE", invalid_boolean("tRUE")),
            ("m f=1 12a", Problem::BadTimestamp("12a".into())),
            ("m f=1 1.5", Problem::BadTimestamp("1.5".into())),
            ("m f=1 -", Problem::BadTimestamp("-".into())),
            (
                "m f=1 99999999999999999999",
                Problem::BadTimestamp("99999999999999999999".into()),
            ),
            ("m f=1 12 x", Problem::TrailingText),
            ("m f=1 12\t", Problem::BadTimestamp("12\t".into())),
        ] {
            assert_eq!(problem(body), expected, "{body:?}");
        }
        let error = parse(b"ok f=1\nm f=\xff\xfe").nth(1).unwrap().unwrap_err();
        assert_eq!((error.line, error.problem), (2, Problem::NotUtf8));
        let long = format!("m f={}", "x".repeat(300));
        let error = parse(long.as_bytes()).next().unwrap().unwrap_err();
        assert_eq!(error.text.chars().count(), 101);
    }

    fn invalid_number(text: &str) -> Problem {
        Problem::InvalidNumber {
            field: "f".into(),
            text: text.into(),
        }
    }

    fn invalid_float(text: &str) -> Problem {
        Problem::InvalidFloat {
            field: "f".into(),
            text: text.into(),
        }
    }

    fn out_of_range(text: &str) -> Problem {
        Problem::NumberOutOfRange {
            field: "f".into(),
            text: text.into(),
        }
    }

    fn invalid_boolean(text: &str) -> Problem {
        Problem::InvalidBoolean {
            field: "f".into(),
            text: text.into(),
        }
    }

    #[test]
    fn a_bad_line_leaves_the_others_readable() {
        let body = "m f=1 1\nm f=bad 2\n\nm f=3 3\n";
        let outcomes: Vec<_> = parse(body.as_bytes()).collect();
        assert_eq!(outcomes.len(), 3);
        assert!(outcomes[0].is_ok() && outcomes[2].is_ok());
        assert_eq!(outcomes[1].as_ref().unwrap_err().line, 2);
        assert_eq!(outcomes[2].as_ref().unwrap().number, 4);
    }

    #[test]
    fn reads_back_what_the_encoder_writes() {
        let mut body = String::new();
        super::super::push_line(
            &mut body,
            "readings_1m",
            &[
                ("site", "boiler-house-1"),
                ("sensor", "b1 flue,temp=x"),
                ("type", ""),
            ],
            &[
                ("count", super::super::Field::Integer(-3)),
                ("mean", super::super::Field::Float(1e300)),
                ("min", super::super::Field::Float(-2.5e-12)),
            ],
            1_732_269_600_000,
        );
        let line = one(&body);
        assert_eq!(line.measurement, "readings_1m");
        assert_eq!(
            line.tags,
            vec![
                ("site".into(), "boiler-house-1".into()),
                ("sensor".into(), "b1 flue,temp=x".into())
            ]
        );
        assert_eq!(
            line.fields,
            vec![
                ("count".into(), FieldValue::Integer(-3)),
                ("mean".into(), FieldValue::Float(1e300)),
                ("min".into(), FieldValue::Float(-2.5e-12))
            ]
        );
        assert_eq!(line.timestamp, Some(1_732_269_600_000));
        assert_eq!(parse_fuzzing::write_line(&line), body.trim_end());
    }

    #[test]
    fn precisions_convert_to_milliseconds() {
        for (name, value, millis) in [
            ("ns", 1_733_565_600_123_456_789, Some(1_733_565_600_123)),
            ("us", 1_733_565_600_123_456, Some(1_733_565_600_123)),
            ("ms", 1_733_565_600_123, Some(1_733_565_600_123)),
            ("s", 1_733_565_600, Some(1_733_565_600_000)),
            ("ns", -1, Some(-1)),
            ("s", i64::MAX, None),
        ] {
            let precision = Precision::from_v2(name).unwrap();
            assert_eq!(precision.to_millis(value), millis, "{name} {value}");
            assert_eq!(precision.as_str(), name);
        }
        for (name, precision) in [
            ("n", Precision::Nanoseconds),
            ("u", Precision::Microseconds),
            ("ms", Precision::Milliseconds),
            ("s", Precision::Seconds),
            ("m", Precision::Minutes),
            ("h", Precision::Hours),
        ] {
            assert_eq!(Precision::from_v1(name), Some(precision));
        }
        assert_eq!(Precision::Hours.to_millis(2), Some(7_200_000));
        assert_eq!(Precision::Minutes.to_millis(-1), Some(-60_000));
        assert_eq!(Precision::from_v2("m"), None);
        assert_eq!(Precision::from_v1("x"), None);
    }

    #[test]
    fn fuzz_check_holds_for_hand_picked_bodies() {
        for body in [
            &b"m,t=a\\\\,u=b f=1"[..],
            b"\\,m,\\==\\= f\\==\"\\\\\\\"\" -0",
            b"m,t==x f=1",
            b"a\\\nb f=1\nc f=2",
            b"m s=\"x\ny\",t=1i 5\r\n# c\n\n m f=1e-300,g=5e-324",
            b"m f=1 1\nbad\nm,t=1,t=2 f=1\n\xff f=1",
            b"\x00\t m f=T",
            // Found by the fuzzer: a leading space makes InfluxDB's line
            // splitter take the quote in the measurement for a string's, so
            // the newline after it stays in the measurement.
            b" s=\"multi\nline\",b=FALSE\\,m,\\==\\= f\\==\"\\\\\" 0",
            b"",
            b"\n\n\n",
        ] {
            parse_fuzzing::check_parse(body);
        }
        assert_eq!(parse_fuzzing::check_parse(b"m f=1\nx\nm g=2"), (2, 1));
    }

    /// Replays the committed corpus of the `line_parse` fuzz target
    /// (`fuzz/`), so CI checks every input the fuzzer found interesting.
    #[test]
    fn fuzz_corpus_replays() {
        let directory =
            std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../fuzz/corpus/line_parse");
        let mut replayed = 0;
        for entry in std::fs::read_dir(&directory).expect("the fuzz corpus is committed") {
            let data = std::fs::read(entry.unwrap().path()).unwrap();
            parse_fuzzing::check_parse(&data);
            replayed += 1;
        }
        assert!(replayed > 0, "no corpus in {}", directory.display());
    }
}
