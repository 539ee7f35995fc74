//! The notification outbox: every alert transition is announced on MQTT
//! and POSTed to the configured webhooks, with retries, a bound, and a
//! record of what became of each.
//!
//! # How it works
//! The code that records a transition calls [`enqueue`] in the same
//! transaction: one row of `analytics.notifications` per destination (the
//! MQTT topic, each webhook), holding the exact JSON body. The transition
//! and its notifications commit together, so no transition goes
//! unannounced and nothing is announced that did not happen.
//!
//! A [`Dispatcher`] (one per analytics process; several may share a
//! database) claims due rows, oldest first, sends them, and records each
//! attempt: `delivered_at` on success; otherwise `attempts`, `last_error`
//! (the HTTP status and the start of the answer, or the connection's
//! error) and `next_attempt_at`, after a wait that doubles per failure
//! (`ALERT_NOTIFY_BACKOFF`, up to `ALERT_NOTIFY_BACKOFF_MAX`, less a random
//! part of up to half). After `ALERT_NOTIFY_MAX_ATTEMPTS` failed attempts
//! `failed_at` is set and a warning logged. Commits wake the dispatchers at
//! once (LISTEN/NOTIFY on `stoker_analytics_notifications`); they also
//! look every few seconds. Delivery is at least once.
//!
//! # MQTT
//! Topic `{ALERT_MQTT_TOPIC_PREFIX}alerts/{site}`, QoS 1, not retained; the
//! payload is the body. A publish counts as delivered when the broker
//! acknowledges it (PUBACK); a broker that is down fails the attempt.
//!
//! # Webhooks
//! `POST` to each URL of `ALERT_WEBHOOKS`, the body as is, with headers
//! - `Content-Type: application/json`
//! - `X-Stoker-Event-Id`: the alert event (`analytics.alert_events.id`)
//! - `X-Stoker-Delivery`: the notification (`analytics.notifications.id`),
//!   the same on every attempt: receivers drop repeats by it
//! - `X-Stoker-Timestamp`: the attempt's time, unix seconds
//! - `X-Stoker-Signature`: `sha256=` and the lowercase hex
//!   HMAC-SHA256, keyed with `ALERT_WEBHOOK_SECRET`, of
//!   `{X-Stoker-Timestamp}.{body}` ([`signature`])
//!
//! A 2xx answer within `ALERT_NOTIFY_TIMEOUT` is a delivery; anything else
//! (another status, a redirect, a timeout, no connection) a failed attempt.
//! A receiver recomputes the signature over the raw body, compares it in
//! constant time, and refuses timestamps more than a few minutes from its
//! clock, so that a captured request cannot be replayed later.
//!
//! # E-mail
//! With `ALERT_SMTP_URL` and `ALERT_EMAIL_FROM`, each event is also
//! e-mailed to `ALERT_EMAIL_TO` (or, for a severity,
//! `ALERT_EMAIL_TO_{INFO,WARNING,CRITICAL}`): one `email` row per event,
//! its recipients as the target and the rendered message (subject: severity,
//! site, sensor, rule and state; text: message, value, threshold, the
//! explanation and the rule's rationalization when the notice carries
//! them) as the body, sent through lettre (plain, STARTTLS, or TLS from the
//! start), retried like the other channels.
//!
//! # Escalations and floods
//! An `escalated` event (an alert left unacknowledged for its rule's
//! `escalate_after`) goes to `{prefix}alerts/{site}/escalations`, the
//! webhooks and `ALERT_ESCALATE_TO` rather than to `alerts/{site}` and
//! `ALERT_EMAIL_TO`. While a site is in an alarm flood ([`FloodOptions`])
//! its other events' rows are held and go out as digests ([`tend_floods`]).
//!
//! ```no_run
//! # async fn example(pool: stoker_postgres::Pool, postgres: stoker_postgres::PostgresOptions) -> Result<(), Box<dyn std::error::Error>> {
//! use stoker_analytics::notify::{self, Dispatcher, NotifyOptions};
//! let options = NotifyOptions::default();
//! // Where a transition is recorded:
//! let mut client = pool.get().await?;
//! let tx = client.transaction().await?;
//! let event_id: i64 = 42; // the transition's analytics.alert_events row
//! let site = stoker_domain::SiteSlug::parse("boiler-house-1")?;
//! notify::enqueue(&tx, &options, event_id, &site, r#"{"transition":"fired"}"#).await?;
//! tx.commit().await?;
//! // Once per process:
//! let shutdown = tokio_util::sync::CancellationToken::new();
//! Dispatcher::new(pool.clone(), &postgres, options, "mqtt://127.0.0.1:1883")?
//!     .run(shutdown)
//!     .await;
//! # Ok(()) }
//! ```

mod dispatcher;
mod email;
mod flood;
mod mqtt;
mod options;
mod outbox;
mod render;
mod signature;
mod webhook;

pub use dispatcher::Dispatcher;
pub use email::{EmailOptions, SmtpSecurity, SmtpUrl, check_smtp};
pub use flood::{FloodOptions, FloodReport, tend as tend_floods};
pub use options::NotifyOptions;
pub(crate) use outbox::ESCALATED;
pub use outbox::enqueue;
pub use signature::signature;

/// What can go wrong with notifications (outside a delivery attempt,
/// whose failures are recorded in the outbox, not returned).
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A setting is invalid; `variable` names it.
    #[error("{variable} is invalid: {reason}")]
    Config {
        /// The environment variable to fix.
        variable: &'static str,
        /// What is wrong.
        reason: String,
    },
    /// The body handed to [`enqueue`] is not JSON.
    #[error("the notification body is not JSON: {0}")]
    InvalidBody(String),
    /// Postgres is unavailable, its settings are invalid, or a query on
    /// the outbox failed.
    #[error(transparent)]
    Postgres(#[from] stoker_postgres::Error),
    /// The webhook HTTP client could not be built (its TLS setup failed).
    #[error("cannot build the webhook HTTP client: {0}")]
    HttpClient(#[source] reqwest::Error),
}

/// Result with this module's [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

stoker_postgres::wraps_postgres_errors!(Error);
