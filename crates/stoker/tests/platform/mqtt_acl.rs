//! The production broker setup: `docker/mosquitto/mosquitto.secure.conf`
//! and `docker/mosquitto/acl`, with users made by `stoker mqtt credentials`.
//! A gateway publishes only under its own site, a Sparkplug edge node only
//! its own messages; Stoker's service user reads every site and the
//! Sparkplug namespace and publishes STATE and commands; nobody gets in
//! without a valid password.
//!
//! Mosquitto 2.0 drops a refused publish without a word (a QoS 1 one is
//! still acknowledged) and grants any subscription, checking each message
//! against "read" before delivering it: so these tests look at what is
//! delivered, never at acknowledgements.

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use rumqttc::{
    AsyncClient, ConnectReturnCode, ConnectionError, Event, MqttOptions, Packet, QoS,
    SubscribeReasonCode,
};
use stoker_domain::SiteSlug;
use stoker_testkit::{TestBroker, TestInflux, TestPostgres, TestRedis, unique_client_id};
use tokio::sync::mpsc;

use crate::faults::seed;
use crate::helpers::{BINARY, env_path, spawn_stoker};
use stoker_testkit::{TempDir, free_port};

/// Longest wait for anything the broker should do.
const PATIENCE: Duration = Duration::from_secs(10);

/// Runs `stoker mqtt credentials ARGS --password-file FILE` and returns the
/// password it prints.
fn credentials(args: &[&str], password_file: &Path) -> String {
    let output = Command::new(BINARY)
        .args(["mqtt", "credentials"])
        .args(args)
        .arg("--password-file")
        .arg(password_file)
        .output()
        .expect("run the stoker binary");
    assert!(
        output.status.success(),
        "stoker mqtt credentials {args:?} failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    let stdout = String::from_utf8(output.stdout).expect("UTF-8");
    let mut lines = stdout.lines();
    let password = lines.next().expect("a password").to_owned();
    assert_eq!(lines.next(), None, "stdout holds the password alone");
    assert_eq!(password.len(), 43, "{password}");
    assert!(password.bytes().all(|b| b.is_ascii_alphanumeric()));
    password
}

/// What a test client sees.
#[derive(Debug)]
enum Seen {
    Message(String, String),
    SubAck(Vec<SubscribeReasonCode>),
    PubAck,
}

/// A plain MQTT 3.1.1 client whose incoming packets arrive on a channel.
struct Probe {
    client: AsyncClient,
    seen: mpsc::UnboundedReceiver<Seen>,
}

impl Probe {
    /// Connects (clean session) and waits for the CONNACK; the error is
    /// the broker's refusal.
    async fn connect(port: u16, login: Option<(&str, &str)>) -> Result<Self, ConnectionError> {
        let mut options = MqttOptions::new(unique_client_id("acl-test"), "127.0.0.1", port);
        if let Some((user, password)) = login {
            options.set_credentials(user, password);
        }
        let (client, mut eventloop) = AsyncClient::new(options, 100);
        loop {
            let event = tokio::time::timeout(PATIENCE, eventloop.poll())
                .await
                .expect("the broker answers CONNECT");
            match event {
                Ok(Event::Incoming(Packet::ConnAck(_))) => break,
                Ok(_) => {}
                Err(error) => return Err(error),
            }
        }
        let (sender, seen) = mpsc::unbounded_channel();
        tokio::spawn(async move {
            while let Ok(event) = eventloop.poll().await {
                let seen = match event {
                    Event::Incoming(Packet::Publish(publish)) => Seen::Message(
                        publish.topic,
                        String::from_utf8_lossy(&publish.payload).into_owned(),
                    ),
                    Event::Incoming(Packet::SubAck(suback)) => Seen::SubAck(suback.return_codes),
                    Event::Incoming(Packet::PubAck(_)) => Seen::PubAck,
                    _ => continue,
                };
                if sender.send(seen).is_err() {
                    break;
                }
            }
        });
        Ok(Self { client, seen })
    }

    async fn next(&mut self) -> Seen {
        tokio::time::timeout(PATIENCE, self.seen.recv())
            .await
            .expect("the broker answers in time")
            .expect("the connection stays up")
    }

    /// Subscribes at QoS 1 and returns the SUBACK's codes.
    async fn subscribe(&mut self, filters: &[&str]) -> Vec<SubscribeReasonCode> {
        for filter in filters {
            self.client
                .subscribe(*filter, QoS::AtLeastOnce)
                .await
                .expect("queue SUBSCRIBE");
        }
        let mut codes = Vec::new();
        while codes.len() < filters.len() {
            match self.next().await {
                Seen::SubAck(more) => codes.extend(more),
                other => panic!("{other:?} before the SUBACK"),
            }
        }
        codes
    }

    /// Publishes; at QoS 1, waits for the PUBACK (which Mosquitto sends
    /// for a refused publish too).
    async fn publish(&mut self, topic: &str, qos: QoS, payload: &str) {
        self.client
            .publish(topic, qos, false, payload.as_bytes().to_vec())
            .await
            .expect("queue PUBLISH");
        if qos == QoS::AtLeastOnce {
            match self.next().await {
                Seen::PubAck => {}
                other => panic!("{other:?} instead of the PUBACK"),
            }
        }
    }

    /// The next message delivered.
    async fn message(&mut self) -> (String, String) {
        match self.next().await {
            Seen::Message(topic, payload) => (topic, payload),
            other => panic!("{other:?} instead of a message"),
        }
    }

    /// Asserts that nothing arrives within `window`.
    async fn nothing_within(&mut self, window: Duration) {
        if let Ok(seen) = tokio::time::timeout(window, self.seen.recv()).await {
            panic!("expected nothing, got {seen:?}");
        }
    }
}

async fn count(influx: &TestInflux, site: &str) -> u64 {
    influx
        .influx()
        .count_readings(&SiteSlug::parse(site).expect("slug"))
        .await
        .unwrap_or(0)
}

fn refused(error: &ConnectionError) -> bool {
    matches!(
        error,
        ConnectionError::ConnectionRefused(
            ConnectReturnCode::NotAuthorized | ConnectReturnCode::BadUserNamePassword
        )
    )
}

#[test]
fn the_secure_broker_config_keeps_the_qos_limits_of_the_development_one() {
    let settings = |text: &'static str| -> Vec<&'static str> {
        text.lines()
            .filter(|line| {
                line.starts_with("max_")
                    || line.starts_with("persistence")
                    || line.starts_with("autosave")
            })
            .collect()
    };
    let development = settings(include_str!("../../../../docker/mosquitto/mosquitto.conf"));
    let secure = settings(include_str!(
        "../../../../docker/mosquitto/mosquitto.secure.conf"
    ));
    assert!(development.len() >= 5, "{development:?}");
    assert_eq!(secure, development);
}

#[tokio::test]
async fn gateways_publish_only_under_their_own_site_and_only_with_their_password() {
    let files = TempDir::new("stoker-test-mqtt-acl");
    std::fs::create_dir_all(files.path()).expect("directory");
    let password_file = files.path().join("passwd");
    let replaced = credentials(&["--site", "site-a"], &password_file);
    let site_a = credentials(&["--site", "site-a"], &password_file);
    let site_b = credentials(&["--site", "site-b"], &password_file);
    let service = credentials(&["--service", "stoker"], &password_file);
    let text = std::fs::read_to_string(&password_file).expect("the password file");
    let users: Vec<&str> = text
        .lines()
        .map(|line| line.split_once(":$7$101$").expect("a Mosquitto 2.0 line").0)
        .collect();
    assert_eq!(users, ["site-a", "site-b", "svc.stoker"], "{text}");

    let broker = TestBroker::start_secure(&password_file).await;
    let port = broker.port();

    // Stoker's user reads every site, plainly and through a shared
    // subscription (MQTT_SHARED_GROUP), as `stoker ingest` subscribes.
    let mut stoker = Probe::connect(port, Some(("svc.stoker", &service)))
        .await
        .expect("the service user logs in");
    let codes = stoker.subscribe(&["sites/+/telemetry"]).await;
    assert_eq!(codes, [SubscribeReasonCode::Success(QoS::AtLeastOnce)]);
    let mut shared = Probe::connect(port, Some(("svc.stoker", &service)))
        .await
        .expect("the service user logs in twice");
    let codes = shared.subscribe(&["$share/stoker/sites/+/sensors/+"]).await;
    assert_eq!(codes, [SubscribeReasonCode::Success(QoS::AtLeastOnce)]);

    // Refused publishes first, the allowed ones last: the broker handles a
    // client's publishes in order, so had it delivered a refused one, it
    // would have arrived before the allowed one.
    let mut gateway = Probe::connect(port, Some(("site-a", &site_a)))
        .await
        .expect("gateway site-a logs in");
    gateway
        .publish("sites/site-b/telemetry", QoS::AtLeastOnce, "foreign qos1")
        .await;
    gateway
        .publish("sites/site-b/telemetry", QoS::AtMostOnce, "foreign qos0")
        .await;
    gateway
        .publish(
            "sites/site-b/sensors/t00",
            QoS::AtLeastOnce,
            "foreign sensor",
        )
        .await;
    gateway
        .publish("sites/site-a/telemetry", QoS::AtLeastOnce, "own")
        .await;
    gateway
        .publish("sites/site-a/sensors/t00", QoS::AtLeastOnce, "own sensor")
        .await;
    assert_eq!(
        stoker.message().await,
        ("sites/site-a/telemetry".to_owned(), "own".to_owned())
    );
    assert_eq!(
        shared.message().await,
        (
            "sites/site-a/sensors/t00".to_owned(),
            "own sensor".to_owned()
        )
    );

    // Wrong passwords (the one replaced, another site's, a made-up one) and
    // anonymous clients are refused at CONNECT.
    for login in [
        Some(("site-a", replaced.as_str())),
        Some(("site-a", site_b.as_str())),
        Some(("site-a", "not-the-password")),
        Some(("svc.stoker", site_a.as_str())),
        Some(("nobody", "nothing")),
        None,
    ] {
        match Probe::connect(port, login).await {
            Err(error) => assert!(refused(&error), "{login:?}: {error:?}"),
            Ok(_) => panic!("{login:?} was let in"),
        }
    }

    // A gateway reads nothing: neither another site nor the alerts, not
    // even through a shared subscription. Mosquitto 2.0 grants the
    // subscriptions and then delivers nothing; a later one may refuse them.
    let mut nosy = Probe::connect(port, Some(("site-a", &site_a)))
        .await
        .expect("gateway site-a logs in again");
    let codes = nosy
        .subscribe(&["sites/site-b/#", "alerts/#", "$share/x/sites/+/telemetry"])
        .await;
    assert_eq!(codes.len(), 3);
    let mut gateway_b = Probe::connect(port, Some(("site-b", &site_b)))
        .await
        .expect("gateway site-b logs in");
    stoker
        .publish("alerts/site-b", QoS::AtLeastOnce, "an alert")
        .await;
    gateway_b
        .publish("sites/site-b/telemetry", QoS::AtLeastOnce, "b's own")
        .await;
    // Delivered to Stoker, so the broker has routed it, to everyone.
    assert_eq!(
        stoker.message().await,
        ("sites/site-b/telemetry".to_owned(), "b's own".to_owned())
    );
    nosy.nothing_within(Duration::from_millis(500)).await;

    // A new site needs no ACL edit: its password file line and a reload.
    let site_c = credentials(&["--site", "site-c"], &password_file);
    let before = Probe::connect(port, Some(("site-c", &site_c))).await;
    assert!(
        before.as_ref().is_err_and(refused),
        "site-c before the reload"
    );
    broker.reload();
    let deadline = tokio::time::Instant::now() + PATIENCE;
    let mut gateway_c = loop {
        match Probe::connect(port, Some(("site-c", &site_c))).await {
            Ok(probe) => break probe,
            Err(error) => {
                assert!(refused(&error), "{error:?}");
                assert!(
                    tokio::time::Instant::now() < deadline,
                    "site-c still refused after the reload:\n{}",
                    broker.log()
                );
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        }
    };
    gateway_c
        .publish("sites/site-a/telemetry", QoS::AtLeastOnce, "c as a")
        .await;
    gateway_c
        .publish("sites/site-c/telemetry", QoS::AtLeastOnce, "c's own")
        .await;
    assert_eq!(
        stoker.message().await,
        ("sites/site-c/telemetry".to_owned(), "c's own".to_owned())
    );
}

#[tokio::test]
async fn stoker_ingest_logs_in_as_its_service_user_and_stores_only_a_gateways_own_site() {
    let files = TempDir::new("stoker-test-mqtt-acl");
    std::fs::create_dir_all(files.path()).expect("directory");
    let password_file = files.path().join("passwd");
    let site_a = credentials(&["--site", "site-a"], &password_file);
    let service = credentials(&["--service", "stoker"], &password_file);
    let broker = TestBroker::start_secure(&password_file).await;

    let postgres = TestPostgres::create().await;
    let pool = postgres.migrated_pool().await;
    seed(&pool, "site-a", 1).await;
    seed(&pool, "site-b", 1).await;
    let influx = TestInflux::create().await;
    let redis = TestRedis::new();
    let spool = TempDir::new("stoker-test-spool");
    let metrics = format!("127.0.0.1:{}", free_port());
    let mut process = spawn_stoker(
        "ingest",
        &[
            ("DATABASE_URL", postgres.url()),
            ("INFLUX_BUCKET", influx.influx().database().to_owned()),
            ("REDIS_KEY_PREFIX", redis.prefix().to_owned()),
            (
                "MQTT_URL",
                format!("mqtt://svc.stoker:{service}@127.0.0.1:{}", broker.port()),
            ),
            ("MQTT_CLIENT_ID", unique_client_id("acl-ingest")),
            ("MQTT_SHARED_GROUP", "stoker".to_owned()),
            ("INGEST_SPOOL_DIR", env_path(spool.path())),
            ("METRICS_ADDR", metrics.clone()),
            ("INGEST_BATCH_LINGER", "20ms".to_owned()),
        ],
    );
    let http = reqwest::Client::new();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(15);
    loop {
        if let Ok(response) = http.get(format!("http://{metrics}/readyz")).send().await
            && response.status().is_success()
        {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "stoker ingest did not log in and subscribe within 15 s:\n{}",
            broker.log()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }

    let mut gateway = Probe::connect(broker.port(), Some(("site-a", &site_a)))
        .await
        .expect("gateway site-a logs in");
    gateway
        .publish(
            "sites/site-b/telemetry",
            QoS::AtLeastOnce,
            r#"{"t00": 2.5}"#,
        )
        .await;
    gateway
        .publish(
            "sites/site-a/telemetry",
            QoS::AtLeastOnce,
            r#"{"t00": 1.5}"#,
        )
        .await;

    let deadline = tokio::time::Instant::now() + PATIENCE;
    while count(&influx, "site-a").await < 1 {
        assert!(
            tokio::time::Instant::now() < deadline,
            "site-a's reading was not stored"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    // Published before site-a's own and in the same order, so it would be
    // stored by now; give a batch more time all the same.
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(
        count(&influx, "site-b").await,
        0,
        "site-a wrote into site-b"
    );
    assert_eq!(count(&influx, "site-a").await, 1);
    assert!(process.interrupt().success());
}

#[tokio::test]
async fn sparkplug_edge_nodes_publish_only_their_own_messages_and_stoker_reads_them_and_commands() {
    let files = TempDir::new("stoker-test-mqtt-acl-sparkplug");
    std::fs::create_dir_all(files.path()).expect("directory");
    let password_file = files.path().join("passwd");
    let service = credentials(&["--service", "stoker"], &password_file);
    // The ACL's example edge node, with a password of Mosquitto's own tool.
    let edge_password = "edge-node-password";
    let status = Command::new("mosquitto_passwd")
        .arg("-b")
        .arg(&password_file)
        .args(["edge.plant-1.gw-1", edge_password])
        .status()
        .expect("run mosquitto_passwd (Debian's mosquitto package)");
    assert!(status.success());
    let broker = TestBroker::start_secure(&password_file).await;
    let port = broker.port();

    // Stoker's user reads the whole namespace, as the Sparkplug host does.
    let mut stoker = Probe::connect(port, Some(("svc.stoker", &service)))
        .await
        .expect("the service user logs in");
    let codes = stoker.subscribe(&["spBv1.0/#"]).await;
    assert_eq!(codes, [SubscribeReasonCode::Success(QoS::AtLeastOnce)]);
    let mut edge = Probe::connect(port, Some(("edge.plant-1.gw-1", edge_password)))
        .await
        .expect("the edge node logs in");
    edge.subscribe(&["spBv1.0/plant-1/NCMD/gw-1", "spBv1.0/STATE/+"])
        .await;

    // Refused first, allowed last (the broker keeps a client's order):
    // another edge node's birth, a command, another group, a STATE.
    for topic in [
        "spBv1.0/plant-1/NBIRTH/gw-2",
        "spBv1.0/plant-1/NCMD/gw-1",
        "spBv1.0/plant-2/NBIRTH/gw-1",
        "spBv1.0/STATE/stoker",
    ] {
        edge.publish(topic, QoS::AtLeastOnce, "refused").await;
    }
    edge.publish("spBv1.0/plant-1/NBIRTH/gw-1", QoS::AtLeastOnce, "own birth")
        .await;
    edge.publish(
        "spBv1.0/plant-1/DDATA/gw-1/boiler-1",
        QoS::AtLeastOnce,
        "own device",
    )
    .await;
    assert_eq!(
        stoker.message().await,
        (
            "spBv1.0/plant-1/NBIRTH/gw-1".to_owned(),
            "own birth".to_owned()
        )
    );
    assert_eq!(
        stoker.message().await,
        (
            "spBv1.0/plant-1/DDATA/gw-1/boiler-1".to_owned(),
            "own device".to_owned()
        )
    );

    // Stoker publishes its STATE and a rebirth request; the edge node reads
    // both. (At QoS 0 here: Stoker's own copy, through spBv1.0/#, would
    // come before a PUBACK.)
    stoker
        .publish("spBv1.0/STATE/stoker", QoS::AtMostOnce, "{\"online\":true}")
        .await;
    stoker
        .publish("spBv1.0/plant-1/NCMD/gw-1", QoS::AtMostOnce, "rebirth")
        .await;
    assert_eq!(
        edge.message().await,
        (
            "spBv1.0/STATE/stoker".to_owned(),
            "{\"online\":true}".to_owned()
        )
    );
    assert_eq!(
        edge.message().await,
        ("spBv1.0/plant-1/NCMD/gw-1".to_owned(), "rebirth".to_owned())
    );
    // Stoker's own STATE and command come back to it through spBv1.0/#.
    assert_eq!(stoker.message().await.0, "spBv1.0/STATE/stoker");
    assert_eq!(stoker.message().await.0, "spBv1.0/plant-1/NCMD/gw-1");
    stoker.nothing_within(Duration::from_millis(300)).await;
}
