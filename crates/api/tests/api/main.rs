//! The API over real HTTP, against real Postgres, InfluxDB and Redis.
//!
//! `alerts`: alerts, their transitions, the dashboard's open alerts and
//! rule previews.

mod alerts;
mod methods;
mod security;

use reqwest::StatusCode;
use serde_json::{Value, json};
use stoker_api::ApiState;
use stoker_domain::{EpochMillis, SensorKey, SensorType, SiteSlug};
use stoker_metadata::Scope;
use stoker_testkit::{TestInflux, TestPostgres, TestRedis};
use stoker_timeseries::LineBatch;
use tokio_util::sync::CancellationToken;

struct TestApp {
    base: String,
    /// Sends the admin key below with every request.
    http: reqwest::Client,
    pool: stoker_metadata::Pool,
    influx: TestInflux,
    redis: TestRedis,
    postgres: TestPostgres,
    spool: std::path::PathBuf,
    shutdown: CancellationToken,
}

impl Drop for TestApp {
    fn drop(&mut self) {
        self.shutdown.cancel();
        let _ = std::fs::remove_dir_all(&self.spool);
    }
}

async fn spawn_app() -> TestApp {
    spawn_app_with(AppOptions::default()).await
}

/// How a test's app differs from the usual one.
#[derive(Default)]
struct AppOptions {
    /// Where alert transitions made through the API are announced.
    notify: stoker_analytics::notify::NotifyOptions,
    /// Redis settings to use instead of the test's key prefix (e.g. a Redis
    /// that is down).
    redis: Option<stoker_cache::RedisOptions>,
    /// Client timeouts instead of the defaults.
    http: Option<stoker_api::HttpOptions>,
}

async fn spawn_app_with(options: AppOptions) -> TestApp {
    let AppOptions {
        notify,
        redis: redis_options,
        http: http_options,
    } = options;
    let postgres = TestPostgres::create().await;
    let pool = postgres.migrated_pool().await;
    stoker_ingestion::migrate(&pool).await.unwrap();
    stoker_analytics::migrate(&pool).await.unwrap();
    let influx = TestInflux::create().await;
    let redis = TestRedis::new();
    let cache = match redis_options {
        Some(options) => stoker_cache::Cache::connect(&options).unwrap(),
        None => redis.cache(),
    };
    let shutdown = CancellationToken::new();
    let spool = std::env::temp_dir().join(stoker_testkit::unique_client_id("stoker-test-spool"));
    let options = stoker_ingestion::IngestOptions {
        linger: std::time::Duration::from_millis(20),
        spool_dir: spool.clone(),
        ..Default::default()
    };
    let stores = stoker_ingestion::Stores {
        pool: pool.clone(),
        postgres: postgres.options(),
        influx: influx.influx().clone(),
        cache: cache.clone(),
    };
    let ingestion =
        stoker_ingestion::Ingestion::start_without_mqtt(&options, stores, shutdown.clone())
            .await
            .unwrap();
    let (_, admin) = stoker_metadata::create_api_key(&pool, "tests", &[Scope::Admin])
        .await
        .unwrap();
    let admin_pool = pool.clone();
    let readiness = stoker_api::Readiness::default()
        .with_stores(pool.clone(), influx.influx().clone(), cache.clone())
        .with("always", || true);
    let catalog = stoker_api::Catalog::follow(postgres.options(), cache.clone(), shutdown.clone());
    let state = ApiState {
        pool,
        influx: influx.influx().clone(),
        cache,
        intake: Some(ingestion.intake()),
        metrics: {
            let mut registry = prometheus_client::registry::Registry::default();
            ingestion.register_metrics(&mut registry);
            std::sync::Arc::new(registry)
        },
        readiness,
        catalog,
        notify,
        rollup: stoker_api::RollupClock::default(),
    };
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let http_options = http_options.unwrap_or_default();
    let stop = shutdown.clone();
    tokio::spawn(async move { stoker_api::serve_with(listener, state, &http_options, stop).await });
    TestApp {
        base,
        http: reqwest::Client::builder()
            .default_headers(
                [(
                    reqwest::header::AUTHORIZATION,
                    format!("Bearer {}", admin.expose()).parse().unwrap(),
                )]
                .into_iter()
                .collect(),
            )
            .build()
            .unwrap(),
        pool: admin_pool,
        influx,
        redis,
        postgres,
        spool,
        shutdown,
    }
}

impl TestApp {
    async fn get(&self, path: &str) -> (StatusCode, Value) {
        let response = self
            .http
            .get(format!("{}{path}", self.base))
            .send()
            .await
            .unwrap();
        let status = response.status();
        (status, response.json().await.unwrap_or(Value::Null))
    }

    async fn post(&self, path: &str, body: Value) -> (StatusCode, Value) {
        let response = self
            .http
            .post(format!("{}{path}", self.base))
            .json(&body)
            .send()
            .await
            .unwrap();
        let status = response.status();
        if !status.is_success() {
            let content_type = response.headers()["content-type"]
                .to_str()
                .unwrap()
                .to_owned();
            assert_eq!(content_type, "application/problem+json");
        }
        (status, response.json().await.unwrap_or(Value::Null))
    }

    async fn seed(&self) {
        let (status, _) = self
            .post("/api/v1/sites", json!({"slug": "boiler-house-1", "name": "Boiler house 1", "timezone": "Europe/Berlin"}))
            .await;
        assert_eq!(status, StatusCode::CREATED);
        for (key, kind, unit) in [
            ("b1_steam_pressure", "pressure", "bar"),
            ("b1_flue_temp", "temperature", "°C"),
        ] {
            let (status, body) = self
                .post(
                    "/api/v1/sites/boiler-house-1/sensors",
                    json!({"key": key, "type": kind, "unit": unit, "min": 0, "max": 600}),
                )
                .await;
            assert_eq!(status, StatusCode::CREATED, "{body}");
        }
    }
}

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
async fn sites_and_sensors_are_created_and_listed() {
    let app = spawn_app().await;
    app.seed().await;
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
    let app = spawn_app().await;
    app.seed().await;

    let (status, problem) = app
        .post(
            "/api/v1/sites",
            json!({"slug": "Boiler House", "timezone": 5, "colour": "red"}),
        )
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
        .post(
            "/api/v1/sites",
            json!({"slug": "x", "name": "X", "timezone": "Mars/Base"}),
        )
        .await;
    assert_eq!(
        (status, problem["errors"][0]["field"].as_str()),
        (StatusCode::UNPROCESSABLE_ENTITY, Some("timezone"))
    );

    let (status, problem) = app
        .post(
            "/api/v1/sites",
            json!({"slug": "boiler-house-1", "name": "Again"}),
        )
        .await;
    assert_eq!(
        (status, problem["code"].as_str()),
        (StatusCode::CONFLICT, Some("conflict"))
    );

    let (status, problem) = app
        .post(
            "/api/v1/sites/boiler-house-1/sensors",
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
        .post(
            "/api/v1/sites/nowhere/sensors",
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
async fn latest_falls_back_to_influxdb_and_rewarms_redis() {
    let app = spawn_app().await;
    app.seed().await;
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
    let (status, latest) = app.get("/api/v1/sites/boiler-house-1/latest").await;
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

    let (status, problem) = app.get("/api/v1/sites/nowhere/latest").await;
    assert_eq!(
        (status, problem["code"].as_str()),
        (StatusCode::NOT_FOUND, Some("not_found"))
    );
}

#[tokio::test]
async fn telemetry_over_http_answers_once_durable_and_names_each_refusal() {
    let app = spawn_app().await;
    app.seed().await;
    // No wait for ingestion's registry: an unknown sensor makes it look in
    // Postgres before refusing.
    let site = SiteSlug::parse("boiler-house-1").unwrap();
    let ts = EpochMillis::now().as_millis() - 10_000;
    let path = "/api/v1/sites/boiler-house-1/telemetry";

    // All accepted: durable when answered.
    let (status, body) = app
        .post(
            path,
            json!({"ts": ts, "values": {"b1_steam_pressure": 10.4, "b1_flue_temp": 181.2}}),
        )
        .await;
    assert_eq!(
        (status, body),
        (StatusCode::OK, json!({"accepted": 2, "rejected": []}))
    );
    assert_eq!(app.influx.influx().count_readings(&site).await.unwrap(), 2);

    // Partly refused: the answer names each refused reading and why.
    let (status, body) = app
        .post(path, json!([{"ts": ts + 1000, "values": {"b1_steam_pressure": 10.5, "b1_ghost": 1.0, "b1_flue_temp": 9999}}]))
        .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body["accepted"], 1);
    let reasons: Vec<(&str, &str)> = body["rejected"]
        .as_array()
        .unwrap()
        .iter()
        .map(|refused| {
            (
                refused["sensor"].as_str().unwrap(),
                refused["reason"].as_str().unwrap(),
            )
        })
        .collect();
    assert_eq!(reasons.len(), 2);
    assert!(
        reasons.contains(&("b1_ghost", "unknown_sensor"))
            && reasons.contains(&("b1_flue_temp", "out_of_range")),
        "{body}"
    );

    // Every reading refused: 422 with the list.
    let (status, problem) = app.post(path, json!({"b1_steam_pressure": "high"})).await;
    assert_eq!(
        (status, problem["code"].as_str()),
        (
            StatusCode::UNPROCESSABLE_ENTITY,
            Some("all_readings_rejected")
        )
    );
    assert_eq!(problem["rejected"][0]["reason"], "non_numeric");

    // Refused as a whole.
    let (status, problem) = app
        .post("/api/v1/sites/nowhere/telemetry", json!({"a": 1}))
        .await;
    assert_eq!(
        (status, problem["code"].as_str()),
        (StatusCode::NOT_FOUND, Some("unknown_site"))
    );
    let response = app
        .http
        .post(format!("{}{path}", app.base))
        .header("content-type", "application/json")
        .body("{not json")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::BAD_REQUEST);
    assert_eq!(
        response.json::<Value>().await.unwrap()["code"],
        "malformed_json"
    );
    let huge = format!(
        "{{\"b1_flue_temp\": 1, \"pad\": \"{}\"}}",
        "x".repeat(300 * 1024)
    );
    let response = app
        .http
        .post(format!("{}{path}", app.base))
        .header("content-type", "application/json")
        .body(huge)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::PAYLOAD_TOO_LARGE);
    assert_eq!(
        response.json::<Value>().await.unwrap()["code"],
        "payload_too_large"
    );
    assert_eq!(app.influx.influx().count_readings(&site).await.unwrap(), 3);

    // Each refusal is recorded in Postgres with source http.
    let pool = stoker_metadata::connect(&app.postgres.options()).unwrap();
    let client = pool.get().await.unwrap();
    let mut recorded = 0_i64;
    for _ in 0..100 {
        recorded = client
            .query_one(
                "SELECT count(*) FROM ingestion.rejected_readings WHERE source = 'http'",
                &[],
            )
            .await
            .unwrap()
            .get(0);
        if recorded == 6 {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    assert_eq!(
        recorded, 6,
        "ghost, out of range, non-numeric, unknown site, malformed, too large"
    );

    // The same, as Prometheus metrics.
    let response = app
        .http
        .get(format!("{}/metrics", app.base))
        .send()
        .await
        .unwrap();
    assert!(
        response.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("application/openmetrics-text")
    );
    let metrics = response.text().await.unwrap();
    for line in [
        "stoker_ingest_readings_accepted_total 3",
        "stoker_ingest_readings_rejected_total{reason=\"unknown_sensor\"} 1",
        "stoker_ingest_readings_rejected_total{reason=\"payload_too_large\"} 1",
        "stoker_ingest_spool_segments 0",
    ] {
        assert!(
            metrics.lines().any(|metric| metric == line),
            "no {line:?} in\n{metrics}"
        );
    }
    assert!(
        metrics.contains("stoker_ingest_write_seconds_bucket"),
        "{metrics}"
    );
}

#[tokio::test]
async fn history_reads_the_minutes_the_rollup_holds_from_the_rollup() {
    let app = spawn_app().await;
    app.seed().await;
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
    let app = spawn_app().await;
    app.seed().await;
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

#[tokio::test]
async fn every_key_case_gets_the_right_status_and_code() {
    let app = spawn_app().await;
    app.seed().await;
    let (_, reader) = stoker_metadata::create_api_key(&app.pool, "dashboard", &[Scope::Read])
        .await
        .unwrap();
    let (_, gateway) = stoker_metadata::create_api_key(&app.pool, "gateway", &[Scope::Write])
        .await
        .unwrap();
    let (revoked, revoked_token) =
        stoker_metadata::create_api_key(&app.pool, "old", &[Scope::Read])
            .await
            .unwrap();
    stoker_metadata::revoke_api_key(&app.pool, &revoked.name)
        .await
        .unwrap();
    let bare = reqwest::Client::new();
    let latest = format!("{}/api/v1/sites/boiler-house-1/latest", app.base);
    let send = |authorization: Option<String>| {
        let mut request = bare.get(&latest);
        if let Some(value) = authorization {
            request = request.header("authorization", value);
        }
        async move {
            let response = request.send().await.unwrap();
            let status = response.status();
            let challenge = response.headers().contains_key("www-authenticate");
            let body: Value = response.json().await.unwrap_or(Value::Null);
            (
                status,
                body["code"].as_str().unwrap_or("").to_owned(),
                challenge,
            )
        }
    };
    let bearer = |token: &str| Some(format!("Bearer {token}"));
    // The right secret of a real key id, with one character changed.
    let mut wrong = reader.expose().to_owned();
    let last = wrong.pop().unwrap();
    wrong.push(if last == 'a' { 'b' } else { 'a' });

    for (case, authorization, status, code) in [
        ("no key", None, StatusCode::UNAUTHORIZED, "missing_api_key"),
        (
            "not bearer",
            Some(format!("Basic {}", reader.expose())),
            StatusCode::UNAUTHORIZED,
            "malformed_api_key",
        ),
        (
            "malformed",
            bearer("letmein"),
            StatusCode::UNAUTHORIZED,
            "malformed_api_key",
        ),
        (
            "wrong secret",
            bearer(&wrong),
            StatusCode::UNAUTHORIZED,
            "invalid_api_key",
        ),
        (
            "unknown id",
            bearer("stk_zzzzzzzzzzzz_0123456789abcdefABCDEF0123456789"),
            StatusCode::UNAUTHORIZED,
            "invalid_api_key",
        ),
        (
            "revoked",
            bearer(revoked_token.expose()),
            StatusCode::UNAUTHORIZED,
            "revoked_api_key",
        ),
        (
            "wrong scope",
            bearer(gateway.expose()),
            StatusCode::FORBIDDEN,
            "insufficient_scope",
        ),
        ("right scope", bearer(reader.expose()), StatusCode::OK, ""),
    ] {
        let (got, got_code, challenge) = send(authorization).await;
        assert_eq!((got, got_code.as_str()), (status, code), "{case}");
        assert_eq!(
            challenge,
            status == StatusCode::UNAUTHORIZED,
            "{case}: WWW-Authenticate"
        );
    }

    // The write-only key may send telemetry but not create sites; the
    // read key may not send telemetry.
    let telemetry = format!("{}/api/v1/sites/boiler-house-1/telemetry", app.base);
    let body = json!({"b1_steam_pressure": 10.0});
    let status = bare
        .post(&telemetry)
        .bearer_auth(gateway.expose())
        .json(&body)
        .send()
        .await
        .unwrap()
        .status();
    assert_eq!(status, StatusCode::OK);
    let status = bare
        .post(&telemetry)
        .bearer_auth(reader.expose())
        .json(&body)
        .send()
        .await
        .unwrap()
        .status();
    assert_eq!(status, StatusCode::FORBIDDEN);
    let status = bare
        .post(format!("{}/api/v1/sites", app.base))
        .bearer_auth(gateway.expose())
        .json(&json!({"slug": "b-2", "name": "B 2"}))
        .send()
        .await
        .unwrap()
        .status();
    assert_eq!(status, StatusCode::FORBIDDEN);

    // Revoking takes effect at once (the change is announced).
    stoker_metadata::revoke_api_key(&app.pool, "dashboard")
        .await
        .unwrap();
    let mut status = StatusCode::OK;
    for _ in 0..100 {
        status = send(bearer(reader.expose())).await.0;
        if status == StatusCode::UNAUTHORIZED {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    assert_eq!(status, StatusCode::UNAUTHORIZED);

    // The ops routes need no key.
    for path in ["/healthz", "/readyz", "/metrics"] {
        let status = bare
            .get(format!("{}{path}", app.base))
            .send()
            .await
            .unwrap()
            .status();
        assert_eq!(status, StatusCode::OK, "{path}");
    }
}

impl TestApp {
    /// Sends `method path` with an optional JSON body and headers.
    async fn send(
        &self,
        method: reqwest::Method,
        path: &str,
        body: Option<Value>,
        headers: &[(&str, &str)],
    ) -> (StatusCode, reqwest::header::HeaderMap, Value) {
        let mut request = self.http.request(method, format!("{}{path}", self.base));
        if let Some(body) = body {
            request = request.json(&body);
        }
        for (name, value) in headers {
            request = request.header(*name, *value);
        }
        let response = request.send().await.unwrap();
        let status = response.status();
        let headers = response.headers().clone();
        (
            status,
            headers,
            response.json().await.unwrap_or(Value::Null),
        )
    }
}

#[tokio::test]
async fn sites_and_sensors_change_with_versions_and_list_in_pages() {
    use reqwest::Method;
    let app = spawn_app().await;
    app.seed().await;
    let site = "/api/v1/sites/boiler-house-1";

    // Read: the version is the ETag.
    let (status, headers, body) = app.send(Method::GET, site, None, &[]).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(headers["etag"], "\"1\"");
    assert_eq!(body["version"], 1);

    // Change with the version read; again with the same (stale) version.
    let rename = json!({"name": "Boiler house one", "version": 1});
    let (status, headers, body) = app
        .send(Method::PATCH, site, Some(rename.clone()), &[])
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(
        (body["name"].as_str(), body["version"].as_i64()),
        (Some("Boiler house one"), Some(2))
    );
    assert_eq!(headers["etag"], "\"2\"");
    let (status, _, body) = app.send(Method::PATCH, site, Some(rename), &[]).await;
    assert_eq!(status, StatusCode::CONFLICT);
    assert_eq!(body["code"], "version_conflict");
    // If-Match instead of a version in the body.
    let (status, _, body) = app
        .send(
            Method::PATCH,
            site,
            Some(json!({"timezone": "UTC"})),
            &[("if-match", "\"2\"")],
        )
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
        let (status, _, body) = app.send(Method::PATCH, site, Some(patch), &[]).await;
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{field}: {body}");
        assert_eq!(body["errors"][0]["field"], field, "{body}");
    }
    let (status, _, body) = app
        .send(
            Method::PATCH,
            site,
            Some(json!({"name": "x"})),
            &[("if-match", "yesterday")],
        )
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");

    // Pages: five sites, two per page, each once, in order.
    for slug in ["b-2", "b-3", "b-4", "b-5"] {
        let (status, _, _) = app
            .send(
                Method::POST,
                "/api/v1/sites",
                Some(json!({"slug": slug, "name": slug})),
                &[],
            )
            .await;
        assert_eq!(status, StatusCode::CREATED);
    }
    let mut seen = Vec::new();
    let mut path = "/api/v1/sites?limit=2".to_owned();
    for page in 0.. {
        let (status, _, body) = app.send(Method::GET, &path, None, &[]).await;
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
            .send(Method::GET, &format!("/api/v1/sites?{query}"), None, &[])
            .await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{query}");
        assert_eq!(body["code"], "invalid_parameter");
    }

    // Sensors: one by key, changed (a bound cleared), listed in pages.
    let sensor = "/api/v1/sites/boiler-house-1/sensors/b1_flue_temp";
    let (status, headers, body) = app.send(Method::GET, sensor, None, &[]).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(headers["etag"], "\"1\"");
    assert_eq!(
        (body["min"].as_f64(), body["max"].as_f64()),
        (Some(0.0), Some(600.0))
    );
    let (status, _, body) = app
        .send(
            Method::PATCH,
            sensor,
            Some(json!({"min": null, "max": 650, "unit": "degC", "version": 1})),
            &[],
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
    let (status, _, body) = app
        .send(
            Method::PATCH,
            sensor,
            Some(json!({"min": 700, "version": 2})),
            &[],
        )
        .await;
    assert_eq!(
        status,
        StatusCode::UNPROCESSABLE_ENTITY,
        "min above max: {body}"
    );
    let (_, _, body) = app
        .send(
            Method::GET,
            "/api/v1/sites/boiler-house-1/sensors?limit=1",
            None,
            &[],
        )
        .await;
    assert_eq!(body["items"].as_array().unwrap().len(), 1);
    assert!(body["next_cursor"].is_string());

    // Deleting: a site with sensors says so; a stale version is refused.
    let (status, _, body) = app.send(Method::DELETE, site, None, &[]).await;
    assert_eq!(status, StatusCode::CONFLICT);
    assert_eq!(body["code"], "has_dependents");
    assert!(body["detail"].as_str().unwrap().contains('2'), "{body}");
    let (status, _, _) = app
        .send(Method::DELETE, sensor, None, &[("if-match", "\"1\"")])
        .await;
    assert_eq!(status, StatusCode::CONFLICT);
    let (status, _, _) = app
        .send(Method::DELETE, sensor, None, &[("if-match", "\"2\"")])
        .await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    let (status, _, _) = app.send(Method::GET, sensor, None, &[]).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let (status, _, _) = app
        .send(
            Method::DELETE,
            "/api/v1/sites/boiler-house-1/sensors/b1_steam_pressure",
            None,
            &[],
        )
        .await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    let (status, _, _) = app.send(Method::DELETE, site, None, &[]).await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    let (status, _, _) = app.send(Method::GET, site, None, &[]).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn the_openapi_document_lists_every_route_answered_and_nothing_else() {
    use reqwest::Method;
    let app = spawn_app().await;
    app.seed().await;
    let (status, _, rule) = app
        .send(
            Method::POST,
            "/api/v1/alert-rules",
            Some(threshold_rule()),
            &[],
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{rule}");
    let rule_id = rule["id"].as_str().unwrap().to_owned();
    let bare = reqwest::Client::new();
    let document: Value = bare
        .get(format!("{}/api/v1/openapi.json", app.base))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert!(document["openapi"].as_str().unwrap().starts_with("3."));
    let paths = document["paths"].as_object().unwrap();
    assert!(paths.len() >= 10, "{}", paths.len());
    let methods = [
        Method::GET,
        Method::POST,
        Method::PUT,
        Method::PATCH,
        Method::DELETE,
    ];
    let mut operations = 0;
    for (template, item) in paths {
        let path = template
            .replace("{site}", "boiler-house-1")
            .replace("{sensor}", "b1_flue_temp")
            .replace("{rule}", &rule_id)
            .replace("{alert}", "00000000-0000-0000-0000-000000000000");
        for method in &methods {
            let documented = item.get(method.as_str().to_lowercase()).is_some();
            // No body: a documented route may refuse it (415, 422), but it
            // must not be "no such route" or "wrong method". Deletes go
            // to a path that does not exist, so nothing is lost.
            let target = if *method == Method::DELETE {
                path.replace("boiler-house-1", "gone")
                    .replace("b1_flue_temp", "gone")
                    .replace(&rule_id, "00000000-0000-0000-0000-000000000000")
            } else {
                path.clone()
            };
            let (status, _, body) = app.send(method.clone(), &target, None, &[]).await;
            let code = body["code"].as_str().unwrap_or("");
            if documented {
                operations += 1;
                assert!(
                    code != "route_not_found" && code != "method_not_allowed",
                    "{method} {template} is documented but answered {status} {code}"
                );
                let security = &item[method.as_str().to_lowercase()]["security"];
                let open = security.as_array().is_some_and(Vec::is_empty);
                let status_without_key = bare
                    .request(method.clone(), format!("{}{target}", app.base))
                    .send()
                    .await
                    .unwrap()
                    .status();
                assert_eq!(
                    status_without_key == StatusCode::UNAUTHORIZED,
                    !open,
                    "{method} {template}: security in the document vs 401 without a key"
                );
            } else {
                assert!(
                    status == StatusCode::METHOD_NOT_ALLOWED || status == StatusCode::NOT_FOUND,
                    "{method} {template} is not documented but answered {status} {body}"
                );
            }
        }
    }
    assert!(operations >= 27, "{operations} operations");
    // Paths outside the document are not answered.
    for path in [
        "/api/v1/nothing",
        "/api/v1/sites/boiler-house-1/other",
        "/api/v2/sites",
        "/admin",
    ] {
        let (status, _, body) = app.send(Method::GET, path, None, &[]).await;
        assert_eq!(status, StatusCode::NOT_FOUND, "{path}: {body}");
    }
}

/// DESIGN.md's threshold rule.
fn threshold_rule() -> Value {
    json!({"name": "Steam pressure high", "kind": "threshold", "site": "boiler-house-1",
           "sensor_type": "pressure", "agg": "mean", "op": ">", "threshold": 12.5,
           "clear_threshold": 12.0, "window": "60s", "for": "30s", "severity": "warning",
           "enabled": true})
}

#[tokio::test]
async fn alert_rules_are_created_changed_listed_and_deleted() {
    use reqwest::Method;
    let app = spawn_app().await;
    app.seed().await;
    let (status, headers, rule) = app
        .send(
            Method::POST,
            "/api/v1/alert-rules",
            Some(threshold_rule()),
            &[],
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{rule}");
    assert_eq!(headers["etag"], "\"1\"");
    for (field, value) in [
        ("kind", "threshold"),
        ("agg", "mean"),
        ("op", ">"),
        ("severity", "warning"),
        ("site", "boiler-house-1"),
    ] {
        assert_eq!(rule[field], value, "{field}: {rule}");
    }
    assert_eq!(rule["threshold"], 12.5);
    let path = format!("/api/v1/alert-rules/{}", rule["id"].as_str().unwrap());

    // Invalid rules name the field.
    for (change, field) in [
        (json!({"clear_threshold": 13.0}), "clear_threshold"),
        (json!({"op": "=="}), "op"),
        (json!({"threshold": "high"}), "threshold"),
        (json!({"window": "soon"}), "window"),
        (json!({"site": null, "sensor_type": null}), "selector"),
        (json!({"timeout": "60s"}), "timeout"),
        (json!({"colour": "red"}), "colour"),
    ] {
        let mut body = threshold_rule();
        for (key, value) in change.as_object().unwrap() {
            body[key] = value.clone();
        }
        let (status, _, problem) = app
            .send(Method::POST, "/api/v1/alert-rules", Some(body), &[])
            .await;
        assert_eq!(
            status,
            StatusCode::UNPROCESSABLE_ENTITY,
            "{field}: {problem}"
        );
        assert_eq!(problem["errors"][0]["field"], field, "{problem}");
    }

    // A PATCH merges; a new kind drops the old kind's values.
    let (status, _, changed) = app
        .send(
            Method::PATCH,
            &path,
            Some(json!({"threshold": 13.5, "version": 1})),
            &[],
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{changed}");
    assert_eq!(
        (
            changed["threshold"].as_f64(),
            changed["clear_threshold"].as_f64()
        ),
        (Some(13.5), Some(12.0))
    );
    let (status, _, changed) = app
        .send(
            Method::PATCH,
            &path,
            Some(json!({"kind": "no_data", "timeout": "2m"})),
            &[("if-match", "\"2\"")],
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{changed}");
    assert_eq!(changed["kind"], "no_data");
    assert!(
        changed.get("threshold").is_none() || changed["threshold"].is_null(),
        "{changed}"
    );
    let (status, _, problem) = app
        .send(
            Method::PATCH,
            &path,
            Some(json!({"severity": "critical", "version": 2})),
            &[],
        )
        .await;
    assert_eq!(status, StatusCode::CONFLICT);
    assert_eq!(problem["code"], "version_conflict");

    // Listed, filtered, in pages.
    let (_, _, second) = app
        .send(Method::POST, "/api/v1/alert-rules", Some(json!({"name": "Flue gas silent", "kind": "no_data", "sensor": "b1_flue_temp", "timeout": "5m", "severity": "critical"})), &[])
        .await;
    let (_, _, page) = app
        .send(Method::GET, "/api/v1/alert-rules?limit=1", None, &[])
        .await;
    assert_eq!(page["items"].as_array().unwrap().len(), 1);
    let cursor = page["next_cursor"].as_str().unwrap().to_owned();
    let (_, _, next) = app
        .send(
            Method::GET,
            &format!("/api/v1/alert-rules?limit=1&cursor={cursor}"),
            None,
            &[],
        )
        .await;
    assert_eq!(next["items"][0]["id"], second["id"]);
    assert!(next["next_cursor"].is_null());
    let (_, _, scoped) = app
        .send(
            Method::GET,
            "/api/v1/alert-rules?site=boiler-house-1",
            None,
            &[],
        )
        .await;
    assert_eq!(scoped["items"].as_array().unwrap().len(), 1);
    let (status, _, _) = app
        .send(Method::GET, "/api/v1/alert-rules?enabled=maybe", None, &[])
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    let (status, _, _) = app
        .send(Method::GET, "/api/v1/alert-rules/not-a-uuid", None, &[])
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND);

    let (status, _, _) = app.send(Method::DELETE, &path, None, &[]).await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    let (status, _, _) = app.send(Method::GET, &path, None, &[]).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn the_dashboard_is_cached_and_dropped_when_its_site_changes() {
    use reqwest::Method;
    let app = spawn_app().await;
    app.seed().await;
    let (status, _, body) = app
        .send(
            Method::POST,
            "/api/v1/sites/boiler-house-1/telemetry",
            Some(json!({"b1_steam_pressure": 10.5})),
            &[],
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let path = "/api/v1/sites/boiler-house-1/dashboard";
    let (status, headers, dashboard) = app.send(Method::GET, path, None, &[]).await;
    assert_eq!(status, StatusCode::OK, "{dashboard}");
    assert_eq!(headers["x-cache"], "miss");
    assert_eq!(
        dashboard["counts"],
        json!({"ok": 1, "stale": 1, "out_of_range": 0, "alerting": 0})
    );
    let sensors = dashboard["sensors"].as_array().unwrap();
    assert_eq!(
        (sensors[0]["sensor"].as_str(), sensors[0]["status"].as_str()),
        (Some("b1_flue_temp"), Some("stale"))
    );
    assert_eq!(
        (sensors[1]["value"].as_f64(), sensors[1]["status"].as_str()),
        (Some(10.5), Some("ok"))
    );
    assert_eq!(dashboard["open_alerts"], json!([]));
    let (_, headers, again) = app.send(Method::GET, path, None, &[]).await;
    assert_eq!(headers["x-cache"], "hit");
    assert_eq!(again, dashboard);

    // The sensor's range changes: the cached dashboard goes, and the new
    // one says the value is out of range.
    let (status, _, body) = app
        .send(
            Method::PATCH,
            "/api/v1/sites/boiler-house-1/sensors/b1_steam_pressure",
            Some(json!({"max": 10, "version": 1})),
            &[],
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let mut fresh = Value::Null;
    for _ in 0..100 {
        let (_, headers, body) = app.send(Method::GET, path, None, &[]).await;
        if headers["x-cache"] == "miss" {
            fresh = body;
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    assert_eq!(fresh["sensors"][1]["status"], "out_of_range", "{fresh}");
    let (status, _, _) = app
        .send(Method::GET, "/api/v1/sites/nowhere/dashboard", None, &[])
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn injection_attempts_in_paths_and_parameters_go_nowhere() {
    use reqwest::Method;
    let app = spawn_app().await;
    app.seed().await;
    let (status, _, _) = app
        .send(
            Method::POST,
            "/api/v1/sites/boiler-house-1/telemetry",
            Some(json!({"b1_steam_pressure": 10.5})),
            &[],
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    let history = "/api/v1/sites/boiler-house-1/sensors/b1_steam_pressure/history";
    // Path segments: not slugs, so no such site or sensor (404), whatever
    // they would do in InfluxQL, SQL or a Redis key.
    for (path, expected) in [
        (
            "/api/v1/sites/boiler-house-1'%20OR%20'1'='1/latest",
            StatusCode::NOT_FOUND,
        ),
        (
            "/api/v1/sites/x%22%3B%20DROP%20DATABASE%20stoker%3B/latest",
            StatusCode::NOT_FOUND,
        ),
        ("/api/v1/sites/*/dashboard", StatusCode::NOT_FOUND),
        (
            "/api/v1/sites/boiler-house-1:*/dashboard",
            StatusCode::NOT_FOUND,
        ),
        (
            "/api/v1/sites/boiler-house-1/sensors/b1'%20OR%201=1--/history",
            StatusCode::NOT_FOUND,
        ),
        (
            "/api/v1/sites/boiler-house-1%00/latest",
            StatusCode::NOT_FOUND,
        ),
        ("/api/v1/alert-rules/1%20OR%201=1", StatusCode::NOT_FOUND),
        (
            "/api/v1/sites/'%3B%20DELETE%20FROM%20metadata.sites%3B--",
            StatusCode::NOT_FOUND,
        ),
    ] {
        let (status, _, body) = app.send(Method::GET, path, None, &[]).await;
        assert_eq!(status, expected, "{path}: {body}");
    }
    // Query parameters: parsed into numbers, durations, enums or slugs
    // first, refused (400) when they are not.
    for query in [
        "?agg=mean(%22value%22)%3B%20DROP%20DATABASE%20x",
        "?every=1m)%20fill(0)%3B%20DROP%20DATABASE%20x",
        "?start=0%20OR%201=1",
        "?end=now()",
        "?agg=last&agg=max%22",
    ] {
        let (status, _, body) = app
            .send(Method::GET, &format!("{history}{query}"), None, &[])
            .await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{query}: {body}");
    }
    for query in [
        "?site=x'%20OR%201=1",
        "?cursor=27204f5220313d31",
        "?enabled=true%20OR%201=1",
        "?limit=1;DROP",
    ] {
        let (status, _, body) = app
            .send(
                Method::GET,
                &format!("/api/v1/alert-rules{query}"),
                None,
                &[],
            )
            .await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{query}: {body}");
    }
    let (status, _, _) = app
        .send(
            Method::GET,
            "/api/v1/sites?cursor=2720".to_owned().as_str(),
            None,
            &[],
        )
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    // A body's strings are bound parameters: a name full of SQL is stored as text.
    let (status, _, site) = app
        .send(
            Method::POST,
            "/api/v1/sites",
            Some(json!({"slug": "b-2", "name": "x'); DROP TABLE metadata.sites; --"})),
            &[],
        )
        .await;
    assert_eq!(status, StatusCode::CREATED);
    assert_eq!(site["name"], "x'); DROP TABLE metadata.sites; --");

    // Everything is still there and answers.
    let (status, _, sites) = app.send(Method::GET, "/api/v1/sites", None, &[]).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(sites["items"].as_array().unwrap().len(), 2);
    let (status, _, latest) = app
        .send(
            Method::GET,
            "/api/v1/sites/boiler-house-1/latest",
            None,
            &[],
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(latest["readings"][1]["value"], 10.5);
    let (status, _, body) = app.send(Method::GET, history, None, &[]).await;
    assert_eq!(status, StatusCode::OK, "{body}");
}
