//! `POST /api/v1/sites/{site}/telemetry`: the MQTT telemetry bodies over
//! HTTP. The answer comes once the accepted readings are durable.

use std::sync::Arc;

use bytes::Bytes;
use serde::Serialize;
use stoker_ingestion::{IntakeError, Reason, Receipt};
use stoker_metadata::Scope;
use warp::Filter;
use warp::http::StatusCode;

use crate::State;
use crate::body::require_json;
use crate::problem::{ApiError, Refusal, RejectedReading};

/// Bodies above this are refused unread (DESIGN.md).
const MAX_PAYLOAD_BYTES: u64 = 256 * 1024;

pub(crate) fn routes(
    state: State,
) -> impl Filter<Extract = (impl warp::Reply,), Error = warp::Rejection> + Clone {
    warp::path!("sites" / String / "telemetry")
        .and(warp::post())
        .and(crate::auth::require(Scope::Write, Arc::clone(&state)))
        .and(warp::any().map(move || Arc::clone(&state)))
        .and(require_json())
        .and(body())
        .and_then(submit)
}

/// The body, or only its declared length when it is over the limit (it is
/// then refused unread). No Content-Length at all: 411 from warp.
enum Body {
    Within(Bytes),
    Oversized(u64),
}

/// What the Content-Length says of the body.
enum Size {
    Within,
    Oversized(u64),
}

fn body() -> impl Filter<Extract = (Body,), Error = warp::Rejection> + Clone {
    // The size is decided first, so that a body that fails to arrive is
    // not taken for an oversized one.
    warp::body::content_length_limit(MAX_PAYLOAD_BYTES)
        .map(|| Size::Within)
        .or(warp::header::<u64>("content-length").map(Size::Oversized))
        .unify()
        .and(warp::body::stream())
        .and_then(|size, stream| async move {
            match size {
                Size::Within => crate::body::collect(stream).await.map(Body::Within),
                Size::Oversized(length) => Ok(Body::Oversized(length)),
            }
        })
}

#[derive(Debug, Serialize)]
struct Accepted {
    accepted: usize,
    rejected: Vec<RejectedReading>,
}

async fn submit(
    site: String,
    state: State,
    body: Body,
) -> Result<warp::reply::Response, warp::Rejection> {
    let Some(intake) = &state.intake else {
        return Err(warp::reject::custom(ApiError::Unavailable {
            dependency: "ingestion",
            detail: "this process runs no ingestion".into(),
        }));
    };
    // An oversized body still goes to ingestion (as its length), which
    // counts and records the refusal like any other.
    let submitted = match body {
        Body::Within(bytes) => intake.submit(&site, bytes).await,
        Body::Oversized(length) => intake.submit_oversized(&site, length).await,
    };
    let receipt = submitted.map_err(|error| match error {
        IntakeError::Busy => ApiError::Busy(error.to_string()),
        IntakeError::Stopping => ApiError::Unavailable {
            dependency: "ingestion",
            detail: error.to_string(),
        },
    })?;
    answer(receipt).map_err(warp::reject::custom)
}

fn answer(receipt: Receipt) -> Result<warp::reply::Response, ApiError> {
    let rejected: Vec<RejectedReading> =
        receipt.refused.iter().map(RejectedReading::from).collect();
    if receipt.message_refused {
        let first = receipt.refused.first();
        return Err(ApiError::Refused {
            refusal: Refusal::Message(
                first.map_or(Reason::MalformedJson, |refused| refused.reason),
            ),
            detail: first
                .map(|refused| refused.detail.clone())
                .unwrap_or_default(),
            rejected,
        });
    }
    if receipt.accepted == 0 {
        return Err(ApiError::Refused {
            refusal: Refusal::EveryReading,
            detail: format!("none of the {} readings was accepted", rejected.len()),
            rejected,
        });
    }
    let body = Accepted {
        accepted: receipt.accepted,
        rejected,
    };
    Ok(warp::reply::with_status(warp::reply::json(&body), StatusCode::OK).into_response())
}

use warp::Reply as _;
