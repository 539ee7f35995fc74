//! What the Sparkplug host records (births and deaths, one transaction
//! each) and reads (the bindings), and what analytics reads (the states).

use std::collections::HashMap;

use chrono::{DateTime, Utc};
use deadpool_postgres::Pool;
use stoker_domain::{EpochMillis, SensorKey, SiteSlug};
use tokio_postgres::IsolationLevel;
use uuid::Uuid;

use super::{AnnouncedMetric, GatewayBinding, GatewayDeviceState, GatewayState, invalid};
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

/// Every gateway's state and the sensor keys its last births named, with
/// its devices' states and sensors, for analytics' `gateway_offline` alarm
/// and its `no_data` suppression. One consistent snapshot.
pub async fn gateway_states(pool: &Pool) -> Result<Vec<GatewayState>> {
    let mut client = pool.get().await?;
    let transaction = client
        .build_transaction()
        .isolation_level(IsolationLevel::RepeatableRead)
        .read_only(true)
        .start()
        .await?;
    let statement = transaction
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
    let mut states = transaction
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
                sensors: sensor_keys(row.get("sensors"))?,
                devices: Vec::new(),
            })
        })
        .collect::<Result<Vec<_>>>()?;
    let statement = transaction
        .prepare_cached(
            "SELECT d.gateway_id, d.device, d.online, d.last_birth_at, d.last_death_at,
                    coalesce(array_agg(DISTINCT m.sensor_key)
                                 FILTER (WHERE m.sensor_key IS NOT NULL),
                             '{}') AS sensors
             FROM metadata.gateway_devices d
             LEFT JOIN metadata.gateway_metrics m
                    ON m.gateway_id = d.gateway_id AND m.device = d.device
             GROUP BY d.gateway_id, d.device
             ORDER BY d.gateway_id, d.device COLLATE \"C\"",
        )
        .await?;
    let mut devices: HashMap<Uuid, Vec<GatewayDeviceState>> = HashMap::new();
    for row in transaction.query(&statement, &[]).await? {
        devices
            .entry(row.get("gateway_id"))
            .or_default()
            .push(GatewayDeviceState {
                device: row.get("device"),
                online: row.get("online"),
                last_birth_at: millis(row.get("last_birth_at"))?,
                last_death_at: millis(row.get("last_death_at"))?,
                sensors: sensor_keys(row.get("sensors"))?,
            });
    }
    transaction.commit().await?;
    for state in &mut states {
        state.devices = devices.remove(&state.id).unwrap_or_default();
    }
    Ok(states)
}

fn millis(at: Option<DateTime<Utc>>) -> Result<Option<EpochMillis>> {
    at.map(|at| EpochMillis::from_millis(at.timestamp_millis()))
        .transpose()
        .map_err(invalid("gateway timestamp"))
}

fn sensor_keys(keys: Vec<String>) -> Result<Vec<SensorKey>> {
    keys.into_iter()
        .map(SensorKey::parse)
        .collect::<Result<_, _>>()
        .map_err(invalid("sensor key"))
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
/// devices included), its devices offline until their DBIRTHs (a new
/// session; no death is recorded for them). Returns false when no gateway
/// is bound for (`group`, `edge_node`) (nothing is written then). One
/// transaction.
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
    let id: Uuid = row.get("id");
    replace_metrics(&transaction, id, None, metrics).await?;
    // A new session: its devices are offline until their DBIRTHs.
    let devices = transaction
        .prepare_cached(
            "UPDATE metadata.gateway_devices SET online = false
             WHERE gateway_id = $1 AND online",
        )
        .await?;
    transaction.execute(&devices, &[&id]).await?;
    transaction.commit().await?;
    Ok(true)
}

/// The gateway bound for (`group`, `edge_node`), its row locked for the
/// transaction, and whether an event of its session `bd_seq` received at
/// `at` belongs to the session Postgres holds: the gateway is online, born
/// no later than `at`, and with the same `bdSeq` (either unknown, it
/// does). `None` when no gateway is bound.
async fn current_session(
    transaction: &deadpool_postgres::Transaction<'_>,
    group: &str,
    edge_node: &str,
    at: EpochMillis,
    bd_seq: Option<i64>,
) -> Result<Option<(Uuid, bool)>> {
    let statement = transaction
        .prepare_cached(
            "SELECT id,
                    online AND last_birth_at <= $3
                        AND ($4::bigint IS NULL OR bd_seq IS NULL OR bd_seq = $4) AS current
             FROM metadata.gateways
             WHERE group_id = $1 AND edge_node = $2
             FOR UPDATE",
        )
        .await?;
    Ok(transaction
        .query_opt(
            &statement,
            &[&group, &edge_node, &at.to_datetime(), &bd_seq],
        )
        .await?
        .map(|row| (row.get("id"), row.get("current"))))
}

/// A device id as stored: a device id is never empty in a topic the host
/// takes, but should one be, it is stored as U+FFFD ('' means the node).
fn device_name(device: &str) -> String {
    if device.is_empty() {
        "\u{FFFD}".to_owned()
    } else {
        storable(device)
    }
}

/// A DBIRTH: the device is online from `at`, and its announced metrics
/// are replaced (each metric counts as the device's, whatever its own
/// `device` says). `bd_seq` is the `bdSeq` of its edge node's birth: a
/// device birth of a session other than the gateway's current one (see
/// [`record_device_death`]) changes nothing. Returns false when no gateway
/// is bound for (`group`, `edge_node`). The gateway's own online state is
/// the NBIRTH's and NDEATH's to change. One transaction.
pub async fn record_device_birth(
    pool: &Pool,
    group: &str,
    edge_node: &str,
    device: &str,
    at: EpochMillis,
    bd_seq: Option<i64>,
    metrics: &[AnnouncedMetric],
) -> Result<bool> {
    let mut client = pool.get().await?;
    let transaction = client.transaction().await?;
    let Some((id, current)) = current_session(&transaction, group, edge_node, at, bd_seq).await?
    else {
        return Ok(false);
    };
    if !current {
        return Ok(true);
    }
    let device = device_name(device);
    let born = transaction
        .prepare_cached(
            "INSERT INTO metadata.gateway_devices (gateway_id, device, online, last_birth_at)
             VALUES ($1, $2, true, $3)
             ON CONFLICT (gateway_id, device)
                 DO UPDATE SET online = true, last_birth_at = EXCLUDED.last_birth_at",
        )
        .await?;
    transaction
        .execute(&born, &[&id, &device, &at.to_datetime()])
        .await?;
    replace_metrics(&transaction, id, Some(&device), metrics).await?;
    touch(&transaction, id).await?;
    transaction.commit().await?;
    Ok(true)
}

/// A DDEATH: the device is offline from `at`; its gateway stays online,
/// and its announced metrics stay (they name the sensors its death
/// concerns). Ignored, like a stale NDEATH, when it is not of the
/// gateway's current session: the gateway is offline, was born after
/// `at`, or its last birth's `bdSeq` is not `bd_seq` (the `bdSeq` of the
/// birth of the session the host saw the death in; either unknown, the
/// death counts); and when the device is not online or was born after
/// `at`. Returns false when no gateway is bound for (`group`,
/// `edge_node`). One transaction.
pub async fn record_device_death(
    pool: &Pool,
    group: &str,
    edge_node: &str,
    device: &str,
    at: EpochMillis,
    bd_seq: Option<i64>,
) -> Result<bool> {
    let mut client = pool.get().await?;
    let transaction = client.transaction().await?;
    let Some((id, current)) = current_session(&transaction, group, edge_node, at, bd_seq).await?
    else {
        return Ok(false);
    };
    if !current {
        return Ok(true);
    }
    let died = transaction
        .prepare_cached(
            "UPDATE metadata.gateway_devices SET online = false, last_death_at = $3
             WHERE gateway_id = $1 AND device = $2 AND online
               AND (last_birth_at IS NULL OR last_birth_at <= $3)",
        )
        .await?;
    if transaction
        .execute(&died, &[&id, &device_name(device), &at.to_datetime()])
        .await?
        > 0
    {
        touch(&transaction, id).await?;
    }
    transaction.commit().await?;
    Ok(true)
}

/// Marks gateway `id` changed, so the change feed announces a change to
/// its devices (`gateways:{site}`).
async fn touch(transaction: &deadpool_postgres::Transaction<'_>, id: Uuid) -> Result<()> {
    let statement = transaction
        .prepare_cached("UPDATE metadata.gateways SET updated_at = now() WHERE id = $1")
        .await?;
    transaction.execute(&statement, &[&id]).await?;
    Ok(())
}

/// An NDEATH (or the will): the gateway and its online devices are
/// offline from `at`. Idempotent:
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
             ), devices_died AS (
                 UPDATE metadata.gateway_devices d
                 SET online = false, last_death_at = $3
                 FROM died
                 WHERE d.gateway_id = died.id AND d.online
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
