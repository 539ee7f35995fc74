//! API keys: `Authorization: Bearer stk_<key_id>_<secret>`.
//!
//! Keys are looked up by their public id in the [`Catalog`](crate::Catalog)
//! (memory, dropped on every metadata change Postgres announces) and
//! checked by `stoker_metadata::verify`: the secret's SHA-256 against the
//! stored hash (and, after a rotation, the previous one during its grace
//! period), in constant time. No key, a malformed one, an unknown one, a
//! revoked or an expired one is 401; a key without the route's scope is
//! 403. `admin` includes `read` and `write`; `read` and `write` are
//! separate, so a gateway's write-only key reads nothing.
//!
//! Every request of a live key spends one of its request-rate budget
//! (`rate_limit`); past it, 429 `rate_limited` before any other check.
//!
//! A key may be limited to sites. The filters here refuse it (403
//! `forbidden_site`) on any path under `/api/v1/sites/{site}` of another
//! site, in one place for every such route; routes whose site is not in
//! the path (lists, alert rules, alerts, the InfluxDB-compatible writes)
//! take the [`Principal`] and ask it.

use std::sync::Arc;

use chrono::Utc;
use stoker_domain::SiteSlug;
use stoker_metadata::{Actor, KeyCheck, Scope};
use warp::Filter;
use warp::http::HeaderValue;

use crate::State;
use crate::problem::{ApiError, Denied};

/// Whether a key's scopes allow `needed`.
pub(crate) fn allows(scopes: &[Scope], needed: Scope) -> bool {
    scopes.contains(&needed) || scopes.contains(&Scope::Admin)
}

/// Who a request acts as: a live key with the route's scope.
#[derive(Debug, Clone)]
pub(crate) struct Principal {
    /// The key's name (who acted, in records such as alert events).
    pub name: String,
    /// The sites it may act on; `None`: every site.
    sites: Option<Arc<[SiteSlug]>>,
}

impl Principal {
    /// Whether the key may act on `site`.
    pub(crate) fn may_use(&self, site: &str) -> bool {
        self.sites
            .as_ref()
            .is_none_or(|sites| sites.iter().any(|allowed| allowed.as_str() == site))
    }

    /// `Ok` when the key may act on `site`; else 403 `forbidden_site`.
    pub(crate) fn check_site(&self, site: &str) -> Result<(), ApiError> {
        if self.may_use(site) {
            Ok(())
        } else {
            Err(ApiError::Forbidden(Denied::Site))
        }
    }

    /// `Ok` when the key may act on every site (what spans sites: keys,
    /// alert rules without a site); else 403 `forbidden_site`.
    pub(crate) fn check_every_site(&self) -> Result<(), ApiError> {
        match self.sites {
            None => Ok(()),
            Some(_) => Err(ApiError::Forbidden(Denied::EverySite)),
        }
    }

    /// The sites it is limited to; `None`: every site.
    pub(crate) fn sites(&self) -> Option<&[SiteSlug]> {
        self.sites.as_deref()
    }

    /// Who the audit trail records: the key, by name.
    pub(crate) fn actor(&self) -> Actor {
        Actor::Key(self.name.clone())
    }
}

/// Lets the request through only with a live key that has `scope` (and,
/// under `/api/v1/sites/{site}`, that site).
pub(crate) fn require(
    scope: Scope,
    state: State,
) -> impl Filter<Extract = (), Error = warp::Rejection> + Clone {
    require_key(scope, state)
        .map(|_principal: Principal| ())
        .untuple_one()
}

/// Like [`require`], and hands the handler the [`Principal`]: who acted,
/// and which sites it may see.
pub(crate) fn require_key(
    scope: Scope,
    state: State,
) -> impl Filter<Extract = (Principal,), Error = warp::Rejection> + Clone {
    // The raw value: one that is not visible ASCII is a malformed key
    // (401), not a header warp cannot read as text.
    warp::header::value("authorization")
        .map(Some)
        .or(warp::any().map(|| None))
        .unify()
        .and(warp::path::full())
        .and(warp::any().map(move || Arc::clone(&state)))
        .and_then(
            move |header: Option<HeaderValue>, path: warp::path::FullPath, state: State| async move {
                authorize(header.as_ref(), scope, path.as_str(), &state)
                    .await
                    .map_err(warp::reject::custom)
            },
        )
}

async fn authorize(
    header: Option<&HeaderValue>,
    needed: Scope,
    path: &str,
    state: &State,
) -> Result<Principal, ApiError> {
    let header = header.ok_or(ApiError::Unauthorized(Denied::Missing))?;
    let header = header
        .to_str()
        .map_err(|_| ApiError::Unauthorized(Denied::Malformed))?;
    let token = header
        .strip_prefix("Bearer ")
        .or_else(|| header.strip_prefix("bearer "))
        .map(str::trim)
        .ok_or(ApiError::Unauthorized(Denied::Malformed))?;
    let principal = check_token(token, needed, state).await?;
    if let Some(site) = site_in_path(path) {
        principal.check_site(site)?;
    }
    Ok(principal)
}

/// The `{site}` of a path under `/api/v1/sites/{site}`, when it can be a
/// site slug at all (one that cannot names no site: the route's 404).
fn site_in_path(path: &str) -> Option<&str> {
    let rest = path.strip_prefix("/api/v1/sites/")?;
    let site = rest.split('/').next()?;
    SiteSlug::parse(site).is_ok().then_some(site)
}

/// Checks an API key however it was sent (the InfluxDB-compatible writes
/// take it in several ways): live, with `needed`; gives the principal.
pub(crate) async fn check_token(
    token: &str,
    needed: Scope,
    state: &State,
) -> Result<Principal, ApiError> {
    let key_id =
        stoker_metadata::token_key_id(token).ok_or(ApiError::Unauthorized(Denied::Malformed))?;
    let stored = state.catalog.api_key(&state.pool, key_id).await?;
    let check = match stored {
        Some(stored) => stoker_metadata::verify(token, &stored, Utc::now()),
        None => KeyCheck::Unknown,
    };
    match check {
        KeyCheck::Valid {
            key_id,
            name,
            scopes,
            sites,
        } => {
            // Counted once the secret matched, so that no one spends
            // another key's budget by naming its public id.
            state.limiter.check(&key_id)?;
            if !allows(&scopes, needed) {
                return Err(ApiError::Forbidden(Denied::Scope { needed }));
            }
            Ok(Principal {
                name,
                sites: sites.map(Arc::from),
            })
        }
        KeyCheck::Revoked => Err(ApiError::Unauthorized(Denied::Revoked)),
        KeyCheck::Expired => Err(ApiError::Unauthorized(Denied::Expired)),
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

    #[test]
    fn the_site_is_read_from_site_paths_only() {
        assert_eq!(site_in_path("/api/v1/sites/bh-1"), Some("bh-1"));
        assert_eq!(site_in_path("/api/v1/sites/bh-1/sensors/x"), Some("bh-1"));
        assert_eq!(site_in_path("/api/v1/sites/%62h"), None);
        assert_eq!(site_in_path("/api/v1/sites"), None);
        assert_eq!(site_in_path("/api/v1/alerts"), None);
    }

    #[test]
    fn a_limited_principal_uses_its_sites_only() {
        let limited = Principal {
            name: "gw".into(),
            sites: Some(Arc::from(vec![SiteSlug::parse("a").unwrap()])),
        };
        assert!(limited.may_use("a") && !limited.may_use("b"));
        assert!(limited.check_every_site().is_err());
        let every = Principal {
            name: "ops".into(),
            sites: None,
        };
        assert!(every.may_use("b") && every.check_every_site().is_ok());
    }
}
