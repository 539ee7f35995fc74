//! The audit trail over the API: every change the tests make through it
//! appears in `GET /api/v1/audit` under the key's name, with the entity
//! before and after; filters, pages, a key limited to sites, and scopes.

use crate::helpers::*;
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use stoker_metadata::Actor;
use stoker_metadata::Scope;

/// Every event the admin key sees, oldest first, read a page of `limit`
/// at a time.
async fn trail(app: &TestApp, query: &str, limit: usize) -> Vec<Value> {
    let mut events = Vec::new();
    let mut cursor: Option<String> = None;
    loop {
        let mut path = format!("/api/v1/audit?limit={limit}{query}");
        if let Some(cursor) = &cursor {
            path.push_str(&format!("&cursor={cursor}"));
        }
        let (status, page) = app.get(&path).await;
        assert_eq!(status, StatusCode::OK, "{page}");
        let items = page["items"].as_array().unwrap();
        assert!(items.len() <= limit);
        events.extend(items.iter().cloned());
        match page["next_cursor"].as_str() {
            Some(next) => cursor = Some(next.to_owned()),
            None => break,
        }
    }
    events.reverse();
    events
}

/// `actor entity action entity_id` of each event.
fn lines(events: &[Value]) -> Vec<String> {
    events
        .iter()
        .map(|event| {
            format!(
                "{} {} {} {}",
                event["actor"].as_str().unwrap(),
                event["entity"].as_str().unwrap(),
                event["action"].as_str().unwrap(),
                event["entity_id"].as_str().unwrap()
            )
        })
        .collect()
}

#[tokio::test]
async fn every_change_made_through_the_api_appears_with_its_actor() {
    let app = spawn_seeded_app().await;
    let (status, site) = app.get("/api/v1/sites/boiler-house-1").await;
    assert_eq!(status, StatusCode::OK);
    let (status, _, body) = app
        .patch_if_match(
            "/api/v1/sites/boiler-house-1",
            json!({"name": "Kesselhaus 1"}),
            "\"1\"",
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let (status, _, body) = app
        .patch_if_match(
            "/api/v1/sites/boiler-house-1/sensors/b1_flue_temp",
            json!({"unit": "K"}),
            "\"1\"",
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let rule = app.create_rule(threshold_rule()).await;
    let (status, _, body) = app
        .patch_if_match(
            &format!("/api/v1/alert-rules/{}", rule.id),
            json!({"threshold": 13.0, "clear_threshold": 12.5}),
            "\"1\"",
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let (status, gateway) = app
        .post_gateway(
            "boiler-house-1",
            json!({"group": "plant", "edge_node": "gw-1"}),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{gateway}");
    let gateway_id = gateway["id"].as_str().unwrap().to_owned();
    let (status, _, body) = app
        .delete(&format!(
            "/api/v1/sites/boiler-house-1/gateways/{gateway_id}"
        ))
        .await;
    assert_eq!(status, StatusCode::NO_CONTENT, "{body}");
    let (status, key) = app
        .post(
            "/api/v1/api-keys",
            json!({"name": "dashboard", "scopes": ["read"]}),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{key}");
    let (status, body) = app
        .post("/api/v1/api-keys/dashboard/rotate", json!({}))
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let (status, _, body) = app.delete("/api/v1/api-keys/dashboard").await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let alert = app.open_pressure_alert(&rule).await;
    let (status, body) = app.change_alert(&alert, "ack").await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let (status, body) = app.change_alert(&alert, "resolve").await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let (status, _, body) = app
        .delete_if_match(&format!("/api/v1/alert-rules/{}", rule.id), "\"2\"")
        .await;
    assert_eq!(status, StatusCode::NO_CONTENT, "{body}");
    let (status, _, body) = app
        .delete("/api/v1/sites/boiler-house-1/sensors/b1_flue_temp")
        .await;
    assert_eq!(status, StatusCode::NO_CONTENT, "{body}");
    // A refused change (a stale version) records nothing.
    let (status, _, _) = app
        .patch_if_match(
            "/api/v1/sites/boiler-house-1",
            json!({"name": "x"}),
            "\"1\"",
        )
        .await;
    assert_eq!(status, StatusCode::CONFLICT);

    let all = trail(&app, "", 4).await;
    // The first: the test's own admin key, made with the CLI's actor.
    assert_eq!(lines(&all[..1]), ["cli api_key created tests"]);
    assert_eq!(all[0]["actor_kind"], "cli");
    let events = &all[1..];
    let rule_id = rule.id.to_string();
    assert_eq!(
        lines(events),
        [
            "tests site created boiler-house-1".to_owned(),
            "tests sensor created b1_steam_pressure".into(),
            "tests sensor created b1_flue_temp".into(),
            "tests site updated boiler-house-1".into(),
            "tests sensor updated b1_flue_temp".into(),
            format!("tests alert_rule created {rule_id}"),
            format!("tests alert_rule updated {rule_id}"),
            format!("tests gateway created {gateway_id}"),
            format!("tests gateway deleted {gateway_id}"),
            "tests api_key created dashboard".into(),
            "tests api_key rotated dashboard".into(),
            "tests api_key revoked dashboard".into(),
            format!("tests alert acknowledged {alert}"),
            format!("tests alert resolved {alert}"),
            format!("tests alert_rule deleted {rule_id}"),
            "tests sensor deleted b1_flue_temp".into(),
        ]
    );
    assert!(events.iter().all(|event| event["actor_kind"] == "api_key"));
    let site_update = &events[3];
    assert_eq!(site_update["before"], site);
    assert_eq!(site_update["after"]["name"], "Kesselhaus 1");
    assert_eq!(site_update["site"], "boiler-house-1");
    let rule_update = &events[6];
    assert_eq!(rule_update["before"]["threshold"], 12.5);
    assert_eq!(rule_update["after"]["threshold"], 13.0);
    let ack = &events[12];
    assert_eq!(ack["before"]["state"], "unacknowledged");
    assert_eq!(ack["after"]["state"], "acknowledged");
    assert_eq!(ack["after"]["acknowledged_by"], "tests");
    let created_key = &events[9];
    assert!(created_key["site"].is_null() && created_key["before"].is_null());
    let text = created_key["after"].to_string();
    assert!(!text.contains("stk_") && !text.contains("sha256"), "{text}");

    // Filters.
    let alerts = trail(&app, "&entity=alert", 50).await;
    assert_eq!(lines(&alerts).len(), 2);
    let keys = trail(&app, "&entity=api_key&actor=tests", 50).await;
    assert_eq!(keys.len(), 3, "the dashboard key's, by the tests key");
    assert_eq!(trail(&app, "&actor=cli", 50).await.len(), 1);
    let site_events = trail(&app, "&site=boiler-house-1", 50).await;
    assert_eq!(site_events.len(), events.len() - 3, "all but the key's");
    let first = all[0]["at"].as_str().unwrap();
    let last = all.last().unwrap()["at"].as_str().unwrap();
    let range = trail(
        &app,
        &format!("&start={first}&end=2100-01-01T00:00:00Z"),
        50,
    )
    .await;
    assert_eq!(range.len(), all.len());
    let none = trail(&app, &format!("&end={first}"), 50).await;
    assert!(none.is_empty(), "end is exclusive: {none:?}");
    assert!(first <= last);
}

#[tokio::test]
async fn a_key_limited_to_sites_sees_its_sites_events_and_others_need_admin() {
    let app = spawn_seeded_app().await;
    app.seed_second_site().await;
    let (_, limited) = stoker_metadata::create_api_key_with(
        &app.pool,
        &Actor::Cli,
        &stoker_metadata::NewApiKey {
            sites: Some(vec![stoker_domain::SiteSlug::parse("b-2").unwrap()]),
            ..stoker_metadata::NewApiKey::new("site admin", &[Scope::Admin])
        },
    )
    .await
    .unwrap();
    let (_, reader) = stoker_metadata::create_api_key(
        &app.pool,
        &Actor::Cli,
        "reader",
        &[Scope::Read, Scope::Write],
    )
    .await
    .unwrap();
    let as_key = |token: &str, path: &str| {
        let request = reqwest::Client::new()
            .request(Method::GET, format!("{}{path}", app.base))
            .bearer_auth(token.to_owned());
        async move {
            let response = request.send().await.unwrap();
            let status = response.status();
            (status, response.json::<Value>().await.unwrap())
        }
    };
    let (status, page) = as_key(limited.expose(), "/api/v1/audit").await;
    assert_eq!(status, StatusCode::OK, "{page}");
    let sites: Vec<&str> = page["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|event| event["site"].as_str().unwrap())
        .collect();
    assert_eq!(
        sites,
        ["b-2", "b-2"],
        "the site and its sensor, nothing else"
    );
    let (status, problem) = as_key(limited.expose(), "/api/v1/audit?site=boiler-house-1").await;
    assert_eq!(status, StatusCode::FORBIDDEN, "{problem}");
    assert_eq!(problem["code"], "forbidden_site");
    let (status, problem) = as_key(reader.expose(), "/api/v1/audit").await;
    assert_eq!(status, StatusCode::FORBIDDEN, "{problem}");
    for bad in [
        "entity=sites",
        "actor=",
        "start=yesterday",
        "cursor=zz",
        "cursor=2d31",
        "sort=id",
    ] {
        let (status, problem) = app.get(&format!("/api/v1/audit?{bad}")).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{bad}: {problem}");
    }
}
