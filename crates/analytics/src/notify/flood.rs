//! Alarm floods (ISA-18.2): more than `ALERT_FLOOD_COUNT` alarms (alerts
//! opened) within `ALERT_FLOOD_WINDOW` at one site. While a site is in
//! flood its per-alarm notifications are held (`held_by`, never sent one
//! by one) and one digest per `ALERT_DIGEST_EVERY` lists them instead
//! (MQTT `{prefix}alerts/{site}/digest`, the webhooks, e-mail); each held
//! row is then marked with the digest that carried it (`digested_in`),
//! never deleted. `analytics.floods` records each flood's start and end.
//!
//! The flood starts in the transaction of the alarm that makes the count
//! pass the limit ([`hold`]), so no alarm past it goes out alone; the
//! evaluation loop's leader sends the digests and ends the flood once the
//! count in the window is back at the limit ([`tend`]), with a last digest
//! of what was still held.

use std::time::Duration;

use chrono::{DateTime, Utc};
use serde_json::{Value, json};
use stoker_domain::{SiteSlug, parse_duration};
use stoker_postgres::Pool;

use super::outbox::{Destination, insert};
use super::{NotifyOptions, Result, render};

/// Notices listed in full in one digest; the rest are counted.
const MAX_LISTED: usize = 200;

/// When a site is in flood and how often its digests go out.
#[derive(Debug, Clone, clap::Args)]
pub struct FloodOptions {
    /// A site is in an alarm flood when more than this many alarms (alerts opened) fall within ALERT_FLOOD_WINDOW (ISA-18.2's figure: 10 in 10 minutes); its notifications are then gathered into digests. 0 turns flood handling off.
    #[arg(
        id = "flood_count",
        long = "alert-flood-count",
        env = "ALERT_FLOOD_COUNT",
        value_name = "N",
        default_value_t = 10
    )]
    pub count: u32,

    /// The window alarms are counted over for a flood.
    #[arg(
        id = "flood_window",
        long = "alert-flood-window",
        env = "ALERT_FLOOD_WINDOW",
        value_name = "DURATION",
        default_value = "10m",
        value_parser = parse_period
    )]
    pub window: Duration,

    /// During a flood, one digest of the held notifications per this period (MQTT {prefix}alerts/{site}/digest, the webhooks, e-mail).
    #[arg(
        id = "flood_digest_every",
        long = "alert-digest-every",
        env = "ALERT_DIGEST_EVERY",
        value_name = "DURATION",
        default_value = "2m",
        value_parser = parse_period
    )]
    pub digest_every: Duration,
}

impl Default for FloodOptions {
    fn default() -> Self {
        Self {
            count: 10,
            window: Duration::from_secs(600),
            digest_every: Duration::from_secs(120),
        }
    }
}

impl FloodOptions {
    fn window_ms(&self) -> f64 {
        self.window.as_secs_f64() * 1000.0
    }
}

fn parse_period(text: &str) -> Result<Duration, String> {
    let duration = parse_duration(text).map_err(|error| error.to_string())?;
    if duration < Duration::from_secs(1) {
        return Err("it must be at least 1s".into());
    }
    Ok(duration)
}

/// Whether the notifications of event `event_id` at `site` are held, and
/// by which flood. `alarm`: the event opened an alert, which counts
/// towards a flood and may start one.
pub(super) async fn hold(
    tx: &tokio_postgres::Transaction<'_>,
    options: &FloodOptions,
    event_id: i64,
    site: &SiteSlug,
    alarm: bool,
) -> Result<Option<i64>> {
    if options.count == 0 {
        return Ok(None);
    }
    if alarm {
        // The alarms opened at the site within the window before this
        // event (which the count includes): past the limit, the site is
        // in flood from this event on.
        tx.execute(
            "WITH this AS (SELECT at FROM analytics.alert_events WHERE id = $1),
                  recent AS (
                      SELECT count(*) AS alarms FROM analytics.alerts, this
                      WHERE site = $2
                        AND opened_at > this.at - $3::float8 * interval '1 millisecond'
                        AND opened_at <= this.at)
             INSERT INTO analytics.floods (site, started_at)
             SELECT $2, this.at FROM this, recent WHERE recent.alarms > $4
             ON CONFLICT (site) WHERE ended_at IS NULL DO NOTHING",
            &[
                &event_id,
                &site.as_str(),
                &options.window_ms(),
                &i64::from(options.count),
            ],
        )
        .await?;
    }
    let row = tx
        .query_opt(
            "SELECT id FROM analytics.floods WHERE site = $1 AND ended_at IS NULL",
            &[&site.as_str()],
        )
        .await?;
    Ok(row.map(|row| row.get(0)))
}

/// What [`tend`] did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct FloodReport {
    /// Sites in flood (after this pass).
    pub flooding: usize,
    /// Digests queued.
    pub digests: usize,
    /// Floods that ended.
    pub ended: usize,
}

/// The leader's pass over the floods at `now`: each open flood whose
/// digest is due (`ALERT_DIGEST_EVERY` after its start or its last digest)
/// gets one, listing the notifications held since; a flood whose window
/// holds no more than `ALERT_FLOOD_COUNT` alarms any longer ends, with a
/// last digest of what it still held.
pub async fn tend(pool: &Pool, options: &NotifyOptions, now: DateTime<Utc>) -> Result<FloodReport> {
    let flood = &options.flood;
    let client = pool.get().await?;
    let rows = client
        .query(
            "SELECT f.id, f.site, f.started_at,
                    coalesce((SELECT max(d.at) FROM analytics.digests d WHERE d.flood_id = f.id),
                             f.started_at) AS last_digest,
                    (SELECT count(*) FROM analytics.alerts a
                     WHERE a.site = f.site
                       AND a.opened_at > $1::timestamptz - $2::float8 * interval '1 millisecond'
                       AND a.opened_at <= $1::timestamptz) AS alarms
             FROM analytics.floods f
             WHERE f.ended_at IS NULL
             ORDER BY f.id",
            &[&now, &flood.window_ms()],
        )
        .await?;
    drop(client);
    let mut report = FloodReport::default();
    for row in rows {
        let (id, site, started_at, last_digest, alarms): (
            i64,
            String,
            DateTime<Utc>,
            DateTime<Utc>,
            i64,
        ) = (row.get(0), row.get(1), row.get(2), row.get(3), row.get(4));
        let ending = flood.count == 0 || alarms <= i64::from(flood.count);
        let due = last_digest
            + chrono::Duration::from_std(flood.digest_every).unwrap_or(chrono::Duration::MAX)
            <= now;
        if ending || due {
            let Ok(site) = SiteSlug::parse(&site) else {
                continue;
            };
            if digest(pool, options, id, &site, started_at, now, ending).await? {
                report.digests += 1;
            }
        }
        if ending {
            report.ended += 1;
            tracing::info!(flood = id, %site, alarms, "alarm flood over: notifications are sent one by one again");
        } else {
            report.flooding += 1;
        }
    }
    Ok(report)
}

/// In one transaction: takes what flood `id` holds and has not digested,
/// queues one digest of it (if anything), marks the held rows with it, and
/// ends the flood when `ending`. Returns whether a digest was queued.
async fn digest(
    pool: &Pool,
    options: &NotifyOptions,
    id: i64,
    site: &SiteSlug,
    started_at: DateTime<Utc>,
    now: DateTime<Utc>,
    ending: bool,
) -> Result<bool> {
    let mut client = pool.get().await?;
    let tx = client.transaction().await?;
    let open = tx
        .query_opt(
            "SELECT 1 FROM analytics.floods WHERE id = $1 AND ended_at IS NULL FOR UPDATE",
            &[&id],
        )
        .await?;
    if open.is_none() {
        // Another leader's pass took it meanwhile.
        return Ok(false);
    }
    let held = tx
        .query(
            "SELECT id, event_id, channel, body FROM analytics.notifications
             WHERE held_by = $1 AND digested_in IS NULL
             ORDER BY id
             FOR UPDATE",
            &[&id],
        )
        .await?;
    let mut queued = false;
    if !held.is_empty() {
        let ids: Vec<i64> = held.iter().map(|row| row.get(0)).collect();
        // One notice per event: the body of its non-e-mail row (MQTT's is
        // always there), which is the notice itself.
        let mut events: Vec<(i64, Value)> = Vec::new();
        for row in &held {
            let (event, channel, body): (Option<i64>, String, String) =
                (row.get(1), row.get(2), row.get(3));
            let Some(event) = event else { continue };
            if channel == "email" || events.iter().any(|(seen, _)| *seen == event) {
                continue;
            }
            let notice = serde_json::from_str(&body).unwrap_or(Value::Null);
            events.push((event, notice));
        }
        let notices: Vec<Value> = events.into_iter().map(|(_, notice)| notice).collect();
        let alarms = notices
            .iter()
            .filter(|notice| render::Notice::of(notice).transition() == Some("fired"))
            .count();
        let listed = &notices[..notices.len().min(MAX_LISTED)];
        let unlisted = notices.len() - listed.len();
        let digest_id: i64 = tx
            .query_one(
                "INSERT INTO analytics.digests (flood_id, site, at, notices, alarms)
                 VALUES ($1, $2, $3, $4, $5) RETURNING id",
                &[
                    &id,
                    &site.as_str(),
                    &now,
                    &i32::try_from(notices.len()).unwrap_or(i32::MAX),
                    &i32::try_from(alarms).unwrap_or(i32::MAX),
                ],
            )
            .await?
            .get(0);
        tx.execute(
            "UPDATE analytics.notifications SET digested_in = $1 WHERE id = ANY($2)",
            &[&digest_id, &ids],
        )
        .await?;
        let body = json!({
            "digest": {
                "id": digest_id,
                "site": site.as_str(),
                "flood_started_at": started_at,
                "flood_over": ending,
                "at": now,
                "notices": notices.len(),
                "alarms": alarms,
            },
            "notices": listed,
            "unlisted": unlisted,
        })
        .to_string();
        let mut destinations = vec![Destination::new(
            "mqtt",
            options.digest_topic(site),
            body.clone(),
        )];
        for url in &options.webhooks {
            destinations.push(Destination::new("webhook", url.to_string(), body.clone()));
        }
        if options.email.enabled() {
            let mut recipients: Vec<String> = Vec::new();
            for notice in &notices {
                let severity = render::Notice::of(notice).severity().unwrap_or_default();
                for address in options.email.recipients(severity) {
                    let address = address.to_string();
                    if !recipients.contains(&address) {
                        recipients.push(address);
                    }
                }
            }
            if !recipients.is_empty() {
                let email = render::digest_email(
                    site.as_str(),
                    &started_at.to_rfc3339(),
                    ending,
                    listed,
                    unlisted,
                );
                destinations.push(Destination::email(&recipients, &email)?);
            }
        }
        insert(
            &tx,
            super::outbox::Source::Digest(digest_id),
            None,
            &destinations,
        )
        .await?;
        tracing::info!(flood = id, digest = digest_id, %site, notices = notices.len(), alarms, "alarm flood digest queued");
        queued = true;
    }
    if ending {
        tx.execute(
            "UPDATE analytics.floods SET ended_at = greatest($2, started_at) WHERE id = $1",
            &[&id, &now],
        )
        .await?;
    }
    tx.commit().await?;
    Ok(queued)
}
