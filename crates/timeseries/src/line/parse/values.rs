//! Field values (numbers, booleans, strings) and unescaping, as
//! InfluxDB 1.x/2.x's parser reads them.

use std::borrow::Cow;

use super::{FieldValue, Problem};

/// A string value from its opening quote at `index`; returns the value and
/// the index after its closing quote.
pub(super) fn scan_string<'a>(
    text: &'a str,
    index: usize,
    key: &str,
) -> Result<(FieldValue<'a>, usize), Problem> {
    let bytes = text.as_bytes();
    let mut end = index + 1;
    loop {
        match bytes.get(end) {
            None => return Err(Problem::UnbalancedQuotes(key.to_owned())),
            Some(b'\\') if end + 1 < bytes.len() => end += 2,
            Some(b'"') => break,
            Some(_) => end += 1,
        }
    }
    let raw = &text[index + 1..end];
    let value = if raw.contains('\\') {
        let mut out = String::with_capacity(raw.len());
        let mut characters = raw.chars().peekable();
        while let Some(character) = characters.next() {
            if character == '\\'
                && let Some(next @ ('\\' | '"')) = characters.peek().copied()
            {
                out.push(next);
                characters.next();
            } else {
                out.push(character);
            }
        }
        Cow::Owned(out)
    } else {
        Cow::Borrowed(raw)
    };
    Ok((FieldValue::String(value), end + 1))
}

/// A number as InfluxDB's `scanNumber` reads it: `-?[0-9.]+` with an
/// optional exponent (floats) or an `i`/`u` suffix (integers).
pub(super) fn number<'a>(text: &str, key: &str) -> Result<FieldValue<'a>, Problem> {
    let invalid = || Problem::InvalidNumber {
        field: key.to_owned(),
        text: text.to_owned(),
    };
    let (body, suffix) = match text.as_bytes().last() {
        Some(suffix @ (b'i' | b'u')) if text.len() > 1 => (&text[..text.len() - 1], Some(*suffix)),
        _ => (text, None),
    };
    let bytes = body.as_bytes();
    let unsigned_part = body.strip_prefix('-').unwrap_or(body).as_bytes();
    if unsigned_part.is_empty() {
        return Err(invalid());
    }
    let mut decimal = false;
    let mut scientific = false;
    let mut digits = 0;
    let offset = bytes.len() - unsigned_part.len();
    for (index, byte) in unsigned_part.iter().enumerate() {
        let at = offset + index;
        match byte {
            b'0'..=b'9' => digits += 1,
            b'.' if !decimal => decimal = true,
            b'e' | b'E' if at > 0 => scientific = true,
            b'+' | b'-' if at > 0 && matches!(bytes[at - 1], b'e' | b'E') => {}
            _ => return Err(invalid()),
        }
    }
    if digits == 0 || (suffix.is_some() && (decimal || scientific)) {
        return Err(invalid());
    }
    let out_of_range = || Problem::NumberOutOfRange {
        field: key.to_owned(),
        text: text.to_owned(),
    };
    match suffix {
        Some(b'i') => body
            .parse::<i64>()
            .map(FieldValue::Integer)
            .map_err(|_| out_of_range()),
        Some(_) => {
            if body.starts_with('-') {
                return Err(invalid());
            }
            body.parse::<u64>()
                .map(FieldValue::Unsigned)
                .map_err(|_| out_of_range())
        }
        None => match body.parse::<f64>() {
            // Out of range either way is refused, as Go's ParseFloat does:
            // ±inf, or a mantissa that is not zero read as zero.
            Ok(value) if value.is_finite() && (value != 0.0 || !underflows(body)) => {
                Ok(FieldValue::Float(value))
            }
            _ => Err(Problem::InvalidFloat {
                field: key.to_owned(),
                text: text.to_owned(),
            }),
        },
    }
}

/// Whether a float's mantissa has a digit other than zero (so that
/// reading it as zero means it underflowed).
fn underflows(body: &str) -> bool {
    body.split(['e', 'E'])
        .next()
        .is_some_and(|mantissa| mantissa.bytes().any(|byte| matches!(byte, b'1'..=b'9')))
}

pub(super) fn boolean<'a>(text: &str, key: &str) -> Result<FieldValue<'a>, Problem> {
    match text {
        "t" | "T" | "true" | "True" | "TRUE" => Ok(FieldValue::Boolean(true)),
        "f" | "F" | "false" | "False" | "FALSE" => Ok(FieldValue::Boolean(false)),
        _ => Err(Problem::InvalidBoolean {
            field: key.to_owned(),
            text: text.to_owned(),
        }),
    }
}

/// `raw` with each backslash before one of `escapes` dropped; other
/// backslashes stay. Borrowed when there is nothing to drop.
pub(super) fn unescape<'a>(raw: &'a str, escapes: &[u8]) -> Cow<'a, str> {
    if !raw.contains('\\') {
        return Cow::Borrowed(raw);
    }
    let bytes = raw.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut index = 0;
    while index < bytes.len() {
        if bytes[index] == b'\\'
            && let Some(next) = bytes.get(index + 1)
            && escapes.contains(next)
        {
            out.push(*next);
            index += 2;
        } else {
            out.push(bytes[index]);
            index += 1;
        }
    }
    // Only ASCII backslashes were removed before ASCII bytes.
    Cow::Owned(String::from_utf8(out).unwrap_or_else(|_| raw.to_owned()))
}
