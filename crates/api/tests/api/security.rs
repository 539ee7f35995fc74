//! Security: the authorization matrix over every route of the OpenAPI
//! document (so a new route is covered without touching this file),
//! injection attempts in every path and query parameter, oversized bodies
//! and headers, and slow clients.

use std::time::{Duration, Instant};

use reqwest::header::{HeaderMap, HeaderValue};
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use stoker_analytics::store::{self, NoOutbox, Verdict};
use stoker_domain::{EpochMillis, SensorKey, SiteSlug};
use stoker_metadata::Scope;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use uuid::Uuid;

use super::{AppOptions, TestApp, spawn_app, spawn_app_with, threshold_rule};

const SITE: &str = "boiler-house-1";
const SENSOR: &str = "b1_steam_pressure";
/// An If-Match no resource has: PATCH and DELETE reach their handler and
/// stop at the version check, so the matrix changes nothing.
const STALE: &str = "\"999\"";

/// The ids the path parameters take.
struct Seeded {
    rule: String,
    alert: String,
}

/// The usual site and sensors, readings (InfluxDB and Redis), a rule and
/// an open alert of it.
async fn seed(app: &TestApp) -> Seeded {
    app.seed().await;
    let (status, _, body) = app
        .send(
            Method::POST,
            &format!("/api/v1/sites/{SITE}/telemetry"),
            Some(json!({"b1_steam_pressure": 10.5, "b1_flue_temp": 180.0})),
            &[],
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let (status, _, rule) = app
        .send(
            Method::POST,
            "/api/v1/alert-rules",
            Some(threshold_rule()),
            &[],
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{rule}");
    let rule_id = Uuid::parse_str(rule["id"].as_str().unwrap()).unwrap();
    let stored = stoker_metadata::get_alert_rule(&app.pool, rule_id)
        .await
        .unwrap();
    let site = SiteSlug::parse(SITE).unwrap();
    let sensor = SensorKey::parse(SENSOR).unwrap();
    let verdict = Verdict {
        rule: &stored,
        site: &site,
        sensor: &sensor,
        at: EpochMillis::from_millis(EpochMillis::now().as_millis() - 60_000).unwrap(),
        value: Some(13.2),
        message: "mean over 1m = 13.2 bar, > 12.5 for 30s".into(),
    };
    let alert = store::open_alert(&app.pool, &NoOutbox, &verdict)
        .await
        .unwrap()
        .expect("an open alert");
    Seeded {
        rule: rule_id.to_string(),
        alert: alert.id.to_string(),
    }
}

/// One operation of the OpenAPI document.
#[derive(Debug, Clone)]
struct Operation {
    method: Method,
    template: String,
    /// The scope its key needs (`x-scope`); none: open.
    scope: Option<String>,
    path_parameters: Vec<String>,
    query_parameters: Vec<String>,
    has_body: bool,
}

impl Operation {
    fn name(&self) -> String {
        format!("{} {}", self.method, self.template)
    }

    /// The path with each parameter's real value, or `replace`'s for one.
    fn path(&self, seeded: &Seeded, replace: Option<(&str, &str)>) -> String {
        let mut path = self.template.clone();
        for name in &self.path_parameters {
            let real = match name.as_str() {
                "site" => SITE,
                "sensor" => SENSOR,
                "rule" => seeded.rule.as_str(),
                "alert" => seeded.alert.as_str(),
                other => panic!(
                    "{}: no seeded value for path parameter {other}",
                    self.name()
                ),
            };
            let value = match replace {
                Some((replaced, value)) if replaced == name.as_str() => value,
                _ => real,
            };
            path = path.replace(&format!("{{{name}}}"), value);
        }
        path
    }

    /// A JSON body that gets past the body filters (the handler may still
    /// refuse its fields).
    fn body(&self) -> Option<Value> {
        self.has_body.then(|| {
            if self.template.ends_with("/telemetry") {
                json!({ "b1_steam_pressure": 10.6 })
            } else {
                json!({})
            }
        })
    }

    /// The largest body the route takes (DESIGN.md: telemetry 256 KiB;
    /// metadata 64 KiB).
    fn body_limit(&self) -> usize {
        if self.template.ends_with("/telemetry") {
            256 * 1024
        } else {
            64 * 1024
        }
    }
}

/// Every operation the server documents, hence answers (a test in
/// `main.rs` checks that the two agree).
async fn operations(app: &TestApp) -> Vec<Operation> {
    let document: Value = reqwest::get(format!("{}/api/v1/openapi.json", app.base))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let mut operations = Vec::new();
    for (template, item) in document["paths"].as_object().unwrap() {
        for (method, operation) in item.as_object().unwrap() {
            let scope = operation["x-scope"].as_str().map(str::to_owned);
            let open = operation["security"].as_array().is_some_and(Vec::is_empty);
            assert_eq!(
                open,
                scope.is_none(),
                "{method} {template}: security vs x-scope"
            );
            let parameters = operation["parameters"].as_array().unwrap();
            let named = |place: &str| -> Vec<String> {
                parameters
                    .iter()
                    .filter(|parameter| parameter["in"] == place)
                    .map(|parameter| parameter["name"].as_str().unwrap().to_owned())
                    .collect()
            };
            operations.push(Operation {
                method: Method::from_bytes(method.to_uppercase().as_bytes()).unwrap(),
                template: template.clone(),
                scope,
                path_parameters: named("path"),
                query_parameters: named("query"),
                has_body: operation.get("requestBody").is_some(),
            });
        }
    }
    operations
}

/// An answer: status, headers, body as JSON (null if it is none).
struct Answer {
    status: StatusCode,
    headers: HeaderMap,
    body: Value,
}

impl Answer {
    fn code(&self) -> &str {
        self.body["code"].as_str().unwrap_or("")
    }

    fn is_problem(&self) -> bool {
        self.headers
            .get("content-type")
            .is_some_and(|value| value == "application/problem+json")
    }

    /// A 4xx `application/problem+json` with a code and a detail.
    fn assert_precise_client_error(&self, case: &str) {
        assert!(
            self.status.is_client_error(),
            "{case}: {} {}",
            self.status,
            self.body
        );
        assert!(
            self.is_problem(),
            "{case}: not a problem: {:?}",
            self.headers
        );
        assert!(!self.code().is_empty(), "{case}: no code: {}", self.body);
        assert!(
            self.body["detail"]
                .as_str()
                .is_some_and(|detail| detail.len() > 5),
            "{case}: no detail: {}",
            self.body
        );
    }
}

/// Sends one request without any default header.
async fn send(
    client: &reqwest::Client,
    method: Method,
    url: &str,
    authorization: Option<HeaderValue>,
    body: Option<Value>,
    headers: &[(&str, &str)],
) -> Answer {
    let mut request = client.request(method, url);
    if let Some(value) = authorization {
        request = request.header("authorization", value);
    }
    if let Some(body) = body {
        request = request.json(&body);
    }
    for (name, value) in headers {
        request = request.header(*name, *value);
    }
    let response = request.send().await.unwrap();
    let status = response.status();
    let headers = response.headers().clone();
    let body = response.json().await.unwrap_or(Value::Null);
    Answer {
        status,
        headers,
        body,
    }
}

fn bearer(token: &str) -> HeaderValue {
    HeaderValue::from_str(&format!("Bearer {token}")).unwrap()
}

/// A new key with these scopes; its token.
async fn key(app: &TestApp, name: &str, scopes: &[Scope]) -> String {
    let (_, token) = stoker_metadata::create_api_key(&app.pool, name, scopes)
        .await
        .unwrap();
    token.expose().to_owned()
}

#[tokio::test]
async fn every_route_answers_each_kind_of_key_with_the_right_status_and_code() {
    let app = spawn_app().await;
    let seeded = seed(&app).await;
    let operations = operations(&app).await;
    let admin = key(&app, "matrix-admin", &[Scope::Admin]).await;
    let reader = key(&app, "matrix-read", &[Scope::Read]).await;
    let writer = key(&app, "matrix-write", &[Scope::Write]).await;
    let read_write = key(&app, "matrix-read-write", &[Scope::Read, Scope::Write]).await;
    let revoked = key(&app, "matrix-revoked", &[Scope::Admin]).await;
    stoker_metadata::revoke_api_key(&app.pool, "matrix-revoked")
        .await
        .unwrap();
    // The right secret of a real key id, one character changed.
    let mut wrong_secret = admin.clone();
    let last = wrong_secret.pop().unwrap();
    wrong_secret.push(if last == 'a' { 'b' } else { 'a' });

    // (case, Authorization, status, code) for a route that needs a key,
    // whatever its scope.
    let refused: Vec<(&str, Option<HeaderValue>, StatusCode, &str)> = vec![
        ("no key", None, StatusCode::UNAUTHORIZED, "missing_api_key"),
        (
            "Bearer alone",
            Some(HeaderValue::from_static("Bearer")),
            StatusCode::UNAUTHORIZED,
            "malformed_api_key",
        ),
        (
            "Bearer x",
            Some(HeaderValue::from_static("Bearer x")),
            StatusCode::UNAUTHORIZED,
            "malformed_api_key",
        ),
        (
            "Basic",
            Some(HeaderValue::from_static("Basic dXNlcjpwYXNzd29yZA==")),
            StatusCode::UNAUTHORIZED,
            "malformed_api_key",
        ),
        (
            "the key without Bearer",
            Some(HeaderValue::from_str(&admin).unwrap()),
            StatusCode::UNAUTHORIZED,
            "malformed_api_key",
        ),
        (
            "garbage",
            Some(HeaderValue::from_static("%%% ' OR 1=1 -- \" ;")),
            StatusCode::UNAUTHORIZED,
            "malformed_api_key",
        ),
        (
            "very long (8 KiB)",
            Some(bearer(&format!("stk_{}", "a".repeat(8 * 1024)))),
            StatusCode::UNAUTHORIZED,
            "malformed_api_key",
        ),
        (
            "a character too many",
            Some(bearer(&format!("{admin}x"))),
            StatusCode::UNAUTHORIZED,
            "malformed_api_key",
        ),
        (
            "not ASCII",
            Some(HeaderValue::from_bytes(b"Bearer stk_\xff\xfe\xc3\xa9").unwrap()),
            StatusCode::UNAUTHORIZED,
            "malformed_api_key",
        ),
        (
            "unknown key id",
            Some(bearer("stk_zzzzzzzzzzzz_0123456789abcdefABCDEF0123456789")),
            StatusCode::UNAUTHORIZED,
            "invalid_api_key",
        ),
        (
            "wrong secret",
            Some(bearer(&wrong_secret)),
            StatusCode::UNAUTHORIZED,
            "invalid_api_key",
        ),
        (
            "revoked",
            Some(bearer(&revoked)),
            StatusCode::UNAUTHORIZED,
            "revoked_api_key",
        ),
    ];

    let client = reqwest::Client::new();
    let mut keyed = 0;
    let mut open = 0;
    let mut requests = 0;
    // Every case is checked, and every failure shown, before failing.
    let mut failures = 0;
    for operation in &operations {
        let url = format!("{}{}", app.base, operation.path(&seeded, None));
        let headers: &[(&str, &str)] =
            if operation.method == Method::PATCH || operation.method == Method::DELETE {
                &[("if-match", STALE)]
            } else {
                &[]
            };
        let Some(scope) = operation.scope.as_deref() else {
            // Open: any Authorization, or none, is ignored.
            open += 1;
            for (case, authorization, _, _) in &refused {
                let answer = send(
                    &client,
                    operation.method.clone(),
                    &url,
                    authorization.clone(),
                    operation.body(),
                    headers,
                )
                .await;
                requests += 1;
                assert!(
                    answer.status.is_success(),
                    "{} with {case}: {} {}",
                    operation.name(),
                    answer.status,
                    answer.body
                );
            }
            continue;
        };
        keyed += 1;
        let (right, wrong) = match scope {
            "read" => (&reader, &writer),
            "write" => (&writer, &reader),
            "admin" => (&admin, &read_write),
            other => panic!("{}: unknown scope {other}", operation.name()),
        };
        let cases = refused.iter().cloned().chain([(
            "wrong scope",
            Some(bearer(wrong)),
            StatusCode::FORBIDDEN,
            "insufficient_scope",
        )]);
        for (case, authorization, status, code) in cases {
            let answer = send(
                &client,
                operation.method.clone(),
                &url,
                authorization,
                operation.body(),
                headers,
            )
            .await;
            requests += 1;
            let name = format!("{} with {case}", operation.name());
            failures += checked(|| {
                assert_eq!(
                    (answer.status, answer.code()),
                    (status, code),
                    "{name}: {}",
                    answer.body
                );
                answer.assert_precise_client_error(&name);
                assert_eq!(
                    answer.headers.contains_key("www-authenticate"),
                    status == StatusCode::UNAUTHORIZED,
                    "{name}: WWW-Authenticate"
                );
            });
        }
        // The right scope reaches the handler: whatever it answers, it is
        // not about the key, not about the route, and not a failure.
        let answer = send(
            &client,
            operation.method.clone(),
            &url,
            Some(bearer(right)),
            operation.body(),
            headers,
        )
        .await;
        requests += 1;
        let name = format!("{} with the right scope", operation.name());
        assert!(
            answer.status != StatusCode::UNAUTHORIZED
                && answer.status != StatusCode::FORBIDDEN
                && !answer.status.is_server_error()
                && !matches!(answer.code(), "route_not_found" | "method_not_allowed"),
            "{name}: {} {}",
            answer.status,
            answer.body
        );
        // Admin includes every scope.
        let answer = send(
            &client,
            operation.method.clone(),
            &url,
            Some(bearer(&admin)),
            operation.body(),
            headers,
        )
        .await;
        requests += 1;
        assert!(
            answer.status != StatusCode::UNAUTHORIZED && answer.status != StatusCode::FORBIDDEN,
            "{} with admin: {} {}",
            operation.name(),
            answer.status,
            answer.body
        );
    }
    assert_eq!(failures, 0, "{failures} cases of the matrix failed (above)");
    assert_eq!(open, 4, "healthz, readyz, metrics, openapi.json");
    assert!(keyed >= 24, "{keyed} keyed operations");
    eprintln!(
        "authorization matrix: {keyed} keyed operations x {} cases + {open} open operations x {} cases = {requests} requests",
        refused.len() + 3,
        refused.len()
    );
}

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

/// Runs the assertions of one case: 1 if they failed (the panic is
/// printed), else 0.
fn checked(case: impl FnOnce()) -> usize {
    usize::from(std::panic::catch_unwind(std::panic::AssertUnwindSafe(case)).is_err())
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
    let (status, _, site) = app
        .send(
            Method::POST,
            "/api/v1/sites",
            Some(json!({"slug": "b-2", "name": "x'); DROP TABLE metadata.sites; --"})),
            &[],
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{site}");
    assert_eq!(site["name"], "x'); DROP TABLE metadata.sites; --");
    let (status, _, _) = app
        .send(Method::DELETE, "/api/v1/sites/b-2", None, &[])
        .await;
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
        .send(
            Method::GET,
            "/api/v1/sites/boiler-house-1/latest",
            None,
            &[],
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(latest["readings"][1]["value"], 10.5);
}

/// Sends raw bytes on a new connection and reads until the server closes
/// it or `limit` passes. What came back, and whether the server closed the
/// connection (EOF or reset) within `limit`.
async fn raw_exchange(app: &TestApp, request: Vec<u8>, limit: Duration) -> (String, bool) {
    let address = app.base.trim_start_matches("http://");
    let stream = tokio::net::TcpStream::connect(address).await.unwrap();
    let (mut reader, mut writer) = stream.into_split();
    let writing = tokio::spawn(async move {
        // The server may close before reading everything: not an error here.
        let _ = writer.write_all(&request).await;
        writer
    });
    let mut received = Vec::new();
    let mut buffer = [0_u8; 4096];
    let deadline = tokio::time::Instant::now() + limit;
    let closed = loop {
        match tokio::time::timeout_at(deadline, reader.read(&mut buffer)).await {
            Err(_) => break false,
            Ok(Ok(0)) | Ok(Err(_)) => break true,
            Ok(Ok(read)) => received.extend_from_slice(&buffer[..read]),
        }
    };
    writing.abort();
    (String::from_utf8_lossy(&received).into_owned(), closed)
}

/// The status of a raw response, if there is one.
fn raw_status(response: &str) -> Option<u16> {
    response
        .strip_prefix("HTTP/1.1 ")
        .and_then(|rest| rest.get(..3))
        .and_then(|code| code.parse().ok())
}

async fn assert_still_serving(app: &TestApp) {
    let (status, _) = app.get("/healthz").await;
    assert_eq!(status, StatusCode::OK);
    let (status, _) = app.get("/api/v1/sites").await;
    assert_eq!(status, StatusCode::OK);
}

#[tokio::test]
async fn oversized_bodies_are_refused_413_and_chunked_ones_411() {
    let app = spawn_app().await;
    let seeded = seed(&app).await;
    let admin = key(&app, "oversized-admin", &[Scope::Admin]).await;
    let client = reqwest::Client::new();
    let mut checked = 0;
    for operation in operations(&app).await.iter().filter(|o| o.has_body) {
        let url = format!("{}{}", app.base, operation.path(&seeded, None));
        for (size, oversized) in [
            (operation.body_limit() + 1, true),
            (4 * 1024 * 1024, true),
            (operation.body_limit(), false),
        ] {
            // A JSON object of exactly `size` bytes.
            let padding = size - r#"{"x":""}"#.len();
            let body = format!(r#"{{"x":"{}"}}"#, "a".repeat(padding));
            assert_eq!(body.len(), size);
            let response = client
                .request(operation.method.clone(), &url)
                .bearer_auth(&admin)
                .header("content-type", "application/json")
                .header("if-match", STALE)
                .body(body)
                .send()
                .await;
            let case = format!("{} with {size} bytes", operation.name());
            let response = match response {
                Ok(response) => response,
                // The server answered before reading the whole body and
                // closed: reqwest may report the write's failure instead.
                Err(error) if oversized => {
                    eprintln!("{case}: {error}");
                    continue;
                }
                Err(error) => panic!("{case}: {error}"),
            };
            let status = response.status();
            let headers = response.headers().clone();
            let body: Value = response.json().await.unwrap_or(Value::Null);
            let answer = Answer {
                status,
                headers,
                body,
            };
            if oversized {
                assert_eq!(
                    answer.status,
                    StatusCode::PAYLOAD_TOO_LARGE,
                    "{case}: {}",
                    answer.body
                );
                answer.assert_precise_client_error(&case);
                assert!(
                    matches!(answer.code(), "payload_too_large" | "too_large"),
                    "{case}: {}",
                    answer.body
                );
            } else {
                assert_ne!(answer.status, StatusCode::PAYLOAD_TOO_LARGE, "{case}");
                assert!(!answer.status.is_server_error(), "{case}: {}", answer.body);
            }
            checked += 1;
        }
    }
    assert!(checked >= 8, "{checked}");

    // No Content-Length (chunked): 411, so no body is read unbounded.
    let request = format!(
        "POST /api/v1/sites HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {admin}\r\n\
         Content-Type: application/json\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n\
         2\r\n{{}}\r\n0\r\n\r\n"
    );
    let (response, _) = raw_exchange(&app, request.into_bytes(), Duration::from_secs(5)).await;
    assert_eq!(raw_status(&response), Some(411), "{response}");
    assert!(response.contains("application/problem+json"), "{response}");
    assert!(response.contains("length_required"), "{response}");
    assert_still_serving(&app).await;
}

#[tokio::test]
async fn oversized_header_sections_and_too_many_headers_are_refused_431() {
    let app = spawn_app().await;
    app.seed().await;
    let admin = key(&app, "headers-admin", &[Scope::Admin]).await;
    let big = "a".repeat(20 * 1024);
    let many: String = (0..150)
        .map(|at| format!("X-Header-{at}: {at}\r\n"))
        .collect();
    for (case, request) in [
        (
            "one 20 KiB header",
            format!(
                "GET /api/v1/sites HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {admin}\r\nX-Big: {big}\r\n\r\n"
            ),
        ),
        (
            "a 20 KiB Authorization",
            format!("GET /api/v1/sites HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {big}\r\n\r\n"),
        ),
        (
            "150 headers",
            format!(
                "GET /api/v1/sites HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {admin}\r\n{many}\r\n"
            ),
        ),
        (
            "a 20 KiB path",
            format!(
                "GET /api/v1/sites/{big} HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {admin}\r\n\r\n"
            ),
        ),
    ] {
        let (response, closed) =
            raw_exchange(&app, request.into_bytes(), Duration::from_secs(5)).await;
        // 431, or (when the reset overtakes the answer) a closed connection.
        assert!(closed, "{case}: the connection stays open");
        match raw_status(&response) {
            Some(431) => {}
            None if response.is_empty() => eprintln!("{case}: closed without an answer"),
            other => panic!("{case}: {other:?} {response}"),
        }
    }
    // Under the limit: answered.
    let request = format!(
        "GET /api/v1/sites HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {admin}\r\nX-Big: {}\r\nConnection: close\r\n\r\n",
        "a".repeat(8 * 1024)
    );
    let (response, _) = raw_exchange(&app, request.into_bytes(), Duration::from_secs(5)).await;
    assert_eq!(raw_status(&response), Some(200), "{response}");
    assert_still_serving(&app).await;
}

#[tokio::test]
async fn clients_that_send_headers_slowly_or_not_at_all_are_cut_off() {
    // The default header timeout (10 s) applies.
    let app = spawn_app().await;
    let limit = stoker_api::HttpOptions::default().header_timeout;
    let address = app.base.trim_start_matches("http://").to_owned();
    let slowloris = |request_line: &'static [u8]| {
        let address = address.clone();
        async move {
            let stream = tokio::net::TcpStream::connect(&address).await.unwrap();
            let (mut reader, mut writer) = stream.into_split();
            let started = Instant::now();
            let dripping = tokio::spawn(async move {
                if writer.write_all(request_line).await.is_err() {
                    return;
                }
                // One byte of a header a second, for ever.
                loop {
                    tokio::time::sleep(Duration::from_secs(1)).await;
                    if writer.write_all(b"a").await.is_err() {
                        return;
                    }
                }
            });
            let mut buffer = [0_u8; 1024];
            let mut received = Vec::new();
            let outcome = tokio::time::timeout(limit * 3, async {
                loop {
                    match reader.read(&mut buffer).await {
                        Ok(0) | Err(_) => break,
                        Ok(read) => received.extend_from_slice(&buffer[..read]),
                    }
                }
            })
            .await;
            dripping.abort();
            (outcome.is_ok(), started.elapsed(), received)
        }
    };
    let (headers, silent, request_line) = tokio::join!(
        slowloris(b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Slow: "),
        slowloris(b""),
        slowloris(b"GET /api/v1/sites?limit="),
    );
    for (case, (closed, elapsed, received)) in [
        ("headers a byte a second", headers),
        ("nothing sent", silent),
        ("request line a byte a second", request_line),
    ] {
        assert!(closed, "{case}: still open after {elapsed:?}");
        assert!(
            elapsed >= limit - Duration::from_secs(1) && elapsed <= limit + Duration::from_secs(3),
            "{case}: closed after {elapsed:?}, the limit is {limit:?}"
        );
        // Never a request answered from a partial head.
        let received = String::from_utf8_lossy(&received);
        assert!(!received.starts_with("HTTP/1.1 2"), "{case}: {received}");
    }
    assert_still_serving(&app).await;
}

#[tokio::test]
async fn a_body_that_arrives_too_slowly_is_answered_408() {
    let body_timeout = Duration::from_secs(2);
    let app = spawn_app_with(AppOptions {
        http: Some(stoker_api::HttpOptions {
            body_timeout,
            ..stoker_api::HttpOptions::default()
        }),
        ..AppOptions::default()
    })
    .await;
    app.seed().await;
    let admin = key(&app, "slow-body-admin", &[Scope::Admin]).await;
    let address = app.base.trim_start_matches("http://").to_owned();
    for path in ["/api/v1/sites/boiler-house-1/telemetry", "/api/v1/sites"] {
        let stream = tokio::net::TcpStream::connect(&address).await.unwrap();
        let (mut reader, mut writer) = stream.into_split();
        let head = format!(
            "POST {path} HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {admin}\r\n\
             Content-Type: application/json\r\nContent-Length: 1000\r\n\r\n{{"
        );
        writer.write_all(head.as_bytes()).await.unwrap();
        let started = Instant::now();
        let dripping = tokio::spawn(async move {
            loop {
                tokio::time::sleep(Duration::from_millis(500)).await;
                if writer.write_all(b" ").await.is_err() {
                    return;
                }
            }
        });
        let mut received = Vec::new();
        let mut buffer = [0_u8; 4096];
        let _ = tokio::time::timeout(Duration::from_secs(15), async {
            loop {
                match reader.read(&mut buffer).await {
                    Ok(0) | Err(_) => break,
                    Ok(read) => {
                        received.extend_from_slice(&buffer[..read]);
                        if received.windows(4).any(|w| w == b"\r\n\r\n") && received.ends_with(b"}")
                        {
                            break;
                        }
                    }
                }
            }
        })
        .await;
        let elapsed = started.elapsed();
        dripping.abort();
        let response = String::from_utf8_lossy(&received);
        assert_eq!(raw_status(&response), Some(408), "{path}: {response}");
        assert!(response.contains("application/problem+json"), "{response}");
        assert!(response.contains("\"code\":\"body_timeout\""), "{response}");
        assert!(
            elapsed >= body_timeout - Duration::from_millis(500)
                && elapsed <= body_timeout + Duration::from_secs(3),
            "{path}: answered after {elapsed:?}"
        );
    }
    // A body sent briskly is not affected.
    let (status, _) = app.get("/api/v1/sites").await;
    assert_eq!(status, StatusCode::OK);
    let (status, _) = app
        .post(
            "/api/v1/sites/boiler-house-1/telemetry",
            json!({"b1_steam_pressure": 10.1}),
        )
        .await;
    assert_eq!(status, StatusCode::OK);
}

#[tokio::test]
async fn a_body_cut_short_is_a_precise_400_not_a_500() {
    let app = spawn_app().await;
    app.seed().await;
    let admin = key(&app, "short-body-admin", &[Scope::Admin]).await;
    let address = app.base.trim_start_matches("http://").to_owned();
    for path in ["/api/v1/sites/boiler-house-1/telemetry", "/api/v1/sites"] {
        let stream = tokio::net::TcpStream::connect(&address).await.unwrap();
        let (mut reader, mut writer) = stream.into_split();
        let head = format!(
            "POST {path} HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {admin}\r\n\
             Content-Type: application/json\r\nContent-Length: 1000\r\n\r\n{{\"slug\":"
        );
        writer.write_all(head.as_bytes()).await.unwrap();
        // Half-close: the body ends 990 bytes early.
        writer.shutdown().await.unwrap();
        let mut received = Vec::new();
        let _ =
            tokio::time::timeout(Duration::from_secs(10), reader.read_to_end(&mut received)).await;
        let response = String::from_utf8_lossy(&received);
        // The server may close without an answer (the client is gone);
        // when it answers, it is the client's fault, said precisely.
        if let Some(status) = raw_status(&response) {
            assert_eq!(status, 400, "{path}: {response}");
            assert!(
                response.contains("\"code\":\"body_incomplete\""),
                "{path}: {response}"
            );
        } else {
            eprintln!("{path}: closed without an answer");
        }
    }
    assert_still_serving(&app).await;
}
