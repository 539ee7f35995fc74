//! Postgres over TLS against a server of the test's own with `ssl = on`,
//! a certificate valid for `localhost` only, and TCP sessions over TLS
//! only (SCRAM with a password, so channel binding is exercised).

use std::time::Duration;

use stoker_postgres::{Listener, Notice, PostgresOptions, SslMode};
use stoker_testkit::{TLS_SERVER_PASSWORD, TestCa, TestPostgresServer};
use tokio_util::sync::CancellationToken;

/// The whole error chain of a failed connection.
async fn refused(options: &PostgresOptions) -> String {
    let pool = stoker_postgres::connect(options).expect("settings accepted");
    let error = pool.get().await.expect_err("connection refused");
    let mut text = error.to_string();
    let mut source = std::error::Error::source(&error);
    while let Some(cause) = source {
        text.push_str(&format!(" / {cause}"));
        source = cause.source();
    }
    text
}

/// Whether the pool's session runs over TLS, as the server sees it.
async fn session_is_tls(options: &PostgresOptions) -> bool {
    let pool = stoker_postgres::connect(options).expect("settings accepted");
    let client = pool.get().await.expect("a connection");
    client
        .query_one(
            "SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()",
            &[],
        )
        .await
        .expect("pg_stat_ssl")
        .get(0)
}

#[tokio::test]
async fn verify_full_with_the_ca_serves_the_pool_listen_and_leadership_over_tls() {
    let ca = TestCa::new();
    let server = TestPostgresServer::start_tls(&ca).await;
    let query = format!("sslmode=verify-full&sslrootcert={}", ca.ca_file().display());
    let options = PostgresOptions::from_url(server.tls_url("localhost", &query));
    assert!(session_is_tls(&options).await);

    let connector = options.connector().unwrap();
    let (_client, connection) = connector.connect().await.unwrap();
    drop(connection);
    let handshake = connector.last_handshake().expect("a TLS handshake");
    assert!(
        handshake.starts_with("TLS 1.3, certificate valid until"),
        "{handshake}"
    );

    let leadership = stoker_postgres::try_lead(&options, 4242)
        .await
        .unwrap()
        .expect("the lock is free");
    assert!(leadership.holds().await);

    let (notices, mut received) = tokio::sync::mpsc::unbounded_channel();
    let shutdown = CancellationToken::new();
    let listener = Listener::new(connector, "stoker_tls_test");
    let task = tokio::spawn(listener.run(
        shutdown.clone(),
        move |notice| {
            let _ = notices.send(matches!(notice, Notice::Listening));
        },
        |lost| panic!("the connection was lost: {lost:?}"),
    ));
    let listening = tokio::time::timeout(Duration::from_secs(10), received.recv())
        .await
        .expect("listening within 10 s");
    assert_eq!(listening, Some(true));
    shutdown.cancel();
    task.await.unwrap();

    // The same through the POSTGRES_* parts.
    let parts = PostgresOptions {
        host: "localhost".into(),
        port: server.port(),
        password: stoker_domain::Secret::new(TLS_SERVER_PASSWORD),
        sslmode: Some(SslMode::VerifyFull),
        sslrootcert: Some(ca.ca_file().to_owned()),
        ..PostgresOptions::default()
    };
    assert!(session_is_tls(&parts).await);
}

#[tokio::test]
async fn a_wrong_name_another_ca_and_plaintext_are_refused() {
    let ca = TestCa::new();
    let server = TestPostgresServer::start_tls(&ca).await;
    let root = ca.ca_file().display().to_string();

    // The certificate names localhost; the URL says 127.0.0.1.
    let wrong_name = PostgresOptions::from_url(server.tls_url(
        "127.0.0.1",
        &format!("sslmode=verify-full&sslrootcert={root}"),
    ));
    let error = refused(&wrong_name).await;
    assert!(
        error.contains(r#"not valid for name "127.0.0.1""#),
        "{error}"
    );
    assert!(!error.contains(TLS_SERVER_PASSWORD), "{error}");
    // verify-ca checks the chain only, as libpq does.
    let chain_only = PostgresOptions::from_url(server.tls_url(
        "127.0.0.1",
        &format!("sslmode=verify-ca&sslrootcert={root}"),
    ));
    assert!(session_is_tls(&chain_only).await);

    // A CA that did not sign the server's certificate.
    let other = TestCa::new();
    for mode in ["verify-full", "verify-ca", "require"] {
        let options = PostgresOptions::from_url(server.tls_url(
            "localhost",
            &format!("sslmode={mode}&sslrootcert={}", other.ca_file().display()),
        ));
        let error = refused(&options).await;
        assert!(
            error.contains("invalid peer certificate"),
            "{mode}: {error}"
        );
    }

    // require without a root file: encrypted, the server not verified.
    let unverified = PostgresOptions::from_url(server.tls_url("127.0.0.1", "sslmode=require"));
    assert!(session_is_tls(&unverified).await);
    // prefer (the default) takes the TLS the server offers.
    let preferred = PostgresOptions::from_url(server.tls_url("localhost", ""));
    assert!(session_is_tls(&preferred).await);

    // Plaintext: the server takes TCP sessions over TLS only.
    let plain = PostgresOptions::from_url(server.tls_url("localhost", "sslmode=disable"));
    let error = refused(&plain).await;
    assert!(error.contains("no pg_hba.conf entry"), "{error}");
    assert!(error.contains("no encryption"), "{error}");

    // verify-* without a root file is a settings error, before connecting.
    let rootless = PostgresOptions::from_url(server.tls_url("localhost", "sslmode=verify-full"));
    let error = stoker_postgres::connect(&rootless).unwrap_err().to_string();
    assert!(error.contains("sslrootcert"), "{error}");
}
