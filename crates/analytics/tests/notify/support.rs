//! The outbox and dispatcher on a test's own database, and the webhook
//! receivers and MQTT subscribers tests check them with.

use std::collections::HashMap;
use std::future::Future;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use stoker_analytics::notify::{self, Dispatcher, NotifyOptions};
use stoker_domain::{Secret, SiteSlug};
use stoker_postgres::Pool;
use stoker_testkit::{SYSTEM_BROKER_PORT, TestPostgres};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;
use tokio::task::JoinHandle;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

pub(crate) const SECRET: &str = "correct horse battery staple";

/// Longest wait for anything a test waits for.
pub(crate) const PATIENCE: Duration = Duration::from_secs(30);

pub(crate) async fn setup() -> (TestPostgres, Pool) {
    let postgres = TestPostgres::create().await;
    let pool = postgres.migrated_pool().await;
    stoker_analytics::migrate(&pool).await.unwrap();
    (postgres, pool)
}

pub(crate) fn site() -> SiteSlug {
    SiteSlug::parse("boiler-house-1").unwrap()
}

pub(crate) fn system_broker() -> String {
    format!("mqtt://127.0.0.1:{SYSTEM_BROKER_PORT}")
}

/// Settings with a topic prefix of the test's own and retries quick enough
/// for a test.
pub(crate) fn options(webhooks: &[&str]) -> NotifyOptions {
    NotifyOptions {
        webhooks: webhooks.iter().map(|url| url.parse().unwrap()).collect(),
        webhook_secret: Some(Secret::new(SECRET)),
        max_attempts: 5,
        backoff: Duration::from_millis(50),
        backoff_max: Duration::from_millis(200),
        timeout: Duration::from_secs(5),
        topic_prefix: stoker_testkit::unique_topic_prefix(),
        ..NotifyOptions::default()
    }
}

/// An alert with one `fired` event; returns the event's id.
pub(crate) async fn new_event(pool: &Pool) -> i64 {
    let client = pool.get().await.unwrap();
    let alert = uuid::Uuid::new_v4();
    client
        .execute(
            "INSERT INTO analytics.alerts
                 (id, rule_id, rule_name, kind, severity, site, sensor, state, opened_at, value,
                  threshold, message)
             VALUES ($1, $2, 'Steam pressure high', 'threshold', 'critical', 'boiler-house-1',
                     'b1_steam_pressure', 'unacknowledged', now(), 13.2, 12.5,
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

pub(crate) fn body(event: i64) -> String {
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
pub(crate) async fn enqueue_committed(pool: &Pool, options: &NotifyOptions) -> (i64, String) {
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
pub(crate) struct Notification {
    pub(crate) id: i64,
    pub(crate) channel: String,
    pub(crate) target: String,
    pub(crate) body: String,
    pub(crate) attempts: i32,
    pub(crate) delivered: bool,
    pub(crate) failed: bool,
    pub(crate) last_error: Option<String>,
}

pub(crate) async fn notifications(pool: &Pool, event: i64) -> Vec<Notification> {
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
pub(crate) async fn wait_for(
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
pub(crate) async fn settle_webhook(
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
pub(crate) async fn eventually<T, F, Fut>(what: &str, mut probe: F) -> T
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
pub(crate) struct Running {
    pub(crate) shutdown: CancellationToken,
    pub(crate) task: JoinHandle<()>,
}

impl Running {
    pub(crate) fn start(
        pool: &Pool,
        postgres: &TestPostgres,
        options: NotifyOptions,
        mqtt_url: &str,
    ) -> Self {
        let dispatcher =
            Dispatcher::new(pool.clone(), &postgres.options(), options, mqtt_url).unwrap();
        Self::spawn(dispatcher)
    }

    /// Runs `dispatcher` in the background.
    pub(crate) fn spawn(dispatcher: Dispatcher) -> Self {
        let shutdown = CancellationToken::new();
        let task = tokio::spawn(dispatcher.run(shutdown.clone()));
        Self { shutdown, task }
    }

    /// Shuts the dispatcher down and waits until it has stopped.
    pub(crate) async fn stop(self) {
        self.shutdown.cancel();
        tokio::time::timeout(PATIENCE, self.task)
            .await
            .expect("the dispatcher stops on shutdown")
            .unwrap();
    }
}

/// One request a webhook receiver got.
#[derive(Debug, Clone)]
pub(crate) struct Received {
    pub(crate) method: String,
    pub(crate) headers: HashMap<String, String>,
    pub(crate) body: String,
    pub(crate) at: Instant,
}

impl Received {
    pub(crate) fn header(&self, name: &str) -> &str {
        self.headers
            .get(name)
            .map(String::as_str)
            .unwrap_or_else(|| panic!("no {name} header in {self:?}"))
    }

    /// Whether the signature verifies with the test's secret.
    pub(crate) fn is_signed(&self) -> bool {
        let timestamp: i64 = self.header("x-stoker-timestamp").parse().unwrap();
        self.header("x-stoker-signature")
            == notify::signature(SECRET.as_bytes(), timestamp, &self.body)
    }
}

/// A webhook receiver: a plain HTTP/1.1 server on a free port that records
/// every request and answers the n-th (from 0) with `status(n)`.
pub(crate) struct Receiver {
    pub(crate) url: String,
    pub(crate) received: Arc<Mutex<Vec<Received>>>,
    pub(crate) task: JoinHandle<()>,
}

impl Receiver {
    pub(crate) async fn start(status: impl Fn(usize) -> u16 + Send + Sync + 'static) -> Self {
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

    /// The same over HTTPS with `acceptor`'s certificate (valid for
    /// localhost): `https://localhost:{port}/…`.
    pub(crate) async fn start_tls(
        status: impl Fn(usize) -> u16 + Send + Sync + 'static,
        acceptor: stoker_tls::TlsAcceptor,
    ) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let url = format!("https://localhost:{port}/hooks/stoker?token=t0k3n");
        let received = Arc::new(Mutex::new(Vec::new()));
        let status = Arc::new(status);
        let task = tokio::spawn({
            let received = Arc::clone(&received);
            async move {
                while let Ok((stream, _)) = listener.accept().await {
                    let (acceptor, received, status) =
                        (acceptor.clone(), Arc::clone(&received), Arc::clone(&status));
                    tokio::spawn(async move {
                        if let Ok(stream) = acceptor.accept(stream).await {
                            answer(stream, received, status).await;
                        }
                    });
                }
            }
        });
        Self {
            url,
            received,
            task,
        }
    }

    pub(crate) fn received(&self) -> Vec<Received> {
        self.received.lock().unwrap().clone()
    }
}

impl Drop for Receiver {
    fn drop(&mut self) {
        self.task.abort();
    }
}

pub(crate) async fn answer(
    mut stream: impl tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin,
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
pub(crate) fn closed_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}
