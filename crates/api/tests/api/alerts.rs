//! Alerts (listed, read with their trail, acknowledged, resolved), the
//! dashboard's open alerts, and rule previews over readings in InfluxDB.

use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use stoker_analytics::notify::NotifyOptions;
use stoker_analytics::store::{self, NoOutbox, Verdict};
use stoker_domain::{EpochMillis, SensorKey, SensorType, SiteSlug};
use stoker_metadata::Scope;
use stoker_rules::AlertRule;
use stoker_timeseries::LineBatch;
use uuid::Uuid;

use super::{AppOptions, TestApp, spawn_app, spawn_app_with, threshold_rule};

const NIL: &str = "00000000-0000-0000-0000-000000000000";

/// Creates a rule through the API; returns it as stored.
async fn create_rule(app: &TestApp, body: Value) -> AlertRule {
    let (status, _, rule) = app
        .send(Method::POST, "/api/v1/alert-rules", Some(body), &[])
        .await;
    assert_eq!(status, StatusCode::CREATED, "{rule}");
    let id = Uuid::parse_str(rule["id"].as_str().unwrap()).unwrap();
    stoker_metadata::get_alert_rule(&app.pool, id)
        .await
        .unwrap()
}

/// Opens an alert as the evaluation loop does, at `at` (epoch ms); its
/// own notification is not queued, so that those a test counts are the
/// API's.
async fn open(app: &TestApp, rule: &AlertRule, site: &str, sensor: &str, at: i64) -> String {
    let site = SiteSlug::parse(site).unwrap();
    let sensor = SensorKey::parse(sensor).unwrap();
    let verdict = Verdict {
        rule,
        site: &site,
        sensor: &sensor,
        at: EpochMillis::from_millis(at).unwrap(),
        value: Some(13.2),
        message: "mean over 1m = 13.2 bar, > 12.5 for 30s".into(),
    };
    let alert = store::open_alert(&app.pool, &NoOutbox, &verdict)
        .await
        .unwrap()
        .expect("no alert of this rule and sensor is open");
    alert.id.to_string()
}

/// Opens an alert of `rule` on boiler-house-1's steam pressure, a minute ago.
async fn open_pressure_alert(app: &TestApp, rule: &AlertRule) -> String {
    let at = EpochMillis::now().as_millis() - 60_000;
    open(app, rule, "boiler-house-1", "b1_steam_pressure", at).await
}

/// Acknowledges (`ack`) or resolves (`resolve`) an alert with the admin
/// key (named `tests`).
async fn change(app: &TestApp, id: &str, action: &str) -> (StatusCode, Value) {
    let path = format!("/api/v1/alerts/{id}/{action}");
    let (status, _, alert) = app.send(Method::POST, &path, None, &[]).await;
    (status, alert)
}

/// The string fields `names` of each object of an array.
fn strings<'a, const N: usize>(items: &'a Value, names: [&str; N]) -> Vec<[&'a str; N]> {
    items
        .as_array()
        .unwrap()
        .iter()
        .map(|item| names.map(|name| item[name].as_str().unwrap()))
        .collect()
}

/// A second site with one temperature sensor.
async fn seed_second_site(app: &TestApp) {
    let (status, _, body) = app
        .send(
            Method::POST,
            "/api/v1/sites",
            Some(json!({"slug": "b-2", "name": "Boiler house 2"})),
            &[],
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    let (status, _, body) = app
        .send(
            Method::POST,
            "/api/v1/sites/b-2/sensors",
            Some(json!({"key": "b2_flue_temp", "type": "temperature", "unit": "°C"})),
            &[],
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
}

fn silent_flue_rule() -> Value {
    json!({"name": "Flue gas silent", "kind": "no_data", "sensor_type": "temperature",
           "timeout": "5m", "severity": "critical"})
}

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
        let (status, _, page) = app.send(Method::GET, &path, None, &[]).await;
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
    let app = spawn_app().await;
    app.seed().await;
    seed_second_site(&app).await;
    let pressure = create_rule(&app, threshold_rule()).await;
    let silent = create_rule(&app, silent_flue_rule()).await;
    let t0 = EpochMillis::now().as_millis() - 3_600_000;
    let a1 = open(&app, &pressure, "boiler-house-1", "b1_steam_pressure", t0).await;
    let b1 = open(&app, &silent, "boiler-house-1", "b1_flue_temp", t0 + 1_000).await;
    let b2 = open(&app, &silent, "b-2", "b2_flue_temp", t0 + 2_000).await;
    let (status, resolved) = change(&app, &a1, "resolve").await;
    assert_eq!(status, StatusCode::OK, "{resolved}");
    assert_eq!(resolved["resolved_by"], "tests", "the admin key's name");
    // Resolved, so the rule may open another alert for the same sensor.
    let a2 = open(
        &app,
        &pressure,
        "boiler-house-1",
        "b1_steam_pressure",
        t0 + 3_000,
    )
    .await;
    let (status, _) = change(&app, &b1, "ack").await;
    assert_eq!(status, StatusCode::OK);

    let (status, _, page) = app.send(Method::GET, "/api/v1/alerts", None, &[]).await;
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
        (Some("firing"), Some("warning"))
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
    let (_, _, page) = app
        .send(Method::GET, "/api/v1/alerts?limit=3", None, &[])
        .await;
    assert_eq!(page["items"].as_array().unwrap().len(), 3);
    let cursor = page["next_cursor"].as_str().unwrap();
    let (_, _, last) = app
        .send(
            Method::GET,
            &format!("/api/v1/alerts?limit=3&cursor={cursor}"),
            None,
            &[],
        )
        .await;
    assert_eq!(last["items"][0]["id"], a1.as_str());
    assert_eq!(last["items"][0]["state"], "resolved");
    assert!(last["next_cursor"].is_null());

    // Bad parameters: 400 invalid_parameter, naming the parameter.
    for (query, parameter) in [
        ("state=closed", "state"),
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
            .send(Method::GET, &format!("/api/v1/alerts?{query}"), None, &[])
            .await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{query}: {problem}");
        assert_eq!(problem["code"], "invalid_parameter", "{query}");
        assert_eq!(problem["errors"][0]["field"], parameter, "{query}");
    }
    let (_, _, problem) = app
        .send(Method::GET, "/api/v1/alerts?state=closed", None, &[])
        .await;
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
        stoker_metadata::create_api_key(&app.pool, "operator-anna", &[Scope::Write])
            .await
            .unwrap();
    let operator = operator.expose().to_owned();
    let pressure = create_rule(&app, threshold_rule()).await;
    let id = open_pressure_alert(&app, &pressure).await;
    let path = format!("/api/v1/alerts/{id}");

    // The dashboard is cached with the alert firing.
    let dashboard = "/api/v1/sites/boiler-house-1/dashboard";
    let (_, headers, board) = app.send(Method::GET, dashboard, None, &[]).await;
    assert_eq!(headers["x-cache"], "miss");
    assert_eq!(board["open_alerts"][0]["state"], "firing");
    let (_, headers, _) = app.send(Method::GET, dashboard, None, &[]).await;
    assert_eq!(headers["x-cache"], "hit");

    let (status, _, alert) = app.send(Method::GET, &path, None, &[]).await;
    assert_eq!(status, StatusCode::OK, "{alert}");
    assert_eq!(alert["state"], "firing");
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
    let (_, headers, board) = app.send(Method::GET, dashboard, None, &[]).await;
    assert_eq!(headers["x-cache"], "miss");
    assert_eq!(board["open_alerts"][0]["state"], "acknowledged");
    assert_eq!(board["sensors"][1]["status"], "alerting", "{board}");

    // Resolve, then again; acknowledging a resolved alert is refused too.
    let resolve = format!("{path}/resolve");
    let (status, resolved) = send_as(&app, Some(&operator), Method::POST, &resolve, None).await;
    assert_eq!(status, StatusCode::OK, "{resolved}");
    assert_eq!(
        (resolved["state"].as_str(), resolved["resolved_by"].as_str()),
        (Some("resolved"), Some("operator-anna"))
    );
    assert!(resolved["resolved_at"].is_string());
    for (route, action) in [(&resolve, "resolved"), (&ack, "acknowledged")] {
        let (status, problem) = send_as(&app, Some(&operator), Method::POST, route, None).await;
        assert_eq!(status, StatusCode::CONFLICT, "{route}");
        assert_eq!(problem["code"], "invalid_transition");
        assert_eq!(
            problem["detail"],
            format!("alert {id} is resolved: it cannot be {action}")
        );
    }

    // The trail: who did what, oldest first.
    let (_, _, alert) = app.send(Method::GET, &path, None, &[]).await;
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
    let app = spawn_app().await;
    app.seed().await;
    let (_, reader) = stoker_metadata::create_api_key(&app.pool, "dashboard", &[Scope::Read])
        .await
        .unwrap();
    let (_, writer) = stoker_metadata::create_api_key(&app.pool, "operator", &[Scope::Write])
        .await
        .unwrap();
    let (reader, writer) = (reader.expose().to_owned(), writer.expose().to_owned());
    let pressure = create_rule(&app, threshold_rule()).await;
    let id = open_pressure_alert(&app, &pressure).await;
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
    let (_, _, alert) = app
        .send(Method::GET, &format!("/api/v1/alerts/{id}"), None, &[])
        .await;
    assert_eq!(alert["events"].as_array().unwrap().len(), 3, "{alert}");
    assert_eq!(alert["acknowledged_by"], "operator");
}

#[tokio::test]
async fn the_dashboard_shows_open_alerts_and_their_sensors_as_alerting() {
    let app = spawn_app().await;
    app.seed().await;
    seed_second_site(&app).await;
    for (site, body) in [
        (
            "boiler-house-1",
            json!({"b1_steam_pressure": 10.5, "b1_flue_temp": 180.0}),
        ),
        ("b-2", json!({"b2_flue_temp": 175.0})),
    ] {
        let (status, _, answer) = app
            .send(
                Method::POST,
                &format!("/api/v1/sites/{site}/telemetry"),
                Some(body),
                &[],
            )
            .await;
        assert_eq!(status, StatusCode::OK, "{answer}");
    }
    let pressure = create_rule(&app, threshold_rule()).await;
    let silent = create_rule(&app, silent_flue_rule()).await;
    let at = EpochMillis::now().as_millis() - 60_000;
    let id = open(&app, &pressure, "boiler-house-1", "b1_steam_pressure", at).await;
    // Another site's alert is not this site's.
    open(&app, &silent, "b-2", "b2_flue_temp", at).await;

    let path = "/api/v1/sites/boiler-house-1/dashboard";
    let (status, _, board) = app.send(Method::GET, path, None, &[]).await;
    assert_eq!(status, StatusCode::OK, "{board}");
    assert_eq!(
        board["counts"],
        json!({"ok": 1, "stale": 0, "out_of_range": 0, "alerting": 1})
    );
    let statuses = strings(&board["sensors"], ["sensor", "status"]);
    assert_eq!(
        statuses,
        [["b1_flue_temp", "ok"], ["b1_steam_pressure", "alerting"]]
    );
    let open_alerts = board["open_alerts"].as_array().unwrap();
    assert_eq!(open_alerts.len(), 1, "{board}");
    assert_eq!(open_alerts[0]["id"], id.as_str());
    assert_eq!(open_alerts[0]["sensor"], "b1_steam_pressure");
    assert_eq!(open_alerts[0]["rule_name"], "Steam pressure high");

    // Resolved: the cached dashboard goes, and the sensor is ok again.
    let (status, _) = change(&app, &id, "resolve").await;
    assert_eq!(status, StatusCode::OK);
    let (_, headers, board) = app.send(Method::GET, path, None, &[]).await;
    assert_eq!(headers["x-cache"], "miss");
    assert_eq!(
        board["counts"],
        json!({"ok": 2, "stale": 0, "out_of_range": 0, "alerting": 0})
    );
    assert_eq!(board["open_alerts"], json!([]));
}

/// Ten minutes of steam pressure, one reading per 10 s from `start`:
/// 10 bar, but 13 bar from 200 s to 290 s.
async fn write_pressure_episode(app: &TestApp, start: i64) {
    let site = SiteSlug::parse("boiler-house-1").unwrap();
    let sensor = SensorKey::parse("b1_steam_pressure").unwrap();
    let kind = SensorType::parse("pressure").unwrap();
    let mut batch = LineBatch::default();
    for index in 0..60 {
        let value = if (20..30).contains(&index) {
            13.0
        } else {
            10.0
        };
        let at = EpochMillis::from_millis(start + index * 10_000).unwrap();
        batch.push(&site, &sensor, &kind, value, at);
    }
    app.influx.influx().write(&batch).await.unwrap();
}

/// Sends a preview; returns the status, `x-cache` and the body.
async fn preview(app: &TestApp, body: Value) -> (StatusCode, String, Value) {
    let (status, headers, answer) = app
        .send(Method::POST, "/api/v1/alert-rules/preview", Some(body), &[])
        .await;
    let cache = headers
        .get("x-cache")
        .map(|value| value.to_str().unwrap().to_owned())
        .unwrap_or_default();
    (status, cache, answer)
}

#[tokio::test]
async fn previews_replay_saved_and_draft_rules_over_stored_readings() {
    let app = spawn_app().await;
    app.seed().await;
    // The readings are from two hours ago: the sensors must be older, or a
    // no-data rule would not judge them then.
    app.pool
        .get()
        .await
        .unwrap()
        .batch_execute("UPDATE metadata.sensors SET created_at = now() - interval '1 day'")
        .await
        .unwrap();
    // Two hours ago, on a 10-minute boundary.
    let start = (EpochMillis::now().as_millis() / 600_000 - 12) * 600_000;
    let end = start + 600_000;
    write_pressure_episode(&app, start).await;

    // DESIGN.md's rule: the 1-minute mean is above 12.5 from 260 s (six
    // readings of 13), for 30 s at 290 s; at 320 s it is 12.0, no longer
    // above 12.0.
    let saved = create_rule(&app, threshold_rule()).await;
    let request = json!({"rule_id": saved.id.to_string(), "start": start, "end": end});
    let (status, cache, answer) = preview(&app, request.clone()).await;
    assert_eq!(status, StatusCode::OK, "{answer}");
    assert_eq!(cache, "miss");
    assert_eq!(answer["rule"]["id"], saved.id.to_string());
    assert_eq!(answer["rule"]["version"], 1);
    assert_eq!(
        answer["start"],
        EpochMillis::from_millis(start).unwrap().to_string()
    );
    assert_eq!(
        answer["end"],
        EpochMillis::from_millis(end).unwrap().to_string()
    );
    assert_eq!(answer["interval"], "10s");
    assert_eq!(answer["sensors"], 1);
    assert_eq!(
        answer["alerts"],
        json!([{
            "site": "boiler-house-1",
            "sensor": "b1_steam_pressure",
            "opened_at": start + 290_000,
            "value": 13.0,
            "message": "mean over 1m = 13 bar, > 12.5 for 30s",
            "cleared_at": start + 320_000,
            "cleared_message": "mean over 1m = 12 bar, no longer > 12",
        }])
    );
    // The range is past: the same request is answered from Redis.
    let (status, cache, again) = preview(&app, request.clone()).await;
    assert_eq!((status, cache.as_str()), (StatusCode::OK, "hit"));
    assert_eq!(again, answer);
    // A changed rule is another request.
    let (status, _, _) = app
        .send(
            Method::PATCH,
            &format!("/api/v1/alert-rules/{}", saved.id),
            Some(json!({"threshold": 20.0, "clear_threshold": 19.0, "version": 1})),
            &[],
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    let (status, cache, changed) = preview(&app, request).await;
    assert_eq!((status, cache.as_str()), (StatusCode::OK, "miss"));
    assert_eq!(changed["rule"]["version"], 2);
    assert_eq!(changed["alerts"], json!([]));

    // A draft: the last reading above 12.5 from 210 s, for 20 s at 230 s;
    // at 310 s the last reading is 10. Times as RFC 3339, every 10 s.
    let draft = json!({"name": "Last pressure high", "kind": "threshold",
                       "sensor": "b1_steam_pressure", "agg": "last", "op": ">",
                       "threshold": 12.5, "clear_threshold": 12.0, "window": "10s",
                       "for": "20s", "severity": "critical"});
    let (status, _, answer) = preview(
        &app,
        json!({"rule": draft, "interval": "10s",
               "start": EpochMillis::from_millis(start).unwrap().to_string(),
               "end": EpochMillis::from_millis(end).unwrap().to_string()}),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{answer}");
    assert_eq!(answer["rule"]["name"], "Last pressure high");
    assert!(answer["rule"].get("id").is_none(), "{answer}");
    assert_eq!(answer["sensors"], 1);
    assert_eq!(
        answer["alerts"],
        json!([{
            "site": "boiler-house-1",
            "sensor": "b1_steam_pressure",
            "opened_at": start + 230_000,
            "value": 13.0,
            "message": "last over 10s = 13 bar, > 12.5 for 20s",
            "cleared_at": start + 310_000,
            "cleared_message": "last over 10s = 10 bar, no longer > 12",
        }])
    );

    // A silent sensor: no data from the first tick, still firing at the end.
    let (status, _, answer) = preview(
        &app,
        json!({"rule": {"name": "Flue silent", "kind": "no_data", "site": "boiler-house-1",
                        "sensor": "b1_flue_temp", "timeout": "1m", "severity": "info"},
               "start": start, "end": end, "interval": "1m"}),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{answer}");
    assert_eq!(
        answer["alerts"],
        json!([{
            "site": "boiler-house-1",
            "sensor": "b1_flue_temp",
            "opened_at": start,
            "value": null,
            "message": "no reading for 1m",
            "cleared_at": null,
            "cleared_message": null,
        }])
    );

    // A range ending now is not cached; a draft selecting nothing raises
    // nothing.
    let (status, cache, answer) = preview(
        &app,
        json!({"rule": {"name": "Elsewhere", "kind": "no_data", "site": "boiler-house-1",
                        "sensor_type": "level", "timeout": "1m", "severity": "info"}}),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{answer}");
    assert_eq!(cache, "bypass");
    assert_eq!(answer["sensors"], 0);
    assert_eq!(answer["alerts"], json!([]));
}

#[tokio::test]
async fn previews_refuse_bad_requests_precisely() {
    let app = spawn_app().await;
    app.seed().await;
    let saved = create_rule(&app, threshold_rule()).await;
    let rule_id = saved.id.to_string();
    let end = (EpochMillis::now().as_millis() / 600_000 - 6) * 600_000;
    let day = 86_400_000_i64;

    // Body fields: 422 validation_failed, a draft's fields named rule.<field>.
    let mut bad_draft = threshold_rule();
    bad_draft["op"] = json!("==");
    for (body, fields) in [
        (json!({}), vec!["rule"]),
        (
            json!({"rule_id": rule_id, "rule": threshold_rule()}),
            vec!["rule"],
        ),
        (json!({"rule_id": "seven"}), vec!["rule_id"]),
        (json!({"rule_id": rule_id, "colour": "red"}), vec!["colour"]),
        (json!({"rule": bad_draft}), vec!["rule.op"]),
        (
            json!({"rule": {"name": "x", "kind": "threshold", "threshold": "high", "colour": "red"}}),
            vec!["rule.colour", "rule.threshold"],
        ),
        (
            json!({"rule": {"name": "x", "kind": "threshold", "severity": "info"}}),
            vec!["rule.agg"],
        ),
    ] {
        let (status, _, problem) = preview(&app, body.clone()).await;
        assert_eq!(
            status,
            StatusCode::UNPROCESSABLE_ENTITY,
            "{body}: {problem}"
        );
        assert_eq!(problem["code"], "validation_failed");
        let named: Vec<&str> = problem["errors"]
            .as_array()
            .unwrap()
            .iter()
            .map(|error| error["field"].as_str().unwrap())
            .collect();
        assert_eq!(named, fields, "{body}: {problem}");
    }

    // The range and interval: 400 invalid_parameter.
    for (extra, parameter) in [
        (json!({"start": "yesterday"}), "start"),
        (json!({"start": end, "end": end}), "start"),
        (json!({"start": end, "end": end - 1}), "start"),
        (json!({"start": end - 32 * day, "end": end}), "start"),
        (json!({"end": {"at": 5}}), "end"),
        (json!({"interval": "1500ms"}), "interval"),
        (json!({"interval": "0s"}), "interval"),
    ] {
        let mut body = json!({"rule_id": rule_id});
        for (key, value) in extra.as_object().unwrap() {
            body[key] = value.clone();
        }
        let (status, _, problem) = preview(&app, body.clone()).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{body}: {problem}");
        assert_eq!(problem["code"], "invalid_parameter");
        assert_eq!(problem["errors"][0]["field"], parameter, "{body}");
    }

    // No such rule.
    let (status, _, problem) = preview(&app, json!({"rule_id": NIL})).await;
    assert_eq!(
        (status, problem["code"].as_str()),
        (StatusCode::NOT_FOUND, Some("not_found"))
    );

    // 31 days every second for both of the site's sensors is more than a
    // backtest reads.
    let mut wide = threshold_rule();
    wide.as_object_mut().unwrap().remove("sensor_type");
    let (status, _, problem) = preview(
        &app,
        json!({"rule": wide, "start": end - 31 * day, "end": end, "interval": "1s"}),
    )
    .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{problem}");
    assert_eq!(problem["code"], "backtest_too_large");
    assert!(
        problem["detail"]
            .as_str()
            .unwrap()
            .contains("at most 5000000"),
        "{problem}"
    );

    // Not JSON, or not an object.
    let (status, _, problem) = preview(&app, json!([1, 2])).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{problem}");
    assert_eq!(problem["code"], "malformed_json");
}

#[tokio::test]
async fn alerts_and_previews_need_no_redis() {
    // Nothing listens on port 1.
    let app = spawn_app_with(AppOptions {
        redis: Some(stoker_cache::RedisOptions {
            url: "redis://127.0.0.1:1".into(),
            key_prefix: String::new(),
        }),
        ..AppOptions::default()
    })
    .await;
    app.seed().await;
    let start = (EpochMillis::now().as_millis() / 600_000 - 12) * 600_000;
    write_pressure_episode(&app, start).await;
    let saved = create_rule(&app, threshold_rule()).await;
    let request = json!({"rule_id": saved.id.to_string(), "start": start, "end": start + 600_000});
    for _ in 0..2 {
        let (status, cache, answer) = preview(&app, request.clone()).await;
        assert_eq!(
            (status, cache.as_str()),
            (StatusCode::OK, "miss"),
            "{answer}"
        );
        assert_eq!(answer["alerts"][0]["opened_at"], start + 290_000);
    }
    let id = open_pressure_alert(&app, &saved).await;
    let (status, _, board) = app
        .send(
            Method::GET,
            "/api/v1/sites/boiler-house-1/dashboard",
            None,
            &[],
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{board}");
    assert_eq!(board["counts"]["alerting"], 1);
    for action in ["ack", "resolve"] {
        let (status, alert) = change(&app, &id, action).await;
        assert_eq!(status, StatusCode::OK, "{action}: {alert}");
    }
}
