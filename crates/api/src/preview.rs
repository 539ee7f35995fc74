//! `POST /alert-rules/preview`: the alerts a rule would have raised over a
//! past range, by analytics' backtest (the live loop's steps over the same
//! ticks). It changes nothing, so a `read` key may ask.
//!
//! The body names a saved rule, `{"rule_id": "<uuid>"}`, or holds a draft,
//! `{"rule": {…}}` in the JSON of `POST /alert-rules` (validated the same
//! way; its errors name `rule.<field>`), with `start` and `end` (epoch
//! milliseconds or RFC 3339, as history's; `end` defaults to now, and a
//! later one is taken as now; `start` to `end` minus 24 h; at most 31
//! days) and `interval` (the evaluation interval, default `10s`, whole
//! seconds of at least 1 s, like `ANALYTICS_INTERVAL`).
//!
//! An answer whose range ended more than [`CACHE_AFTER`] ago is cached in
//! Redis (`analytics:preview:{sha256}`, 30 min) under the digest of all it
//! depends on: the rule as stored (its version included), the sensors it
//! selects, the range and the interval. Readings that arrive later for that
//! range show once the entry expires.

use std::sync::Arc;

use std::time::Duration;

use serde::Serialize;
use serde_json::Value;
use sha2::{Digest as _, Sha256};
use stoker_analytics::evaluate::{self, PreviewAlert, Target};
use stoker_domain::EpochMillis;
use stoker_metadata::Scope;
use stoker_rules::{AlertRule, NewAlertRule, Record};
use uuid::Uuid;
use warp::Filter;

use crate::body::{Fields, json_object};
use crate::dashboard::json_body;
use crate::history::{DEFAULT_RANGE, bad, timestamp};
use crate::problem::ApiError;
use crate::rules::new_rule;
use crate::{State, boxed};

/// Longest range a preview covers.
const MAX_RANGE: Duration = Duration::from_secs(31 * 24 * 3600);

/// Evaluation interval when the body gives none (`ANALYTICS_INTERVAL`'s
/// default).
const DEFAULT_INTERVAL: Duration = Duration::from_secs(10);

/// An answer is cached only when its range ended at least this long ago:
/// by then the range's readings have arrived (they may be up to 5 minutes
/// ahead of the clock, and the live loop waits `ANALYTICS_GRACE`).
const CACHE_AFTER: Duration = Duration::from_secs(600);

pub(crate) fn routes(
    state: State,
) -> impl Filter<Extract = (warp::reply::Response,), Error = warp::Rejection> + Clone {
    let preview = warp::path!("alert-rules" / "preview")
        .and(warp::post())
        .and(crate::auth::require_key(Scope::Read, Arc::clone(&state)))
        .and(warp::any().map(move || Arc::clone(&state)))
        .and(json_object())
        .and_then(preview);
    boxed(preview)
}

/// Which rule to replay.
#[derive(Debug, Clone, PartialEq)]
enum Source {
    /// A saved rule, by id.
    Saved(Uuid),
    /// A draft, validated.
    Draft(Box<NewAlertRule>),
}

/// A validated preview request.
#[derive(Debug, Clone, PartialEq)]
struct Request {
    source: Source,
    start: EpochMillis,
    end: EpochMillis,
    interval: Duration,
}

/// Reads the body: its fields first (422, one message per field, a draft's
/// named `rule.<field>`), then the range and interval (400, as history's
/// parameters).
fn parse(mut fields: Fields, now: EpochMillis) -> Result<Request, ApiError> {
    let rule_id = fields.optional_string("rule_id");
    let rule = fields.optional_object("rule");
    let start = fields.take("start");
    let end = fields.take("end");
    let interval = fields.take("interval");
    let source = match (rule_id, rule) {
        (Some(Some(_)), Some(Some(_))) => {
            fields.invalid(
                "rule",
                "send rule_id (a saved rule) or rule (a draft), not both",
            );
            None
        }
        (Some(None), Some(None)) => {
            fields.invalid(
                "rule",
                "rule_id (a saved rule) or rule (a draft rule, as POST /alert-rules takes) is required",
            );
            None
        }
        (Some(Some(id)), Some(None)) => match Uuid::parse_str(&id) {
            Ok(id) => Some(Source::Saved(id)),
            Err(_) => {
                fields.invalid("rule_id", "rule_id must be an alert rule's id (a UUID)");
                None
            }
        },
        (Some(None), Some(Some(draft))) => match new_rule(draft) {
            Ok(rule) => Some(Source::Draft(Box::new(rule))),
            Err(ApiError::Validation(errors)) => {
                for error in errors {
                    fields.invalid(&format!("rule.{}", error.field), error.message);
                }
                None
            }
            Err(other) => return Err(other),
        },
        // A wrong type, already recorded.
        _ => None,
    };
    fields.finish()?;
    let source = source.ok_or_else(|| {
        ApiError::Internal("a preview body passed its checks without a rule".into())
    })?;
    let (start, end) = range(time("start", start)?, time("end", end)?, now)?;
    Ok(Request {
        source,
        start,
        end,
        interval: interval_of(interval)?,
    })
}

/// A time as epoch milliseconds (a number, or digits in a string) or RFC
/// 3339.
fn time(parameter: &'static str, value: Option<Value>) -> Result<Option<EpochMillis>, ApiError> {
    match value {
        None => Ok(None),
        Some(Value::String(text)) => timestamp(parameter, &text).map(Some),
        Some(Value::Number(number)) => match number.as_i64() {
            Some(millis) => timestamp(parameter, &millis.to_string()).map(Some),
            None => Err(bad(
                parameter,
                format!("{parameter}={number} is not whole epoch milliseconds"),
            )),
        },
        Some(_) => Err(bad(
            parameter,
            format!(
                "{parameter} must be epoch milliseconds or an RFC 3339 time (2026-11-22T10:00:00Z)"
            ),
        )),
    }
}

/// The range: `end` at most now (no reading is later, and a `no_data`
/// rule would fire on the future), `start` before it, at most
/// [`MAX_RANGE`] apart.
fn range(
    start: Option<EpochMillis>,
    end: Option<EpochMillis>,
    now: EpochMillis,
) -> Result<(EpochMillis, EpochMillis), ApiError> {
    let end = end.map_or(now, |end| end.min(now));
    let start = start.unwrap_or_else(|| end.plus_millis(-(DEFAULT_RANGE.as_millis() as i64)));
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
                "the range from start to end is {}; a preview covers at most {}",
                humantime::format_duration(span),
                humantime::format_duration(MAX_RANGE)
            ),
        ));
    }
    Ok((start, end))
}

/// The evaluation interval: whole seconds, at least 1 s.
fn interval_of(value: Option<Value>) -> Result<Duration, ApiError> {
    let text = match value {
        None => return Ok(DEFAULT_INTERVAL),
        Some(Value::String(text)) => text,
        Some(other) => {
            return Err(bad(
                "interval",
                format!("interval must be a duration such as 10s or 1m, not {other}"),
            ));
        }
    };
    match humantime::parse_duration(&text) {
        Ok(interval) if interval >= Duration::from_secs(1) && interval.subsec_nanos() == 0 => {
            Ok(interval)
        }
        _ => Err(bad(
            "interval",
            format!(
                "interval={:?} is not a duration of whole seconds, at least 1s (such as 10s or 1m)",
                text.chars().take(32).collect::<String>()
            ),
        )),
    }
}

/// A draft as a rule that was never stored: nil id, version 0.
fn unsaved(rule: &NewAlertRule, now: EpochMillis) -> AlertRule {
    rule.clone().into_rule(Record {
        id: Uuid::nil(),
        version: 0,
        created_at: now.to_datetime(),
        updated_at: now.to_datetime(),
    })
}

/// The rule as the answer shows it: a saved rule as `GET /alert-rules/{id}`
/// does; a draft without what only storing gives (id, version, times).
fn rule_json(rule: &AlertRule, saved: bool) -> Result<Value, ApiError> {
    let mut value = serde_json::to_value(rule)
        .map_err(|error| ApiError::Internal(format!("cannot encode a rule: {error}")))?;
    if !saved && let Value::Object(map) = &mut value {
        for field in ["id", "version", "created_at", "updated_at"] {
            map.remove(field);
        }
    }
    Ok(value)
}

/// The SHA-256 of everything an answer depends on. `serde_json` keeps
/// object keys sorted, so equal requests give equal text.
fn digest(rule: &Value, targets: &[Target], request: &Request) -> [u8; 32] {
    let targets: Vec<[String; 5]> = targets
        .iter()
        .map(|target| {
            [
                target.site.as_str().to_owned(),
                target.sensor.as_str().to_owned(),
                target.unit.as_str().to_owned(),
                target.kind.as_str().to_owned(),
                target.states.names().collect::<Vec<_>>().join(","),
            ]
        })
        .collect();
    let canonical = serde_json::json!({
        "rule": rule,
        "targets": targets,
        "start": request.start.as_millis(),
        "end": request.end.as_millis(),
        "interval_ms": request.interval.as_millis() as u64,
    });
    Sha256::digest(canonical.to_string().as_bytes()).into()
}

#[derive(Debug, Serialize)]
struct Preview<'a> {
    rule: &'a Value,
    start: String,
    end: String,
    interval: String,
    /// The sensors the rule selects.
    sensors: usize,
    alerts: Vec<PreviewAlert>,
}

/// A key limited to sites previews only rules of its sites (saved or
/// drafts), as it sees only those.
async fn preview(
    principal: crate::auth::Principal,
    state: State,
    fields: Fields,
) -> Result<warp::reply::Response, warp::Rejection> {
    let now = EpochMillis::now();
    let request = parse(fields, now)?;
    let (rule, saved) = match &request.source {
        Source::Saved(id) => (
            stoker_metadata::get_alert_rule(&state.pool, *id)
                .await
                .map_err(ApiError::from)?,
            true,
        ),
        Source::Draft(rule) => {
            crate::rules::check_rule_site(&principal, rule.selector().site.as_ref())?;
            // As the body's other rule errors: under `rule.`.
            crate::rules::check_against_sensors(&state, rule)
                .await
                .map_err(|error| match error {
                    ApiError::Validation(errors) => ApiError::Validation(
                        errors
                            .into_iter()
                            .map(|mut error| {
                                error.field = format!("rule.{}", error.field);
                                error
                            })
                            .collect(),
                    ),
                    other => other,
                })?;
            (unsaved(rule, now), false)
        }
    };
    if saved {
        crate::rules::check_rule_site(&principal, rule.selector.site.as_ref())?;
    }
    let registry = stoker_metadata::registry(&state.pool)
        .await
        .map_err(ApiError::from)?;
    // The sensors the rule can judge, as the evaluation loop watches them.
    let Some(watch) = evaluate::watches(vec![rule], &registry).pop() else {
        return Err(ApiError::Internal("a watch per rule".into()).into());
    };
    let rule = rule_json(&watch.rule, saved)?;
    let cacheable = now.as_millis() - request.end.as_millis() >= CACHE_AFTER.as_millis() as i64;
    let digest = cacheable.then(|| digest(&rule, &watch.targets, &request));
    if let Some(digest) = &digest {
        match state.cache.preview(digest).await {
            Ok(Some(cached)) => return Ok(json_body(cached, "hit")),
            Ok(None) => {}
            Err(error) => tracing::debug!(%error, "Redis unavailable; running the backtest"),
        }
    }
    let interval_ms = i64::try_from(request.interval.as_millis()).unwrap_or(i64::MAX);
    let alerts = evaluate::backtest(
        &state.influx,
        &watch,
        request.start,
        request.end,
        interval_ms,
    )
    .await
    .map_err(ApiError::from)?;
    let body = serde_json::to_string(&Preview {
        rule: &rule,
        start: request.start.to_string(),
        end: request.end.to_string(),
        interval: humantime::format_duration(request.interval).to_string(),
        sensors: watch.targets.len(),
        alerts,
    })
    .map_err(|error| ApiError::Internal(format!("cannot encode a preview: {error}")))?;
    let Some(digest) = digest else {
        return Ok(json_body(body, "bypass"));
    };
    if let Err(error) = state.cache.set_preview(&digest, &body).await {
        tracing::debug!(%error, "could not cache the preview in Redis");
    }
    Ok(json_body(body, "miss"))
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn now() -> EpochMillis {
        EpochMillis::from_millis(1_800_000_000_000).unwrap()
    }

    fn fields(body: Value) -> Fields {
        Fields::from_value(body)
    }

    fn fields_of(error: ApiError) -> Vec<String> {
        match error {
            ApiError::Validation(errors) => errors.into_iter().map(|error| error.field).collect(),
            ApiError::BadParameter { parameter, .. } => vec![parameter.to_owned()],
            other => panic!("{other:?}"),
        }
    }

    fn draft() -> Value {
        json!({"name": "Steam pressure high", "kind": "threshold", "site": "boiler-house-1",
               "sensor_type": "pressure", "agg": "mean", "op": ">", "threshold": 12.5,
               "clear_threshold": 12.0, "window": "60s", "severity": "warning"})
    }

    #[test]
    fn defaults_are_the_last_day_every_ten_seconds() {
        let id = Uuid::now_v7();
        let request = parse(fields(json!({"rule_id": id.to_string()})), now()).unwrap();
        assert_eq!(request.source, Source::Saved(id));
        assert_eq!(request.end, now());
        assert_eq!(
            request.end.as_millis() - request.start.as_millis(),
            86_400_000
        );
        assert_eq!(request.interval, Duration::from_secs(10));
    }

    #[test]
    fn times_are_numbers_or_text_and_the_end_is_at_most_now() {
        let request = parse(
            fields(json!({"rule": draft(), "start": "2026-11-22T10:00:00Z",
                          "end": 1_795_392_000_000_i64, "interval": "1m"})),
            now(),
        )
        .unwrap();
        assert!(matches!(request.source, Source::Draft(_)));
        assert_eq!(
            request.start,
            EpochMillis::parse_rfc3339("2026-11-22T10:00:00Z").unwrap()
        );
        assert_eq!(request.end.as_millis(), 1_795_392_000_000);
        assert_eq!(request.interval, Duration::from_secs(60));
        let later = parse(
            fields(json!({"rule": draft(), "end": "2099-01-01T00:00:00Z"})),
            now(),
        )
        .unwrap();
        assert_eq!(later.end, now());
    }

    #[test]
    fn bad_bodies_name_their_fields() {
        let id = Uuid::now_v7().to_string();
        for (body, expected) in [
            (json!({}), vec!["rule"]),
            (json!({"rule_id": id, "rule": draft()}), vec!["rule"]),
            (json!({"rule_id": "seven"}), vec!["rule_id"]),
            (json!({"rule_id": 7}), vec!["rule_id"]),
            (json!({"rule": "high"}), vec!["rule"]),
            (json!({"rule_id": id, "colour": "red"}), vec!["colour"]),
        ] {
            let error = parse(fields(body.clone()), now()).unwrap_err();
            assert_eq!(fields_of(error), expected, "{body}");
        }
        let mut bad_draft = draft();
        bad_draft["op"] = json!("=>");
        let error = parse(fields(json!({"rule": bad_draft})), now()).unwrap_err();
        assert_eq!(fields_of(error), ["rule.op"]);
        let mut bad_draft = draft();
        bad_draft["colour"] = json!("red");
        bad_draft["threshold"] = json!("very high");
        let error = parse(fields(json!({"rule": bad_draft})), now()).unwrap_err();
        assert_eq!(fields_of(error), ["rule.colour", "rule.threshold"]);
    }

    #[test]
    fn bad_ranges_and_intervals_are_refused() {
        let id = Uuid::now_v7().to_string();
        let day = 86_400_000_i64;
        let end = now().as_millis() - day;
        for (extra, parameter) in [
            (json!({"start": "yesterday"}), "start"),
            (json!({"end": true}), "end"),
            (json!({"end": 1.5}), "end"),
            (json!({"start": end, "end": end}), "start"),
            (json!({"start": end + 1, "end": end}), "start"),
            (json!({"start": end - 31 * day - 1, "end": end}), "start"),
            (json!({"interval": "1500ms"}), "interval"),
            (json!({"interval": "0s"}), "interval"),
            (json!({"interval": 10}), "interval"),
            (json!({"interval": "soon"}), "interval"),
        ] {
            let mut body = json!({"rule_id": id});
            for (key, value) in extra.as_object().unwrap() {
                body[key] = value.clone();
            }
            let error = parse(fields(body.clone()), now()).unwrap_err();
            assert_eq!(fields_of(error), [parameter], "{body}");
        }
        let exactly = json!({"rule_id": id, "start": end - 31 * day, "end": end});
        assert!(parse(fields(exactly), now()).is_ok());
    }

    #[test]
    fn the_digest_follows_every_input() {
        let request = parse(
            fields(json!({"rule": draft(), "start": 0, "end": 600_000})),
            now(),
        )
        .unwrap();
        let Source::Draft(rule) = &request.source else {
            panic!("a draft");
        };
        let rule = rule_json(&unsaved(rule, now()), false).unwrap();
        assert!(rule.get("id").is_none() && rule.get("version").is_none());
        let target = Target {
            site: stoker_domain::SiteSlug::parse("boiler-house-1").unwrap(),
            sensor: stoker_domain::SensorKey::parse("b1_steam_pressure").unwrap(),
            unit: stoker_domain::Unit::parse("bar").unwrap(),
            created_ms: 0,
            kind: stoker_domain::SensorKind::Numeric,
            states: stoker_domain::States::default(),
        };
        let base = digest(&rule, std::slice::from_ref(&target), &request);
        assert_eq!(
            base,
            digest(&rule, std::slice::from_ref(&target), &request.clone())
        );
        assert_ne!(base, digest(&rule, &[], &request));
        let later = Request {
            end: request.end.plus_millis(1),
            ..request.clone()
        };
        assert_ne!(base, digest(&rule, std::slice::from_ref(&target), &later));
        let mut other_rule = rule.clone();
        other_rule["threshold"] = json!(13.0);
        assert_ne!(
            base,
            digest(&other_rule, std::slice::from_ref(&target), &request)
        );
    }
}
