//! Alert rules: created, changed (PATCH merged), listed, deleted.

use crate::helpers::*;
use reqwest::StatusCode;
use serde_json::json;

#[tokio::test]
async fn alert_rules_are_created_changed_listed_and_deleted() {
    let app = spawn_seeded_app().await;
    let (status, headers, rule) = app.post_rule(threshold_rule()).await;
    assert_eq!(status, StatusCode::CREATED, "{rule}");
    assert_eq!(headers["etag"], "\"1\"");
    for (field, value) in [
        ("kind", "threshold"),
        ("agg", "mean"),
        ("op", ">"),
        ("severity", "warning"),
        ("site", "boiler-house-1"),
    ] {
        assert_eq!(rule[field], value, "{field}: {rule}");
    }
    assert_eq!(rule["threshold"], 12.5);
    let path = format!("/api/v1/alert-rules/{}", rule["id"].as_str().unwrap());

    // Invalid rules name the field.
    for (change, field) in [
        (json!({"clear_threshold": 13.0}), "clear_threshold"),
        (json!({"op": "=>"}), "op"),
        (json!({"op": "=="}), "threshold"),
        (json!({"threshold": "high"}), "threshold"),
        (json!({"window": "soon"}), "window"),
        (json!({"site": null, "sensor_type": null}), "selector"),
        (json!({"timeout": "60s"}), "timeout"),
        (json!({"colour": "red"}), "colour"),
    ] {
        let mut body = threshold_rule();
        for (key, value) in change.as_object().unwrap() {
            body[key] = value.clone();
        }
        let (status, _, problem) = app.post_rule(body).await;
        assert_eq!(
            status,
            StatusCode::UNPROCESSABLE_ENTITY,
            "{field}: {problem}"
        );
        assert_eq!(problem["errors"][0]["field"], field, "{problem}");
    }

    // A PATCH merges; a new kind drops the old kind's values.
    let (status, _, changed) = app
        .patch(&path, json!({"threshold": 13.5, "version": 1}))
        .await;
    assert_eq!(status, StatusCode::OK, "{changed}");
    assert_eq!(
        (
            changed["threshold"].as_f64(),
            changed["clear_threshold"].as_f64()
        ),
        (Some(13.5), Some(12.0))
    );
    let (status, _, changed) = app
        .patch_if_match(&path, json!({"kind": "no_data", "timeout": "2m"}), "\"2\"")
        .await;
    assert_eq!(status, StatusCode::OK, "{changed}");
    assert_eq!(changed["kind"], "no_data");
    assert!(
        changed.get("threshold").is_none() || changed["threshold"].is_null(),
        "{changed}"
    );
    let (status, _, problem) = app
        .patch(&path, json!({"severity": "critical", "version": 2}))
        .await;
    assert_eq!(status, StatusCode::CONFLICT);
    assert_eq!(problem["code"], "version_conflict");

    // Listed, filtered, in pages.
    let (_, _, second) = app.post_rule(json!({"name": "Flue gas silent", "kind": "no_data", "sensor": "b1_flue_temp", "timeout": "5m", "severity": "critical"}))
        .await;
    let (_, _, page) = app.get_with_headers("/api/v1/alert-rules?limit=1").await;
    assert_eq!(page["items"].as_array().unwrap().len(), 1);
    let cursor = page["next_cursor"].as_str().unwrap().to_owned();
    let (_, _, next) = app
        .get_with_headers(&format!("/api/v1/alert-rules?limit=1&cursor={cursor}"))
        .await;
    assert_eq!(next["items"][0]["id"], second["id"]);
    assert!(next["next_cursor"].is_null());
    let (_, _, scoped) = app
        .get_with_headers("/api/v1/alert-rules?site=boiler-house-1")
        .await;
    assert_eq!(scoped["items"].as_array().unwrap().len(), 1);
    let (status, _, _) = app
        .get_with_headers("/api/v1/alert-rules?enabled=maybe")
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    let (status, _, _) = app.get_with_headers("/api/v1/alert-rules/not-a-uuid").await;
    assert_eq!(status, StatusCode::NOT_FOUND);

    let (status, _, _) = app.delete(&path).await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    let (status, _, _) = app.get_with_headers(&path).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
}
