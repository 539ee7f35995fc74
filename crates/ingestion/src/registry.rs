//! The sensor registry (every site and its sensors), held in memory for
//! speed and refreshed from Postgres whenever metadata announces a change
//! (of a site or a sensor).

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock, RwLock};
use std::time::{Duration, Instant};

use stoker_cache::LatestSlot;
use stoker_domain::{
    ReadingValue, SensorKey, SensorKind, SensorType, SiteSlug, States, Unit, ValidRange,
};
use stoker_metadata::RegistryEntry;
use stoker_postgres::{Pool, PostgresOptions};
use stoker_timeseries::line::Series;
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

/// What ingestion knows of one sensor.
#[derive(Debug)]
pub(crate) struct SensorEntry {
    /// Unique across every registry this process loads: a cheap map key
    /// for coalescing latest values within a batch.
    pub serial: u64,
    pub site: SiteSlug,
    pub key: SensorKey,
    pub sensor_type: SensorType,
    pub unit: Unit,
    pub range: ValidRange,
    pub kind: SensorKind,
    pub states: States,
    /// Its readings' line-protocol series, encoded once.
    pub series: Series,
    /// Its Redis key and the constant part of its latest JSON, encoded
    /// by the latest task the first time it writes this sensor.
    pub latest_slot: OnceLock<LatestSlot>,
}

/// A validated reading's value in its sensor's kind. `Copy` and without
/// allocation: a state is its index in the sensor's states.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) enum Typed {
    Number(f64),
    Boolean(bool),
    State(u32),
}

impl SensorEntry {
    /// An entry with a serial of its own.
    pub(crate) fn new(
        site: SiteSlug,
        key: SensorKey,
        sensor_type: SensorType,
        unit: Unit,
        range: ValidRange,
        kind: SensorKind,
        states: States,
    ) -> Self {
        Self {
            serial: NEXT_SERIAL.fetch_add(1, Ordering::Relaxed),
            series: Series::new(&site, &key, &sensor_type),
            latest_slot: OnceLock::new(),
            site,
            key,
            sensor_type,
            unit,
            range,
            kind,
            states,
        }
    }

    /// The value as the API and Redis give it: `81.5`, `true`, `"firing"`.
    pub(crate) fn native(&self, value: Typed) -> ReadingValue {
        match value {
            Typed::Number(number) => ReadingValue::Number(number),
            Typed::Boolean(flag) => ReadingValue::Boolean(flag),
            Typed::State(index) => ReadingValue::State(
                self.states
                    .name(index)
                    .map(|name| name.as_str().to_owned())
                    .unwrap_or_default(),
            ),
        }
    }
}

/// The hasher of the maps a reading is looked up in: foldhash, several
/// times faster than the standard SipHash on short keys. Their keys are
/// the registered sites and sensors, not what senders choose, and the
/// seed is random per process.
pub(crate) type Fast = foldhash::fast::RandomState;

/// A site's sensors by key.
pub(crate) type Sensors = HashMap<SensorKey, Arc<SensorEntry>, Fast>;

/// One immutable snapshot of the registry.
#[derive(Debug, Default)]
pub(crate) struct Registry {
    sites: HashMap<SiteSlug, Sensors, Fast>,
    sensors: usize,
}

static NEXT_SERIAL: AtomicU64 = AtomicU64::new(0);

impl Registry {
    fn from_entries(empty_sites: Vec<SiteSlug>, entries: Vec<RegistryEntry>) -> Self {
        let mut sites: HashMap<SiteSlug, Sensors, Fast> = empty_sites
            .into_iter()
            .map(|site| (site, Sensors::default()))
            .collect();
        let sensors = entries.len();
        for entry in entries {
            let sensor = Arc::new(SensorEntry::new(
                entry.site.clone(),
                entry.key.clone(),
                entry.sensor_type,
                entry.unit,
                entry.range,
                entry.kind,
                entry.states,
            ));
            sites
                .entry(entry.site)
                .or_default()
                .insert(entry.key, sensor);
        }
        Self { sites, sensors }
    }

    /// The sensors of a site (none, for a site without sensors), if the
    /// site is known.
    pub(crate) fn site(&self, slug: &str) -> Option<&Sensors> {
        self.sites.get(slug)
    }

    /// Number of sensors across all sites.
    pub(crate) fn sensor_count(&self) -> usize {
        self.sensors
    }

    /// Whether any of these sensors of `site` (or the site) is unknown.
    pub(crate) fn lacks_any<'a>(
        &self,
        site: &str,
        mut sensors: impl Iterator<Item = &'a str>,
    ) -> bool {
        match self.site(site) {
            None => true,
            Some(known) => sensors.any(|sensor| !known.contains_key(sensor)),
        }
    }
}

/// Least time between two reloads that an unknown name forces.
const FORCED_RELOAD_INTERVAL: Duration = Duration::from_secs(1);
/// How long a forced reload may hold up validation.
const FORCED_RELOAD_TIMEOUT: Duration = Duration::from_millis(500);
/// After a forced reload fails, none is tried for this long (the change
/// notifications still reload as usual).
const FORCED_RELOAD_BACKOFF: Duration = Duration::from_secs(30);

/// The current snapshot, swapped whole on every reload.
#[derive(Debug, Default)]
pub(crate) struct SharedRegistry {
    current: RwLock<Arc<Registry>>,
    /// When an unknown name may next force a reload; none: at once.
    next_forced: Mutex<Option<Instant>>,
}

impl SharedRegistry {
    pub(crate) fn snapshot(&self) -> Arc<Registry> {
        match self.current.read() {
            Ok(guard) => Arc::clone(&guard),
            Err(poisoned) => Arc::clone(&poisoned.into_inner()),
        }
    }

    fn replace(&self, registry: Registry) {
        let registry = Arc::new(registry);
        match self.current.write() {
            Ok(mut guard) => *guard = registry,
            Err(poisoned) => *poisoned.into_inner() = registry,
        }
    }

    /// Loads the registry from Postgres; on failure keeps the last one.
    pub(crate) async fn reload(&self, pool: &Pool) -> stoker_metadata::Result<usize> {
        let loaded = stoker_metadata::site_registry(pool).await?;
        let registry = Registry::from_entries(loaded.sites, loaded.sensors);
        let count = registry.sensor_count();
        self.replace(registry);
        Ok(count)
    }

    /// Lets the next unknown name reload the registry at once (this
    /// process has just changed metadata: [`crate::Intake::metadata_changed`]).
    pub(crate) fn allow_forced_reload(&self) {
        *self
            .next_forced
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = None;
    }

    /// The registry to validate a message that names an unknown site or
    /// sensor against. A sensor created a moment ago is in Postgres before
    /// its change notice reaches this process, so the registry is reloaded
    /// first, at most once per second, bounded in time (a slow or failed
    /// reload keeps the current registry and pauses forced reloads for
    /// 30 s). A stream of truly unknown names therefore costs one small
    /// query per second at most, unless this process changed metadata
    /// meanwhile ([`Self::allow_forced_reload`]).
    pub(crate) async fn reload_for_unknown(&self, pool: &Pool) -> Arc<Registry> {
        let now = Instant::now();
        {
            let mut next = self
                .next_forced
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            if next.is_some_and(|next| now < next) {
                return self.snapshot();
            }
            *next = Some(now + FORCED_RELOAD_INTERVAL);
        }
        match tokio::time::timeout(FORCED_RELOAD_TIMEOUT, self.reload(pool)).await {
            Ok(Ok(sensors)) => {
                tracing::debug!(sensors, "sensor registry reloaded for an unknown name");
            }
            outcome => {
                let error = match outcome {
                    Ok(Err(error)) => error.to_string(),
                    _ => format!("no answer within {FORCED_RELOAD_TIMEOUT:?}"),
                };
                tracing::warn!(%error, retry_in = ?FORCED_RELOAD_BACKOFF, "could not reload the sensor registry for an unknown name; keeping the last one");
                *self
                    .next_forced
                    .lock()
                    .unwrap_or_else(std::sync::PoisonError::into_inner) =
                    Some(Instant::now() + FORCED_RELOAD_BACKOFF);
            }
        }
        self.snapshot()
    }

    /// Loads the registry, retrying with backoff until it succeeds or
    /// `shutdown`. Ingestion takes no reading before this: without a
    /// registry every reading would be refused.
    pub(crate) async fn load_initial(&self, pool: &Pool, shutdown: &CancellationToken) -> bool {
        let mut backoff = Duration::from_millis(250);
        loop {
            match self.reload(pool).await {
                Ok(sensors) => {
                    tracing::info!(sensors, "sensor registry loaded");
                    return true;
                }
                Err(error) => {
                    tracing::warn!(%error, retry_in = ?backoff, "cannot load the sensor registry yet");
                    tokio::select! {
                        () = shutdown.cancelled() => return false,
                        () = tokio::time::sleep(backoff) => {}
                    }
                    backoff = (backoff * 2).min(Duration::from_secs(5));
                }
            }
        }
    }

    /// Reloads on every announced change until `shutdown`. While Postgres
    /// is down, the last registry stays in use.
    pub(crate) async fn follow_changes(
        self: Arc<Self>,
        pool: Pool,
        options: PostgresOptions,
        shutdown: CancellationToken,
    ) {
        let (generation, mut changes) = watch::channel(0_u64);
        // Only what the registry holds: not every gateway birth or rule.
        let listener = tokio::spawn(stoker_metadata::watch_changes_to(
            options,
            &["sites", "sensors"],
            generation,
            shutdown.clone(),
        ));
        loop {
            tokio::select! {
                () = shutdown.cancelled() => break,
                changed = changes.changed() => {
                    if changed.is_err() {
                        break;
                    }
                    changes.mark_unchanged();
                    match self.reload(&pool).await {
                        Ok(sensors) => tracing::debug!(sensors, "sensor registry reloaded"),
                        Err(error) => tracing::warn!(%error, "sensor registry reload failed; keeping the last one"),
                    }
                }
            }
        }
        if let Ok(Err(error)) = listener.await {
            tracing::warn!(%error, "metadata change listener stopped");
        }
    }
}
