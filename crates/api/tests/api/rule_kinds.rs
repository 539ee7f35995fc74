//! Rules comparing boolean and state sensors: `==`/`!=` with a threshold of
//! the sensor's type, checked against the sensors the rule selects, and
//! previewed over stored readings.

use crate::helpers::*;
use crate::kinds::{SEQUENCER_STATES, app_with_kinds, field_errors};
use reqwest::StatusCode;
use serde_json::{Value, json};
use stoker_domain::{EpochMillis, SensorKey, SensorType, SiteSlug};
use stoker_timeseries::LineBatch;

fn lockout_rule() -> Value {
    json!({"name": "Burner lockout", "kind": "threshold", "site": "boiler-house-1",
           "sensor": "b1_sequencer", "op": "==", "threshold": "lockout", "window": "30s",
           "severity": "critical"})
}

/// `rule` with `changes` set (null removes a field).
fn with(rule: &Value, changes: Value) -> Value {
    let mut rule = rule.clone();
    for (field, value) in changes.as_object().unwrap() {
        if value.is_null() {
            rule.as_object_mut().unwrap().remove(field);
        } else {
            rule[field] = value.clone();
        }
    }
    rule
}

/// The message of the error on `field`.
fn message_on<'a>(problem: &'a Value, field: &str) -> &'a str {
    problem["errors"]
        .as_array()
        .and_then(|errors| errors.iter().find(|error| error["field"] == field))
        .and_then(|error| error["message"].as_str())
        .unwrap_or_else(|| panic!("no error on {field}: {problem}"))
}

#[tokio::test]
async fn equality_rules_take_a_threshold_of_the_sensors_type() {
    let app = app_with_kinds().await;

    // A state and a boolean: 201, `agg` last by default, no clear value.
    let (status, _, rule) = app.post_rule(lockout_rule()).await;
    assert_eq!(status, StatusCode::CREATED, "{rule}");
    assert_eq!(
        (&rule["op"], &rule["threshold"], &rule["agg"]),
        (&json!("=="), &json!("lockout"), &json!("last"))
    );
    assert!(rule.get("clear_threshold").is_none(), "{rule}");
    let fetched = app
        .get(&format!(
            "/api/v1/alert-rules/{}",
            rule["id"].as_str().unwrap()
        ))
        .await
        .1;
    assert_eq!(fetched["threshold"], "lockout");
    let burner = json!({"name": "Burner off", "kind": "threshold", "site": "boiler-house-1",
                        "sensor": "b1_burner_on", "op": "!=", "threshold": true, "agg": "max",
                        "window": "5m", "for": "1m", "severity": "warning"});
    let (status, _, created) = app.post_rule(burner.clone()).await;
    assert_eq!(status, StatusCode::CREATED, "{created}");
    assert_eq!(created["threshold"], true);
    // A selector by type matches every sequencer of the site: each has
    // the state.
    let by_type = with(
        &lockout_rule(),
        json!({"sensor": null, "sensor_type": "sequencer"}),
    );
    let (status, _, created) = app.post_rule(by_type).await;
    assert_eq!(status, StatusCode::CREATED, "{created}");

    // A sensor that cannot be compared with the threshold: 422 naming it.
    let (status, _, problem) = app
        .post_rule(with(&lockout_rule(), json!({"threshold": "standby"})))
        .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{problem}");
    assert_eq!(
        message_on(&problem, "threshold"),
        format!(
            "the rule selects sensor b1_sequencer of site boiler-house-1, which it cannot \
             compare: the sensor's states ({}) do not include \"standby\"",
            SEQUENCER_STATES.join(", ")
        )
    );
    let (status, _, problem) = app
        .post_rule(with(
            &burner,
            json!({"sensor": "b1_steam_pressure", "agg": "last"}),
        ))
        .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{problem}");
    assert_eq!(
        message_on(&problem, "threshold"),
        "the rule selects sensor b1_steam_pressure of site boiler-house-1, which it cannot \
         compare: threshold true is a value of a boolean sensor, and the sensor is numeric"
    );
    // A site-wide selector reaches the numeric sensors too.
    let (status, _, problem) = app
        .post_rule(with(&lockout_rule(), json!({"sensor": null})))
        .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{problem}");
    assert!(
        field_errors(&problem)
            .iter()
            .all(|field| *field == "threshold")
    );

    // What the model refuses, per field.
    for (changes, field) in [
        (json!({"clear_threshold": 1.0}), "clear_threshold"),
        (json!({"threshold": 4}), "threshold"),
        (json!({"threshold": "lock out"}), "threshold"),
        (json!({"threshold": [1]}), "threshold"),
        (json!({"agg": "max"}), "agg"),
        (
            json!({"op": ">", "agg": "last", "clear_threshold": 1.0}),
            "threshold",
        ),
        (
            json!({"kind": "rate_of_change", "threshold": null, "rate_per_min": 1.0,
                "clear_rate_per_min": 1.0}),
            "op",
        ),
    ] {
        let (status, _, problem) = app.post_rule(with(&lockout_rule(), changes.clone())).await;
        assert_eq!(
            (status, field_errors(&problem)),
            (StatusCode::UNPROCESSABLE_ENTITY, vec![field]),
            "{changes}: {problem}"
        );
    }
    let (_, _, problem) = app
        .post_rule(with(&lockout_rule(), json!({"clear_threshold": 1.0})))
        .await;
    assert_eq!(
        message_on(&problem, "clear_threshold"),
        "clear_threshold (1) does not apply to op ==: the alert clears when the comparison no \
         longer holds"
    );

    // A numeric rule changed into an equality: its clear value must go.
    let numeric = app.create_rule(threshold_rule()).await;
    let path = format!("/api/v1/alert-rules/{}", numeric.id);
    let change = json!({"sensor_type": null, "sensor": "b1_burner_on", "op": "==",
                        "threshold": true, "agg": "last", "version": 1});
    let (status, _, problem) = app.patch(&path, change.clone()).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{problem}");
    assert_eq!(field_errors(&problem), ["clear_threshold"]);
    let mut cleared = change.clone();
    cleared["clear_threshold"] = Value::Null;
    let (status, _, changed) = app.patch(&path, cleared).await;
    assert_eq!(status, StatusCode::OK, "{changed}");
    assert_eq!(
        (&changed["threshold"], changed.get("clear_threshold")),
        (&json!(true), None)
    );
}

/// Ten minutes of the sequencer, one reading per 10 s from `start`, as
/// ingestion stores them: firing, but lockout from 200 s to 290 s.
async fn write_lockout_episode(app: &TestApp, start: i64) {
    let site = SiteSlug::parse("boiler-house-1").unwrap();
    let sensor = SensorKey::parse("b1_sequencer").unwrap();
    let kind = SensorType::parse("sequencer").unwrap();
    let mut batch = LineBatch::default();
    for index in 0..60 {
        let state = if (20..30).contains(&index) {
            "lockout"
        } else {
            "firing"
        };
        let position = SEQUENCER_STATES.iter().position(|name| *name == state);
        let at = EpochMillis::from_millis(start + index * 10_000).unwrap();
        batch.push_state(
            &site,
            &sensor,
            &kind,
            u32::try_from(position.unwrap()).unwrap(),
            state,
            at,
        );
    }
    app.influx.influx().write(&batch).await.unwrap();
}

#[tokio::test]
async fn a_state_rule_previews_over_stored_states() {
    let app = app_with_kinds().await;
    let start = (EpochMillis::now().as_millis() / 600_000 - 12) * 600_000;
    let end = start + 600_000;
    write_lockout_episode(&app, start).await;

    // last over 30 s == lockout from the tick at 210 s; for 20 s → 230 s;
    // the last reading of [280, 310) is firing again: cleared at 310 s.
    let draft = with(&lockout_rule(), json!({"for": "20s"}));
    let (status, _, answer) = app
        .post_preview(json!({"rule": draft, "start": start, "end": end}))
        .await;
    assert_eq!(status, StatusCode::OK, "{answer}");
    assert_eq!(answer["sensors"], 1);
    assert_eq!(
        answer["alerts"],
        json!([{
            "site": "boiler-house-1", "sensor": "b1_sequencer",
            "opened_at": start + 230_000, "value": "lockout",
            "message": "last over 30s = lockout, == \"lockout\" for 20s",
            "cleared_at": start + 310_000,
            "cleared_message": "last over 30s = firing, no longer == \"lockout\"",
        }])
    );
    // A saved rule previews the same.
    let saved = app.create_rule(draft).await;
    let (status, _, answer) = app
        .post_preview(json!({"rule_id": saved.id.to_string(), "start": start, "end": end}))
        .await;
    assert_eq!(status, StatusCode::OK, "{answer}");
    assert_eq!(answer["alerts"][0]["value"], "lockout");
    // A draft that misfits its sensor is refused as creating it is.
    let (status, _, problem) = app
        .post_preview(
            json!({"rule": with(&lockout_rule(), json!({"threshold": true})),
                             "start": start, "end": end}),
        )
        .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{problem}");
    assert_eq!(field_errors(&problem), ["rule.threshold"]);
}
