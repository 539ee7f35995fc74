//! `/healthz` and `/readyz`: what the probes say about each dependency.

use crate::helpers::*;
use reqwest::StatusCode;
use serde_json::{Value, json};
use stoker_testkit::TestPostgres;
use tokio_util::sync::CancellationToken;

#[tokio::test]
async fn healthz_and_readyz_answer() {
    let app = spawn_app().await;
    assert_eq!(
        app.get("/healthz").await,
        (StatusCode::OK, json!({"status": "ok"}))
    );
    assert_eq!(
        app.get("/readyz").await,
        (
            StatusCode::OK,
            json!({"status": "ready", "checks": {"always": "ok", "postgres": "ok", "influxdb": "ok", "redis": "ok"}})
        )
    );
}

#[tokio::test]
async fn readyz_names_each_dependency_and_which_failed() {
    let postgres = TestPostgres::create().await;
    let pool = postgres.migrated_pool().await;
    let mut server = stoker_testkit::TestInfluxServer::start().await;
    let influx = stoker_timeseries::Influx::connect(&server.options("stoker"))
        .await
        .unwrap();
    // Nothing listens on port 1.
    let cache = stoker_cache::Cache::connect(&stoker_cache::RedisOptions {
        url: "redis://127.0.0.1:1".into(),
        key_prefix: String::new(),
        ca_file: None,
    })
    .unwrap();
    let readiness = stoker_api::Readiness::default().with_stores(pool, influx, cache);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}/readyz", listener.local_addr().unwrap());
    let shutdown = CancellationToken::new();
    tokio::spawn(stoker_api::serve_ops(
        listener,
        readiness,
        std::sync::Arc::new(prometheus_client::registry::Registry::default()),
        shutdown.clone(),
    ));
    let http = reqwest::Client::new();

    // Redis down: degraded, still ready (every route works without it).
    let response = http.get(&base).send().await.unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["checks"]["postgres"], "ok");
    assert_eq!(body["checks"]["influxdb"], "ok");
    assert_eq!(body["checks"]["redis"]["status"], "degraded", "{body}");

    // InfluxDB down too: not ready, and the answer says which.
    server.stop();
    let response = http.get(&base).send().await.unwrap();
    assert_eq!(response.status(), StatusCode::SERVICE_UNAVAILABLE);
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["status"], "not ready");
    assert_eq!(body["checks"]["influxdb"]["status"], "failed", "{body}");
    assert!(body["checks"]["influxdb"]["detail"].as_str().unwrap().len() > 5);
    assert_eq!(body["checks"]["postgres"], "ok");
    shutdown.cancel();
}
