//! Sensors: what each site measures, and the registry readings are
//! validated against.

use chrono::{DateTime, Utc};
use deadpool_postgres::Pool;
use serde::Serialize;
use stoker_domain::{SensorKey, SensorType, SiteSlug, Unit, ValidRange};
use uuid::Uuid;

use crate::{Error, Result, get_site, is_unique_violation};

/// A sensor of a site.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Sensor {
    /// Immutable id.
    pub id: Uuid,
    /// The site it belongs to.
    pub site: SiteSlug,
    /// Key, unique within the site.
    pub key: SensorKey,
    /// Sensor type (`pressure`, `temperature`, …).
    #[serde(rename = "type")]
    pub sensor_type: SensorType,
    /// Unit of its readings.
    pub unit: Unit,
    /// Lowest valid reading, if bounded.
    pub min: Option<f64>,
    /// Highest valid reading, if bounded.
    pub max: Option<f64>,
    /// Incremented by every change (optimistic locking).
    pub version: i64,
    /// When it was created.
    pub created_at: DateTime<Utc>,
    /// When it last changed.
    pub updated_at: DateTime<Utc>,
}

/// A sensor to create, already validated.
#[derive(Debug, Clone)]
pub struct NewSensor {
    /// Key, unique within the site.
    pub key: SensorKey,
    /// Sensor type.
    pub sensor_type: SensorType,
    /// Unit of its readings.
    pub unit: Unit,
    /// Valid range of its readings.
    pub range: ValidRange,
}

/// What ingestion needs to know of a sensor to validate and tag a reading.
#[derive(Debug, Clone, PartialEq)]
pub struct RegistryEntry {
    /// The site.
    pub site: SiteSlug,
    /// The sensor.
    pub key: SensorKey,
    /// Its type (an InfluxDB tag).
    pub sensor_type: SensorType,
    /// Its unit (in the latest value).
    pub unit: Unit,
    /// Its valid range.
    pub range: ValidRange,
}

fn invalid(what: &'static str) -> impl Fn(stoker_domain::ParseError) -> Error {
    move |error| Error::InvalidRow {
        what,
        reason: error.to_string(),
    }
}

fn registry_entry(row: &tokio_postgres::Row) -> Result<RegistryEntry> {
    Ok(RegistryEntry {
        site: SiteSlug::parse(row.get::<_, String>("site")).map_err(invalid("site slug"))?,
        key: SensorKey::parse(row.get::<_, String>("key")).map_err(invalid("sensor key"))?,
        sensor_type: SensorType::parse(row.get::<_, String>("type"))
            .map_err(invalid("sensor type"))?,
        unit: Unit::parse(row.get::<_, String>("unit")).map_err(invalid("unit"))?,
        range: ValidRange::new(row.get("min_value"), row.get("max_value"))
            .map_err(invalid("valid range"))?,
    })
}

fn from_row(row: &tokio_postgres::Row) -> Result<Sensor> {
    let entry = registry_entry(row)?;
    Ok(Sensor {
        id: row.get("id"),
        site: entry.site,
        key: entry.key,
        sensor_type: entry.sensor_type,
        unit: entry.unit,
        min: entry.range.min(),
        max: entry.range.max(),
        version: row.get("version"),
        created_at: row.get("created_at"),
        updated_at: row.get("updated_at"),
    })
}

const COLUMNS: &str = "se.id, s.slug AS site, se.key, se.type, se.unit, se.min_value, \
                       se.max_value, se.version, se.created_at, se.updated_at";

/// Adds a sensor to a site.
pub async fn create_sensor(pool: &Pool, site: &SiteSlug, sensor: &NewSensor) -> Result<Sensor> {
    let client = pool.get().await?;
    let statement = client
        .prepare_cached(&format!(
            "WITH inserted AS (
                 INSERT INTO metadata.sensors (id, site_id, key, type, unit, min_value, max_value)
                 SELECT $1, s.id, $3, $4, $5, $6, $7 FROM metadata.sites s WHERE s.slug = $2
                 RETURNING *
             )
             SELECT {COLUMNS} FROM inserted se JOIN metadata.sites s ON s.id = se.site_id"
        ))
        .await?;
    let rows = client
        .query(
            &statement,
            &[
                &Uuid::now_v7(),
                &site.as_str(),
                &sensor.key.as_str(),
                &sensor.sensor_type.as_str(),
                &sensor.unit.as_str(),
                &sensor.range.min(),
                &sensor.range.max(),
            ],
        )
        .await
        .map_err(|error| {
            if is_unique_violation(&error) {
                Error::SensorExists {
                    site: site.clone(),
                    sensor: sensor.key.clone(),
                }
            } else {
                error.into()
            }
        })?;
    match rows.first() {
        Some(row) => from_row(row),
        None => Err(Error::SiteNotFound(site.clone())),
    }
}

/// The sensors of a site, by key; an unknown site is an error, not an
/// empty list.
pub async fn list_sensors(pool: &Pool, site: &SiteSlug) -> Result<Vec<Sensor>> {
    let found = get_site(pool, site).await?;
    let client = pool.get().await?;
    let statement = client
        .prepare_cached(&format!(
            "SELECT {COLUMNS} FROM metadata.sensors se JOIN metadata.sites s ON s.id = se.site_id
             WHERE se.site_id = $1 ORDER BY se.key"
        ))
        .await?;
    client
        .query(&statement, &[&found.id])
        .await?
        .iter()
        .map(from_row)
        .collect()
}

/// Every sensor of every site: the registry ingestion validates against.
pub async fn registry(pool: &Pool) -> Result<Vec<RegistryEntry>> {
    let client = pool.get().await?;
    let statement = client
        .prepare_cached(
            "SELECT s.slug AS site, se.key, se.type, se.unit, se.min_value, se.max_value
             FROM metadata.sensors se JOIN metadata.sites s ON s.id = se.site_id",
        )
        .await?;
    client
        .query(&statement, &[])
        .await?
        .iter()
        .map(registry_entry)
        .collect()
}
