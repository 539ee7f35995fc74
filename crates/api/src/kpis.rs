//! `GET /alarm-kpis?site&start&end`: measured alarm performance (alarms
//! per hour, peak within 10 minutes, share of time in flood, chattering
//! and stale alarms, the ten bad actors, time to acknowledge; suppressed
//! alarms counted apart) of the alarms that began in `[start, end)`, from
//! analytics' `kpi::measure` (SQL over the recorded alerts). The rule
//! preview reports the same object for the alerts a rule would have
//! raised.
//!
//! `start` and `end` are epoch milliseconds or RFC 3339, as history's;
//! `end` defaults to now (a later one is taken as now: an alarm still
//! active is judged at the end), `start` to `end` minus 24 h, at most
//! [`MAX_RANGE`] before it. Without `site`, every site the key may see;
//! a key limited to sites asking for another is 403 `forbidden_site`.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use serde::Serialize;
use stoker_analytics::kpi::{self, KpiRange, KpiScope, Kpis};
use stoker_domain::{EpochMillis, SiteSlug};
use stoker_metadata::Scope;
use warp::Filter;

use crate::auth::{Principal, require_key};
use crate::history::{DEFAULT_RANGE, bad, timestamp};
use crate::problem::ApiError;
use crate::{State, boxed};

/// The longest range measured: a year, leap day included.
pub(crate) const MAX_RANGE: Duration = Duration::from_secs(366 * 24 * 3600);

/// The query parameters the route takes.
const PARAMETERS: [&str; 3] = ["site", "start", "end"];

pub(crate) fn routes(
    state: State,
) -> impl Filter<Extract = (warp::reply::Response,), Error = warp::Rejection> + Clone {
    let read = require_key(Scope::Read, Arc::clone(&state));
    let with_state = warp::any().map(move || Arc::clone(&state));
    boxed(
        warp::path!("alarm-kpis")
            .and(warp::get())
            .and(read)
            .and(warp::query::<HashMap<String, String>>())
            .and(with_state)
            .and_then(alarm_kpis),
    )
}

/// A validated request.
#[derive(Debug, Clone, PartialEq)]
struct Request {
    site: Option<SiteSlug>,
    range: KpiRange,
}

/// Reads `site`, `start` and `end`; refuses any other parameter (a typo
/// must not silently measure something else).
fn parse(query: &HashMap<String, String>, now: EpochMillis) -> Result<Request, ApiError> {
    if let Some(unknown) = query
        .keys()
        .find(|name| !PARAMETERS.contains(&name.as_str()))
    {
        let shown: String = unknown.chars().take(32).collect();
        return Err(bad(
            "query",
            format!("unknown parameter {shown:?}; alarm-kpis takes site, start and end"),
        ));
    }
    let site = query
        .get("site")
        .map(|text| SiteSlug::parse(text.as_str()))
        .transpose()
        .map_err(|error| bad("site", error.to_string()))?;
    let end = query
        .get("end")
        .map(|text| timestamp("end", text))
        .transpose()?
        .map_or(now, |end| end.min(now));
    let start = query
        .get("start")
        .map(|text| timestamp("start", text))
        .transpose()?
        .unwrap_or_else(|| end.plus_millis(-(DEFAULT_RANGE.as_millis() as i64)));
    if start >= end {
        return Err(bad(
            "start",
            format!("start ({start}) must be before end ({end}; an end after now is taken as now)"),
        ));
    }
    let span = Duration::from_millis((end.as_millis() - start.as_millis()).unsigned_abs());
    if span > MAX_RANGE {
        return Err(bad(
            "start",
            format!(
                "the range from start to end is {}; alarm KPIs cover at most {}",
                humantime::format_duration(span),
                humantime::format_duration(MAX_RANGE)
            ),
        ));
    }
    Ok(Request {
        site,
        range: KpiRange {
            start: start.to_datetime(),
            end: end.to_datetime(),
        },
    })
}

/// The answer: the site asked for (null: every site the key may see) and
/// the figures.
#[derive(Debug, Serialize)]
struct AlarmKpis {
    site: Option<SiteSlug>,
    #[serde(flatten)]
    kpis: Kpis,
}

async fn alarm_kpis(
    principal: Principal,
    query: HashMap<String, String>,
    state: State,
) -> Result<warp::reply::Json, warp::Rejection> {
    let request = parse(&query, EpochMillis::now())?;
    if let Some(site) = &request.site {
        principal.check_site(site.as_str())?;
        // An unknown site is 404, not a range without alarms.
        stoker_metadata::get_site(&state.pool, site)
            .await
            .map_err(ApiError::from)?;
    }
    let scope = KpiScope {
        site: request.site.clone(),
        within: principal.sites().map(<[SiteSlug]>::to_vec),
    };
    let kpis = kpi::measure(&state.pool, &scope, request.range)
        .await
        .map_err(ApiError::from)?;
    Ok(warp::reply::json(&AlarmKpis {
        site: request.site,
        kpis,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::page::query;

    fn now() -> EpochMillis {
        EpochMillis::from_millis(1_800_000_000_000).unwrap()
    }

    fn parameter(error: ApiError) -> &'static str {
        match error {
            ApiError::BadParameter { parameter, .. } => parameter,
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn defaults_are_the_last_day_of_every_site() {
        let request = parse(&query(&[]), now()).unwrap();
        assert_eq!(request.site, None);
        assert_eq!(request.range.end, now().to_datetime());
        assert_eq!(
            request.range.end - request.range.start,
            chrono::Duration::hours(24)
        );
        let later = parse(&query(&[("end", "2099-01-01T00:00:00Z")]), now()).unwrap();
        assert_eq!(later.range.end, now().to_datetime(), "a future end is now");
    }

    #[test]
    fn bad_parameters_are_named() {
        let year = 366 * 86_400_000_i64;
        let end = now().as_millis();
        for (pairs, expected) in [
            (vec![("site", "Boiler House")], "site"),
            (vec![("start", "yesterday")], "start"),
            (vec![("end", "soon")], "end"),
            (vec![("sites", "a")], "query"),
        ] {
            assert_eq!(
                parameter(parse(&query(&pairs), now()).unwrap_err()),
                expected
            );
        }
        let (too_early, just) = ((end - year - 1).to_string(), (end - year).to_string());
        assert_eq!(
            parameter(parse(&query(&[("start", &too_early)]), now()).unwrap_err()),
            "start"
        );
        assert!(parse(&query(&[("start", &just)]), now()).is_ok());
        let at = end.to_string();
        assert_eq!(
            parameter(parse(&query(&[("start", &at), ("end", &at)]), now()).unwrap_err()),
            "start"
        );
    }
}
