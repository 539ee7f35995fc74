//! The notification outbox against real servers on 127.0.0.1: Postgres (a
//! database per test), Mosquitto (a topic prefix per test, or a broker of
//! the test's own), and webhook receivers that each test starts on a free
//! port.

use std::collections::{HashMap, HashSet};
use std::future::Future;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use rumqttc::{AsyncClient, Event, MqttOptions, Packet, QoS};
use stoker_analytics::notify::{self, Dispatcher, NotifyOptions};
use stoker_domain::{Secret, SiteSlug};
use stoker_postgres::{Pool, PostgresOptions};
use stoker_testkit::{SYSTEM_BROKER_PORT, TestBroker, TestPostgres, unique_client_id};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;
use tokio::task::JoinHandle;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

const SECRET: &str = "correct horse battery staple";

/// Longest wait for anything a test waits for.
const PATIENCE: Duration = Duration::from_secs(30);

async fn setup() -> (TestPostgres, Pool) {
    let postgres = TestPostgres::create().await;
    let pool = postgres.migrated_pool().await;
    stoker_analytics::migrate(&pool).await.unwrap();
    (postgres, pool)
}

fn site() -> SiteSlug {
    SiteSlug::parse("boiler-house-1").unwrap()
}

fn system_broker() -> String {
    format!("mqtt://127.0.0.1:{SYSTEM_BROKER_PORT}")
}

/// Settings with a topic prefix of the test's own and retries quick enough
/// for a test.
fn options(webhooks: &[&str]) -> NotifyOptions {
    NotifyOptions {
        webhooks: webhooks.iter().map(|url| url.parse().unwrap()).collect(),
        webhook_secret: Some(Secret::new(SECRET)),
        max_attempts: 5,
        backoff: Duration::from_millis(50),
        backoff_max: Duration::from_millis(200),
        timeout: Duration::from_secs(5),
        topic_prefix: stoker_testkit::unique_topic_prefix(),
    }
}

/// An alert with one `fired` event; returns the event's id.
async fn new_event(pool: &Pool) -> i64 {
    let client = pool.get().await.unwrap();
    let alert = uuid::Uuid::new_v4();
    client
        .execute(
            "INSERT INTO analytics.alerts
                 (id, rule_id, rule_name, kind, severity, site, sensor, state, opened_at, value,
                  threshold, message)
             VALUES ($1, $2, 'Steam pressure high', 'threshold', 'critical', 'boiler-house-1',
                     'b1_steam_pressure', 'firing', now(), 13.2, 12.5,
                     'mean over 1m = 13.2 bar, > 12.5 for 30s')",
            &[&alert, &uuid::Uuid::new_v4()],
        )
        .await
        .unwrap();
    client
        .query_one(
            "INSERT INTO analytics.alert_events (alert_id, transition, at, actor, value, detail)
             VALUES ($1, 'fired', now(), 'analytics', 13.2, 'mean over 1m = 13.2 bar, > 12.5')
             RETURNING id",
            &[&alert],
        )
        .await
        .unwrap()
        .get(0)
}

fn body(event: i64) -> String {
    serde_json::json!({
        "event_id": event,
        "transition": "fired",
        "site": "boiler-house-1",
        "sensor": "b1_steam_pressure",
        "severity": "critical",
        "value": 13.2,
        "message": "Dampfdruck > 12,5 bar — 13.2 bar",
    })
    .to_string()
}

/// A new event whose notifications are enqueued and committed; returns
/// the event's id and the body.
async fn enqueue_committed(pool: &Pool, options: &NotifyOptions) -> (i64, String) {
    let event = new_event(pool).await;
    let body = body(event);
    let mut client = pool.get().await.unwrap();
    let tx = client.transaction().await.unwrap();
    notify::enqueue(&tx, options, event, &site(), &body)
        .await
        .unwrap();
    tx.commit().await.unwrap();
    (event, body)
}

/// A row of analytics.notifications.
#[derive(Debug, Clone)]
struct Notification {
    id: i64,
    channel: String,
    target: String,
    body: String,
    attempts: i32,
    delivered: bool,
    failed: bool,
    last_error: Option<String>,
}

async fn notifications(pool: &Pool, event: i64) -> Vec<Notification> {
    let client = pool.get().await.unwrap();
    client
        .query(
            "SELECT id, channel, target, body, attempts, delivered_at IS NOT NULL,
                    failed_at IS NOT NULL, last_error
             FROM analytics.notifications WHERE event_id = $1 ORDER BY id",
            &[&event],
        )
        .await
        .unwrap()
        .iter()
        .map(|row| Notification {
            id: row.get(0),
            channel: row.get(1),
            target: row.get(2),
            body: row.get(3),
            attempts: row.get(4),
            delivered: row.get(5),
            failed: row.get(6),
            last_error: row.get(7),
        })
        .collect()
}

/// The event's notification on `channel`, once `done` holds for it.
async fn wait_for(
    pool: &Pool,
    event: i64,
    channel: &str,
    what: &str,
    done: impl Fn(&Notification) -> bool,
) -> Notification {
    eventually(what, || async {
        notifications(pool, event)
            .await
            .into_iter()
            .find(|row| row.channel == channel && done(row))
    })
    .await
}

/// Runs a dispatcher (with the machine's broker) until the event's webhook
/// notification is settled, delivered or given up; returns its row.
async fn settle_webhook(
    postgres: &TestPostgres,
    pool: &Pool,
    options: NotifyOptions,
    event: i64,
) -> Notification {
    let running = Running::start(pool, postgres, options, &system_broker());
    let row = wait_for(pool, event, "webhook", "the webhook is settled", |row| {
        row.delivered || row.failed
    })
    .await;
    running.stop().await;
    row
}

/// Polls `probe` until it gives a value; fails the test after [`PATIENCE`].
async fn eventually<T, F, Fut>(what: &str, mut probe: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    let deadline = Instant::now() + PATIENCE;
    loop {
        if let Some(value) = probe().await {
            return value;
        }
        assert!(
            Instant::now() < deadline,
            "timed out after {PATIENCE:?} waiting until {what}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// A dispatcher running in the background.
struct Running {
    shutdown: CancellationToken,
    task: JoinHandle<()>,
}

impl Running {
    fn start(pool: &Pool, postgres: &TestPostgres, options: NotifyOptions, mqtt_url: &str) -> Self {
        let dispatcher =
            Dispatcher::new(pool.clone(), &postgres.options(), options, mqtt_url).unwrap();
        let shutdown = CancellationToken::new();
        let task = tokio::spawn(dispatcher.run(shutdown.clone()));
        Self { shutdown, task }
    }

    /// Shuts the dispatcher down and waits until it has stopped.
    async fn stop(self) {
        self.shutdown.cancel();
        tokio::time::timeout(PATIENCE, self.task)
            .await
            .expect("the dispatcher stops on shutdown")
            .unwrap();
    }
}

/// One request a webhook receiver got.
#[derive(Debug, Clone)]
struct Received {
    method: String,
    headers: HashMap<String, String>,
    body: String,
    at: Instant,
}

impl Received {
    fn header(&self, name: &str) -> &str {
        self.headers
            .get(name)
            .map(String::as_str)
            .unwrap_or_else(|| panic!("no {name} header in {self:?}"))
    }

    /// Whether the signature verifies with the test's secret.
    fn is_signed(&self) -> bool {
        let timestamp: i64 = self.header("x-stoker-timestamp").parse().unwrap();
        self.header("x-stoker-signature")
            == notify::signature(SECRET.as_bytes(), timestamp, &self.body)
    }
}

/// A webhook receiver: a plain HTTP/1.1 server on a free port that records
/// every request and answers the n-th (from 0) with `status(n)`.
struct Receiver {
    url: String,
    received: Arc<Mutex<Vec<Received>>>,
    task: JoinHandle<()>,
}

impl Receiver {
    async fn start(status: impl Fn(usize) -> u16 + Send + Sync + 'static) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!(
            "http://{}/hooks/stoker?token=t0k3n",
            listener.local_addr().unwrap()
        );
        let received = Arc::new(Mutex::new(Vec::new()));
        let status = Arc::new(status);
        let task = tokio::spawn({
            let received = Arc::clone(&received);
            async move {
                while let Ok((stream, _)) = listener.accept().await {
                    tokio::spawn(answer(stream, Arc::clone(&received), Arc::clone(&status)));
                }
            }
        });
        Self {
            url,
            received,
            task,
        }
    }

    fn received(&self) -> Vec<Received> {
        self.received.lock().unwrap().clone()
    }
}

impl Drop for Receiver {
    fn drop(&mut self) {
        self.task.abort();
    }
}

async fn answer(
    mut stream: tokio::net::TcpStream,
    received: Arc<Mutex<Vec<Received>>>,
    status: Arc<impl Fn(usize) -> u16 + Send + Sync>,
) {
    let mut buffer = Vec::new();
    let head_end = loop {
        if let Some(end) = buffer.windows(4).position(|window| window == b"\r\n\r\n") {
            break end + 4;
        }
        let mut chunk = [0; 4096];
        match stream.read(&mut chunk).await {
            Ok(0) | Err(_) => return,
            Ok(read) => buffer.extend_from_slice(&chunk[..read]),
        }
    };
    let head = String::from_utf8_lossy(&buffer[..head_end]).into_owned();
    let mut lines = head.split("\r\n");
    let method = lines
        .next()
        .and_then(|line| line.split(' ').next())
        .unwrap_or_default()
        .to_owned();
    let headers: HashMap<String, String> = lines
        .filter_map(|line| line.split_once(':'))
        .map(|(name, value)| (name.trim().to_ascii_lowercase(), value.trim().to_owned()))
        .collect();
    let length: usize = headers
        .get("content-length")
        .and_then(|value| value.parse().ok())
        .unwrap_or(0);
    while buffer.len() < head_end + length {
        let mut chunk = [0; 4096];
        match stream.read(&mut chunk).await {
            Ok(0) | Err(_) => return,
            Ok(read) => buffer.extend_from_slice(&chunk[..read]),
        }
    }
    let body = String::from_utf8(buffer[head_end..head_end + length].to_vec()).unwrap();
    let index = {
        let mut received = received.lock().unwrap();
        received.push(Received {
            method,
            headers,
            body,
            at: Instant::now(),
        });
        received.len() - 1
    };
    let code = status(index);
    let (reason, text) = match code {
        200..=299 => ("OK", "thanks\n"),
        _ => ("Trouble", "boiler room\n\tflooded\n"),
    };
    let response = format!(
        "HTTP/1.1 {code} {reason}\r\ncontent-type: text/plain\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{text}",
        text.len()
    );
    let _ = stream.write_all(response.as_bytes()).await;
    let _ = stream.shutdown().await;
}

/// A port nothing listens on.
fn closed_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

#[tokio::test]
async fn a_webhook_receives_a_signed_notification() {
    let (postgres, pool) = setup().await;
    let receiver = Receiver::start(|_| 200).await;
    let options = options(&[&receiver.url]);
    let (event, body) = enqueue_committed(&pool, &options).await;

    // One row per destination, each with exactly the body.
    let rows = notifications(&pool, event).await;
    assert_eq!(rows.len(), 2, "{rows:?}");
    assert_eq!(rows[0].channel, "mqtt");
    assert_eq!(
        rows[0].target,
        format!("{}alerts/boiler-house-1", options.topic_prefix)
    );
    assert_eq!(rows[1].channel, "webhook");
    assert_eq!(rows[1].target, receiver.url);
    assert!(rows.iter().all(|row| row.body == body && row.attempts == 0));

    let running = Running::start(&pool, &postgres, options, &system_broker());
    let webhook = wait_for(&pool, event, "webhook", "the webhook is delivered", |row| {
        row.delivered
    })
    .await;
    let mqtt = wait_for(
        &pool,
        event,
        "mqtt",
        "the MQTT publish is delivered",
        |row| row.delivered,
    )
    .await;
    running.stop().await;

    assert_eq!((webhook.attempts, webhook.failed), (1, false));
    assert_eq!(webhook.last_error, None);
    assert_eq!((mqtt.attempts, mqtt.failed), (1, false));
    let received = receiver.received();
    assert_eq!(received.len(), 1, "{received:?}");
    let request = &received[0];
    assert_eq!(request.method, "POST");
    assert_eq!(request.body, body);
    assert_eq!(request.header("content-type"), "application/json");
    assert_eq!(request.header("x-stoker-event-id"), event.to_string());
    assert_eq!(request.header("x-stoker-delivery"), webhook.id.to_string());
    let timestamp: i64 = request.header("x-stoker-timestamp").parse().unwrap();
    assert!((timestamp - chrono::Utc::now().timestamp()).abs() < 300);
    assert!(request.is_signed(), "{request:?}");
    let signature = request.header("x-stoker-signature");
    assert!(
        signature.len() == 71
            && signature[7..]
                .chars()
                .all(|c| c.is_ascii_digit() || ('a'..='f').contains(&c)),
        "{signature}"
    );
    // Another secret does not verify.
    assert_ne!(
        signature,
        notify::signature(b"another secret", timestamp, &request.body)
    );
}

#[tokio::test]
async fn a_failing_webhook_is_retried_with_backoff_then_recorded_as_failed() {
    let (postgres, pool) = setup().await;
    let receiver = Receiver::start(|_| 500).await;
    let options = NotifyOptions {
        max_attempts: 4,
        ..options(&[&receiver.url])
    };
    let backoff = options.backoff;
    let (event, body) = enqueue_committed(&pool, &options).await;
    let row = settle_webhook(&postgres, &pool, options, event).await;

    assert_eq!((row.attempts, row.delivered), (4, false));
    assert_eq!(
        row.last_error.as_deref(),
        Some("HTTP 500 Internal Server Error: boiler room flooded")
    );
    let received = receiver.received();
    assert_eq!(received.len(), 4, "{received:?}");
    for request in &received {
        assert_eq!(request.body, body);
        assert_eq!(request.header("x-stoker-delivery"), row.id.to_string());
        assert!(request.is_signed());
    }
    // Each retry waited at least half its backoff (the jitter takes up to half).
    for (pair, retry) in received.windows(2).zip(1u32..) {
        let waited = pair[1].at - pair[0].at;
        let least = backoff * (1 << (retry - 1)) / 2;
        assert!(
            waited + Duration::from_millis(5) >= least,
            "retry {retry} came after {waited:?}, before {least:?}"
        );
    }
}

#[tokio::test]
async fn a_webhook_that_fails_twice_then_succeeds_is_delivered() {
    let (postgres, pool) = setup().await;
    let receiver = Receiver::start(|index| if index < 2 { 503 } else { 204 }).await;
    let options = options(&[&receiver.url]);
    let (event, _) = enqueue_committed(&pool, &options).await;
    let row = settle_webhook(&postgres, &pool, options, event).await;

    assert_eq!((row.attempts, row.failed), (3, false));
    // The record keeps why the last failed attempt failed.
    assert_eq!(
        row.last_error.as_deref(),
        Some("HTTP 503 Service Unavailable: boiler room flooded")
    );
    assert_eq!(receiver.received().len(), 3);
}

#[tokio::test]
async fn a_webhook_that_is_down_fails_with_the_connection_error() {
    let (postgres, pool) = setup().await;
    let url = format!(
        "http://127.0.0.1:{}/hooks/stoker?token=t0k3n",
        closed_port()
    );
    let options = NotifyOptions {
        max_attempts: 2,
        ..options(&[&url])
    };
    let (event, _) = enqueue_committed(&pool, &options).await;
    let row = settle_webhook(&postgres, &pool, options, event).await;

    assert_eq!((row.attempts, row.delivered), (2, false));
    let error = row.last_error.unwrap();
    assert!(error.contains("Connection refused"), "{error}");
    // Never the URL: it may carry a token.
    assert!(
        !error.contains("t0k3n") && !error.contains("127.0.0.1"),
        "{error}"
    );
}

#[tokio::test]
async fn mqtt_subscribers_receive_exactly_the_body() {
    let (postgres, pool) = setup().await;
    let options = options(&[]);
    let topic = options.topic(&site());

    let mut subscriber = MqttOptions::new(
        unique_client_id("test-alerts"),
        "127.0.0.1",
        SYSTEM_BROKER_PORT,
    );
    subscriber.set_max_packet_size(1024 * 1024, 1024 * 1024);
    let (client, mut eventloop) = AsyncClient::new(subscriber, 10);
    client.subscribe(&topic, QoS::AtLeastOnce).await.unwrap();
    let (publishes, mut arrived) = tokio::sync::mpsc::unbounded_channel();
    let (subscribed, is_subscribed) = tokio::sync::oneshot::channel();
    let listening = tokio::spawn(async move {
        let mut subscribed = Some(subscribed);
        while let Ok(event) = eventloop.poll().await {
            match event {
                Event::Incoming(Packet::SubAck(_)) => {
                    if let Some(subscribed) = subscribed.take() {
                        let _ = subscribed.send(());
                    }
                }
                Event::Incoming(Packet::Publish(publish)) => {
                    let _ = publishes.send(publish);
                }
                _ => {}
            }
        }
    });
    tokio::time::timeout(PATIENCE, is_subscribed)
        .await
        .expect("the broker confirms the subscription")
        .unwrap();

    let (event, body) = enqueue_committed(&pool, &options).await;
    let running = Running::start(&pool, &postgres, options, &system_broker());
    let publish = tokio::time::timeout(PATIENCE, arrived.recv())
        .await
        .expect("the alert arrives")
        .unwrap();
    let row = wait_for(&pool, event, "mqtt", "the publish is delivered", |row| {
        row.delivered
    })
    .await;
    running.stop().await;
    let _ = client.disconnect().await;
    listening.abort();

    assert_eq!(publish.topic, topic);
    assert_eq!(publish.payload.as_ref(), body.as_bytes());
    assert_eq!(publish.qos, QoS::AtLeastOnce);
    assert!(!publish.retain);
    assert_eq!((row.attempts, row.failed), (1, false));
    assert!(arrived.try_recv().is_err(), "one publish per transition");
}

#[tokio::test]
async fn a_broker_that_is_down_fails_attempts_until_it_is_back() {
    let (postgres, pool) = setup().await;
    let mut broker = TestBroker::start().await;
    broker.stop();
    let options = NotifyOptions {
        max_attempts: 1000,
        timeout: Duration::from_millis(300),
        ..options(&[])
    };
    let (event, _) = enqueue_committed(&pool, &options).await;
    let running = Running::start(&pool, &postgres, options, &broker.url());
    let failing = wait_for(&pool, event, "mqtt", "attempts fail", |row| {
        row.attempts >= 2 && row.last_error.is_some()
    })
    .await;
    assert!(!failing.delivered && !failing.failed);
    let error = failing.last_error.unwrap();
    assert!(error.contains("broker"), "{error}");

    broker.restart().await;
    let row = wait_for(&pool, event, "mqtt", "the publish is delivered", |row| {
        row.delivered
    })
    .await;
    running.stop().await;
    assert!(row.attempts > failing.attempts && !row.failed);
}

#[tokio::test]
async fn a_rolled_back_transition_sends_nothing() {
    let (postgres, pool) = setup().await;
    let receiver = Receiver::start(|_| 200).await;
    let options = options(&[&receiver.url]);

    let rolled_back = new_event(&pool).await;
    {
        let mut client = pool.get().await.unwrap();
        let tx = client.transaction().await.unwrap();
        notify::enqueue(&tx, &options, rolled_back, &site(), &body(rolled_back))
            .await
            .unwrap();
        tx.rollback().await.unwrap();
    }
    // A committed one afterwards: once it is delivered, the dispatcher has
    // seen everything there was to see.
    let (committed, _) = enqueue_committed(&pool, &options).await;
    let running = Running::start(&pool, &postgres, options, &system_broker());
    wait_for(
        &pool,
        committed,
        "webhook",
        "the committed one is delivered",
        |row| row.delivered,
    )
    .await;
    wait_for(
        &pool,
        committed,
        "mqtt",
        "the committed one is published",
        |row| row.delivered,
    )
    .await;
    running.stop().await;

    assert!(notifications(&pool, rolled_back).await.is_empty());
    let received = receiver.received();
    assert_eq!(received.len(), 1, "{received:?}");
    assert_eq!(
        received[0].header("x-stoker-event-id"),
        committed.to_string()
    );
}

#[tokio::test]
async fn dispatchers_side_by_side_send_each_notification_once() {
    let (postgres, pool) = setup().await;
    let receiver = Receiver::start(|_| 200).await;
    let options = options(&[&receiver.url]);
    let mut events = Vec::new();
    for _ in 0..30 {
        events.push(enqueue_committed(&pool, &options).await.0);
    }
    let first = Running::start(&pool, &postgres, options.clone(), &system_broker());
    let second = Running::start(&pool, &postgres, options, &system_broker());
    eventually("every notification is delivered", || async {
        let client = pool.get().await.unwrap();
        let pending: i64 = client
            .query_one(
                "SELECT count(*) FROM analytics.notifications WHERE delivered_at IS NULL",
                &[],
            )
            .await
            .unwrap()
            .get(0);
        (pending == 0).then_some(())
    })
    .await;
    first.stop().await;
    second.stop().await;

    let received = receiver.received();
    let deliveries: HashSet<&str> = received
        .iter()
        .map(|request| request.header("x-stoker-delivery"))
        .collect();
    assert_eq!(received.len(), events.len(), "each sent once");
    assert_eq!(deliveries.len(), events.len());
    let client = pool.get().await.unwrap();
    let attempts: i64 = client
        .query_one("SELECT sum(attempts) FROM analytics.notifications", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(attempts, 2 * events.len() as i64);
}

#[tokio::test]
async fn enqueue_refuses_a_body_that_is_not_json() {
    let (_postgres, pool) = setup().await;
    let event = new_event(&pool).await;
    let mut client = pool.get().await.unwrap();
    let tx = client.transaction().await.unwrap();
    let error = notify::enqueue(&tx, &options(&[]), event, &site(), "fired!")
        .await
        .unwrap_err();
    assert!(matches!(error, notify::Error::InvalidBody(_)), "{error}");
}

#[tokio::test]
async fn the_dispatcher_waits_out_an_unreachable_postgres_and_stops_on_shutdown() {
    let unreachable = PostgresOptions::from_url(format!(
        "postgres://postgres@127.0.0.1:{}/stoker",
        closed_port()
    ));
    let pool = stoker_postgres::connect(&unreachable).unwrap();
    let dispatcher = Dispatcher::new(pool, &unreachable, options(&[]), &system_broker()).unwrap();
    let shutdown = CancellationToken::new();
    let task = tokio::spawn(dispatcher.run(shutdown.clone()));
    // Let it fail a few times first.
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(!task.is_finished(), "an outage does not end the dispatcher");
    shutdown.cancel();
    tokio::time::timeout(PATIENCE, task)
        .await
        .expect("the dispatcher stops on shutdown")
        .unwrap();
}

#[tokio::test]
async fn settings_are_checked_before_anything_starts() {
    let pool = stoker_postgres::connect(&PostgresOptions::default()).unwrap();
    let postgres = PostgresOptions::default();
    let without_secret = NotifyOptions {
        webhook_secret: None,
        ..options(&["https://hooks.example.com/stoker"])
    };
    let error = Dispatcher::new(pool.clone(), &postgres, without_secret, &system_broker())
        .unwrap_err()
        .to_string();
    assert!(error.contains("ALERT_WEBHOOK_SECRET"), "{error}");
    let error = Dispatcher::new(pool, &postgres, options(&[]), "http://127.0.0.1:1883")
        .unwrap_err()
        .to_string();
    assert!(error.contains("MQTT_URL"), "{error}");
}
