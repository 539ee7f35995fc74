//! Telemetry over HTTP: answered once durable, each refusal named,
//! recorded and counted.

use crate::helpers::*;
use reqwest::StatusCode;
use serde_json::{Value, json};
use stoker_domain::{EpochMillis, SiteSlug};

#[tokio::test]
async fn telemetry_over_http_answers_once_durable_and_names_each_refusal() {
    let app = spawn_seeded_app().await;
    // No wait for ingestion's registry: an unknown sensor makes it look in
    // Postgres before refusing.
    let site = SiteSlug::parse("boiler-house-1").unwrap();
    let ts = EpochMillis::now().as_millis() - 10_000;
    let path = "/api/v1/sites/boiler-house-1/telemetry";

    // All accepted: durable when answered.
    let (status, body) = app
        .post(
            path,
            json!({"ts": ts, "values": {"b1_steam_pressure": 10.4, "b1_flue_temp": 181.2}}),
        )
        .await;
    assert_eq!(
        (status, body),
        (StatusCode::OK, json!({"accepted": 2, "rejected": []}))
    );
    assert_eq!(app.influx.influx().count_readings(&site).await.unwrap(), 2);

    // Partly refused: the answer names each refused reading and why.
    let (status, body) = app
        .post(path, json!([{"ts": ts + 1000, "values": {"b1_steam_pressure": 10.5, "b1_ghost": 1.0, "b1_flue_temp": 9999}}]))
        .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body["accepted"], 1);
    let reasons: Vec<(&str, &str)> = body["rejected"]
        .as_array()
        .unwrap()
        .iter()
        .map(|refused| {
            (
                refused["sensor"].as_str().unwrap(),
                refused["reason"].as_str().unwrap(),
            )
        })
        .collect();
    assert_eq!(reasons.len(), 2);
    assert!(
        reasons.contains(&("b1_ghost", "unknown_sensor"))
            && reasons.contains(&("b1_flue_temp", "out_of_range")),
        "{body}"
    );

    // Every reading refused: 422 with the list.
    let (status, problem) = app.post(path, json!({"b1_steam_pressure": "high"})).await;
    assert_eq!(
        (status, problem["code"].as_str()),
        (
            StatusCode::UNPROCESSABLE_ENTITY,
            Some("all_readings_rejected")
        )
    );
    assert_eq!(problem["rejected"][0]["reason"], "non_numeric");

    // Refused as a whole.
    let (status, problem) = app.post_telemetry("nowhere", json!({"a": 1})).await;
    assert_eq!(
        (status, problem["code"].as_str()),
        (StatusCode::NOT_FOUND, Some("unknown_site"))
    );
    let response = app
        .http
        .post(format!("{}{path}", app.base))
        .header("content-type", "application/json")
        .body("{not json")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::BAD_REQUEST);
    assert_eq!(
        response.json::<Value>().await.unwrap()["code"],
        "malformed_json"
    );
    let huge = format!(
        "{{\"b1_flue_temp\": 1, \"pad\": \"{}\"}}",
        "x".repeat(300 * 1024)
    );
    let response = app
        .http
        .post(format!("{}{path}", app.base))
        .header("content-type", "application/json")
        .body(huge)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::PAYLOAD_TOO_LARGE);
    assert_eq!(
        response.json::<Value>().await.unwrap()["code"],
        "payload_too_large"
    );
    assert_eq!(app.influx.influx().count_readings(&site).await.unwrap(), 3);

    // Each refusal is recorded in Postgres with source http.
    let pool = stoker_postgres::connect(&app.postgres.options()).unwrap();
    let client = pool.get().await.unwrap();
    let mut recorded = 0_i64;
    for _ in 0..100 {
        recorded = client
            .query_one(
                "SELECT count(*) FROM ingestion.rejected_readings WHERE source = 'http'",
                &[],
            )
            .await
            .unwrap()
            .get(0);
        if recorded == 6 {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    assert_eq!(
        recorded, 6,
        "ghost, out of range, non-numeric, unknown site, malformed, too large"
    );

    // The same, as Prometheus metrics.
    let response = app
        .http
        .get(format!("{}/metrics", app.base))
        .send()
        .await
        .unwrap();
    assert!(
        response.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("application/openmetrics-text")
    );
    let metrics = response.text().await.unwrap();
    for line in [
        "stoker_ingest_readings_accepted_total 3",
        "stoker_ingest_readings_rejected_total{reason=\"unknown_sensor\"} 1",
        "stoker_ingest_readings_rejected_total{reason=\"payload_too_large\"} 1",
        "stoker_ingest_spool_segments 0",
    ] {
        assert!(
            metrics.lines().any(|metric| metric == line),
            "no {line:?} in\n{metrics}"
        );
    }
    assert!(
        metrics.contains("stoker_ingest_write_seconds_bucket"),
        "{metrics}"
    );
}

/// A site and sensor created through the API take telemetry posted right
/// after, even when an unknown name made ingestion reload its registry a
/// moment before (forced reloads are otherwise at most one a second, and
/// the change notice may still be on its way).
#[tokio::test]
async fn telemetry_right_after_creating_its_site_and_sensor_is_accepted() {
    let app = spawn_app().await;
    let ts = EpochMillis::now().as_millis() - 10_000;
    // An unknown site: ingestion reloads its registry to be sure, then refuses.
    let (status, _) = app
        .post_telemetry("nowhere-yet", json!({"ts": ts, "values": {"t": 1.0}}))
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    for round in 0..3 {
        let site = format!("fresh-{round}");
        let (status, body) = app.post_site(json!({"slug": site, "name": "Fresh"})).await;
        assert_eq!(status, StatusCode::CREATED, "{body}");
        let (status, body) = app
            .post_sensor(
                &site,
                json!({"key": "t", "type": "temperature", "unit": "°C"}),
            )
            .await;
        assert_eq!(status, StatusCode::CREATED, "{body}");
        let (status, body) = app
            .post_telemetry(&site, json!({"ts": ts, "values": {"t": 21.5}}))
            .await;
        assert_eq!(status, StatusCode::OK, "round {round}: {body}");
        assert_eq!(body["accepted"], 1, "{body}");
    }
}
