//! The outbox table, `analytics.notifications`: every statement on it.

use std::time::Duration;

use stoker_domain::SiteSlug;
use stoker_postgres::Pool;

use super::{Error, NotifyOptions, Result};

/// The Postgres channel that [`enqueue`] notifies (at commit) so that
/// dispatchers wake at once instead of at their next poll.
pub(super) const CHANNEL: &str = "stoker_analytics_notifications";

/// Writes the notifications of one alert event in the caller's
/// transaction: one `mqtt` row for the topic `{prefix}alerts/{site}` and
/// one `webhook` row per configured URL, each with exactly `body` (JSON
/// text), to be sent and signed as is.
///
/// They commit or roll back with the transition itself, so a transition is
/// never announced without being recorded, nor recorded without being
/// announced. The dispatchers are woken when the transaction commits.
pub async fn enqueue(
    tx: &tokio_postgres::Transaction<'_>,
    options: &NotifyOptions,
    event_id: i64,
    site: &SiteSlug,
    body: &str,
) -> Result<()> {
    serde_json::from_str::<serde::de::IgnoredAny>(body)
        .map_err(|error| Error::InvalidBody(error.to_string()))?;
    let mut channels = vec!["mqtt"];
    let mut targets = vec![options.topic(site)];
    for url in &options.webhooks {
        channels.push("webhook");
        targets.push(url.to_string());
    }
    // pg_notify inside the transaction is delivered at commit, and not at
    // all on rollback.
    tx.execute(
        "WITH inserted AS (
             INSERT INTO analytics.notifications (event_id, channel, target, body)
             SELECT $1, channel, target, $4
             FROM UNNEST($2::text[], $3::text[]) AS destination (channel, target)
             RETURNING id)
         SELECT pg_notify($5, count(*)::text) FROM inserted",
        &[&event_id, &channels, &targets, &body, &CHANNEL],
    )
    .await?;
    Ok(())
}

/// A notification claimed for one attempt.
#[derive(Debug, Clone)]
pub(super) struct Claimed {
    pub id: i64,
    pub event_id: i64,
    /// `mqtt` or `webhook`.
    pub channel: String,
    /// The topic or the URL.
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
                   WHERE delivered_at IS NULL AND failed_at IS NULL AND next_attempt_at <= now()
                   ORDER BY next_attempt_at, id
                   LIMIT $1
                   FOR UPDATE SKIP LOCKED) AS due
             WHERE n.id = due.id
             RETURNING n.id, n.event_id, n.channel, n.target, n.body, n.attempts",
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
            channel: row.get(2),
            target: row.get(3),
            body: row.get(4),
            attempts: row.get(5),
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
             WHERE delivered_at IS NULL AND failed_at IS NULL",
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
