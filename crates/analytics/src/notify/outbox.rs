//! The outbox table, `analytics.notifications`: every statement on it.

use std::time::Duration;

use stoker_domain::SiteSlug;
use stoker_postgres::Pool;

use super::{Error, NotifyOptions, Result, email, flood, render};

/// The Postgres channel that [`enqueue`] notifies (at commit) so that
/// dispatchers wake at once instead of at their next poll.
pub(super) const CHANNEL: &str = "stoker_analytics_notifications";

/// Writes the notifications of one alert event in the caller's
/// transaction, each with exactly `body` (JSON text), to be sent and
/// signed as is: an `mqtt` row for the topic `{prefix}alerts/{site}`, a
/// `webhook` row per configured URL, and an `email` row (the message
/// rendered from `body`) to the recipients of the alert's severity. An
/// `escalated` event goes to the escalation targets instead: the topic
/// `{prefix}alerts/{site}/escalations`, the webhooks and `ALERT_ESCALATE_TO`.
///
/// They commit or roll back with the transition itself, so a transition is
/// never announced without being recorded, nor recorded without being
/// announced. The dispatchers are woken when the transaction commits.
/// While the site is in an alarm flood ([`super::flood`]) the rows of
/// every event but escalations are held for the flood's digest instead.
pub async fn enqueue(
    tx: &tokio_postgres::Transaction<'_>,
    options: &NotifyOptions,
    event_id: i64,
    site: &SiteSlug,
    body: &str,
) -> Result<()> {
    let json: serde_json::Value =
        serde_json::from_str(body).map_err(|error| Error::InvalidBody(error.to_string()))?;
    let notice = render::Notice::of(&json);
    let escalation = notice.transition() == Some(ESCALATED);
    let topic = if escalation {
        options.escalation_topic(site)
    } else {
        options.topic(site)
    };
    let mut destinations = vec![Destination::new("mqtt", topic, body.to_owned())];
    for url in &options.webhooks {
        destinations.push(Destination::new(
            "webhook",
            url.to_string(),
            body.to_owned(),
        ));
    }
    if options.email.enabled() {
        let recipients = if escalation {
            &options.email.escalate_to[..]
        } else {
            options
                .email
                .recipients(notice.severity().unwrap_or_default())
        };
        if !recipients.is_empty() {
            let recipients: Vec<String> = recipients.iter().map(ToString::to_string).collect();
            destinations.push(Destination::email(
                &recipients,
                &render::notice_email(&json),
            )?);
        }
    }
    let held_by = if escalation {
        None
    } else {
        let alarm = notice.transition() == Some("fired");
        flood::hold(tx, &options.flood, event_id, site, alarm).await?
    };
    insert(tx, Source::Event(event_id), held_by, &destinations).await
}

/// The transition of an escalation event.
pub(crate) const ESCALATED: &str = "escalated";

/// What a notification announces.
#[derive(Debug, Clone, Copy)]
pub(super) enum Source {
    /// An alert event (`analytics.alert_events`).
    Event(i64),
    /// A flood digest (`analytics.digests`).
    Digest(i64),
}

/// One row to write: channel, target, body.
#[derive(Debug, Clone)]
pub(super) struct Destination {
    channel: &'static str,
    target: String,
    body: String,
}

impl Destination {
    pub(super) fn new(channel: &'static str, target: String, body: String) -> Self {
        Self {
            channel,
            target,
            body,
        }
    }

    /// An e-mail to `recipients`: the rendered message is the body.
    pub(super) fn email(recipients: &[String], message: &email::Rendered) -> Result<Self> {
        let body = serde_json::to_string(message)
            .map_err(|error| Error::InvalidBody(error.to_string()))?;
        Ok(Self::new("email", recipients.join(","), body))
    }
}

/// Writes `destinations` of one source; `held_by`: the flood holding them
/// (not sent until digested). Wakes the dispatchers at commit when
/// anything is to be sent.
pub(super) async fn insert(
    tx: &tokio_postgres::Transaction<'_>,
    source: Source,
    held_by: Option<i64>,
    destinations: &[Destination],
) -> Result<()> {
    let (event_id, digest_id) = match source {
        Source::Event(id) => (Some(id), None),
        Source::Digest(id) => (None, Some(id)),
    };
    let channels: Vec<&str> = destinations.iter().map(|row| row.channel).collect();
    let targets: Vec<&str> = destinations.iter().map(|row| row.target.as_str()).collect();
    let bodies: Vec<&str> = destinations.iter().map(|row| row.body.as_str()).collect();
    // pg_notify inside the transaction is delivered at commit, and not at
    // all on rollback.
    tx.execute(
        "WITH inserted AS (
             INSERT INTO analytics.notifications
                 (event_id, digest_id, channel, target, body, held_by)
             SELECT $1, $2, channel, target, body, $6
             FROM UNNEST($3::text[], $4::text[], $5::text[]) AS destination (channel, target, body)
             RETURNING id)
         SELECT pg_notify($7, count(*)::text) FROM inserted HAVING $6::bigint IS NULL",
        &[
            &event_id, &digest_id, &channels, &targets, &bodies, &held_by, &CHANNEL,
        ],
    )
    .await?;
    Ok(())
}

/// A notification claimed for one attempt.
#[derive(Debug, Clone)]
pub(super) struct Claimed {
    pub id: i64,
    /// The alert event it announces (none for a digest).
    pub event_id: Option<i64>,
    /// The flood digest it carries (none for an event).
    pub digest_id: Option<i64>,
    /// `mqtt`, `webhook` or `email`.
    pub channel: String,
    /// The topic, the URL, or the e-mail's recipients.
    pub target: String,
    pub body: String,
    /// Attempts so far, this one included.
    pub attempts: i32,
}

/// Claims up to `limit` due notifications, oldest due first, for one
/// attempt each: counts the attempt and pushes `next_attempt_at` past
/// `lease`, so that neither this nor another dispatcher takes them again
/// while the attempt runs. Should the process die meanwhile, they come due
/// again when the lease ends. `SKIP LOCKED` lets dispatchers claim side by
/// side without waiting for each other.
pub(super) async fn claim(pool: &Pool, limit: usize, lease: Duration) -> Result<Vec<Claimed>> {
    let client = pool.get().await?;
    let statement = client
        .prepare_cached(
            "UPDATE analytics.notifications AS n
             SET attempts = n.attempts + 1,
                 next_attempt_at = now() + $2::float8 * interval '1 second'
             FROM (SELECT id FROM analytics.notifications
                   WHERE delivered_at IS NULL AND failed_at IS NULL AND held_by IS NULL
                     AND next_attempt_at <= now()
                   ORDER BY next_attempt_at, id
                   LIMIT $1
                   FOR UPDATE SKIP LOCKED) AS due
             WHERE n.id = due.id
             RETURNING n.id, n.event_id, n.digest_id, n.channel, n.target, n.body, n.attempts",
        )
        .await?;
    let limit = i64::try_from(limit).unwrap_or(i64::MAX);
    let rows = client
        .query(&statement, &[&limit, &lease.as_secs_f64()])
        .await?;
    let mut claimed: Vec<Claimed> = rows
        .iter()
        .map(|row| Claimed {
            id: row.get(0),
            event_id: row.get(1),
            digest_id: row.get(2),
            channel: row.get(3),
            target: row.get(4),
            body: row.get(5),
            attempts: row.get(6),
        })
        .collect();
    claimed.sort_by_key(|notification| notification.id);
    Ok(claimed)
}

/// How long until the next pending notification comes due (zero if one
/// is due now), or `None` when none is pending.
pub(super) async fn next_due(pool: &Pool) -> Result<Option<Duration>> {
    let client = pool.get().await?;
    let statement = client
        .prepare_cached(
            "SELECT EXTRACT(EPOCH FROM min(next_attempt_at) - now())::float8
             FROM analytics.notifications
             WHERE delivered_at IS NULL AND failed_at IS NULL AND held_by IS NULL",
        )
        .await?;
    let seconds: Option<f64> = client.query_one(&statement, &[]).await?.get(0);
    Ok(seconds
        .map(|seconds| Duration::try_from_secs_f64(seconds.max(0.0)).unwrap_or(Duration::MAX)))
}

/// What became of one attempt.
#[derive(Debug, Clone, PartialEq)]
pub(super) enum Verdict {
    /// The destination accepted it.
    Delivered,
    /// It failed; try again after the delay.
    Retry { error: String, after: Duration },
    /// It failed and was the last attempt: give it up.
    Failed { error: String },
}

/// Records an attempt's outcome. Returns `false` when the row had moved on
/// meanwhile (its lease ran out and another attempt took it), in which case
/// nothing is changed.
pub(super) async fn record(pool: &Pool, claimed: &Claimed, verdict: &Verdict) -> Result<bool> {
    let client = pool.get().await?;
    let (delivered, failed, error, after) = match verdict {
        Verdict::Delivered => (true, false, None, 0.0),
        Verdict::Retry { error, after } => {
            (false, false, Some(error.as_str()), after.as_secs_f64())
        }
        Verdict::Failed { error } => (false, true, Some(error.as_str()), 0.0),
    };
    let statement = client
        .prepare_cached(
            "UPDATE analytics.notifications SET
                 delivered_at = CASE WHEN $3 THEN now() END,
                 failed_at = CASE WHEN $4 THEN now() END,
                 last_error = COALESCE($5, last_error),
                 next_attempt_at = CASE WHEN $3 OR $4 THEN next_attempt_at
                                        ELSE now() + $6::float8 * interval '1 second' END
             WHERE id = $1 AND attempts = $2 AND delivered_at IS NULL AND failed_at IS NULL",
        )
        .await?;
    let updated = client
        .execute(
            &statement,
            &[
                &claimed.id,
                &claimed.attempts,
                &delivered,
                &failed,
                &error,
                &after,
            ],
        )
        .await?;
    Ok(updated == 1)
}
