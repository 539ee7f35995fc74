//! The dispatcher: claims due notifications, sends them, records each
//! attempt's outcome.

use std::sync::Arc;
use std::time::Duration;

use rand::Rng;
use stoker_postgres::{Listener, Lost, Pool, PostgresOptions};
use tokio::sync::Notify;
use tokio::task::JoinSet;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use super::email::Mailer;
use super::mqtt::{self, MAX_IN_FLIGHT, Publisher};
use super::options::redact_webhook;
use super::outbox::{self, CHANNEL, Claimed, Verdict};
use super::webhook::{self, one_line};
use super::{Error, NotifyOptions, Result};

/// Longest wait between two looks at the outbox when nothing wakes the
/// dispatcher sooner (a missed wake-up, or a lost LISTEN connection).
const POLL_INTERVAL: Duration = Duration::from_secs(5);

/// Shortest wait after a look that found nothing to claim although
/// something is due: other dispatchers hold those rows for a moment.
const MIN_IDLE: Duration = Duration::from_millis(50);

/// How long a claimed notification stays reserved beyond the attempt's
/// own timeout, before another attempt may take it.
const LEASE_MARGIN: Duration = Duration::from_secs(60);

/// The first wait after Postgres failed, doubled after every failure.
const FIRST_POSTGRES_DELAY: Duration = Duration::from_millis(500);
/// The longest wait after Postgres failed.
const MAX_POSTGRES_DELAY: Duration = Duration::from_secs(30);

/// Characters of an attempt's error kept in `last_error`.
const ERROR_CHARS: usize = 500;

/// Sends the notifications of `analytics.notifications` until shut down.
///
/// Several dispatchers (in several processes) may run on one database:
/// each claims rows with `FOR UPDATE SKIP LOCKED` and reserves them for the
/// attempt, so no row is sent by two of them at once. Delivery is at least
/// once: an attempt whose outcome could not be recorded (the process died,
/// Postgres went away) is made again after its reservation ends, and
/// receivers recognise repeats by `X-Stoker-Delivery` (webhooks) or by the
/// event in the body.
pub struct Dispatcher {
    pool: Pool,
    listen: stoker_postgres::PgConnector,
    options: NotifyOptions,
    mqtt: mqtt::Broker,
    http: reqwest::Client,
    mailer: Option<Mailer>,
}

impl std::fmt::Debug for Dispatcher {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Dispatcher")
            .field("options", &self.options)
            .field("broker", &self.mqtt.describe())
            .field("mailer", &self.mailer)
            .finish_non_exhaustive()
    }
}

impl Dispatcher {
    /// Checks the settings and prepares the clients; connects nothing yet.
    ///
    /// `pool` reaches the database of `postgres`, which also serves the
    /// dispatcher's own LISTEN connection (a pooled connection cannot
    /// receive notifications). `mqtt_url` is the broker's,
    /// `mqtt://[user:password@]host[:port]`.
    pub fn new(
        pool: Pool,
        postgres: &PostgresOptions,
        options: NotifyOptions,
        mqtt_url: &str,
    ) -> Result<Self> {
        options.validate()?;
        let listen = postgres.connector()?;
        let client_id = format!("stoker-notify-{}", uuid::Uuid::new_v4().simple());
        let mqtt = mqtt::Broker::parse(mqtt_url, client_id)?;
        let http = webhook::client(options.timeout, None)?;
        let mailer = Mailer::new(&options.email, options.timeout)?;
        Ok(Self {
            pool,
            listen,
            options,
            mqtt,
            http,
            mailer,
        })
    }

    /// With TLS for an `mqtts://` broker (`MQTT_CA_FILE`, client
    /// certificate): the files are read now, and a TLS setting with a
    /// plain `mqtt://` URL is an error.
    pub fn with_mqtt_tls(mut self, tls: &stoker_tls::MqttTlsOptions) -> Result<Self> {
        self.mqtt = self.mqtt.with_tls(tls)?;
        Ok(self)
    }

    /// With the trusted roots of a CA file (`INFLUX_CA_FILE`) for https://
    /// webhooks, instead of the system's.
    pub fn with_webhook_ca_file(mut self, ca_file: &std::path::Path) -> Result<Self> {
        let roots = stoker_timeseries::read_ca_file(ca_file).map_err(|reason| Error::Config {
            variable: "INFLUX_CA_FILE",
            reason,
        })?;
        self.http = webhook::client(self.options.timeout, Some(roots))?;
        Ok(self)
    }

    /// Sends notifications until `shutdown`, then lets the attempts under
    /// way finish (each is bounded by the timeout) and records them.
    /// Outages of Postgres, the broker or a webhook are logged and waited
    /// out; none ends the dispatcher.
    pub async fn run(self, shutdown: CancellationToken) {
        let Self {
            pool,
            listen,
            options,
            mqtt,
            http,
            mailer,
        } = self;
        let background = CancellationToken::new();
        let wake = Arc::new(Notify::new());
        let listener = tokio::spawn(listen_for_enqueues(
            listen,
            Arc::clone(&wake),
            background.clone(),
        ));
        let (publisher, publisher_task) = Publisher::start(mqtt, background.clone());
        let lease = options.timeout + LEASE_MARGIN;
        tracing::info!(
            webhooks = options.webhooks.len(),
            email = ?mailer,
            max_attempts = options.max_attempts,
            "alert notification dispatcher started"
        );
        let sender = Arc::new(Sender {
            publisher,
            http,
            mailer,
            options,
        });
        let mut in_flight: JoinSet<(Claimed, Verdict)> = JoinSet::new();
        let mut unrecorded: Vec<(Claimed, Verdict)> = Vec::new();
        let mut postgres = Outage::default();
        let mut stopping = false;
        loop {
            if !unrecorded.is_empty() && postgres.ready() {
                match record_all(&pool, &mut unrecorded).await {
                    Ok(()) => postgres.succeeded(),
                    Err(error) => postgres.failed(&error),
                }
            }
            if stopping && in_flight.is_empty() {
                break;
            }
            let mut wake_at = Instant::now() + POLL_INTERVAL;
            let room = MAX_IN_FLIGHT - in_flight.len();
            if !stopping && room > 0 && postgres.ready() {
                match claim(&pool, room, lease).await {
                    Ok((claimed, next_due)) => {
                        postgres.succeeded();
                        for notification in claimed {
                            let sender = Arc::clone(&sender);
                            in_flight.spawn(async move {
                                let verdict = sender.attempt(&notification).await;
                                (notification, verdict)
                            });
                        }
                        if let Some(due) = next_due {
                            wake_at = wake_at.min(Instant::now() + due.max(MIN_IDLE));
                        }
                    }
                    Err(error) => postgres.failed(&error),
                }
            }
            if let Some(retry_at) = postgres.retry_at {
                wake_at = retry_at;
            }
            tokio::select! {
                () = shutdown.cancelled(), if !stopping => {
                    stopping = true;
                    if !in_flight.is_empty() {
                        tracing::info!(attempts = in_flight.len(), "stopping: waiting for the notification attempts under way");
                    }
                }
                () = wake.notified() => {}
                () = tokio::time::sleep_until(wake_at) => {}
                Some(joined) = in_flight.join_next(), if !in_flight.is_empty() => match joined {
                    Ok(done) => unrecorded.push(done),
                    // The row comes due again when its reservation ends.
                    Err(error) => tracing::error!(%error, "a notification attempt failed unexpectedly"),
                },
            }
        }
        if !unrecorded.is_empty()
            && let Err(error) = record_all(&pool, &mut unrecorded).await
        {
            tracing::warn!(%error, unrecorded = unrecorded.len(), "cannot record the last notification attempts; they will be made again");
        }
        background.cancel();
        let _ = tokio::join!(listener, publisher_task);
        tracing::info!("alert notification dispatcher stopped");
    }
}

/// What an attempt needs, shared by the attempts under way.
struct Sender {
    publisher: Publisher,
    http: reqwest::Client,
    mailer: Option<Mailer>,
    options: NotifyOptions,
}

impl Sender {
    /// Makes one attempt and judges it.
    async fn attempt(&self, notification: &Claimed) -> Verdict {
        let timeout = self.options.timeout;
        let outcome = match notification.channel.as_str() {
            "mqtt" => {
                self.publisher
                    .publish(&notification.target, &notification.body, timeout)
                    .await
            }
            "webhook" => {
                let secret = self.options.webhook_secret.as_ref();
                webhook::post(&self.http, secret, timeout, notification).await
            }
            "email" => match &self.mailer {
                Some(mailer) => mailer.send(&notification.target, &notification.body).await,
                None => Err("e-mail is not configured (ALERT_SMTP_URL, ALERT_EMAIL_FROM)".into()),
            },
            other => Err(format!("unknown channel {other:?}")),
        };
        let verdict = judge(&self.options, notification.attempts, outcome);
        log(notification, &verdict);
        verdict
    }
}

/// Turns an attempt's outcome into what to record.
fn judge(options: &NotifyOptions, attempts: i32, outcome: Result<(), String>) -> Verdict {
    match outcome {
        Ok(()) => Verdict::Delivered,
        Err(error) => {
            let error = one_line(&error, ERROR_CHARS);
            let attempts = u32::try_from(attempts).unwrap_or(0);
            if attempts >= options.max_attempts {
                Verdict::Failed { error }
            } else {
                let jitter = rand::rng().random::<f64>();
                Verdict::Retry {
                    error,
                    after: options.retry_delay(attempts, jitter),
                }
            }
        }
    }
}

fn log(notification: &Claimed, verdict: &Verdict) {
    let target = match notification.channel.as_str() {
        "webhook" => url::Url::parse(&notification.target)
            .map(|url| redact_webhook(&url))
            .unwrap_or_else(|_| "(an invalid URL)".into()),
        _ => notification.target.clone(),
    };
    let (id, event, digest, channel, attempts) = (
        notification.id,
        notification.event_id,
        notification.digest_id,
        notification.channel.as_str(),
        notification.attempts,
    );
    match verdict {
        Verdict::Delivered => {
            tracing::debug!(notification = id, event, digest, channel, %target, attempts, "alert notification delivered");
        }
        Verdict::Retry { error, after } => {
            tracing::info!(notification = id, event, digest, channel, %target, attempts, %error, retry_in = ?after, "alert notification attempt failed; it will be retried");
        }
        Verdict::Failed { error } => {
            tracing::warn!(notification = id, event, digest, channel, %target, attempts, %error, "alert notification given up after its last attempt; recorded as failed");
        }
    }
}

/// Claims due notifications and says when the next one comes due.
async fn claim(
    pool: &Pool,
    room: usize,
    lease: Duration,
) -> Result<(Vec<Claimed>, Option<Duration>)> {
    let claimed = outbox::claim(pool, room, lease).await?;
    let next_due = outbox::next_due(pool).await?;
    Ok((claimed, next_due))
}

/// Records finished attempts; those not recorded stay in `outcomes`.
async fn record_all(pool: &Pool, outcomes: &mut Vec<(Claimed, Verdict)>) -> Result<()> {
    while let Some((notification, verdict)) = outcomes.last() {
        if !outbox::record(pool, notification, verdict).await? {
            tracing::debug!(
                notification = notification.id,
                "an attempt's outcome came after the notification had moved on; not recorded"
            );
        }
        outcomes.pop();
    }
    Ok(())
}

/// Postgres's state as the dispatcher sees it: while it fails, the
/// dispatcher waits, longer each time, instead of retrying in a loop.
#[derive(Debug)]
struct Outage {
    failing: bool,
    delay: Duration,
    retry_at: Option<Instant>,
}

impl Default for Outage {
    fn default() -> Self {
        Self {
            failing: false,
            delay: FIRST_POSTGRES_DELAY,
            retry_at: None,
        }
    }
}

impl Outage {
    fn ready(&self) -> bool {
        self.retry_at.is_none_or(|at| at <= Instant::now())
    }

    fn succeeded(&mut self) {
        if self.failing {
            tracing::info!("Postgres is back: alert notifications are sent again");
        }
        *self = Self::default();
    }

    fn failed(&mut self, error: &Error) {
        if self.failing {
            tracing::debug!(%error, retry_in = ?self.delay, "Postgres is still unavailable to the notification dispatcher");
        } else {
            tracing::warn!(%error, retry_in = ?self.delay, "cannot read or update the notification outbox; notifications wait until Postgres is back");
        }
        self.failing = true;
        self.retry_at = Some(Instant::now() + self.delay);
        self.delay = (self.delay * 2).min(MAX_POSTGRES_DELAY);
    }
}

/// Keeps a LISTEN on the outbox's channel and wakes the dispatcher on every
/// notification, and after every (re)connection, since rows enqueued while
/// it was not listening were announced to nobody. Reconnects with backoff.
async fn listen_for_enqueues(
    connector: stoker_postgres::PgConnector,
    wake: Arc<Notify>,
    shutdown: CancellationToken,
) {
    let mut failing = false;
    Listener::new(connector, CHANNEL)
        .with_backoff(FIRST_POSTGRES_DELAY, MAX_POSTGRES_DELAY)
        .run(
            shutdown,
            |_notice| wake.notify_one(),
            |lost| {
                let Lost {
                    listened,
                    error,
                    retry_in,
                } = lost;
                if *listened {
                    failing = false;
                }
                if failing {
                    tracing::debug!(%error, ?retry_in, "still cannot listen for new alert notifications");
                } else {
                    tracing::warn!(%error, ?retry_in, "lost the LISTEN connection for new alert notifications; looking for them every few seconds meanwhile");
                }
                failing = true;
            },
        )
        .await;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_last_attempt_gives_up() {
        let options = NotifyOptions {
            max_attempts: 3,
            backoff: Duration::from_secs(2),
            ..NotifyOptions::default()
        };
        assert_eq!(judge(&options, 1, Ok(())), Verdict::Delivered);
        match judge(&options, 2, Err("HTTP 500\nboom".into())) {
            Verdict::Retry { error, after } => {
                assert_eq!(error, "HTTP 500 boom");
                assert!(after >= Duration::from_secs(2) && after <= Duration::from_secs(4));
            }
            other => panic!("{other:?}"),
        }
        assert_eq!(
            judge(&options, 3, Err("refused".into())),
            Verdict::Failed {
                error: "refused".into()
            }
        );
    }
}
