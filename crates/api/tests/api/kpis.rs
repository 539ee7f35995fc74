//! `GET /alarm-kpis`: the recorded alarms' figures, every site's or one
//! site's, never another site's for a key limited to sites; the preview
//! reports the same object.

use crate::helpers::*;
use reqwest::StatusCode;
use serde_json::json;
use stoker_domain::EpochMillis;

const A: &str = "boiler-house-1";
const B: &str = "b-2";

#[tokio::test]
async fn alarm_kpis_measure_the_alarms_a_key_may_see() {
    let app = spawn_seeded_app().await;
    app.seed_second_site().await;
    let rule_a = app.create_rule(threshold_rule()).await;
    let mut on_b = threshold_rule();
    on_b["site"] = json!(B);
    on_b["sensor_type"] = json!("temperature");
    let rule_b = app.create_rule(on_b).await;
    let now = EpochMillis::now().as_millis();
    let first = app
        .open_alert(&rule_a, A, "b1_steam_pressure", now - 600_000)
        .await;
    app.open_alert(&rule_b, B, "b2_flue_temp", now - 300_000)
        .await;
    let (status, acknowledged) = app.change_alert(&first, "ack").await;
    assert_eq!(status, StatusCode::OK, "{acknowledged}");

    let (status, all) = app.get("/api/v1/alarm-kpis").await;
    assert_eq!(status, StatusCode::OK, "{all}");
    assert_eq!(all["site"], json!(null));
    assert_eq!(all["alarms"], 2, "{all}");
    assert_eq!(all["alarms_per_hour"], 2.0 / 24.0, "{all}");
    assert_eq!(all["peak_10min"], 1);
    assert_eq!(all["flood_share"], 0.0);
    assert_eq!(all["chattering"], 0);
    assert_eq!(all["stale"], 0);
    assert_eq!(all["suppressed"], 0);
    assert_eq!(all["top"].as_array().unwrap().len(), 2, "{all}");
    assert_eq!(all["top"][0]["rule_name"], "Steam pressure high");
    assert_eq!(all["time_to_ack_s"]["acknowledged"], 1);
    let median = all["time_to_ack_s"]["median"].as_f64().unwrap();
    assert!((600.0..700.0).contains(&median), "{all}");

    let (status, one) = app.get(&format!("/api/v1/alarm-kpis?site={B}")).await;
    assert_eq!(status, StatusCode::OK, "{one}");
    assert_eq!((one["site"].as_str(), &one["alarms"]), (Some(B), &json!(1)));
    let start = now - 3_600_000;
    let (status, window) = app
        .get(&format!(
            "/api/v1/alarm-kpis?start={start}&end={}",
            now - 400_000
        ))
        .await;
    assert_eq!(status, StatusCode::OK, "{window}");
    assert_eq!(
        window["alarms"], 1,
        "only the alarm of [start, end): {window}"
    );

    // A key limited to site A sees A's alarms only.
    let (status, key) = app
        .post(
            "/api/v1/api-keys",
            json!({"name": "kpis-bh1", "scopes": ["read"], "sites": [A]}),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{key}");
    let reader = reqwest::Client::new();
    let get = |path: String| {
        reader
            .get(format!("{}{path}", app.base))
            .bearer_auth(key["token"].as_str().unwrap())
            .send()
    };
    let response = get("/api/v1/alarm-kpis".into()).await.unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    let limited: serde_json::Value = response.json().await.unwrap();
    assert_eq!(limited["alarms"], 1, "{limited}");
    assert_eq!(limited["top"][0]["site"], A);
    let response = get(format!("/api/v1/alarm-kpis?site={B}")).await.unwrap();
    assert_eq!(response.status(), StatusCode::FORBIDDEN);
    let problem: serde_json::Value = response.json().await.unwrap();
    assert_eq!(problem["code"], "forbidden_site");

    // Unknown sites, parameters and ranges are refused.
    let (status, body) = app.get("/api/v1/alarm-kpis?site=nowhere").await;
    assert_eq!(status, StatusCode::NOT_FOUND, "{body}");
    for query in [
        "sites=a",
        "start=yesterday",
        &format!("start={now}&end={now}"),
    ] {
        let (status, body) = app.get(&format!("/api/v1/alarm-kpis?{query}")).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{query}: {body}");
    }

    // The preview reports the same figures for the alerts it replays.
    let (status, _, preview) = app
        .post_preview(json!({"rule_id": rule_a.id.to_string(), "start": now - 3_600_000}))
        .await;
    assert_eq!(status, StatusCode::OK, "{preview}");
    assert_eq!(
        preview["kpis"]["alarms"], 0,
        "no readings, no alerts: {preview}"
    );
    assert_eq!(preview["kpis"]["top"], json!([]));
    assert_eq!(preview["kpis"]["time_to_ack_s"]["median"], json!(null));
}
