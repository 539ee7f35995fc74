//! Sparkplug gateways: binding, listing, deleting, the online state of
//! gateways and their devices and the announced metrics the host records (through the metadata functions it
//! calls), and registering the unregistered metrics in one call.

use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use stoker_domain::{EpochMillis, SensorKey};
use stoker_metadata::Actor;
use stoker_metadata::{AnnouncedMetric, Scope};

use crate::helpers::{TestApp, spawn_seeded_app};

const SITE: &str = "boiler-house-1";

fn announced(device: Option<&str>, metric: &str, sensor: &str, datatype: &str) -> AnnouncedMetric {
    AnnouncedMetric {
        device: device.map(str::to_owned),
        metric: metric.to_owned(),
        sensor: SensorKey::parse(sensor).ok(),
        datatype: datatype.to_owned(),
    }
}

fn at(millis: i64) -> EpochMillis {
    EpochMillis::from_millis(millis).unwrap()
}

/// The gateway `plant`/`gw1` bound to the usual site; its id.
async fn bound(app: &TestApp) -> String {
    let (status, gateway) = app
        .post_gateway(SITE, json!({"group": "plant", "edge_node": "gw1"}))
        .await;
    assert_eq!(status, StatusCode::CREATED, "{gateway}");
    gateway["id"].as_str().unwrap().to_owned()
}

#[tokio::test]
async fn gateways_are_bound_listed_and_unbound() {
    let app = spawn_seeded_app().await;
    let (status, gateway) = app
        .post_gateway(
            SITE,
            json!({"group": "Plant 1", "edge_node": "Kessel-Haus:1"}),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{gateway}");
    assert_eq!(gateway["site"], SITE);
    assert_eq!(gateway["group"], "Plant 1");
    assert_eq!(gateway["edge_node"], "Kessel-Haus:1");
    assert_eq!(gateway["online"], false);
    assert_eq!(gateway["last_birth_at"], Value::Null);
    assert_eq!(gateway["last_death_at"], Value::Null);
    assert_eq!(gateway["metrics"], json!([]));
    assert_eq!(gateway["unregistered"], json!([]));
    assert_eq!(gateway["version"], 1);
    let first = gateway["id"].as_str().unwrap().to_owned();
    let second = bound(&app).await;

    // An edge node feeds one site.
    app.post_site(json!({"slug": "boiler-house-2", "name": "Boiler house 2"}))
        .await;
    let (status, problem) = app
        .post_gateway(
            "boiler-house-2",
            json!({"group": "plant", "edge_node": "gw1"}),
        )
        .await;
    assert_eq!(status, StatusCode::CONFLICT, "{problem}");
    assert!(
        problem["detail"].as_str().unwrap().contains("gw1"),
        "{problem}"
    );

    // Ids Sparkplug cannot have, each field named.
    let (status, problem) = app
        .post_gateway(SITE, json!({"group": "plant/a", "edge_node": "gw#"}))
        .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{problem}");
    let fields: Vec<_> = problem["errors"]
        .as_array()
        .unwrap()
        .iter()
        .map(|error| error["field"].as_str().unwrap())
        .collect();
    assert_eq!(fields, ["group"], "the first bad field: {problem}");
    let (status, problem) = app
        .post_gateway(
            SITE,
            json!({"group": "plant", "edge_node": "gw+", "extra": 1}),
        )
        .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{problem}");
    let fields: Vec<_> = problem["errors"]
        .as_array()
        .unwrap()
        .iter()
        .map(|error| error["field"].as_str().unwrap())
        .collect();
    assert_eq!(fields, ["edge_node", "extra"], "{problem}");
    let (status, _) = app
        .post_gateway("nowhere", json!({"group": "plant", "edge_node": "gw2"}))
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND);

    // Pages in creation order.
    let (status, page) = app
        .get(&format!("/api/v1/sites/{SITE}/gateways?limit=1"))
        .await;
    assert_eq!(status, StatusCode::OK, "{page}");
    assert_eq!(page["items"][0]["id"], first.as_str());
    let cursor = page["next_cursor"].as_str().unwrap();
    let (_, page) = app
        .get(&format!(
            "/api/v1/sites/{SITE}/gateways?limit=1&cursor={cursor}"
        ))
        .await;
    assert_eq!(page["items"][0]["id"], second.as_str());
    assert_eq!(page["next_cursor"], Value::Null);
    let (status, _) = app
        .get(&format!("/api/v1/sites/{SITE}/gateways?cursor=zz"))
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);

    let path = format!("/api/v1/sites/{SITE}/gateways/{first}");
    let (status, headers, gateway) = app.get_with_headers(&path).await;
    assert_eq!(status, StatusCode::OK, "{gateway}");
    assert_eq!(headers["etag"], "\"1\"");
    let (status, _, _) = app
        .get_with_headers(&format!("/api/v1/sites/{SITE}/gateways/not-a-uuid"))
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let (status, _, _) = app
        .get_with_headers(&format!("/api/v1/sites/boiler-house-2/gateways/{first}"))
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND, "another site's gateway");

    // A site with gateways is not deleted under them.
    for key in ["b1_steam_pressure", "b1_flue_temp"] {
        app.delete(&format!("/api/v1/sites/{SITE}/sensors/{key}"))
            .await;
    }
    let (status, _, problem) = app.delete(&format!("/api/v1/sites/{SITE}")).await;
    assert_eq!(status, StatusCode::CONFLICT, "{problem}");
    assert_eq!(problem["code"], "has_dependents");

    let (status, _, problem) = app.delete_if_match(&path, "\"2\"").await;
    assert_eq!(status, StatusCode::CONFLICT, "{problem}");
    assert_eq!(problem["code"], "version_conflict");
    let (status, _, _) = app.delete_if_match(&path, "\"1\"").await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    let (status, _, _) = app.get_with_headers(&path).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn births_show_online_state_and_metrics_and_one_call_registers_them() {
    let app = spawn_seeded_app().await;
    let id = bound(&app).await;
    let path = format!("/api/v1/sites/{SITE}/gateways/{id}");
    let node = [
        announced(None, "B1 Steam Pressure", "b1_steam_pressure", "Double"),
        announced(None, "Drum Level", "drum_level", "Float"),
        announced(None, "Burner On", "burner_on", "Boolean"),
        announced(None, "Firmware", "firmware", "DateTime"),
    ];
    assert!(
        stoker_metadata::record_gateway_birth(
            &app.pool,
            "plant",
            "gw1",
            at(1_733_565_600_000),
            Some(1),
            &node
        )
        .await
        .unwrap()
    );
    stoker_metadata::record_device_birth(
        &app.pool,
        "plant",
        "gw1",
        "boiler 1",
        at(1_733_565_600_500),
        Some(1),
        &[announced(
            Some("boiler 1"),
            "Sequencer",
            "boiler_1_sequencer",
            "String",
        )],
    )
    .await
    .unwrap();

    let (status, _, gateway) = app.get_with_headers(&path).await;
    assert_eq!(status, StatusCode::OK, "{gateway}");
    assert_eq!(gateway["online"], true);
    assert_eq!(gateway["bd_seq"], 1);
    assert_eq!(gateway["last_birth_at"], "2024-12-07T10:00:00Z");
    assert_eq!(gateway["version"], 1);
    let metrics: Vec<_> = gateway["metrics"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| {
            (
                m["sensor"].as_str().unwrap(),
                m["datatype"].as_str().unwrap(),
                m["registered"].as_bool().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        metrics,
        [
            ("b1_steam_pressure", "Double", true),
            ("drum_level", "Float", false),
            ("burner_on", "Boolean", false),
            ("firmware", "DateTime", false),
            ("boiler_1_sequencer", "String", false),
        ]
    );
    assert_eq!(gateway["metrics"][4]["device"], "boiler 1");
    assert_eq!(gateway["metrics"][0]["device"], Value::Null);
    // DateTime is not stored, so it cannot become a sensor.
    assert_eq!(
        gateway["unregistered"],
        json!([
            {"device": null, "metric": "Drum Level", "sensor": "drum_level", "datatype": "Float", "kind": "numeric"},
            {"device": null, "metric": "Burner On", "sensor": "burner_on", "datatype": "Boolean", "kind": "boolean"},
            {"device": "boiler 1", "metric": "Sequencer", "sensor": "boiler_1_sequencer", "datatype": "String", "kind": "state"}
        ])
    );

    let register = format!("{path}/register");
    // A state sensor needs its states; nothing is registered without them.
    let (status, problem) = app.post(&register, json!({})).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{problem}");
    assert_eq!(problem["errors"][0]["field"], "states", "{problem}");
    assert!(
        problem["errors"][0]["message"]
            .as_str()
            .unwrap()
            .contains("boiler_1_sequencer"),
        "{problem}"
    );
    let (status, problem) = app
        .post(
            &register,
            json!({"sensors": ["b1_steam_pressure", "drum_level", "drum_level"]}),
        )
        .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{problem}");
    assert_eq!(problem["errors"].as_array().unwrap().len(), 2, "{problem}");
    let (status, problem) = app
        .post(
            &register,
            json!({"sensors": ["drum_level"], "states": {"drum_level": ["a"]}, "unit": ""}),
        )
        .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{problem}");
    let (_, sensors) = app.get(&format!("/api/v1/sites/{SITE}/sensors")).await;
    assert_eq!(sensors["items"].as_array().unwrap().len(), 2, "{sensors}");

    // A subset, with a type and unit of its own.
    let (status, answer) = app
        .post(
            &register,
            json!({"sensors": ["drum_level"], "type": "level", "unit": "%"}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{answer}");
    let registered = &answer["registered"][0];
    assert_eq!(
        (
            &registered["key"],
            &registered["type"],
            &registered["unit"],
            &registered["kind"]
        ),
        (
            &json!("drum_level"),
            &json!("level"),
            &json!("%"),
            &json!("numeric")
        )
    );
    // The rest, with the defaults and the sequencer's states.
    let (status, answer) = app
        .post(
            &register,
            json!({"states": {"boiler_1_sequencer": ["off", "purge", "firing", "lockout"]}}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{answer}");
    let registered: Vec<_> = answer["registered"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| {
            [&s["key"], &s["kind"], &s["type"], &s["unit"]].map(|v| v.as_str().unwrap().to_owned())
        })
        .collect();
    assert_eq!(
        registered,
        [
            ["burner_on", "boolean", "sparkplug", "-"],
            ["boiler_1_sequencer", "state", "sparkplug", "-"],
        ]
    );
    assert_eq!(answer["registered"][1]["states"][3], "lockout");
    let (_, _, gateway) = app.get_with_headers(&path).await;
    assert_eq!(gateway["unregistered"], json!([]));
    // Nothing left: an empty registration.
    let (status, answer) = app.post(&register, json!({})).await;
    assert_eq!(
        (status, &answer["registered"]),
        (StatusCode::OK, &json!([]))
    );

    // The registered sensors take readings at once.
    let (status, receipt) = app
        .post_telemetry(
            SITE,
            json!({"burner_on": true, "boiler_1_sequencer": "purge"}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{receipt}");

    stoker_metadata::record_gateway_death(&app.pool, "plant", "gw1", at(1_733_565_660_000), None)
        .await
        .unwrap();
    let (_, _, gateway) = app.get_with_headers(&path).await;
    assert_eq!(gateway["online"], false);
    assert_eq!(gateway["last_death_at"], "2024-12-07T10:01:00Z");
}

#[tokio::test]
async fn each_device_shows_its_own_births_and_deaths() {
    let app = spawn_seeded_app().await;
    let id = bound(&app).await;
    let list = format!("/api/v1/sites/{SITE}/gateways");
    let one = format!("{list}/{id}");
    const T0: i64 = 1_733_565_600_000;
    stoker_metadata::record_gateway_birth(&app.pool, "plant", "gw1", at(T0), Some(4), &[])
        .await
        .unwrap();
    for (device, metric, sensor) in [
        ("boiler 1", "Flame", "boiler_1_flame"),
        ("boiler 2", "Flame", "boiler_2_flame"),
    ] {
        stoker_metadata::record_device_birth(
            &app.pool,
            "plant",
            "gw1",
            device,
            at(T0 + 1_000),
            Some(4),
            &[announced(Some(device), metric, sensor, "Boolean")],
        )
        .await
        .unwrap();
    }
    let (_, _, gateway) = app.get_with_headers(&one).await;
    assert_eq!(
        gateway["devices"],
        json!([
            {"device": "boiler 1", "online": true, "last_birth_at": "2024-12-07T10:00:01Z", "last_death_at": null},
            {"device": "boiler 2", "online": true, "last_birth_at": "2024-12-07T10:00:01Z", "last_death_at": null},
        ])
    );

    // A DDEATH concerns that device only; one of another session (bdSeq 3)
    // changes nothing.
    stoker_metadata::record_device_death(
        &app.pool,
        "plant",
        "gw1",
        "boiler 2",
        at(T0 + 2_000),
        Some(3),
    )
    .await
    .unwrap();
    stoker_metadata::record_device_death(
        &app.pool,
        "plant",
        "gw1",
        "boiler 1",
        at(T0 + 3_000),
        Some(4),
    )
    .await
    .unwrap();
    let (status, page) = app.get(&list).await;
    assert_eq!(status, StatusCode::OK, "{page}");
    let listed = &page["items"][0];
    assert_eq!(listed["online"], true, "the gateway stays online");
    assert_eq!(
        listed["devices"],
        json!([
            {"device": "boiler 1", "online": false, "last_birth_at": "2024-12-07T10:00:01Z", "last_death_at": "2024-12-07T10:00:03Z"},
            {"device": "boiler 2", "online": true, "last_birth_at": "2024-12-07T10:00:01Z", "last_death_at": null},
        ])
    );
    let metrics: Vec<&str> = listed["metrics"]
        .as_array()
        .unwrap()
        .iter()
        .map(|metric| metric["sensor"].as_str().unwrap())
        .collect();
    assert_eq!(
        metrics,
        ["boiler_1_flame", "boiler_2_flame"],
        "a dead device's metrics stay: they name the sensors its death concerns"
    );

    // The NDEATH takes every device offline; the next NBIRTH brings none
    // back; a DBIRTH does.
    stoker_metadata::record_gateway_death(&app.pool, "plant", "gw1", at(T0 + 4_000), Some(4))
        .await
        .unwrap();
    let (_, _, gateway) = app.get_with_headers(&one).await;
    assert_eq!(gateway["online"], false);
    assert_eq!(gateway["devices"][1]["online"], false);
    assert_eq!(
        gateway["devices"][1]["last_death_at"],
        "2024-12-07T10:00:04Z"
    );
    assert_eq!(
        gateway["devices"][0]["last_death_at"], "2024-12-07T10:00:03Z",
        "a dead device does not die again"
    );
    stoker_metadata::record_gateway_birth(&app.pool, "plant", "gw1", at(T0 + 5_000), Some(5), &[])
        .await
        .unwrap();
    stoker_metadata::record_device_birth(
        &app.pool,
        "plant",
        "gw1",
        "boiler 2",
        at(T0 + 6_000),
        Some(5),
        &[],
    )
    .await
    .unwrap();
    let (_, _, gateway) = app.get_with_headers(&one).await;
    assert_eq!(gateway["online"], true);
    let states: Vec<(&str, bool)> = gateway["devices"]
        .as_array()
        .unwrap()
        .iter()
        .map(|device| (device["device"].as_str().unwrap(), device["online"] == true))
        .collect();
    assert_eq!(states, [("boiler 1", false), ("boiler 2", true)]);
    assert_eq!(
        gateway["devices"][1]["last_birth_at"],
        "2024-12-07T10:00:06Z"
    );
}

#[tokio::test]
async fn gateway_routes_check_their_key() {
    let app = spawn_seeded_app().await;
    let id = bound(&app).await;
    let (_, reader) =
        stoker_metadata::create_api_key(&app.pool, &Actor::Cli, "dashboard", &[Scope::Read])
            .await
            .unwrap();
    let (_, writer) =
        stoker_metadata::create_api_key(&app.pool, &Actor::Cli, "gateway", &[Scope::Write])
            .await
            .unwrap();
    let list = format!("/api/v1/sites/{SITE}/gateways");
    let one = format!("{list}/{id}");
    let send = async |key: &str, method: Method, path: &str, body: Option<Value>| {
        let mut request = reqwest::Client::new()
            .request(method, format!("{}{path}", app.base))
            .bearer_auth(key);
        if let Some(body) = body {
            request = request.json(&body);
        }
        request.send().await.unwrap().status()
    };
    for path in [&list, &one] {
        assert_eq!(
            send(reader.expose(), Method::GET, path, None).await,
            StatusCode::OK
        );
        assert_eq!(
            send(writer.expose(), Method::GET, path, None).await,
            StatusCode::FORBIDDEN
        );
    }
    let changes = [
        (
            Method::POST,
            list.clone(),
            Some(json!({"group": "plant", "edge_node": "gw2"})),
        ),
        (Method::POST, format!("{one}/register"), Some(json!({}))),
        (Method::DELETE, one.clone(), None),
    ];
    for (method, path, body) in changes {
        for key in [&reader, &writer] {
            let status = send(key.expose(), method.clone(), &path, body.clone()).await;
            assert_eq!(status, StatusCode::FORBIDDEN, "{method} {path}");
        }
    }
    let (status, _, _) = app.get_with_headers(&one).await;
    assert_eq!(status, StatusCode::OK, "refused requests changed nothing");
}

#[tokio::test]
async fn a_gateway_alert_reads_with_its_gateway_and_no_rule_or_sensor() {
    let app = spawn_seeded_app().await;
    bound(&app).await;
    let site = stoker_domain::SiteSlug::parse(SITE).unwrap();
    let verdict = stoker_analytics::store::GatewayVerdict {
        site: &site,
        group: "plant",
        edge_node: "gw1",
        at: at(1_733_565_600_000),
        message: "gateway plant/gw1 is offline".to_owned(),
    };
    let alert = stoker_analytics::store::open_gateway_alert(
        &app.pool,
        &stoker_analytics::store::NoOutbox,
        &verdict,
    )
    .await
    .unwrap()
    .unwrap();

    let (status, page) = app.get("/api/v1/alerts?kind=gateway_offline").await;
    assert_eq!(status, StatusCode::OK, "{page}");
    let listed = &page["items"][0];
    assert_eq!(page["items"].as_array().unwrap().len(), 1, "{page}");
    assert_eq!(listed["id"], alert.id.to_string());
    assert_eq!(listed["kind"], "gateway_offline");
    assert_eq!(listed["rule_id"], Value::Null);
    assert_eq!(listed["rule_name"], Value::Null);
    assert_eq!(listed["sensor"], Value::Null);
    assert_eq!(
        listed["gateway"],
        json!({"group": "plant", "edge_node": "gw1"})
    );
    assert_eq!(listed["severity"], "critical");
    assert_eq!(listed["opened_at"], "2024-12-07T10:00:00Z");
    let (_, page) = app.get("/api/v1/alerts?kind=no_data").await;
    assert_eq!(page["items"], json!([]));
    let (status, problem) = app.get("/api/v1/alerts?kind=offline").await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{problem}");
    let (status, _, trail) = app
        .get_with_headers(&format!("/api/v1/alerts/{}", alert.id))
        .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(trail["events"][0]["transition"], "fired");
    assert_eq!(trail["events"][0]["actor"], "analytics");
    // The dashboard lists it among the site's open alerts.
    let (_, _, dashboard) = app.get_dashboard(SITE).await;
    assert_eq!(
        dashboard["open_alerts"][0]["kind"], "gateway_offline",
        "{dashboard}"
    );
}
