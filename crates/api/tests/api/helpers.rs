//! The app under test (the whole API on a port of its own, over real
//! Postgres, InfluxDB and Redis, with ingestion and no MQTT), the requests
//! tests send to it, named after their routes, and the sequences tests
//! repeat (the usual site and sensors, a rule created, an alert opened).

use reqwest::header::HeaderMap;
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use stoker_analytics::store::{self, NoOutbox, Verdict};
use stoker_api::ApiState;
use stoker_domain::{EpochMillis, SensorKey, SiteSlug};
use stoker_metadata::Actor;
use stoker_metadata::Scope;
use stoker_rules::AlertRule;
use stoker_testkit::{TestInflux, TestPostgres, TestRedis};
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

pub(crate) struct TestApp {
    pub(crate) base: String,
    /// Sends the admin key below with every request.
    pub(crate) http: reqwest::Client,
    pub(crate) pool: stoker_postgres::Pool,
    pub(crate) influx: TestInflux,
    pub(crate) redis: TestRedis,
    pub(crate) postgres: TestPostgres,
    pub(crate) spool: std::path::PathBuf,
    pub(crate) shutdown: CancellationToken,
}

impl Drop for TestApp {
    fn drop(&mut self) {
        self.shutdown.cancel();
        let _ = std::fs::remove_dir_all(&self.spool);
    }
}

pub(crate) async fn spawn_app() -> TestApp {
    spawn_app_with(AppOptions::default()).await
}

/// How a test's app differs from the usual one.
#[derive(Default)]
pub(crate) struct AppOptions {
    /// Where alert transitions made through the API are announced.
    pub(crate) notify: stoker_analytics::notify::NotifyOptions,
    /// Redis settings to use instead of the test's key prefix (e.g. a Redis
    /// that is down).
    pub(crate) redis: Option<stoker_cache::RedisOptions>,
    /// Client timeouts, connection cap and key budget instead of the
    /// defaults.
    pub(crate) http: Option<stoker_api::HttpOptions>,
}

pub(crate) async fn spawn_app_with(options: AppOptions) -> TestApp {
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
    let stores = stoker_stores::Stores {
        pool: pool.clone(),
        postgres: postgres.options(),
        influx: influx.influx().clone(),
        cache: cache.clone(),
    };
    let ingestion =
        stoker_ingestion::Ingestion::start_without_mqtt(&options, stores, shutdown.clone())
            .await
            .unwrap();
    let (_, admin) = stoker_metadata::create_api_key(&pool, &Actor::Cli, "tests", &[Scope::Admin])
        .await
        .unwrap();
    let admin_pool = pool.clone();
    let readiness = stoker_api::Readiness::default()
        .with_stores(pool.clone(), influx.influx().clone(), cache.clone())
        .with("always", || true);
    let catalog = stoker_api::Catalog::follow(postgres.options(), cache.clone(), shutdown.clone());
    let http_options = http_options.unwrap_or_default();
    let limiter = stoker_api::KeyLimiter::new(http_options.key_budget());
    let state = ApiState {
        pool,
        influx: influx.influx().clone(),
        cache,
        intake: Some(ingestion.intake()),
        metrics: {
            let mut registry = prometheus_client::registry::Registry::default();
            ingestion.register_metrics(&mut registry);
            limiter.register_metrics(&mut registry);
            std::sync::Arc::new(registry)
        },
        readiness,
        catalog,
        notify,
        rollup: stoker_api::RollupClock::default(),
        limiter,
    };
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
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
    pub(crate) async fn get(&self, path: &str) -> (StatusCode, Value) {
        let response = self
            .http
            .get(format!("{}{path}", self.base))
            .send()
            .await
            .unwrap();
        let status = response.status();
        (status, response.json().await.unwrap_or(Value::Null))
    }

    pub(crate) async fn post(&self, path: &str, body: Value) -> (StatusCode, Value) {
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

    pub(crate) async fn seed(&self) {
        let (status, _) = self
            .post_site(json!({"slug": "boiler-house-1", "name": "Boiler house 1", "timezone": "Europe/Berlin"}))
            .await;
        assert_eq!(status, StatusCode::CREATED);
        for (key, kind, unit) in [
            ("b1_steam_pressure", "pressure", "bar"),
            ("b1_flue_temp", "temperature", "°C"),
        ] {
            let (status, body) = self
                .post_sensor(
                    "boiler-house-1",
                    json!({"key": key, "type": kind, "unit": unit, "min": 0, "max": 600}),
                )
                .await;
            assert_eq!(status, StatusCode::CREATED, "{body}");
        }
    }
}

impl TestApp {
    /// Sends `method path` with an optional JSON body and headers.
    pub(crate) async fn send(
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

/// DESIGN.md's threshold rule.
pub(crate) fn threshold_rule() -> Value {
    json!({"name": "Steam pressure high", "kind": "threshold", "site": "boiler-house-1",
           "sensor_type": "pressure", "agg": "mean", "op": ">", "threshold": 12.5,
           "clear_threshold": 12.0, "window": "60s", "for": "30s", "severity": "warning",
           "enabled": true})
}

pub(crate) fn silent_flue_rule() -> Value {
    json!({"name": "Flue gas silent", "kind": "no_data", "sensor_type": "temperature",
           "timeout": "5m", "severity": "critical"})
}

/// An answer with its headers: status, headers, body as JSON (null if none).
pub(crate) type Reply = (StatusCode, HeaderMap, Value);

/// The usual app with the usual site and its two sensors (see [`TestApp::seed`]).
pub(crate) async fn spawn_seeded_app() -> TestApp {
    let app = spawn_app().await;
    app.seed().await;
    app
}

/// Named requests (with the admin key), each the [`TestApp::send`] of one
/// route, and the sequences tests repeat.
impl TestApp {
    /// `GET path`, headers kept.
    pub(crate) async fn get_with_headers(&self, path: &str) -> Reply {
        self.send(Method::GET, path, None, &[]).await
    }

    /// `PATCH path` with a JSON body.
    pub(crate) async fn patch(&self, path: &str, body: Value) -> Reply {
        self.send(Method::PATCH, path, Some(body), &[]).await
    }

    /// `PATCH path` with a JSON body and `If-Match: version`.
    pub(crate) async fn patch_if_match(&self, path: &str, body: Value, version: &str) -> Reply {
        self.send(Method::PATCH, path, Some(body), &[("if-match", version)])
            .await
    }

    /// `DELETE path`.
    pub(crate) async fn delete(&self, path: &str) -> Reply {
        self.send(Method::DELETE, path, None, &[]).await
    }

    /// `DELETE path` with `If-Match: version`.
    pub(crate) async fn delete_if_match(&self, path: &str, version: &str) -> Reply {
        self.send(Method::DELETE, path, None, &[("if-match", version)])
            .await
    }

    /// `POST /api/v1/sites`.
    pub(crate) async fn post_site(&self, body: Value) -> (StatusCode, Value) {
        self.post("/api/v1/sites", body).await
    }

    /// `POST /api/v1/sites/{site}/sensors`.
    pub(crate) async fn post_sensor(&self, site: &str, body: Value) -> (StatusCode, Value) {
        self.post(&format!("/api/v1/sites/{site}/sensors"), body)
            .await
    }

    /// `POST /api/v1/sites/{site}/gateways`.
    pub(crate) async fn post_gateway(&self, site: &str, body: Value) -> (StatusCode, Value) {
        self.post(&format!("/api/v1/sites/{site}/gateways"), body)
            .await
    }

    /// `POST /api/v1/sites/{site}/telemetry`.
    pub(crate) async fn post_telemetry(&self, site: &str, body: Value) -> (StatusCode, Value) {
        self.post(&format!("/api/v1/sites/{site}/telemetry"), body)
            .await
    }

    /// `GET /api/v1/sites/{site}/latest`.
    pub(crate) async fn get_latest(&self, site: &str) -> (StatusCode, Value) {
        self.get(&format!("/api/v1/sites/{site}/latest")).await
    }

    /// `GET /api/v1/sites/{site}/dashboard`, headers kept (`x-cache`).
    pub(crate) async fn get_dashboard(&self, site: &str) -> Reply {
        self.get_with_headers(&format!("/api/v1/sites/{site}/dashboard"))
            .await
    }

    /// `POST /api/v1/alert-rules`.
    pub(crate) async fn post_rule(&self, body: Value) -> Reply {
        self.send(Method::POST, "/api/v1/alert-rules", Some(body), &[])
            .await
    }

    /// `POST /api/v1/alert-rules/preview`.
    pub(crate) async fn post_preview(&self, body: Value) -> Reply {
        self.send(Method::POST, "/api/v1/alert-rules/preview", Some(body), &[])
            .await
    }

    /// `POST /api/v1/alerts/{id}/{action}`: acknowledges (`ack`) or
    /// resolves (`resolve`) an alert with the admin key (named `tests`).
    pub(crate) async fn change_alert(&self, id: &str, action: &str) -> (StatusCode, Value) {
        let path = format!("/api/v1/alerts/{id}/{action}");
        let (status, _, alert) = self.send(Method::POST, &path, None, &[]).await;
        (status, alert)
    }

    /// Creates a rule through the API; returns it as stored.
    pub(crate) async fn create_rule(&self, body: Value) -> AlertRule {
        let (status, _, rule) = self.post_rule(body).await;
        assert_eq!(status, StatusCode::CREATED, "{rule}");
        let id = Uuid::parse_str(rule["id"].as_str().unwrap()).unwrap();
        stoker_metadata::get_alert_rule(&self.pool, id)
            .await
            .unwrap()
    }

    /// Opens an alert as the evaluation loop does, at `at` (epoch ms); its
    /// own notification is not queued, so that those a test counts are the
    /// API's.
    pub(crate) async fn open_alert(
        &self,
        rule: &AlertRule,
        site: &str,
        sensor: &str,
        at: i64,
    ) -> String {
        let site = SiteSlug::parse(site).unwrap();
        let sensor = SensorKey::parse(sensor).unwrap();
        let verdict = Verdict {
            rule,
            site: &site,
            sensor: &sensor,
            at: EpochMillis::from_millis(at).unwrap(),
            value: Some(stoker_domain::ReadingValue::Number(13.2)),
            message: "mean over 1m = 13.2 bar, > 12.5 for 30s".into(),
            explanation: None,
        };
        let alert = store::open_alert(&self.pool, &NoOutbox, &verdict)
            .await
            .unwrap()
            .expect("no alert of this rule and sensor is open");
        alert.id.to_string()
    }

    /// Opens an alert of `rule` on boiler-house-1's steam pressure, a minute ago.
    pub(crate) async fn open_pressure_alert(&self, rule: &AlertRule) -> String {
        let at = EpochMillis::now().as_millis() - 60_000;
        self.open_alert(rule, "boiler-house-1", "b1_steam_pressure", at)
            .await
    }

    /// A second site with one temperature sensor.
    pub(crate) async fn seed_second_site(&self) {
        let (status, body) = self
            .post_site(json!({"slug": "b-2", "name": "Boiler house 2"}))
            .await;
        assert_eq!(status, StatusCode::CREATED, "{body}");
        let (status, body) = self
            .post_sensor(
                "b-2",
                json!({"key": "b2_flue_temp", "type": "temperature", "unit": "°C"}),
            )
            .await;
        assert_eq!(status, StatusCode::CREATED, "{body}");
    }
}

/// The string fields `names` of each object of an array.
pub(crate) fn strings<'a, const N: usize>(items: &'a Value, names: [&str; N]) -> Vec<[&'a str; N]> {
    items
        .as_array()
        .unwrap()
        .iter()
        .map(|item| names.map(|name| item[name].as_str().unwrap()))
        .collect()
}
