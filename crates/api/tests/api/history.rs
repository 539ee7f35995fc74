//! History: bucketed reads, from the rollup where it holds the minutes.

use crate::helpers::*;
use reqwest::StatusCode;
use stoker_domain::{EpochMillis, SensorKey, SensorType, SiteSlug};
use stoker_metadata::Actor;
use stoker_timeseries::LineBatch;

#[tokio::test]
async fn history_reads_the_minutes_the_rollup_holds_from_the_rollup() {
    let app = spawn_seeded_app().await;
    let site = SiteSlug::parse("boiler-house-1").unwrap();
    let sensor = SensorKey::parse("b1_steam_pressure").unwrap();
    let kind = SensorType::parse("pressure").unwrap();
    let influx = app.influx.influx();
    influx.setup().await.unwrap();
    // Ten minutes of one reading per 10 s, values 0, 1, 2, …
    let start = (EpochMillis::now().as_millis() / 600_000 - 6) * 600_000;
    let mut batch = LineBatch::default();
    for index in 0..60 {
        let at = EpochMillis::from_millis(start + index * 10_000).unwrap();
        batch.push(&site, &sensor, &kind, index as f64, at);
    }
    influx.write(&batch).await.unwrap();
    // The rollup holds the first five minutes; then a reading arrives in
    // minute 2 that the rollup does not hold yet. Reads of minute 2 that
    // go through the rollup do not see it.
    let rolled = EpochMillis::from_millis(start + 300_000).unwrap();
    influx
        .roll_up(EpochMillis::from_millis(start).unwrap(), rolled)
        .await
        .unwrap();
    influx.set_rollup_progress(rolled).await.unwrap();
    let mut late = LineBatch::default();
    late.push(
        &site,
        &sensor,
        &kind,
        1000.0,
        EpochMillis::from_millis(start + 125_000).unwrap(),
    );
    late.push(
        &site,
        &sensor,
        &kind,
        2000.0,
        EpochMillis::from_millis(start + 425_000).unwrap(),
    );
    influx.write(&late).await.unwrap();

    let (status, body) = app
        .get(&format!(
            "/api/v1/sites/boiler-house-1/sensors/b1_steam_pressure/history?start={}&end={}&every=1m&agg=max",
            start + 30_000,
            start + 600_000
        ))
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let maxima: Vec<f64> = body["points"]
        .as_array()
        .unwrap()
        .iter()
        .map(|point| point["value"].as_f64().unwrap())
        .collect();
    assert_eq!(
        maxima,
        vec![5.0, 11.0, 17.0, 23.0, 29.0, 35.0, 41.0, 2000.0, 53.0, 59.0],
        "minutes 1-4 from the rollup (without the late 1000), the rest raw (with 2000)"
    );
}

#[tokio::test]
async fn history_aggregates_per_bucket_and_refuses_bad_parameters() {
    let app = spawn_seeded_app().await;
    let site = SiteSlug::parse("boiler-house-1").unwrap();
    let sensor = SensorKey::parse("b1_steam_pressure").unwrap();
    let kind = SensorType::parse("pressure").unwrap();
    // Ten minutes of one reading per 10 s, values 0, 1, 2, … (aligned to
    // ten minutes, as buckets are to the epoch: each minute holds six
    // consecutive values, each 5 minutes thirty).
    let start = (EpochMillis::now().as_millis() / 600_000 - 6) * 600_000;
    let mut batch = LineBatch::default();
    for index in 0..60 {
        let at = EpochMillis::from_millis(start + index * 10_000).unwrap();
        batch.push(&site, &sensor, &kind, index as f64, at);
    }
    app.influx.influx().write(&batch).await.unwrap();
    let end = start + 600_000;
    let path = |query: &str| {
        format!(
            "/api/v1/sites/boiler-house-1/sensors/b1_steam_pressure/history?start={start}&end={end}{query}"
        )
    };

    let (status, body) = app.get(&path("&every=1m&agg=max")).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["agg"], "max");
    assert_eq!(body["every"], "1m");
    assert_eq!(body["unit"], "bar");
    let points = body["points"].as_array().unwrap();
    assert_eq!(points.len(), 10);
    assert_eq!(points[0]["value"], 5.0);
    assert_eq!(points[9]["value"], 59.0);
    assert_eq!(
        points[1]["ts"],
        EpochMillis::from_millis(start + 60_000)
            .unwrap()
            .to_string()
    );

    let (_, body) = app.get(&path("&every=5m")).await;
    let means: Vec<f64> = body["points"]
        .as_array()
        .unwrap()
        .iter()
        .map(|point| point["value"].as_f64().unwrap())
        .collect();
    assert_eq!(means, vec![14.5, 44.5], "mean is the default");

    // Without `every`, the server picks one from the range.
    let (status, body) = app.get(&path("&agg=last")).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body["every"], "1s", "10 min / 1,000 points → 1 s");
    assert_eq!(body["points"].as_array().unwrap().len(), 60);

    for (query, parameter) in [
        ("&every=1ms", "every"),
        ("&agg=median", "agg"),
        ("&every=soon", "every"),
        ("&limit=3", "query"),
    ] {
        let (status, body) = app.get(&path(query)).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{query}: {body}");
        assert_eq!(body["code"], "invalid_parameter");
        assert_eq!(body["errors"][0]["field"], parameter, "{body}");
    }
    let (status, _) = app
        .get("/api/v1/sites/boiler-house-1/sensors/no_such_sensor/history")
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let (status, _) = app
        .get("/api/v1/sites/nowhere/sensors/b1_steam_pressure/history")
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
}

/// A GET with headers: status, headers and the body as text.
pub(crate) async fn get_text(
    app: &TestApp,
    path: &str,
    headers: &[(&str, &str)],
) -> (StatusCode, reqwest::header::HeaderMap, String) {
    let mut request = app.http.get(format!("{}{path}", app.base));
    for (name, value) in headers {
        request = request.header(*name, *value);
    }
    let response = request.send().await.unwrap();
    let status = response.status();
    let headers = response.headers().clone();
    (status, headers, response.text().await.unwrap())
}

/// The rows of a CSV body as the server wrote them (no field of these
/// tests is quoted but the unit, checked apart).
pub(crate) fn csv_lines(body: &str) -> Vec<Vec<&str>> {
    assert!(body.ends_with("\r\n"), "CRLF after every row: {body:?}");
    body.trim_end_matches("\r\n")
        .split("\r\n")
        .map(|line| line.split(',').collect())
        .collect()
}

/// Ten minutes of one reading per 10 s, values 0, 1, 2, …, aligned to ten
/// minutes; gives the range's start.
async fn ten_minutes_of_pressure(app: &TestApp) -> i64 {
    let site = SiteSlug::parse("boiler-house-1").unwrap();
    let sensor = SensorKey::parse("b1_steam_pressure").unwrap();
    let kind = SensorType::parse("pressure").unwrap();
    let start = (EpochMillis::now().as_millis() / 600_000 - 6) * 600_000;
    let mut batch = LineBatch::default();
    for index in 0..60 {
        let at = EpochMillis::from_millis(start + index * 10_000).unwrap();
        batch.push(&site, &sensor, &kind, index as f64, at);
    }
    app.influx.influx().write(&batch).await.unwrap();
    start
}

#[tokio::test]
async fn history_as_csv_holds_the_json_answers_buckets_with_their_counts() {
    let app = spawn_seeded_app().await;
    let start = ten_minutes_of_pressure(&app).await;
    let end = start + 600_000;
    let path = |query: &str| {
        format!(
            "/api/v1/sites/boiler-house-1/sensors/b1_steam_pressure/history?start={start}&end={end}{query}"
        )
    };
    let (status, json) = app.get(&path("&every=1m&agg=max")).await;
    assert_eq!(status, StatusCode::OK, "{json}");
    let points = json["points"].as_array().unwrap();

    // ?format=csv and Accept: text/csv give the same answer.
    let (status, headers, by_format) =
        get_text(&app, &path("&every=1m&agg=max&format=csv"), &[]).await;
    assert_eq!(status, StatusCode::OK, "{by_format}");
    assert_eq!(headers["content-type"], "text/csv; charset=utf-8");
    let expected_name = format!(
        "attachment; filename=\"boiler-house-1_b1_steam_pressure_{}_{}.csv\"",
        compact(start),
        compact(end)
    );
    assert_eq!(headers["content-disposition"], expected_name.as_str());
    let (status, headers, by_accept) = get_text(
        &app,
        &path("&every=1m&agg=max"),
        &[("accept", "text/csv, application/json;q=0.5")],
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(headers["content-type"], "text/csv; charset=utf-8");
    assert_eq!(by_accept, by_format);

    let lines = csv_lines(&by_format);
    assert_eq!(
        lines[0],
        ["time", "site", "sensor", "unit", "agg", "value", "count"]
    );
    assert_eq!(lines.len(), 1 + points.len());
    for (row, point) in lines[1..].iter().zip(points) {
        assert_eq!(row[0], point["ts"].as_str().unwrap(), "{row:?}");
        assert_eq!(
            row[1..5],
            ["boiler-house-1", "b1_steam_pressure", "bar", "max"]
        );
        assert_eq!(
            row[5].parse::<f64>().unwrap(),
            point["value"].as_f64().unwrap()
        );
        assert_eq!(row[6], "6", "six readings a minute");
    }
    assert_eq!(lines[1][5], "5");
    assert_eq!(lines[10][5], "59");

    // The mean (the default) of 5-minute buckets: thirty readings each.
    let (_, _, means) = get_text(&app, &path("&every=5m&format=csv"), &[]).await;
    let lines = csv_lines(&means);
    assert_eq!(
        lines[1..]
            .iter()
            .map(|row| (row[4], row[5], row[6]))
            .collect::<Vec<_>>(),
        [("mean", "14.5", "30"), ("mean", "44.5", "30")]
    );

    // Accept weighs; JSON on a tie and without the header.
    for (accept, expected) in [
        ("*/*", "application/json"),
        ("application/json", "application/json"),
        ("text/*", "text/csv; charset=utf-8"),
        ("text/csv;q=0.4, application/json;q=0.6", "application/json"),
    ] {
        let (status, headers, _) = get_text(&app, &path("&every=5m"), &[("accept", accept)]).await;
        assert_eq!(status, StatusCode::OK, "{accept}");
        assert_eq!(headers["content-type"], expected, "{accept}");
    }
}

/// `2026-12-07T10:00:00.000Z` as `20261207T100000Z`.
fn compact(millis: i64) -> String {
    EpochMillis::from_millis(millis)
        .unwrap()
        .to_string()
        .replace(".000Z", "Z")
        .replace(['-', ':'], "")
}

#[tokio::test]
async fn csv_errors_before_the_first_byte_are_problems() {
    let app = spawn_seeded_app().await;
    let history = "/api/v1/sites/boiler-house-1/sensors/b1_steam_pressure/history";

    let (status, headers, body) = get_text(&app, &format!("{history}?format=xml"), &[]).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    assert_eq!(headers["content-type"], "application/problem+json");
    let problem: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(problem["code"], "invalid_parameter");
    assert_eq!(problem["errors"][0]["field"], "format");
    assert_eq!(problem["detail"], "format=\"xml\" is not one of json, csv");

    for accept in [
        "text/html",
        "application/xml, text/plain;q=0.5",
        "text/csv;q=0",
    ] {
        let (status, headers, body) = get_text(&app, history, &[("accept", accept)]).await;
        assert_eq!(status, StatusCode::NOT_ACCEPTABLE, "{accept}: {body}");
        assert_eq!(headers["content-type"], "application/problem+json");
        let problem: serde_json::Value = serde_json::from_str(&body).unwrap();
        assert_eq!(problem["code"], "not_acceptable");
        assert!(
            problem["detail"].as_str().unwrap().contains("text/csv"),
            "{problem}"
        );
    }
    // format wins over Accept.
    let (status, headers, _) = get_text(
        &app,
        &format!("{history}?format=csv"),
        &[("accept", "text/html")],
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(headers["content-type"], "text/csv; charset=utf-8");

    // What JSON refuses, CSV refuses alike, as problem+json.
    for (path, expected) in [
        (
            "/api/v1/sites/boiler-house-1/sensors/no_such_sensor/history?format=csv".to_owned(),
            StatusCode::NOT_FOUND,
        ),
        (
            format!("{history}?format=csv&every=1ms"),
            StatusCode::BAD_REQUEST,
        ),
        (
            format!("{history}?format=csv&agg=median"),
            StatusCode::BAD_REQUEST,
        ),
    ] {
        let (status, headers, body) = get_text(&app, &path, &[("accept", "text/csv")]).await;
        assert_eq!(status, expected, "{path}: {body}");
        assert_eq!(
            headers["content-type"], "application/problem+json",
            "{path}"
        );
    }
    // CSV is streamed, so it may hold far more rows than JSON's 10,000.
    let end = EpochMillis::now().as_millis();
    let range = format!("start={}&end={end}&every=1s", end - 86_400_000);
    let (status, _, _) = get_text(&app, &format!("{history}?{range}"), &[]).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "86,400 points as JSON");
    let (status, headers, body) =
        get_text(&app, &format!("{history}?{range}&format=csv"), &[]).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(headers["content-type"], "text/csv; charset=utf-8");
    assert_eq!(
        body, "time,site,sensor,unit,agg,value,count\r\n",
        "no readings: the header alone"
    );
}

/// Runs `history_csv.py` (Python's standard `csv` module reading the
/// streamed answer) against `path`; its JSON report.
async fn python_csv(app: &TestApp, path: &str) -> serde_json::Value {
    let (_, key) = stoker_metadata::create_api_key(
        &app.pool,
        &Actor::Cli,
        &stoker_testkit::unique_client_id("csv-reader"),
        &[stoker_metadata::Scope::Read],
    )
    .await
    .unwrap();
    let key = key.expose().to_owned();
    let program = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/api/history_csv.py");
    let url = format!("{}{path}", app.base);
    let output = tokio::task::spawn_blocking(move || {
        std::process::Command::new("python3")
            .arg(program)
            .args([url.as_str(), key.as_str()])
            .output()
            .expect("python3 runs")
    })
    .await
    .unwrap();
    assert!(
        output.status.success(),
        "python3 failed:\n{}\n{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    serde_json::from_slice(&output.stdout)
        .unwrap_or_else(|_| panic!("not JSON: {}", String::from_utf8_lossy(&output.stdout)))
}

/// Booleans and states as the JSON answer gives them, a unit that needs
/// quoting, read back by Python's `csv` module.
#[tokio::test]
async fn pythons_csv_module_reads_booleans_states_and_quoted_units() {
    let app = spawn_seeded_app().await;
    let unit = "on/off, \"coil\" 1";
    for body in [
        serde_json::json!({"key": "b1_burner_on", "type": "burner", "unit": unit, "kind": "boolean"}),
        serde_json::json!({"key": "b1_sequencer", "type": "sequencer", "unit": "-", "kind": "state",
                           "states": ["off", "purge", "ignition", "firing", "lockout"]}),
    ] {
        let (status, answer) = app.post_sensor("boiler-house-1", body).await;
        assert_eq!(status, StatusCode::CREATED, "{answer}");
    }
    // Four minutes, a reading of each every 20 s.
    let start = (EpochMillis::now().as_millis() / 60_000 - 10) * 60_000;
    let states = ["off", "purge", "ignition", "firing"];
    let messages: Vec<serde_json::Value> = (0..12)
        .map(|index| {
            serde_json::json!({"ts": start + index * 20_000, "values": {
                "b1_burner_on": index % 3 != 0,
                "b1_sequencer": states[(index / 3) as usize],
            }})
        })
        .collect();
    let (status, receipt) = app
        .post_telemetry("boiler-house-1", serde_json::Value::Array(messages))
        .await;
    assert_eq!(status, StatusCode::OK, "{receipt}");
    let end = start + 240_000;

    for (sensor, agg) in [
        ("b1_burner_on", "last"),
        ("b1_burner_on", "mean"),
        ("b1_sequencer", "last"),
    ] {
        let path = format!(
            "/api/v1/sites/boiler-house-1/sensors/{sensor}/history?start={start}&end={end}&every=1m&agg={agg}"
        );
        let (status, json) = app.get(&path).await;
        assert_eq!(status, StatusCode::OK, "{json}");
        let points = json["points"].as_array().unwrap();
        assert_eq!(points.len(), 4, "{json}");
        let report = python_csv(&app, &path).await;
        assert_eq!(report["status"], 200);
        assert_eq!(report["content_type"], "text/csv; charset=utf-8");
        assert_eq!(report["transfer_encoding"], "chunked", "streamed: {report}");
        assert!(
            report["content_disposition"]
                .as_str()
                .unwrap()
                .contains(&format!("filename=\"boiler-house-1_{sensor}_")),
            "{report}"
        );
        assert_eq!(
            report["header"],
            serde_json::json!(["time", "site", "sensor", "unit", "agg", "value", "count"])
        );
        let rows = report["rows"].as_array().unwrap();
        assert_eq!(rows.len(), points.len(), "{report}");
        for (row, point) in rows.iter().zip(points) {
            assert_eq!(row[0], point["ts"], "{row}");
            assert_eq!(row[2], sensor);
            assert_eq!(
                row[3],
                if sensor == "b1_burner_on" { unit } else { "-" },
                "{row}"
            );
            assert_eq!(row[4], agg);
            // The JSON value as text: true, "firing" → firing, 0.6666….
            let native = match &point["value"] {
                serde_json::Value::String(name) => name.clone(),
                serde_json::Value::Number(number) => {
                    assert_eq!(
                        row[5].as_str().unwrap().parse::<f64>().unwrap(),
                        number.as_f64().unwrap()
                    );
                    row[5].as_str().unwrap().to_owned()
                }
                other => other.to_string(),
            };
            assert_eq!(row[5], native.as_str(), "{row} vs {point}");
            assert_eq!(row[6], "3", "three readings a minute: {row}");
        }
        if agg == "last" && sensor == "b1_sequencer" {
            let values: Vec<&str> = rows.iter().map(|row| row[5].as_str().unwrap()).collect();
            assert_eq!(values, states);
        }
        if agg == "last" && sensor == "b1_burner_on" {
            let values: Vec<&str> = rows.iter().map(|row| row[5].as_str().unwrap()).collect();
            assert_eq!(values, ["true"; 4]);
        }
    }
}

/// A long answer arrives in several chunks read one after another, every
/// bucket once and in order.
#[tokio::test]
async fn a_long_csv_answer_streams_every_bucket_once_in_order() {
    let app = spawn_seeded_app().await;
    let site = SiteSlug::parse("boiler-house-1").unwrap();
    let sensor = SensorKey::parse("b1_flue_temp").unwrap();
    let kind = SensorType::parse("temperature").unwrap();
    // 2,500 readings a second apart: three chunks of 1,000 buckets.
    let start = (EpochMillis::now().as_millis() / 1_000 - 3_000) * 1_000;
    let mut batch = LineBatch::default();
    for index in 0..2_500 {
        let at = EpochMillis::from_millis(start + index * 1_000).unwrap();
        batch.push(
            &site,
            &sensor,
            &kind,
            100.0 + (index % 400) as f64 * 0.5,
            at,
        );
    }
    app.influx.influx().write(&batch).await.unwrap();
    let path = format!(
        "/api/v1/sites/boiler-house-1/sensors/b1_flue_temp/history?start={start}&end={}&every=1s&agg=last",
        start + 2_500_000
    );
    let report = python_csv(&app, &path).await;
    assert_eq!(report["transfer_encoding"], "chunked");
    let rows = report["rows"].as_array().unwrap();
    assert_eq!(rows.len(), 2_500);
    for (index, row) in rows.iter().enumerate() {
        let at = EpochMillis::from_millis(start + index as i64 * 1_000).unwrap();
        assert_eq!(row[0], at.to_string().as_str(), "row {index}");
        assert_eq!(
            row[5].as_str().unwrap().parse::<f64>().unwrap(),
            100.0 + (index % 400) as f64 * 0.5,
            "row {index}"
        );
        assert_eq!(row[6], "1");
    }
}

/// InfluxDB failing before the first byte of a CSV answer gets a
/// problem+json 503; failing after it, the transfer is cut short (no
/// final chunk), so a partial file is never taken for a whole one.
#[tokio::test]
async fn an_influxdb_failure_after_the_first_byte_cuts_the_csv_transfer_short() {
    let app = spawn_seeded_app().await;
    // A year of minutes, read 1,000 buckets at a time: 526 reads.
    let end = EpochMillis::now().as_millis();
    let path = format!(
        "/api/v1/sites/boiler-house-1/sensors/b1_steam_pressure/history?start={}&end={end}&every=1m&format=csv",
        end - 365 * 86_400_000
    );
    let response = app
        .http
        .get(format!("{}{path}", app.base))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(
        response.headers()["content-type"],
        "text/csv; charset=utf-8"
    );
    // The answer has started; its database goes away under it.
    app.influx.influx().drop_database().await.unwrap();
    let body = response.text().await;
    assert!(
        body.is_err(),
        "the transfer ended as if complete: {:?}",
        body.map(|text| text.len())
    );

    // Before the first byte: a problem, as for JSON.
    let (status, headers, body) = get_text(&app, &path, &[]).await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "{body}");
    assert_eq!(headers["content-type"], "application/problem+json");
    assert!(body.contains("dependency_unavailable"), "{body}");
}
