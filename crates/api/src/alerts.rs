//! Alerts raised by analytics: `GET /alerts` (newest first, in pages,
//! filtered by `state`, `site`, `sensor`, `rule`), `GET /alerts/{id}` with
//! its event trail (the `fired` event with its explanation), and the
//! operator's actions `POST /alerts/{id}/ack`, `…/resolve`, `…/reset`,
//! `…/shelve` (`{"for","reason"}`) and `…/unshelve`, recorded under the
//! name of the API key that asked, in the alert's trail and the audit.
//!
//! Postgres (schema `analytics`) is the truth; a transition is one
//! transaction that changes the alert, appends its event and queues its
//! MQTT and webhook notifications ([`ApiState::notify`](crate::ApiState)),
//! as the evaluation loop's transitions do. The site's cached dashboard
//! is dropped after each one.

use std::sync::Arc;

use std::collections::HashMap;

use serde::Serialize;
use stoker_analytics::store::{self, Alert, AlertEvent, AlertFilter, StateFilter};
use stoker_domain::{SensorKey, SiteSlug};
use stoker_metadata::Scope;
use uuid::Uuid;
use warp::Filter;

use crate::auth::{Principal, require_key};
use crate::page::{self, PageBody};
use crate::problem::ApiError;
use crate::{State, boxed};

pub(crate) fn routes(
    state: State,
) -> impl Filter<Extract = (warp::reply::Response,), Error = warp::Rejection> + Clone {
    let read = require_key(Scope::Read, Arc::clone(&state));
    let write = require_key(Scope::Write, Arc::clone(&state));
    let with_state = warp::any().map(move || Arc::clone(&state));
    let list = warp::path!("alerts")
        .and(warp::get())
        .and(read.clone())
        .and(warp::query::<HashMap<String, String>>())
        .and(with_state.clone())
        .and_then(list_alerts);
    let get = warp::path!("alerts" / String)
        .and(warp::get())
        .and(read)
        .and(with_state.clone())
        .and_then(get_alert);
    let acknowledge = warp::path!("alerts" / String / "ack")
        .and(warp::post())
        .and(write.clone())
        .and(with_state.clone())
        .and_then(|id, actor, state| transition(id, actor, state, Action::Acknowledge));
    let resolve = warp::path!("alerts" / String / "resolve")
        .and(warp::post())
        .and(write.clone())
        .and(with_state.clone())
        .and_then(|id, actor, state| transition(id, actor, state, Action::Resolve));
    let reset = warp::path!("alerts" / String / "reset")
        .and(warp::post())
        .and(write.clone())
        .and(with_state.clone())
        .and_then(|id, actor, state| transition(id, actor, state, Action::Reset));
    let shelve = warp::path!("alerts" / String / "shelve")
        .and(warp::post())
        .and(write.clone())
        .and(crate::body::json_object())
        .and(with_state.clone())
        .and_then(|id: String, actor, body, state| async move {
            // The alert and the key's right to it come first: a malformed
            // id is 404 and another site's alert 403 whatever the body says.
            let id = alert_in_scope(&id, &actor, &state).await?;
            let action = shelf(body)?;
            change(id, actor, state, action).await
        });
    let unshelve = warp::path!("alerts" / String / "unshelve")
        .and(warp::post())
        .and(write)
        .and(with_state)
        .and_then(|id, actor, state| transition(id, actor, state, Action::Unshelve));
    boxed(list)
        .or(boxed(get))
        .unify()
        .or(boxed(acknowledge))
        .unify()
        .or(boxed(resolve))
        .unify()
        .or(boxed(reset))
        .unify()
        .or(boxed(shelve))
        .unify()
        .or(boxed(unshelve))
        .unify()
}

/// A shelve body: `for` (a duration, at most the rule's `max_shelve`) and
/// `reason` (required).
fn shelf(mut body: crate::body::Fields) -> Result<Action, warp::Rejection> {
    let duration = body.required("for", |text| stoker_domain::parse_duration(&text));
    let reason = body.required("reason", |text| {
        if text.trim().is_empty() {
            Err("reason is required: say why the alert is shelved")
        } else {
            Ok(text)
        }
    });
    body.finish()?;
    match (duration, reason) {
        (Some(duration), Some(reason)) => Ok(Action::Shelve { duration, reason }),
        // `finish` has refused the body already.
        _ => Err(ApiError::Internal("a shelve body was refused without an error".into()).into()),
    }
}

/// The kinds an alert may have: its rule's, or `gateway_offline`.
pub(crate) const KIND_NAMES: [&str; stoker_rules::RuleKind::NAMES.len() + 1] = {
    let mut names = [store::GATEWAY_OFFLINE; stoker_rules::RuleKind::NAMES.len() + 1];
    let mut index = 0;
    while index < stoker_rules::RuleKind::NAMES.len() {
        names[index] = stoker_rules::RuleKind::NAMES[index];
        index += 1;
    }
    names
};

/// The filters of a list query.
fn filter(query: &HashMap<String, String>) -> Result<AlertFilter, ApiError> {
    let state = match query.get("state") {
        None => None,
        Some(text) => Some(
            StateFilter::parse(text).ok_or_else(|| ApiError::BadParameter {
                parameter: "state",
                detail: format!(
                    "state={:?} is not one of {}",
                    text.chars().take(32).collect::<String>(),
                    StateFilter::NAMES.join(", ")
                ),
            })?,
        ),
    };
    let site = query
        .get("site")
        .map(|text| SiteSlug::parse(text.as_str()))
        .transpose()
        .map_err(|error| ApiError::BadParameter {
            parameter: "site",
            detail: error.to_string(),
        })?;
    let sensor = query
        .get("sensor")
        .map(|text| SensorKey::parse(text.as_str()))
        .transpose()
        .map_err(|error| ApiError::BadParameter {
            parameter: "sensor",
            detail: error.to_string(),
        })?;
    let rule_id = query
        .get("rule")
        .map(|text| Uuid::parse_str(text))
        .transpose()
        .map_err(|_| ApiError::BadParameter {
            parameter: "rule",
            detail: "rule must be an alert rule's id (a UUID)".into(),
        })?;
    let kind = match query.get("kind") {
        None => None,
        Some(text) if KIND_NAMES.contains(&text.as_str()) => Some(text.clone()),
        Some(text) => {
            return Err(ApiError::BadParameter {
                parameter: "kind",
                detail: format!(
                    "kind={:?} is not one of {}",
                    text.chars().take(32).collect::<String>(),
                    KIND_NAMES.join(", ")
                ),
            });
        }
    };
    Ok(AlertFilter {
        state,
        site,
        sensor,
        rule_id,
        kind,
        within: None,
    })
}

/// A key limited to sites sees only its sites' alerts.
async fn list_alerts(
    principal: Principal,
    query: HashMap<String, String>,
    state: State,
) -> Result<warp::reply::Json, warp::Rejection> {
    let page = page::parse(&query, &["state", "site", "sensor", "rule", "kind"])?;
    let mut filter = filter(&query)?;
    filter.within = principal.sites().map(<[SiteSlug]>::to_vec);
    let alerts = store::list_alerts(&state.pool, &filter, page.limit, page.after.as_deref())
        .await
        .map_err(ApiError::from)?;
    Ok(warp::reply::json(&PageBody::from(alerts)))
}

/// An alert with its event trail, oldest event first.
#[derive(Debug, Serialize)]
struct AlertWithEvents {
    #[serde(flatten)]
    alert: Alert,
    events: Vec<AlertEvent>,
}

async fn get_alert(
    id: String,
    principal: Principal,
    state: State,
) -> Result<warp::reply::Json, warp::Rejection> {
    let id = crate::uuid_from_path("alert", &id)?;
    let (alert, events) = store::get_alert(&state.pool, id)
        .await
        .map_err(ApiError::from)?;
    principal.check_site(&alert.site)?;
    Ok(warp::reply::json(&AlertWithEvents { alert, events }))
}

/// What a person may do to an alert.
#[derive(Debug, Clone)]
enum Action {
    Acknowledge,
    Resolve,
    Reset,
    Shelve {
        duration: std::time::Duration,
        reason: String,
    },
    Unshelve,
}

/// A key limited to sites acts only on its sites' alerts (checked before
/// the change).
async fn transition(
    id: String,
    principal: Principal,
    state: State,
    action: Action,
) -> Result<warp::reply::Json, warp::Rejection> {
    let id = alert_in_scope(&id, &principal, &state).await?;
    change(id, principal, state, action).await
}

/// The alert the path names, if the key may act on it: a malformed id is
/// 404, and a key limited to sites gets 403 on another site's alert.
async fn alert_in_scope(
    id: &str,
    principal: &Principal,
    state: &State,
) -> Result<uuid::Uuid, warp::Rejection> {
    let id = crate::uuid_from_path("alert", id)?;
    if principal.sites().is_some() {
        let (alert, _) = store::get_alert(&state.pool, id)
            .await
            .map_err(ApiError::from)?;
        principal.check_site(&alert.site)?;
    }
    Ok(id)
}

/// Applies an operator's action to an alert already in the key's scope.
async fn change(
    id: uuid::Uuid,
    principal: Principal,
    state: State,
    action: Action,
) -> Result<warp::reply::Json, warp::Rejection> {
    let actor = principal.name;
    let (pool, notify) = (&state.pool, &state.notify);
    let changed = match action {
        Action::Acknowledge => store::acknowledge(pool, notify, id, &actor).await,
        Action::Resolve => store::resolve(pool, notify, id, &actor).await,
        Action::Reset => store::reset(pool, notify, id, &actor).await,
        Action::Shelve { duration, reason } => {
            store::shelve(pool, notify, id, &actor, duration, &reason).await
        }
        Action::Unshelve => store::unshelve(pool, notify, id, &actor).await,
    }
    .map_err(ApiError::from)?;
    tracing::info!(alert = %changed.id, state = %changed.state, actor, "alert changed by hand");
    // The dashboard shows the alert's state; Redis only speeds it up, so a
    // failure here leaves a summary that expires within its TTL.
    match SiteSlug::parse(&changed.site) {
        Ok(site) => {
            if let Err(error) = state.cache.forget_dashboard(&site).await {
                tracing::debug!(%error, "could not drop the cached dashboard; it expires within {:?}", stoker_cache::DASHBOARD_TTL);
            }
        }
        Err(error) => tracing::warn!(%error, site = changed.site, "an alert names an invalid site"),
    }
    Ok(warp::reply::json(&changed))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::page::query;

    #[test]
    fn filters_are_parsed_and_bad_ones_named() {
        let rule = Uuid::now_v7();
        let parsed = filter(&query(&[
            ("state", "open"),
            ("site", "boiler-house-1"),
            ("sensor", "b1_flue_temp"),
            ("rule", &rule.to_string()),
        ]))
        .unwrap();
        assert_eq!(parsed.state, Some(StateFilter::Open));
        assert_eq!(parsed.rule_id, Some(rule));
        assert_eq!(filter(&query(&[])).unwrap(), AlertFilter::default());
        for (name, value) in [
            ("state", "shut"),
            ("site", "Boiler House"),
            ("sensor", "b1 flue"),
            ("rule", "7"),
        ] {
            match filter(&query(&[(name, value)])) {
                Err(ApiError::BadParameter { parameter, detail }) => {
                    assert_eq!(parameter, name, "{detail}");
                    if name == "state" {
                        assert!(
                            detail.contains("open, firing, acknowledged, resolved"),
                            "{detail}"
                        );
                    }
                }
                other => panic!("{name}={value}: {other:?}"),
            }
        }
    }
}
