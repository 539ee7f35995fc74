//! Alarm management over HTTP: the rule's alarm options, reset, shelve
//! and unshelve with their precise refusals, state filters old and new,
//! and the audit of every operator action.

use crate::helpers::*;
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use stoker_analytics::store::{self, NoOutbox, Verdict};
use stoker_domain::{EpochMillis, ReadingValue, SensorKey, SiteSlug};

async fn post(app: &TestApp, path: &str, body: Option<Value>) -> (StatusCode, Value) {
    let (status, _, answer) = app.send(Method::POST, path, body, &[]).await;
    (status, answer)
}

#[tokio::test]
async fn rules_carry_their_alarm_options_and_refuse_bad_ones() {
    let app = spawn_seeded_app().await;
    let mut body = threshold_rule();
    body.as_object_mut().unwrap().extend(
        json!({"latching": true, "max_shelve": "1h", "cause": "  Demand dropped  ",
               "consequence": "The safety valve lifts", "operator_action": "Reduce the load",
               "response_time": "10m"})
        .as_object()
        .unwrap()
        .clone(),
    );
    let (status, _, rule) = app.post_rule(body.clone()).await;
    assert_eq!(status, StatusCode::CREATED, "{rule}");
    assert_eq!(rule["latching"], true);
    assert_eq!(rule["max_shelve"], "1h");
    assert_eq!(rule["cause"], "Demand dropped", "trimmed");
    assert_eq!(rule["response_time"], "10m");
    // Defaults.
    let (_, _, plain) = app
        .post_rule(
            json!({"name": "Flue silent", "kind": "no_data", "sensor": "b1_flue_temp",
                          "timeout": "5m", "severity": "info"}),
        )
        .await;
    assert_eq!(plain["latching"], false);
    assert_eq!(plain["max_shelve"], "8h");
    assert!(plain["cause"].is_null() && plain["response_time"].is_null());
    // A PATCH clears a rationalization with null.
    let id = rule["id"].as_str().unwrap();
    let (status, _, patched) = app
        .patch(
            &format!("/api/v1/alert-rules/{id}"),
            json!({"version": 1, "cause": null, "latching": false}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{patched}");
    assert!(patched["cause"].is_null());
    assert_eq!(patched["latching"], false);
    assert_eq!(patched["operator_action"], "Reduce the load");

    for (field, value) in [
        ("max_shelve", json!("0s")),
        ("max_shelve", json!("8d")),
        ("cause", json!("")),
        ("cause", json!("x".repeat(2001))),
        ("operator_action", json!("bell\u{7}")),
        ("response_time", json!("soon")),
        ("latching", json!("yes")),
    ] {
        let mut bad = threshold_rule();
        bad["name"] = json!(format!("bad {field}"));
        bad[field] = value;
        let (status, _, problem) = app.post_rule(bad).await;
        assert_eq!(
            status,
            StatusCode::UNPROCESSABLE_ENTITY,
            "{field}: {problem}"
        );
        assert!(
            problem["errors"]
                .as_array()
                .is_some_and(|errors| errors.iter().any(|error| error["field"] == field))
                || problem["detail"].as_str().unwrap_or("").contains(field),
            "{field}: {problem}"
        );
    }
}

#[tokio::test]
async fn operators_reset_shelve_and_unshelve_with_precise_refusals() {
    let app = spawn_seeded_app().await;
    let mut body = threshold_rule();
    body["latching"] = json!(true);
    body["max_shelve"] = json!("1h");
    body["operator_action"] = json!("Reduce the burner load");
    let rule = app.create_rule(body).await;
    let id = app.open_pressure_alert(&rule).await;
    let path = format!("/api/v1/alerts/{id}");

    let (_, alert) = app.get(&path).await;
    assert_eq!(alert["state"], "unacknowledged");
    assert_eq!(alert["active"], true);
    assert_eq!(alert["operator_action"], "Reduce the burner load");
    assert!(alert["shelved_until"].is_null() && alert["latched_at"].is_null());

    // The condition still holds: no reset.
    let (status, problem) = post(&app, &format!("{path}/reset"), None).await;
    assert_eq!(status, StatusCode::CONFLICT, "{problem}");
    assert_eq!(problem["code"], "not_latched");

    // Shelving: bounded by the rule, with a reason.
    for (body, code, field) in [
        (
            json!({"for": "2h", "reason": "swap"}),
            "shelve_too_long",
            "for",
        ),
        (json!({"for": "30m"}), "validation_failed", "reason"),
        (
            json!({"for": "30m", "reason": "   "}),
            "validation_failed",
            "reason",
        ),
        (json!({"reason": "swap"}), "validation_failed", "for"),
        (
            json!({"for": "soon", "reason": "swap"}),
            "validation_failed",
            "for",
        ),
        (
            json!({"for": "0s", "reason": "swap"}),
            "validation_failed",
            "for",
        ),
        (
            json!({"for": "30m", "reason": "swap", "colour": "red"}),
            "validation_failed",
            "colour",
        ),
    ] {
        let (status, problem) = post(&app, &format!("{path}/shelve"), Some(body.clone())).await;
        assert_eq!(
            status,
            StatusCode::UNPROCESSABLE_ENTITY,
            "{body}: {problem}"
        );
        assert_eq!(problem["code"], code, "{body}: {problem}");
        assert_eq!(problem["errors"][0]["field"], field, "{body}: {problem}");
    }
    let (status, problem) = post(&app, &format!("{path}/unshelve"), None).await;
    assert_eq!(
        (status, problem["code"].as_str()),
        (StatusCode::CONFLICT, Some("not_shelved"))
    );

    let (status, shelved) = post(
        &app,
        &format!("{path}/shelve"),
        Some(json!({"for": "30m", "reason": "sensor swap"})),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{shelved}");
    assert_eq!(shelved["shelved_by"], "tests");
    assert_eq!(shelved["shelve_reason"], "sensor swap");
    let until = EpochMillis::parse_rfc3339(shelved["shelved_until"].as_str().unwrap()).unwrap();
    let expected = EpochMillis::now().as_millis() + 30 * 60_000;
    assert!((until.as_millis() - expected).abs() < 60_000, "{shelved}");
    let (status, unshelved) = post(&app, &format!("{path}/unshelve"), None).await;
    assert_eq!(status, StatusCode::OK, "{unshelved}");
    assert!(unshelved["shelved_until"].is_null());

    // The condition clears: latched, then reset by the operator.
    let rule_for = rule.clone();
    let (site, sensor) = (
        SiteSlug::parse("boiler-house-1").unwrap(),
        SensorKey::parse("b1_steam_pressure").unwrap(),
    );
    let clearing = Verdict {
        rule: &rule_for,
        site: &site,
        sensor: &sensor,
        at: EpochMillis::now(),
        value: Some(ReadingValue::Number(11.0)),
        message: "mean over 1m = 11 bar, no longer > 12".into(),
        explanation: None,
    };
    store::clear_alert(&app.pool, &NoOutbox, &clearing)
        .await
        .unwrap()
        .unwrap();
    let (_, latched) = app.get(&path).await;
    assert_eq!(
        (latched["active"].as_bool(), latched["state"].as_str()),
        (Some(true), Some("unacknowledged"))
    );
    assert!(latched["latched_at"].is_string());
    let (status, reset) = post(&app, &format!("{path}/reset"), None).await;
    assert_eq!(status, StatusCode::OK, "{reset}");
    assert_eq!(reset["state"], "cleared_unacknowledged");
    assert_eq!(reset["active"], false);
    assert_eq!(reset["resolved_by"], "tests");

    // Filters, new names and old.
    let listed = |query: &'static str| {
        let app = &app;
        async move {
            let (status, page) = app.get(&format!("/api/v1/alerts?{query}")).await;
            assert_eq!(status, StatusCode::OK, "{query}: {page}");
            page["items"].as_array().unwrap().len()
        }
    };
    assert_eq!(listed("state=cleared_unacknowledged").await, 1);
    assert_eq!(listed("state=open").await, 1);
    assert_eq!(listed("state=active").await, 0);
    assert_eq!(listed("state=firing").await, 0);
    assert_eq!(listed("state=unacknowledged").await, 0);

    // Acknowledging a cleared alert closes it.
    let (status, closed) = app.change_alert(&id, "ack").await;
    assert_eq!(status, StatusCode::OK, "{closed}");
    assert_eq!(closed["state"], "closed");
    assert_eq!(listed("state=closed").await, 1);
    assert_eq!(listed("state=resolved").await, 1);

    // The trail and the audit name the operator for every action.
    let (_, alert) = app.get(&path).await;
    let trail = strings(&alert["events"], ["transition", "actor"]);
    assert_eq!(
        trail,
        [
            ["fired", "analytics"],
            ["shelved", "tests"],
            ["unshelved", "tests"],
            ["latched", "analytics"],
            ["reset", "tests"],
            ["acknowledged", "tests"],
        ]
    );
    let (status, audit) = app.get("/api/v1/audit?entity=alert").await;
    assert_eq!(status, StatusCode::OK, "{audit}");
    let mut actions: Vec<(String, String)> = audit["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|event| {
            (
                event["action"].as_str().unwrap().to_owned(),
                event["actor"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    actions.reverse();
    let expected: Vec<(String, String)> = ["shelved", "unshelved", "reset", "acknowledged"]
        .into_iter()
        .map(|action| (action.to_owned(), "tests".to_owned()))
        .collect();
    assert_eq!(actions, expected);
}
