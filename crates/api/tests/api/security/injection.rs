//! Injection attempts in every path and query parameter: refused
//! precisely, and nothing changes.

use reqwest::header::HeaderValue;
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use stoker_domain::SiteSlug;
use stoker_metadata::Scope;

use super::*;

/// Values that mean something to SQL, InfluxQL, Redis or MQTT, or to a
/// URL parser, each sent percent-encoded whole.
fn hostile_values() -> Vec<String> {
    let mut values: Vec<String> = [
        "' OR 1=1--",
        "\"; DROP TABLE metadata.sites; --",
        "x\" OR \"a\"=\"a",
        "boiler-house-1' OR '1'='1",
        "1; SELECT pg_sleep(10)",
        "' OR time > 0 --",
        "/.*/",
        "\\",
        "\\\"",
        "boiler-house-1\" OR site =~ /.*/ --",
        "*",
        "latest:*",
        "boiler-house-1:*",
        "a\r\nFLUSHALL",
        "*\r\nDEL latest:boiler-house-1:b1_steam_pressure",
        "#",
        "+",
        "a/b",
        "$SYS",
        "$share/stoker/#",
        "sites/+/telemetry",
        "\0",
        "boiler-house-1\0",
        "BOILER-HOUSE-1",
        "boiler house 1",
        "é",
        "%",
        "${jndi:ldap://x}",
        "{{7*7}}",
        "99999999999999999999999.9",
        "NaN",
    ]
    .into_iter()
    .map(encode)
    .collect();
    values.push("x".repeat(300));
    // Already percent-encoded: an encoded slash, NULs, bytes that are not
    // UTF-8, an overlong dot, a double-encoded slash, a bidi override.
    for raw in [
        "%2F",
        "a%2Fb",
        "%00",
        "boiler-house-1%00",
        "%FF%FE",
        "%C0%AE%C0%AE",
        "%252F",
        "%E2%80%AE",
        "%0D%0A",
    ] {
        values.push(raw.to_owned());
    }
    values
}

/// Percent-encodes every byte but the unreserved ones.
fn encode(value: &str) -> String {
    value
        .bytes()
        .map(|byte| {
            if byte.is_ascii_alphanumeric() || matches!(byte, b'-' | b'.' | b'_' | b'~') {
                (byte as char).to_string()
            } else {
                format!("%{byte:02X}")
            }
        })
        .collect()
}

/// What must survive the injection attempts: row counts of every table the
/// API writes, the seeded Redis keys and values, and the points stored.
async fn stored_state(app: &TestApp) -> (Vec<i64>, Vec<(String, Option<String>)>, u64) {
    let client = app.pool.get().await.unwrap();
    let row = client
        .query_one(
            "SELECT (SELECT count(*) FROM metadata.sites), (SELECT count(*) FROM metadata.sensors), \
             (SELECT count(*) FROM metadata.alert_rules), (SELECT count(*) FROM metadata.api_keys), \
             (SELECT count(*) FROM analytics.alerts), (SELECT count(*) FROM analytics.alert_events)",
            &[],
        )
        .await
        .unwrap();
    let counts = (0..6).map(|at| row.get::<_, i64>(at)).collect();
    let mut connection = app.redis.connection().await;
    let mut keys = Vec::new();
    for sensor in ["b1_steam_pressure", "b1_flue_temp"] {
        let key = format!("{}latest:{SITE}:{sensor}", app.redis.prefix());
        let value: Option<String> = redis::cmd("GET")
            .arg(&key)
            .query_async(&mut connection)
            .await
            .unwrap();
        keys.push((key, value));
    }
    let points = app
        .influx
        .influx()
        .count_readings(&SiteSlug::parse(SITE).unwrap())
        .await
        .unwrap();
    (counts, keys, points)
}

#[tokio::test]
async fn injection_in_every_path_and_query_parameter_gets_a_precise_refusal_and_changes_nothing() {
    let app = spawn_app().await;
    let seeded = seed(&app).await;
    let admin = key(&app, "injection-admin", &[Scope::Admin]).await;
    let before = stored_state(&app).await;
    assert!(
        before.1.iter().all(|(_, value)| value.is_some()),
        "{before:?}"
    );
    assert_eq!(before.2, 2);
    let operations = operations(&app).await;
    let client = reqwest::Client::builder()
        .default_headers(
            [(reqwest::header::AUTHORIZATION, bearer(&admin))]
                .into_iter()
                .collect(),
        )
        .build()
        .unwrap();
    let values = hostile_values();
    let mut path_cases = 0;
    let mut query_cases = 0;
    // Every case is checked, and every failure shown, before failing.
    let mut failures = 0;
    for operation in &operations {
        let headers: &[(&str, &str)] =
            if operation.method == Method::PATCH || operation.method == Method::DELETE {
                &[("if-match", STALE)]
            } else {
                &[]
            };
        for parameter in &operation.path_parameters {
            for value in &values {
                let path = operation.path(&seeded, Some((parameter.as_str(), value.as_str())));
                let url = format!("{}{path}", app.base);
                let answer = send(
                    &client,
                    operation.method.clone(),
                    &url,
                    None,
                    operation.body(),
                    headers,
                )
                .await;
                path_cases += 1;
                let case = format!("{} with {parameter}={value} ({path})", operation.name());
                if operation.is_influx_compatible() {
                    failures += checked(|| answer.assert_influx_client_error(&case));
                    continue;
                }
                let telemetry = operation.template.ends_with("/telemetry");
                failures += checked(|| {
                    answer.assert_precise_client_error(&case);
                    if telemetry {
                        // Ingestion's refusal, recorded like an MQTT message's.
                        return;
                    }
                    // Not a slug, key or UUID: no such resource. Bytes that
                    // are not UTF-8 name no route.
                    assert_eq!(
                        answer.status,
                        StatusCode::NOT_FOUND,
                        "{case}: {}",
                        answer.body
                    );
                    match answer.code() {
                        "not_found" => assert!(
                            answer.body["detail"]
                                .as_str()
                                .unwrap()
                                .contains("does not exist"),
                            "{case}: {}",
                            answer.body
                        ),
                        "route_not_found" => {}
                        other => panic!("{case}: code {other}: {}", answer.body),
                    }
                });
            }
        }
        for parameter in &operation.query_parameters {
            for value in &values {
                let path = format!("{}?{parameter}={value}", operation.path(&seeded, None));
                let url = format!("{}{path}", app.base);
                let answer = send(
                    &client,
                    operation.method.clone(),
                    &url,
                    None,
                    operation.body(),
                    headers,
                )
                .await;
                query_cases += 1;
                let case = format!("{} with {path}", operation.name());
                if operation.is_influx_compatible() {
                    failures += checked(|| answer.assert_influx_client_error(&case));
                    continue;
                }
                // An actor is any API key's name: a printable one is taken
                // as a name, and no event has it.
                if parameter == "actor" && answer.status == StatusCode::OK {
                    failures += checked(|| {
                        assert_eq!(answer.body["items"], json!([]), "{case}: {}", answer.body);
                    });
                    continue;
                }
                failures += checked(|| {
                    answer.assert_precise_client_error(&case);
                    assert_eq!(
                        (answer.status, answer.code()),
                        (StatusCode::BAD_REQUEST, "invalid_parameter"),
                        "{case}: {}",
                        answer.body
                    );
                    assert_eq!(
                        answer.body["errors"][0]["field"], *parameter,
                        "{case}: {}",
                        answer.body
                    );
                });
            }
        }
        // A parameter that is not the route's, named with an injection.
        if !operation.query_parameters.is_empty() {
            let path = format!(
                "{}?{}=1",
                operation.path(&seeded, None),
                encode("' OR 1=1--")
            );
            let answer = send(
                &client,
                operation.method.clone(),
                &format!("{}{path}", app.base),
                None,
                operation.body(),
                headers,
            )
            .await;
            query_cases += 1;
            if operation.is_influx_compatible() {
                // InfluxDB takes parameters it does not know, as InfluxDB
                // does; without a key, InfluxDB's 401.
                answer.assert_influx_client_error(&path);
                continue;
            }
            answer.assert_precise_client_error(&path);
            assert_eq!(answer.status, StatusCode::BAD_REQUEST, "{path}");
        }
    }
    assert_eq!(failures, 0, "{failures} injection cases failed (above)");
    assert!(path_cases > 0 && query_cases > 0);
    eprintln!(
        "injection: {path_cases} path-parameter cases, {query_cases} query-parameter cases ({} values)",
        values.len()
    );

    // Cursors are hex of a sort key: one that decodes to anything but a
    // key of the list (SQL, a NUL, a control character) is not a cursor
    // this API gave.
    let hex = |text: &str| -> String { text.bytes().map(|b| format!("{b:02x}")).collect() };
    for list in [
        "/api/v1/sites",
        "/api/v1/sites/boiler-house-1/sensors",
        "/api/v1/alert-rules",
        "/api/v1/alerts",
        "/api/v1/audit",
    ] {
        for key in ["' OR 1=1--", "\0", "a\0b", "a\r\nFLUSHALL"] {
            let answer = send(
                &client,
                Method::GET,
                &format!("{}{list}?cursor={}", app.base, hex(key)),
                None,
                None,
                &[],
            )
            .await;
            let case = format!("{list} with cursor {key:?}");
            answer.assert_precise_client_error(&case);
            assert_eq!(
                answer.code(),
                "invalid_parameter",
                "{case}: {}",
                answer.body
            );
        }
    }

    // Text headers the routes read, with bytes that are not ASCII: 400
    // naming the header (before: 500).
    for (name, path, method) in [
        ("content-type", "/api/v1/sites", Method::POST),
        ("if-match", "/api/v1/sites/boiler-house-1", Method::PATCH),
    ] {
        let answer = client
            .request(method, format!("{}{path}", app.base))
            .header(
                name,
                HeaderValue::from_bytes(b"application/json\xff").unwrap(),
            )
            .body("{}")
            .send()
            .await
            .unwrap();
        let status = answer.status();
        let headers = answer.headers().clone();
        let body: Value = answer.json().await.unwrap_or(Value::Null);
        let answer = Answer {
            status,
            headers,
            body,
        };
        let case = format!("{name} not ASCII");
        answer.assert_precise_client_error(&case);
        assert_eq!(
            (answer.status, answer.code()),
            (StatusCode::BAD_REQUEST, "invalid_header"),
            "{case}: {}",
            answer.body
        );
        assert!(
            answer.body["detail"].as_str().unwrap().contains(name),
            "{case}: {}",
            answer.body
        );
    }

    // A body's strings are bound parameters: stored as text.
    let (status, site) = app
        .post_site(json!({"slug": "b-2", "name": "x'); DROP TABLE metadata.sites; --"}))
        .await;
    assert_eq!(status, StatusCode::CREATED, "{site}");
    assert_eq!(site["name"], "x'); DROP TABLE metadata.sites; --");
    let (status, _, _) = app.delete("/api/v1/sites/b-2").await;
    assert_eq!(status, StatusCode::NO_CONTENT);

    // Nothing changed anywhere.
    let after = stored_state(&app).await;
    assert_eq!(
        after.0, before.0,
        "rows: sites, sensors, rules, keys, alerts, events"
    );
    assert_eq!(after.1, before.1, "Redis latest values");
    assert_eq!(after.2, before.2, "InfluxDB points");
    let (status, _, latest) = app
        .get_with_headers("/api/v1/sites/boiler-house-1/latest")
        .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(latest["readings"][1]["value"], 10.5);
}

#[tokio::test]
async fn injection_attempts_in_paths_and_parameters_go_nowhere() {
    let app = spawn_seeded_app().await;
    let (status, _) = app
        .post_telemetry("boiler-house-1", json!({"b1_steam_pressure": 10.5}))
        .await;
    assert_eq!(status, StatusCode::OK);
    let history = "/api/v1/sites/boiler-house-1/sensors/b1_steam_pressure/history";
    // Path segments: not slugs, so no such site or sensor (404), whatever
    // they would do in InfluxQL, SQL or a Redis key.
    for (path, expected) in [
        (
            "/api/v1/sites/boiler-house-1'%20OR%20'1'='1/latest",
            StatusCode::NOT_FOUND,
        ),
        (
            "/api/v1/sites/x%22%3B%20DROP%20DATABASE%20stoker%3B/latest",
            StatusCode::NOT_FOUND,
        ),
        ("/api/v1/sites/*/dashboard", StatusCode::NOT_FOUND),
        (
            "/api/v1/sites/boiler-house-1:*/dashboard",
            StatusCode::NOT_FOUND,
        ),
        (
            "/api/v1/sites/boiler-house-1/sensors/b1'%20OR%201=1--/history",
            StatusCode::NOT_FOUND,
        ),
        (
            "/api/v1/sites/boiler-house-1%00/latest",
            StatusCode::NOT_FOUND,
        ),
        ("/api/v1/alert-rules/1%20OR%201=1", StatusCode::NOT_FOUND),
        (
            "/api/v1/sites/'%3B%20DELETE%20FROM%20metadata.sites%3B--",
            StatusCode::NOT_FOUND,
        ),
    ] {
        let (status, _, body) = app.get_with_headers(path).await;
        assert_eq!(status, expected, "{path}: {body}");
    }
    // Query parameters: parsed into numbers, durations, enums or slugs
    // first, refused (400) when they are not.
    for query in [
        "?agg=mean(%22value%22)%3B%20DROP%20DATABASE%20x",
        "?every=1m)%20fill(0)%3B%20DROP%20DATABASE%20x",
        "?start=0%20OR%201=1",
        "?end=now()",
        "?agg=last&agg=max%22",
    ] {
        let (status, _, body) = app.get_with_headers(&format!("{history}{query}")).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{query}: {body}");
    }
    for query in [
        "?site=x'%20OR%201=1",
        "?cursor=27204f5220313d31",
        "?enabled=true%20OR%201=1",
        "?limit=1;DROP",
    ] {
        let (status, _, body) = app
            .get_with_headers(&format!("/api/v1/alert-rules{query}"))
            .await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{query}: {body}");
    }
    let (status, _, _) = app
        .get_with_headers("/api/v1/sites?cursor=2720".to_owned().as_str())
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    // A body's strings are bound parameters: a name full of SQL is stored as text.
    let (status, site) = app
        .post_site(json!({"slug": "b-2", "name": "x'); DROP TABLE metadata.sites; --"}))
        .await;
    assert_eq!(status, StatusCode::CREATED);
    assert_eq!(site["name"], "x'); DROP TABLE metadata.sites; --");

    // Everything is still there and answers.
    let (status, _, sites) = app.get_with_headers("/api/v1/sites").await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(sites["items"].as_array().unwrap().len(), 2);
    let (status, _, latest) = app
        .get_with_headers("/api/v1/sites/boiler-house-1/latest")
        .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(latest["readings"][1]["value"], 10.5);
    let (status, _, body) = app.get_with_headers(history).await;
    assert_eq!(status, StatusCode::OK, "{body}");
}
