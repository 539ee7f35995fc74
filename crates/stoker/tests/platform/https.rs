//! HTTPS on the API and the health/metrics listener, with certificates
//! the test makes; a renewed certificate is served after SIGHUP.

use std::time::Duration;

use stoker_testkit::{CertFiles, TempDir, TestCa, TestInflux, TestPostgres, TestRedis};

use crate::helpers::{env_path, spawn_stoker};

/// An HTTPS client trusting only the test's CA. A new one per request:
/// each has its own TLS session cache, so no handshake resumes a session
/// (which would report the certificate of the session's first handshake).
fn client(ca: &TestCa) -> reqwest::Client {
    let pem = std::fs::read(ca.ca_file()).unwrap();
    reqwest::Client::builder()
        .tls_certs_only([reqwest::Certificate::from_pem(&pem).unwrap()])
        .tls_info(true)
        .pool_max_idle_per_host(0)
        .timeout(Duration::from_secs(3))
        .build()
        .unwrap()
}

/// The certificate (DER) the server presented for `GET url`, once it
/// answers 200.
async fn served_certificate(ca: &TestCa, url: &str) -> Vec<u8> {
    let mut last = String::new();
    for _ in 0..100 {
        match client(ca).get(url).send().await {
            Ok(response) if response.status().is_success() => {
                let info = response
                    .extensions()
                    .get::<reqwest::tls::TlsInfo>()
                    .expect("TLS info");
                return info.peer_certificate().expect("a certificate").to_vec();
            }
            Ok(response) => last = response.status().to_string(),
            Err(error) => last = format!("{error:?}"),
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    panic!("{url} did not answer 200 over HTTPS: {last}");
}

fn der_of(files: &CertFiles) -> Vec<u8> {
    use rustls::pki_types::CertificateDer;
    use rustls::pki_types::pem::PemObject;
    CertificateDer::from_pem_file(&files.cert).unwrap().to_vec()
}

async fn https_with_renewal(command: &str, address_variable: &'static str) {
    let ca = TestCa::new();
    let first = ca.server("first", &["127.0.0.1", "localhost"]);
    let second = ca.server("second", &["127.0.0.1", "localhost"]);
    let served = TempDir::new("stoker-test-https");
    let live = CertFiles {
        cert: served.path().join("cert.pem"),
        key: served.path().join("key.pem"),
    };
    std::fs::copy(&first.cert, &live.cert).unwrap();
    std::fs::copy(&first.key, &live.key).unwrap();

    let postgres = TestPostgres::create().await;
    postgres.migrated_pool().await;
    let influx = TestInflux::create().await;
    let redis = TestRedis::new();
    let spool = TempDir::new("stoker-test-spool");
    let port = stoker_testkit::free_port();
    let environment = [
        ("DATABASE_URL", postgres.url()),
        ("INFLUX_BUCKET", influx.influx().database().to_owned()),
        ("REDIS_KEY_PREFIX", redis.prefix().to_owned()),
        ("INGEST_SPOOL_DIR", env_path(spool.path())),
        // Nothing to consume: a broker that is not there.
        (
            "MQTT_URL",
            format!("mqtt://127.0.0.1:{}", stoker_testkit::free_port()),
        ),
        (address_variable, format!("127.0.0.1:{port}")),
        ("HTTP_TLS_CERT", env_path(&live.cert)),
        ("HTTP_TLS_KEY", env_path(&live.key)),
        ("RUST_LOG", "info".to_owned()),
    ];
    let mut process = spawn_stoker(command, &environment);
    let url = format!("https://127.0.0.1:{port}/healthz");
    assert_eq!(served_certificate(&ca, &url).await, der_of(&first));

    // Plain HTTP on the HTTPS port gets no answer.
    let plain = reqwest::Client::builder()
        .timeout(Duration::from_secs(3))
        .build()
        .unwrap();
    let answer = plain
        .get(format!("http://127.0.0.1:{port}/healthz"))
        .send()
        .await;
    assert!(answer.is_err(), "plain HTTP answered: {answer:?}");

    // A renewed certificate, taken on SIGHUP without a restart.
    std::fs::copy(&second.cert, &live.cert).unwrap();
    std::fs::copy(&second.key, &live.key).unwrap();
    let pid = process.pid().to_string();
    assert!(
        std::process::Command::new("kill")
            .args(["-HUP", &pid])
            .status()
            .unwrap()
            .success()
    );
    let mut renewed = Vec::new();
    for _ in 0..50 {
        renewed = served_certificate(&ca, &url).await;
        if renewed == der_of(&second) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(renewed, der_of(&second), "{}", process.log_tail(20));
    process.check_alive().unwrap();
    for _ in 0..50 {
        if process.printed().contains("HTTPS certificate read again") {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(
        process.printed().contains("HTTPS certificate read again"),
        "{}",
        process.log_tail(20)
    );
    assert!(process.interrupt().success());
}

#[tokio::test]
async fn the_api_serves_https_only_and_takes_a_renewed_certificate_on_sighup() {
    https_with_renewal("api", "HTTP_ADDR").await;
}

#[tokio::test]
async fn the_health_and_metrics_listener_serves_https_and_takes_a_renewed_certificate() {
    https_with_renewal("ingest", "METRICS_ADDR").await;
}
