//! Keys limited to sites (a gateway's writes only its site; a dashboard's
//! sees only its site), key management over `/api/v1/api-keys`, expiry
//! and rotation.

use crate::helpers::*;
use reqwest::StatusCode;
use serde_json::{Value, json};
use stoker_domain::EpochMillis;

const A: &str = "boiler-house-1";
const B: &str = "b-2";

/// A client that sends `token` as its key.
fn client(token: &str) -> reqwest::Client {
    reqwest::Client::builder()
        .default_headers(
            [(
                reqwest::header::AUTHORIZATION,
                format!("Bearer {token}").parse().unwrap(),
            )]
            .into_iter()
            .collect(),
        )
        .build()
        .unwrap()
}

/// Sends a request; status and body (JSON, or the text as a string).
async fn send(
    client: &reqwest::Client,
    method: reqwest::Method,
    url: String,
    body: Option<Value>,
) -> (StatusCode, Value) {
    let mut request = client.request(method, url);
    if let Some(body) = body {
        request = request.json(&body);
    }
    let response = request.send().await.unwrap();
    let status = response.status();
    let text = response.text().await.unwrap();
    let body = serde_json::from_str(&text).unwrap_or(Value::String(text));
    (status, body)
}

/// Creates a key over the API (as the test's admin); its JSON, with its token.
async fn create_key(app: &TestApp, body: Value) -> Value {
    let (status, key) = app.post("/api/v1/api-keys", body).await;
    assert_eq!(status, StatusCode::CREATED, "{key}");
    key
}

fn token(key: &Value) -> String {
    key["token"].as_str().unwrap().to_owned()
}

#[tokio::test]
async fn a_gateway_key_for_one_site_gets_403_writing_to_another() {
    let app = spawn_seeded_app().await;
    app.seed_second_site().await;
    let gateway = token(
        &create_key(
            &app,
            json!({"name": "gw-bh1", "scopes": ["write"], "sites": [A]}),
        )
        .await,
    );
    let gateway_admin = token(
        &create_key(
            &app,
            json!({"name": "gw-admin-bh1", "scopes": ["admin"], "sites": [A]}),
        )
        .await,
    );
    let writer = client(&gateway);
    let base = &app.base;
    let post = reqwest::Method::POST;

    // JSON telemetry.
    let (status, body) = send(
        &writer,
        post.clone(),
        format!("{base}/api/v1/sites/{B}/telemetry"),
        Some(json!({"b2_flue_temp": 180.0})),
    )
    .await;
    assert_eq!(
        (status, body["code"].as_str()),
        (StatusCode::FORBIDDEN, Some("forbidden_site")),
        "{body}"
    );
    let (status, body) = send(
        &writer,
        post.clone(),
        format!("{base}/api/v1/sites/{A}/telemetry"),
        Some(json!({"b1_steam_pressure": 10.4})),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");

    // Line protocol: a bucket or database of another site, or a line's
    // site tag.
    let at = EpochMillis::now().as_millis();
    let line_b = format!("modbus b2_flue_temp=181.5 {at}\n");
    for path in [
        format!("/api/v2/write?org=o&bucket={B}&precision=ms"),
        format!("/write?db={B}&precision=ms"),
    ] {
        let response = reqwest::Client::new()
            .post(format!("{base}{path}"))
            .header("authorization", format!("Token {gateway}"))
            .body(line_b.clone())
            .send()
            .await
            .unwrap();
        let status = response.status();
        let text = response.text().await.unwrap();
        assert_eq!(status, StatusCode::FORBIDDEN, "{path}: {text}");
        assert!(
            text.contains("forbidden_site") && text.contains("line 1"),
            "{path}: {text}"
        );
    }
    let mixed =
        format!("modbus b1_steam_pressure=10.5 {at}\nmodbus,site={B} b2_flue_temp=181.5 {at}\n");
    let response = reqwest::Client::new()
        .post(format!("{base}/api/v2/write?bucket={A}&precision=ms"))
        .header("authorization", format!("Token {gateway}"))
        .body(mixed)
        .send()
        .await
        .unwrap();
    let status = response.status();
    let text = response.text().await.unwrap();
    assert_eq!(status, StatusCode::BAD_REQUEST, "{text}");
    assert!(
        text.contains("line 2: site \\\"b-2\\\"")
            && text.contains("(forbidden_site)")
            && text.contains("stored=1"),
        "{text}"
    );
    // Counted like every refusal.
    let metrics = reqwest::get(format!("{base}/metrics"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        metrics.contains("stoker_ingest_readings_rejected_total{reason=\"forbidden_site\"} 3"),
        "{}",
        metrics
            .lines()
            .filter(|line| line.contains("rejected_total"))
            .collect::<Vec<_>>()
            .join("\n")
    );

    // The gateway (Sparkplug binding) routes of another site.
    let admin = client(&gateway_admin);
    let (status, body) = send(
        &admin,
        post.clone(),
        format!("{base}/api/v1/sites/{B}/gateways"),
        Some(json!({"group": "plant", "edge_node": "gw2"})),
    )
    .await;
    assert_eq!(
        (status, body["code"].as_str()),
        (StatusCode::FORBIDDEN, Some("forbidden_site")),
        "{body}"
    );
    let (status, body) = send(
        &admin,
        reqwest::Method::GET,
        format!("{base}/api/v1/sites/{B}/gateways"),
        None,
    )
    .await;
    assert_eq!(status, StatusCode::FORBIDDEN, "{body}");
    let (status, body) = send(
        &admin,
        post,
        format!("{base}/api/v1/sites/{A}/gateways"),
        Some(json!({"group": "plant", "edge_node": "gw1"})),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
}

#[tokio::test]
async fn a_dashboard_key_for_one_site_sees_only_that_site() {
    let app = spawn_seeded_app().await;
    app.seed_second_site().await;
    let rule_a = app.create_rule(threshold_rule()).await;
    let mut on_b = threshold_rule();
    on_b["site"] = json!(B);
    on_b["sensor_type"] = json!("temperature");
    let rule_b = app.create_rule(on_b).await;
    app.create_rule(silent_flue_rule()).await;
    let at = EpochMillis::now().as_millis() - 60_000;
    let alert_a = app.open_alert(&rule_a, A, "b1_steam_pressure", at).await;
    let alert_b = app.open_alert(&rule_b, B, "b2_flue_temp", at).await;
    let dashboard = token(
        &create_key(
            &app,
            json!({"name": "dashboard-bh1", "scopes": ["read"], "sites": [A]}),
        )
        .await,
    );
    let reader = client(&dashboard);
    let base = &app.base;
    let get = |path: String| send(&reader, reqwest::Method::GET, format!("{base}{path}"), None);

    let (status, sites) = get("/api/v1/sites".into()).await;
    assert_eq!(status, StatusCode::OK, "{sites}");
    assert_eq!(strings(&sites["items"], ["slug"]), [[A]]);
    let (_, rules) = get("/api/v1/alert-rules".into()).await;
    let ids: Vec<String> = strings(&rules["items"], ["id"])
        .into_iter()
        .map(|[id]| id.to_owned())
        .collect();
    assert_eq!(ids, [rule_a.id.to_string()], "{rules}");
    let (_, alerts) = get("/api/v1/alerts".into()).await;
    assert_eq!(strings(&alerts["items"], ["id"]), [[alert_a.as_str()]]);
    let (_, alerts) = get(format!("/api/v1/alerts?site={B}")).await;
    assert_eq!(alerts["items"], json!([]));

    for path in [
        format!("/api/v1/sites/{A}/dashboard"),
        format!("/api/v1/sites/{A}/latest"),
        format!("/api/v1/sites/{A}/sensors/b1_steam_pressure/history?format=csv"),
        format!("/api/v1/alert-rules/{}", rule_a.id),
        format!("/api/v1/alerts/{alert_a}"),
    ] {
        let (status, body) = get(path.clone()).await;
        assert_eq!(status, StatusCode::OK, "{path}: {body}");
    }
    for path in [
        format!("/api/v1/sites/{B}"),
        format!("/api/v1/sites/{B}/dashboard"),
        format!("/api/v1/sites/{B}/latest"),
        format!("/api/v1/sites/{B}/sensors"),
        format!("/api/v1/sites/{B}/sensors/b2_flue_temp/history?format=csv"),
        format!("/api/v1/alert-rules/{}", rule_b.id),
        format!("/api/v1/alerts/{alert_b}"),
    ] {
        let (status, body) = get(path.clone()).await;
        assert_eq!(
            (status, body["code"].as_str()),
            (StatusCode::FORBIDDEN, Some("forbidden_site")),
            "{path}: {body}"
        );
    }
}

#[tokio::test]
async fn keys_are_created_listed_rotated_and_revoked_over_the_api() {
    let app = spawn_seeded_app().await;
    let created = create_key(
        &app,
        json!({"name": "grafana", "scopes": ["read"], "sites": [A], "expires": "90d"}),
    )
    .await;
    for field in ["id", "key_id", "created_at", "expires_at", "token"] {
        assert!(created[field].is_string(), "{field}: {created}");
    }
    assert_eq!(created["sites"], json!([A]));
    assert_eq!(created["scopes"], json!(["read"]));
    assert_eq!(
        (&created["revoked"], &created["expired"]),
        (&json!(false), &json!(false))
    );
    assert!(created.get("secret_sha256").is_none(), "{created}");
    let old = token(&created);

    let (status, listed) = app.get("/api/v1/api-keys").await;
    assert_eq!(status, StatusCode::OK, "{listed}");
    let grafana = listed["items"]
        .as_array()
        .unwrap()
        .iter()
        .find(|key| key["name"] == "grafana")
        .unwrap();
    assert_eq!(grafana["key_id"], created["key_id"]);
    assert!(grafana.get("token").is_none() && grafana.get("secret_sha256").is_none());
    assert!(
        !listed.to_string().contains(&old[17..]),
        "a secret is listed"
    );

    let latest = format!("{}/api/v1/sites/{A}/latest", app.base);
    let status_of = |token: String| {
        let latest = latest.clone();
        async move {
            let (status, body) = send(&client(&token), reqwest::Method::GET, latest, None).await;
            (status, body["code"].as_str().unwrap_or("").to_owned())
        }
    };
    // Rotated with an hour's grace: both secrets are taken.
    let (status, rotated) = app
        .post("/api/v1/api-keys/grafana/rotate", json!({"grace": "1h"}))
        .await;
    assert_eq!(status, StatusCode::OK, "{rotated}");
    let new = token(&rotated);
    assert_ne!(new, old);
    assert!(rotated["rotated_at"].is_string() && rotated["previous_valid_until"].is_string());
    assert_eq!(status_of(old.clone()).await.0, StatusCode::OK);
    assert_eq!(status_of(new.clone()).await.0, StatusCode::OK);
    // Rotated again without grace: the one before is expired at once.
    let (status, rotated) = app
        .post("/api/v1/api-keys/grafana/rotate", json!({"grace": "0s"}))
        .await;
    assert_eq!(status, StatusCode::OK, "{rotated}");
    let newest = token(&rotated);
    assert_eq!(
        status_of(new).await,
        (StatusCode::UNAUTHORIZED, "expired_api_key".to_owned())
    );
    assert_eq!(status_of(newest.clone()).await.0, StatusCode::OK);

    // Revoked: 401 at once.
    let (status, revoked) = send(
        &app.http,
        reqwest::Method::DELETE,
        format!("{}/api/v1/api-keys/grafana", app.base),
        None,
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{revoked}");
    assert_eq!(revoked["revoked"], json!(true));
    assert_eq!(
        status_of(newest).await,
        (StatusCode::UNAUTHORIZED, "revoked_api_key".to_owned())
    );
    let (status, body) = app.post("/api/v1/api-keys/grafana/rotate", json!({})).await;
    assert_eq!(status, StatusCode::NOT_FOUND, "{body}");

    // A key past its expiry is 401 expired_api_key.
    let short = token(
        &create_key(
            &app,
            json!({"name": "short", "scopes": ["read"], "expires": "1s"}),
        )
        .await,
    );
    assert_eq!(status_of(short.clone()).await.0, StatusCode::OK);
    tokio::time::sleep(std::time::Duration::from_millis(1200)).await;
    assert_eq!(
        status_of(short).await,
        (StatusCode::UNAUTHORIZED, "expired_api_key".to_owned())
    );

    // Bad fields, each named.
    let (status, body) = app
        .post(
            "/api/v1/api-keys",
            json!({"name": "x", "scopes": ["root"], "sites": ["Not A Slug"], "expires": "soon", "extra": 1}),
        )
        .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
    let mut fields: Vec<&str> = strings(&body["errors"], ["field"])
        .into_iter()
        .map(|[field]| field)
        .collect();
    fields.sort_unstable();
    assert_eq!(fields, ["expires", "extra", "scopes", "sites"], "{body}");
    let (status, body) = app
        .post(
            "/api/v1/api-keys",
            json!({"name": "x", "scopes": ["read"], "sites": ["nowhere"]}),
        )
        .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body}");

    // A key limited to sites manages no keys: it could widen itself.
    let limited_admin = token(
        &create_key(
            &app,
            json!({"name": "site-admin", "scopes": ["admin"], "sites": [A]}),
        )
        .await,
    );
    let (status, body) = send(
        &client(&limited_admin),
        reqwest::Method::POST,
        format!("{}/api/v1/api-keys", app.base),
        Some(json!({"name": "wider", "scopes": ["admin"]})),
    )
    .await;
    assert_eq!(
        (status, body["code"].as_str()),
        (StatusCode::FORBIDDEN, Some("forbidden_site")),
        "{body}"
    );
}
