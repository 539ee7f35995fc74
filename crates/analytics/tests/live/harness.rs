//! The evaluation loop on a test's own stores, and what tests read back.

use stoker_analytics::store::{self, AlertFilter};
use stoker_domain::{EpochMillis, SensorKey, SensorType, SiteSlug, Unit, ValidRange};
use stoker_metadata::Actor;
use stoker_metadata::{NewSensor, NewSite};
use stoker_postgres::Pool;
use stoker_rules::{AlertRule, NewAlertRule, RuleKind, RuleSelector, Severity};
use stoker_stores::Stores;
use stoker_testkit::{TestInflux, TestPostgres, TestRedis};
use stoker_timeseries::LineBatch;

pub(crate) const SECOND: i64 = 1000;

pub(crate) struct Harness {
    pub(crate) _postgres: TestPostgres,
    pub(crate) influx: TestInflux,
    pub(crate) redis: TestRedis,
    pub(crate) pool: Pool,
    pub(crate) stores: Stores,
}

impl Harness {
    pub(crate) async fn start() -> Self {
        let postgres = TestPostgres::create().await;
        let pool = postgres.migrated_pool().await;
        stoker_analytics::migrate(&pool).await.unwrap();
        let site = NewSite::parse("boiler-house-1", "Boiler house 1", "UTC").unwrap();
        stoker_metadata::create_site(&pool, &Actor::Cli, &site)
            .await
            .unwrap();
        let influx = TestInflux::create().await;
        let redis = TestRedis::new();
        let stores = Stores {
            pool: pool.clone(),
            postgres: postgres.options(),
            influx: influx.influx().clone(),
            cache: redis.cache(),
        };
        let harness = Self {
            _postgres: postgres,
            influx,
            redis,
            pool,
            stores,
        };
        harness.sensor("b1_steam_pressure", "pressure", "bar").await;
        harness
    }

    pub(crate) async fn sensor(&self, key: &str, sensor_type: &str, unit: &str) {
        let sensor = NewSensor {
            key: SensorKey::parse(key).unwrap(),
            sensor_type: SensorType::parse(sensor_type).unwrap(),
            unit: Unit::parse(unit).unwrap(),
            kind: stoker_domain::SensorKind::Numeric,
            states: stoker_domain::States::default(),
            range: ValidRange::new(Some(0.0), Some(1000.0)).unwrap(),
        };
        stoker_metadata::create_sensor(&self.pool, &Actor::Cli, &site(), &sensor)
            .await
            .unwrap();
    }

    /// Makes every sensor a day old: tests replay ticks of the past hour,
    /// and a no-data rule does not judge a sensor younger than its timeout.
    pub(crate) async fn age_sensors(&self) {
        self.pool
            .get()
            .await
            .unwrap()
            .batch_execute("UPDATE metadata.sensors SET created_at = now() - interval '1 day'")
            .await
            .unwrap();
    }

    /// A rule on one sensor of the site, or on all of them (`*`).
    pub(crate) async fn rule(&self, name: &str, sensor: &str, kind: RuleKind) -> AlertRule {
        let rule = NewAlertRule::new(
            name,
            RuleSelector {
                site: Some(site()),
                sensor: (sensor != "*").then(|| SensorKey::parse(sensor).unwrap()),
                sensor_type: None,
            },
            kind,
            Severity::Warning,
            true,
            None,
        )
        .unwrap();
        stoker_metadata::create_alert_rule(&self.pool, &Actor::Cli, &rule)
            .await
            .unwrap()
    }

    /// One reading per second of `sensor` over `[from, to)` seconds after
    /// `origin`, valued by `value(second)` (none: no reading).
    pub(crate) async fn write(
        &self,
        sensor: &str,
        origin: i64,
        seconds: std::ops::Range<i64>,
        value: impl Fn(i64) -> Option<f64>,
    ) {
        let mut batch = LineBatch::default();
        let key = SensorKey::parse(sensor).unwrap();
        let sensor_type = SensorType::parse("pressure").unwrap();
        for second in seconds {
            if let Some(value) = value(second) {
                batch.push(
                    &site(),
                    &key,
                    &sensor_type,
                    value,
                    EpochMillis::from_millis(origin + second * SECOND).unwrap(),
                );
            }
        }
        self.influx.influx().write(&batch).await.unwrap();
    }
}

pub(crate) fn site() -> SiteSlug {
    SiteSlug::parse("boiler-house-1").unwrap()
}

/// A tick-aligned origin an hour ago.
pub(crate) fn origin() -> i64 {
    (EpochMillis::now().as_millis() - 3_600 * SECOND).div_euclid(10 * SECOND) * 10 * SECOND
}

/// Alerts of a rule as (opened, resolved) seconds after `origin`.
pub(crate) async fn alerts_of(
    pool: &Pool,
    rule: &AlertRule,
    origin: i64,
) -> Vec<(i64, Option<i64>)> {
    let filter = AlertFilter {
        rule_id: Some(rule.id),
        ..AlertFilter::default()
    };
    let mut alerts: Vec<(i64, Option<i64>)> = store::list_alerts(pool, &filter, 1000, None)
        .await
        .unwrap()
        .items
        .iter()
        .map(|alert| {
            (
                (alert.opened_at.timestamp_millis() - origin) / SECOND,
                alert
                    .resolved_at
                    .map(|at| (at.timestamp_millis() - origin) / SECOND),
            )
        })
        .collect();
    alerts.sort();
    alerts
}
