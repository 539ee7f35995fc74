//! API keys: `Authorization: Bearer stk_<key_id>_<secret>`.
//!
//! Keys are looked up by their public id in the [`Catalog`](crate::Catalog)
//! (memory, dropped on every metadata change Postgres announces) and
//! checked by `stoker_metadata::verify`: the secret's SHA-256 against the
//! stored hash, in constant time. No key, a malformed one, an unknown one
//! or a revoked one is 401; a key without the route's scope is 403.
//! `admin` includes `read` and `write`; `read` and `write` are separate, so
//! a gateway's write-only key reads nothing. `require_key` also hands the
//! handler the key's name, for routes that record who acted.

use std::sync::Arc;

use stoker_metadata::{KeyCheck, Scope};
use warp::Filter;
use warp::http::HeaderValue;

use crate::State;
use crate::problem::{ApiError, Denied};

/// Whether a key's scopes allow `needed`.
pub(crate) fn allows(scopes: &[Scope], needed: Scope) -> bool {
    scopes.contains(&needed) || scopes.contains(&Scope::Admin)
}

/// Lets the request through only with a live key that has `scope`.
pub(crate) fn require(
    scope: Scope,
    state: State,
) -> impl Filter<Extract = (), Error = warp::Rejection> + Clone {
    require_key(scope, state)
        .map(|_name: String| ())
        .untuple_one()
}

/// Like [`require`], and hands the handler the key's name: who acted, for
/// routes that record it (an alert's acknowledgement or resolution).
pub(crate) fn require_key(
    scope: Scope,
    state: State,
) -> impl Filter<Extract = (String,), Error = warp::Rejection> + Clone {
    // The raw value: one that is not visible ASCII is a malformed key
    // (401), not a header warp cannot read as text.
    warp::header::value("authorization")
        .map(Some)
        .or(warp::any().map(|| None))
        .unify()
        .and(warp::any().map(move || Arc::clone(&state)))
        .and_then(
            move |header: Option<HeaderValue>, state: State| async move {
                authorize(header.as_ref(), scope, &state)
                    .await
                    .map_err(warp::reject::custom)
            },
        )
}

async fn authorize(
    header: Option<&HeaderValue>,
    needed: Scope,
    state: &State,
) -> Result<String, ApiError> {
    let header = header.ok_or(ApiError::Unauthorized(Denied::Missing))?;
    let header = header
        .to_str()
        .map_err(|_| ApiError::Unauthorized(Denied::Malformed))?;
    let token = header
        .strip_prefix("Bearer ")
        .or_else(|| header.strip_prefix("bearer "))
        .map(str::trim)
        .ok_or(ApiError::Unauthorized(Denied::Malformed))?;
    check_token(token, needed, state).await
}

/// Checks an API key however it was sent (the InfluxDB-compatible writes
/// take it in several ways): live, with `needed`; gives the key's name.
pub(crate) async fn check_token(
    token: &str,
    needed: Scope,
    state: &State,
) -> Result<String, ApiError> {
    let key_id =
        stoker_metadata::token_key_id(token).ok_or(ApiError::Unauthorized(Denied::Malformed))?;
    let stored = state.catalog.api_key(&state.pool, key_id).await?;
    let check = match stored {
        Some(stored) => stoker_metadata::verify(token, &stored),
        None => KeyCheck::Unknown,
    };
    match check {
        KeyCheck::Valid { name, scopes, .. } if allows(&scopes, needed) => Ok(name),
        KeyCheck::Valid { .. } => Err(ApiError::Forbidden(Denied::Scope { needed })),
        KeyCheck::Revoked => Err(ApiError::Unauthorized(Denied::Revoked)),
        KeyCheck::Unknown => Err(ApiError::Unauthorized(Denied::Invalid)),
        KeyCheck::Malformed => Err(ApiError::Unauthorized(Denied::Malformed)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn admin_includes_read_and_write_but_they_stay_apart() {
        assert!(allows(&[Scope::Admin], Scope::Read));
        assert!(allows(&[Scope::Admin], Scope::Write));
        assert!(allows(&[Scope::Read], Scope::Read));
        assert!(!allows(&[Scope::Write], Scope::Read));
        assert!(!allows(&[Scope::Read], Scope::Write));
        assert!(!allows(&[Scope::Read, Scope::Write], Scope::Admin));
    }
}
