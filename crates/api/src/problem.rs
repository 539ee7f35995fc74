//! Errors as `application/problem+json` (RFC 9457), in exactly one place.
//!
//! This module owns the API's error vocabulary: [`ApiError`], why a key is
//! refused ([`Denied`]), a refused reading ([`RejectedReading`]) and the
//! status of each refusal reason ([`Refusal::status`]), the words for a
//! foreign cursor, and the rejection of a body that is not JSON. The
//! features import it; it imports none of them.

use std::convert::Infallible;

use serde::Serialize;
use stoker_ingestion::Reason;
use stoker_metadata::Scope;
use warp::http::StatusCode;
use warp::{Rejection, Reply};

/// What a cursor this API did not give is told.
pub(crate) const FOREIGN_CURSOR: &str =
    "cursor is not one this API gave (use next_cursor from the previous page)";

/// Raised when the content type is not JSON; rendered as 415.
#[derive(Debug)]
pub(crate) struct UnsupportedMediaType;
impl warp::reject::Reject for UnsupportedMediaType {}

/// Why a request is not let in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Denied {
    /// No `Authorization` header.
    Missing,
    /// Not `Bearer stk_<id>_<secret>`.
    Malformed,
    /// No such key, or the wrong secret.
    Invalid,
    /// The key was revoked.
    Revoked,
    /// The key is past its expiry, or its secret was rotated and the grace
    /// period is over.
    Expired,
    /// The key is limited to sites, and not to this one.
    Site,
    /// The key is limited to sites, and this spans every site (API keys,
    /// alert rules without a site).
    EverySite,
    /// The key lacks the route's scope.
    Scope {
        /// The scope the route needs.
        needed: Scope,
    },
}

impl Denied {
    /// The stable code of the problem.
    pub fn code(self) -> &'static str {
        match self {
            Denied::Missing => "missing_api_key",
            Denied::Malformed => "malformed_api_key",
            Denied::Invalid => "invalid_api_key",
            Denied::Revoked => "revoked_api_key",
            Denied::Expired => "expired_api_key",
            Denied::Site | Denied::EverySite => "forbidden_site",
            Denied::Scope { .. } => "insufficient_scope",
        }
    }
}

impl std::fmt::Display for Denied {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Denied::Missing => f.write_str(
                "this route needs an API key: send Authorization: Bearer <key> (stoker apikey create)",
            ),
            Denied::Malformed => f.write_str(
                "the Authorization header must be Bearer followed by a key of the form stk_<id>_<secret>",
            ),
            Denied::Invalid => f.write_str("the API key is not valid"),
            Denied::Revoked => f.write_str("the API key was revoked"),
            Denied::Expired => f.write_str(
                "the API key has expired (or this secret was replaced by a rotation whose grace period is over)",
            ),
            Denied::Site => f.write_str("the API key is limited to sites that do not include this one"),
            Denied::EverySite => f.write_str(
                "the API key is limited to sites, and this concerns every site: it needs a key of every site",
            ),
            Denied::Scope { needed } => {
                write!(f, "the API key lacks scope {}, which this route needs", needed.as_str())
            }
        }
    }
}

/// One refused reading in an answer.
#[derive(Debug, Clone, Serialize)]
pub struct RejectedReading {
    #[serde(skip_serializing_if = "Option::is_none")]
    sensor: Option<String>,
    reason: &'static str,
    detail: String,
}

impl From<&stoker_ingestion::Refused> for RejectedReading {
    fn from(refused: &stoker_ingestion::Refused) -> Self {
        Self {
            sensor: refused.sensor.clone(),
            reason: refused.reason.as_str(),
            detail: refused.detail.clone(),
        }
    }
}

/// Why telemetry was refused with nothing accepted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    /// The message as a whole, for the reason of its (first) refusal.
    Message(Reason),
    /// Every reading of a message that was itself well formed.
    EveryReading,
}

impl Refusal {
    /// The answer's status and stable code: the reason → status table.
    pub(crate) fn status_and_code(self) -> (StatusCode, &'static str) {
        let Refusal::Message(reason) = self else {
            return (StatusCode::UNPROCESSABLE_ENTITY, "all_readings_rejected");
        };
        let status = match reason {
            Reason::PayloadTooLarge => StatusCode::PAYLOAD_TOO_LARGE,
            Reason::UnknownSite => StatusCode::NOT_FOUND,
            Reason::ForbiddenSite => StatusCode::FORBIDDEN,
            Reason::MalformedJson | Reason::MalformedLine => StatusCode::BAD_REQUEST,
            Reason::InvalidTimestamp
            | Reason::InvalidTopic
            | Reason::UnknownSensor
            | Reason::NonNumeric
            | Reason::OutOfRange
            | Reason::WrongKind
            | Reason::UnknownState
            | Reason::FutureTimestamp
            | Reason::TooOld => StatusCode::UNPROCESSABLE_ENTITY,
        };
        (status, reason.as_str())
    }
}

/// One field's validation message.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct FieldError {
    /// The field, as named in the request body.
    pub field: String,
    /// What is wrong with it.
    pub message: String,
}

/// Every failure a handler can report. Each maps to a status and a stable
/// `code` that clients may match on.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    /// The body is not JSON, or not an object.
    #[error("{0}")]
    MalformedJson(String),
    /// One or more fields are invalid.
    #[error("the request has invalid fields")]
    Validation(Vec<FieldError>),
    /// A query parameter is invalid.
    #[error("{detail}")]
    BadParameter {
        /// The parameter.
        parameter: &'static str,
        /// What is wrong, and what would do.
        detail: String,
    },
    /// No usable API key (401).
    #[error("{0}")]
    Unauthorized(Denied),
    /// The key lacks the route's scope (403).
    #[error("{0}")]
    Forbidden(Denied),
    /// The resource does not exist.
    #[error("{0}")]
    NotFound(String),
    /// The `Accept` header allows none of the types the route gives (406).
    #[error("{0}")]
    NotAcceptable(String),
    /// The resource exists already.
    #[error("{0}")]
    Conflict(String),
    /// The change was based on an older version than the stored one.
    #[error(
        "the resource changed since it was read: its version is now {current}; read it again and reapply the change"
    )]
    VersionConflict {
        /// The stored version.
        current: i64,
    },
    /// The change contradicts what the resource is: a sensor's kind never
    /// changes, its states only grow, and only some kinds take a range or
    /// states (409, with `code` saying which).
    #[error("{detail}")]
    Contradicts {
        /// The stable code.
        code: &'static str,
        /// What is wrong, and what would do.
        detail: String,
    },
    /// Deleting would leave other resources without their parent.
    #[error("{0}")]
    HasDependents(String),
    /// The alert's state does not allow the change asked for (acknowledging
    /// an alert that is not firing, resolving a resolved one).
    #[error("{0}")]
    InvalidTransition(String),
    /// A well-formed request the rules refuse, with its own code and the
    /// field at fault (422: `shelve_too_long`).
    #[error("{detail}")]
    Unprocessable {
        /// The stable code.
        code: &'static str,
        /// The field at fault.
        field: &'static str,
        /// What is wrong, and what would do.
        detail: String,
    },
    /// A backtest would read more than analytics allows.
    #[error("{0}")]
    TooLarge(String),
    /// A time outside what InfluxDB stores.
    #[error("{0}")]
    InvalidRange(String),
    /// A store the request needs is down.
    #[error("{dependency} is unavailable: {detail}")]
    Unavailable {
        /// Which store.
        dependency: &'static str,
        /// What happened.
        detail: String,
    },
    /// Telemetry refused as a whole, or every reading of it.
    #[error("{detail}")]
    Refused {
        /// Why: its status and code come from [`Refusal::status_and_code`].
        refusal: Refusal,
        /// What is wrong.
        detail: String,
        /// Each refused reading.
        rejected: Vec<RejectedReading>,
    },
    /// The request body did not arrive within the body timeout (408).
    #[error("{0}")]
    BodyTimeout(String),
    /// The request body ended early or could not be read (400).
    #[error("{0}")]
    BodyIncomplete(String),
    /// Ingestion cannot take more right now; the client should retry.
    #[error("{0}")]
    Busy(String),
    /// The API key is past its request-rate budget (429).
    #[error(
        "this API key sent more requests than its budget of {budget} allows: retry in {retry_after} s"
    )]
    RateLimited {
        /// Whole seconds until a request would pass (at least 1).
        retry_after: u64,
        /// The budget, as `50000/s with a burst of 50000`.
        budget: String,
    },
    /// A bug or an unexpected state; logged with its detail.
    #[error("internal error")]
    Internal(String),
}

impl warp::reject::Reject for ApiError {}

impl From<stoker_metadata::Error> for ApiError {
    fn from(error: stoker_metadata::Error) -> Self {
        use stoker_metadata::Error as E;
        match error {
            E::SiteNotFound(_)
            | E::SensorNotFound { .. }
            | E::GatewayNotFound { .. }
            | E::AlertRuleNotFound(_)
            | E::MaintenanceWindowNotFound(_)
            | E::ApiKeyNotFound(_) => ApiError::NotFound(error.to_string()),
            E::SiteExists(_)
            | E::SensorExists { .. }
            | E::GatewayExists { .. }
            | E::ApiKeyExists(_) => ApiError::Conflict(error.to_string()),
            E::VersionConflict { current } => ApiError::VersionConflict { current },
            E::KindUnchangeable { .. } => ApiError::Contradicts {
                code: "kind_unchangeable",
                detail: error.to_string(),
            },
            E::StatesNotKept { .. } => ApiError::Contradicts {
                code: "states_only_grow",
                detail: error.to_string(),
            },
            E::KindConflict { .. } => ApiError::Contradicts {
                code: "kind_conflict",
                detail: error.to_string(),
            },
            E::SiteHasDependents { .. } => ApiError::HasDependents(error.to_string()),
            E::InvalidInput { field, message } => ApiError::Validation(vec![FieldError {
                field: field.to_owned(),
                message,
            }]),
            E::UnknownTimezone(_) => ApiError::Validation(vec![FieldError {
                field: "timezone".into(),
                message: error.to_string(),
            }]),
            E::Postgres(error) => error.into(),
            other => ApiError::Internal(other.to_string()),
        }
    }
}

impl From<stoker_postgres::Error> for ApiError {
    fn from(error: stoker_postgres::Error) -> Self {
        if error.is_unavailable() {
            ApiError::Unavailable {
                dependency: "Postgres",
                // The pool's own words: the variant's text would say
                // "Postgres is unavailable" a second time.
                detail: match error {
                    stoker_postgres::Error::Unavailable(source) => source.to_string(),
                    other => other.to_string(),
                },
            }
        } else {
            ApiError::Internal(error.to_string())
        }
    }
}

impl From<stoker_analytics::Error> for ApiError {
    fn from(error: stoker_analytics::Error) -> Self {
        use stoker_analytics::Error as E;
        use stoker_analytics::notify::Error as Notify;
        match error {
            E::AlertNotFound(_) => ApiError::NotFound(error.to_string()),
            E::InvalidTransition { .. } => ApiError::InvalidTransition(error.to_string()),
            E::NotLatched(_) => ApiError::Contradicts {
                code: "not_latched",
                detail: error.to_string(),
            },
            E::NotShelved(_) => ApiError::Contradicts {
                code: "not_shelved",
                detail: error.to_string(),
            },
            E::ShelveTooLong { .. } => ApiError::Unprocessable {
                code: "shelve_too_long",
                field: "for",
                detail: error.to_string(),
            },
            E::InvalidShelve { field, message } => ApiError::Validation(vec![FieldError {
                field: field.to_owned(),
                message,
            }]),
            E::TooLarge(detail) => ApiError::TooLarge(detail),
            E::InvalidRange(_) => ApiError::InvalidRange(error.to_string()),
            // The store refuses a cursor it did not make.
            E::InvalidRow { what: "cursor", .. } => ApiError::BadParameter {
                parameter: "cursor",
                detail: FOREIGN_CURSOR.into(),
            },
            E::Postgres(error) | E::Notify(Notify::Postgres(error)) => error.into(),
            E::Metadata(error) => error.into(),
            E::Influx(error) if error.is_transient() => ApiError::Unavailable {
                dependency: "InfluxDB",
                detail: error.to_string(),
            },
            other => ApiError::Internal(other.to_string()),
        }
    }
}

impl ApiError {
    fn status_and_code(&self) -> (StatusCode, &'static str) {
        match self {
            ApiError::MalformedJson(_) => (StatusCode::BAD_REQUEST, "malformed_json"),
            ApiError::Validation(_) => (StatusCode::UNPROCESSABLE_ENTITY, "validation_failed"),
            ApiError::BadParameter { .. } => (StatusCode::BAD_REQUEST, "invalid_parameter"),
            ApiError::Unauthorized(denied) => (StatusCode::UNAUTHORIZED, denied.code()),
            ApiError::Forbidden(denied) => (StatusCode::FORBIDDEN, denied.code()),
            ApiError::NotFound(_) => (StatusCode::NOT_FOUND, "not_found"),
            ApiError::NotAcceptable(_) => (StatusCode::NOT_ACCEPTABLE, "not_acceptable"),
            ApiError::Conflict(_) => (StatusCode::CONFLICT, "conflict"),
            ApiError::VersionConflict { .. } => (StatusCode::CONFLICT, "version_conflict"),
            ApiError::HasDependents(_) => (StatusCode::CONFLICT, "has_dependents"),
            ApiError::Contradicts { code, .. } => (StatusCode::CONFLICT, *code),
            ApiError::InvalidTransition(_) => (StatusCode::CONFLICT, "invalid_transition"),
            ApiError::Unprocessable { code, .. } => (StatusCode::UNPROCESSABLE_ENTITY, *code),
            ApiError::TooLarge(_) => (StatusCode::UNPROCESSABLE_ENTITY, "backtest_too_large"),
            ApiError::InvalidRange(_) => (StatusCode::BAD_REQUEST, "invalid_range"),
            ApiError::Unavailable { .. } => {
                (StatusCode::SERVICE_UNAVAILABLE, "dependency_unavailable")
            }
            ApiError::Refused { refusal, .. } => refusal.status_and_code(),
            ApiError::BodyTimeout(_) => (StatusCode::REQUEST_TIMEOUT, "body_timeout"),
            ApiError::BodyIncomplete(_) => (StatusCode::BAD_REQUEST, "body_incomplete"),
            ApiError::Busy(_) => (StatusCode::SERVICE_UNAVAILABLE, "ingestion_busy"),
            ApiError::RateLimited { .. } => (StatusCode::TOO_MANY_REQUESTS, "rate_limited"),
            ApiError::Internal(_) => (StatusCode::INTERNAL_SERVER_ERROR, "internal"),
        }
    }
}

#[derive(Debug, Serialize)]
struct Problem<'a> {
    #[serde(rename = "type")]
    kind: &'static str,
    title: &'a str,
    status: u16,
    code: &'a str,
    detail: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    errors: Option<&'a [FieldError]>,
    #[serde(skip_serializing_if = "Option::is_none")]
    rejected: Option<&'a [RejectedReading]>,
}

fn problem(
    status: StatusCode,
    code: &str,
    detail: String,
    errors: Option<&[FieldError]>,
) -> warp::reply::Response {
    problem_with(status, code, detail, errors, None)
}

fn problem_with(
    status: StatusCode,
    code: &str,
    detail: String,
    errors: Option<&[FieldError]>,
    rejected: Option<&[RejectedReading]>,
) -> warp::reply::Response {
    let body = Problem {
        kind: "about:blank",
        title: status.canonical_reason().unwrap_or("Error"),
        status: status.as_u16(),
        code,
        detail,
        errors,
        rejected,
    };
    let mut response = warp::reply::with_status(warp::reply::json(&body), status).into_response();
    response.headers_mut().insert(
        warp::http::header::CONTENT_TYPE,
        warp::http::HeaderValue::from_static("application/problem+json"),
    );
    if status == StatusCode::UNAUTHORIZED {
        response.headers_mut().insert(
            warp::http::header::WWW_AUTHENTICATE,
            warp::http::HeaderValue::from_static("Bearer realm=\"stoker\""),
        );
    }
    if status == StatusCode::SERVICE_UNAVAILABLE {
        response.headers_mut().insert(
            warp::http::header::RETRY_AFTER,
            warp::http::HeaderValue::from_static("5"),
        );
    }
    response
}

/// The one place rejections become responses.
pub(crate) async fn recover(rejection: Rejection) -> Result<warp::reply::Response, Infallible> {
    if let Some(error) = rejection.find::<ApiError>() {
        let (status, code) = error.status_and_code();
        return Ok(match error {
            ApiError::Validation(errors) => problem(status, code, error.to_string(), Some(errors)),
            ApiError::Unprocessable { field, detail, .. } => {
                let errors = [FieldError {
                    field: (*field).to_owned(),
                    message: detail.clone(),
                }];
                problem(status, code, detail.clone(), Some(&errors))
            }
            ApiError::BadParameter { parameter, detail } => {
                let errors = [FieldError {
                    field: (*parameter).to_owned(),
                    message: detail.clone(),
                }];
                problem(status, code, detail.clone(), Some(&errors))
            }
            ApiError::Refused { rejected, .. } => {
                problem_with(status, code, error.to_string(), None, Some(rejected))
            }
            ApiError::Internal(detail) => {
                tracing::error!(detail, "internal error answering a request");
                problem(status, code, error.to_string(), None)
            }
            ApiError::Unavailable { .. } => {
                tracing::warn!(%error, "request failed on an unavailable dependency");
                problem(status, code, error.to_string(), None)
            }
            ApiError::RateLimited { retry_after, .. } => {
                let mut response = problem(status, code, error.to_string(), None);
                response
                    .headers_mut()
                    .insert(warp::http::header::RETRY_AFTER, (*retry_after).into());
                response
            }
            _ => problem(status, code, error.to_string(), None),
        });
    }
    // A request is tried against every route, so one rejection may hold
    // several causes: what went wrong with the body of a route that matched
    // outranks "another route does not take this method", which outranks
    // "no such route".
    let (status, code, detail) = if rejection.find::<warp::reject::PayloadTooLarge>().is_some() {
        (
            StatusCode::PAYLOAD_TOO_LARGE,
            "payload_too_large",
            "the request body is too large".to_owned(),
        )
    } else if rejection.find::<warp::reject::LengthRequired>().is_some() {
        (
            StatusCode::LENGTH_REQUIRED,
            "length_required",
            "a Content-Length header is required".to_owned(),
        )
    } else if rejection
        .find::<warp::reject::UnsupportedMediaType>()
        .is_some()
        || rejection.find::<UnsupportedMediaType>().is_some()
    {
        (
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "unsupported_media_type",
            "send the body as application/json".to_owned(),
        )
    } else if let Some(error) = rejection.find::<warp::reject::InvalidQuery>() {
        (StatusCode::BAD_REQUEST, "invalid_query", error.to_string())
    } else if let Some(error) = rejection.find::<warp::reject::InvalidHeader>() {
        // A header a route reads as text holds bytes that are not visible
        // ASCII (or a number header holds no number).
        (
            StatusCode::BAD_REQUEST,
            "invalid_header",
            format!(
                "header {} is not valid here (it must be visible ASCII text of the expected form)",
                error.name()
            ),
        )
    } else if let Some(error) = rejection.find::<warp::reject::MissingHeader>() {
        (
            StatusCode::BAD_REQUEST,
            "missing_header",
            format!("this route needs header {}", error.name()),
        )
    } else if rejection.find::<warp::reject::MethodNotAllowed>().is_some() {
        (
            StatusCode::METHOD_NOT_ALLOWED,
            "method_not_allowed",
            "this route does not take that method".to_owned(),
        )
    } else if rejection.is_not_found() {
        (
            StatusCode::NOT_FOUND,
            "route_not_found",
            "no such route".to_owned(),
        )
    } else {
        tracing::error!(?rejection, "unhandled rejection");
        (
            StatusCode::INTERNAL_SERVER_ERROR,
            "internal",
            "internal error".to_owned(),
        )
    };
    Ok(problem(status, code, detail, None))
}
