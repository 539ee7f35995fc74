//! Sites and sensors: created, listed, read, changed with versions,
//! listed in pages, deleted; bad input gets a precise problem.

use crate::helpers::*;
use reqwest::StatusCode;
use serde_json::{Value, json};

#[tokio::test]
async fn sites_and_sensors_are_created_and_listed() {
    let app = spawn_seeded_app().await;
    let (status, sites) = app.get("/api/v1/sites").await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(sites["items"][0]["slug"], "boiler-house-1");
    assert_eq!(sites["items"][0]["timezone"], "Europe/Berlin");
    assert_eq!(sites["items"][0]["version"], 1);

    let (status, site) = app.get("/api/v1/sites/boiler-house-1").await;
    assert_eq!(
        (status, &site["name"]),
        (StatusCode::OK, &json!("Boiler house 1"))
    );

    let (status, sensors) = app.get("/api/v1/sites/boiler-house-1/sensors").await;
    assert_eq!(status, StatusCode::OK);
    let keys: Vec<&str> = sensors["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["key"].as_str().unwrap())
        .collect();
    assert_eq!(keys, ["b1_flue_temp", "b1_steam_pressure"]);
    assert_eq!(sensors["items"][1]["type"], "pressure");
    assert_eq!(sensors["items"][1]["max"], 600.0);
}

#[tokio::test]
async fn bad_input_gets_a_precise_problem() {
    let app = spawn_seeded_app().await;

    let (status, problem) = app
        .post_site(json!({"slug": "Boiler House", "timezone": 5, "colour": "red"}))
        .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(problem["code"], "validation_failed");
    let fields: Vec<&str> = problem["errors"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["field"].as_str().unwrap())
        .collect();
    assert_eq!(fields, ["slug", "name", "timezone", "colour"], "{problem}");

    let (status, problem) = app
        .post_site(json!({"slug": "x", "name": "X", "timezone": "Mars/Base"}))
        .await;
    assert_eq!(
        (status, problem["errors"][0]["field"].as_str()),
        (StatusCode::UNPROCESSABLE_ENTITY, Some("timezone"))
    );

    let (status, problem) = app
        .post_site(json!({"slug": "boiler-house-1", "name": "Again"}))
        .await;
    assert_eq!(
        (status, problem["code"].as_str()),
        (StatusCode::CONFLICT, Some("conflict"))
    );

    let (status, problem) = app
        .post_sensor(
            "boiler-house-1",
            json!({"key": "t", "type": "temperature", "unit": "°C", "min": 10, "max": 5}),
        )
        .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(
        problem["errors"][0]["message"]
            .as_str()
            .unwrap()
            .contains("min (10) must be below max (5)"),
        "{problem}"
    );

    let (status, problem) = app
        .post_sensor(
            "nowhere",
            json!({"key": "t", "type": "temperature", "unit": "°C"}),
        )
        .await;
    assert_eq!(
        (status, problem["code"].as_str()),
        (StatusCode::NOT_FOUND, Some("not_found"))
    );

    let response = app
        .http
        .post(format!("{}/api/v1/sites", app.base))
        .body("{oops")
        .header("content-type", "application/json")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::BAD_REQUEST);
    let problem: Value = response.json().await.unwrap();
    assert_eq!(problem["code"], "malformed_json");

    let response = app
        .http
        .post(format!("{}/api/v1/sites", app.base))
        .body("slug=x")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::UNSUPPORTED_MEDIA_TYPE);

    let (status, problem) = app.get("/api/v1/sites/Not%20A%20Slug").await;
    assert_eq!(
        (status, problem["code"].as_str()),
        (StatusCode::NOT_FOUND, Some("not_found"))
    );
    let (status, problem) = app.get("/api/v1/nothing-here").await;
    assert_eq!(
        (status, problem["code"].as_str()),
        (StatusCode::NOT_FOUND, Some("route_not_found"))
    );
}

#[tokio::test]
async fn sites_and_sensors_change_with_versions_and_list_in_pages() {
    let app = spawn_seeded_app().await;
    let site = "/api/v1/sites/boiler-house-1";

    // Read: the version is the ETag.
    let (status, headers, body) = app.get_with_headers(site).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(headers["etag"], "\"1\"");
    assert_eq!(body["version"], 1);

    // Change with the version read; again with the same (stale) version.
    let rename = json!({"name": "Boiler house one", "version": 1});
    let (status, headers, body) = app.patch(site, rename.clone()).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(
        (body["name"].as_str(), body["version"].as_i64()),
        (Some("Boiler house one"), Some(2))
    );
    assert_eq!(headers["etag"], "\"2\"");
    let (status, _, body) = app.patch(site, rename).await;
    assert_eq!(status, StatusCode::CONFLICT);
    assert_eq!(body["code"], "version_conflict");
    // If-Match instead of a version in the body.
    let (status, _, body) = app
        .patch_if_match(site, json!({"timezone": "UTC"}), "\"2\"")
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["timezone"], "UTC");
    for (patch, field) in [
        (json!({"name": "x"}), "version"),
        (json!({"slug": "elsewhere", "version": 3}), "slug"),
        (
            json!({"timezone": "Mars/Olympus", "version": 3}),
            "timezone",
        ),
        (json!({"colour": "red", "version": 3}), "colour"),
    ] {
        let (status, _, body) = app.patch(site, patch).await;
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{field}: {body}");
        assert_eq!(body["errors"][0]["field"], field, "{body}");
    }
    let (status, _, body) = app
        .patch_if_match(site, json!({"name": "x"}), "yesterday")
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");

    // Pages: five sites, two per page, each once, in order.
    for slug in ["b-2", "b-3", "b-4", "b-5"] {
        let (status, _) = app.post_site(json!({"slug": slug, "name": slug})).await;
        assert_eq!(status, StatusCode::CREATED);
    }
    let mut seen = Vec::new();
    let mut path = "/api/v1/sites?limit=2".to_owned();
    for page in 0.. {
        let (status, _, body) = app.get_with_headers(&path).await;
        assert_eq!(status, StatusCode::OK, "{body}");
        let items = body["items"].as_array().unwrap();
        assert!(items.len() <= 2);
        seen.extend(
            items
                .iter()
                .map(|site| site["slug"].as_str().unwrap().to_owned()),
        );
        match body["next_cursor"].as_str() {
            Some(cursor) => path = format!("/api/v1/sites?limit=2&cursor={cursor}"),
            None => {
                assert_eq!(page, 2, "three pages");
                break;
            }
        }
    }
    assert_eq!(seen, ["b-2", "b-3", "b-4", "b-5", "boiler-house-1"]);
    for query in ["limit=0", "limit=x", "cursor=zz", "order=desc"] {
        let (status, _, body) = app
            .get_with_headers(&format!("/api/v1/sites?{query}"))
            .await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{query}");
        assert_eq!(body["code"], "invalid_parameter");
    }

    // Sensors: one by key, changed (a bound cleared), listed in pages.
    let sensor = "/api/v1/sites/boiler-house-1/sensors/b1_flue_temp";
    let (status, headers, body) = app.get_with_headers(sensor).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(headers["etag"], "\"1\"");
    assert_eq!(
        (body["min"].as_f64(), body["max"].as_f64()),
        (Some(0.0), Some(600.0))
    );
    let (status, _, body) = app
        .patch(
            sensor,
            json!({"min": null, "max": 650, "unit": "degC", "version": 1}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(
        (
            body["min"].as_f64(),
            body["max"].as_f64(),
            body["unit"].as_str()
        ),
        (None, Some(650.0), Some("degC"))
    );
    let (status, _, body) = app.patch(sensor, json!({"min": 700, "version": 2})).await;
    assert_eq!(
        status,
        StatusCode::UNPROCESSABLE_ENTITY,
        "min above max: {body}"
    );
    let (_, _, body) = app
        .get_with_headers("/api/v1/sites/boiler-house-1/sensors?limit=1")
        .await;
    assert_eq!(body["items"].as_array().unwrap().len(), 1);
    assert!(body["next_cursor"].is_string());

    // Deleting: a site with sensors says so; a stale version is refused.
    let (status, _, body) = app.delete(site).await;
    assert_eq!(status, StatusCode::CONFLICT);
    assert_eq!(body["code"], "has_dependents");
    assert!(body["detail"].as_str().unwrap().contains('2'), "{body}");
    let (status, _, _) = app.delete_if_match(sensor, "\"1\"").await;
    assert_eq!(status, StatusCode::CONFLICT);
    let (status, _, _) = app.delete_if_match(sensor, "\"2\"").await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    let (status, _, _) = app.get_with_headers(sensor).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let (status, _, _) = app
        .delete("/api/v1/sites/boiler-house-1/sensors/b1_steam_pressure")
        .await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    let (status, _, _) = app.delete(site).await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    let (status, _, _) = app.get_with_headers(site).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
}
