//! [`measure`]: the alarm KPIs of the activations recorded in
//! `analytics.alert_events` (with their alerts' rule, site and sensor),
//! read with SQL and finished by the code [`compute`](super::compute) uses.

use std::collections::HashMap;

use chrono::{DateTime, Utc};
use stoker_domain::SiteSlug;
use stoker_postgres::Pool;
use uuid::Uuid;

use super::{KpiRange, Kpis, Parts, STALE_AFTER, ack_figures, finish, pair_count, site_figures};
use crate::Result;

/// Whose alarms [`measure`] reads.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct KpiScope {
    /// One site's; none: every site (within `within`).
    pub site: Option<SiteSlug>,
    /// Only these sites' (what a key limited to sites sees); none: all.
    pub within: Option<Vec<SiteSlug>>,
}

/// The activations that began in the range, in SQL (`$1` start, `$2` end,
/// `$3` site, `$4` sites). An alert holds one or more activations: its
/// trail's `fired` or `reactivated` events, each one's life running to the
/// next. An activation ends at its life's first `cleared`, `closed`,
/// `latched`, `reset` or `resolved` event; it is acknowledged by its
/// life's first `acknowledged` event; it is suppressed when the alert
/// recorded it with a `suppressed` event in the same transaction (the next
/// event of the trail, at the same instant). The alerts with an activation
/// in the range are found through index `alert_events_activated` (V8),
/// their trails read in order through `alert_events_alert`.
const ACTIVATIONS: &str = "WITH ranged AS (
        SELECT DISTINCT s.alert_id FROM analytics.alert_events s
        WHERE s.transition IN ('fired', 'reactivated') AND s.at >= $1 AND s.at < $2),
    marked AS (
        SELECT e.alert_id, e.at, e.transition,
               count(*) FILTER (WHERE e.transition IN ('fired', 'reactivated'))
                   OVER (PARTITION BY e.alert_id ORDER BY e.id) AS life,
               lead(e.transition) OVER (PARTITION BY e.alert_id ORDER BY e.id) AS next,
               lead(e.at) OVER (PARTITION BY e.alert_id ORDER BY e.id) AS next_at
        FROM analytics.alert_events e JOIN ranged r ON r.alert_id = e.alert_id),
    lives AS (
        SELECT alert_id,
               min(at) FILTER (WHERE transition IN ('fired', 'reactivated')) AS activated_at,
               min(at) FILTER (WHERE transition IN ('cleared', 'closed', 'latched', 'reset',
                                                    'resolved')) AS cleared_at,
               min(at) FILTER (WHERE transition = 'acknowledged') AS acknowledged_at,
               coalesce(bool_or(transition IN ('fired', 'reactivated')
                                AND next = 'suppressed' AND next_at = at), false) AS suppressed
        FROM marked WHERE life > 0 GROUP BY alert_id, life)
    SELECT a.rule_id, a.rule_name, a.site, a.sensor, l.activated_at, l.cleared_at,
           l.acknowledged_at, l.suppressed
    FROM lives l JOIN analytics.alerts a ON a.id = l.alert_id
    WHERE l.activated_at >= $1 AND l.activated_at < $2
      AND ($3::text IS NULL OR a.site = $3)
      AND ($4::text[] IS NULL OR a.site = ANY($4::text[]))";

/// The KPIs of the alarm activations recorded in `analytics.alert_events`
/// (an alert's `fired` and each `reactivated` event: see [`ACTIVATIONS`])
/// in `scope` over `range`, in one SQL pass.
pub async fn measure(pool: &Pool, scope: &KpiScope, range: KpiRange) -> Result<Kpis> {
    let site = scope.site.as_ref().map(SiteSlug::as_str);
    let within: Option<Vec<&str>> = scope
        .within
        .as_ref()
        .map(|sites| sites.iter().map(SiteSlug::as_str).collect());
    let groups = groups(pool, range, site, within.as_deref()).await?;
    let end = range.end.timestamp_micros();
    let mut parts = Parts::default();
    let mut waits = Vec::new();
    let mut names: HashMap<PairKey, String> = HashMap::new();
    let mut by_site: HashMap<String, Vec<i64>> = HashMap::new();
    for mut group in groups {
        parts.alarms += group.times.len() as u64;
        parts.suppressed += group.suppressed;
        parts.stale += group.stale;
        waits.extend(group.waits.iter().map(|micros| *micros as f64 / 1e6));
        if group.times.is_empty() {
            continue;
        }
        by_site
            .entry(group.site.clone())
            .or_default()
            .extend_from_slice(&group.times);
        if let (Some(rule_id), Some(sensor)) = (group.rule_id, group.sensor) {
            names.insert(
                (rule_id, group.site.clone(), sensor.clone()),
                group.rule_name.unwrap_or_default(),
            );
            parts
                .pairs
                .push(pair_count(rule_id, group.site, sensor, &mut group.times));
        }
    }
    for times in by_site.values_mut() {
        site_figures(times, end, &mut parts);
    }
    ack_figures(waits, &mut parts);
    Ok(finish(range, parts, |pair| {
        names
            .get(&(pair.rule_id, pair.site.clone(), pair.sensor.clone()))
            .cloned()
            .unwrap_or_default()
    }))
}

/// One rule-and-sensor pair's activations in the range (a site's
/// `gateway_offline` alarms are one group, without rule and sensor).
#[derive(Debug)]
struct Group {
    rule_id: Option<Uuid>,
    site: String,
    sensor: Option<String>,
    /// The rule's name at the newest activation not suppressed.
    rule_name: Option<String>,
    /// When each activation not suppressed began, in microseconds.
    times: Vec<i64>,
    /// How long each acknowledged one waited, in microseconds
    /// (`date_part` is a float of seconds that holds the microseconds
    /// exactly for waits of less than a century).
    waits: Vec<i64>,
    /// Those active more than 24 h, as known at the range's end.
    stale: u64,
    /// Suppressed activations, counted apart.
    suppressed: u64,
}

/// Every group's figures, in one pass over the range's activations: the
/// per-site and per-pair figures and the percentiles are computed from
/// them here, as [`compute`](super::compute) computes them (sorting in
/// Postgres costs more than the transfer).
async fn groups(
    pool: &Pool,
    range: KpiRange,
    site: Option<&str>,
    within: Option<&[&str]>,
) -> Result<Vec<Group>> {
    let mut client = pool.get().await?;
    let client = without_jit(&mut client).await?;
    let rows = client
        .query(
            &format!(
                "SELECT rule_id, site, sensor,
                        (array_agg(rule_name ORDER BY activated_at DESC)
                            FILTER (WHERE NOT suppressed))[1] AS rule_name,
                        coalesce(array_agg(activated_at) FILTER (WHERE NOT suppressed),
                                 '{{}}') AS times,
                        coalesce(array_agg(round(date_part('epoch', acknowledged_at - activated_at)
                                                 * 1000000)::bigint)
                                     FILTER (WHERE NOT suppressed AND acknowledged_at IS NOT NULL),
                                 '{{}}') AS waits,
                        count(*) FILTER (WHERE NOT suppressed
                            AND least(coalesce(cleared_at, $2), $2) - activated_at
                                > make_interval(secs => $5)) AS stale,
                        count(*) FILTER (WHERE suppressed) AS suppressed
                 FROM ({ACTIVATIONS}) AS activations
                 GROUP BY rule_id, site, sensor"
            ),
            &[
                &range.start,
                &range.end,
                &site,
                &within,
                &(STALE_AFTER.as_secs_f64()),
            ],
        )
        .await?;
    let count = |row: &tokio_postgres::Row, name: &str| -> Result<u64> {
        Ok(u64::try_from(row.try_get::<_, i64>(name)?).unwrap_or_default())
    };
    rows.iter()
        .map(|row| {
            let times: Vec<DateTime<Utc>> = row.try_get("times")?;
            Ok(Group {
                rule_id: row.try_get("rule_id")?,
                site: row.try_get("site")?,
                sensor: row.try_get("sensor")?,
                rule_name: row.try_get("rule_name")?,
                times: times.iter().map(DateTime::timestamp_micros).collect(),
                waits: row.try_get("waits")?,
                stale: count(row, "stale")?,
                suppressed: count(row, "suppressed")?,
            })
        })
        .collect()
}

/// A read-only transaction with JIT compilation off: the planner's
/// estimate of a scan of a million rows makes Postgres compile the query
/// to machine code, which costs these ordered passes more than it saves.
async fn without_jit(
    client: &mut deadpool_postgres::Object,
) -> Result<deadpool_postgres::Transaction<'_>> {
    let transaction = client.transaction().await?;
    transaction
        .batch_execute("SET TRANSACTION READ ONLY; SET LOCAL jit = off")
        .await?;
    Ok(transaction)
}

type PairKey = (Uuid, String, String);
