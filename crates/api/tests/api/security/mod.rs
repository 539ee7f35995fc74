//! Security: the authorization matrix over every route of the OpenAPI
//! document (so a new route is covered without touching this file),
//! injection attempts in every path and query parameter, oversized bodies
//! and headers, and slow clients.
//!
//! `authorization`: the matrix; `injection`: hostile values; `limits`:
//! sizes and slow clients; `rate_limits`: each key's request-rate budget
//! and the connection cap. Here: what they share.

use crate::helpers::*;
use reqwest::header::{HeaderMap, HeaderValue};
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use stoker_domain::EpochMillis;
use stoker_metadata::Actor;
use stoker_metadata::Scope;

mod authorization;
mod injection;
mod limits;
mod rate_limits;
mod sites;

pub(super) const SITE: &str = "boiler-house-1";

pub(super) const SENSOR: &str = "b1_steam_pressure";

/// An If-Match no resource has: PATCH and DELETE reach their handler and
/// stop at the version check, so the matrix changes nothing.
pub(super) const STALE: &str = "\"999\"";

/// The ids the path parameters take.
pub(super) struct Seeded {
    pub(super) rule: String,
    pub(super) alert: String,
    pub(super) gateway: String,
    /// A maintenance window of the site.
    pub(super) window: String,
    /// Another, for the site matrix's DELETE (windows have no version, so
    /// a DELETE is not stopped by a stale If-Match).
    pub(super) spare_window: String,
    /// An API key's name, for `/api-keys/{name}` (a key of its own, so
    /// that revoking or rotating it disturbs no case).
    pub(super) key_name: String,
}

/// The usual site and sensors, readings (InfluxDB and Redis), a rule and
/// an open alert of it, and a gateway bound to the site.
pub(super) async fn seed(app: &TestApp) -> Seeded {
    app.seed().await;
    let (status, body) = app
        .post_telemetry(
            SITE,
            json!({"b1_steam_pressure": 10.5, "b1_flue_temp": 180.0}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let rule = app.create_rule(threshold_rule()).await;
    let at = EpochMillis::now().as_millis() - 60_000;
    let alert = app.open_alert(&rule, SITE, SENSOR, at).await;
    let (status, gateway) = app
        .post_gateway(SITE, json!({"group": "plant", "edge_node": "gw1"}))
        .await;
    assert_eq!(status, StatusCode::CREATED, "{gateway}");
    let (status, window) = app
        .post(
            "/api/v1/maintenance-windows",
            json!({"site": SITE, "weekly": {"days": ["sun"], "from": "02:00", "to": "04:00"}, "reason": "burner service"}),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{window}");
    let (status, spare_window) = app
        .post(
            "/api/v1/maintenance-windows",
            json!({"site": SITE, "weekly": {"days": ["sat"], "from": "22:00", "to": "02:00"}, "reason": "cleaning"}),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{spare_window}");
    let key_name = "seeded-key".to_owned();
    key(app, &key_name, &[Scope::Read]).await;
    Seeded {
        rule: rule.id.to_string(),
        alert,
        gateway: gateway["id"].as_str().unwrap().to_owned(),
        window: window["id"].as_str().unwrap().to_owned(),
        spare_window: spare_window["id"].as_str().unwrap().to_owned(),
        key_name,
    }
}

/// One operation of the OpenAPI document.
#[derive(Debug, Clone)]
pub(super) struct Operation {
    pub(super) method: Method,
    pub(super) template: String,
    /// The scope its key needs (`x-scope`); none: open.
    pub(super) scope: Option<String>,
    pub(super) path_parameters: Vec<String>,
    pub(super) query_parameters: Vec<String>,
    pub(super) has_body: bool,
}

impl Operation {
    pub(super) fn name(&self) -> String {
        format!("{} {}", self.method, self.template)
    }

    /// The path with each parameter's real value, or `replace`'s for one.
    pub(super) fn path(&self, seeded: &Seeded, replace: Option<(&str, &str)>) -> String {
        let mut path = self.template.clone();
        for name in &self.path_parameters {
            let real = match name.as_str() {
                "site" => SITE,
                "sensor" => SENSOR,
                "rule" => seeded.rule.as_str(),
                "alert" => seeded.alert.as_str(),
                "gateway" => seeded.gateway.as_str(),
                "window" => seeded.window.as_str(),
                "name" => seeded.key_name.as_str(),
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
    pub(super) fn body(&self) -> Option<Value> {
        self.has_body.then(|| {
            if self.template.ends_with("/telemetry") {
                json!({ "b1_steam_pressure": 10.6 })
            } else {
                json!({})
            }
        })
    }

    /// The InfluxDB-compatible writes, which answer in InfluxDB's shapes
    /// rather than problem+json.
    pub(super) fn is_influx_compatible(&self) -> bool {
        matches!(self.template.as_str(), "/api/v2/write" | "/write")
    }

    /// The largest body the route takes (DESIGN.md: telemetry and line
    /// protocol 256 KiB; metadata 64 KiB).
    pub(super) fn body_limit(&self) -> usize {
        if self.template.ends_with("/telemetry") || self.is_influx_compatible() {
            256 * 1024
        } else {
            64 * 1024
        }
    }
}

/// Every operation the server documents, hence answers (a test in
/// `main.rs` checks that the two agree).
pub(super) async fn operations(app: &TestApp) -> Vec<Operation> {
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
pub(super) struct Answer {
    pub(super) status: StatusCode,
    pub(super) headers: HeaderMap,
    pub(super) body: Value,
}

impl Answer {
    pub(super) fn code(&self) -> &str {
        self.body["code"].as_str().unwrap_or("")
    }

    pub(super) fn is_problem(&self) -> bool {
        self.headers
            .get("content-type")
            .is_some_and(|value| value == "application/problem+json")
    }

    /// A 4xx in InfluxDB's shape, as the InfluxDB-compatible writes
    /// answer: 2.x `{"code","message"}`, 1.x `{"error"}`.
    pub(super) fn assert_influx_client_error(&self, case: &str) {
        assert!(
            self.status.is_client_error(),
            "{case}: {} {}",
            self.status,
            self.body
        );
        let said = self.body["message"]
            .as_str()
            .or(self.body["error"].as_str())
            .unwrap_or("");
        assert!(said.len() > 5, "{case}: no message: {}", self.body);
    }

    /// A 4xx `application/problem+json` with a code and a detail.
    pub(super) fn assert_precise_client_error(&self, case: &str) {
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
pub(super) async fn send(
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

pub(super) fn bearer(token: &str) -> HeaderValue {
    HeaderValue::from_str(&format!("Bearer {token}")).unwrap()
}

/// A new key with these scopes; its token.
pub(super) async fn key(app: &TestApp, name: &str, scopes: &[Scope]) -> String {
    let (_, token) = stoker_metadata::create_api_key(&app.pool, &Actor::Cli, name, scopes)
        .await
        .unwrap();
    token.expose().to_owned()
}

/// A new key with these scopes, limited to `sites`; its token.
pub(super) async fn site_key(
    app: &TestApp,
    name: &str,
    scopes: &[Scope],
    sites: &[&str],
) -> String {
    let new = stoker_metadata::NewApiKey {
        sites: Some(
            sites
                .iter()
                .map(|site| stoker_domain::SiteSlug::parse(*site).unwrap())
                .collect(),
        ),
        ..stoker_metadata::NewApiKey::new(name, scopes)
    };
    let (_, token) = stoker_metadata::create_api_key_with(&app.pool, &Actor::Cli, &new)
        .await
        .unwrap();
    token.expose().to_owned()
}

/// Runs the assertions of one case: 1 if they failed (the panic is
/// printed), else 0.
pub(super) fn checked(case: impl FnOnce()) -> usize {
    usize::from(std::panic::catch_unwind(std::panic::AssertUnwindSafe(case)).is_err())
}
