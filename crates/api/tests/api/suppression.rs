//! Alarm suppression over the API: a rule's `suppress_when` checked
//! against the site's sensors, sensors and rules out of service, and
//! maintenance windows, each change in the audit trail.

use crate::helpers::*;
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

fn fields(problem: &Value) -> Vec<&str> {
    problem["errors"]
        .as_array()
        .map(|errors| {
            errors
                .iter()
                .filter_map(|error| error["field"].as_str())
                .collect()
        })
        .unwrap_or_default()
}

#[tokio::test]
async fn suppress_when_names_a_sensor_of_the_site_of_a_kind_that_fits() {
    let app = spawn_seeded_app().await;
    let mut rule = threshold_rule();
    rule["suppress_when"] = json!({"sensor": "b1_burner_on", "op": "==", "value": false});
    let (status, _, problem) = app.post_rule(rule.clone()).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{problem}");
    assert_eq!(fields(&problem), ["suppress_when"], "{problem}");
    assert!(
        problem
            .to_string()
            .contains("does not exist at site boiler-house-1"),
        "{problem}"
    );
    // A numeric sensor is compared with a number, not a boolean.
    rule["suppress_when"]["sensor"] = json!("b1_flue_temp");
    let (status, _, problem) = app.post_rule(rule.clone()).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{problem}");
    assert_eq!(fields(&problem), ["suppress_when"], "{problem}");
    // A value of the wrong type for its op.
    rule["suppress_when"] = json!({"sensor": "b1_flue_temp", "op": "==", "value": 100});
    let (status, _, problem) = app.post_rule(rule.clone()).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{problem}");
    assert_eq!(fields(&problem), ["suppress_when"], "{problem}");

    rule["suppress_when"] = json!({"sensor": "b1_flue_temp", "op": "<", "value": 100});
    let (status, _, created) = app.post_rule(rule).await;
    assert_eq!(status, StatusCode::CREATED, "{created}");
    assert_eq!(
        created["suppress_when"],
        json!({"sensor": "b1_flue_temp", "op": "<", "value": 100.0})
    );
    assert!(created["out_of_service"].is_null());
    let id = created["id"].as_str().unwrap();
    let (status, read) = app.get(&format!("/api/v1/alert-rules/{id}")).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(read["suppress_when"], created["suppress_when"]);
    // A PATCH may drop it.
    let (status, _, patched) = app
        .patch(
            &format!("/api/v1/alert-rules/{id}"),
            json!({"suppress_when": null, "version": 1}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{patched}");
    assert!(patched["suppress_when"].is_null());
}

#[tokio::test]
async fn sensors_and_rules_go_out_of_service_and_back_audited() {
    let app = spawn_seeded_app().await;
    let path = "/api/v1/sites/boiler-house-1/sensors/b1_flue_temp/out-of-service";
    let (status, _, problem) = app
        .send(
            Method::PUT,
            path,
            Some(json!({"until": "2020-01-01T00:00:00Z", "reason": "calibration"})),
            &[],
        )
        .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{problem}");
    assert_eq!(fields(&problem), ["until"]);
    let (status, _, problem) = app
        .send(
            Method::PUT,
            path,
            Some(json!({"until": "2099-01-01T00:00:00Z"})),
            &[],
        )
        .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{problem}");
    assert_eq!(fields(&problem), ["reason"]);

    let (status, headers, sensor) = app
        .send(
            Method::PUT,
            path,
            Some(json!({"until": "2099-01-01T00:00:00Z", "reason": " calibration "})),
            &[],
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{sensor}");
    assert_eq!(headers["etag"], "\"1\"", "the version stays");
    assert_eq!(sensor["out_of_service"]["reason"], "calibration");
    assert_eq!(sensor["out_of_service"]["until"], "2099-01-01T00:00:00Z");
    let (_, read) = app
        .get("/api/v1/sites/boiler-house-1/sensors/b1_flue_temp")
        .await;
    assert_eq!(read["out_of_service"], sensor["out_of_service"]);
    let (status, _, back) = app.send(Method::DELETE, path, None, &[]).await;
    assert_eq!(status, StatusCode::OK, "{back}");
    assert!(back["out_of_service"].is_null());
    let (status, _, missing) = app
        .send(
            Method::DELETE,
            "/api/v1/sites/boiler-house-1/sensors/nope/out-of-service",
            None,
            &[],
        )
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND, "{missing}");

    let rule = app.create_rule(threshold_rule()).await;
    let rule_path = format!("/api/v1/alert-rules/{}/out-of-service", rule.id);
    let (status, _, out) = app
        .send(
            Method::PUT,
            &rule_path,
            Some(json!({"until": 4_102_444_800_000_i64, "reason": "commissioning"})),
            &[],
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{out}");
    assert_eq!(out["version"], 1);
    assert_eq!(out["out_of_service"]["reason"], "commissioning");

    let (status, trail) = app.get("/api/v1/audit?limit=100").await;
    assert_eq!(status, StatusCode::OK);
    let actions: Vec<(&str, &str)> = trail["items"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|event| {
            matches!(
                event["action"].as_str(),
                Some("out_of_service" | "in_service")
            )
        })
        .map(|event| {
            (
                event["entity"].as_str().unwrap(),
                event["action"].as_str().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        actions,
        [
            ("alert_rule", "out_of_service"),
            ("sensor", "in_service"),
            ("sensor", "out_of_service"),
        ],
        "newest first"
    );
}

#[tokio::test]
async fn maintenance_windows_are_created_listed_and_deleted_audited() {
    let app = spawn_seeded_app().await;
    for (body, field) in [
        (json!({"site": "boiler-house-1", "reason": "x"}), "weekly"),
        (
            json!({"site": "boiler-house-1", "starts_at": "2030-01-01T02:00:00Z", "ends_at": "2030-01-01T01:00:00Z", "reason": "x"}),
            "ends_at",
        ),
        (
            json!({"site": "boiler-house-1", "weekly": {"days": ["sunday"], "from": "02:00", "to": "04:00"}, "reason": "x"}),
            "weekly.days",
        ),
        (
            json!({"site": "boiler-house-1", "weekly": {"days": ["sun"], "from": "02:00", "to": "4pm"}, "reason": "x"}),
            "weekly.to",
        ),
        (
            json!({"site": "boiler-house-1", "weekly": {"days": ["sun"], "from": "02:00", "to": "04:00"}, "reason": " "}),
            "reason",
        ),
    ] {
        let (status, problem) = app.post("/api/v1/maintenance-windows", body).await;
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{problem}");
        assert_eq!(fields(&problem), [field], "{problem}");
    }
    let (status, problem) = app
        .post(
            "/api/v1/maintenance-windows",
            json!({"site": "nowhere", "starts_at": "2030-01-01T00:00:00Z", "ends_at": "2030-01-01T01:00:00Z", "reason": "x"}),
        )
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND, "{problem}");

    let (status, weekly) = app
        .post(
            "/api/v1/maintenance-windows",
            json!({"site": "boiler-house-1", "weekly": {"days": ["sun"], "from": "02:00", "to": "04:00"}, "reason": "burner service"}),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{weekly}");
    assert_eq!(
        weekly["weekly"],
        json!({"days": ["sun"], "from": "02:00", "to": "04:00"})
    );
    assert!(weekly["starts_at"].is_null());
    let (status, once) = app
        .post(
            "/api/v1/maintenance-windows",
            json!({"site": "boiler-house-1", "starts_at": "2030-01-01T00:00:00Z", "ends_at": 1_893_463_200_000_i64, "reason": "overhaul"}),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{once}");
    assert_eq!(once["ends_at"], "2030-01-01T02:00:00Z");

    let (status, page) = app
        .get("/api/v1/maintenance-windows?site=boiler-house-1&limit=1")
        .await;
    assert_eq!(status, StatusCode::OK, "{page}");
    assert_eq!(page["items"][0]["id"], weekly["id"]);
    let cursor = page["next_cursor"].as_str().unwrap();
    let (_, next) = app
        .get(&format!(
            "/api/v1/maintenance-windows?limit=1&cursor={cursor}"
        ))
        .await;
    assert_eq!(next["items"][0]["id"], once["id"]);
    let id = weekly["id"].as_str().unwrap();
    let (status, read) = app.get(&format!("/api/v1/maintenance-windows/{id}")).await;
    assert_eq!((status, &read), (StatusCode::OK, &weekly));
    let (status, _, _) = app
        .send(
            Method::DELETE,
            &format!("/api/v1/maintenance-windows/{id}"),
            None,
            &[],
        )
        .await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    let (status, _) = app.get(&format!("/api/v1/maintenance-windows/{id}")).await;
    assert_eq!(status, StatusCode::NOT_FOUND);

    let (status, trail) = app
        .get("/api/v1/audit?entity=maintenance_window&limit=100")
        .await;
    assert_eq!(status, StatusCode::OK, "{trail}");
    let actions: Vec<(&str, &str)> = trail["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|event| {
            (
                event["entity_id"].as_str().unwrap(),
                event["action"].as_str().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        actions,
        [
            (id, "deleted"),
            (once["id"].as_str().unwrap(), "created"),
            (id, "created"),
        ]
    );
}
