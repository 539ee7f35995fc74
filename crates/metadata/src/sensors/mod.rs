//! Sensors: what each site measures, and the registry readings are
//! validated against.

use chrono::{DateTime, Utc};
use deadpool_postgres::{GenericClient, Pool};
use serde::Serialize;
use stoker_domain::{SensorKey, SensorKind, SensorType, SiteSlug, States, Unit, ValidRange};
use uuid::Uuid;

mod write;

pub(crate) use write::sensor_change;
pub use write::{create_sensor, delete_sensor, set_sensor_out_of_service, update_sensor};

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
    /// What its readings are: numbers, booleans or states.
    pub kind: SensorKind,
    /// A `state` sensor's states, in order (absent for the other kinds).
    #[serde(skip_serializing_if = "States::is_empty")]
    pub states: States,
    /// Lowest valid reading, if bounded.
    pub min: Option<f64>,
    /// Highest valid reading, if bounded.
    pub max: Option<f64>,
    /// Taken out of service by an operator (its alarms recorded as
    /// suppressed until then); not versioned. `null`: in service.
    pub out_of_service: Option<stoker_domain::OutOfService>,
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
    /// What its readings are.
    pub kind: SensorKind,
    /// Its states: at least one for a `state` sensor, none for the others.
    pub states: States,
    /// Valid range of its readings (only a numeric sensor has one).
    pub range: ValidRange,
}

impl NewSensor {
    /// Checks that the kind, the states and the range fit together: a
    /// `state` sensor declares states and the others none, and only a
    /// numeric sensor has a valid range. `Err`: the field and what is wrong.
    pub fn check(&self) -> Result<(), (&'static str, String)> {
        check_kind(self.kind, &self.states, &self.range)
    }
}

/// Whether a sensor of `kind` may have these states and this range.
/// `Err`: the field to blame and what is wrong.
pub(crate) fn check_kind(
    kind: SensorKind,
    states: &States,
    range: &ValidRange,
) -> Result<(), (&'static str, String)> {
    match kind {
        SensorKind::State if states.is_empty() => Err((
            "states",
            "a state sensor needs its states: a list of at least one name".to_owned(),
        )),
        SensorKind::Numeric | SensorKind::Boolean if !states.is_empty() => Err((
            "states",
            format!("only a state sensor has states; this one is {kind}"),
        )),
        SensorKind::Boolean | SensorKind::State
            if range.min().is_some() || range.max().is_some() =>
        {
            Err((
                if range.min().is_some() { "min" } else { "max" },
                format!("only a numeric sensor has a valid range; this one is {kind}"),
            ))
        }
        _ => Ok(()),
    }
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
    /// The kind, which may only be the current one (it never changes).
    pub kind: Option<SensorKind>,
    /// The new states: the current ones, in order, and possibly more at
    /// the end (InfluxDB holds a reading's index in the list).
    pub states: Option<States>,
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
    /// What its readings are.
    pub kind: SensorKind,
    /// A `state` sensor's states.
    pub states: States,
    /// When it was created (a sensor younger than a no-data rule's timeout
    /// has not been silent for that long).
    pub created_at: DateTime<Utc>,
}

/// Every site and sensor ([`site_registry`]).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct SiteRegistry {
    /// The sites without any sensor.
    pub sites: Vec<SiteSlug>,
    /// Every sensor of every site.
    pub sensors: Vec<RegistryEntry>,
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
        kind: SensorKind::parse(row.get::<_, &str>("kind")).map_err(invalid("sensor kind"))?,
        states: States::parse(row.get::<_, Vec<String>>("states"))
            .map_err(invalid("sensor states"))?,
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
        kind: entry.kind,
        states: entry.states,
        min: entry.range.min(),
        max: entry.range.max(),
        out_of_service: crate::service::from_row(row, Utc::now())?,
        version: row.get("version"),
        created_at: row.get("created_at"),
        updated_at: row.get("updated_at"),
    })
}

const COLUMNS: &str = "se.id, s.slug AS site, se.key, se.type, se.unit, se.min_value, \
                       se.max_value, se.kind, se.states, se.version, se.created_at, \
                       se.updated_at, se.out_of_service_until, se.out_of_service_reason, \
                       se.out_of_service_by, se.out_of_service_since";

/// Inserts a sensor whose kind, states and range were checked, on
/// `client` (a connection, or a transaction registering several).
pub(crate) async fn insert_sensor(
    client: &impl GenericClient,
    site: &SiteSlug,
    sensor: &NewSensor,
) -> Result<Sensor> {
    let statement = client
        .prepare_cached(&format!(
            "WITH inserted AS (
                 INSERT INTO metadata.sensors
                     (id, site_id, key, type, unit, min_value, max_value, kind, states)
                 SELECT $1, s.id, $3, $4, $5, $6, $7, $8, $9
                 FROM metadata.sites s WHERE s.slug = $2
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
                &sensor.kind.as_str(),
                &sensor.states.names().collect::<Vec<_>>(),
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
                    se.kind, se.states, se.created_at
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

/// Every site, and every sensor of every site: what ingestion validates
/// against, so that a reading for a site without sensors (yet) is refused
/// for its sensor, not its site. One statement, so one snapshot.
pub async fn site_registry(pool: &Pool) -> Result<SiteRegistry> {
    let client = pool.get().await?;
    let statement = client
        .prepare_cached(
            "SELECT s.slug AS site, se.key, se.type, se.unit, se.min_value, se.max_value,
                    se.kind, se.states, se.created_at
             FROM metadata.sites s LEFT JOIN metadata.sensors se ON se.site_id = s.id",
        )
        .await?;
    let mut registry = SiteRegistry::default();
    for row in client.query(&statement, &[]).await? {
        if row.get::<_, Option<String>>("key").is_some() {
            registry.sensors.push(registry_entry(&row)?);
        } else {
            registry
                .sites
                .push(SiteSlug::parse(row.get::<_, String>("site")).map_err(invalid("site slug"))?);
        }
    }
    Ok(registry)
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
                    se.kind, se.states, se.version, se.created_at, se.updated_at,
                    se.out_of_service_until, se.out_of_service_reason, se.out_of_service_by,
                    se.out_of_service_since
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
    client: &impl GenericClient,
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
