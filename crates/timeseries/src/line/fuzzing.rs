//! The check behind the `line_protocol` fuzz target and the test that
//! replays its corpus: arbitrary bytes become a point with arbitrary tag
//! values, value and timestamp; [`encode_point`] must encode it so that
//! two reference readers written from InfluxDB's rules (the Go parser's of
//! 1.x/2.x, and the documented rule InfluxDB 3 follows) give back exactly
//! the same point (and so must Stoker's own parser, [`parse`](super::parse())),
//! or refuse it for a reason that holds. Not an API.

use stoker_domain::EpochMillis;

use super::LineBatch;
use super::encode::{Field, LineError, encode_point, push_line};

/// The tag keys a case uses, in order.
pub const TAG_KEYS: [&str; 3] = ["site", "sensor", "type"];

/// A point built from fuzz input.
#[derive(Debug, Clone, PartialEq)]
pub struct Case {
    /// Tags as given to the encoder (keys from [`TAG_KEYS`], maybe
    /// repeated).
    pub tags: Vec<(String, String)>,
    /// The field value, any f64.
    pub value: f64,
    /// The timestamp.
    pub timestamp: EpochMillis,
}

impl Case {
    /// Byte 0: tag count (bits 0-1), a repeated key (bit 2), a small
    /// decimal value instead of raw f64 bits (bit 3); bytes 1-8: the
    /// value; 9-16: the timestamp; the rest: tag values split at 0xFF
    /// (invalid UTF-8 is replaced, which brings non-ASCII along).
    pub fn from_bytes(data: &[u8]) -> Self {
        let byte = |index: usize| data.get(index).copied().unwrap_or(0);
        let word = |start: usize| {
            let mut bytes = [0; 8];
            for (offset, slot) in bytes.iter_mut().enumerate() {
                *slot = byte(start + offset);
            }
            bytes
        };
        let flags = byte(0);
        let value = if flags & 8 != 0 {
            f64::from(i32::from_le_bytes([byte(1), byte(2), byte(3), byte(4)])) / 10.0
        } else {
            f64::from_le_bytes(word(1))
        };
        // Into the range `EpochMillis` accepts (±9_223_372_036_854).
        let millis = i64::from_le_bytes(word(9)) % 9_223_372_036_855;
        let timestamp = EpochMillis::from_millis(millis).expect("within range");
        let count = usize::from(flags & 3);
        let mut values = data
            .get(17..)
            .unwrap_or_default()
            .split(|byte| *byte == 0xFF);
        let tags = (0..count)
            .map(|index| {
                let key = if flags & 4 != 0 && index == 1 {
                    TAG_KEYS[0]
                } else {
                    TAG_KEYS[index]
                };
                let value = String::from_utf8_lossy(values.next().unwrap_or_default());
                (key.to_owned(), value.into_owned())
            })
            .collect();
        Self {
            tags,
            value,
            timestamp,
        }
    }
}

/// A point that was encoded, for a further check by another parser.
#[derive(Debug, Clone, PartialEq)]
pub struct Encoded {
    /// The line, `\n` included.
    pub line: String,
    /// `readings`.
    pub measurement: &'static str,
    /// The tags a reader must find, in order (empty values omitted).
    pub tags: Vec<(String, String)>,
    /// `value`.
    pub field: &'static str,
    /// The value, finite.
    pub value: f64,
    /// Epoch milliseconds.
    pub timestamp: i64,
}

/// Runs the check over fuzz input; panics on a failure. Returns the
/// encoded point, or `None` when the encoder refused it (rightly).
pub fn check_line_protocol(data: &[u8]) -> Option<Encoded> {
    check_case(&Case::from_bytes(data))
}

/// [`check_line_protocol`] for a built case.
pub fn check_case(case: &Case) -> Option<Encoded> {
    let tags: Vec<(&str, &str)> = case
        .tags
        .iter()
        .map(|(key, value)| (key.as_str(), value.as_str()))
        .collect();
    let mut line = String::from("untouched");
    let outcome = encode_point(
        &mut line,
        "readings",
        &tags,
        "value",
        case.value,
        case.timestamp,
    );
    let Some(line) = line.strip_prefix("untouched").map(str::to_owned) else {
        panic!("encode_point changed what was already in its buffer: {line:?}");
    };
    match outcome {
        Ok(()) => {}
        Err(error) => {
            assert!(line.is_empty(), "{error} but wrote {line:?}");
            check_refusal(case, &error);
            return None;
        }
    }
    let expected: Vec<(String, String)> = case
        .tags
        .iter()
        .filter(|(_, value)| !value.is_empty())
        .cloned()
        .collect();
    assert_eq!(
        line.matches('\n').count(),
        1,
        "one line, ending with a newline: {line:?}"
    );
    assert!(line.ends_with('\n'), "{line:?}");
    for (reader, read) in [
        ("documented", read_documented(&line)),
        ("go", read_go(&line)),
    ] {
        let Some(read) = read else {
            panic!("the {reader} reader cannot read {line:?} (from {case:?})");
        };
        assert_eq!(read.measurement, "readings", "{reader}: {line:?}");
        assert_eq!(read.tags, expected, "{reader} reader, line {line:?}");
        assert_eq!(read.field, "value", "{reader}: {line:?}");
        let value: f64 = read
            .value
            .parse()
            .unwrap_or_else(|_| panic!("{reader}: value {:?} is not a float", read.value));
        assert_eq!(value.to_bits(), case.value.to_bits(), "{line:?}");
        assert_eq!(
            read.timestamp.parse::<i64>().ok(),
            Some(case.timestamp.as_millis()),
            "{line:?}"
        );
        check_float_syntax(&read.value);
    }
    check_parsed_back(&line, case, &expected);
    let batch = LineBatch::from_encoded(line.clone());
    assert_eq!(
        (batch.len(), batch.time_range()),
        (1, Some((case.timestamp, case.timestamp))),
        "LineBatch::from_encoded on {line:?}"
    );
    Some(Encoded {
        line,
        measurement: "readings",
        tags: expected,
        field: "value",
        value: case.value,
        timestamp: case.timestamp.as_millis(),
    })
}

/// Stoker's own parser ([`parse`](super::parse())) reads the encoded line
/// back to the same point.
fn check_parsed_back(line: &str, case: &Case, expected: &[(String, String)]) {
    let parsed: Vec<_> = super::parse(line.as_bytes()).collect();
    let [Ok(read)] = parsed.as_slice() else {
        panic!("the parser reads {line:?} as {parsed:?}");
    };
    assert_eq!(read.measurement, "readings", "{line:?}");
    let tags: Vec<(String, String)> = read
        .tags
        .iter()
        .map(|(key, value)| (key.to_string(), value.to_string()))
        .collect();
    assert_eq!(tags, expected, "parser, line {line:?}");
    match read.fields.as_slice() {
        [(field, super::FieldValue::Float(value))] if field == "value" => {
            assert_eq!(value.to_bits(), case.value.to_bits(), "{line:?}");
        }
        other => panic!("parser, line {line:?}: fields {other:?}"),
    }
    assert_eq!(read.timestamp, Some(case.timestamp.as_millis()), "{line:?}");
}

/// A refusal must be one the case calls for.
fn check_refusal(case: &Case, error: &LineError) {
    match error {
        LineError::NonFiniteValue => assert!(!case.value.is_finite()),
        LineError::DuplicateTag(key) => {
            assert!(case.tags.iter().filter(|(other, _)| other == key).count() > 1);
        }
        LineError::UnrepresentableTagValue { key, .. } => {
            let (_, value) = case
                .tags
                .iter()
                .find(|(other, _)| other == key)
                .expect("the refused tag is one of the case's");
            // Refused rightly when InfluxDB's own escape would not read
            // back the same under the documented rule (or no escape exists).
            let mut line = String::new();
            push_line(
                &mut line,
                "m",
                &[("k", value.as_str())],
                &[("f", Field::Float(1.0))],
                0,
            );
            let reads_back = !value.contains(['\n', '\t'])
                && read_documented(&line)
                    .is_some_and(|read| read.tags == [("k".to_owned(), value.clone())]);
            assert!(!reads_back, "{value:?} was refused but {line:?} carries it");
        }
        LineError::InvalidName(name) => panic!("fixed names refused: {name:?}"),
    }
    // Refusals come in this order: value, then tags.
    if case.value.is_finite() {
        assert!(!matches!(error, LineError::NonFiniteValue));
    }
}

/// What a reader found in one line.
#[derive(Debug)]
struct Read {
    measurement: String,
    tags: Vec<(String, String)>,
    field: String,
    value: String,
    timestamp: String,
}

/// The float grammar both parsers accept: `-?digits(.digits)?` with an
/// optional exponent `e`/`E` that InfluxDB 3 wants signed.
fn check_float_syntax(text: &str) {
    let unsigned = text.strip_prefix('-').unwrap_or(text);
    let (mantissa, exponent) = match unsigned.split_once(['e', 'E']) {
        Some((mantissa, exponent)) => (mantissa, Some(exponent)),
        None => (unsigned, None),
    };
    let digits = |part: &str| !part.is_empty() && part.bytes().all(|b| b.is_ascii_digit());
    let mantissa_ok = match mantissa.split_once('.') {
        Some((whole, fraction)) => digits(whole) && digits(fraction),
        None => digits(mantissa),
    };
    let exponent_ok =
        exponent.is_none_or(|exponent| exponent.strip_prefix(['+', '-']).is_some_and(digits));
    assert!(mantissa_ok && exponent_ok, "float text {text:?}");
}

/// Reads a line by the documented rule (InfluxDB 2 docs, InfluxDB 3):
/// in tag keys and values `\\`, `\,`, `\=`, `\ ` stand for the
/// character; any other backslash is literal; a space, tab or newline
/// ends the element; a value may not end with a backslash.
fn read_documented(line: &str) -> Option<Read> {
    let line = line.strip_suffix('\n')?;
    let mut rest = line;
    let measurement = documented_element(&mut rest, &[',', ' '])?;
    let mut tags = Vec::new();
    while let Some(after) = rest.strip_prefix(',') {
        rest = after;
        let key = documented_element(&mut rest, &['='])?;
        rest = rest.strip_prefix('=')?;
        let value = documented_element(&mut rest, &[',', ' '])?;
        tags.push((key, value));
    }
    let rest = rest.strip_prefix(' ')?;
    let (field, rest) = rest.split_once('=')?;
    let (value, timestamp) = rest.split_once(' ')?;
    Some(Read {
        measurement,
        tags,
        field: field.to_owned(),
        value: value.to_owned(),
        timestamp: timestamp.to_owned(),
    })
}

fn documented_element(rest: &mut &str, stops: &[char]) -> Option<String> {
    let mut element = String::new();
    let mut characters = rest.char_indices();
    let mut end = rest.len();
    while let Some((index, character)) = characters.next() {
        if stops.contains(&character) || matches!(character, ' ' | '\t' | '\n') {
            end = index;
            break;
        }
        if character == '\\' {
            match characters.next() {
                Some((_, next @ ('\\' | ',' | '=' | ' '))) => element.push(next),
                Some((_, next)) => {
                    element.push('\\');
                    element.push(next);
                }
                None => return None,
            }
        } else {
            element.push(character);
        }
    }
    *rest = &rest[end..];
    if element.is_empty() || element.ends_with('\\') {
        return None;
    }
    Some(element)
}

/// Reads a line the way InfluxDB 1.x/2.x's Go parser does: a comma,
/// space or `=` preceded by a backslash byte is not a boundary, and
/// `unescapeTag` then replaces `\,`, `\ `, `\=` (in that order); other
/// backslashes, `\\` included, stay.
fn read_go(line: &str) -> Option<Read> {
    let line = line.strip_suffix('\n')?;
    if line.contains('\n') {
        return None;
    }
    let bytes = line.as_bytes();
    let boundary = |index: usize, stops: &[u8]| {
        stops.contains(&bytes[index]) && (index == 0 || bytes[index - 1] != b'\\')
    };
    let scan = |start: usize, stops: &[u8]| {
        (start..bytes.len())
            .find(|&index| boundary(index, stops))
            .unwrap_or(bytes.len())
    };
    let unescape = |text: &str| {
        text.replace("\\,", ",")
            .replace("\\ ", " ")
            .replace("\\=", "=")
    };
    let end = scan(0, b", ");
    let measurement = line[..end].replace("\\,", ",").replace("\\ ", " ");
    let mut at = end;
    let mut tags = Vec::new();
    while bytes.get(at) == Some(&b',') {
        let key_end = scan(at + 1, b"=");
        if key_end >= bytes.len() {
            return None;
        }
        let value_end = scan(key_end + 1, b", ");
        let value = &line[key_end + 1..value_end];
        if value.is_empty() {
            return None;
        }
        // An unescaped `=` in a tag value is refused.
        if (key_end + 1..value_end).any(|index| boundary(index, b"=")) {
            return None;
        }
        tags.push((unescape(&line[at + 1..key_end]), unescape(value)));
        at = value_end;
    }
    if bytes.get(at) != Some(&b' ') {
        return None;
    }
    let (field, rest) = line[at + 1..].split_once('=')?;
    let (value, timestamp) = rest.split_once(' ')?;
    Some(Read {
        measurement,
        tags,
        field: field.to_owned(),
        value: value.to_owned(),
        timestamp: timestamp.to_owned(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fuzz_check_holds_for_hand_picked_values() {
        let at = EpochMillis::from_millis(-1).unwrap();
        for value in [
            "plain",
            " ",
            ",",
            "=",
            "\"",
            "\\",
            "a\\b",
            "\\é",
            "日本,語 =",
            "\r",
            "#x",
            "x\\\"",
            "a\\=b",
            "=\\=",
            "\u{0}",
            "",
        ] {
            let case = Case {
                tags: vec![("site".into(), value.into()), ("sensor".into(), "s".into())],
                value: -0.0,
                timestamp: at,
            };
            check_case(&case);
        }
    }

    /// Replays the committed corpus of the `line_protocol` fuzz target
    /// (`fuzz/`), so CI checks every input the fuzzer found interesting.
    #[test]
    fn fuzz_corpus_replays() {
        let directory = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../../fuzz/corpus/line_protocol");
        let mut replayed = 0;
        for entry in std::fs::read_dir(&directory).expect("the fuzz corpus is committed") {
            let data = std::fs::read(entry.unwrap().path()).unwrap();
            check_line_protocol(&data);
            replayed += 1;
        }
        assert!(replayed > 0, "no corpus in {}", directory.display());
    }
}
