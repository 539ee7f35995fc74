//! Secrets never reach the output: the binary runs at `RUST_LOG=debug`
//! with a password in each URL, an InfluxDB token and a webhook secret,
//! serves requests with valid, wrong, revoked and malformed API keys, is
//! checked, and fails to start; nothing it prints (stdout and stderr) holds
//! any of them, nor any API key or its secret part.

use std::process::{Command, Output};
use std::time::Duration;

use serde_json::json;
use stoker_testkit::{
    StokerCommand, StokerProcess, TempDir, TestInflux, TestPostgres, TestRedis, free_port,
    unique_client_id, unique_topic_prefix,
};

use crate::helpers::{BINARY, env_path};

const DB_PASSWORD: &str = "s3cret-pw-5f1c";
const INFLUX_TOKEN: &str = "influx-token-8d2e";
const WEBHOOK_SECRET: &str = "webhook-secret-a91b";
const REDIS_PASSWORD: &str = "redis-pw-77c3";

/// Every marker, and whatever part of it would give it away.
const MARKERS: [&str; 4] = [DB_PASSWORD, INFLUX_TOKEN, WEBHOOK_SECRET, REDIS_PASSWORD];

/// A database URL with a password (trust authentication ignores it).
fn url_with_password(postgres: &TestPostgres) -> String {
    let url = postgres.url();
    let (scheme, rest) = url.split_once("://").unwrap();
    let (userinfo, host) = rest.split_once('@').unwrap();
    let user = userinfo.split(':').next().unwrap();
    format!("{scheme}://{user}:{DB_PASSWORD}@{host}")
}

/// `stoker <args>` with `environment` at debug level, its output captured.
fn run(args: &[&str], environment: &[(&str, String)]) -> Output {
    let mut command = Command::new(BINARY);
    command.args(args).env("RUST_LOG", "debug");
    for (name, value) in environment {
        command.env(name, value);
    }
    command.output().expect("run the stoker binary")
}

/// A running `stoker` at debug level, everything it prints captured.
struct Captured(StokerProcess);

impl Captured {
    fn spawn(command: &str, environment: &[(&str, String)]) -> Self {
        Self(
            StokerCommand::new(BINARY, command)
                .rust_log("debug")
                .envs(environment)
                .kill_on_drop()
                .spawn()
                .expect("run the stoker binary"),
        )
    }

    /// SIGINT, waits for the exit (SIGKILL after 15 s); everything printed.
    fn stop(mut self) -> String {
        self.0.interrupt();
        self.printed()
    }

    fn printed(&self) -> String {
        self.0.printed()
    }
}

/// What gives a token away: the whole token and its secret part.
fn token_parts(token: &str) -> Vec<String> {
    let secret = token.rsplit('_').next().unwrap();
    assert!(secret.len() >= 20, "{token}");
    vec![token.to_owned(), secret.to_owned()]
}

fn assert_no_secret(what: &str, printed: &str, tokens: &[String]) {
    for marker in MARKERS
        .iter()
        .map(|m| (*m).to_owned())
        .chain(tokens.iter().flat_map(|token| token_parts(token)))
    {
        if let Some(at) = printed.find(&marker) {
            let from = printed[..at].rfind('\n').map_or(0, |line| line + 1);
            let to = printed[at..]
                .find('\n')
                .map_or(printed.len(), |end| at + end);
            panic!(
                "{what} printed a secret ({marker}) in:\n{}",
                &printed[from..to]
            );
        }
    }
}

/// `stoker apikey create`: the token (stdout, by design); the logs must not
/// hold it.
fn create_key(database_url: &str, name: &str, scopes: &str) -> String {
    let output = run(
        &["apikey", "create", "--name", name, "--scopes", scopes],
        &[("DATABASE_URL", database_url.to_owned())],
    );
    let stderr = String::from_utf8_lossy(&output.stderr).into_owned();
    assert!(output.status.success(), "apikey create: {stderr}");
    let token = String::from_utf8(output.stdout).unwrap().trim().to_owned();
    assert!(token.starts_with("stk_"), "{token}");
    assert_no_secret(
        "stoker apikey create (stderr)",
        &stderr,
        std::slice::from_ref(&token),
    );
    token
}

#[tokio::test]
async fn secrets_and_api_keys_never_appear_in_the_output() {
    let postgres = TestPostgres::create().await;
    let influx = TestInflux::create().await;
    let redis = TestRedis::new();
    let topics = unique_topic_prefix();
    let database_url = url_with_password(&postgres);
    let port = free_port();
    let spool = TempDir::new("stoker-test-spool");
    let client_id = unique_client_id("secrets-test");
    let environment = vec![
        ("DATABASE_URL", database_url.clone()),
        ("INFLUX_TOKEN", INFLUX_TOKEN.to_owned()),
        ("INFLUX_BUCKET", influx.influx().database().to_owned()),
        ("REDIS_KEY_PREFIX", redis.prefix().to_owned()),
        ("MQTT_TOPIC_PREFIX", topics.clone()),
        ("MQTT_CLIENT_ID", client_id.clone()),
        ("ALERT_WEBHOOKS", "http://127.0.0.1:9/hook".to_owned()),
        ("ALERT_WEBHOOK_SECRET", WEBHOOK_SECRET.to_owned()),
        ("HTTP_ADDR", format!("127.0.0.1:{port}")),
        ("INGEST_SPOOL_DIR", env_path(spool.path())),
        ("INGEST_BATCH_LINGER", "20ms".to_owned()),
    ];
    let mut printed = Vec::new();

    // `migrate` first (the binary creates the schemas), then keys.
    let output = run(&["migrate"], &environment);
    printed.push((
        "stoker migrate",
        format!(
            "{}\n{}",
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        ),
    ));
    assert!(output.status.success(), "{}", printed[0].1);
    let admin = create_key(&database_url, "secrets-admin", "admin");
    let writer = create_key(&database_url, "secrets-write", "write");
    let revoked = create_key(&database_url, "secrets-revoked", "read");
    let output = run(
        &["apikey", "revoke", "secrets-revoked"],
        &[("DATABASE_URL", database_url.clone())],
    );
    assert!(output.status.success());
    printed.push((
        "stoker apikey revoke",
        format!(
            "{}\n{}",
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        ),
    ));
    let output = run(
        &["apikey", "list"],
        &[("DATABASE_URL", database_url.clone())],
    );
    assert!(output.status.success());
    printed.push((
        "stoker apikey list",
        format!(
            "{}\n{}",
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        ),
    ));
    let tokens = vec![admin.clone(), writer.clone(), revoked.clone()];

    // `serve`, with requests of every kind of key.
    let server = Captured::spawn("serve", &environment);
    let base = format!("http://127.0.0.1:{port}");
    let http = reqwest::Client::new();
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
    assert!(ready, "stoker serve is not ready:\n{}", server.printed());
    let send = |method: reqwest::Method,
                path: &str,
                authorization: Option<String>,
                body: Option<serde_json::Value>| {
        let mut request = http.request(method, format!("{base}{path}"));
        if let Some(value) = authorization {
            request = request.header("authorization", value);
        }
        if let Some(body) = body {
            request = request.json(&body);
        }
        async move {
            let response = request.send().await.unwrap();
            let status = response.status();
            (status, response.text().await.unwrap_or_default())
        }
    };
    use reqwest::Method;
    let bearer = |token: &str| Some(format!("Bearer {token}"));
    let mut answers = String::new();
    for (method, path, authorization, body) in [
        (
            Method::POST,
            "/api/v1/sites",
            bearer(&admin),
            Some(json!({"slug": "boiler-house-1", "name": "Boiler house 1"})),
        ),
        (
            Method::POST,
            "/api/v1/sites/boiler-house-1/sensors",
            bearer(&admin),
            Some(
                json!({"key": "b1_steam_pressure", "type": "pressure", "unit": "bar", "min": 0, "max": 25}),
            ),
        ),
        (
            Method::POST,
            "/api/v1/alert-rules",
            bearer(&admin),
            Some(
                json!({"name": "High", "kind": "threshold", "site": "boiler-house-1",
                "agg": "last", "op": ">", "threshold": 12.5, "clear_threshold": 12.0,
                "window": "10s", "severity": "warning"}),
            ),
        ),
        (
            Method::POST,
            "/api/v1/sites/boiler-house-1/telemetry",
            bearer(&writer),
            Some(json!({"b1_steam_pressure": 10.4})),
        ),
        (Method::GET, "/api/v1/sites", bearer(&admin), None),
        (
            Method::GET,
            "/api/v1/sites/boiler-house-1/latest",
            bearer(&admin),
            None,
        ),
        (
            Method::GET,
            "/api/v1/sites/boiler-house-1/dashboard",
            bearer(&admin),
            None,
        ),
        (
            Method::GET,
            "/api/v1/sites/boiler-house-1/sensors/b1_steam_pressure/history",
            bearer(&admin),
            None,
        ),
        // Refused keys: wrong scope, revoked, wrong secret, malformed.
        (Method::GET, "/api/v1/sites", bearer(&writer), None),
        (Method::GET, "/api/v1/sites", bearer(&revoked), None),
        (
            Method::GET,
            "/api/v1/sites",
            bearer(&format!("{}x", &admin[..admin.len() - 1])),
            None,
        ),
        (
            Method::GET,
            "/api/v1/sites",
            bearer(&format!("{admin}x")),
            None,
        ),
        (Method::GET, "/api/v1/sites", Some(admin.clone()), None),
        (
            Method::GET,
            "/api/v1/sites",
            Some(format!("Basic {admin}")),
            None,
        ),
        (
            Method::GET,
            "/api/v1/sites",
            Some(format!("Token {admin}")),
            None,
        ),
        // A key where none belongs: a query parameter, a body field.
        (
            Method::GET,
            &format!("/api/v1/sites?api_key={admin}") as &str,
            bearer(&admin),
            None,
        ),
        (
            Method::POST,
            "/api/v1/sites",
            bearer(&admin),
            Some(json!({"slug": "x", "name": "x", "api_key": admin})),
        ),
        (Method::GET, "/readyz", None, None),
        (Method::GET, "/metrics", None, None),
    ] {
        let (status, body) = send(method.clone(), path, authorization, body).await;
        assert!(
            !status.is_server_error(),
            "{method} {path}: {status} {body}"
        );
        answers.push_str(&body);
        answers.push('\n');
    }
    // An alert, acknowledged through the API: its webhook (signed with the
    // secret) fails to deliver, and is retried and logged.
    let pool = stoker_postgres::connect(&postgres.options()).unwrap();
    let rules = stoker_metadata::enabled_alert_rules(&pool).await.unwrap();
    let rule = &rules[0];
    let site = stoker_domain::SiteSlug::parse("boiler-house-1").unwrap();
    let sensor = stoker_domain::SensorKey::parse("b1_steam_pressure").unwrap();
    let verdict = stoker_analytics::store::Verdict {
        rule,
        site: &site,
        sensor: &sensor,
        at: stoker_domain::EpochMillis::now(),
        value: Some(stoker_domain::ReadingValue::Number(13.0)),
        message: "last = 13 bar > 12.5".into(),
        explanation: None,
    };
    let alert =
        stoker_analytics::store::open_alert(&pool, &stoker_analytics::store::NoOutbox, &verdict)
            .await
            .unwrap()
            .unwrap();
    let (status, body) = send(
        Method::POST,
        &format!("/api/v1/alerts/{}/ack", alert.id),
        bearer(&writer),
        None,
    )
    .await;
    assert!(status.is_success(), "ack: {status} {body}");
    answers.push_str(&body);
    // Let the dispatcher try the webhook.
    tokio::time::sleep(Duration::from_secs(2)).await;
    let served = server.stop();
    stoker_testkit::clear_mqtt_session(&client_id).await;
    assert!(
        served.contains("HTTP API listening") && served.contains("request"),
        "the debug log is not there:\n{served}"
    );
    printed.push(("stoker serve", served));
    printed.push(("the API's answers to other keys", answers));

    // `check`, with an unreachable Redis behind a password.
    let mut with_redis = environment.clone();
    with_redis.push((
        "REDIS_URL",
        format!("redis://:{REDIS_PASSWORD}@127.0.0.1:9"),
    ));
    let output = run(&["check"], &with_redis);
    assert!(!output.status.success());
    printed.push((
        "stoker check",
        format!(
            "{}\n{}",
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        ),
    ));

    // `--help` shows the environment's values of some settings: not these.
    let output = run(&["serve", "--help"], &with_redis);
    printed.push((
        "stoker serve --help",
        String::from_utf8_lossy(&output.stdout).into_owned(),
    ));

    // `api` going on without that Redis (it is optional), then stopped.
    let mut api_environment = with_redis.clone();
    let api_port = free_port();
    api_environment.retain(|(name, _)| *name != "HTTP_ADDR");
    api_environment.push(("HTTP_ADDR", format!("127.0.0.1:{api_port}")));
    let api = Captured::spawn("api", &api_environment);
    let mut readyz = String::new();
    for _ in 0..300 {
        if let Ok(response) = http
            .get(format!("http://127.0.0.1:{api_port}/readyz"))
            .send()
            .await
        {
            readyz = response.text().await.unwrap_or_default();
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(readyz.contains("redis"), "{readyz}:\n{}", api.printed());
    let body = http
        .get(format!("http://127.0.0.1:{api_port}/api/v1/sites"))
        .bearer_auth(&admin)
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    printed.push(("stoker api's /readyz", readyz + &body));
    printed.push(("stoker api without Redis", api.stop()));

    // Failed starts: Postgres and InfluxDB unreachable.
    for (what, variable, value) in [
        (
            "serve without Postgres",
            "DATABASE_URL",
            format!("postgres://postgres:{DB_PASSWORD}@127.0.0.1:9/stoker"),
        ),
        (
            "serve without InfluxDB",
            "INFLUX_URL",
            "http://127.0.0.1:9".to_owned(),
        ),
    ] {
        let mut failing = with_redis.clone();
        failing.retain(|(name, _)| *name != variable);
        failing.push((variable, value));
        let output = run(&["serve"], &failing);
        assert!(!output.status.success(), "{what} started");
        printed.push((
            what,
            format!(
                "{}\n{}",
                String::from_utf8_lossy(&output.stdout),
                String::from_utf8_lossy(&output.stderr)
            ),
        ));
    }

    for (what, text) in &printed {
        assert_no_secret(what, text, &tokens);
    }
}
