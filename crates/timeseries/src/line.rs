//! Line protocol for readings.

use stoker_domain::{EpochMillis, SensorKey, SensorType, SiteSlug};

/// The measurement every reading goes to.
pub(crate) const MEASUREMENT: &str = "readings";

/// A batch of readings encoded as line protocol, ready for one write:
/// `readings,site=…,sensor=…,type=… value=181.2 1732269600000` per line,
/// millisecond precision.
///
/// Encoding happens as readings are pushed, so a batch costs one `String`
/// however many points it holds.
#[derive(Debug, Clone)]
pub struct LineBatch {
    body: String,
    points: usize,
    /// The oldest and newest timestamps pushed (ms); `i64::MAX`/`MIN` when
    /// empty.
    oldest: i64,
    newest: i64,
}

impl Default for LineBatch {
    fn default() -> Self {
        Self::with_capacity(0)
    }
}

impl LineBatch {
    /// An empty batch with room for about `points` lines.
    pub fn with_capacity(points: usize) -> Self {
        Self {
            body: String::with_capacity(points * 96),
            points: 0,
            oldest: i64::MAX,
            newest: i64::MIN,
        }
    }

    /// Appends one reading. `value` must be finite (the caller validates
    /// readings; a non-finite value is skipped here rather than written as
    /// a line InfluxDB would refuse along with the rest of the batch).
    pub fn push(
        &mut self,
        site: &SiteSlug,
        sensor: &SensorKey,
        sensor_type: &SensorType,
        value: f64,
        timestamp: EpochMillis,
    ) {
        if !value.is_finite() {
            return;
        }
        self.body.push_str(MEASUREMENT);
        for (key, tag) in [
            ("site", site.as_str()),
            ("sensor", sensor.as_str()),
            ("type", sensor_type.as_str()),
        ] {
            self.body.push(',');
            self.body.push_str(key);
            self.body.push('=');
            escape_tag_value(&mut self.body, tag);
        }
        self.body.push_str(" value=");
        push_float(&mut self.body, value);
        self.body.push(' ');
        self.body
            .push_str(itoa::Buffer::new().format(timestamp.as_millis()));
        self.body.push('\n');
        self.points += 1;
        self.oldest = self.oldest.min(timestamp.as_millis());
        self.newest = self.newest.max(timestamp.as_millis());
    }

    /// A batch from text this type encoded earlier (a spooled batch).
    pub fn from_encoded(body: String) -> Self {
        let mut batch = Self {
            points: 0,
            oldest: i64::MAX,
            newest: i64::MIN,
            body: String::new(),
        };
        for line in body.lines().filter(|line| !line.is_empty()) {
            batch.points += 1;
            // The timestamp is the last field of every line this type writes.
            if let Some(millis) = line
                .rsplit(' ')
                .next()
                .and_then(|field| field.parse::<i64>().ok())
            {
                batch.oldest = batch.oldest.min(millis);
                batch.newest = batch.newest.max(millis);
            }
        }
        batch.body = body;
        batch
    }

    /// The oldest and newest timestamps in the batch; `None` when empty.
    pub fn time_range(&self) -> Option<(EpochMillis, EpochMillis)> {
        if self.oldest > self.newest {
            return None;
        }
        Some((
            EpochMillis::from_millis(self.oldest).ok()?,
            EpochMillis::from_millis(self.newest).ok()?,
        ))
    }

    /// Number of points in the batch.
    pub fn len(&self) -> usize {
        self.points
    }

    /// Whether the batch holds no point.
    pub fn is_empty(&self) -> bool {
        self.points == 0
    }

    /// The encoded body.
    pub fn as_str(&self) -> &str {
        &self.body
    }

    /// Empties the batch, keeping its allocation.
    pub fn clear(&mut self) {
        self.body.clear();
        self.points = 0;
        self.oldest = i64::MAX;
        self.newest = i64::MIN;
    }
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
pub(crate) fn escape_tag_value(out: &mut String, value: &str) {
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
/// nothing is appended. [`LineBatch::push`] is the fast path for readings.
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
    out.push_str(measurement);
    for (key, tag) in tags {
        if tag.is_empty() {
            continue;
        }
        out.push(',');
        out.push_str(key);
        out.push('=');
        escape_tag_value(out, tag);
    }
    out.push(' ');
    out.push_str(field);
    out.push('=');
    push_float(out, value);
    out.push(' ');
    out.push_str(itoa::Buffer::new().format(timestamp.as_millis()));
    out.push('\n');
    Ok(())
}

/// The check behind the `line_protocol` fuzz target and the test that
/// replays its corpus: arbitrary bytes become a point with arbitrary tag
/// values, value and timestamp; [`encode_point`] must encode it so that
/// two reference readers written from InfluxDB's rules (the Go parser's of
/// 1.x/2.x, and the documented rule InfluxDB 3 follows) give back exactly
/// the same point, or refuse it for a reason that holds. Not an API.
#[doc(hidden)]
pub mod fuzzing {
    use super::{LineBatch, LineError, encode_point, escape_tag_value};
    use stoker_domain::EpochMillis;

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
                let mut line = String::from("m,k=");
                escape_tag_value(&mut line, value);
                line.push_str(" f=1 0\n");
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
}

#[cfg(test)]
mod tests {
    use super::*;

    fn reading(batch: &mut LineBatch, value: f64) {
        batch.push(
            &SiteSlug::parse("boiler-house-1").unwrap(),
            &SensorKey::parse("b1_flue_temp").unwrap(),
            &SensorType::parse("temperature").unwrap(),
            value,
            EpochMillis::from_millis(1_732_269_600_000).unwrap(),
        );
    }

    #[test]
    fn encodes_one_line_per_reading() {
        let mut batch = LineBatch::default();
        reading(&mut batch, 181.2);
        reading(&mut batch, 81.0);
        assert_eq!(
            batch.as_str(),
            "readings,site=boiler-house-1,sensor=b1_flue_temp,type=temperature value=181.2 1732269600000\n\
             readings,site=boiler-house-1,sensor=b1_flue_temp,type=temperature value=81.0 1732269600000\n"
        );
        assert_eq!(batch.len(), 2);
    }

    #[test]
    fn a_batch_knows_its_time_range_also_when_read_back() {
        let mut batch = LineBatch::default();
        assert_eq!(batch.time_range(), None);
        reading(&mut batch, 1.0);
        let at = EpochMillis::from_millis(1_732_269_600_000).unwrap();
        batch.push(
            &SiteSlug::parse("b").unwrap(),
            &SensorKey::parse("s").unwrap(),
            &SensorType::parse("t").unwrap(),
            2.0,
            at.plus_millis(-5_000),
        );
        assert_eq!(batch.time_range(), Some((at.plus_millis(-5_000), at)));
        let again = LineBatch::from_encoded(batch.as_str().to_owned());
        assert_eq!((again.len(), again.time_range()), (2, batch.time_range()));
        batch.clear();
        assert_eq!(batch.time_range(), None);
    }

    #[test]
    fn non_finite_values_are_never_encoded() {
        let mut batch = LineBatch::default();
        reading(&mut batch, f64::NAN);
        reading(&mut batch, f64::INFINITY);
        assert!(batch.is_empty() && batch.as_str().is_empty());
    }

    #[test]
    fn extreme_values_round_trip_as_text() {
        for value in [1e300, -2.5e-12, 0.1 + 0.2] {
            let mut batch = LineBatch::default();
            reading(&mut batch, value);
            let text = batch.as_str();
            let field = text
                .split(" value=")
                .nth(1)
                .unwrap()
                .split(' ')
                .next()
                .unwrap();
            assert_eq!(field.parse::<f64>().unwrap(), value);
        }
    }

    #[test]
    fn tag_values_are_escaped() {
        let mut out = String::new();
        escape_tag_value(&mut out, "a b,c=d");
        assert_eq!(out, r"a\ b\,c\=d");
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
            let case = fuzzing::Case {
                tags: vec![("site".into(), value.into()), ("sensor".into(), "s".into())],
                value: -0.0,
                timestamp: at,
            };
            fuzzing::check_case(&case);
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
            fuzzing::check_line_protocol(&data);
            replayed += 1;
        }
        assert!(replayed > 0, "no corpus in {}", directory.display());
    }
}
