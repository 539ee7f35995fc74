//! MQTT over TLS through the real binary, against a Mosquitto of the
//! test's own with a TLS listener and certificates the test makes.

use std::process::Command;
use std::time::Duration;

use stoker_testkit::{BrokerTls, TestBroker, TestCa, TestPostgres, unique_client_id};

use crate::faults::kill_9_mid_run_then_restart;
use crate::helpers::{BINARY, env_path, spawn_stoker};

/// A broker whose TLS certificate is valid for `localhost` only.
async fn tls_broker(ca: &TestCa, require_client_cert: bool) -> TestBroker {
    TestBroker::start_tls(&BrokerTls {
        ca_file: ca.ca_file().to_owned(),
        server: ca.server("broker", &["localhost"]),
        require_client_cert,
    })
    .await
}

/// Waits until the process's log holds `needle`; the log on failure.
async fn wait_for_log(process: &stoker_testkit::StokerProcess, needle: &str) -> String {
    for _ in 0..150 {
        let printed = process.printed();
        if printed.contains(needle) {
            return printed;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("no {needle:?} in the log:\n{}", process.log_tail(30));
}

#[tokio::test]
async fn ingestion_over_tls_with_a_client_certificate_stores_exactly_every_reading_across_kill_9() {
    let ca = TestCa::new();
    let broker = tls_broker(&ca, true).await;
    let client = ca.client("stoker", "stoker-ingest");
    kill_9_mid_run_then_restart(
        &broker,
        vec![
            ("MQTT_URL", broker.tls_url("localhost")),
            ("MQTT_CA_FILE", env_path(ca.ca_file())),
            ("MQTT_CLIENT_CERT", env_path(&client.cert)),
            ("MQTT_CLIENT_KEY", env_path(&client.key)),
        ],
    )
    .await;
}

/// The environment of an ingest process that only connects: its own
/// database, metrics port and client id.
fn connect_only(
    postgres: &TestPostgres,
    mqtt: Vec<(&'static str, String)>,
) -> Vec<(&'static str, String)> {
    let mut environment = vec![
        ("DATABASE_URL", postgres.url()),
        ("MQTT_CLIENT_ID", unique_client_id("tls-refused")),
        (
            "METRICS_ADDR",
            format!("127.0.0.1:{}", stoker_testkit::free_port()),
        ),
    ];
    environment.extend(mqtt);
    environment
}

#[tokio::test]
async fn a_broker_whose_certificate_names_another_host_is_refused_with_the_reason() {
    let ca = TestCa::new();
    let broker = tls_broker(&ca, false).await;
    let postgres = TestPostgres::create().await;
    postgres.migrated_pool().await;
    // The certificate is valid for localhost; the URL says 127.0.0.1.
    let mut ingest = spawn_stoker(
        "ingest",
        &connect_only(
            &postgres,
            vec![
                ("MQTT_URL", broker.tls_url("127.0.0.1")),
                ("MQTT_CA_FILE", env_path(ca.ca_file())),
            ],
        ),
    );
    let printed = wait_for_log(&ingest, "TLS handshake with the broker failed").await;
    assert!(
        printed.contains(r#"not valid for name "127.0.0.1""#),
        "{printed}"
    );
    assert!(
        !printed.contains("connected to the MQTT broker"),
        "{printed}"
    );
    assert!(ingest.interrupt().success());

    // A CA that did not sign the broker's certificate: refused too.
    let other_ca = TestCa::new();
    let mut ingest = spawn_stoker(
        "ingest",
        &connect_only(
            &postgres,
            vec![
                ("MQTT_URL", broker.tls_url("localhost")),
                ("MQTT_CA_FILE", env_path(other_ca.ca_file())),
            ],
        ),
    );
    let printed = wait_for_log(&ingest, "TLS handshake with the broker failed").await;
    // (Both CAs have the same name: the signature does not verify.)
    assert!(printed.contains("invalid peer certificate"), "{printed}");
    assert!(ingest.interrupt().success());
}

#[tokio::test]
async fn a_broker_requiring_a_client_certificate_refuses_stoker_without_one() {
    let ca = TestCa::new();
    let broker = tls_broker(&ca, true).await;
    let postgres = TestPostgres::create().await;
    postgres.migrated_pool().await;
    let mut ingest = spawn_stoker(
        "ingest",
        &connect_only(
            &postgres,
            vec![
                ("MQTT_URL", broker.tls_url("localhost")),
                ("MQTT_CA_FILE", env_path(ca.ca_file())),
            ],
        ),
    );
    let printed = wait_for_log(&ingest, "MQTT connection lost").await;
    assert!(
        !printed.contains("connected to the MQTT broker"),
        "{printed}"
    );
    assert!(ingest.interrupt().success());
}

#[tokio::test]
async fn tls_files_with_a_plain_broker_url_are_refused_at_start() {
    let ca = TestCa::new();
    let postgres = TestPostgres::create().await;
    postgres.migrated_pool().await;
    let mut ingest = spawn_stoker(
        "ingest",
        &connect_only(
            &postgres,
            vec![
                ("MQTT_URL", "mqtt://127.0.0.1:1883".to_owned()),
                ("MQTT_CA_FILE", env_path(ca.ca_file())),
            ],
        ),
    );
    let printed = wait_for_log(&ingest, "mqtts://").await;
    assert!(printed.contains("MQTT_CA_FILE"), "{printed}");
    let status = ingest.interrupt();
    assert!(!status.success());
}

/// `stoker check`'s MQTT line with these settings.
fn check_mqtt_line(mqtt: &[(&str, String)]) -> String {
    let output = Command::new(BINARY)
        .arg("check")
        .envs(mqtt.iter().map(|(name, value)| (*name, value.as_str())))
        .output()
        .expect("run stoker check");
    let stdout = String::from_utf8_lossy(&output.stdout);
    stdout
        .lines()
        .find(|line| line.contains("MQTT "))
        .unwrap_or_else(|| panic!("no MQTT line:\n{stdout}"))
        .to_owned()
}

#[tokio::test]
async fn check_reports_the_brokers_tls_and_certificate_expiry_and_fails_on_a_name_mismatch() {
    let ca = TestCa::new();
    let broker = tls_broker(&ca, true).await;
    let client = ca.client("stoker", "stoker-check");
    let mut mqtt = vec![
        ("MQTT_URL", broker.tls_url("localhost")),
        ("MQTT_CA_FILE", env_path(ca.ca_file())),
        ("MQTT_CLIENT_CERT", env_path(&client.cert)),
        ("MQTT_CLIENT_KEY", env_path(&client.key)),
    ];
    let line = check_mqtt_line(&mqtt);
    assert!(line.starts_with("ok"), "{line}");
    assert!(line.contains("TLS 1.3, certificate valid until"), "{line}");
    assert!(line.contains(" days)"), "{line}");

    mqtt[0].1 = broker.tls_url("127.0.0.1");
    let line = check_mqtt_line(&mqtt);
    assert!(line.starts_with("FAIL"), "{line}");
    assert!(line.contains(r#"not valid for name "127.0.0.1""#), "{line}");
    assert!(line.contains("MQTT_CA_FILE"), "{line}");

    let line = check_mqtt_line(&[("MQTT_URL", broker.url())]);
    assert!(line.contains("plain TCP, no TLS"), "{line}");
}

/// `stoker simulate` with these MQTT settings: its exit and its output.
fn simulate(mqtt: &[(&str, String)]) -> (bool, String) {
    let output = Command::new(BINARY)
        .args(["simulate", "--messages", "5", "--rate", "50", "--qos", "1"])
        .env("MQTT_CLIENT_ID", unique_client_id("simulate-tls"))
        .envs(mqtt.iter().map(|(name, value)| (*name, value.as_str())))
        .output()
        .expect("run stoker simulate");
    let printed = format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    (output.status.success(), printed)
}

#[tokio::test]
async fn simulate_publishes_over_mqtts_to_a_broker_of_a_private_ca_and_refuses_another() {
    let ca = TestCa::new();
    let broker = tls_broker(&ca, false).await;
    let (published, printed) = simulate(&[
        ("MQTT_URL", broker.tls_url("localhost")),
        ("MQTT_CA_FILE", env_path(ca.ca_file())),
    ]);
    assert!(published, "{printed}");
    assert!(printed.contains("published 5 messages"), "{printed}");

    // A broker of another CA: nothing is published, and the simulator
    // stops at once saying why, rather than retrying a refusal forever.
    let other = TestCa::new();
    let mut run = Command::new(BINARY)
        .args(["simulate", "--messages", "5", "--qos", "1"])
        .env("MQTT_CLIENT_ID", unique_client_id("simulate-tls"))
        .env("MQTT_URL", broker.tls_url("localhost"))
        .env("MQTT_CA_FILE", env_path(other.ca_file()))
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("run stoker simulate");
    let deadline = std::time::Instant::now() + Duration::from_secs(15);
    while run.try_wait().expect("simulate's state").is_none() {
        if std::time::Instant::now() > deadline {
            run.kill().expect("stop simulate");
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let output = run.wait_with_output().expect("simulate's output");
    let printed = format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(
        output.status.code().is_some_and(|code| code != 0),
        "exits with an error: {:?} {printed}",
        output.status
    );
    assert!(printed.contains("is not trusted"), "{printed}");
    assert!(!printed.contains("published 5 messages"), "{printed}");
    assert!(printed.contains("invalid peer certificate"), "{printed}");
    assert!(printed.contains("invalid peer certificate"), "{printed}");
}
