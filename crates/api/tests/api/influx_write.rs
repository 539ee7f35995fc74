//! InfluxDB-compatible writes (`POST /api/v2/write`, `POST /write`): line
//! protocol stored exactly once, each refusal named by its line, counted
//! and recorded like telemetry's; keys in each of InfluxDB's ways; gzip;
//! InfluxDB's answers; and InfluxDB's own Python clients, unmodified.

use std::io::Write as _;
use stoker_metadata::Actor;

use crate::helpers::*;
use reqwest::StatusCode;
use serde_json::Value;
use stoker_domain::{EpochMillis, SiteSlug};
use stoker_metadata::Scope;

const SITE: &str = "boiler-house-1";

async fn key(app: &TestApp, name: &str, scopes: &[Scope]) -> String {
    let (_, key) = stoker_metadata::create_api_key(&app.pool, &Actor::Cli, name, scopes)
        .await
        .unwrap();
    key.expose().to_owned()
}

/// Sends a write; the status and the body as JSON (null when empty).
async fn send(
    app: &TestApp,
    path_and_query: &str,
    headers: &[(&str, &str)],
    body: impl Into<reqwest::Body>,
) -> (StatusCode, Value) {
    let mut request = reqwest::Client::new()
        .post(format!("{}{path_and_query}", app.base))
        .body(body);
    for (name, value) in headers {
        request = request.header(*name, *value);
    }
    let response = request.send().await.unwrap();
    let status = response.status();
    let text = response.text().await.unwrap();
    let body = if text.is_empty() {
        Value::Null
    } else {
        serde_json::from_str(&text).unwrap_or_else(|_| panic!("not JSON: {text:?}"))
    };
    (status, body)
}

/// The seeded site with a boolean sensor `b1_burner_on`, as a Modbus coil is.
async fn app_with_burner_on() -> TestApp {
    let app = spawn_seeded_app().await;
    let (status, answer) = app
        .post_sensor(
            SITE,
            serde_json::json!({"key": "b1_burner_on", "type": "burner", "unit": "-", "kind": "boolean"}),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{answer}");
    app
}

fn gzip(body: &[u8]) -> Vec<u8> {
    let mut encoder = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    encoder.write_all(body).unwrap();
    encoder.finish().unwrap()
}

async fn stored(app: &TestApp) -> u64 {
    app.influx
        .influx()
        .count_readings(&SiteSlug::parse(SITE).unwrap())
        .await
        .unwrap()
}

/// Waits until `ingestion.rejected_readings` holds `expected` rows.
async fn recorded_refusals(app: &TestApp, expected: i64) -> i64 {
    let client = app.pool.get().await.unwrap();
    let mut recorded = 0;
    for _ in 0..100 {
        recorded = client
            .query_one("SELECT count(*) FROM ingestion.rejected_readings", &[])
            .await
            .unwrap()
            .get(0);
        if recorded == expected {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    recorded
}

#[tokio::test]
async fn line_protocol_is_stored_once_and_each_bad_line_named_counted_and_recorded() {
    let app = spawn_seeded_app().await;
    let token = key(&app, "telegraf", &[Scope::Write]).await;
    let authorization = format!("Token {token}");
    let auth = [("authorization", authorization.as_str())];
    let ms = EpochMillis::now().as_millis() - 60_000;

    // Telegraf's modbus shape: one line, two readings, nanoseconds.
    let (status, body) = send(
        &app,
        &format!("/api/v2/write?org=plant&bucket={SITE}&precision=ns&sensor_prefix_tag=name"),
        &auth,
        format!(
            "modbus,name=b1,slave_id=1 steam_pressure=10.4,flue_temp=181.2 {}\n",
            ms * 1_000_000
        ),
    )
    .await;
    assert_eq!((status, body), (StatusCode::NO_CONTENT, Value::Null));
    assert_eq!(stored(&app).await, 2);
    let (status, latest) = app.get_latest(SITE).await;
    assert_eq!(status, StatusCode::OK);
    let values: Vec<(&str, f64)> = latest["readings"]
        .as_array()
        .unwrap()
        .iter()
        .map(|reading| {
            (
                reading["sensor"].as_str().unwrap(),
                reading["value"].as_f64().unwrap(),
            )
        })
        .collect();
    assert!(
        values.contains(&("b1_steam_pressure", 10.4)) && values.contains(&("b1_flue_temp", 181.2)),
        "{latest}"
    );

    // The same body again: stored once (points are idempotent).
    let (status, _) = send(
        &app,
        &format!("/api/v2/write?org=plant&bucket={SITE}&sensor_prefix_tag=name"),
        &auth,
        format!(
            "modbus,name=b1,slave_id=1 steam_pressure=10.4,flue_temp=181.2 {}\n",
            ms * 1_000_000
        ),
    )
    .await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    assert_eq!(stored(&app).await, 2);

    // One bad line and refused readings: the rest is stored, the answer
    // (1.x's shape) names each by its line.
    let body = format!(
        "# Stoker's own layout, a broken line, an unknown sensor, a value out of range\r\n\
         readings,sensor=b1_steam_pressure value=10.5 {t1}\r\n\
         this line is not line protocol\r\n\
         plc b1_ghost=1,b1_flue_temp=9999 {t1}\r\n",
        t1 = ms + 1_000
    );
    let basic = format!("Basic {}", base64_of(&format!("telegraf:{token}")));
    let (status, answer) = send(
        &app,
        &format!("/write?db={SITE}&precision=ms"),
        &[("authorization", &basic)],
        body,
    )
    .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{answer}");
    let message = answer["error"].as_str().unwrap();
    assert!(message.starts_with("partial write: "), "{message}");
    for named in [
        "line 3: unable to parse 'this line is not line protocol': invalid field format (malformed_line)",
        "line 4, sensor \"b1_ghost\": sensor \"b1_ghost\" is not registered at this site (unknown_sensor)",
        "line 4, sensor \"b1_flue_temp\": value 9999 of b1_flue_temp is outside its valid range",
        "dropped=3 stored=1",
    ] {
        assert!(message.contains(named), "{named:?} not in {message:?}");
    }
    assert_eq!(stored(&app).await, 3);

    // gzip; a site tag outranks the bucket; u and p; seconds.
    let (status, body) = send(
        &app,
        &format!("/write?db=elsewhere&precision=s&u=telegraf&p={token}"),
        &[("content-encoding", "gzip")],
        gzip(format!("m,site={SITE} b1_steam_pressure=10.6 {}\n", ms / 1000 + 2).as_bytes()),
    )
    .await;
    assert_eq!((status, body), (StatusCode::NO_CONTENT, Value::Null));
    assert_eq!(stored(&app).await, 4);

    // A boolean and a string for numeric sensors: refused by kind, as on
    // the JSON path.
    let (status, answer) = send(
        &app,
        &format!("/api/v2/write?bucket={SITE}&precision=ms"),
        &[("authorization", &format!("Bearer {token}"))],
        format!(
            "m b1_steam_pressure=true,b1_flue_temp=\"hot\" {}",
            ms + 3_000
        ),
    )
    .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(answer["code"], "invalid");
    let message = answer["message"].as_str().unwrap();
    assert!(
        message.contains(
            "value of \"b1_steam_pressure\" is true, but b1_steam_pressure is a numeric sensor: expected a finite number (wrong_kind)"
        ) && message.contains("(wrong_kind)")
            && message.contains("is the string \"hot\", not a finite number (non_numeric)")
            && message.ends_with("dropped=2 stored=0"),
        "{message}"
    );

    // A gzip bomb: small as sent, over the limit decompressed.
    let bomb = gzip(&vec![b'#'; 8 * 1024 * 1024]);
    assert!(bomb.len() < 64 * 1024, "{}", bomb.len());
    let (status, answer) = send(
        &app,
        &format!("/api/v2/write?bucket={SITE}"),
        &[
            ("authorization", &authorization),
            ("content-encoding", "gzip"),
        ],
        bomb,
    )
    .await;
    assert_eq!(status, StatusCode::PAYLOAD_TOO_LARGE, "{answer}");
    assert_eq!(answer["code"], "request too large");
    // Over the limit as sent; not gzip though it says so.
    let (status, _) = send(
        &app,
        &format!("/write?db={SITE}"),
        &auth,
        vec![b'#'; 300 * 1024],
    )
    .await;
    assert_eq!(status, StatusCode::PAYLOAD_TOO_LARGE);
    let (status, answer) = send(
        &app,
        &format!("/write?db={SITE}"),
        &[
            ("authorization", &authorization),
            ("content-encoding", "gzip"),
        ],
        "m b1_flue_temp=1",
    )
    .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(
        answer["error"]
            .as_str()
            .unwrap()
            .contains("does not decompress"),
        "{answer}"
    );
    assert_eq!(stored(&app).await, 4);

    // Each refusal recorded (3 + 2 + bomb + oversized + not gzip) and
    // counted by reason, as telemetry's are.
    assert_eq!(recorded_refusals(&app, 8).await, 8);
    let metrics = app
        .http
        .get(format!("{}/metrics", app.base))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    for line in [
        "stoker_ingest_readings_accepted_total 6",
        "stoker_ingest_readings_rejected_total{reason=\"malformed_line\"} 2",
        "stoker_ingest_readings_rejected_total{reason=\"unknown_sensor\"} 1",
        "stoker_ingest_readings_rejected_total{reason=\"out_of_range\"} 1",
        "stoker_ingest_readings_rejected_total{reason=\"non_numeric\"} 1",
        "stoker_ingest_readings_rejected_total{reason=\"wrong_kind\"} 1",
        "stoker_ingest_readings_rejected_total{reason=\"payload_too_large\"} 2",
    ] {
        assert!(
            metrics.lines().any(|metric| metric == line),
            "no {line:?} in\n{metrics}"
        );
    }
}
/// Boolean and state sensors written as line protocol: a boolean field is
/// a boolean reading, a string field a state, given back natively by
/// `latest`; a state the sensor does not declare is refused by name.
#[tokio::test]
async fn booleans_and_states_arrive_as_line_protocol() {
    let app = spawn_seeded_app().await;
    for body in [
        serde_json::json!({"key": "b1_burner_on", "type": "burner", "unit": "-", "kind": "boolean"}),
        serde_json::json!({"key": "b1_sequencer", "type": "sequencer", "unit": "-", "kind": "state",
                           "states": ["off", "purge", "ignition", "firing", "lockout"]}),
    ] {
        let (status, answer) = app.post_sensor(SITE, body).await;
        assert_eq!(status, StatusCode::CREATED, "{answer}");
    }
    let token = key(&app, "lp-kinds", &[Scope::Write]).await;
    let authorization = format!("Token {token}");
    let ms = EpochMillis::now().as_millis() - 60_000;
    let (status, body) = send(
        &app,
        &format!("/api/v2/write?bucket={SITE}&precision=ms"),
        &[("authorization", &authorization)],
        format!("plc b1_burner_on=true,b1_sequencer=\"firing\" {ms}\n"),
    )
    .await;
    assert_eq!((status, body), (StatusCode::NO_CONTENT, Value::Null));
    let (status, latest) = app.get_latest(SITE).await;
    assert_eq!(status, StatusCode::OK, "{latest}");
    let value = |sensor: &str| {
        latest["readings"]
            .as_array()
            .unwrap()
            .iter()
            .find(|reading| reading["sensor"] == sensor)
            .unwrap()["value"]
            .clone()
    };
    assert_eq!(value("b1_burner_on"), serde_json::json!(true));
    assert_eq!(value("b1_sequencer"), serde_json::json!("firing"));

    let (status, answer) = send(
        &app,
        &format!("/write?db={SITE}&precision=ms"),
        &[("authorization", &authorization)],
        format!("plc b1_sequencer=\"melting\" {}\n", ms + 1),
    )
    .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{answer}");
    let message = answer["error"].as_str().unwrap();
    assert!(
        message.contains("(unknown_state)") && message.ends_with("dropped=1 stored=0"),
        "{message}"
    );
}

fn base64_of(text: &str) -> String {
    use base64::Engine as _;
    base64::engine::general_purpose::STANDARD.encode(text)
}

#[tokio::test]
async fn keys_parameters_and_answers_are_influxdbs() {
    let app = spawn_seeded_app().await;
    let writer = key(&app, "telegraf", &[Scope::Write]).await;
    let reader = key(&app, "grafana", &[Scope::Read]).await;
    let line = "m b1_flue_temp=181.2";

    // No key: 401 in each API's shape.
    let (status, answer) = send(&app, &format!("/api/v2/write?bucket={SITE}"), &[], line).await;
    assert_eq!(
        (status, answer["code"].as_str()),
        (StatusCode::UNAUTHORIZED, Some("unauthorized"))
    );
    assert!(
        answer["message"].as_str().unwrap().contains("Token"),
        "{answer}"
    );
    let (status, answer) = send(&app, &format!("/write?db={SITE}"), &[], line).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert!(answer["error"].is_string(), "{answer}");
    for authorization in ["Token stk_nope_nope", "Digest x", "Token"] {
        let (status, _) = send(
            &app,
            &format!("/api/v2/write?bucket={SITE}"),
            &[("authorization", authorization)],
            line,
        )
        .await;
        assert_eq!(status, StatusCode::UNAUTHORIZED, "{authorization}");
    }
    let (status, _) = send(&app, &format!("/write?db={SITE}&u=x&p=wrong"), &[], line).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    // A key without scope write: 403.
    let (status, answer) = send(
        &app,
        &format!("/api/v2/write?bucket={SITE}"),
        &[("authorization", &format!("Token {reader}"))],
        line,
    )
    .await;
    assert_eq!(
        (status, answer["code"].as_str()),
        (StatusCode::FORBIDDEN, Some("forbidden"))
    );

    // Parameters.
    let auth = format!("Token {writer}");
    for (path, words) in [
        ("/api/v2/write?org=o".to_owned(), "missing bucket"),
        (
            format!("/api/v2/write?bucket={SITE}&precision=h"),
            "invalid precision",
        ),
        ("/write".to_owned(), "database is required"),
    ] {
        let (status, answer) = send(&app, &path, &[("authorization", &auth)], line).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{path}");
        assert!(answer.to_string().contains(words), "{path}: {answer}");
    }
    // A site that is not one: every line refused, named.
    let (status, answer) = send(
        &app,
        "/api/v2/write?bucket=nowhere",
        &[("authorization", &auth)],
        line,
    )
    .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(
        answer["message"]
            .as_str()
            .unwrap()
            .contains("line 1: site \"nowhere\" is not registered (unknown_site)"),
        "{answer}"
    );
    // Nothing but comments: nothing to store, nothing refused.
    let (status, _) = send(
        &app,
        &format!("/api/v2/write?bucket={SITE}"),
        &[("authorization", &auth)],
        "# nothing\n\n",
    )
    .await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    assert_eq!(stored(&app).await, 0);
}

/// InfluxDB's official Python clients (`influxdb-client` for 2.x,
/// `influxdb` for 1.x), installed by `scripts/influx-clients`, write to
/// Stoker as they would to InfluxDB.
#[tokio::test]
async fn influxdbs_own_python_clients_write_unmodified() {
    let app = app_with_burner_on().await;
    let token = key(&app, "telegraf", &[Scope::Write]).await;
    let base_ms = EpochMillis::now().as_millis() / 1000 * 1000 - 60_000;
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    let program = root.join("crates/api/tests/api/influx_clients.py");
    let base = app.base.clone();
    let output = tokio::task::spawn_blocking(move || {
        std::process::Command::new(root.join("scripts/influx-clients"))
            .arg(program)
            .args([base.as_str(), token.as_str(), SITE, &base_ms.to_string()])
            .output()
            .expect("scripts/influx-clients runs")
    })
    .await
    .unwrap();
    assert!(
        output.status.success(),
        "the clients failed:\n{}\n{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    let results: Value = serde_json::from_slice(&output.stdout)
        .unwrap_or_else(|_| panic!("not JSON: {}", String::from_utf8_lossy(&output.stdout)));
    for write in [
        "v2_gzip=False",
        "v2_gzip=True",
        "v1_gzip=False",
        "v1_gzip=True",
    ] {
        assert_eq!(results[write], "stored", "{write}: {results}");
    }
    assert_eq!(results["v1_u_p"]["status"], 204, "{results}");
    let bad = &results["v2_bad_line"];
    assert_eq!(bad["status"], 400, "{results}");
    assert_eq!(bad["body"]["code"], "invalid");
    let message = bad["body"]["message"].as_str().unwrap();
    assert!(
        message.starts_with("partial write: line 2: unable to parse 'modbus this line is broken'")
            && message.ends_with("dropped=1 stored=2"),
        "{message}"
    );
    let bad = &results["v1_bad_line"];
    assert_eq!(bad["status"], 400, "{results}");
    assert!(
        bad["body"]["error"]
            .as_str()
            .unwrap()
            .contains("line 2: unable to parse 'modbus b1_flue_temp=hot'"),
        "{results}"
    );
    assert_eq!(results["v2_bad_key"]["status"], 401, "{results}");
    assert_eq!(results["v2_bad_key"]["body"]["code"], "unauthorized");

    assert_eq!(results["v2_coil"], "stored", "{results}");
    let coil = &results["v2_coil_3"];
    assert_eq!(coil["status"], 400, "{results}");
    let message = coil["body"]["message"].as_str().unwrap();
    assert!(
        message.contains("the integer 3") && message.contains("(wrong_kind)"),
        "{message}"
    );

    // Exactly the readings stored: 2 + 2 + 2 (v2) + 2 + 2 + 1 + 1 (v1) + 1 (coil).
    assert_eq!(stored(&app).await, 13);
    let (_, latest) = app.get_latest(SITE).await;
    let value = |sensor: &str| {
        latest["readings"]
            .as_array()
            .unwrap()
            .iter()
            .find(|reading| reading["sensor"] == sensor)
            .map(|reading| reading["value"].as_f64().unwrap())
    };
    // The newest of each: u and p's at +5 s, the 1.x client's last at +6 s.
    assert_eq!(value("b1_steam_pressure"), Some(15.0), "{latest}");
    assert_eq!(value("b1_flue_temp"), Some(186.0), "{latest}");
    let coil = latest["readings"]
        .as_array()
        .unwrap()
        .iter()
        .find(|reading| reading["sensor"] == "b1_burner_on")
        .map(|reading| reading["value"].clone());
    assert_eq!(coil, Some(Value::Bool(true)), "{latest}");
}

/// Modbus coils as Telegraf sends them: an integer field 1 or 0 for a
/// boolean sensor is `true` or `false`; any other integer is refused as
/// `wrong_kind`, named; integers stay numbers for numeric sensors, and
/// JSON keeps refusing numbers for boolean sensors.
#[tokio::test]
async fn modbus_coils_arrive_as_1i_and_0i() {
    let app = app_with_burner_on().await;
    let token = key(&app, "lp-coils", &[Scope::Write]).await;
    let authorization = format!("Token {token}");
    let ms = EpochMillis::now().as_millis() / 60_000 * 60_000 - 120_000;
    let (status, body) = send(
        &app,
        &format!("/api/v2/write?bucket={SITE}&precision=ms"),
        &[("authorization", &authorization)],
        format!(
            "modbus,name=b1 b1_burner_on=1i,b1_steam_pressure=10i {ms}\n\
             modbus b1_burner_on=0u {}\n\
             modbus b1_burner_on=1i {}\n",
            ms + 1_000,
            ms + 2_000
        ),
    )
    .await;
    assert_eq!((status, body), (StatusCode::NO_CONTENT, Value::Null));
    assert_eq!(stored(&app).await, 4);
    let (status, history) = app
        .get(&format!(
            "/api/v1/sites/{SITE}/sensors/b1_burner_on/history?start={ms}&end={}&every=1s",
            ms + 3_000
        ))
        .await;
    assert_eq!(status, StatusCode::OK, "{history}");
    let values: Vec<&Value> = history["points"]
        .as_array()
        .unwrap()
        .iter()
        .map(|point| &point["value"])
        .collect();
    assert_eq!(
        values,
        [&Value::Bool(true), &Value::Bool(false), &Value::Bool(true)]
    );
    let (_, pressure) = app
        .get(&format!(
            "/api/v1/sites/{SITE}/sensors/b1_steam_pressure/history?start={ms}&end={}&every=1s",
            ms + 1_000
        ))
        .await;
    assert_eq!(pressure["points"][0]["value"], 10.0, "{pressure}");

    // Any other integer is no coil: refused by name, the rest stored.
    let (status, answer) = send(
        &app,
        &format!("/api/v2/write?bucket={SITE}&precision=ms"),
        &[("authorization", &authorization)],
        format!("modbus b1_burner_on=2i,b1_flue_temp=181i {}\n", ms + 3_000),
    )
    .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{answer}");
    assert_eq!(answer["code"], "invalid");
    let message = answer["message"].as_str().unwrap();
    assert!(
        message.contains(
            "value of \"b1_burner_on\" is the integer 2, but b1_burner_on is a boolean sensor"
        ) && message.contains("(wrong_kind)")
            && message.ends_with("dropped=1 stored=1"),
        "{message}"
    );
    assert_eq!(stored(&app).await, 5);
    assert_eq!(recorded_refusals(&app, 1).await, 1);

    // JSON has booleans of its own: a number stays refused.
    let (status, problem) = app
        .post_telemetry(SITE, serde_json::json!({"b1_burner_on": 1}))
        .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{problem}");
    assert_eq!(problem["rejected"][0]["reason"], "wrong_kind");
}
