//! API keys over the API: `GET/POST /api-keys`, `DELETE /api-keys/{name}`
//! and `POST /api-keys/{name}/rotate` (scope `admin`), beside the CLI's
//! `stoker apikey`.
//!
//! A key is shown as `{"id", "key_id", "name", "scopes", "sites" (null:
//! every site), "created_at", "expires_at", "rotated_at",
//! "previous_valid_until", "revoked_at", "revoked", "expired"}`: never a
//! secret or a hash. Creating and rotating answer the token once, as
//! `token`. Keys concern every site, so a key limited to sites may not
//! manage them (403 `forbidden_site`): it could otherwise make itself a
//! wider one.

use std::sync::Arc;
use std::time::Duration;

use chrono::Utc;
use serde::Serialize;
use serde_json::Value;
use stoker_domain::SiteSlug;
use stoker_metadata::{ApiKey, NewApiKey, Scope};
use warp::Filter;
use warp::http::StatusCode;

use crate::auth::{Principal, require_key};
use crate::body::{Fields, json_object};
use crate::problem::ApiError;
use crate::{State, boxed};

/// The grace period of a rotation whose body names none.
const DEFAULT_GRACE: Duration = Duration::from_secs(24 * 3600);

pub(crate) fn routes(
    state: State,
) -> impl Filter<Extract = (warp::reply::Response,), Error = warp::Rejection> + Clone {
    let admin = require_key(Scope::Admin, Arc::clone(&state));
    let with_state = warp::any().map(move || Arc::clone(&state));
    let list = warp::path!("api-keys")
        .and(warp::get())
        .and(admin.clone())
        .and(with_state.clone())
        .and_then(list_keys);
    let create = warp::path!("api-keys")
        .and(warp::post())
        .and(admin.clone())
        .and(with_state.clone())
        .and(json_object())
        .and_then(create_key);
    let revoke = warp::path!("api-keys" / String)
        .and(warp::delete())
        .and(admin.clone())
        .and(with_state.clone())
        .and_then(revoke_key);
    let rotate = warp::path!("api-keys" / String / "rotate")
        .and(warp::post())
        .and(admin)
        .and(with_state)
        .and(json_object())
        .and_then(rotate_key);
    boxed(list)
        .or(boxed(create))
        .unify()
        .or(boxed(revoke))
        .unify()
        .or(boxed(rotate))
        .unify()
}

/// A key as the API shows it.
#[derive(Debug, Serialize)]
struct KeyView {
    #[serde(flatten)]
    key: ApiKey,
    revoked: bool,
    expired: bool,
}

impl From<ApiKey> for KeyView {
    fn from(key: ApiKey) -> Self {
        Self {
            revoked: key.revoked_at.is_some(),
            expired: key.is_expired(Utc::now()),
            key,
        }
    }
}

/// A key with its token, shown this once.
#[derive(Debug, Serialize)]
struct WithToken {
    #[serde(flatten)]
    key: KeyView,
    token: String,
}

fn with_token(key: ApiKey, token: &stoker_domain::Secret) -> WithToken {
    WithToken {
        key: KeyView::from(key),
        token: token.expose().to_owned(),
    }
}

async fn list_keys(
    principal: Principal,
    state: State,
) -> Result<warp::reply::Json, warp::Rejection> {
    principal.check_every_site()?;
    let keys = stoker_metadata::list_api_keys(&state.pool)
        .await
        .map_err(ApiError::from)?;
    let items: Vec<KeyView> = keys.into_iter().map(KeyView::from).collect();
    Ok(warp::reply::json(&serde_json::json!({ "items": items })))
}

/// `{"name", "scopes", "sites", "expires"}`: `sites` null or absent for
/// every site; `expires` a duration from now (`90d`) or an RFC 3339 time.
async fn create_key(
    principal: Principal,
    state: State,
    mut fields: Fields,
) -> Result<warp::reply::Response, warp::Rejection> {
    principal.check_every_site()?;
    let name = fields.required("name", Ok::<_, String>);
    let scopes = match fields.take("scopes") {
        Some(Value::Array(items)) => {
            let mut scopes = Vec::with_capacity(items.len());
            for item in items {
                match item.as_str().map(Scope::parse) {
                    Some(Ok(scope)) => scopes.push(scope),
                    Some(Err((_, message))) => fields.invalid("scopes", message),
                    None => fields.invalid("scopes", "scopes must be a list of strings"),
                }
            }
            Some(scopes)
        }
        None => {
            fields.invalid("scopes", "scopes is required: a list of read, write, admin");
            None
        }
        Some(_) => {
            fields.invalid("scopes", "scopes must be a list of strings");
            None
        }
    };
    let sites = match fields.take("sites") {
        None | Some(Value::Null) => Some(None),
        Some(Value::Array(items)) => {
            let mut sites = Vec::with_capacity(items.len());
            for item in items {
                match item.as_str().map(SiteSlug::parse) {
                    Some(Ok(site)) => sites.push(site),
                    Some(Err(error)) => fields.invalid("sites", error.to_string()),
                    None => fields.invalid("sites", "sites must be null or a list of site slugs"),
                }
            }
            Some(Some(sites))
        }
        Some(_) => {
            fields.invalid("sites", "sites must be null or a list of site slugs");
            None
        }
    };
    let expires_at = match fields.take("expires") {
        None | Some(Value::Null) => Some(None),
        Some(Value::String(text)) => match stoker_metadata::parse_expiry(&text, Utc::now()) {
            Ok(at) => Some(Some(at)),
            Err((_, message)) => {
                fields.invalid("expires", message);
                None
            }
        },
        Some(_) => {
            fields.invalid(
                "expires",
                "expires must be a duration (90d) or an RFC 3339 time",
            );
            None
        }
    };
    fields.finish()?;
    let (Some(name), Some(scopes), Some(sites), Some(expires_at)) =
        (name, scopes, sites, expires_at)
    else {
        return Err(ApiError::Internal("key fields validated without a key".into()).into());
    };
    let new = NewApiKey {
        name,
        scopes,
        sites,
        expires_at,
    };
    let (key, token) = stoker_metadata::create_api_key_with(&state.pool, &principal.actor(), &new)
        .await
        .map_err(ApiError::from)?;
    tracing::info!(
        key_id = key.key_id,
        name = key.name,
        "API key created through the API"
    );
    Ok(warp::reply::with_status(
        warp::reply::json(&with_token(key, &token)),
        StatusCode::CREATED,
    )
    .into_response())
}

/// Revokes by name (or key id, or id); effective at once in this process,
/// and in others as soon as Postgres announces the change.
async fn revoke_key(
    which: String,
    principal: Principal,
    state: State,
) -> Result<warp::reply::Json, warp::Rejection> {
    principal.check_every_site()?;
    let key = stoker_metadata::revoke_api_key(&state.pool, &principal.actor(), &which)
        .await
        .map_err(ApiError::from)?;
    state.catalog.forget_key(&key.key_id);
    tracing::info!(
        key_id = key.key_id,
        name = key.name,
        "API key revoked through the API"
    );
    Ok(warp::reply::json(&KeyView::from(key)))
}

/// `{"grace": "24h"}` (default 24h, at most 30 days): a new secret, the
/// current one still taken until the grace period ends.
async fn rotate_key(
    which: String,
    principal: Principal,
    state: State,
    mut fields: Fields,
) -> Result<warp::reply::Json, warp::Rejection> {
    principal.check_every_site()?;
    let grace = fields.optional_string("grace").map(|grace| match grace {
        None => Ok(DEFAULT_GRACE),
        Some(text) => stoker_domain::parse_duration(&text).map_err(|error| error.to_string()),
    });
    let grace = match grace {
        Some(Ok(grace)) => Some(grace),
        Some(Err(message)) => {
            fields.invalid("grace", message);
            None
        }
        None => None,
    };
    fields.finish()?;
    let Some(grace) = grace else {
        return Err(ApiError::Internal("rotation fields validated without a grace".into()).into());
    };
    let (key, token) =
        stoker_metadata::rotate_api_key(&state.pool, &principal.actor(), &which, grace)
            .await
            .map_err(ApiError::from)?;
    state.catalog.forget_key(&key.key_id);
    tracing::info!(key_id = key.key_id, name = key.name, grace = ?grace, "API key rotated through the API");
    Ok(warp::reply::json(&with_token(key, &token)))
}

use warp::Reply as _;
