//! Alerts: listed, read with their trail, acknowledged and resolved in
//! the name of the key, with notifications; every alert route checks its key.

use crate::helpers::*;
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use stoker_analytics::notify::NotifyOptions;
use stoker_domain::EpochMillis;
use stoker_metadata::Actor;
use stoker_metadata::Scope;
use uuid::Uuid;

pub(crate) const NIL: &str = "00000000-0000-0000-0000-000000000000";

/// Sends a request with `key` (none: no Authorization header).
async fn send_as(
    app: &TestApp,
    key: Option<&str>,
    method: Method,
    path: &str,
    body: Option<Value>,
) -> (StatusCode, Value) {
    let mut request = reqwest::Client::new().request(method, format!("{}{path}", app.base));
    if let Some(key) = key {
        request = request.bearer_auth(key);
    }
    if let Some(body) = body {
        request = request.json(&body);
    }
    let response = request.send().await.unwrap();
    let status = response.status();
    (status, response.json().await.unwrap_or(Value::Null))
}

/// The ids of every alert a list query gives, walking its pages.
async fn listed(app: &TestApp, query: &str) -> Vec<String> {
    let mut ids = Vec::new();
    let mut path = format!("/api/v1/alerts?{query}");
    loop {
        let (status, _, page) = app.get_with_headers(&path).await;
        assert_eq!(status, StatusCode::OK, "{query}: {page}");
        ids.extend(
            page["items"]
                .as_array()
                .unwrap()
                .iter()
                .map(|alert| alert["id"].as_str().unwrap().to_owned()),
        );
        match page["next_cursor"].as_str() {
            Some(cursor) => path = format!("/api/v1/alerts?{query}&cursor={cursor}"),
            None => return ids,
        }
    }
}

#[tokio::test]
async fn alerts_are_listed_newest_first_filtered_and_in_pages() {
    let app = spawn_seeded_app().await;
    app.seed_second_site().await;
    let pressure = app.create_rule(threshold_rule()).await;
    let silent = app.create_rule(silent_flue_rule()).await;
    let t0 = EpochMillis::now().as_millis() - 3_600_000;
    let a1 = app
        .open_alert(&pressure, "boiler-house-1", "b1_steam_pressure", t0)
        .await;
    let b1 = app
        .open_alert(&silent, "boiler-house-1", "b1_flue_temp", t0 + 1_000)
        .await;
    let b2 = app
        .open_alert(&silent, "b-2", "b2_flue_temp", t0 + 2_000)
        .await;
    let (status, resolved) = app.change_alert(&a1, "resolve").await;
    assert_eq!(status, StatusCode::OK, "{resolved}");
    assert_eq!(resolved["resolved_by"], "tests", "the admin key's name");
    // Resolved, so the rule may open another alert for the same sensor.
    let a2 = app
        .open_alert(&pressure, "boiler-house-1", "b1_steam_pressure", t0 + 3_000)
        .await;
    let (status, _) = app.change_alert(&b1, "ack").await;
    assert_eq!(status, StatusCode::OK);

    let (status, _, page) = app.get_with_headers("/api/v1/alerts").await;
    assert_eq!(status, StatusCode::OK);
    let first = &page["items"][0];
    for field in [
        "id",
        "rule_id",
        "site",
        "sensor",
        "severity",
        "state",
        "opened_at",
        "acknowledged_at",
        "resolved_at",
        "value",
        "message",
    ] {
        assert!(first.get(field).is_some(), "{field} missing: {first}");
    }
    assert_eq!(first["id"], a2.as_str());
    assert_eq!(first["rule_id"], pressure.id.to_string());
    assert_eq!(
        (first["state"].as_str(), first["severity"].as_str()),
        (Some("unacknowledged"), Some("warning"))
    );
    assert_eq!(
        EpochMillis::parse_rfc3339(first["opened_at"].as_str().unwrap()).unwrap(),
        EpochMillis::from_millis(t0 + 3_000).unwrap()
    );
    assert_eq!(first["value"], 13.2);
    assert!(first["acknowledged_at"].is_null() && first["resolved_at"].is_null());

    let pressure_id = pressure.id.to_string();
    let silent_id = silent.id.to_string();
    for (query, expected) in [
        ("limit=3".to_owned(), vec![&a2, &b2, &b1, &a1]),
        ("limit=1&state=open".to_owned(), vec![&a2, &b2, &b1]),
        ("state=firing".to_owned(), vec![&a2, &b2]),
        ("state=acknowledged".to_owned(), vec![&b1]),
        ("state=resolved".to_owned(), vec![&a1]),
        ("site=b-2".to_owned(), vec![&b2]),
        ("sensor=b1_steam_pressure".to_owned(), vec![&a2, &a1]),
        (format!("rule={silent_id}"), vec![&b2, &b1]),
        ("state=open&site=boiler-house-1".to_owned(), vec![&a2, &b1]),
        (format!("sensor=b1_flue_temp&rule={pressure_id}"), vec![]),
        ("site=nowhere".to_owned(), vec![]),
    ] {
        let expected: Vec<String> = expected.into_iter().cloned().collect();
        assert_eq!(listed(&app, &query).await, expected, "{query}");
    }
    // Two pages of three: the second holds the last alert and ends the list.
    let (_, _, page) = app.get_with_headers("/api/v1/alerts?limit=3").await;
    assert_eq!(page["items"].as_array().unwrap().len(), 3);
    let cursor = page["next_cursor"].as_str().unwrap();
    let (_, _, last) = app
        .get_with_headers(&format!("/api/v1/alerts?limit=3&cursor={cursor}"))
        .await;
    assert_eq!(last["items"][0]["id"], a1.as_str());
    assert_eq!(last["items"][0]["state"], "closed");
    assert!(last["next_cursor"].is_null());

    // Bad parameters: 400 invalid_parameter, naming the parameter.
    for (query, parameter) in [
        ("state=shut", "state"),
        ("site=Boiler%20House", "site"),
        ("sensor=b1%20flue", "sensor"),
        ("rule=7", "rule"),
        ("limit=0", "limit"),
        ("cursor=zz", "cursor"),
        // Hex, so a cursor in form, but not one the store made.
        ("cursor=67617262616765", "cursor"),
        ("colour=red", "query"),
    ] {
        let (status, _, problem) = app
            .get_with_headers(&format!("/api/v1/alerts?{query}"))
            .await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{query}: {problem}");
        assert_eq!(problem["code"], "invalid_parameter", "{query}");
        assert_eq!(problem["errors"][0]["field"], parameter, "{query}");
    }
    let (_, _, problem) = app.get_with_headers("/api/v1/alerts?state=shut").await;
    assert!(
        problem["detail"]
            .as_str()
            .unwrap()
            .contains("open, firing, acknowledged, resolved"),
        "{problem}"
    );
}

#[tokio::test]
async fn alerts_are_acknowledged_and_resolved_in_the_name_of_the_key_with_notifications() {
    #[derive(clap::Parser)]
    struct Settings {
        #[command(flatten)]
        notify: NotifyOptions,
    }
    let settings = <Settings as clap::Parser>::parse_from([
        "test",
        "--alert-webhooks",
        "http://127.0.0.1:9/hook",
        "--alert-webhook-secret",
        "s3cret",
        "--alert-mqtt-topic-prefix",
        "plant-a/",
    ]);
    let app = spawn_app_with(AppOptions {
        notify: settings.notify,
        ..AppOptions::default()
    })
    .await;
    app.seed().await;
    let (_, operator) =
        stoker_metadata::create_api_key(&app.pool, &Actor::Cli, "operator-anna", &[Scope::Write])
            .await
            .unwrap();
    let operator = operator.expose().to_owned();
    let pressure = app.create_rule(threshold_rule()).await;
    let id = app.open_pressure_alert(&pressure).await;
    let path = format!("/api/v1/alerts/{id}");

    // The dashboard is cached with the alert firing.
    let dashboard = "/api/v1/sites/boiler-house-1/dashboard";
    let (_, headers, board) = app.get_with_headers(dashboard).await;
    assert_eq!(headers["x-cache"], "miss");
    assert_eq!(board["open_alerts"][0]["state"], "unacknowledged");
    let (_, headers, _) = app.get_with_headers(dashboard).await;
    assert_eq!(headers["x-cache"], "hit");

    let (status, _, alert) = app.get_with_headers(&path).await;
    assert_eq!(status, StatusCode::OK, "{alert}");
    assert_eq!(alert["state"], "unacknowledged");
    let events = alert["events"].as_array().unwrap();
    assert_eq!(events.len(), 1);
    assert_eq!(
        (
            events[0]["transition"].as_str(),
            events[0]["actor"].as_str()
        ),
        (Some("fired"), Some("analytics"))
    );

    // Acknowledge, then again: 409 with analytics' message.
    let ack = format!("{path}/ack");
    let (status, acknowledged) = send_as(&app, Some(&operator), Method::POST, &ack, None).await;
    assert_eq!(status, StatusCode::OK, "{acknowledged}");
    assert_eq!(acknowledged["state"], "acknowledged");
    assert_eq!(acknowledged["acknowledged_by"], "operator-anna");
    assert!(acknowledged["acknowledged_at"].is_string());
    assert!(acknowledged["resolved_at"].is_null());
    let (status, problem) = send_as(&app, Some(&operator), Method::POST, &ack, None).await;
    assert_eq!(status, StatusCode::CONFLICT);
    assert_eq!(problem["code"], "invalid_transition");
    assert_eq!(
        problem["detail"],
        format!("alert {id} is acknowledged: it cannot be acknowledged")
    );

    // The transition dropped the cached dashboard.
    let (_, headers, board) = app.get_with_headers(dashboard).await;
    assert_eq!(headers["x-cache"], "miss");
    assert_eq!(board["open_alerts"][0]["state"], "acknowledged");
    assert_eq!(board["sensors"][1]["status"], "alerting", "{board}");

    // Resolve, then again; acknowledging a resolved alert is refused too.
    let resolve = format!("{path}/resolve");
    let (status, resolved) = send_as(&app, Some(&operator), Method::POST, &resolve, None).await;
    assert_eq!(status, StatusCode::OK, "{resolved}");
    assert_eq!(
        (resolved["state"].as_str(), resolved["resolved_by"].as_str()),
        (Some("closed"), Some("operator-anna"))
    );
    assert!(resolved["resolved_at"].is_string());
    for (route, action) in [(&resolve, "resolved"), (&ack, "acknowledged")] {
        let (status, problem) = send_as(&app, Some(&operator), Method::POST, route, None).await;
        assert_eq!(status, StatusCode::CONFLICT, "{route}");
        assert_eq!(problem["code"], "invalid_transition");
        assert_eq!(
            problem["detail"],
            format!("alert {id} is closed: it cannot be {action}")
        );
    }

    // The trail: who did what, oldest first.
    let (_, _, alert) = app.get_with_headers(&path).await;
    let trail = strings(&alert["events"], ["transition", "actor", "detail"]);
    assert_eq!(
        trail,
        [
            [
                "fired",
                "analytics",
                "mean over 1m = 13.2 bar, > 12.5 for 30s"
            ],
            [
                "acknowledged",
                "operator-anna",
                "acknowledged by operator-anna"
            ],
            ["resolved", "operator-anna", "resolved by operator-anna"],
        ]
    );
    assert_eq!(alert["version"], 3);

    // Each transition queued its notifications with the API's settings:
    // the MQTT topic and the webhook, with the alert after the change.
    let client = app.pool.get().await.unwrap();
    let rows = client
        .query(
            "SELECT e.transition, n.channel, n.target, n.body
             FROM analytics.notifications n JOIN analytics.alert_events e ON e.id = n.event_id
             WHERE e.alert_id = $1 ORDER BY n.id",
            &[&Uuid::parse_str(&id).unwrap()],
        )
        .await
        .unwrap();
    let queued: Vec<(String, String, String)> = rows
        .iter()
        .map(|row| (row.get(0), row.get(1), row.get(2)))
        .collect();
    let topic = "plant-a/alerts/boiler-house-1".to_owned();
    let hook = "http://127.0.0.1:9/hook".to_owned();
    assert_eq!(
        queued,
        [
            ("acknowledged".to_owned(), "mqtt".to_owned(), topic.clone()),
            (
                "acknowledged".to_owned(),
                "webhook".to_owned(),
                hook.clone()
            ),
            ("resolved".to_owned(), "mqtt".to_owned(), topic),
            ("resolved".to_owned(), "webhook".to_owned(), hook),
        ]
    );
    let body: Value = serde_json::from_str(rows[0].get::<_, &str>(3)).unwrap();
    assert_eq!(body["alert"]["acknowledged_by"], "operator-anna", "{body}");
    assert_eq!(body["event"]["transition"], "acknowledged");

    // No such alert: 404 not_found, for a UUID and for anything else.
    for (method, route) in [
        (Method::GET, format!("/api/v1/alerts/{NIL}")),
        (Method::GET, "/api/v1/alerts/not-an-id".to_owned()),
        (Method::POST, format!("/api/v1/alerts/{NIL}/ack")),
        (Method::POST, "/api/v1/alerts/42/ack".to_owned()),
        (Method::POST, format!("/api/v1/alerts/{NIL}/resolve")),
        (
            Method::POST,
            "/api/v1/alerts/x'%20OR%201=1/resolve".to_owned(),
        ),
    ] {
        let (status, _, problem) = app.send(method.clone(), &route, None, &[]).await;
        assert_eq!(status, StatusCode::NOT_FOUND, "{method} {route}: {problem}");
        assert_eq!(problem["code"], "not_found", "{method} {route}");
    }
}

#[tokio::test]
async fn every_alert_route_checks_its_key() {
    let app = spawn_seeded_app().await;
    let (_, reader) =
        stoker_metadata::create_api_key(&app.pool, &Actor::Cli, "dashboard", &[Scope::Read])
            .await
            .unwrap();
    let (_, writer) =
        stoker_metadata::create_api_key(&app.pool, &Actor::Cli, "operator", &[Scope::Write])
            .await
            .unwrap();
    let (reader, writer) = (reader.expose().to_owned(), writer.expose().to_owned());
    let pressure = app.create_rule(threshold_rule()).await;
    let id = app.open_pressure_alert(&pressure).await;
    let preview = json!({"rule_id": pressure.id.to_string(), "start": 0, "end": 600_000});
    // (method, path, body, the key that may, the key that may not)
    let routes = [
        (
            Method::GET,
            "/api/v1/alerts".to_owned(),
            None,
            &reader,
            &writer,
        ),
        (
            Method::GET,
            format!("/api/v1/alerts/{id}"),
            None,
            &reader,
            &writer,
        ),
        (
            Method::POST,
            "/api/v1/alert-rules/preview".to_owned(),
            Some(preview),
            &reader,
            &writer,
        ),
        (
            Method::POST,
            format!("/api/v1/alerts/{id}/ack"),
            None,
            &writer,
            &reader,
        ),
        (
            Method::POST,
            format!("/api/v1/alerts/{id}/resolve"),
            None,
            &writer,
            &reader,
        ),
    ];
    for (method, path, body, allowed, refused) in routes {
        let (status, problem) = send_as(&app, None, method.clone(), &path, body.clone()).await;
        assert_eq!(status, StatusCode::UNAUTHORIZED, "{method} {path}");
        assert_eq!(problem["code"], "missing_api_key");
        let (status, problem) =
            send_as(&app, Some(refused), method.clone(), &path, body.clone()).await;
        assert_eq!(status, StatusCode::FORBIDDEN, "{method} {path}: {problem}");
        assert_eq!(problem["code"], "insufficient_scope");
        let (status, answer) = send_as(&app, Some(allowed), method.clone(), &path, body).await;
        assert_eq!(status, StatusCode::OK, "{method} {path}: {answer}");
    }
    // Refused requests changed nothing: one acknowledgement, one resolution.
    let (_, _, alert) = app.get_with_headers(&format!("/api/v1/alerts/{id}")).await;
    assert_eq!(alert["events"].as_array().unwrap().len(), 3, "{alert}");
    assert_eq!(alert["acknowledged_by"], "operator");
}
