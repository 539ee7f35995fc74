//! [`measure`]: the alarm KPIs of the alerts recorded in
//! `analytics.alerts`, read with SQL and finished by the code
//! [`compute`](super::compute) uses.

use std::collections::{BTreeMap, HashMap};

use chrono::{DateTime, Utc};
use stoker_domain::SiteSlug;
use stoker_postgres::Pool;
use uuid::Uuid;

use super::{
    KpiRange, Kpis, PairCount, Parts, STALE_AFTER, TOP, ack_figures, finish, pair_count,
    site_figures,
};
use crate::Result;

/// Whose alarms [`measure`] reads.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct KpiScope {
    /// One site's; none: every site (within `within`).
    pub site: Option<SiteSlug>,
    /// Only these sites' (what a key limited to sites sees); none: all.
    pub within: Option<Vec<SiteSlug>>,
}

/// Whether an alert's activation is suppressed, in SQL: suppressed
/// activations are counted apart, as `compute` counts them.
const SUPPRESSED: &str = "a.suppressed IS NOT NULL";

/// The rows of the range and scope, in SQL (`$1` start, `$2` end, `$3`
/// site, `$4` sites).
const WHERE: &str = "a.opened_at >= $1 AND a.opened_at < $2
    AND ($3::text IS NULL OR a.site = $3)
    AND ($4::text[] IS NULL OR a.site = ANY($4::text[]))";

/// The KPIs of the alarms recorded in `analytics.alerts` (each alert is one
/// activation: its opening, its resolution as its clearing) in `scope` over
/// `range`.
pub async fn measure(pool: &Pool, scope: &KpiScope, range: KpiRange) -> Result<Kpis> {
    let site = scope.site.as_ref().map(SiteSlug::as_str);
    let within: Option<Vec<&str>> = scope
        .within
        .as_ref()
        .map(|sites| sites.iter().map(SiteSlug::as_str).collect());
    let totals = totals(pool, range, site, within.as_deref());
    let groups = groups(pool, range, site, within.as_deref());
    let (mut parts, groups) = tokio::try_join!(totals, groups)?;
    let end = range.end.timestamp_micros();
    let mut by_site: HashMap<String, Vec<i64>> = HashMap::new();
    for mut group in groups {
        by_site
            .entry(group.site.clone())
            .or_default()
            .extend_from_slice(&group.times);
        if let (Some(rule_id), Some(sensor)) = (group.rule_id, group.sensor) {
            parts
                .pairs
                .push(pair_count(rule_id, group.site, sensor, &mut group.times));
        }
    }
    for times in by_site.values_mut() {
        site_figures(times, end, &mut parts);
    }
    let names = top_names(pool, range, &mut parts.pairs).await?;
    Ok(finish(range, parts, |pair| {
        names
            .get(&(pair.rule_id, pair.site.clone(), pair.sensor.clone()))
            .cloned()
            .unwrap_or_default()
    }))
}

/// Counts, stale activations and how long each acknowledged activation
/// waited, in microseconds (`date_part` is a float of seconds that holds
/// the microseconds exactly for waits of less than a century; `extract`'s
/// numeric costs more). The percentiles are taken here, as [`compute`]
/// takes them: sorting in Postgres costs more than the transfer.
async fn totals(
    pool: &Pool,
    range: KpiRange,
    site: Option<&str>,
    within: Option<&[&str]>,
) -> Result<Parts> {
    let mut client = pool.get().await?;
    let client = without_jit(&mut client).await?;
    let row = client
        .query_one(
            &format!(
                "SELECT count(*) FILTER (WHERE NOT {SUPPRESSED}) AS alarms,
                        count(*) FILTER (WHERE {SUPPRESSED}) AS suppressed,
                        count(*) FILTER (WHERE NOT {SUPPRESSED}
                            AND least(coalesce(a.resolved_at, $2), $2) - a.opened_at
                                > make_interval(secs => $5)) AS stale,
                        array_agg(round(date_part('epoch', a.acknowledged_at - a.opened_at)
                                        * 1000000)::bigint)
                            FILTER (WHERE NOT {SUPPRESSED} AND a.acknowledged_at IS NOT NULL)
                            AS waits
                 FROM analytics.alerts a
                 WHERE {WHERE}"
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
    let count = |name: &str| -> Result<u64> {
        Ok(u64::try_from(row.try_get::<_, i64>(name)?).unwrap_or_default())
    };
    let waits: Option<Vec<i64>> = row.try_get("waits")?;
    let mut parts = Parts {
        alarms: count("alarms")?,
        suppressed: count("suppressed")?,
        stale: count("stale")?,
        ..Parts::default()
    };
    ack_figures(
        waits
            .unwrap_or_default()
            .into_iter()
            .map(|micros| micros as f64 / 1e6)
            .collect(),
        &mut parts,
    );
    Ok(parts)
}

/// One rule-and-sensor pair's activation times (a site's `gateway_offline`
/// alarms are one group, without rule and sensor), in microseconds.
#[derive(Debug)]
struct Group {
    rule_id: Option<Uuid>,
    site: String,
    sensor: Option<String>,
    times: Vec<i64>,
}

/// Every group's activation times, in one ordered pass over index
/// `alerts_pair_opened` (no sort): an array per group, which the
/// per-site and per-pair figures are computed from here. Measured on a
/// year of a million alarms, this costs two to three times a plain count
/// of the rows, where window functions over the same rows (a sliding count
/// and `lag` per site and per pair) cost ten times as much.
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
                "SELECT rule_id, site, sensor, array_agg(opened_at) AS times
                 FROM (SELECT a.rule_id, a.site, a.sensor, a.opened_at
                       FROM analytics.alerts a
                       WHERE {WHERE} AND NOT {SUPPRESSED}
                       ORDER BY a.rule_id, a.site, a.sensor, a.opened_at) AS ordered
                 GROUP BY rule_id, site, sensor"
            ),
            &[&range.start, &range.end, &site, &within],
        )
        .await?;
    rows.iter()
        .map(|row| {
            let times: Vec<DateTime<Utc>> = row.try_get("times")?;
            Ok(Group {
                rule_id: row.try_get("rule_id")?,
                site: row.try_get("site")?,
                sensor: row.try_get("sensor")?,
                times: times.iter().map(DateTime::timestamp_micros).collect(),
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

/// The rule names of the ten pairs `finish` will list: each pair's newest
/// activation in the range.
async fn top_names(
    pool: &Pool,
    range: KpiRange,
    pairs: &mut [PairCount],
) -> Result<BTreeMap<PairKey, String>> {
    pairs.sort_by(|a, b| {
        b.count
            .cmp(&a.count)
            .then_with(|| a.site.cmp(&b.site))
            .then_with(|| a.sensor.cmp(&b.sensor))
            .then_with(|| a.rule_id.cmp(&b.rule_id))
    });
    let top = &pairs[..pairs.len().min(TOP)];
    if top.is_empty() {
        return Ok(BTreeMap::new());
    }
    let rule_ids: Vec<Uuid> = top.iter().map(|pair| pair.rule_id).collect();
    let sites: Vec<&str> = top.iter().map(|pair| pair.site.as_str()).collect();
    let sensors: Vec<&str> = top.iter().map(|pair| pair.sensor.as_str()).collect();
    let client = pool.get().await?;
    let rows = client
        .query(
            &format!(
                "SELECT t.rule_id, t.site, t.sensor, newest.rule_name
                 FROM unnest($1::uuid[], $2::text[], $3::text[]) AS t (rule_id, site, sensor)
                 CROSS JOIN LATERAL (
                     SELECT a.rule_name FROM analytics.alerts a
                     WHERE a.rule_id = t.rule_id AND a.site = t.site AND a.sensor = t.sensor
                       AND a.opened_at >= $4 AND a.opened_at < $5 AND NOT {SUPPRESSED}
                     ORDER BY a.opened_at DESC LIMIT 1) AS newest"
            ),
            &[&rule_ids, &sites, &sensors, &range.start, &range.end],
        )
        .await?;
    rows.iter()
        .map(|row| {
            Ok((
                (
                    row.try_get("rule_id")?,
                    row.try_get("site")?,
                    row.try_get("sensor")?,
                ),
                row.try_get::<_, Option<String>>("rule_name")?
                    .unwrap_or_default(),
            ))
        })
        .collect()
}
