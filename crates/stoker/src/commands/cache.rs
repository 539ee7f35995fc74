//! `stoker cache rebuild`: refills Redis from the stores of record (after a
//! restore, or a Redis that lost its data). Redis only caches, so this is
//! all a restore needs to do for it.
//!
//! Every site and its sensors come from Postgres, each site's newest
//! readings from InfluxDB; they reach Redis through the same latest-value
//! writer as ingestion, which never replaces a newer value, so running this
//! beside a live ingestion is safe. Each site's cached dashboard is dropped.

use std::collections::{BTreeMap, HashMap};
use std::process::ExitCode;

use anyhow::Context;
use stoker_cache::{Cache, LatestValue};
use stoker_domain::{ReadingValue, SensorKey, SiteSlug, redact_url};
use stoker_metadata::RegistryEntry;
use stoker_timeseries::{Influx, LatestPoint};

use crate::cli::{CacheCommand, StoreArgs};

/// Latest values written per Redis call.
const CHUNK: usize = 500;

pub(super) async fn run(command: CacheCommand) -> anyhow::Result<ExitCode> {
    match command {
        CacheCommand::Rebuild { stores } => rebuild(&stores).await,
    }
}

/// What the rebuild did, over every site.
#[derive(Debug, Default)]
struct Totals {
    sites: usize,
    sensors: usize,
    refilled: usize,
    kept_newer: usize,
    without_data: usize,
    unknown_in_influx: usize,
}

async fn rebuild(stores: &StoreArgs) -> anyhow::Result<ExitCode> {
    let postgres_target = stores.postgres.describe();
    let postgres_hint = || {
        format!(
            "reading sites and sensors from Postgres at {postgres_target} \
             (set DATABASE_URL or POSTGRES_HOST, POSTGRES_PORT, POSTGRES_DB, POSTGRES_USER, DB_PASSWORD)"
        )
    };
    let pool = stoker_postgres::connect(&stores.postgres).with_context(postgres_hint)?;
    let migrated: bool = pool
        .get()
        .await
        .with_context(postgres_hint)?
        .query_one("SELECT to_regclass('metadata.sites') IS NOT NULL", &[])
        .await
        .with_context(postgres_hint)?
        .get(0);
    if !migrated {
        anyhow::bail!(
            "Postgres database {postgres_target} has no Stoker schemas: point DATABASE_URL (or POSTGRES_DB) \
             at Stoker's database (a restored one included), or run `stoker migrate` first"
        );
    }
    let sites = stoker_metadata::list_sites(&pool)
        .await
        .with_context(postgres_hint)?;
    let mut sensors: HashMap<SiteSlug, Vec<RegistryEntry>> = HashMap::new();
    for entry in stoker_metadata::registry(&pool)
        .await
        .with_context(postgres_hint)?
    {
        sensors.entry(entry.site.clone()).or_default().push(entry);
    }

    let influx_url = redact_url(&stores.influx.url);
    let influx = Influx::connect(&stores.influx).await.with_context(|| {
        format!("connecting to InfluxDB at {influx_url} (set INFLUX_URL, INFLUX_TOKEN)")
    })?;
    let exists = influx.database_exists().await.with_context(|| {
        format!(
            "asking InfluxDB at {influx_url} for database {}",
            influx.database()
        )
    })?;
    if !exists {
        anyhow::bail!(
            "InfluxDB at {influx_url} has no database {:?}: set INFLUX_BUCKET to the one holding the readings",
            influx.database()
        );
    }

    let redis_url = redact_url(&stores.redis.url);
    let redis_hint = || format!("Redis at {redis_url} (set REDIS_URL)");
    let cache = Cache::connect(&stores.redis).with_context(redis_hint)?;
    cache.ping().await.with_context(redis_hint)?;

    println!(
        "rebuilding the Redis cache{} from Postgres {postgres_target} and InfluxDB {influx_url} (database {}): {} sites",
        prefix_note(&stores.redis.key_prefix),
        influx.database(),
        sites.len()
    );
    let mut totals = Totals::default();
    for site in &sites {
        let entries = sensors.remove(&site.slug).unwrap_or_default();
        let points = influx
            .latest_per_sensor(&site.slug)
            .await
            .with_context(|| {
                format!(
                    "reading the latest readings of site {} from InfluxDB at {influx_url}",
                    site.slug
                )
            })?;
        let outcome = refill_site(&cache, &site.slug, &entries, points)
            .await
            .with_context(|| {
                format!(
                    "writing the latest values of site {}; {}",
                    site.slug,
                    redis_hint()
                )
            })?;
        cache.forget_dashboard(&site.slug).await.with_context(|| {
            format!(
                "dropping the dashboard of site {}; {}",
                site.slug,
                redis_hint()
            )
        })?;
        println!(
            "site {}: {} sensors, {} refilled{}, {} without data in InfluxDB{}; dashboard dropped",
            site.slug,
            entries.len(),
            outcome.refilled,
            kept_note(outcome.kept_newer),
            outcome.without_data,
            unknown_note(outcome.unknown_in_influx),
        );
        totals.sites += 1;
        totals.sensors += entries.len();
        totals.refilled += outcome.refilled;
        totals.kept_newer += outcome.kept_newer;
        totals.without_data += outcome.without_data;
        totals.unknown_in_influx += outcome.unknown_in_influx;
    }
    println!(
        "rebuilt: {} sites, {} sensors: {} refilled{}, {} without data in InfluxDB{}",
        totals.sites,
        totals.sensors,
        totals.refilled,
        kept_note(totals.kept_newer),
        totals.without_data,
        unknown_note(totals.unknown_in_influx),
    );
    Ok(ExitCode::SUCCESS)
}

/// What refilling one site did.
#[derive(Debug, Default)]
struct SiteOutcome {
    refilled: usize,
    kept_newer: usize,
    without_data: usize,
    unknown_in_influx: usize,
}

/// Writes each registered sensor's newest reading to Redis.
async fn refill_site(
    cache: &Cache,
    site: &SiteSlug,
    entries: &[RegistryEntry],
    points: Vec<LatestPoint>,
) -> stoker_cache::Result<SiteOutcome> {
    // A sensor whose type changed has a series per type: the newest wins.
    let mut newest: BTreeMap<SensorKey, LatestPoint> = BTreeMap::new();
    for point in points {
        match newest.get(&point.sensor) {
            Some(held) if held.timestamp >= point.timestamp => {}
            _ => {
                newest.insert(point.sensor.clone(), point);
            }
        }
    }
    let mut outcome = SiteOutcome::default();
    let mut values = Vec::with_capacity(entries.len());
    for entry in entries {
        // InfluxDB's float, read back in the sensor's kind (a state index
        // its states lack counts as no data).
        let value = newest.remove(&entry.key).and_then(|point| {
            ReadingValue::from_stored(entry.kind, &entry.states, point.value)
                .map(|value| (value, point.timestamp))
        });
        match value {
            Some((value, ts)) => values.push((
                &entry.key,
                LatestValue {
                    value,
                    ts,
                    sensor_type: entry.sensor_type.clone(),
                    unit: entry.unit.clone(),
                },
            )),
            None => outcome.without_data += 1,
        }
    }
    // Series of sensors Postgres no longer has are not cached.
    outcome.unknown_in_influx = newest.len();
    for chunk in values.chunks(CHUNK) {
        let keyed: Vec<_> = chunk
            .iter()
            .map(|(sensor, latest)| (site, *sensor, latest))
            .collect();
        let written = cache.set_latest(&keyed).await?;
        outcome.refilled += written;
        outcome.kept_newer += chunk.len().saturating_sub(written);
    }
    Ok(outcome)
}

fn prefix_note(prefix: &str) -> String {
    if prefix.is_empty() {
        String::new()
    } else {
        format!(" (key prefix {prefix:?})")
    }
}

fn kept_note(kept_newer: usize) -> String {
    if kept_newer == 0 {
        String::new()
    } else {
        format!(" ({kept_newer} kept a newer value already in Redis)")
    }
}

fn unknown_note(unknown: usize) -> String {
    if unknown == 0 {
        String::new()
    } else {
        format!(", {unknown} series of sensors not in Postgres skipped")
    }
}
