//! The audit trail: `GET /audit` (scope `admin`), every change of
//! configuration and every operator action, newest first, in pages,
//! filtered by `site`, `entity`, `actor` and a time range (`start`
//! inclusive, `end` exclusive; one that ends before it starts is empty). The changes themselves are recorded by
//! the repository functions, in their own transactions; this only reads.
//!
//! A key limited to sites sees only its sites' events (none that spans
//! sites, such as API keys), and asking for another site is 403
//! `forbidden_site`.

use std::collections::HashMap;
use std::sync::Arc;

use stoker_domain::SiteSlug;
use stoker_metadata::{AuditFilter, Entity, Scope};
use warp::Filter;

use crate::auth::{Principal, require_key};
use crate::history::{bad, timestamp};
use crate::page::{self, PageBody};
use crate::problem::{ApiError, FOREIGN_CURSOR};
use crate::{State, boxed};

/// The longest actor name (an API key's name).
const ACTOR_MAX_CHARS: usize = 100;

pub(crate) fn routes(
    state: State,
) -> impl Filter<Extract = (warp::reply::Response,), Error = warp::Rejection> + Clone {
    let admin = require_key(Scope::Admin, Arc::clone(&state));
    let with_state = warp::any().map(move || Arc::clone(&state));
    boxed(
        warp::path!("audit")
            .and(warp::get())
            .and(admin)
            .and(warp::query::<HashMap<String, String>>())
            .and(with_state)
            .and_then(list_audit),
    )
}

/// The filters of a list query.
fn filter(query: &HashMap<String, String>) -> Result<AuditFilter, ApiError> {
    let site = query
        .get("site")
        .map(|text| SiteSlug::parse(text.as_str()))
        .transpose()
        .map_err(|error| bad("site", error.to_string()))?;
    let entity = match query.get("entity") {
        None => None,
        Some(text) => Some(Entity::parse(text).ok_or_else(|| {
            bad(
                "entity",
                format!(
                    "entity={:?} is not one of {}",
                    text.chars().take(32).collect::<String>(),
                    Entity::NAMES.join(", ")
                ),
            )
        })?),
    };
    let actor = match query.get("actor") {
        None => None,
        Some(text)
            if !text.is_empty()
                && text.chars().count() <= ACTOR_MAX_CHARS
                && !text.chars().any(char::is_control) =>
        {
            Some(text.clone())
        }
        Some(_) => {
            return Err(bad(
                "actor",
                format!(
                    "actor must be an API key's name or cli: 1 to {ACTOR_MAX_CHARS} printable characters"
                ),
            ));
        }
    };
    let start = query
        .get("start")
        .map(|text| timestamp("start", text))
        .transpose()?;
    let end = query
        .get("end")
        .map(|text| timestamp("end", text))
        .transpose()?;
    Ok(AuditFilter {
        site,
        entity,
        actor,
        start: start.map(|at| at.to_datetime()),
        end: end.map(|at| at.to_datetime()),
        within: None,
    })
}

async fn list_audit(
    principal: Principal,
    query: HashMap<String, String>,
    state: State,
) -> Result<warp::reply::Json, warp::Rejection> {
    let page = page::parse(&query, &["site", "entity", "actor", "start", "end"])?;
    let after = match page.after.as_deref().map(str::parse::<i64>) {
        None => None,
        Some(Ok(id)) if id > 0 => Some(id),
        Some(_) => {
            return Err(ApiError::BadParameter {
                parameter: "cursor",
                detail: FOREIGN_CURSOR.into(),
            }
            .into());
        }
    };
    let mut filter = filter(&query)?;
    if let Some(site) = &filter.site {
        principal.check_site(site.as_str())?;
    }
    filter.within = principal.sites().map(<[SiteSlug]>::to_vec);
    let events = stoker_metadata::list_audit_page(&state.pool, &filter, page.limit, after)
        .await
        .map_err(ApiError::from)?;
    Ok(warp::reply::json(&PageBody::from(events)))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::page::query;

    #[test]
    fn filters_are_parsed_and_bad_ones_named() {
        let parsed = filter(&query(&[
            ("site", "boiler-house-1"),
            ("entity", "alert_rule"),
            ("actor", "ops key"),
            ("start", "2026-12-01T00:00:00Z"),
            ("end", "1800000000000"),
        ]))
        .unwrap();
        assert_eq!(parsed.entity, Some(Entity::AlertRule));
        assert_eq!(parsed.actor.as_deref(), Some("ops key"));
        assert!(parsed.start < parsed.end);
        assert_eq!(filter(&query(&[])).unwrap(), AuditFilter::default());
        for (name, value) in [
            ("site", "Boiler House"),
            ("entity", "sites"),
            ("actor", ""),
            ("actor", "a\nb"),
            ("start", "yesterday"),
            ("end", "soon"),
        ] {
            match filter(&query(&[(name, value)])) {
                Err(ApiError::BadParameter { parameter, .. }) => assert_eq!(parameter, name),
                other => panic!("{name}={value:?}: {other:?}"),
            }
        }
        // A range that ends before it starts is empty, not an error.
        assert!(filter(&query(&[("start", "2000"), ("end", "1000")])).is_ok());
    }
}
