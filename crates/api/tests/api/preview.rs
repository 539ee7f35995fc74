//! Rule previews: saved and draft rules replayed over readings in
//! InfluxDB, cached, refused precisely; alerts and previews without Redis.

use crate::alerts::NIL;
use crate::helpers::*;
use reqwest::StatusCode;
use serde_json::{Value, json};
use stoker_domain::{EpochMillis, SensorKey, SensorType, SiteSlug};
use stoker_timeseries::LineBatch;

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
    let (status, headers, answer) = app.post_preview(body).await;
    let cache = headers
        .get("x-cache")
        .map(|value| value.to_str().unwrap().to_owned())
        .unwrap_or_default();
    (status, cache, answer)
}

#[tokio::test]
async fn previews_replay_saved_and_draft_rules_over_stored_readings() {
    let app = spawn_seeded_app().await;
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
    let saved = app.create_rule(threshold_rule()).await;
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
        .patch(
            &format!("/api/v1/alert-rules/{}", saved.id),
            json!({"threshold": 20.0, "clear_threshold": 19.0, "version": 1}),
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
    let app = spawn_seeded_app().await;
    let saved = app.create_rule(threshold_rule()).await;
    let rule_id = saved.id.to_string();
    let end = (EpochMillis::now().as_millis() / 600_000 - 6) * 600_000;
    let day = 86_400_000_i64;

    // Body fields: 422 validation_failed, a draft's fields named rule.<field>.
    let mut bad_draft = threshold_rule();
    bad_draft["op"] = json!("=>");
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
            json!({"rule": {"name": "x", "kind": "threshold", "threshold": "very high", "colour": "red"}}),
            vec!["rule.colour", "rule.threshold"],
        ),
        (
            json!({"rule": {"name": "x", "kind": "threshold", "severity": "info"}}),
            vec!["rule.op"],
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
            ca_file: None,
        }),
        ..AppOptions::default()
    })
    .await;
    app.seed().await;
    let start = (EpochMillis::now().as_millis() / 600_000 - 12) * 600_000;
    write_pressure_episode(&app, start).await;
    let saved = app.create_rule(threshold_rule()).await;
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
    let id = app.open_pressure_alert(&saved).await;
    let (status, _, board) = app.get_dashboard("boiler-house-1").await;
    assert_eq!(status, StatusCode::OK, "{board}");
    assert_eq!(board["counts"]["alerting"], 1);
    for action in ["ack", "resolve"] {
        let (status, alert) = app.change_alert(&id, action).await;
        assert_eq!(status, StatusCode::OK, "{action}: {alert}");
    }
}
