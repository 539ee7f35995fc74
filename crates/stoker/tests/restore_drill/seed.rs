//! What the drill backs up: sites, sensors, rules, keys, alerts and
//! readings in every schema of record (with the audit trail their creation
//! and the alarm actions left), and series in InfluxDB.

use std::time::Duration;
use stoker_analytics::notify::NotifyOptions;
use stoker_analytics::store::{self, Verdict};
use stoker_domain::{EpochMillis, SensorKey, SensorType, SiteSlug, Unit, ValidRange};
use stoker_metadata::Actor;
use stoker_metadata::{NewSensor, NewSite, Scope};
use stoker_postgres::Pool;
use stoker_rules::{Agg, AlertRule, NewAlertRule, Op, RuleKind, RuleSelector, Severity, Threshold};
use stoker_testkit::TestInflux;
use stoker_timeseries::LineBatch;

use super::*;

pub(crate) fn site(slug: &str) -> SiteSlug {
    SiteSlug::parse(slug).unwrap()
}

pub(crate) fn key(sensor: &str) -> SensorKey {
    SensorKey::parse(sensor).unwrap()
}

/// The value of reading `index` (0 = newest) of sensor `sensor` at site
/// `site`: distinct per series, so a mixed-up point changes the checksum.
pub(crate) fn reading_value(site: usize, sensor: usize, index: i64) -> f64 {
    let index = index as f64;
    10.0 + site as f64 * 7.0 + sensor as f64 * 1.5 + (index * 0.37).sin() * 3.0 + index * 0.001
}

// ------------------------------------------------------------------ seeding
pub(crate) async fn seed_postgres(pool: &Pool, newest: i64) -> Vec<AlertRule> {
    stoker_ingestion::migrate(pool)
        .await
        .expect("migrate ingestion");
    stoker_analytics::migrate(pool)
        .await
        .expect("migrate analytics");
    let outbox = NotifyOptions::default();
    let mut rules = Vec::new();
    for slug in SITES {
        let new_site = NewSite::parse(slug, &format!("Boiler house {slug}"), "Europe/Berlin")
            .expect("a valid site");
        stoker_metadata::create_site(pool, &Actor::Cli, &new_site)
            .await
            .expect("create site");
        for (sensor, sensor_type, unit) in SENSORS.iter().chain([&(SILENT, "level", "%")]) {
            let new_sensor = NewSensor {
                key: key(sensor),
                sensor_type: SensorType::parse(*sensor_type).unwrap(),
                unit: Unit::parse(*unit).unwrap(),
                kind: stoker_domain::SensorKind::Numeric,
                states: stoker_domain::States::default(),
                range: ValidRange::new(Some(-50.0), Some(1000.0)).unwrap(),
            };
            stoker_metadata::create_sensor(pool, &Actor::Cli, &site(slug), &new_sensor)
                .await
                .expect("create sensor");
        }
        let rule = NewAlertRule::new(
            &format!("{slug} steam pressure high"),
            RuleSelector {
                site: Some(site(slug)),
                sensor: Some(key(SENSORS[0].0)),
                sensor_type: None,
            },
            RuleKind::Threshold {
                agg: Some(Agg::Mean),
                op: Op::Gt,
                threshold: Threshold::Number(12.5),
                clear_threshold: Some(11.0),
                window: Duration::from_secs(60),
                for_: Duration::from_secs(30),
            },
            Severity::Warning,
            true,
            None,
        )
        .expect("a valid rule");
        rules.push(
            stoker_metadata::create_alert_rule(pool, &Actor::Cli, &rule)
                .await
                .expect("create rule"),
        );
    }
    let no_data = NewAlertRule::new(
        "spare sensors silent",
        RuleSelector {
            site: None,
            sensor: Some(key(SILENT)),
            sensor_type: None,
        },
        RuleKind::NoData {
            timeout: Duration::from_secs(600),
        },
        Severity::Info,
        false,
        None,
    )
    .expect("a valid rule");
    stoker_metadata::create_alert_rule(pool, &Actor::Cli, &no_data)
        .await
        .expect("create rule");
    stoker_metadata::create_api_key(pool, &Actor::Cli, "drill", &[Scope::Read, Scope::Write])
        .await
        .expect("create API key");

    // Alerts with trails: one still firing, one acknowledged, one resolved.
    for (index, rule) in rules.iter().enumerate() {
        let slug = site(SITES[index]);
        let sensor = key(SENSORS[0].0);
        let at = EpochMillis::from_millis(newest - 600_000 + index as i64 * 1000).unwrap();
        let verdict = Verdict {
            rule,
            site: &slug,
            sensor: &sensor,
            at,
            value: Some(stoker_domain::ReadingValue::Number(13.0 + index as f64)),
            message: format!("mean steam pressure {} bar > 12.5 bar", 13.0 + index as f64),
        };
        let alert = store::open_alert(pool, &outbox, &verdict)
            .await
            .expect("open alert")
            .expect("a new alert");
        if index >= 1 {
            store::acknowledge(pool, &outbox, alert.id, "drill-operator")
                .await
                .expect("acknowledge");
        }
        if index >= 2 {
            store::resolve(pool, &outbox, alert.id, "drill-operator")
                .await
                .expect("resolve");
        }
    }

    // A Sparkplug gateway of the first site, born with its node's and a
    // device's metrics and then dead, as the host records them.
    let gateway = stoker_metadata::NewGateway::parse("drill plant", "gw-1").expect("valid ids");
    stoker_metadata::create_gateway(pool, &Actor::Cli, &site(SITES[0]), &gateway)
        .await
        .expect("bind a gateway");
    let announced = |device: Option<&str>, metric: &str, sensor: &str, datatype: &str| {
        stoker_metadata::AnnouncedMetric {
            device: device.map(str::to_owned),
            metric: metric.to_owned(),
            sensor: Some(key(sensor)),
            datatype: datatype.to_owned(),
        }
    };
    let born = EpochMillis::from_millis(newest - 900_000).unwrap();
    stoker_metadata::record_gateway_birth(
        pool,
        "drill plant",
        "gw-1",
        born,
        Some(0),
        &[
            announced(None, "B1 Steam Pressure", "b1_steam_pressure", "Double"),
            announced(None, "Burner On", "burner_on", "Boolean"),
        ],
    )
    .await
    .expect("record a birth");
    stoker_metadata::record_device_birth(
        pool,
        "drill plant",
        "gw-1",
        "boiler 1",
        born,
        Some(0),
        &[announced(
            Some("boiler 1"),
            "Sequencer",
            "boiler_1_sequencer",
            "String",
        )],
    )
    .await
    .expect("record a device birth");
    stoker_metadata::record_gateway_death(
        pool,
        "drill plant",
        "gw-1",
        EpochMillis::from_millis(newest - 300_000).unwrap(),
        None,
    )
    .await
    .expect("record a death");
    store::open_gateway_alert(
        pool,
        &outbox,
        &store::GatewayVerdict {
            site: &site(SITES[0]),
            group: "drill plant",
            edge_node: "gw-1",
            at: EpochMillis::from_millis(newest - 300_000).unwrap(),
            message: "gateway drill plant/gw-1 is offline".to_owned(),
        },
    )
    .await
    .expect("open a gateway alert")
    .expect("a new gateway alert");

    // The ingestion journal: its writer is internal to ingestion, so rows
    // go in as it writes them.
    let client = pool.get().await.expect("a connection");
    client
        .batch_execute(
            "INSERT INTO ingestion.ingestion_log (minute, source, messages, accepted, rejected)
             SELECT date_trunc('minute', now()) - make_interval(mins => m), s, 60 + m, 58 + m, 2
             FROM generate_series(0, 29) m, unnest(ARRAY['mqtt', 'http']) s;
             INSERT INTO ingestion.rejected_readings
                 (received_at, source, reason, site, sensor, topic, detail, payload_excerpt)
             SELECT now() - make_interval(secs => n), 'mqtt', 'out_of_range', 'drill-a',
                    'b1_flue_temp', 'sites/drill-a/telemetry',
                    'value ' || (2000 + n) || ' outside [-50, 1000]',
                    '{\"b1_flue_temp\": ' || (2000 + n) || '}'
             FROM generate_series(1, 12) n;",
        )
        .await
        .expect("seed the ingestion journal");
    rules
}

/// Seeds readings and their rollup; returns the rollup points written.
pub(crate) async fn seed_influx(influx: &TestInflux, newest: i64) -> u64 {
    let mut batch = LineBatch::with_capacity(1000);
    for (site_index, slug) in SITES.iter().enumerate() {
        for (sensor_index, (sensor, sensor_type, _)) in SENSORS.iter().enumerate() {
            let sensor_type = SensorType::parse(*sensor_type).unwrap();
            for index in 0..READINGS_PER_SENSOR {
                batch.push(
                    &site(slug),
                    &key(sensor),
                    &sensor_type,
                    reading_value(site_index, sensor_index, index),
                    EpochMillis::from_millis(newest - index * STEP_MS).unwrap(),
                );
                if batch.len() == 1000 {
                    influx.influx().write(&batch).await.expect("write readings");
                    batch.clear();
                }
            }
        }
    }
    influx.influx().write(&batch).await.expect("write readings");

    // The rollup policy and its points, as `stoker influx setup` and the
    // rollup job keep them: the backup must carry every policy.
    let influx = influx.influx();
    influx.setup().await.expect("stoker influx setup");
    let oldest = EpochMillis::from_millis(newest - READINGS_PER_SENSOR * STEP_MS).unwrap();
    let through = EpochMillis::from_millis(newest + 60_000).unwrap();
    let rolled = influx.roll_up(oldest, through).await.expect("roll up");
    assert!(rolled.points > 0, "{rolled:?}");
    influx
        .set_rollup_progress(through)
        .await
        .expect("rollup progress");
    rolled.points
}
