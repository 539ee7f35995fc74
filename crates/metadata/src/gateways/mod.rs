//! Gateways: Sparkplug B edge nodes (a group id and an edge node id) bound
//! to sites, their online state as the host application records it from
//! births and deaths, and the metrics their last births announced.
//!
//! Postgres is the source of truth for a gateway's online state: the
//! Sparkplug host writes every birth and death here ([`record_gateway_birth`],
//! [`record_device_birth`], [`record_device_death`], [`record_gateway_death`],
//! each one transaction), analytics raises
//! `gateway_offline` from these rows ([`gateway_states`]), and a new leader
//! of either reads nothing from memory.

use std::collections::HashMap;

use chrono::{DateTime, Utc};
use deadpool_postgres::{GenericClient, Pool};
use serde::Serialize;
use stoker_domain::{EpochMillis, SensorKey, SiteSlug};
use tokio_postgres::IsolationLevel;
use uuid::Uuid;

mod host;

pub use host::{
    gateway_bindings, gateway_states, record_device_birth, record_device_death,
    record_gateway_birth, record_gateway_death,
};

use crate::audit::{self, Actor, Change, Entity};
use crate::sensors::{insert_sensor, sensor_change};
use crate::{Error, NewSensor, Page, Result, Sensor, fetch_limit, is_unique_violation};

/// The longest Sparkplug id (group, edge node, device) a gateway may have,
/// in characters.
pub const GATEWAY_ID_MAX_LEN: usize = 120;

/// A Sparkplug id as a JSON Schema pattern: no `+`, `#`, `/` (Sparkplug
/// 3.0: they separate and match topic levels) and no control character
/// (MQTT 3.1.1 §1.5.3).
pub const GATEWAY_ID_PATTERN: &str = "^[^+#/\\u0000-\\u001f\\u007f-\\u009f]+$";

/// A gateway bound to a site: how the Sparkplug host maps an edge node's
/// metrics to a site.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GatewayBinding {
    /// The site its metrics feed.
    pub site: SiteSlug,
    /// The Sparkplug group id.
    pub group: String,
    /// The Sparkplug edge node id.
    pub edge_node: String,
}

/// A metric a birth announced (protocol metrics left out).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct AnnouncedMetric {
    /// The device whose DBIRTH announced it; `None`: a node metric.
    pub device: Option<String>,
    /// The Sparkplug metric name.
    pub metric: String,
    /// Its sensor key per DESIGN.md's mapping; `None` when it has none.
    pub sensor: Option<SensorKey>,
    /// The Sparkplug datatype name, e.g. `Double`, `Boolean`, `String`.
    pub datatype: String,
}

/// A metric a gateway's last births announced, and whether its site has a
/// sensor with its key.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct GatewayMetric {
    /// The device whose DBIRTH announced it; `None`: a node metric.
    pub device: Option<String>,
    /// The Sparkplug metric name.
    pub metric: String,
    /// Its sensor key; `None` when it has none.
    pub sensor: Option<SensorKey>,
    /// The Sparkplug datatype name.
    pub datatype: String,
    /// Whether the gateway's site has a sensor with this key.
    pub registered: bool,
}

/// A gateway bound to a site.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Gateway {
    /// Immutable id.
    pub id: Uuid,
    /// The site its metrics feed.
    pub site: SiteSlug,
    /// The Sparkplug group id.
    pub group: String,
    /// The Sparkplug edge node id.
    pub edge_node: String,
    /// Between a birth and the next death.
    pub online: bool,
    /// The last NBIRTH's `bdSeq`, if it had one.
    pub bd_seq: Option<i64>,
    /// When the last NBIRTH arrived.
    pub last_birth_at: Option<DateTime<Utc>>,
    /// When the last NDEATH (or the will) arrived.
    pub last_death_at: Option<DateTime<Utc>>,
    /// What its last births announced: node metrics first, then each
    /// device's, each in its birth's order.
    pub metrics: Vec<GatewayMetric>,
    /// Every device it announced, in byte order of their ids.
    pub devices: Vec<GatewayDevice>,
    /// The binding's version (births and deaths leave it as it is).
    pub version: i64,
    /// When it was bound.
    pub created_at: DateTime<Utc>,
    /// When it last changed (a birth or a death included).
    pub updated_at: DateTime<Utc>,
}

/// What analytics needs of a gateway to raise and resolve
/// `gateway_offline` and to hold back its sensors' `no_data` alerts.
#[derive(Debug, Clone, PartialEq)]
pub struct GatewayState {
    /// The gateway's id.
    pub id: Uuid,
    /// The site it is bound to.
    pub site: SiteSlug,
    /// The Sparkplug group id.
    pub group: String,
    /// The Sparkplug edge node id.
    pub edge_node: String,
    /// Between a birth and the next death.
    pub online: bool,
    /// When the last birth arrived.
    pub last_birth_at: Option<EpochMillis>,
    /// When the last death arrived.
    pub last_death_at: Option<EpochMillis>,
    /// The sensor keys its last births named (node and devices).
    pub sensors: Vec<SensorKey>,
    /// Its devices, in byte order of their ids.
    pub devices: Vec<GatewayDeviceState>,
}

/// What analytics needs of a gateway's device to hold back its sensors'
/// `no_data` alerts while it is dead and its gateway online.
#[derive(Debug, Clone, PartialEq)]
pub struct GatewayDeviceState {
    /// The Sparkplug device id.
    pub device: String,
    /// Between its DBIRTH and its DDEATH (or its gateway's death).
    pub online: bool,
    /// When its last DBIRTH arrived.
    pub last_birth_at: Option<EpochMillis>,
    /// When its last DDEATH (or its gateway's death) arrived.
    pub last_death_at: Option<EpochMillis>,
    /// The sensor keys its last DBIRTH named.
    pub sensors: Vec<SensorKey>,
}

/// A device of a gateway, as its births and deaths left it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct GatewayDevice {
    /// The Sparkplug device id.
    pub device: String,
    /// Between its DBIRTH and its DDEATH or its gateway's death (an
    /// NBIRTH leaves it offline until its DBIRTH).
    pub online: bool,
    /// When its last DBIRTH arrived; `None` if not recorded.
    pub last_birth_at: Option<DateTime<Utc>>,
    /// When its last DDEATH (or its gateway's death) arrived.
    pub last_death_at: Option<DateTime<Utc>>,
}

/// A gateway to bind, already validated.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewGateway {
    group: String,
    edge_node: String,
}

/// Checks a Sparkplug id; `field` names it in the error.
fn parse_id(field: &'static str, value: &str) -> Result<String, (&'static str, String)> {
    if value.is_empty() || value.chars().count() > GATEWAY_ID_MAX_LEN {
        return Err((
            field,
            format!("{field} must be 1 to {GATEWAY_ID_MAX_LEN} characters"),
        ));
    }
    if let Some(bad) = value
        .chars()
        .find(|c| matches!(c, '+' | '#' | '/') || c.is_control())
    {
        return Err((
            field,
            format!(
                "{field} must not contain {bad:?}: Sparkplug ids are topic levels, \
                 without '+', '#', '/' or control characters"
            ),
        ));
    }
    Ok(value.to_owned())
}

impl NewGateway {
    /// Validates a group id and an edge node id; the error names the field
    /// (`group` or `edge_node`).
    pub fn parse(group: &str, edge_node: &str) -> Result<Self, (&'static str, String)> {
        Ok(Self {
            group: parse_id("group", group)?,
            edge_node: parse_id("edge_node", edge_node)?,
        })
    }

    /// The group id.
    pub fn group(&self) -> &str {
        &self.group
    }

    /// The edge node id.
    pub fn edge_node(&self) -> &str {
        &self.edge_node
    }
}

const COLUMNS: &str = "g.id, s.slug AS site, g.group_id, g.edge_node, g.online, g.bd_seq, \
                       g.last_birth_at, g.last_death_at, g.version, g.created_at, g.updated_at";

fn invalid(what: &'static str) -> impl Fn(stoker_domain::ParseError) -> Error {
    move |error| Error::InvalidRow {
        what,
        reason: error.to_string(),
    }
}

fn from_row(row: &tokio_postgres::Row) -> Result<Gateway> {
    Ok(Gateway {
        id: row.get("id"),
        site: SiteSlug::parse(row.get::<_, String>("site")).map_err(invalid("site slug"))?,
        group: row.get("group_id"),
        edge_node: row.get("edge_node"),
        online: row.get("online"),
        bd_seq: row.get("bd_seq"),
        last_birth_at: row.get("last_birth_at"),
        last_death_at: row.get("last_death_at"),
        metrics: Vec::new(),
        devices: Vec::new(),
        version: row.get("version"),
        created_at: row.get("created_at"),
        updated_at: row.get("updated_at"),
    })
}

/// Fills in the announced metrics and the devices of `gateways` (read in
/// the same transaction, so a birth in between cannot mix two births).
async fn with_metrics(client: &impl GenericClient, gateways: &mut [Gateway]) -> Result<()> {
    if gateways.is_empty() {
        return Ok(());
    }
    let ids: Vec<Uuid> = gateways.iter().map(|gateway| gateway.id).collect();
    let statement = client
        .prepare_cached(
            "SELECT m.gateway_id, m.device, m.metric, m.sensor_key, m.datatype,
                    EXISTS (SELECT 1 FROM metadata.sensors se
                            WHERE se.site_id = g.site_id AND se.key = m.sensor_key) AS registered
             FROM metadata.gateway_metrics m JOIN metadata.gateways g ON g.id = m.gateway_id
             WHERE m.gateway_id = ANY($1)
             ORDER BY m.gateway_id, m.device COLLATE \"C\", m.position",
        )
        .await?;
    let mut by_id: HashMap<Uuid, Vec<GatewayMetric>> = HashMap::new();
    for row in client.query(&statement, &[&ids]).await? {
        let device: String = row.get("device");
        let sensor = row
            .get::<_, Option<String>>("sensor_key")
            .map(SensorKey::parse)
            .transpose()
            .map_err(invalid("sensor key"))?;
        by_id
            .entry(row.get("gateway_id"))
            .or_default()
            .push(GatewayMetric {
                device: (!device.is_empty()).then_some(device),
                metric: row.get("metric"),
                sensor,
                datatype: row.get("datatype"),
                registered: row.get("registered"),
            });
    }
    let statement = client
        .prepare_cached(
            "SELECT gateway_id, device, online, last_birth_at, last_death_at
             FROM metadata.gateway_devices
             WHERE gateway_id = ANY($1)
             ORDER BY gateway_id, device COLLATE \"C\"",
        )
        .await?;
    let mut devices: HashMap<Uuid, Vec<GatewayDevice>> = HashMap::new();
    for row in client.query(&statement, &[&ids]).await? {
        devices
            .entry(row.get("gateway_id"))
            .or_default()
            .push(GatewayDevice {
                device: row.get("device"),
                online: row.get("online"),
                last_birth_at: row.get("last_birth_at"),
                last_death_at: row.get("last_death_at"),
            });
    }
    for gateway in gateways {
        gateway.metrics = by_id.remove(&gateway.id).unwrap_or_default();
        gateway.devices = devices.remove(&gateway.id).unwrap_or_default();
    }
    Ok(())
}

/// The audit record of a change to a gateway.
fn gateway_change<'a>(
    action: &'a str,
    before: Option<&'a Gateway>,
    after: Option<&'a Gateway>,
) -> Result<Change<'a>> {
    let Some(gateway) = after.or(before) else {
        return Err(Error::InvalidRow {
            what: "audit record",
            reason: "a change of a gateway without the gateway".into(),
        });
    };
    Ok(Change {
        entity: Entity::Gateway,
        id: gateway.id.to_string(),
        site: Some(gateway.site.as_str()),
        action,
        before: before.map(audit::json).transpose()?,
        after: after.map(audit::json).transpose()?,
    })
}

/// Binds a gateway to a site, recorded in the audit trail as done by
/// `actor`. Fails with [`Error::SiteNotFound`], or
/// [`Error::GatewayExists`] when the edge node is bound already (to this
/// site or another: an edge node feeds one site).
pub async fn create_gateway(
    pool: &Pool,
    actor: &Actor,
    site: &SiteSlug,
    gateway: &NewGateway,
) -> Result<Gateway> {
    let mut client = pool.get().await?;
    let client = client.transaction().await?;
    let statement = client
        .prepare_cached(&format!(
            "WITH inserted AS (
                 INSERT INTO metadata.gateways (id, site_id, group_id, edge_node)
                 SELECT $1, s.id, $3, $4 FROM metadata.sites s WHERE s.slug = $2
                 RETURNING *
             )
             SELECT {COLUMNS} FROM inserted g JOIN metadata.sites s ON s.id = g.site_id"
        ))
        .await?;
    let rows = client
        .query(
            &statement,
            &[
                &Uuid::now_v7(),
                &site.as_str(),
                &gateway.group,
                &gateway.edge_node,
            ],
        )
        .await
        .map_err(|error| {
            if is_unique_violation(&error) {
                Error::GatewayExists {
                    group: gateway.group.clone(),
                    edge_node: gateway.edge_node.clone(),
                }
            } else {
                error.into()
            }
        })?;
    let created = match rows.first() {
        Some(row) => from_row(row)?,
        None => return Err(Error::SiteNotFound(site.clone())),
    };
    audit::record(
        &client,
        actor,
        gateway_change("created", None, Some(&created))?,
    )
    .await?;
    client.commit().await?;
    Ok(created)
}

/// One gateway of a site, with its announced metrics. Fails with
/// [`Error::GatewayNotFound`], or [`Error::SiteNotFound`] when the site
/// itself is unknown.
pub async fn get_gateway(pool: &Pool, site: &SiteSlug, id: Uuid) -> Result<Gateway> {
    let mut client = pool.get().await?;
    let transaction = client
        .build_transaction()
        .isolation_level(IsolationLevel::RepeatableRead)
        .read_only(true)
        .start()
        .await?;
    let statement = transaction
        .prepare_cached(&format!(
            "SELECT {COLUMNS} FROM metadata.gateways g JOIN metadata.sites s ON s.id = g.site_id
             WHERE s.slug = $1 AND g.id = $2"
        ))
        .await?;
    let Some(row) = transaction
        .query_opt(&statement, &[&site.as_str(), &id])
        .await?
    else {
        return Err(not_found_or_conflict(&transaction, site, id).await?);
    };
    let mut gateway = [from_row(&row)?];
    with_metrics(&transaction, &mut gateway).await?;
    transaction.commit().await?;
    let [gateway] = gateway;
    Ok(gateway)
}

/// One page of a site's gateways in id order (creation order: ids are
/// UUIDv7), starting after the id `after`. `limit` is 1 to
/// [`MAX_PAGE_LIMIT`](crate::MAX_PAGE_LIMIT); an unknown site is
/// [`Error::SiteNotFound`], not an empty page.
pub async fn list_gateways_page(
    pool: &Pool,
    site: &SiteSlug,
    limit: i64,
    after: Option<Uuid>,
) -> Result<Page<Gateway>> {
    let fetch = fetch_limit(limit)?;
    let mut client = pool.get().await?;
    let transaction = client
        .build_transaction()
        .isolation_level(IsolationLevel::RepeatableRead)
        .read_only(true)
        .start()
        .await?;
    // One statement for "the site exists" and its gateways: a site without
    // (further) gateways gives one row of NULL gateway columns.
    let statement = transaction
        .prepare_cached(
            "SELECT g.id, s.slug AS site, g.group_id, g.edge_node, g.online, g.bd_seq,
                    g.last_birth_at, g.last_death_at, g.version, g.created_at, g.updated_at
             FROM metadata.sites s
             LEFT JOIN LATERAL (
                 SELECT * FROM metadata.gateways
                 WHERE site_id = s.id AND ($2::uuid IS NULL OR id > $2::uuid)
                 ORDER BY id
                 LIMIT $3
             ) g ON true
             WHERE s.slug = $1
             ORDER BY g.id",
        )
        .await?;
    let rows = transaction
        .query(&statement, &[&site.as_str(), &after, &fetch])
        .await?;
    if rows.is_empty() {
        return Err(Error::SiteNotFound(site.clone()));
    }
    let mut gateways = rows
        .iter()
        .filter(|row| row.get::<_, Option<Uuid>>("id").is_some())
        .map(from_row)
        .collect::<Result<Vec<_>>>()?;
    let page_len = gateways
        .len()
        .min(usize::try_from(limit).unwrap_or(usize::MAX));
    with_metrics(&transaction, &mut gateways[..page_len]).await?;
    transaction.commit().await?;
    Ok(Page::from_rows(gateways, limit, |gateway| {
        gateway.id.to_string()
    }))
}

/// Unbinds a gateway, if its version is `expected_version` (when given);
/// its announced metrics go with it, its site's sensors stay. Recorded in
/// the audit trail as done by `actor`. Fails with [`Error::SiteNotFound`],
/// [`Error::GatewayNotFound`] or [`Error::VersionConflict`].
pub async fn delete_gateway(
    pool: &Pool,
    actor: &Actor,
    site: &SiteSlug,
    id: Uuid,
    expected_version: Option<i64>,
) -> Result<()> {
    let mut client = pool.get().await?;
    let transaction = client.transaction().await?;
    let statement = transaction
        .prepare_cached(&format!(
            "SELECT {COLUMNS} FROM metadata.gateways g JOIN metadata.sites s ON s.id = g.site_id
             WHERE s.slug = $1 AND g.id = $2
             FOR UPDATE OF g"
        ))
        .await?;
    let Some(row) = transaction
        .query_opt(&statement, &[&site.as_str(), &id])
        .await?
    else {
        return Err(not_found_or_conflict(&transaction, site, id).await?);
    };
    let mut before = [from_row(&row)?];
    with_metrics(&transaction, &mut before).await?;
    let [before] = before;
    if expected_version.is_some_and(|expected| expected != before.version) {
        return Err(Error::VersionConflict {
            current: before.version,
        });
    }
    let delete = transaction
        .prepare_cached("DELETE FROM metadata.gateways WHERE id = $1")
        .await?;
    transaction.execute(&delete, &[&id]).await?;
    audit::record(
        &transaction,
        actor,
        gateway_change("deleted", Some(&before), None)?,
    )
    .await?;
    transaction.commit().await?;
    Ok(())
}

/// Why a gateway was not found or not changed: the site or the gateway is
/// missing, or the gateway has another version than the one expected.
async fn not_found_or_conflict(
    client: &impl GenericClient,
    site: &SiteSlug,
    id: Uuid,
) -> Result<Error> {
    let statement = client
        .prepare_cached(
            "SELECT g.version FROM metadata.sites s
             LEFT JOIN metadata.gateways g ON g.site_id = s.id AND g.id = $2
             WHERE s.slug = $1",
        )
        .await?;
    let row = client.query_opt(&statement, &[&site.as_str(), &id]).await?;
    Ok(match row.map(|row| row.get::<_, Option<i64>>("version")) {
        None => Error::SiteNotFound(site.clone()),
        Some(None) => Error::GatewayNotFound {
            site: site.clone(),
            id,
        },
        Some(Some(current)) => Error::VersionConflict { current },
    })
}

/// Registers `sensors` at the gateway's site in one transaction: all of
/// them or, on any error, none; each recorded in the audit trail (action
/// `registered`) as done by `actor`. Fails with [`Error::GatewayNotFound`],
/// [`Error::SiteNotFound`], [`Error::SensorExists`] or the sensor's own
/// [`Error::InvalidInput`].
pub async fn register_gateway_sensors(
    pool: &Pool,
    actor: &Actor,
    site: &SiteSlug,
    id: Uuid,
    sensors: &[NewSensor],
) -> Result<Vec<Sensor>> {
    for sensor in sensors {
        sensor.check()?;
    }
    let mut client = pool.get().await?;
    let transaction = client.transaction().await?;
    let statement = transaction
        .prepare_cached(
            "SELECT 1 FROM metadata.gateways g JOIN metadata.sites s ON s.id = g.site_id
             WHERE s.slug = $1 AND g.id = $2 FOR SHARE OF g",
        )
        .await?;
    if transaction
        .query_opt(&statement, &[&site.as_str(), &id])
        .await?
        .is_none()
    {
        return Err(not_found_or_conflict(&transaction, site, id).await?);
    }
    let mut created = Vec::with_capacity(sensors.len());
    for sensor in sensors {
        let sensor = insert_sensor(&transaction, site, sensor).await?;
        audit::record(
            &transaction,
            actor,
            sensor_change("registered", None, Some(&sensor))?,
        )
        .await?;
        created.push(sensor);
    }
    transaction.commit().await?;
    Ok(created)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sparkplug_ids_refuse_separators_wildcards_and_controls() {
        let gateway = NewGateway::parse("Plant 1", "Kessel-Haus_ü").unwrap();
        assert_eq!(
            (gateway.group(), gateway.edge_node()),
            ("Plant 1", "Kessel-Haus_ü")
        );
        for bad in ["", "a/b", "a+", "#", "a\0b", "a\u{85}b", "tab\there"] {
            assert_eq!(
                NewGateway::parse(bad, "gw").unwrap_err().0,
                "group",
                "{bad:?}"
            );
            assert_eq!(
                NewGateway::parse("g", bad).unwrap_err().0,
                "edge_node",
                "{bad:?}"
            );
        }
        let long = "x".repeat(GATEWAY_ID_MAX_LEN + 1);
        assert!(NewGateway::parse(&long, "gw").is_err());
        assert!(NewGateway::parse(&long[1..], "gw").is_ok());
    }
}
