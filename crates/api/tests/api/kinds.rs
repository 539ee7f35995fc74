//! Boolean and state sensors: declared with their kind, refused precisely
//! when a change would contradict it, their readings taken over HTTP and
//! given back natively by latest, history and the dashboard.

use crate::helpers::*;
use reqwest::StatusCode;
use serde_json::{Value, json};
use stoker_domain::EpochMillis;

pub(crate) const SEQUENCER_STATES: [&str; 5] = ["off", "purge", "ignition", "firing", "lockout"];

/// The seeded site, with a burner-on boolean and a sequencer state sensor.
pub(crate) async fn app_with_kinds() -> TestApp {
    let app = spawn_seeded_app().await;
    let (status, body) = app
        .post_sensor(
            "boiler-house-1",
            json!({"key": "b1_burner_on", "type": "burner", "unit": "-", "kind": "boolean"}),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    assert_eq!(body["kind"], "boolean");
    assert!(body.get("states").is_none(), "{body}");
    let (status, body) = app
        .post_sensor(
            "boiler-house-1",
            json!({"key": "b1_sequencer", "type": "sequencer", "unit": "-", "kind": "state",
                   "states": SEQUENCER_STATES}),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    assert_eq!(body["states"], json!(SEQUENCER_STATES));
    app
}

pub(crate) fn field_errors(problem: &Value) -> Vec<&str> {
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
async fn sensors_declare_their_kind_and_it_never_changes() {
    let app = app_with_kinds().await;
    let (status, body) = app
        .get("/api/v1/sites/boiler-house-1/sensors/b1_steam_pressure")
        .await;
    assert_eq!(
        (status, body["kind"].as_str()),
        (StatusCode::OK, Some("numeric"))
    );

    // Kinds, states and ranges that do not fit together: 422, per field.
    for (body, field) in [
        (
            json!({"key": "x1", "type": "t", "unit": "-", "kind": "state"}),
            "states",
        ),
        (
            json!({"key": "x2", "type": "t", "unit": "-", "kind": "boolean", "states": ["on"]}),
            "states",
        ),
        (
            json!({"key": "x3", "type": "t", "unit": "-", "states": ["on"]}),
            "states",
        ),
        (
            json!({"key": "x4", "type": "t", "unit": "-", "kind": "boolean", "min": 0}),
            "min",
        ),
        (
            json!({"key": "x5", "type": "t", "unit": "-", "kind": "state", "states": ["a"], "max": 3}),
            "max",
        ),
        (
            json!({"key": "x6", "type": "t", "unit": "-", "kind": "text"}),
            "kind",
        ),
        (
            json!({"key": "x7", "type": "t", "unit": "-", "kind": "state", "states": ["a", "a"]}),
            "states",
        ),
        (
            json!({"key": "x8", "type": "t", "unit": "-", "kind": "state", "states": ["a b"]}),
            "states",
        ),
        (
            json!({"key": "x9", "type": "t", "unit": "-", "kind": "state", "states": "a"}),
            "states",
        ),
    ] {
        let (status, problem) = app.post_sensor("boiler-house-1", body.clone()).await;
        assert_eq!(
            status,
            StatusCode::UNPROCESSABLE_ENTITY,
            "{body}: {problem}"
        );
        assert_eq!(field_errors(&problem), vec![field], "{body}: {problem}");
    }

    // Changes that contradict the stored sensor: 409, with a code each.
    let sequencer = "/api/v1/sites/boiler-house-1/sensors/b1_sequencer";
    for (change, code) in [
        (
            json!({"version": 1, "kind": "boolean"}),
            "kind_unchangeable",
        ),
        (
            json!({"version": 1, "states": ["off", "purge"]}),
            "states_only_grow",
        ),
        (
            json!({"version": 1, "states": ["purge", "off", "ignition", "firing", "lockout"]}),
            "states_only_grow",
        ),
        (json!({"version": 1, "min": 0}), "kind_conflict"),
    ] {
        let (status, _, problem) = app.patch(sequencer, change.clone()).await;
        assert_eq!(
            (status, problem["code"].as_str()),
            (StatusCode::CONFLICT, Some(code)),
            "{change}: {problem}"
        );
    }
    let (status, _, problem) = app
        .patch(
            "/api/v1/sites/boiler-house-1/sensors/b1_burner_on",
            json!({"version": 1, "states": ["on"]}),
        )
        .await;
    assert_eq!(
        (status, problem["code"].as_str()),
        (StatusCode::CONFLICT, Some("kind_conflict")),
        "{problem}"
    );

    // The same kind, and a state added at the end: accepted.
    let (status, _, body) = app
        .patch(
            sequencer,
            json!({"version": 1, "kind": "state", "states": ["off", "purge", "ignition", "firing", "lockout", "post_purge"]}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["states"][5], "post_purge");
    assert_eq!(body["version"], 2);
}

#[tokio::test]
async fn booleans_and_states_come_back_natively() {
    let app = app_with_kinds().await;
    // Whole minutes back, so that the three readings share a minute.
    let ts = (EpochMillis::now().as_millis() / 60_000 - 2) * 60_000;
    for (offset, burner, state) in [
        (0, false, "purge"),
        (10_000, true, "ignition"),
        (20_000, true, "firing"),
    ] {
        let (status, body) = app
            .post_telemetry(
                "boiler-house-1",
                json!({"ts": ts + offset, "values": {"b1_burner_on": burner, "b1_sequencer": state, "b1_steam_pressure": 10.4}}),
            )
            .await;
        assert_eq!(
            (status, body),
            (StatusCode::OK, json!({"accepted": 3, "rejected": []}))
        );
    }

    // Of the wrong kind, or a state the sensor does not declare: refused,
    // each named.
    let (status, problem) = app
        .post_telemetry(
            "boiler-house-1",
            json!({"b1_burner_on": 1, "b1_sequencer": "Firing", "b1_steam_pressure": true, "b1_flue_temp": "hot"}),
        )
        .await;
    assert_eq!(
        (status, problem["code"].as_str()),
        (
            StatusCode::UNPROCESSABLE_ENTITY,
            Some("all_readings_rejected")
        ),
        "{problem}"
    );
    let mut reasons = strings(&problem["rejected"], ["sensor", "reason"]);
    reasons.sort_unstable();
    assert_eq!(
        reasons,
        vec![
            ["b1_burner_on", "wrong_kind"],
            ["b1_flue_temp", "non_numeric"],
            ["b1_sequencer", "unknown_state"],
            ["b1_steam_pressure", "wrong_kind"],
        ]
    );

    // Latest: native in its kind (from InfluxDB's float, or from Redis).
    let (status, latest) = app.get_latest("boiler-house-1").await;
    assert_eq!(status, StatusCode::OK, "{latest}");
    let value = |latest: &Value, sensor: &str| {
        latest["readings"]
            .as_array()
            .unwrap()
            .iter()
            .find(|reading| reading["sensor"] == sensor)
            .unwrap()["value"]
            .clone()
    };
    assert_eq!(value(&latest, "b1_burner_on"), json!(true));
    assert_eq!(value(&latest, "b1_sequencer"), json!("firing"));
    assert_eq!(value(&latest, "b1_steam_pressure"), json!(10.4));
    // ...and the same once Redis holds them.
    let mut cached = false;
    for _ in 0..100 {
        let mut connection = app.redis.connection().await;
        let raw: Option<String> = redis::cmd("GET")
            .arg(format!(
                "{}latest:boiler-house-1:b1_sequencer",
                app.redis.prefix()
            ))
            .query_async(&mut connection)
            .await
            .unwrap();
        if let Some(raw) = raw {
            assert!(raw.starts_with(r#"{"value":"firing","#), "{raw}");
            cached = true;
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    assert!(cached, "the sequencer's latest value reached Redis");
    let (_, latest) = app.get_latest("boiler-house-1").await;
    assert_eq!(value(&latest, "b1_sequencer"), json!("firing"));
    assert_eq!(value(&latest, "b1_burner_on"), json!(true));

    // The dashboard too.
    let (status, _, dashboard) = app.get_dashboard("boiler-house-1").await;
    assert_eq!(status, StatusCode::OK, "{dashboard}");
    let sequencer = dashboard["sensors"]
        .as_array()
        .unwrap()
        .iter()
        .find(|sensor| sensor["sensor"] == "b1_sequencer")
        .unwrap();
    assert_eq!(
        (&sequencer["value"], &sequencer["status"]),
        (&json!("firing"), &json!("ok"))
    );

    // History: the last per bucket by default, in the sensor's kind.
    let history = |sensor: &str, extra: &str| {
        format!(
            "/api/v1/sites/boiler-house-1/sensors/{sensor}/history?start={}&end={}&every=10s{extra}",
            ts,
            ts + 30_000
        )
    };
    let (status, body) = app.get(&history("b1_sequencer", "")).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["agg"], "last");
    let points: Vec<&Value> = body["points"]
        .as_array()
        .unwrap()
        .iter()
        .map(|point| &point["value"])
        .collect();
    assert_eq!(
        points,
        vec![&json!("purge"), &json!("ignition"), &json!("firing")]
    );
    let (status, body) = app.get(&history("b1_burner_on", "")).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let points: Vec<&Value> = body["points"]
        .as_array()
        .unwrap()
        .iter()
        .map(|point| &point["value"])
        .collect();
    assert_eq!(points, vec![&json!(false), &json!(true), &json!(true)]);
    // A boolean's mean is the share of time it was true; a state takes
    // only last.
    let (status, body) = app
        .get(&format!(
            "/api/v1/sites/boiler-house-1/sensors/b1_burner_on/history?start={ts}&end={}&every=1m&agg=mean",
            ts + 30_000
        ))
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let mean = body["points"][0]["value"].as_f64().unwrap();
    assert!((mean - 2.0 / 3.0).abs() < 1e-9, "{body}");
    let (status, problem) = app.get(&history("b1_sequencer", "&agg=max")).await;
    assert_eq!(
        (status, problem["code"].as_str()),
        (StatusCode::BAD_REQUEST, Some("invalid_parameter")),
        "{problem}"
    );
}
