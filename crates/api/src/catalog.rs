//! Sites with their sensors, and API keys, held in memory for the hot
//! routes (`latest`, `history`, `dashboard`, every key check), so that they
//! cost no Postgres round trip.
//!
//! An entry is dropped when Postgres announces a metadata change
//! (LISTEN `stoker_metadata`, followed by a task of its own; a reconnection
//! counts as a change, since announcements were missed meanwhile), when
//! this process changes the site itself, and in any case after
//! [`MAX_AGE`]. Postgres stays the source of truth: a miss reads it.

use std::collections::HashMap;
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

use stoker_cache::Cache;
use stoker_domain::{SensorKey, SiteSlug, SiteZone};
use stoker_metadata::Change;
use stoker_metadata::{Sensor, StoredKey};
use stoker_postgres::{Pool, PostgresOptions};
use tokio::sync::{broadcast, watch};
use tokio_util::sync::CancellationToken;

use crate::problem::ApiError;

/// Longest an entry is trusted without a change announcement, should one
/// be lost.
const MAX_AGE: Duration = Duration::from_secs(60);

/// A site's sensors, by key.
#[derive(Debug)]
pub(crate) struct SiteEntry {
    pub sensors: Vec<Sensor>,
    /// The site's timezone (history's day buckets begin at its midnights).
    pub zone: SiteZone,
}

impl SiteEntry {
    /// One sensor of the site.
    pub(crate) fn sensor(&self, key: &SensorKey) -> Option<&Sensor> {
        self.sensors.iter().find(|sensor| &sensor.key == key)
    }
}

#[derive(Debug, Default)]
struct Entries {
    generation: u64,
    sites: HashMap<SiteSlug, (Arc<SiteEntry>, Instant)>,
    /// API keys by public id; `None` remembers an unknown id.
    keys: HashMap<String, (Option<StoredKey>, Instant)>,
}

/// Most API key ids remembered (known or not); beyond it the memory starts
/// over, so a flood of made-up ids cannot grow it.
const MAX_KEYS: usize = 10_000;

impl Entries {
    /// Forgets everything if a change was announced since it was filled.
    fn align(&mut self, generation: u64) {
        if self.generation != generation {
            self.sites.clear();
            self.keys.clear();
            self.generation = generation;
        }
    }
}

/// The in-memory catalog. Cheap to clone.
#[derive(Debug, Clone)]
pub struct Catalog {
    entries: Arc<RwLock<Entries>>,
    generation: Option<watch::Receiver<u64>>,
}

impl Catalog {
    /// A catalog kept current by a LISTEN on Postgres (tasks that run
    /// until `shutdown`). Each change also drops the cached dashboards it
    /// may concern from Redis (`dashboard:{site}`; all of them when the
    /// change names no site).
    pub fn follow(postgres: PostgresOptions, cache: Cache, shutdown: CancellationToken) -> Self {
        let (generation_tx, generation_rx) = watch::channel(0);
        let (changes_tx, mut changes) = broadcast::channel(1024);
        tokio::spawn({
            let shutdown = shutdown.clone();
            async move {
                if let Err(error) =
                    stoker_metadata::watch_change_events(postgres, changes_tx, shutdown).await
                {
                    tracing::error!(%error, "cannot follow metadata changes; cached sites expire after {MAX_AGE:?}, dashboards after their TTL");
                }
            }
        });
        tokio::spawn(async move {
            loop {
                let change = tokio::select! {
                    () = shutdown.cancelled() => break,
                    change = changes.recv() => change,
                };
                let change = match change {
                    Ok(change) => change,
                    // Missed some: anything may have changed.
                    Err(broadcast::error::RecvError::Lagged(_)) => Change::everything(),
                    Err(broadcast::error::RecvError::Closed) => break,
                };
                generation_tx.send_modify(|generation| *generation += 1);
                if change.table == "api_keys" {
                    continue;
                }
                let forgotten = match &change.site {
                    Some(site) => cache.forget_dashboard(site).await.map(drop),
                    None => cache.forget_all_dashboards().await.map(drop),
                };
                if let Err(error) = forgotten {
                    tracing::warn!(%error, "could not drop cached dashboards after a metadata change; they expire within {:?}", stoker_cache::DASHBOARD_TTL);
                }
            }
        });
        Self::with_generation(Some(generation_rx))
    }

    /// A catalog without change announcements: entries live [`MAX_AGE`] at
    /// most, and only this process's own changes drop them sooner.
    pub fn unfollowed() -> Self {
        Self::with_generation(None)
    }

    fn with_generation(generation: Option<watch::Receiver<u64>>) -> Self {
        Self {
            entries: Arc::new(RwLock::new(Entries::default())),
            generation,
        }
    }

    fn current_generation(&self) -> u64 {
        self.generation
            .as_ref()
            .map_or(0, |generation| *generation.borrow())
    }

    /// A remembered value, if it is from the current generation and not
    /// older than [`MAX_AGE`].
    fn remembered<T: Clone>(
        &self,
        generation: u64,
        pick: impl FnOnce(&Entries) -> Option<&(T, Instant)>,
    ) -> Option<T> {
        let entries = self
            .entries
            .read()
            .unwrap_or_else(|poison| poison.into_inner());
        if entries.generation != generation {
            return None;
        }
        pick(&entries)
            .filter(|(_, loaded)| loaded.elapsed() < MAX_AGE)
            .map(|(value, _)| value.clone())
    }

    /// Remembers a value loaded while `generation` was current. A change
    /// announced since the load began empties the memory first: the load
    /// itself began after the announcement was counted, so it stays.
    fn remember(&self, generation: u64, insert: impl FnOnce(&mut Entries)) {
        let mut entries = self
            .entries
            .write()
            .unwrap_or_else(|poison| poison.into_inner());
        entries.align(generation);
        insert(&mut entries);
    }

    /// The site and its sensors: from memory, or from Postgres (then kept).
    pub(crate) async fn site(
        &self,
        pool: &Pool,
        slug: &SiteSlug,
    ) -> Result<Arc<SiteEntry>, ApiError> {
        let generation = self.current_generation();
        if let Some(entry) = self.remembered(generation, |entries| entries.sites.get(slug)) {
            return Ok(entry);
        }
        // An unknown site is an error (404), not an empty list.
        let sensors = stoker_metadata::list_sensors(pool, slug)
            .await
            .map_err(ApiError::from)?;
        let site = stoker_metadata::get_site(pool, slug)
            .await
            .map_err(ApiError::from)?;
        let entry = Arc::new(SiteEntry {
            sensors,
            zone: zone_of(&site),
        });
        self.remember(generation, |entries| {
            entries
                .sites
                .insert(slug.clone(), (Arc::clone(&entry), Instant::now()));
        });
        Ok(entry)
    }

    /// The stored API key with this public id, if any: from memory, or
    /// from Postgres (then kept, unknown ids too).
    pub(crate) async fn api_key(
        &self,
        pool: &Pool,
        key_id: &str,
    ) -> Result<Option<StoredKey>, ApiError> {
        let generation = self.current_generation();
        if let Some(key) = self.remembered(generation, |entries| entries.keys.get(key_id)) {
            return Ok(key);
        }
        let key = stoker_metadata::fetch_key(pool, key_id)
            .await
            .map_err(ApiError::from)?;
        self.remember(generation, |entries| {
            if entries.keys.len() >= MAX_KEYS {
                entries.keys.clear();
            }
            entries
                .keys
                .insert(key_id.to_owned(), (key.clone(), Instant::now()));
        });
        Ok(key)
    }

    /// Drops a stored key (this process rotated or revoked it).
    pub(crate) fn forget_key(&self, key_id: &str) {
        let mut entries = self
            .entries
            .write()
            .unwrap_or_else(|poison| poison.into_inner());
        entries.keys.remove(key_id);
    }

    /// Drops a site (this process changed it).
    pub(crate) fn invalidate(&self, slug: &SiteSlug) {
        let mut entries = self
            .entries
            .write()
            .unwrap_or_else(|poison| poison.into_inner());
        entries.sites.remove(slug);
    }
}

/// A site's timezone. Postgres accepted its name; one the IANA database
/// compiled into Stoker lacks (a Postgres-only alias) is read as UTC, and
/// said so.
pub(crate) fn zone_of(site: &stoker_metadata::Site) -> SiteZone {
    SiteZone::parse(&site.timezone).unwrap_or_else(|error| {
        tracing::warn!(site = %site.slug, %error, "local days of this site are taken in UTC");
        SiteZone::UTC
    })
}
