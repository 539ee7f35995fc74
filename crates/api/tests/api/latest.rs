//! The latest values: from Redis, or from InfluxDB (and Redis rewarmed).

use crate::helpers::*;
use reqwest::StatusCode;
use serde_json::json;
use stoker_domain::{EpochMillis, SensorKey, SensorType, SiteSlug};
use stoker_timeseries::LineBatch;

#[tokio::test]
async fn latest_falls_back_to_influxdb_and_rewarms_redis() {
    let app = spawn_seeded_app().await;
    let site = SiteSlug::parse("boiler-house-1").unwrap();
    let at = EpochMillis::from_millis(EpochMillis::now().as_millis() - 5_000).unwrap();
    let mut batch = LineBatch::default();
    batch.push(
        &site,
        &SensorKey::parse("b1_steam_pressure").unwrap(),
        &SensorType::parse("pressure").unwrap(),
        10.4,
        at,
    );
    app.influx.influx().write(&batch).await.unwrap();

    // Nothing in Redis: the answer comes from InfluxDB.
    let (status, latest) = app.get_latest("boiler-house-1").await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(latest["site"], "boiler-house-1");
    let readings = latest["readings"].as_array().unwrap();
    assert_eq!(
        readings[0],
        json!({"sensor": "b1_flue_temp", "type": "temperature", "unit": "°C", "value": null, "ts": null})
    );
    assert_eq!(
        readings[1],
        json!({"sensor": "b1_steam_pressure", "type": "pressure", "unit": "bar", "value": 10.4, "ts": at.to_string()})
    );

    // ...and Redis holds it now.
    let mut connection = app.redis.connection().await;
    let cached: Option<String> = redis::cmd("GET")
        .arg(format!(
            "{}latest:boiler-house-1:b1_steam_pressure",
            app.redis.prefix()
        ))
        .query_async(&mut connection)
        .await
        .unwrap();
    assert!(cached.unwrap().contains("\"value\":10.4"));

    let (status, problem) = app.get_latest("nowhere").await;
    assert_eq!(
        (status, problem["code"].as_str()),
        (StatusCode::NOT_FOUND, Some("not_found"))
    );
}
