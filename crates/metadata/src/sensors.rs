//! Sensors: what each site measures, and the registry readings are
//! validated against.

use chrono::{DateTime, Utc};
use deadpool_postgres::Pool;
use serde::Serialize;
use stoker_domain::{SensorKey, SensorType, SiteSlug, Unit, ValidRange};
use uuid::Uuid;

use crate::{Error, Page, Result, fetch_limit, get_site, is_unique_violation};

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

/// Changes to a sensor, already validated: `None` keeps the current value.
/// The key and the site never change.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct SensorChanges {
    /// The new type.
    pub sensor_type: Option<SensorType>,
    /// The new unit.
    pub unit: Option<Unit>,
    /// The new valid range: replaces both bounds (an unbounded side of it
    /// clears that bound).
    pub range: Option<ValidRange>,
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
    /// When it was created (a sensor younger than a no-data rule's timeout
    /// has not been silent for that long).
    pub created_at: DateTime<Utc>,
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
        created_at: row.get("created_at"),
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
            "SELECT s.slug AS site, se.key, se.type, se.unit, se.min_value, se.max_value,
                    se.created_at
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

/// One sensor of a site. Fails with [`Error::SensorNotFound`], or
/// [`Error::SiteNotFound`] when the site itself is unknown.
pub async fn get_sensor(pool: &Pool, site: &SiteSlug, key: &SensorKey) -> Result<Sensor> {
    let client = pool.get().await?;
    let statement = client
        .prepare_cached(&format!(
            "SELECT {COLUMNS} FROM metadata.sensors se JOIN metadata.sites s ON s.id = se.site_id
             WHERE s.slug = $1 AND se.key = $2"
        ))
        .await?;
    match client
        .query_opt(&statement, &[&site.as_str(), &key.as_str()])
        .await?
    {
        Some(row) => from_row(&row),
        None => Err(not_found(&client, site, key).await?),
    }
}

/// One page of a site's sensors in key order (byte order), starting after
/// the key `after`. `limit` is 1 to [`MAX_PAGE_LIMIT`](crate::MAX_PAGE_LIMIT);
/// an unknown site is [`Error::SiteNotFound`], not an empty page.
pub async fn list_sensors_page(
    pool: &Pool,
    site: &SiteSlug,
    limit: i64,
    after: Option<&SensorKey>,
) -> Result<Page<Sensor>> {
    let fetch = fetch_limit(limit)?;
    let client = pool.get().await?;
    // One statement, so that "the site exists" and its sensors are read
    // from one snapshot: a site without (further) sensors gives one row of
    // NULL sensor columns.
    let statement = client
        .prepare_cached(
            "SELECT se.id, s.slug AS site, se.key, se.type, se.unit, se.min_value, se.max_value,
                    se.version, se.created_at, se.updated_at
             FROM metadata.sites s
             LEFT JOIN LATERAL (
                 SELECT * FROM metadata.sensors
                 WHERE site_id = s.id AND ($2::text IS NULL OR key COLLATE \"C\" > $2::text)
                 ORDER BY key COLLATE \"C\"
                 LIMIT $3
             ) se ON true
             WHERE s.slug = $1
             ORDER BY se.key COLLATE \"C\"",
        )
        .await?;
    let rows = client
        .query(
            &statement,
            &[&site.as_str(), &after.map(SensorKey::as_str), &fetch],
        )
        .await?;
    if rows.is_empty() {
        return Err(Error::SiteNotFound(site.clone()));
    }
    let sensors = rows
        .iter()
        .filter(|row| row.get::<_, Option<Uuid>>("id").is_some())
        .map(from_row)
        .collect::<Result<Vec<_>>>()?;
    Ok(Page::from_rows(sensors, limit, |sensor| {
        sensor.key.to_string()
    }))
}

/// Changes a sensor's type, unit or valid range if its version is still
/// `expected_version`; the version goes up by one. Fails with
/// [`Error::SiteNotFound`], [`Error::SensorNotFound`] or
/// [`Error::VersionConflict`] (with the current version).
pub async fn update_sensor(
    pool: &Pool,
    site: &SiteSlug,
    key: &SensorKey,
    expected_version: i64,
    changes: &SensorChanges,
) -> Result<Sensor> {
    let client = pool.get().await?;
    let statement = client
        .prepare_cached(&format!(
            "UPDATE metadata.sensors se
             SET type = coalesce($4::text, se.type),
                 unit = coalesce($5::text, se.unit),
                 min_value = CASE WHEN $6::boolean THEN $7::double precision ELSE se.min_value END,
                 max_value = CASE WHEN $6::boolean THEN $8::double precision ELSE se.max_value END,
                 version = se.version + 1,
                 updated_at = now()
             FROM metadata.sites s
             WHERE s.id = se.site_id AND s.slug = $1 AND se.key = $2 AND se.version = $3
             RETURNING {COLUMNS}"
        ))
        .await?;
    let range = changes.range;
    let updated = client
        .query_opt(
            &statement,
            &[
                &site.as_str(),
                &key.as_str(),
                &expected_version,
                &changes.sensor_type.as_ref().map(SensorType::as_str),
                &changes.unit.as_ref().map(Unit::as_str),
                &range.is_some(),
                &range.and_then(|range| range.min()),
                &range.and_then(|range| range.max()),
            ],
        )
        .await?;
    match updated {
        Some(row) => from_row(&row),
        None => Err(not_found_or_conflict(&client, site, key).await?),
    }
}

/// Deletes a sensor, if its version is `expected_version` (when given).
/// Alert rules that name its key stay (they may match the key at other
/// sites, or a sensor created again later). Fails with
/// [`Error::SiteNotFound`], [`Error::SensorNotFound`] or
/// [`Error::VersionConflict`].
pub async fn delete_sensor(
    pool: &Pool,
    site: &SiteSlug,
    key: &SensorKey,
    expected_version: Option<i64>,
) -> Result<()> {
    let client = pool.get().await?;
    let statement = client
        .prepare_cached(
            "DELETE FROM metadata.sensors se USING metadata.sites s
             WHERE s.id = se.site_id AND s.slug = $1 AND se.key = $2
               AND ($3::bigint IS NULL OR se.version = $3::bigint)",
        )
        .await?;
    let deleted = client
        .execute(
            &statement,
            &[&site.as_str(), &key.as_str(), &expected_version],
        )
        .await?;
    if deleted > 0 {
        return Ok(());
    }
    Err(not_found_or_conflict(&client, site, key).await?)
}

/// Why a sensor was not found: its site or itself is missing.
async fn not_found(
    client: &deadpool_postgres::Client,
    site: &SiteSlug,
    key: &SensorKey,
) -> Result<Error> {
    not_found_or_conflict(client, site, key).await
}

/// Why a change to a sensor matched no row: the site or the sensor is
/// missing, or the sensor has another version than the one expected.
async fn not_found_or_conflict(
    client: &deadpool_postgres::Client,
    site: &SiteSlug,
    key: &SensorKey,
) -> Result<Error> {
    let statement = client
        .prepare_cached(
            "SELECT se.version FROM metadata.sites s
             LEFT JOIN metadata.sensors se ON se.site_id = s.id AND se.key = $2
             WHERE s.slug = $1",
        )
        .await?;
    let row = client
        .query_opt(&statement, &[&site.as_str(), &key.as_str()])
        .await?;
    Ok(match row.map(|row| row.get::<_, Option<i64>>("version")) {
        None => Error::SiteNotFound(site.clone()),
        Some(None) => Error::SensorNotFound {
            site: site.clone(),
            sensor: key.clone(),
        },
        // Another version, or (rarely) the sensor changed in between the
        // two statements: either way the caller's view is stale.
        Some(Some(current)) => Error::VersionConflict { current },
    })
}
