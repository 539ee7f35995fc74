//! Scaling out: ingestion processes share the MQTT load.

use std::time::Duration;

use stoker_domain::{EpochMillis, SiteSlug};
use stoker_testkit::{TestBroker, TestInflux, TestPostgres, TestRedis, unique_client_id};

use crate::faults::seed;
use crate::helpers::{env_path, spawn_stoker};
use stoker_testkit::{TempDir, free_port};

/// The value of an unlabelled metric in an OpenMetrics text.
fn metric(text: &str, name: &str) -> u64 {
    text.lines()
        .find_map(|line| line.strip_prefix(name)?.strip_prefix(' ')?.parse().ok())
        .unwrap_or(0)
}

#[tokio::test]
async fn two_ingest_processes_share_a_subscription_and_store_every_reading_once() {
    let broker = TestBroker::start().await;
    let postgres = TestPostgres::create().await;
    let pool = postgres.migrated_pool().await;
    seed(&pool, "boiler-house-1", 20).await;
    let influx = TestInflux::create().await;
    let redis = TestRedis::new();
    let http = reqwest::Client::new();

    let mut processes = Vec::new();
    for _ in 0..2 {
        let spool = TempDir::new("stoker-test-spool");
        let client_id = unique_client_id("scale-test");
        let metrics = format!("127.0.0.1:{}", free_port());
        let process = spawn_stoker(
            "ingest",
            &[
                ("DATABASE_URL", postgres.url()),
                ("INFLUX_BUCKET", influx.influx().database().to_owned()),
                ("REDIS_KEY_PREFIX", redis.prefix().to_owned()),
                ("MQTT_URL", broker.url()),
                ("MQTT_CLIENT_ID", client_id.clone()),
                ("MQTT_SHARED_GROUP", "stoker".to_owned()),
                ("INGEST_SPOOL_DIR", env_path(spool.path())),
                ("METRICS_ADDR", metrics.clone()),
                ("INGEST_BATCH_LINGER", "20ms".to_owned()),
            ],
        );
        processes.push((process, spool, client_id, format!("http://{metrics}")));
    }
    for (_, _, _, base) in &processes {
        let mut ready = false;
        for _ in 0..300 {
            if let Ok(response) = http.get(format!("{base}/readyz")).send().await
                && response.status().is_success()
            {
                ready = true;
                break;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        assert!(ready, "an ingest process did not subscribe within 15 s");
    }

    let start = EpochMillis::now().as_millis() - 3_600_000;
    let messages: Vec<(String, Vec<u8>)> = (0..1000)
        .map(|index| {
            let values: Vec<String> = (0..20)
                .map(|sensor| format!("\"t{sensor:02}\": {sensor}.25"))
                .collect();
            let payload = format!(
                r#"{{"ts": {}, "values": {{{}}}}}"#,
                start + index * 100,
                values.join(", ")
            );
            (
                "sites/boiler-house-1/telemetry".to_owned(),
                payload.into_bytes(),
            )
        })
        .collect();
    broker.publish_qos1(&messages).await;

    let site = SiteSlug::parse("boiler-house-1").unwrap();
    let mut stored = 0;
    for _ in 0..300 {
        stored = influx.influx().count_readings(&site).await.unwrap_or(0);
        if stored >= 20_000 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(stored, 20_000);

    // Both took a share, and together exactly the whole.
    let mut shares = Vec::new();
    for (_, _, _, base) in &processes {
        let text = http
            .get(format!("{base}/metrics"))
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        shares.push(metric(&text, "stoker_ingest_messages_total"));
    }
    assert!(shares.iter().all(|share| *share > 0), "shares {shares:?}");
    assert_eq!(shares.iter().sum::<u64>(), 1000, "shares {shares:?}");

    for (mut process, _spool, client_id, _) in processes {
        assert!(process.interrupt().success());
        stoker_testkit::clear_mqtt_session_to(broker.port(), &client_id).await;
    }
}
