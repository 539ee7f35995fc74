//! The per-site dashboard: cached, dropped when its site changes, with
//! the open alerts.

use crate::helpers::*;
use reqwest::StatusCode;
use serde_json::{Value, json};
use stoker_domain::EpochMillis;

#[tokio::test]
async fn the_dashboard_is_cached_and_dropped_when_its_site_changes() {
    let app = spawn_seeded_app().await;
    let (status, body) = app
        .post_telemetry("boiler-house-1", json!({"b1_steam_pressure": 10.5}))
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let (status, headers, dashboard) = app.get_dashboard("boiler-house-1").await;
    assert_eq!(status, StatusCode::OK, "{dashboard}");
    assert_eq!(headers["x-cache"], "miss");
    assert_eq!(
        dashboard["counts"],
        json!({"ok": 1, "stale": 1, "out_of_range": 0, "alerting": 0})
    );
    let sensors = dashboard["sensors"].as_array().unwrap();
    assert_eq!(
        (sensors[0]["sensor"].as_str(), sensors[0]["status"].as_str()),
        (Some("b1_flue_temp"), Some("stale"))
    );
    assert_eq!(
        (sensors[1]["value"].as_f64(), sensors[1]["status"].as_str()),
        (Some(10.5), Some("ok"))
    );
    assert_eq!(dashboard["open_alerts"], json!([]));
    let (_, headers, again) = app.get_dashboard("boiler-house-1").await;
    assert_eq!(headers["x-cache"], "hit");
    assert_eq!(again, dashboard);

    // The sensor's range changes: the cached dashboard goes, and the new
    // one says the value is out of range.
    let (status, _, body) = app
        .patch(
            "/api/v1/sites/boiler-house-1/sensors/b1_steam_pressure",
            json!({"max": 10, "version": 1}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let mut fresh = Value::Null;
    for _ in 0..100 {
        let (_, headers, body) = app.get_dashboard("boiler-house-1").await;
        if headers["x-cache"] == "miss" {
            fresh = body;
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    assert_eq!(fresh["sensors"][1]["status"], "out_of_range", "{fresh}");
    let (status, _, _) = app.get_dashboard("nowhere").await;
    assert_eq!(status, StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn the_dashboard_shows_open_alerts_and_their_sensors_as_alerting() {
    let app = spawn_seeded_app().await;
    app.seed_second_site().await;
    for (site, body) in [
        (
            "boiler-house-1",
            json!({"b1_steam_pressure": 10.5, "b1_flue_temp": 180.0}),
        ),
        ("b-2", json!({"b2_flue_temp": 175.0})),
    ] {
        let (status, answer) = app.post_telemetry(site, body).await;
        assert_eq!(status, StatusCode::OK, "{answer}");
    }
    let pressure = app.create_rule(threshold_rule()).await;
    let silent = app.create_rule(silent_flue_rule()).await;
    let at = EpochMillis::now().as_millis() - 60_000;
    let id = app
        .open_alert(&pressure, "boiler-house-1", "b1_steam_pressure", at)
        .await;
    // Another site's alert is not this site's.
    app.open_alert(&silent, "b-2", "b2_flue_temp", at).await;

    let _path = "/api/v1/sites/boiler-house-1/dashboard";
    let (status, _, board) = app.get_dashboard("boiler-house-1").await;
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
    let (status, _) = app.change_alert(&id, "resolve").await;
    assert_eq!(status, StatusCode::OK);
    let (_, headers, board) = app.get_dashboard("boiler-house-1").await;
    assert_eq!(headers["x-cache"], "miss");
    assert_eq!(
        board["counts"],
        json!({"ok": 2, "stale": 0, "out_of_range": 0, "alerting": 0})
    );
    assert_eq!(board["open_alerts"], json!([]));
}
