//! JSON bodies read field by field, collecting a message per bad field.

use bytes::Bytes;
use serde_json::{Map, Value};
use warp::Filter;

use crate::problem::{ApiError, FieldError, UnsupportedMediaType};

/// Largest metadata request body.
const MAX_BODY_BYTES: u64 = 64 * 1024;

/// Refuses (415) a request whose content type is not `application/json`.
pub(crate) fn require_json() -> impl Filter<Extract = (), Error = warp::Rejection> + Clone {
    warp::header::optional::<String>("content-type")
        .and_then(|content_type: Option<String>| async move {
            let is_json = content_type.is_some_and(|value| {
                value
                    .split(';')
                    .next()
                    .is_some_and(|media| media.trim().eq_ignore_ascii_case("application/json"))
            });
            if is_json {
                Ok(())
            } else {
                Err(warp::reject::custom(UnsupportedMediaType))
            }
        })
        .untuple_one()
}

/// A JSON object body (application/json), at most 64 KiB.
pub(crate) fn json_object() -> impl Filter<Extract = (Fields,), Error = warp::Rejection> + Clone {
    require_json()
        .and(warp::body::content_length_limit(MAX_BODY_BYTES))
        .and(bytes())
        .and_then(|body: Bytes| async move {
            match serde_json::from_slice::<Value>(&body) {
                Ok(Value::Object(map)) => Ok(Fields {
                    map,
                    errors: Vec::new(),
                }),
                Ok(_) => Err(warp::reject::custom(ApiError::MalformedJson(
                    "the body must be a JSON object".into(),
                ))),
                Err(error) => Err(warp::reject::custom(ApiError::MalformedJson(format!(
                    "the body is not valid JSON: {error}"
                )))),
            }
        })
}

/// The whole body. Unlike `warp::body::bytes`, whose read errors reach
/// the recover handler as a rejection it cannot name, a body that does not
/// arrive in time is 408 and one cut short (the client closed the
/// connection, or sent less than its Content-Length) is 400.
pub(crate) fn bytes() -> impl Filter<Extract = (Bytes,), Error = warp::Rejection> + Clone {
    warp::body::stream().and_then(collect)
}

/// Reads a body stream whole (see [`bytes`]).
pub(crate) async fn collect<S, B>(stream: S) -> Result<Bytes, warp::Rejection>
where
    S: warp::Stream<Item = Result<B, warp::Error>>,
    B: warp::Buf,
{
    let mut stream = std::pin::pin!(stream);
    let mut body = bytes::BytesMut::new();
    while let Some(chunk) = std::future::poll_fn(|cx| stream.as_mut().poll_next(cx)).await {
        match chunk {
            Ok(mut chunk) => {
                while chunk.has_remaining() {
                    let part = chunk.chunk();
                    let length = part.len();
                    body.extend_from_slice(part);
                    chunk.advance(length);
                }
            }
            Err(error) => {
                let rejection = match crate::server::body_timeout(&error) {
                    Some(timeout) => ApiError::BodyTimeout(timeout.to_string()),
                    None => ApiError::BodyIncomplete(format!(
                        "the request body could not be read whole: {error}"
                    )),
                };
                return Err(warp::reject::custom(rejection));
            }
        }
    }
    Ok(body.freeze())
}

/// One field of a PATCH.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) enum Patch<T> {
    /// Absent: keep the current value.
    Keep,
    /// `null`: remove the value.
    Clear,
    /// A new value.
    Set(T),
}

impl<T> Patch<T> {
    /// The value after the patch, given the current one.
    pub(crate) fn apply(self, current: Option<T>) -> Option<T> {
        match self {
            Patch::Keep => current,
            Patch::Clear => None,
            Patch::Set(value) => Some(value),
        }
    }
}

/// The version in an `If-Match` header (`"3"`, `W/"3"` or `3`), if any;
/// a header that is not one is refused.
pub(crate) fn if_match() -> impl Filter<Extract = (Option<i64>,), Error = warp::Rejection> + Clone {
    warp::header::optional::<String>("if-match").and_then(|value: Option<String>| async move {
        let Some(value) = value else {
            return Ok(None);
        };
        let bare = value.trim().trim_start_matches("W/").trim_matches('"');
        match bare.parse::<i64>() {
            Ok(version) if version >= 1 => Ok(Some(version)),
            _ => Err(warp::reject::custom(ApiError::BadParameter {
                parameter: "If-Match",
                detail: format!(
                    "If-Match must be the ETag this API sent (\"<version>\"), not {:?}",
                    value.chars().take(64).collect::<String>()
                ),
            })),
        }
    })
}

/// A body's fields, and the errors found so far.
#[derive(Debug)]
pub(crate) struct Fields {
    map: Map<String, Value>,
    errors: Vec<FieldError>,
}

impl Fields {
    /// The fields of a body that is already an object (unit tests).
    #[cfg(test)]
    pub(crate) fn from_value(body: Value) -> Self {
        match body {
            Value::Object(map) => Self {
                map,
                errors: Vec::new(),
            },
            other => panic!("not an object: {other}"),
        }
    }

    fn error(&mut self, field: &str, message: impl Into<String>) {
        self.errors.push(FieldError {
            field: field.to_owned(),
            message: message.into(),
        });
    }

    /// A required string field, parsed by `parse`.
    pub(crate) fn required<T, E: std::fmt::Display>(
        &mut self,
        field: &str,
        parse: impl FnOnce(String) -> Result<T, E>,
    ) -> Option<T> {
        match self.map.remove(field) {
            Some(Value::String(text)) => match parse(text) {
                Ok(value) => Some(value),
                Err(error) => {
                    self.error(field, error.to_string());
                    None
                }
            },
            Some(_) => {
                self.error(field, format!("{field} must be a string"));
                None
            }
            None => {
                self.error(field, format!("{field} is required"));
                None
            }
        }
    }

    /// An optional string field with a default.
    pub(crate) fn string_or(&mut self, field: &str, default: &str) -> Option<String> {
        match self.map.remove(field) {
            None | Some(Value::Null) => Some(default.to_owned()),
            Some(Value::String(text)) => Some(text),
            Some(_) => {
                self.error(field, format!("{field} must be a string"));
                None
            }
        }
    }

    /// An optional finite number (`null` or absent: none).
    pub(crate) fn optional_number(&mut self, field: &str) -> Option<Option<f64>> {
        match self.map.remove(field) {
            None | Some(Value::Null) => Some(None),
            Some(Value::Number(number)) => match number.as_f64() {
                Some(value) if value.is_finite() => Some(Some(value)),
                _ => {
                    self.error(field, format!("{field} must be a finite number"));
                    None
                }
            },
            Some(_) => {
                self.error(field, format!("{field} must be a number or null"));
                None
            }
        }
    }

    /// An optional string field: absent is `Some(None)`; a wrong type is
    /// an error (`None`).
    pub(crate) fn optional_string(&mut self, field: &str) -> Option<Option<String>> {
        match self.map.remove(field) {
            None => Some(None),
            Some(Value::String(text)) => Some(Some(text)),
            Some(_) => {
                self.error(field, format!("{field} must be a string"));
                None
            }
        }
    }

    /// An optional list of strings: absent is `Some(None)`; anything but
    /// an array of strings (`null` included) is an error (`None`).
    pub(crate) fn optional_strings(&mut self, field: &str) -> Option<Option<Vec<String>>> {
        let items = match self.map.remove(field) {
            None => return Some(None),
            Some(Value::Array(items)) => items,
            Some(_) => {
                self.error(field, format!("{field} must be a list of strings"));
                return None;
            }
        };
        let mut texts = Vec::with_capacity(items.len());
        for item in items {
            match item {
                Value::String(text) => texts.push(text),
                _ => {
                    self.error(field, format!("{field} must be a list of strings"));
                    return None;
                }
            }
        }
        Some(Some(texts))
    }

    /// An optional JSON object field: absent or `null` is `Some(None)`; a
    /// wrong type is an error (`None`).
    pub(crate) fn optional_object(&mut self, field: &str) -> Option<Option<Map<String, Value>>> {
        match self.map.remove(field) {
            None | Some(Value::Null) => Some(None),
            Some(Value::Object(map)) => Some(Some(map)),
            Some(_) => {
                self.error(field, format!("{field} must be an object"));
                None
            }
        }
    }

    /// A field's value as sent (`null` reads as absent), for a value read
    /// by other rules than a body's: a time as a number or a string.
    pub(crate) fn take(&mut self, field: &str) -> Option<Value> {
        self.map.remove(field).filter(|value| !value.is_null())
    }

    /// A number field of a PATCH: absent keeps, `null` clears, a finite
    /// number sets. A wrong type is an error (`None`).
    pub(crate) fn patch_number(&mut self, field: &str) -> Option<Patch<f64>> {
        match self.map.remove(field) {
            None => Some(Patch::Keep),
            Some(Value::Null) => Some(Patch::Clear),
            Some(Value::Number(number)) => match number.as_f64() {
                Some(value) if value.is_finite() => Some(Patch::Set(value)),
                _ => {
                    self.error(field, format!("{field} must be a finite number"));
                    None
                }
            },
            Some(_) => {
                self.error(field, format!("{field} must be a number or null"));
                None
            }
        }
    }

    /// The `version` the client read, from the body or else from
    /// `If-Match`; required for a change (no lost updates).
    pub(crate) fn version(&mut self, if_match: Option<i64>) -> Option<i64> {
        match self.map.remove("version") {
            Some(Value::Number(number)) => match number.as_i64() {
                Some(version) if version >= 1 => Some(version),
                _ => {
                    self.error("version", "version must be a positive integer");
                    None
                }
            },
            Some(_) => {
                self.error("version", "version must be a positive integer");
                None
            }
            None => match if_match {
                Some(version) => Some(version),
                None => {
                    self.error(
                        "version",
                        "version is required: send the version you read (in the body, or as If-Match: \"<version>\")",
                    );
                    None
                }
            },
        }
    }

    /// Refuses a field that may not change (present with another value).
    pub(crate) fn unchangeable(&mut self, field: &str, current: &str) {
        match self.map.remove(field) {
            None => {}
            Some(Value::String(text)) if text == current => {}
            Some(_) => self.error(field, format!("{field} cannot change")),
        }
    }

    /// Records an error found after reading the fields (e.g. across two).
    pub(crate) fn invalid(&mut self, field: &str, message: impl Into<String>) {
        self.error(field, message);
    }

    /// The fields not read yet, for a body parsed as a whole; fails with
    /// the errors collected so far.
    pub(crate) fn into_map(self) -> Result<Map<String, Value>, ApiError> {
        if self.errors.is_empty() {
            Ok(self.map)
        } else {
            Err(ApiError::Validation(self.errors))
        }
    }

    /// Fails with every collected error, naming unknown fields too.
    pub(crate) fn finish(mut self) -> Result<(), ApiError> {
        let unknown: Vec<String> = self.map.keys().cloned().collect();
        for field in unknown {
            self.error(&field, format!("unknown field {field:?}"));
        }
        if self.errors.is_empty() {
            Ok(())
        } else {
            Err(ApiError::Validation(self.errors))
        }
    }
}
