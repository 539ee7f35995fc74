//! `stoker serve` while Postgres or Redis goes away and comes back, each
//! on a server of the test's own: ingestion goes on, the API answers
//! what it can (a clear 503 otherwise), and both recover by themselves.
//! Each test prints one `reliability:` line with its counts.

use std::time::Duration;

use serde_json::Value;
use stoker_domain::{EpochMillis, SiteSlug};
use stoker_testkit::{
    TestInflux, TestPostgresServer, TestRedis, TestRedisServer, unique_client_id,
    unique_topic_prefix,
};

use crate::faults::seed;
use crate::helpers::{create_api_key, env_path, spawn_stoker};
use stoker_testkit::{StokerProcess, TempDir, free_port};

const SENSORS: usize = 5;

/// A running `stoker serve` and how to reach it.
struct Serve {
    process: StokerProcess,
    base: String,
    http: reqwest::Client,
    topics: String,
    client_id: String,
    _spool: TempDir,
}

impl Serve {
    async fn start(database_url: &str, influx: &TestInflux, redis: &[(&str, String)]) -> Self {
        let port = free_port();
        let topics = unique_topic_prefix();
        let client_id = unique_client_id("dependency-test");
        let spool = TempDir::new("stoker-test-spool");
        let mut environment = vec![
            ("DATABASE_URL", database_url.to_owned()),
            ("INFLUX_BUCKET", influx.influx().database().to_owned()),
            ("MQTT_TOPIC_PREFIX", topics.clone()),
            ("MQTT_CLIENT_ID", client_id.clone()),
            ("INGEST_SPOOL_DIR", env_path(spool.path())),
            ("HTTP_ADDR", format!("127.0.0.1:{port}")),
            ("INGEST_BATCH_LINGER", "20ms".to_owned()),
        ];
        environment.extend(redis.iter().cloned());
        let process = spawn_stoker("serve", &environment);
        let token = create_api_key(database_url, "dependency-test", "admin");
        let http = reqwest::Client::builder()
            .default_headers(
                [(
                    reqwest::header::AUTHORIZATION,
                    format!("Bearer {token}").parse().unwrap(),
                )]
                .into_iter()
                .collect(),
            )
            .timeout(Duration::from_secs(15))
            .build()
            .unwrap();
        let serve = Self {
            process,
            base: format!("http://127.0.0.1:{port}"),
            http,
            topics,
            client_id,
            _spool: spool,
        };
        serve
            .wait_for("/readyz", 200, Duration::from_secs(20))
            .await;
        serve
    }

    async fn get(&self, path: &str) -> (u16, Value) {
        match self.http.get(format!("{}{path}", self.base)).send().await {
            Ok(response) => {
                let status = response.status().as_u16();
                (status, response.json().await.unwrap_or(Value::Null))
            }
            Err(error) => (0, Value::String(error.to_string())),
        }
    }

    /// Waits until `path` answers `status`; returns the last answer.
    async fn wait_for(&self, path: &str, status: u16, limit: Duration) -> (u16, Value) {
        let deadline = tokio::time::Instant::now() + limit;
        loop {
            let answer = self.get(path).await;
            if answer.0 == status || tokio::time::Instant::now() >= deadline {
                return answer;
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }

    /// `count` telemetry messages of every sensor, 1 s apart from `start`.
    async fn publish(&self, start: i64, count: usize) {
        let messages: Vec<(String, Vec<u8>)> = (0..count)
            .map(|index| {
                let values: Vec<String> = (0..SENSORS)
                    .map(|sensor| format!("\"t{sensor:02}\": {}.5", 100 + sensor))
                    .collect();
                (
                    format!("{}sites/boiler-house-1/telemetry", self.topics),
                    format!(
                        r#"{{"ts": {}, "values": {{{}}}}}"#,
                        start + index as i64 * 1_000,
                        values.join(", ")
                    )
                    .into_bytes(),
                )
            })
            .collect();
        stoker_testkit::publish_qos1(&messages).await;
    }

    async fn stop(mut self) {
        assert!(self.process.interrupt().success());
        stoker_testkit::clear_mqtt_session(&self.client_id).await;
    }
}

async fn stored(influx: &TestInflux, expected: u64, limit: Duration) -> u64 {
    let site = SiteSlug::parse("boiler-house-1").unwrap();
    let deadline = tokio::time::Instant::now() + limit;
    loop {
        let count = influx.influx().count_readings(&site).await.unwrap_or(0);
        if count >= expected || tokio::time::Instant::now() >= deadline {
            return count;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test]
async fn postgres_restarted_ingestion_goes_on_metadata_answers_503_then_recovers() {
    let mut postgres = TestPostgresServer::start().await;
    let options = stoker_postgres::PostgresOptions::from_url(postgres.url());
    let pool = stoker_postgres::connect(&options).unwrap();
    stoker_metadata::migrate(&pool).await.unwrap();
    seed(&pool, "boiler-house-1", SENSORS).await;
    drop(pool);
    let influx = TestInflux::create().await;
    let redis = TestRedis::new();
    let serve = Serve::start(
        &postgres.url(),
        &influx,
        &[("REDIS_KEY_PREFIX", redis.prefix().to_owned())],
    )
    .await;
    let start = EpochMillis::now().as_millis() - 600_000;
    serve.publish(start, 20).await;
    assert_eq!(stored(&influx, 100, Duration::from_secs(15)).await, 100);
    assert_eq!(serve.get("/api/v1/sites").await.0, 200);
    // The API learns the site's sensors at the first read of the site.
    assert_eq!(
        serve.get("/api/v1/sites/boiler-house-1/latest").await.0,
        200
    );

    postgres.stop();
    // Ingestion goes on with the registry it has.
    serve.publish(start + 20_000, 40).await;
    let during = stored(&influx, 300, Duration::from_secs(15)).await;
    // Metadata routes say which dependency is missing.
    let (status, problem) = serve
        .wait_for("/api/v1/sites", 503, Duration::from_secs(20))
        .await;
    assert_eq!(status, 503, "{problem}");
    assert_eq!(problem["code"], "dependency_unavailable", "{problem}");
    assert!(
        problem["detail"]
            .as_str()
            .unwrap_or_default()
            .contains("Postgres"),
        "{problem}"
    );
    // Latest values come from Redis: the site's sensors are known to the
    // API from before the outage.
    let (status, latest) = serve.get("/api/v1/sites/boiler-house-1/latest").await;
    assert_eq!(status, 200, "{latest}");

    postgres.start_again().await;
    let (status, body) = serve
        .wait_for("/api/v1/sites", 200, Duration::from_secs(30))
        .await;
    assert_eq!(status, 200, "metadata did not recover: {body}");
    serve.publish(start + 60_000, 20).await;
    let total = 80 * SENSORS as u64;
    let after = stored(&influx, total, Duration::from_secs(15)).await;
    println!(
        "reliability: Postgres stopped and restarted under stoker serve: sent {total}, stored {after} ({during} of 300 during the outage), lost {}, duplicated {}; /sites answered 503 dependency_unavailable, then 200",
        total.saturating_sub(after),
        after.saturating_sub(total)
    );
    assert_eq!(during, 300, "ingestion stalled while Postgres was down");
    assert_eq!(after, total);
    serve.stop().await;
}

#[tokio::test]
async fn redis_killed_and_restarted_ingestion_and_api_go_on_then_recover() {
    let postgres = stoker_testkit::TestPostgres::create().await;
    let pool = postgres.migrated_pool().await;
    seed(&pool, "boiler-house-1", SENSORS).await;
    let influx = TestInflux::create().await;
    let mut redis = TestRedisServer::start().await;
    let serve = Serve::start(&postgres.url(), &influx, &[("REDIS_URL", redis.url())]).await;
    let start = EpochMillis::now().as_millis() - 600_000;
    serve.publish(start, 20).await;
    assert_eq!(stored(&influx, 100, Duration::from_secs(15)).await, 100);

    redis.kill();
    serve.publish(start + 20_000, 20).await;
    let during = stored(&influx, 200, Duration::from_secs(15)).await;
    // Latest values fall back to InfluxDB: the newest reading, 39 s in.
    let (status, latest) = serve.get("/api/v1/sites/boiler-house-1/latest").await;
    assert_eq!(status, 200, "{latest}");
    let newest = EpochMillis::from_millis(start + 39_000)
        .unwrap()
        .to_string();
    assert!(
        latest["readings"]
            .as_array()
            .unwrap()
            .iter()
            .all(|reading| reading["ts"] == newest.as_str()),
        "{latest}"
    );
    let (status, _) = serve.get("/readyz").await;
    assert_eq!(status, 200, "Redis down is degraded, not unready");

    redis.start_again().await;
    serve.publish(start + 40_000, 20).await;
    let total = 60 * SENSORS as u64;
    let after = stored(&influx, total, Duration::from_secs(15)).await;
    // The cache is written again.
    let mut connection = redis::Client::open(redis.url())
        .unwrap()
        .get_multiplexed_async_connection()
        .await
        .unwrap();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(15);
    let cached = loop {
        let value: Option<String> = redis::cmd("GET")
            .arg("latest:boiler-house-1:t00")
            .query_async(&mut connection)
            .await
            .unwrap();
        if value.is_some() || tokio::time::Instant::now() >= deadline {
            break value;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    println!(
        "reliability: Redis killed and restarted under stoker serve: sent {total}, stored {after} ({during} of 200 during the outage), lost {}, duplicated {}; /latest answered from InfluxDB, then Redis refilled",
        total.saturating_sub(after),
        after.saturating_sub(total)
    );
    assert_eq!(during, 200, "ingestion stalled while Redis was down");
    assert_eq!(after, total);
    assert!(
        cached.is_some(),
        "Redis was not written again after it came back"
    );
    serve.stop().await;
}
