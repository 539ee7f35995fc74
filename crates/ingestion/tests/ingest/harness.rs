//! A running ingestion on a test's own stores and topics, and the
//! messages tests publish to it.

use std::time::Duration;
use stoker_cache::Cache;
use stoker_domain::{SensorKey, SensorType, SiteSlug, Unit, ValidRange};
use stoker_ingestion::{IngestOptions, Ingestion, MqttOptions};
use stoker_metadata::Actor;
use stoker_metadata::{NewSensor, NewSite};
use stoker_stores::Stores;
use stoker_testkit::{
    TestInflux, TestPostgres, TestRedis, unique_client_id, unique_topic_prefix, wait_until,
};
use stoker_timeseries::Influx;
use tokio_util::sync::CancellationToken;

pub(crate) struct Harness {
    pub(crate) postgres: TestPostgres,
    pub(crate) influx: TestInflux,
    pub(crate) redis: TestRedis,
    pub(crate) cache: Cache,
    pub(crate) topics: String,
    pub(crate) client_id: String,
    pub(crate) spool: std::path::PathBuf,
    pub(crate) ingestion: Option<Ingestion>,
    pub(crate) shutdown: CancellationToken,
}

/// Where ingestion reads and writes: the shared servers unless a test
/// brings its own; and limits a test may tighten.
#[derive(Default)]
pub(crate) struct Backends {
    pub(crate) influx: Option<Influx>,
    pub(crate) cache: Option<Cache>,
    pub(crate) mqtt_url: Option<String>,
    pub(crate) tune: Option<fn(&mut IngestOptions)>,
    /// The Sparkplug host's settings, and the gateways (group, edge node)
    /// bound to `boiler-house-1` before ingestion starts.
    pub(crate) sparkplug: Option<(stoker_ingestion::SparkplugOptions, Vec<(String, String)>)>,
}

impl Harness {
    /// A site `boiler-house-1` with a pressure (0..25 bar) and a flue
    /// temperature (0..600 °C) sensor, and ingestion running.
    pub(crate) async fn start() -> Self {
        Self::start_with(Backends::default()).await
    }

    pub(crate) async fn start_with(backends: Backends) -> Self {
        let postgres = TestPostgres::create().await;
        let postgres_options = postgres.options();
        let pool = postgres.migrated_pool().await;
        stoker_ingestion::migrate(&pool).await.unwrap();
        let site = NewSite::parse("boiler-house-1", "Boiler house 1", "UTC").unwrap();
        stoker_metadata::create_site(&pool, &Actor::Cli, &site)
            .await
            .unwrap();
        for (key, sensor_type, unit, max) in [
            ("b1_steam_pressure", "pressure", "bar", 25.0),
            ("b1_flue_temp", "temperature", "°C", 600.0),
        ] {
            let sensor = NewSensor {
                key: SensorKey::parse(key).unwrap(),
                sensor_type: SensorType::parse(sensor_type).unwrap(),
                unit: Unit::parse(unit).unwrap(),
                kind: stoker_domain::SensorKind::Numeric,
                states: stoker_domain::States::default(),
                range: ValidRange::new(Some(0.0), Some(max)).unwrap(),
            };
            stoker_metadata::create_sensor(&pool, &Actor::Cli, site.slug(), &sensor)
                .await
                .unwrap();
        }
        let influx = TestInflux::create().await;
        let redis = TestRedis::new();
        let cache = backends.cache.unwrap_or_else(|| redis.cache());
        let spool = std::env::temp_dir().join(unique_client_id("stoker-test-spool"));
        let topics = unique_topic_prefix();
        let client_id = unique_client_id("ingest-test");
        let mut options = IngestOptions {
            mqtt: MqttOptions {
                client_id: client_id.clone(),
                topic_prefix: topics.clone(),
                ..MqttOptions::default()
            },
            linger: Duration::from_millis(20),
            spool_dir: spool.clone(),
            ..IngestOptions::default()
        };
        if let Some(url) = backends.mqtt_url {
            options.mqtt.url = url;
        }
        if let Some(tune) = backends.tune {
            tune(&mut options);
        }
        if let Some((sparkplug, gateways)) = backends.sparkplug {
            options.sparkplug = sparkplug;
            for (group, edge_node) in gateways {
                let gateway = stoker_metadata::NewGateway::parse(&group, &edge_node).unwrap();
                stoker_metadata::create_gateway(&pool, &Actor::Cli, site.slug(), &gateway)
                    .await
                    .unwrap();
            }
        }
        let shutdown = CancellationToken::new();
        let stores = Stores {
            pool,
            postgres: postgres_options,
            influx: backends.influx.unwrap_or_else(|| influx.influx().clone()),
            cache: cache.clone(),
        };
        let ingestion = Ingestion::start(&options, stores, shutdown.clone())
            .await
            .unwrap();
        wait_until("ingestion is subscribed", Duration::from_secs(10), || {
            ingestion.is_connected()
        })
        .await;
        Self {
            postgres,
            influx,
            redis,
            cache,
            topics,
            client_id,
            spool,
            ingestion: Some(ingestion),
            shutdown,
        }
    }

    pub(crate) fn ingestion(&self) -> &Ingestion {
        self.ingestion.as_ref().unwrap()
    }

    pub(crate) fn topic(&self, rest: &str) -> String {
        format!("{}{rest}", self.topics)
    }

    pub(crate) async fn stop(mut self) {
        self.shutdown.cancel();
        if let Some(ingestion) = self.ingestion.take() {
            tokio::time::timeout(Duration::from_secs(20), ingestion.wait())
                .await
                .unwrap();
        }
        stoker_testkit::clear_mqtt_session(&self.client_id).await;
        let _ = std::fs::remove_dir_all(&self.spool);
    }
}

/// `count` messages of both sensors, one second apart, starting at `start`.
pub(crate) fn telemetry_run(harness: &Harness, start: i64, count: i64) -> Vec<(String, Vec<u8>)> {
    (0..count)
        .map(|index| {
            let ts = start + index * 1000;
            let pressure = 10.0 + (index % 10) as f64 / 10.0;
            let payload = format!(r#"{{"ts": {ts}, "values": {{"b1_steam_pressure": {pressure}, "b1_flue_temp": 180.5}}}}"#);
            (harness.topic("sites/boiler-house-1/telemetry"), payload.into_bytes())
        })
        .collect()
}

pub(crate) fn site() -> SiteSlug {
    SiteSlug::parse("boiler-house-1").unwrap()
}

pub(crate) fn key(name: &str) -> SensorKey {
    SensorKey::parse(name).unwrap()
}
