//! History: bucketed reads, from the rollup where it holds the minutes.

use crate::helpers::*;
use reqwest::StatusCode;
use stoker_domain::{EpochMillis, SensorKey, SensorType, SiteSlug};
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
