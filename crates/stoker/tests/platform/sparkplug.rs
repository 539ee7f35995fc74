//! The Sparkplug B host inside `stoker ingest`, against a client written
//! by others: Eclipse Tahu's Node.js `sparkplug-client` (unmodified,
//! installed by `crates/sparkplug/tests/tahu/run`), driven by
//! `tahu_edge_node.js` through a broker of the test's own. Two ingest
//! processes: the leader reads the edge node; killed with SIGKILL, its
//! will says offline and the other takes over. A device's birth and death
//! and the edge node's death are recorded in metadata.

use std::path::Path;
use std::process::Stdio;
use std::time::{Duration, Instant};
use stoker_metadata::Actor;

use serde_json::{Value, json};
use stoker_domain::{
    EpochMillis, ReadingValue, SensorKey, SensorKind, SensorType, SiteSlug, States, Unit,
    ValidRange,
};
use stoker_metadata::{NewGateway, NewSensor, NewSite};
use stoker_testkit::{
    StokerProcess, TempDir, TestBroker, TestInflux, TestPostgres, TestRedis, free_port,
    unique_client_id,
};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::process::{Child, ChildStdin, Command};
use tokio::sync::mpsc;

use crate::helpers::{env_path, spawn_stoker};

const SITE: &str = "boiler-house-1";
const EDGE_NODE: &str = "Gateway 1";

/// The edge node driver: Tahu's client and a recorder of the broker.
struct EdgeNode {
    child: Child,
    stdin: ChildStdin,
    lines: mpsc::UnboundedReceiver<Value>,
    /// Every line so far, for failure messages.
    seen: Vec<Value>,
}

impl EdgeNode {
    async fn start(broker: &str, group: &str, host_id: &str) -> Self {
        let manifest = Path::new(env!("CARGO_MANIFEST_DIR"));
        let run = manifest.join("../sparkplug/tests/tahu/run");
        let script = manifest.join("tests/platform/tahu_edge_node.js");
        let mut child = Command::new(run)
            .arg("--script")
            .arg(script)
            .args([broker, group, EDGE_NODE, host_id])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .expect("run Tahu's sparkplug-client (crates/sparkplug/tests/tahu/run)");
        let stdin = child.stdin.take().unwrap();
        let stdout = child.stdout.take().unwrap();
        let (sender, lines) = mpsc::unbounded_channel();
        tokio::spawn(async move {
            let mut reader = BufReader::new(stdout).lines();
            while let Ok(Some(line)) = reader.next_line().await {
                if let Ok(value) = serde_json::from_str::<Value>(&line) {
                    let _ = sender.send(value);
                }
            }
        });
        let mut node = Self {
            child,
            stdin,
            lines,
            seen: Vec::new(),
        };
        node.expect(
            "the recorder subscribed",
            Duration::from_secs(120),
            |line| line["event"] == "recording",
        )
        .await;
        node
    }

    async fn send(&mut self, command: Value) {
        let line = format!("{command}\n");
        self.stdin.write_all(line.as_bytes()).await.unwrap();
        self.stdin.flush().await.unwrap();
    }

    /// Waits for a line matching `wanted`; returns it.
    async fn expect(
        &mut self,
        what: &str,
        limit: Duration,
        wanted: impl Fn(&Value) -> bool,
    ) -> Value {
        let deadline = tokio::time::Instant::now() + limit;
        loop {
            let line = match tokio::time::timeout_at(deadline, self.lines.recv()).await {
                Ok(Some(line)) => line,
                Ok(None) => panic!(
                    "the edge node driver exited ({:?}) before {what}; it printed:\n{:#?}",
                    self.child.try_wait(),
                    self.seen
                ),
                Err(_) => panic!(
                    "no {what} within {} s; the edge node driver printed:\n{:#?}",
                    limit.as_secs(),
                    self.seen
                ),
            };
            self.seen.push(line.clone());
            if wanted(&line) {
                return line;
            }
        }
    }

    /// Waits for this host's STATE with `online`; returns its timestamp.
    async fn expect_state(&mut self, host_id: &str, online: bool, limit: Duration) -> i64 {
        let topic = format!("spBv1.0/STATE/{host_id}");
        let line = self
            .expect(&format!("STATE online={online}"), limit, |line| {
                line["seen"] == topic.as_str()
                    && serde_json::from_str::<Value>(line["text"].as_str().unwrap_or(""))
                        .is_ok_and(|state| state["online"] == online)
            })
            .await;
        let state: Value = serde_json::from_str(line["text"].as_str().unwrap()).unwrap();
        state["timestamp"].as_i64().expect("a STATE timestamp")
    }
}

fn flue_temp(value: f64) -> Value {
    json!({"alias": 1, "type": "Double", "value": value})
}

fn birth_metrics() -> Value {
    json!([
        {"name": "Node Control/Rebirth", "type": "Boolean", "value": false},
        {"name": "Flue Temp", "alias": 1, "type": "Double", "value": 180.5},
        {"name": "Burner On", "alias": 2, "type": "Boolean", "value": true},
    ])
}

async fn seed(pool: &stoker_postgres::Pool, group: &str) {
    let site = NewSite::parse(SITE, "Boiler house 1", "UTC").unwrap();
    stoker_metadata::create_site(pool, &Actor::Cli, &site)
        .await
        .unwrap();
    for (key, kind, range) in [
        (
            "flue_temp",
            SensorKind::Numeric,
            ValidRange::new(Some(0.0), Some(1000.0)).unwrap(),
        ),
        ("burner_on", SensorKind::Boolean, ValidRange::default()),
    ] {
        let sensor = NewSensor {
            key: SensorKey::parse(key).unwrap(),
            sensor_type: SensorType::parse("status").unwrap(),
            unit: Unit::parse("-").unwrap(),
            kind,
            states: States::default(),
            range,
        };
        stoker_metadata::create_sensor(pool, &Actor::Cli, site.slug(), &sensor)
            .await
            .unwrap();
    }
    let gateway = NewGateway::parse(group, EDGE_NODE).unwrap();
    stoker_metadata::create_gateway(pool, &Actor::Cli, site.slug(), &gateway)
        .await
        .unwrap();
}

async fn gateway_online(pool: &stoker_postgres::Pool, group: &str) -> Option<bool> {
    let client = pool.get().await.unwrap();
    client
        .query_opt(
            "SELECT online FROM metadata.gateways WHERE group_id = $1 AND edge_node = $2",
            &[&group, &EDGE_NODE],
        )
        .await
        .unwrap()
        .map(|row| row.get(0))
}

/// A device's (online, died at least once) in metadata, if recorded.
async fn device_state(
    pool: &stoker_postgres::Pool,
    group: &str,
    device: &str,
) -> Option<(bool, bool)> {
    let client = pool.get().await.unwrap();
    client
        .query_opt(
            "SELECT d.online, d.last_death_at IS NOT NULL
             FROM metadata.gateway_devices d JOIN metadata.gateways g ON g.id = d.gateway_id
             WHERE g.group_id = $1 AND g.edge_node = $2 AND d.device = $3",
            &[&group, &EDGE_NODE, &device],
        )
        .await
        .unwrap()
        .map(|row| (row.get(0), row.get(1)))
}

/// Waits for `check`; failing, says what the ingest process `watched`
/// counted.
async fn wait_for<F, Fut>(watched: &StokerProcess, what: &str, limit: Duration, mut check: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let started = Instant::now();
    while !check().await {
        if started.elapsed() > limit {
            let metrics = watched.metrics().await.unwrap_or_default();
            let counts: Vec<&str> = metrics
                .lines()
                .filter(|line| line.starts_with("stoker_") && !line.ends_with(" 0"))
                .collect();
            panic!(
                "no {what} within {limit:?}; its metrics:\n{}",
                counts.join("\n")
            );
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// The value of a metric line (`name{labels} value`) in an OpenMetrics text.
fn metric(text: &str, line_start: &str) -> f64 {
    text.lines()
        .find_map(|line| line.strip_prefix(line_start)?.trim().parse().ok())
        .unwrap_or(0.0)
}

fn spawn_ingest(
    postgres: &TestPostgres,
    influx: &TestInflux,
    redis: &TestRedis,
    broker: &TestBroker,
    group: &str,
    host_id: &str,
    spool: &TempDir,
) -> (StokerProcess, String) {
    let metrics = format!("127.0.0.1:{}", free_port());
    let process = spawn_stoker(
        "ingest",
        &[
            ("DATABASE_URL", postgres.url()),
            ("INFLUX_BUCKET", influx.influx().database().to_owned()),
            ("REDIS_KEY_PREFIX", redis.prefix().to_owned()),
            ("MQTT_URL", broker.url()),
            ("MQTT_CLIENT_ID", unique_client_id("sparkplug-test")),
            ("SPARKPLUG_GROUPS", group.to_owned()),
            ("SPARKPLUG_HOST_ID", host_id.to_owned()),
            ("INGEST_SPOOL_DIR", env_path(spool.path())),
            ("METRICS_ADDR", metrics.clone()),
            ("INGEST_BATCH_LINGER", "20ms".to_owned()),
            ("RUST_LOG", "info,stoker_ingestion=debug".to_owned()),
        ],
    )
    .with_metrics_port(metrics.rsplit(':').next().unwrap().parse().unwrap());
    (process, metrics)
}

async fn leads(process: &StokerProcess) -> bool {
    process
        .metrics()
        .await
        .is_some_and(|text| metric(&text, "stoker_sparkplug_leader ") == 1.0)
}

#[tokio::test]
async fn a_tahu_edge_node_is_read_through_births_a_rebirth_a_leader_killed_and_its_death() {
    let broker = TestBroker::start().await;
    let postgres = TestPostgres::create().await;
    let pool = postgres.migrated_pool().await;
    let group = unique_client_id("plant");
    let host_id = unique_client_id("stoker");
    seed(&pool, &group).await;
    let influx = TestInflux::create().await;
    let redis = TestRedis::new();
    let cache = redis.cache();
    let site = SiteSlug::parse(SITE).unwrap();
    let flue = SensorKey::parse("flue_temp").unwrap();
    let (spool_a, spool_b) = (TempDir::new("sparkplug-a"), TempDir::new("sparkplug-b"));

    let (mut leader, _) = spawn_ingest(
        &postgres, &influx, &redis, &broker, &group, &host_id, &spool_a,
    );
    let mut ready = false;
    for _ in 0..300 {
        leader.check_alive().unwrap();
        if leads(&leader).await {
            ready = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(
        ready,
        "the first ingest process did not lead the Sparkplug host within 30 s:\n{}",
        leader.log_tail(30)
    );
    let (mut follower, _) = spawn_ingest(
        &postgres, &influx, &redis, &broker, &group, &host_id, &spool_b,
    );

    // The leader's STATE is retained: a client subscribing now gets it.
    let mut node = EdgeNode::start(&broker.url(), &group, &host_id).await;
    let first_state = node
        .expect_state(&host_id, true, Duration::from_secs(10))
        .await;
    assert!(
        node.seen.last().unwrap()["retain"] == true,
        "the STATE birth is retained: {:?}",
        node.seen.last()
    );

    // Births and data: stored in InfluxDB and as the latest value.
    node.send(json!({"op": "connect"})).await;
    node.expect("the edge node connected", Duration::from_secs(10), |line| {
        line["event"] == "connected"
    })
    .await;
    node.send(json!({"op": "birth", "metrics": birth_metrics()}))
        .await;
    // Readings take their payload's time in milliseconds; a reading of the
    // same sensor and millisecond would replace the birth's (idempotent points).
    tokio::time::sleep(Duration::from_millis(20)).await;
    node.send(json!({"op": "data", "metrics": [flue_temp(181.0)]}))
        .await;
    wait_for(
        &leader,
        "the birth and data readings in InfluxDB",
        Duration::from_secs(15),
        || async { influx.influx().count_readings(&site).await.unwrap_or(0) >= 3 },
    )
    .await;
    wait_for(
        &leader,
        "181.0 as the latest flue temperature",
        Duration::from_secs(10),
        || async {
            cache
                .latest(&site, std::slice::from_ref(&flue))
                .await
                .ok()
                .and_then(|values| values.into_iter().next().flatten())
                .is_some_and(|latest| latest.value == ReadingValue::Number(181.0))
        },
    )
    .await;
    wait_for(
        &leader,
        "the gateway online in metadata",
        Duration::from_secs(10),
        || async { gateway_online(&pool, &group).await == Some(true) },
    )
    .await;

    // A seq gap: the host asks for a rebirth, the client answers with one.
    node.send(json!({"op": "skip_seq"})).await;
    node.send(json!({"op": "data", "metrics": [flue_temp(999.0)]}))
        .await;
    let ncmd_topic = format!("spBv1.0/{group}/NCMD/{EDGE_NODE}");
    // The recorder's copy of the NCMD and the client's answer, in either order.
    let (mut ncmd_seen, mut reborn) = (false, false);
    while !(ncmd_seen && reborn) {
        let line = node
            .expect(
                "the rebirth request (NCMD) and the rebirth",
                Duration::from_secs(10),
                |line| line["seen"] == ncmd_topic.as_str() || line["event"] == "rebirth",
            )
            .await;
        ncmd_seen |= line["seen"] == ncmd_topic.as_str();
        reborn |= line["event"] == "rebirth";
    }
    tokio::time::sleep(Duration::from_millis(20)).await;
    node.send(json!({"op": "data", "metrics": [flue_temp(182.0)]}))
        .await;
    let mut last = None;
    for _ in 0..100 {
        last = cache
            .latest(&site, std::slice::from_ref(&flue))
            .await
            .ok()
            .and_then(|values| values.into_iter().next().flatten());
        if last
            .as_ref()
            .is_some_and(|latest| latest.value == ReadingValue::Number(182.0))
        {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(
        last.as_ref()
            .is_some_and(|latest| latest.value == ReadingValue::Number(182.0)),
        "182.0 is not the latest flue temperature within 10 s: {last:?}; the leader's metrics:\n{}",
        leader.metrics().await.unwrap_or_default()
    );
    let text = leader.metrics().await.unwrap_or_default();
    assert!(
        metric(&text, "stoker_sparkplug_rebirth_requests_total ") >= 1.0,
        "{text}"
    );
    assert!(
        metric(
            &text,
            "stoker_sparkplug_refusals_total{reason=\"sequence_gap\"} "
        ) >= 1.0,
        "{text}"
    );
    assert!(!leads(&follower).await, "only one process leads");

    // SIGKILL of the leader: its will says offline; the follower takes
    // over with a newer STATE birth.
    let killed_at = EpochMillis::now().as_millis();
    leader.kill();
    node.expect_state(&host_id, false, Duration::from_secs(10))
        .await;
    let second_state = node
        .expect_state(&host_id, true, Duration::from_secs(20))
        .await;
    assert!(
        second_state > first_state,
        "{second_state} after {first_state}"
    );
    assert!(leads(&follower).await);

    // The edge node stored what it measured meanwhile and forwards it after
    // its new birth: historical metrics older than the latest value.
    let latest_before = cache
        .latest(&site, std::slice::from_ref(&flue))
        .await
        .unwrap()
        .remove(0)
        .expect("a latest value");
    let stored_before = influx.influx().count_readings(&site).await.unwrap();
    node.send(json!({"op": "birth", "metrics": birth_metrics()}))
        .await;
    let rebirth_readings = 2;
    let historical: Vec<Value> = (0..3)
        .map(|index| {
            json!({"alias": 1, "type": "Double", "value": 150.0 + f64::from(index),
                   "timestamp": killed_at - 2_000 + i64::from(index) * 500, "isHistorical": true})
        })
        .collect();
    node.send(json!({"op": "data", "metrics": historical}))
        .await;
    wait_for(
        &follower,
        "the forwarded historical readings in InfluxDB",
        Duration::from_secs(15),
        || async {
            influx.influx().count_readings(&site).await.unwrap_or(0)
                >= stored_before + rebirth_readings + 3
        },
    )
    .await;
    // Exactly those: none lost, none stored twice.
    assert_eq!(
        influx.influx().count_readings(&site).await.unwrap(),
        stored_before + rebirth_readings + 3
    );
    let latest_after = cache
        .latest(&site, std::slice::from_ref(&flue))
        .await
        .unwrap()
        .remove(0)
        .expect("a latest value");
    assert!(
        latest_after.ts >= latest_before.ts,
        "latest moved back: {latest_after:?} after {latest_before:?}"
    );
    assert_eq!(
        latest_after.value,
        ReadingValue::Number(180.5),
        "the new birth's value stays the latest"
    );

    // A device: its DBIRTH brings it online in metadata; its DDEATH
    // (Tahu's publishDeviceDeath) takes it, and only it, offline.
    let device_birth = json!({"op": "device_birth", "device": "Boiler 1", "metrics": [
        {"name": "Flame", "alias": 10, "type": "Boolean", "value": true},
    ]});
    node.send(device_birth.clone()).await;
    wait_for(
        &follower,
        "Boiler 1 online in metadata",
        Duration::from_secs(10),
        || async { device_state(&pool, &group, "Boiler 1").await == Some((true, false)) },
    )
    .await;
    node.send(json!({"op": "device_death", "device": "Boiler 1"}))
        .await;
    wait_for(
        &follower,
        "Boiler 1's death in metadata",
        Duration::from_secs(10),
        || async { device_state(&pool, &group, "Boiler 1").await == Some((false, true)) },
    )
    .await;
    assert_eq!(
        gateway_online(&pool, &group).await,
        Some(true),
        "a device's death is not its gateway's"
    );
    node.send(device_birth).await;
    wait_for(
        &follower,
        "Boiler 1 born again in metadata",
        Duration::from_secs(10),
        || async { device_state(&pool, &group, "Boiler 1").await == Some((true, true)) },
    )
    .await;

    // NDEATH: the gateway and its device go offline in metadata.
    node.send(json!({"op": "stop"})).await;
    wait_for(
        &follower,
        "the gateway offline in metadata",
        Duration::from_secs(10),
        || async { gateway_online(&pool, &group).await == Some(false) },
    )
    .await;
    assert_eq!(
        device_state(&pool, &group, "Boiler 1").await,
        Some((false, true))
    );

    // A clean stop publishes STATE offline before disconnecting.
    let stopped = follower.interrupt();
    assert!(stopped.success(), "{stopped}:\n{}", follower.log_tail(20));
    node.expect_state(&host_id, false, Duration::from_secs(10))
        .await;
}
