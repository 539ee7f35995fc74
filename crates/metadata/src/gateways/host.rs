//! What the Sparkplug host records (births and deaths, one transaction
//! each) and reads (the bindings), and what analytics reads (the states).

use std::collections::HashMap;

use chrono::{DateTime, Utc};
use deadpool_postgres::Pool;
use stoker_domain::{EpochMillis, SensorKey, SiteSlug};
use uuid::Uuid;

use super::{AnnouncedMetric, GatewayBinding, GatewayState, invalid};
use crate::Result;

/// Every binding. The Sparkplug host loads them at start and again on
/// every `gateways` change announced on the change feed
/// ([`watch_change_events`](crate::watch_change_events) reports table
/// `gateways`).
pub async fn gateway_bindings(pool: &Pool) -> Result<Vec<GatewayBinding>> {
    let client = pool.get().await?;
    let statement = client
        .prepare_cached(
            "SELECT s.slug AS site, g.group_id, g.edge_node
             FROM metadata.gateways g JOIN metadata.sites s ON s.id = g.site_id
             ORDER BY g.group_id COLLATE \"C\", g.edge_node COLLATE \"C\"",
        )
        .await?;
    client
        .query(&statement, &[])
        .await?
        .iter()
        .map(|row| {
            Ok(GatewayBinding {
                site: SiteSlug::parse(row.get::<_, String>("site"))
                    .map_err(invalid("site slug"))?,
                group: row.get("group_id"),
                edge_node: row.get("edge_node"),
            })
        })
        .collect()
}

/// Every gateway's state and the sensor keys its last births named, for
/// analytics' `gateway_offline` alarm and its `no_data` suppression.
pub async fn gateway_states(pool: &Pool) -> Result<Vec<GatewayState>> {
    let client = pool.get().await?;
    let statement = client
        .prepare_cached(
            "SELECT g.id, s.slug AS site, g.group_id, g.edge_node, g.online,
                    g.last_birth_at, g.last_death_at,
                    coalesce((SELECT array_agg(DISTINCT m.sensor_key)
                              FROM metadata.gateway_metrics m
                              WHERE m.gateway_id = g.id AND m.sensor_key IS NOT NULL),
                             '{}') AS sensors
             FROM metadata.gateways g JOIN metadata.sites s ON s.id = g.site_id
             ORDER BY g.id",
        )
        .await?;
    let millis = |at: Option<DateTime<Utc>>| {
        at.map(|at| EpochMillis::from_millis(at.timestamp_millis()))
            .transpose()
            .map_err(invalid("gateway timestamp"))
    };
    client
        .query(&statement, &[])
        .await?
        .iter()
        .map(|row| {
            Ok(GatewayState {
                id: row.get("id"),
                site: SiteSlug::parse(row.get::<_, String>("site"))
                    .map_err(invalid("site slug"))?,
                group: row.get("group_id"),
                edge_node: row.get("edge_node"),
                online: row.get("online"),
                last_birth_at: millis(row.get("last_birth_at"))?,
                last_death_at: millis(row.get("last_death_at"))?,
                sensors: row
                    .get::<_, Vec<String>>("sensors")
                    .into_iter()
                    .map(SensorKey::parse)
                    .collect::<Result<_, _>>()
                    .map_err(invalid("sensor key"))?,
            })
        })
        .collect()
}

/// Text for Postgres, which holds no NUL: a NUL a gateway sent becomes
/// U+FFFD, so the metric is still listed, recognisably.
fn storable(text: &str) -> String {
    text.replace('\0', "\u{FFFD}")
}

/// Replaces the announced metrics of one device (`device` '' for the node
/// itself, which also drops every device's) of gateway `id`.
async fn replace_metrics(
    transaction: &deadpool_postgres::Transaction<'_>,
    id: Uuid,
    device: Option<&str>,
    metrics: &[AnnouncedMetric],
) -> Result<()> {
    let delete = transaction
        .prepare_cached(
            "DELETE FROM metadata.gateway_metrics
             WHERE gateway_id = $1 AND ($2::text IS NULL OR device = $2::text)",
        )
        .await?;
    transaction
        .execute(&delete, &[&id, &device.map(storable)])
        .await?;
    if metrics.is_empty() {
        return Ok(());
    }
    let mut devices = Vec::with_capacity(metrics.len());
    let mut positions = Vec::with_capacity(metrics.len());
    let mut names = Vec::with_capacity(metrics.len());
    let mut sensors = Vec::with_capacity(metrics.len());
    let mut datatypes = Vec::with_capacity(metrics.len());
    let mut next_position: HashMap<String, i32> = HashMap::new();
    for metric in metrics {
        // A device birth's metrics are that device's, whatever they say.
        let owner = storable(device.or(metric.device.as_deref()).unwrap_or(""));
        let position = next_position.entry(owner.clone()).or_insert(0);
        positions.push(*position);
        *position += 1;
        devices.push(owner);
        names.push(storable(&metric.metric));
        sensors.push(metric.sensor.as_ref().map(|key| key.as_str().to_owned()));
        datatypes.push(storable(&metric.datatype));
    }
    let insert = transaction
        .prepare_cached(
            "INSERT INTO metadata.gateway_metrics
                 (gateway_id, device, position, metric, sensor_key, datatype)
             SELECT $1, device, position, metric, sensor_key, datatype
             FROM unnest($2::text[], $3::int[], $4::text[], $5::text[], $6::text[])
                  AS m (device, position, metric, sensor_key, datatype)",
        )
        .await?;
    transaction
        .execute(
            &insert,
            &[&id, &devices, &positions, &names, &sensors, &datatypes],
        )
        .await?;
    Ok(())
}

/// An NBIRTH: the gateway is online from `at`, announcing `metrics` (its
/// node metrics; this replaces every announced metric of the gateway,
/// devices included). Returns false when no gateway is bound for
/// (`group`, `edge_node`) (nothing is written then). One transaction.
pub async fn record_gateway_birth(
    pool: &Pool,
    group: &str,
    edge_node: &str,
    at: EpochMillis,
    bd_seq: Option<i64>,
    metrics: &[AnnouncedMetric],
) -> Result<bool> {
    let mut client = pool.get().await?;
    let transaction = client.transaction().await?;
    let statement = transaction
        .prepare_cached(
            "UPDATE metadata.gateways
             SET online = true, bd_seq = $3, last_birth_at = $4, updated_at = now()
             WHERE group_id = $1 AND edge_node = $2
             RETURNING id",
        )
        .await?;
    let Some(row) = transaction
        .query_opt(
            &statement,
            &[&group, &edge_node, &bd_seq, &at.to_datetime()],
        )
        .await?
    else {
        return Ok(false);
    };
    replace_metrics(&transaction, row.get("id"), None, metrics).await?;
    transaction.commit().await?;
    Ok(true)
}

/// A DBIRTH: replaces the announced metrics of that device (each metric
/// counts as the device's, whatever its own `device` says). Returns false
/// when no gateway is bound for (`group`, `edge_node`). The gateway's
/// online state is the NBIRTH's and NDEATH's to change. One transaction.
pub async fn record_device_birth(
    pool: &Pool,
    group: &str,
    edge_node: &str,
    device: &str,
    at: EpochMillis,
    metrics: &[AnnouncedMetric],
) -> Result<bool> {
    // `at` is not stored: a gateway records when its node was born and
    // died; a device birth only changes what the gateway announces.
    let _ = at;
    let mut client = pool.get().await?;
    let transaction = client.transaction().await?;
    let statement = transaction
        .prepare_cached(
            "UPDATE metadata.gateways SET updated_at = now()
             WHERE group_id = $1 AND edge_node = $2
             RETURNING id",
        )
        .await?;
    let Some(row) = transaction
        .query_opt(&statement, &[&group, &edge_node])
        .await?
    else {
        return Ok(false);
    };
    let device = if device.is_empty() {
        "\u{FFFD}"
    } else {
        device
    };
    replace_metrics(&transaction, row.get("id"), Some(device), metrics).await?;
    transaction.commit().await?;
    Ok(true)
}

/// An NDEATH (or the will): the gateway is offline from `at`. Idempotent:
/// an offline gateway stays as it is, and so does one whose last birth is
/// newer than `at` or whose last birth's `bdSeq` is not the death's
/// `bd_seq` (the will of an earlier session, delivered late: Sparkplug
/// ties a death to its birth by `bdSeq`; either unknown, the death
/// counts). Returns false when no gateway is bound for (`group`,
/// `edge_node`). One statement.
pub async fn record_gateway_death(
    pool: &Pool,
    group: &str,
    edge_node: &str,
    at: EpochMillis,
    bd_seq: Option<i64>,
) -> Result<bool> {
    let client = pool.get().await?;
    let statement = client
        .prepare_cached(
            "WITH bound AS (
                 SELECT id FROM metadata.gateways WHERE group_id = $1 AND edge_node = $2
             ), died AS (
                 UPDATE metadata.gateways g
                 SET online = false, last_death_at = $3, updated_at = now()
                 FROM bound
                 WHERE g.id = bound.id AND g.online AND g.last_birth_at <= $3
                   AND ($4::bigint IS NULL OR g.bd_seq IS NULL OR g.bd_seq = $4)
                 RETURNING g.id
             )
             SELECT count(*) AS bound FROM bound",
        )
        .await?;
    let bound: i64 = client
        .query_one(
            &statement,
            &[&group, &edge_node, &at.to_datetime(), &bd_seq],
        )
        .await?
        .get("bound");
    Ok(bound > 0)
}
