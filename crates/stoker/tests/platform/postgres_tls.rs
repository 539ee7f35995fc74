//! Postgres, Redis and InfluxDB over TLS through the real binary, against
//! servers of the test's own with certificates the test makes (valid for
//! `localhost` only): `stoker migrate` connects through TLS, and `stoker
//! check` reports each link's TLS and certificate expiry, and fails on a
//! name or chain mismatch.

use std::process::Command;

use stoker_testkit::{TestCa, TestInfluxServer, TestPostgresServer, TestRedisServer};

use crate::helpers::{BINARY, env_path};

/// `stoker check`'s line for `name` with these settings.
fn check_line(environment: &[(&str, String)], name: &str) -> String {
    let output = Command::new(BINARY)
        .arg("check")
        .env_remove("DATABASE_URL")
        .envs(
            environment
                .iter()
                .map(|(variable, value)| (*variable, value.as_str())),
        )
        .output()
        .expect("run stoker check");
    let stdout = String::from_utf8_lossy(&output.stdout);
    stdout
        .lines()
        .find(|line| line.contains(&format!("{name} ")))
        .unwrap_or_else(|| panic!("no {name} line:\n{stdout}"))
        .to_owned()
}

#[tokio::test]
async fn migrate_and_check_reach_postgres_over_verified_tls_and_a_mismatch_fails() {
    let ca = TestCa::new();
    let server = TestPostgresServer::start_tls(&ca).await;
    let root = env_path(ca.ca_file());
    let url = server.tls_url(
        "localhost",
        &format!("sslmode=verify-full&sslrootcert={root}"),
    );

    let output = Command::new(BINARY)
        .arg("migrate")
        .env("DATABASE_URL", &url)
        .output()
        .expect("run stoker migrate");
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );

    let line = check_line(&[("DATABASE_URL", url)], "Postgres");
    assert!(line.starts_with("ok"), "{line}");
    assert!(
        line.contains("migrated, TLS 1.3, certificate valid until"),
        "{line}"
    );
    assert!(
        !line.contains(stoker_testkit::TLS_SERVER_PASSWORD),
        "{line}"
    );

    // The same through POSTGRES_* and POSTGRES_SSL*.
    let parts = [
        ("POSTGRES_HOST", "localhost".to_owned()),
        ("POSTGRES_PORT", server.port().to_string()),
        (
            "DB_PASSWORD",
            stoker_testkit::TLS_SERVER_PASSWORD.to_owned(),
        ),
        ("POSTGRES_SSLMODE", "verify-full".to_owned()),
        ("POSTGRES_SSLROOTCERT", root.clone()),
    ];
    let line = check_line(&parts, "Postgres");
    assert!(line.starts_with("ok"), "{line}");
    assert!(line.contains("TLS 1.3"), "{line}");

    // The certificate names localhost; the URL says 127.0.0.1.
    let wrong_name = server.tls_url(
        "127.0.0.1",
        &format!("sslmode=verify-full&sslrootcert={root}"),
    );
    let line = check_line(&[("DATABASE_URL", wrong_name)], "Postgres");
    assert!(line.starts_with("FAIL"), "{line}");
    assert!(line.contains(r#"not valid for name "127.0.0.1""#), "{line}");
    assert!(line.contains("sslrootcert"), "{line}");

    // A CA that did not sign the server's certificate.
    let other = TestCa::new();
    let other_ca = server.tls_url(
        "localhost",
        &format!(
            "sslmode=verify-ca&sslrootcert={}",
            env_path(other.ca_file())
        ),
    );
    let line = check_line(&[("DATABASE_URL", other_ca)], "Postgres");
    assert!(line.starts_with("FAIL"), "{line}");
    assert!(line.contains("invalid peer certificate"), "{line}");
}

#[tokio::test]
async fn check_reports_tls_and_certificate_expiry_of_redis_and_influxdb() {
    let ca = TestCa::new();
    let redis = TestRedisServer::start_tls(ca.server("redis", &["localhost"]), ca.ca_file()).await;
    let influx = TestInfluxServer::start_tls(&ca.server("influx", &["localhost"])).await;
    let root = env_path(ca.ca_file());
    let mut environment = vec![
        ("REDIS_URL", redis.tls_url("localhost")),
        ("REDIS_CA_FILE", root.clone()),
        ("INFLUX_URL", influx.url()),
        ("INFLUX_CA_FILE", root.clone()),
    ];
    let line = check_line(&environment, "Redis");
    assert!(line.starts_with("ok"), "{line}");
    assert!(line.contains("answers PING, TLS 1."), "{line}");
    assert!(line.contains("certificate valid until"), "{line}");
    let line = check_line(&environment, "InfluxDB");
    assert!(line.starts_with("ok"), "{line}");
    assert!(line.contains(", TLS 1."), "{line}");
    assert!(line.contains("certificate valid until"), "{line}");

    // Another CA: both refused.
    let other = TestCa::new();
    environment[1].1 = env_path(other.ca_file());
    environment[3].1 = env_path(other.ca_file());
    for name in ["Redis", "InfluxDB"] {
        let line = check_line(&environment, name);
        assert!(line.starts_with("FAIL"), "{line}");
        assert!(line.contains("_CA_FILE"), "{line}");
    }

    // Plain links say so.
    let line = check_line(
        &[("REDIS_URL", "redis://127.0.0.1:6379".to_owned())],
        "Redis",
    );
    assert!(line.contains("plain TCP, no TLS"), "{line}");
}
