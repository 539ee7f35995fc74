//! History as CSV (RFC 4180): which format a request gets (`?format=`,
//! else its `Accept` header), the rows, their quoting, the file's name,
//! and the body a CSV answer is streamed through. Knows nothing of
//! InfluxDB: the history module hands it rows as it reads them.

use std::fmt::Write as _;
use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::Bytes;
use stoker_domain::{EpochMillis, ReadingValue};
use tokio::sync::mpsc;

use crate::problem::ApiError;

/// What a history request is answered in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Format {
    /// `application/json`, the default.
    Json,
    /// `text/csv; charset=utf-8`, streamed.
    Csv,
}

/// The media type of a CSV answer.
pub(crate) const CSV_CONTENT_TYPE: &str = "text/csv; charset=utf-8";

/// The columns of a CSV answer, in order.
pub(crate) const COLUMNS: [&str; 7] = ["time", "site", "sensor", "unit", "agg", "value", "count"];

impl Format {
    /// The values `format` takes.
    pub(crate) const NAMES: [&'static str; 2] = ["json", "csv"];

    /// The format a request asks for: `format` when given (it wins over
    /// `Accept`, so a link or a browser can ask for CSV), else the one its
    /// `Accept` header prefers (JSON on a tie, or without the header).
    /// A `format` of another value is a 400 naming the allowed ones; an
    /// `Accept` that allows neither JSON nor CSV is a 406.
    pub(crate) fn choose(format: Option<&str>, accept: Option<&str>) -> Result<Format, ApiError> {
        match format {
            Some("json") => return Ok(Format::Json),
            Some("csv") => return Ok(Format::Csv),
            Some(other) => {
                return Err(ApiError::BadParameter {
                    parameter: "format",
                    detail: format!(
                        "format={:?} is not one of {}",
                        other.chars().take(32).collect::<String>(),
                        Self::NAMES.join(", ")
                    ),
                });
            }
            None => {}
        }
        let Some(accept) = accept.filter(|accept| !accept.trim().is_empty()) else {
            return Ok(Format::Json);
        };
        let json = weight(accept, "application", "json");
        let csv = weight(accept, "text", "csv");
        if json <= 0.0 && csv <= 0.0 {
            return Err(ApiError::NotAcceptable(format!(
                "Accept: {:?} allows neither of the types this route gives: application/json (the default) and text/csv (also ?format=csv)",
                accept.chars().take(128).collect::<String>()
            )));
        }
        Ok(if csv > json {
            Format::Csv
        } else {
            Format::Json
        })
    }
}

/// The weight (`q`) `accept` gives `kind/subtype`, from its most specific
/// media range that matches (RFC 9110, 12.5.1): `kind/subtype` over
/// `kind/*` over `*/*`; 0 when none does. A range that does not parse
/// matches nothing.
fn weight(accept: &str, kind: &str, subtype: &str) -> f32 {
    let mut best: Option<(u8, f32)> = None;
    for range in accept.split(',') {
        let mut parts = range.split(';');
        let Some((range_kind, range_subtype)) =
            parts.next().and_then(|media| media.trim().split_once('/'))
        else {
            continue;
        };
        let (range_kind, range_subtype) = (range_kind.trim(), range_subtype.trim());
        let specificity = if range_kind.eq_ignore_ascii_case(kind)
            && range_subtype.eq_ignore_ascii_case(subtype)
        {
            2
        } else if range_kind.eq_ignore_ascii_case(kind) && range_subtype == "*" {
            1
        } else if range_kind == "*" && range_subtype == "*" {
            0
        } else {
            continue;
        };
        let mut q = Some(1.0);
        for parameter in parts {
            if let Some((name, value)) = parameter.split_once('=')
                && name.trim().eq_ignore_ascii_case("q")
            {
                q = value
                    .trim()
                    .parse::<f32>()
                    .ok()
                    .filter(|q| (0.0..=1.0).contains(q));
            }
        }
        let Some(q) = q else { continue };
        if best.is_none_or(|(known, _)| specificity > known) {
            best = Some((specificity, q));
        }
    }
    best.map_or(0.0, |(_, q)| q)
}

/// The header row, CRLF-terminated.
pub(crate) fn push_header(out: &mut String) {
    out.push_str(&COLUMNS.join(","));
    out.push_str("\r\n");
}

/// What every row of one answer repeats: the site, sensor, unit and
/// aggregate, already quoted.
#[derive(Debug, Clone)]
pub(crate) struct RowPrefix(String);

impl RowPrefix {
    pub(crate) fn new(site: &str, sensor: &str, unit: &str, aggregate: &str) -> Self {
        let mut prefix = String::new();
        for field in [site, sensor, unit, aggregate] {
            prefix.push(',');
            push_field(&mut prefix, field);
        }
        prefix.push(',');
        Self(prefix)
    }
}

/// One row: the bucket's start (RFC 3339, UTC, as the JSON answer gives
/// it), the value in the sensor's kind (a number as the shortest decimal
/// that reads back exactly, `true`/`false`, or a state's name) and the
/// bucket's count of readings; CRLF-terminated.
pub(crate) fn push_row(
    out: &mut String,
    prefix: &RowPrefix,
    start: EpochMillis,
    value: &ReadingValue,
    count: u64,
) {
    // Writing into a String cannot fail.
    let _ = write!(out, "{start}");
    out.push_str(&prefix.0);
    match value {
        ReadingValue::Number(number) => {
            let _ = write!(out, "{number}");
        }
        ReadingValue::Boolean(flag) => out.push_str(if *flag { "true" } else { "false" }),
        ReadingValue::State(name) => push_field(out, name),
    }
    let _ = write!(out, ",{count}\r\n");
}

/// A field as RFC 4180 writes it: quoted, with its quotes doubled, when
/// it holds a comma, a quote or a line break; as it is otherwise.
pub(crate) fn push_field(out: &mut String, field: &str) {
    if field.contains([',', '"', '\r', '\n']) {
        out.push('"');
        out.push_str(&field.replace('"', "\"\""));
        out.push('"');
    } else {
        out.push_str(field);
    }
}

/// The file name a CSV answer suggests: site, sensor and range, times
/// in UTC without the characters file systems refuse
/// (`boiler-house-1_b1_flue_temp_20261207T100000Z_20261207T110000Z.csv`).
pub(crate) fn file_name(site: &str, sensor: &str, start: EpochMillis, end: EpochMillis) -> String {
    let compact = |at: EpochMillis| {
        let text = at.to_string().replace(".000Z", "Z");
        text.replace(['-', ':'], "")
    };
    format!("{site}_{sensor}_{}_{}.csv", compact(start), compact(end))
}

/// A CSV answer's body: chunks of rows sent by the task that reads them,
/// through a channel of a few chunks (so a slow client holds the reader
/// back rather than the server buffering the answer). An error ends the
/// body early, which aborts the response: the client sees a broken
/// transfer, never a file that looks complete.
#[derive(Debug)]
pub(crate) struct CsvBody {
    chunks: mpsc::Receiver<Result<Bytes, std::io::Error>>,
}

/// Chunks of rows a CSV answer's body is waiting for, at most.
const CHUNKS_IN_FLIGHT: usize = 4;

/// A body and the sender its rows go through.
pub(crate) fn body() -> (mpsc::Sender<Result<Bytes, std::io::Error>>, CsvBody) {
    let (sender, chunks) = mpsc::channel(CHUNKS_IN_FLIGHT);
    (sender, CsvBody { chunks })
}

impl warp::Stream for CsvBody {
    type Item = Result<Bytes, std::io::Error>;

    fn poll_next(mut self: Pin<&mut Self>, context: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        self.chunks.poll_recv(context)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn chosen(format: Option<&str>, accept: Option<&str>) -> Result<Format, (u16, String)> {
        Format::choose(format, accept).map_err(|error| match error {
            ApiError::BadParameter { parameter, detail } => (400, format!("{parameter}: {detail}")),
            ApiError::NotAcceptable(detail) => (406, detail),
            other => panic!("{other:?}"),
        })
    }

    #[test]
    fn format_wins_over_accept_and_accept_is_weighed() {
        assert_eq!(chosen(None, None), Ok(Format::Json));
        assert_eq!(chosen(None, Some("")), Ok(Format::Json));
        assert_eq!(
            chosen(Some("csv"), Some("application/json")),
            Ok(Format::Csv)
        );
        assert_eq!(chosen(Some("json"), Some("text/csv")), Ok(Format::Json));
        for (accept, expected) in [
            ("text/csv", Format::Csv),
            ("TEXT/CSV; charset=utf-8", Format::Csv),
            ("text/*", Format::Csv),
            ("*/*", Format::Json),
            ("application/json", Format::Json),
            ("text/csv;q=0.5, application/json", Format::Json),
            ("application/json;q=0.2, text/csv;q=0.9", Format::Csv),
            ("text/csv, */*;q=0.1", Format::Csv),
            ("text/html, */*;q=0.8", Format::Json),
            (
                "text/*;q=0.3, text/csv;q=0, application/json;q=0.1",
                Format::Json,
            ),
        ] {
            assert_eq!(chosen(None, Some(accept)), Ok(expected), "{accept}");
        }
        for accept in [
            "text/html",
            "application/xml, text/plain",
            "text/csv;q=0",
            "nonsense",
        ] {
            let (status, detail) = chosen(None, Some(accept)).unwrap_err();
            assert_eq!(status, 406, "{accept}");
            assert!(detail.contains("text/csv"), "{detail}");
        }
        let (status, detail) = chosen(Some("xlsx"), None).unwrap_err();
        assert_eq!(status, 400);
        assert_eq!(detail, "format: format=\"xlsx\" is not one of json, csv");
    }

    #[test]
    fn fields_are_quoted_as_rfc_4180_says() {
        let quoted = |field: &str| {
            let mut out = String::new();
            push_field(&mut out, field);
            out
        };
        assert_eq!(quoted("°C"), "°C");
        assert_eq!(quoted("mg/Nm³, dry"), "\"mg/Nm³, dry\"");
        assert_eq!(quoted("5\" water"), "\"5\"\" water\"");
        assert_eq!(quoted("a\r\nb"), "\"a\r\nb\"");
    }

    #[test]
    fn rows_hold_each_kind_natively() {
        let prefix = RowPrefix::new("boiler-house-1", "b1_x", "ppm, dry", "last");
        let at = EpochMillis::from_millis(1_796_000_000_000).unwrap();
        let mut out = String::new();
        push_header(&mut out);
        push_row(&mut out, &prefix, at, &ReadingValue::Number(181.25), 6);
        push_row(&mut out, &prefix, at, &ReadingValue::Number(5.0), 1);
        push_row(&mut out, &prefix, at, &ReadingValue::Boolean(true), 2);
        push_row(
            &mut out,
            &prefix,
            at,
            &ReadingValue::State("firing".into()),
            3,
        );
        assert_eq!(
            out,
            "time,site,sensor,unit,agg,value,count\r\n\
             2026-11-30T00:53:20.000Z,boiler-house-1,b1_x,\"ppm, dry\",last,181.25,6\r\n\
             2026-11-30T00:53:20.000Z,boiler-house-1,b1_x,\"ppm, dry\",last,5,1\r\n\
             2026-11-30T00:53:20.000Z,boiler-house-1,b1_x,\"ppm, dry\",last,true,2\r\n\
             2026-11-30T00:53:20.000Z,boiler-house-1,b1_x,\"ppm, dry\",last,firing,3\r\n"
        );
    }

    #[test]
    fn the_file_name_names_site_sensor_and_range() {
        let at = |millis| EpochMillis::from_millis(millis).unwrap();
        assert_eq!(
            file_name(
                "boiler-house-1",
                "b1_flue_temp",
                at(1_796_000_000_000),
                at(1_796_000_000_250)
            ),
            "boiler-house-1_b1_flue_temp_20261130T005320Z_20261130T005320.250Z.csv"
        );
    }
}
