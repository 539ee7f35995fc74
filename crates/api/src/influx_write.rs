//! InfluxDB-compatible writes (DESIGN.md): `POST /api/v2/write` (2.x:
//! `org`, `bucket`, `precision=ns|us|ms|s`) and `POST /write` (1.x: `db`,
//! `precision=n|u|ms|s|m|h`, `u`/`p`), taking line protocol as InfluxDB
//! does, so Telegraf and InfluxDB's client libraries write to Stoker
//! unmodified.
//!
//! - The key (scope `write`) comes as `Authorization: Token <key>` (the
//!   clients' scheme), `Bearer <key>`, HTTP Basic (the password is the
//!   key) or, without that header, the 1.x `p` parameter.
//! - Bodies may be gzip (`Content-Encoding: gzip`); the 256 KiB limit holds
//!   for the body as sent and for it decompressed (a gzip bomb is refused
//!   413 once it passes the limit, without inflating the rest).
//! - The body goes to ingestion's `Intake` whole; the writer reads its
//!   lines (`stoker_timeseries::line::parse`), maps them to readings and
//!   validates, counts and records them exactly as JSON readings; the
//!   answer comes once the accepted ones are durable.
//! - Answers are InfluxDB's, not problem+json (its clients read them):
//!   204 when all is stored; 400 `partial write: …` naming each refused
//!   line and reading (the rest is stored); 401/403; 413; 429 (the key
//!   past its `API_KEY_RATE` budget) and 503 with `Retry-After`. 2.x:
//!   `{"code","message"}`; 1.x: `{"error"}`.

use std::collections::HashMap;
use std::io::Read as _;
use std::sync::Arc;

use base64::Engine as _;
use bytes::Bytes;
use serde_json::json;
use stoker_ingestion::{BodyRefusal, IntakeError, LineWrite, Reason, Receipt};
use stoker_metadata::Scope;
use stoker_timeseries::line::Precision;
use warp::Filter;
use warp::Reply as _;
use warp::http::{HeaderMap, HeaderValue, StatusCode, header};

use crate::State;
use crate::problem::{ApiError, Denied};

/// Largest body taken, as sent and decompressed (DESIGN.md's 256 KiB).
const MAX_BODY_BYTES: usize = stoker_ingestion::Intake::MAX_PAYLOAD_BYTES;

/// At most this many refusals are named in a 400's message.
const MESSAGE_REFUSALS: usize = 10;

/// Which InfluxDB API a route speaks: its parameters and answers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Api {
    /// `POST /api/v2/write`.
    V2,
    /// `POST /write`.
    V1,
}

pub(crate) fn routes(
    state: State,
) -> impl Filter<Extract = (warp::reply::Response,), Error = warp::Rejection> + Clone {
    let v2 = warp::path!("api" / "v2" / "write").map(|| Api::V2);
    let v1 = warp::path!("write").map(|| Api::V1);
    v2.or(v1)
        .unify()
        .and(warp::post())
        .and(warp::query::<HashMap<String, String>>())
        .and(warp::header::headers_cloned())
        .and(warp::body::stream())
        .and(warp::any().map(move || Arc::clone(&state)))
        .then(
            |api: Api, query: HashMap<String, String>, headers: HeaderMap, body, state: State| async move {
                match write(api, &query, &headers, body, &state).await {
                    Ok(()) => StatusCode::NO_CONTENT.into_response(),
                    Err(answer) => answer.into_response(api),
                }
            },
        )
}

/// A failed write, as InfluxDB would answer it.
#[derive(Debug)]
struct Answer {
    status: StatusCode,
    /// InfluxDB 2.x's `code`.
    code: &'static str,
    message: String,
    /// Seconds for `Retry-After` (a 429); a 503 always says 5.
    retry_after: Option<u64>,
}

impl Answer {
    fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> Self {
        Self {
            status,
            code,
            message: message.into(),
            retry_after: None,
        }
    }

    fn invalid(message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, "invalid", message)
    }

    fn into_response(self, api: Api) -> warp::reply::Response {
        let body = match api {
            Api::V2 => json!({ "code": self.code, "message": self.message }),
            Api::V1 => json!({ "error": self.message }),
        };
        let mut response =
            warp::reply::with_status(warp::reply::json(&body), self.status).into_response();
        let headers = response.headers_mut();
        if self.status == StatusCode::UNAUTHORIZED {
            headers.insert(
                header::WWW_AUTHENTICATE,
                HeaderValue::from_static("Token realm=\"stoker\""),
            );
        }
        if let Some(seconds) = self.retry_after {
            headers.insert(header::RETRY_AFTER, HeaderValue::from(seconds));
        } else if self.status == StatusCode::SERVICE_UNAVAILABLE {
            headers.insert(header::RETRY_AFTER, HeaderValue::from_static("5"));
        }
        response
    }
}

impl From<ApiError> for Answer {
    fn from(error: ApiError) -> Self {
        let message = match &error {
            ApiError::Unauthorized(Denied::Missing | Denied::Malformed) => {
                "this write needs an API key with scope write: Authorization: Token <key> (or Bearer <key>, or Basic with the key as password), or the p=<key> parameter".to_owned()
            }
            other => other.to_string(),
        };
        match error {
            ApiError::Unauthorized(_) => {
                Answer::new(StatusCode::UNAUTHORIZED, "unauthorized", message)
            }
            ApiError::Forbidden(_) => Answer::new(StatusCode::FORBIDDEN, "forbidden", message),
            ApiError::Unavailable { .. } | ApiError::Busy(_) => {
                Answer::new(StatusCode::SERVICE_UNAVAILABLE, "unavailable", message)
            }
            ApiError::BodyTimeout(_) => {
                Answer::new(StatusCode::REQUEST_TIMEOUT, "request timeout", message)
            }
            ApiError::BodyIncomplete(_) => Answer::invalid(message),
            // InfluxDB's own 429 (its `too many requests` code).
            ApiError::RateLimited { retry_after, .. } => Answer {
                retry_after: Some(retry_after),
                ..Answer::new(StatusCode::TOO_MANY_REQUESTS, "too many requests", message)
            },
            other => {
                tracing::error!(error = %other, "internal error answering a write");
                Answer::new(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    "internal error",
                    "internal error",
                )
            }
        }
    }
}

async fn write(
    api: Api,
    query: &HashMap<String, String>,
    headers: &HeaderMap,
    body: impl warp::Stream<Item = Result<impl warp::Buf, warp::Error>>,
    state: &State,
) -> Result<(), Answer> {
    let key = credentials(headers, query).map_err(ApiError::Unauthorized)?;
    let principal = crate::auth::check_token(&key, Scope::Write, state).await?;
    let mut write = line_write(api, query)?;
    write.sites = principal
        .sites()
        .map(|sites| sites.iter().map(|site| site.as_str().to_owned()).collect());
    let Some(intake) = &state.intake else {
        return Err(Answer::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "unavailable",
            "ingestion is unavailable: this process runs no ingestion",
        ));
    };
    let submitted = match read_body(headers, body).await? {
        Ok(bytes) => intake.submit_lines(write, bytes).await,
        Err(refused) => intake.refuse_lines(write, refused).await,
    };
    let receipt = submitted.map_err(|error| match error {
        IntakeError::Busy => ApiError::Busy(error.to_string()),
        IntakeError::Stopping => ApiError::Unavailable {
            dependency: "ingestion",
            detail: error.to_string(),
        },
    })?;
    answer(&receipt)
}

/// The API key, from `Authorization` (`Token`, `Bearer`, `Basic`) or else
/// the 1.x `p` parameter.
fn credentials(headers: &HeaderMap, query: &HashMap<String, String>) -> Result<String, Denied> {
    let Some(value) = headers.get(header::AUTHORIZATION) else {
        return query
            .get("p")
            .filter(|password| !password.is_empty())
            .cloned()
            .ok_or(Denied::Missing);
    };
    let value = value.to_str().map_err(|_| Denied::Malformed)?.trim();
    let (scheme, rest) = value.split_once(' ').ok_or(Denied::Malformed)?;
    let rest = rest.trim();
    if scheme.eq_ignore_ascii_case("token") || scheme.eq_ignore_ascii_case("bearer") {
        return Ok(rest.to_owned());
    }
    if scheme.eq_ignore_ascii_case("basic") {
        let decoded = base64::engine::general_purpose::STANDARD
            .decode(rest)
            .map_err(|_| Denied::Malformed)?;
        let decoded = String::from_utf8(decoded).map_err(|_| Denied::Malformed)?;
        let (_user, password) = decoded.split_once(':').ok_or(Denied::Malformed)?;
        return Ok(password.to_owned());
    }
    Err(Denied::Malformed)
}

/// The write's parameters: the site of lines without a `site` tag, the
/// precision and the sensor prefix tag.
fn line_write(api: Api, query: &HashMap<String, String>) -> Result<LineWrite, Answer> {
    let (route, site_parameter, names) = match api {
        Api::V2 => ("/api/v2/write", "bucket", &Precision::V2_NAMES[..]),
        Api::V1 => ("/write", "db", &Precision::V1_NAMES[..]),
    };
    let site = query
        .get(site_parameter)
        .filter(|site| !site.is_empty())
        .ok_or_else(|| match api {
            Api::V2 => Answer::invalid(
                "missing bucket: name the site of lines without a site tag (bucket=<site slug>)",
            ),
            Api::V1 => Answer::invalid("database is required (db=<site slug>)"),
        })?;
    let precision = match query.get("precision").map(String::as_str) {
        None | Some("") => Precision::Nanoseconds,
        Some(name) => match api {
            Api::V2 => Precision::from_v2(name),
            Api::V1 => Precision::from_v1(name),
        }
        .ok_or_else(|| {
            Answer::invalid(format!(
                "invalid precision {:?}: use one of {}",
                excerpt(name),
                names.join(", ")
            ))
        })?,
    };
    let sensor_prefix_tag = match query.get("sensor_prefix_tag") {
        None => None,
        Some(tag) if tag.is_empty() => {
            return Err(Answer::invalid(
                "sensor_prefix_tag is empty: name the tag whose value prefixes each field's sensor",
            ));
        }
        Some(tag) => Some(tag.clone()),
    };
    Ok(LineWrite {
        route,
        site: site.clone(),
        precision,
        sensor_prefix_tag,
        sites: None,
    })
}

/// The body, decompressed; or why ingestion must refuse it (over the
/// limit, or not decodable). A body that fails to arrive is an answer of
/// its own (408, 400).
async fn read_body(
    headers: &HeaderMap,
    body: impl warp::Stream<Item = Result<impl warp::Buf, warp::Error>>,
) -> Result<Result<Bytes, BodyRefusal>, Answer> {
    let gzip = match headers
        .get(header::CONTENT_ENCODING)
        .map(|value| value.to_str().map(str::trim))
    {
        None => false,
        Some(Ok(encoding)) if encoding.is_empty() || encoding.eq_ignore_ascii_case("identity") => {
            false
        }
        Some(Ok(encoding)) if encoding.eq_ignore_ascii_case("gzip") => true,
        Some(encoding) => {
            let shown = encoding.map_or_else(|_| "(not text)".to_owned(), excerpt);
            return Ok(Err(BodyRefusal::Undecodable {
                detail: format!(
                    "Content-Encoding {shown} is not one Stoker takes: send gzip or no encoding"
                ),
            }));
        }
    };
    let declared = headers
        .get(header::CONTENT_LENGTH)
        .and_then(|value| value.to_str().ok())
        .and_then(|value| value.parse::<u64>().ok());
    if let Some(length) = declared
        && length > MAX_BODY_BYTES as u64
    {
        return Ok(Err(BodyRefusal::TooLarge { length }));
    }
    let raw = match collect_limited(body).await? {
        Ok(raw) => raw,
        Err(length) => return Ok(Err(BodyRefusal::TooLarge { length })),
    };
    if !gzip {
        return Ok(Ok(raw));
    }
    let mut decompressed = Vec::with_capacity(raw.len().saturating_mul(4).min(MAX_BODY_BYTES));
    let read = flate2::read::MultiGzDecoder::new(&raw[..])
        .take(MAX_BODY_BYTES as u64 + 1)
        .read_to_end(&mut decompressed);
    Ok(match read {
        Err(error) => Err(BodyRefusal::Undecodable {
            detail: format!("the body is sent as gzip but does not decompress: {error}"),
        }),
        Ok(length) if length > MAX_BODY_BYTES => Err(BodyRefusal::TooLarge {
            length: length as u64,
        }),
        Ok(_) => Ok(Bytes::from(decompressed)),
    })
}

/// Reads the body up to the limit; `Err(bytes read)` as soon as it passes
/// it (the rest is not read).
async fn collect_limited(
    stream: impl warp::Stream<Item = Result<impl warp::Buf, warp::Error>>,
) -> Result<Result<Bytes, u64>, Answer> {
    let mut stream = std::pin::pin!(stream);
    let mut body = bytes::BytesMut::new();
    while let Some(chunk) = std::future::poll_fn(|cx| stream.as_mut().poll_next(cx)).await {
        let mut chunk = chunk.map_err(|error| match crate::server::body_timeout(&error) {
            Some(timeout) => Answer::from(ApiError::BodyTimeout(timeout.to_string())),
            None => Answer::invalid(format!("the request body could not be read whole: {error}")),
        })?;
        while chunk.has_remaining() {
            let part = chunk.chunk();
            let length = part.len();
            body.extend_from_slice(part);
            chunk.advance(length);
        }
        if body.len() > MAX_BODY_BYTES {
            return Ok(Err(body.len() as u64));
        }
    }
    Ok(Ok(body.freeze()))
}

/// 204, or InfluxDB's answer naming what was refused.
fn answer(receipt: &Receipt) -> Result<(), Answer> {
    if receipt.refused.is_empty() {
        return Ok(());
    }
    if let Some(too_large) = receipt
        .refused
        .iter()
        .find(|refused| refused.reason == Reason::PayloadTooLarge)
    {
        return Err(Answer::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "request too large",
            too_large.detail.clone(),
        ));
    }
    let forbidden_only = receipt.accepted == 0
        && receipt
            .refused
            .iter()
            .all(|refused| refused.reason == Reason::ForbiddenSite);
    let mut message = String::from(if forbidden_only {
        "forbidden: "
    } else {
        "partial write: "
    });
    for (index, refused) in receipt.refused.iter().take(MESSAGE_REFUSALS).enumerate() {
        if index > 0 {
            message.push_str("; ");
        }
        message.push_str(&refused.detail);
        message.push_str(" (");
        message.push_str(refused.reason.as_str());
        message.push(')');
    }
    let more = receipt.refused.len().saturating_sub(MESSAGE_REFUSALS);
    if more > 0 {
        message.push_str(&format!("; and {more} more"));
    }
    message.push_str(&format!(
        " dropped={} stored={}",
        receipt.refused.len(),
        receipt.accepted
    ));
    if forbidden_only {
        return Err(Answer::new(StatusCode::FORBIDDEN, "forbidden", message));
    }
    Err(Answer::invalid(message))
}

fn excerpt(text: &str) -> String {
    text.chars().take(64).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn query(pairs: &[(&str, &str)]) -> HashMap<String, String> {
        pairs
            .iter()
            .map(|(key, value)| ((*key).to_owned(), (*value).to_owned()))
            .collect()
    }

    fn headers(pairs: &[(&'static str, &str)]) -> HeaderMap {
        pairs
            .iter()
            .map(|(name, value)| {
                (
                    header::HeaderName::from_static(name),
                    HeaderValue::from_str(value).unwrap(),
                )
            })
            .collect()
    }

    #[test]
    fn the_key_comes_in_each_of_influxdbs_ways() {
        let none = HashMap::new();
        for (authorization, key) in [
            ("Token stk_a_b", "stk_a_b"),
            ("token  stk_a_b ", "stk_a_b"),
            ("Bearer stk_a_b", "stk_a_b"),
            // user:stk_a_b
            ("Basic dXNlcjpzdGtfYV9i", "stk_a_b"),
        ] {
            let found = credentials(&headers(&[("authorization", authorization)]), &none);
            assert_eq!(found.as_deref(), Ok(key), "{authorization}");
        }
        let found = credentials(&HeaderMap::new(), &query(&[("u", "me"), ("p", "stk_a_b")]));
        assert_eq!(found.as_deref(), Ok("stk_a_b"));
        assert_eq!(credentials(&HeaderMap::new(), &none), Err(Denied::Missing));
        for malformed in ["Digest x", "Token", "Basic !!!", "Basic dXNlcg=="] {
            assert_eq!(
                credentials(&headers(&[("authorization", malformed)]), &none),
                Err(Denied::Malformed),
                "{malformed}"
            );
        }
    }

    #[test]
    fn parameters_name_the_site_precision_and_prefix() {
        let write = line_write(
            Api::V2,
            &query(&[
                ("org", "any"),
                ("bucket", "boiler-house-1"),
                ("precision", "s"),
                ("sensor_prefix_tag", "name"),
            ]),
        )
        .unwrap();
        assert_eq!(
            write,
            LineWrite {
                route: "/api/v2/write",
                site: "boiler-house-1".into(),
                precision: Precision::Seconds,
                sensor_prefix_tag: Some("name".into()),
                sites: None,
            }
        );
        let write = line_write(Api::V1, &query(&[("db", "b"), ("precision", "h")])).unwrap();
        assert_eq!(
            (write.route, write.precision, write.sensor_prefix_tag),
            ("/write", Precision::Hours, None)
        );
        let default = line_write(Api::V1, &query(&[("db", "b")])).unwrap();
        assert_eq!(default.precision, Precision::Nanoseconds);
        for (api, pairs, words) in [
            (Api::V2, &[("org", "o")][..], "missing bucket"),
            (Api::V1, &[("bucket", "b")][..], "database is required"),
            (
                Api::V2,
                &[("bucket", "b"), ("precision", "h")][..],
                "invalid precision \"h\"",
            ),
            (
                Api::V1,
                &[("db", "b"), ("precision", "x")][..],
                "use one of n, ns, u",
            ),
            (
                Api::V1,
                &[("db", "b"), ("sensor_prefix_tag", "")][..],
                "sensor_prefix_tag",
            ),
        ] {
            let refused = line_write(api, &query(pairs)).unwrap_err();
            assert_eq!(refused.status, StatusCode::BAD_REQUEST);
            assert!(refused.message.contains(words), "{}", refused.message);
        }
    }

    #[test]
    fn busy_and_unauthorized_answers_carry_their_headers() {
        let busy = Answer::from(ApiError::Busy("ingestion is saturated".into()));
        let response = busy.into_response(Api::V2);
        assert_eq!(response.status(), StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(response.headers()[header::RETRY_AFTER], "5");
        let response = Answer::from(ApiError::Unauthorized(Denied::Missing)).into_response(Api::V1);
        assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
        assert!(response.headers().contains_key(header::WWW_AUTHENTICATE));
        let limited = Answer::from(ApiError::RateLimited {
            retry_after: 3,
            budget: "50/s with a burst of 50".into(),
        });
        assert_eq!(limited.code, "too many requests");
        let response = limited.into_response(Api::V2);
        assert_eq!(response.status(), StatusCode::TOO_MANY_REQUESTS);
        assert_eq!(response.headers()[header::RETRY_AFTER], "3");
        assert_eq!(response.headers()[header::CONTENT_TYPE], "application/json");
    }

    #[test]
    fn a_partial_write_names_each_refusal_and_counts() {
        let refused = |detail: &str, reason| stoker_ingestion::Refused {
            sensor: None,
            reason,
            detail: detail.into(),
        };
        let receipt = Receipt {
            accepted: 3,
            refused: vec![
                refused(
                    "line 2: unable to parse 'x': missing fields",
                    Reason::MalformedLine,
                ),
                refused(
                    "line 4, sensor \"nope\": sensor \"nope\" is not registered at this site",
                    Reason::UnknownSensor,
                ),
            ],
            message_refused: false,
        };
        let answer = answer(&receipt).unwrap_err();
        assert_eq!(answer.status, StatusCode::BAD_REQUEST);
        assert_eq!(
            answer.message,
            "partial write: line 2: unable to parse 'x': missing fields (malformed_line); line 4, sensor \"nope\": sensor \"nope\" is not registered at this site (unknown_sensor) dropped=2 stored=3"
        );
        let many = Receipt {
            accepted: 0,
            refused: (0..12)
                .map(|line| refused(&format!("line {line}: x"), Reason::MalformedLine))
                .collect(),
            message_refused: false,
        };
        assert!(
            super::answer(&many)
                .unwrap_err()
                .message
                .ends_with("; and 2 more dropped=12 stored=0")
        );
        assert!(super::answer(&Receipt::default()).is_ok());
    }
}
