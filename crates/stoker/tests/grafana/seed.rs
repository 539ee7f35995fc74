//! Simulated data for the dashboards to show: two sites with three sensors
//! each, alert rules of several kinds (one disabled), alerts in every state
//! with their trail, the ingestion journal, two hours of readings and their
//! 1-minute rollup.

use std::f64::consts::TAU;
use std::time::Duration;
use stoker_metadata::Actor;

use stoker_analytics::store::{self, NoOutbox, Verdict};
use stoker_domain::{
    EpochMillis, SensorKey, SensorKind, SensorType, SiteSlug, States, Unit, ValidRange,
};
use stoker_ingestion::Reason;
use stoker_metadata::{NewSensor, NewSite};
use stoker_postgres::Pool;
use stoker_rules::{Agg, AlertRule, NewAlertRule, Op, RuleKind, RuleSelector, Severity};
use stoker_testkit::TestInflux;
use stoker_timeseries::LineBatch;

/// How far back the seeded readings, alerts and journal go.
pub(crate) const HISTORY_MS: i64 = 2 * 3_600_000;

/// The interval between two readings of a sensor.
const STEP_MS: i64 = 30_000;

const MINUTE_MS: i64 = 60_000;

/// The seeded sites.
const SITES: [&str; 2] = ["boiler-house-1", "boiler-house-2"];

/// Each site's sensors: key, type, unit, valid range, and the level and
/// swing of their simulated readings.
const SENSORS: [(&str, &str, &str, f64, f64, f64, f64); 3] = [
    ("b1_flue_temp", "temperature", "°C", 0.0, 600.0, 185.0, 15.0),
    ("b1_o2", "o2", "%", 0.0, 25.0, 4.0, 0.8),
    ("b1_steam_pressure", "pressure", "bar", 0.0, 25.0, 11.0, 1.0),
];

/// One raw reading, as written to InfluxDB.
#[derive(Debug, Clone)]
pub(crate) struct Reading {
    site: SiteSlug,
    sensor: SensorKey,
    sensor_type: SensorType,
    value: f64,
    at: i64,
}

/// The rules the alerts are raised by.
#[derive(Debug)]
struct Rules {
    pressure_high: AlertRule,
    flue_temperature_high: AlertRule,
    o2_low: AlertRule,
    sensor_silent: AlertRule,
}

fn site(slug: &str) -> SiteSlug {
    SiteSlug::parse(slug).expect("a valid slug")
}

fn sensor(key: &str) -> SensorKey {
    SensorKey::parse(key).expect("a valid key")
}

/// Seeds everything into the test's Postgres (migrated for every schema)
/// and InfluxDB databases. Times are relative to now, within the last
/// [`HISTORY_MS`].
pub(crate) async fn seed(pool: &Pool, influx: &TestInflux) {
    let now = EpochMillis::now().as_millis();
    seed_registry(pool).await;
    let rules = seed_rules(pool).await;
    seed_alerts(pool, &rules, now).await;
    seed_journal(pool).await;
    let readings = readings(now);
    let mut batch = LineBatch::with_capacity(readings.len());
    for reading in &readings {
        batch.push(
            &reading.site,
            &reading.sensor,
            &reading.sensor_type,
            reading.value,
            EpochMillis::from_millis(reading.at).expect("a valid time"),
        );
    }
    push_digital_readings(&mut batch, now);
    influx
        .influx()
        .write(&batch)
        .await
        .expect("write the raw readings");
    roll_up(influx).await;
}

/// Each site's digital signals: a burner on/off and a sequencer state.
const SEQUENCER_STATES: [&str; 5] = ["off", "purge", "ignition", "firing", "lockout"];

/// A burner cycling every ten minutes through the sequencer's states, its
/// on/off following (stored as DESIGN.md says: 0/1, the state's index and
/// its name).
fn push_digital_readings(batch: &mut LineBatch, now: i64) {
    let burner = SensorType::parse("burner").expect("a valid type");
    let sequencer = SensorType::parse("sequencer").expect("a valid type");
    for slug in SITES {
        let mut at = now - HISTORY_MS;
        while at <= now {
            let minute = (at / MINUTE_MS).rem_euclid(10);
            let state: u32 = match minute {
                0 => 0,
                1 => 1,
                2 => 2,
                9 if (at / (10 * MINUTE_MS)) % 4 == 0 => 4,
                _ => 3,
            };
            let when = EpochMillis::from_millis(at).expect("a valid time");
            batch.push(
                &site(slug),
                &sensor("b1_burner_on"),
                &burner,
                if state == 3 { 1.0 } else { 0.0 },
                when,
            );
            batch.push_state(
                &site(slug),
                &sensor("b1_sequencer"),
                &sequencer,
                state,
                SEQUENCER_STATES[state as usize],
                when,
            );
            at += STEP_MS;
        }
    }
}

async fn seed_registry(pool: &Pool) {
    for (index, slug) in SITES.into_iter().enumerate() {
        let new_site = NewSite::parse(slug, &format!("Boiler house {}", index + 1), "UTC")
            .expect("a valid site");
        stoker_metadata::create_site(pool, &Actor::Cli, &new_site)
            .await
            .expect("create a site");
        for (key, sensor_type, unit, min, max, _, _) in SENSORS {
            let new_sensor = NewSensor {
                key: sensor(key),
                sensor_type: SensorType::parse(sensor_type).expect("a valid type"),
                unit: Unit::parse(unit).expect("a valid unit"),
                kind: stoker_domain::SensorKind::Numeric,
                states: stoker_domain::States::default(),
                range: ValidRange::new(Some(min), Some(max)).expect("a valid range"),
            };
            stoker_metadata::create_sensor(pool, &Actor::Cli, &site(slug), &new_sensor)
                .await
                .expect("create a sensor");
        }
        for (key, sensor_type, kind, states) in [
            ("b1_burner_on", "burner", SensorKind::Boolean, &[][..]),
            (
                "b1_sequencer",
                "sequencer",
                SensorKind::State,
                &SEQUENCER_STATES[..],
            ),
        ] {
            let new_sensor = NewSensor {
                key: sensor(key),
                sensor_type: SensorType::parse(sensor_type).expect("a valid type"),
                unit: Unit::parse("-").expect("a valid unit"),
                kind,
                states: States::parse(states.iter().copied()).expect("valid states"),
                range: ValidRange::default(),
            };
            stoker_metadata::create_sensor(pool, &Actor::Cli, &site(slug), &new_sensor)
                .await
                .expect("create a digital sensor");
        }
    }
}

/// A threshold rule over a 60 s window that must hold for 30 s.
fn threshold_rule(
    name: &str,
    selector: RuleSelector,
    (agg, op, threshold, clear_threshold): (Agg, Op, f64, f64),
    severity: Severity,
    enabled: bool,
) -> NewAlertRule {
    let kind = RuleKind::Threshold {
        agg: Some(agg),
        op,
        threshold: stoker_rules::Threshold::Number(threshold),
        clear_threshold: Some(clear_threshold),
        window: Duration::from_secs(60),
        for_: Duration::from_secs(30),
    };
    NewAlertRule::new(name, selector, kind, severity, enabled, None).expect("a valid rule")
}

/// Rules selecting by site and type, by type alone and by sensor key alone
/// (so the threshold lines' matching is exercised), a no-data rule (no
/// line) and a disabled threshold rule (no line either).
async fn seed_rules(pool: &Pool) -> Rules {
    let by = |site: Option<&str>, key: Option<&str>, sensor_type: Option<&str>| RuleSelector {
        site: site.map(self::site),
        sensor: key.map(sensor),
        sensor_type: sensor_type.map(|name| SensorType::parse(name).expect("a valid type")),
    };
    let drafts = [
        threshold_rule(
            "Steam pressure high",
            by(Some(SITES[0]), None, Some("pressure")),
            (Agg::Mean, Op::Gt, 12.5, 12.0),
            Severity::Critical,
            true,
        ),
        threshold_rule(
            "Flue temperature high",
            by(None, None, Some("temperature")),
            (Agg::Max, Op::Gt, 220.0, 210.0),
            Severity::Warning,
            true,
        ),
        threshold_rule(
            "Flue O2 low",
            by(None, Some("b1_o2"), None),
            (Agg::Mean, Op::Lt, 2.0, 2.5),
            Severity::Warning,
            true,
        ),
        NewAlertRule::new(
            "Sensor silent",
            by(Some(SITES[0]), None, None),
            RuleKind::NoData {
                timeout: Duration::from_secs(120),
            },
            Severity::Info,
            true,
            None,
        )
        .expect("a valid rule"),
        threshold_rule(
            "Old pressure limit",
            by(Some(SITES[0]), None, Some("pressure")),
            (Agg::Mean, Op::Gt, 15.0, 14.0),
            Severity::Critical,
            false,
        ),
    ];
    let mut created = Vec::new();
    for draft in &drafts {
        let rule = stoker_metadata::create_alert_rule(pool, &Actor::Cli, draft)
            .await
            .expect("create a rule");
        created.push(rule);
    }
    let mut created = created.into_iter();
    let mut next = || created.next().expect("a created rule");
    Rules {
        pressure_high: next(),
        flue_temperature_high: next(),
        o2_low: next(),
        sensor_silent: next(),
    }
}

/// Opens an alert at `at` (epoch ms) through analytics' store.
async fn open(
    pool: &Pool,
    rule: &AlertRule,
    (site, sensor): (&SiteSlug, &SensorKey),
    at: i64,
    value: Option<f64>,
) -> store::Alert {
    let verdict = Verdict {
        rule,
        site,
        sensor,
        at: EpochMillis::from_millis(at).expect("a valid time"),
        value: value.map(stoker_domain::ReadingValue::Number),
        message: format!("{} at {site}/{sensor}", rule.name),
    };
    store::open_alert(pool, &NoOutbox, &verdict)
        .await
        .expect("open an alert")
        .expect("no alert of this rule and sensor is open")
}

/// Alerts in every state, at both sites: resolved by hand, resolved by
/// analytics, acknowledged, firing.
async fn seed_alerts(pool: &Pool, rules: &Rules, now: i64) {
    let (house_1, house_2) = (site(SITES[0]), site(SITES[1]));
    let (flue, o2, pressure) = (
        sensor("b1_flue_temp"),
        sensor("b1_o2"),
        sensor("b1_steam_pressure"),
    );
    let operator = "shift-operator";
    let ago = |minutes: i64| now - minutes * MINUTE_MS;

    let earlier = open(
        pool,
        &rules.flue_temperature_high,
        (&house_1, &flue),
        ago(90),
        Some(231.0),
    )
    .await;
    store::acknowledge(pool, &NoOutbox, earlier.id, operator)
        .await
        .expect("acknowledge");
    store::resolve(pool, &NoOutbox, earlier.id, operator)
        .await
        .expect("resolve");
    open(
        pool,
        &rules.flue_temperature_high,
        (&house_1, &flue),
        ago(20),
        Some(236.5),
    )
    .await;

    let high = open(
        pool,
        &rules.pressure_high,
        (&house_1, &pressure),
        ago(45),
        Some(13.1),
    )
    .await;
    store::acknowledge(pool, &NoOutbox, high.id, operator)
        .await
        .expect("acknowledge");

    open(pool, &rules.o2_low, (&house_2, &o2), ago(60), Some(1.7)).await;

    open(pool, &rules.sensor_silent, (&house_1, &o2), ago(100), None).await;
    let back = Verdict {
        rule: &rules.sensor_silent,
        site: &house_1,
        sensor: &o2,
        at: EpochMillis::from_millis(ago(95)).expect("a valid time"),
        value: Some(stoker_domain::ReadingValue::Number(4.1)),
        message: "b1_o2 reports again".into(),
    };
    store::clear_alert(pool, &NoOutbox, &back)
        .await
        .expect("clear an alert")
        .expect("the alert was open");
}

/// The ingestion journal as ingestion writes it: counts per minute and
/// source over the history, and a few rejected readings of several reasons.
async fn seed_journal(pool: &Pool) {
    let client = pool.get().await.expect("a connection");
    client
        .execute(
            "INSERT INTO ingestion.ingestion_log (minute, source, messages, accepted, rejected)
             SELECT date_trunc('minute', now()) - minutes_ago * interval '1 minute',
                    source, 20, 60 - minutes_ago % 3, minutes_ago % 4
             FROM generate_series(0, $1::int - 1) AS minutes_ago
             CROSS JOIN (VALUES ('mqtt'), ('http')) AS sources (source)",
            &[&i32::try_from(HISTORY_MS / MINUTE_MS).expect("minutes fit")],
        )
        .await
        .expect("seed the ingestion log");
    let rejections: [(Reason, &str, Option<&str>, &str, &str); 4] = [
        (
            Reason::OutOfRange,
            SITES[0],
            Some("b1_steam_pressure"),
            "value 41.5 is above the valid range 0..25",
            r#"{"b1_steam_pressure": 41.5}"#,
        ),
        (
            Reason::UnknownSensor,
            SITES[1],
            Some("b9_flow"),
            "sensor b9_flow is not registered at boiler-house-2",
            r#"{"b9_flow": 3.2}"#,
        ),
        (
            Reason::MalformedJson,
            SITES[0],
            None,
            "expected value at line 1 column 1",
            "{not json",
        ),
        (
            Reason::UnknownSite,
            "boiler-house-9",
            None,
            "site boiler-house-9 is not registered",
            r#"{"b1_o2": 4.0}"#,
        ),
    ];
    for (index, (reason, site, sensor, detail, payload)) in rejections.into_iter().enumerate() {
        let minutes_ago = 5 + 11 * i32::try_from(index).expect("a small index");
        client
            .execute(
                "INSERT INTO ingestion.rejected_readings
                     (received_at, source, reason, site, sensor, topic, detail, payload_excerpt)
                 VALUES (now() - $1::int * interval '1 minute', 'mqtt', $2, $3, $4, $5, $6, $7)",
                &[
                    &minutes_ago,
                    &reason.as_str(),
                    &site,
                    &sensor,
                    &format!("sites/{site}/telemetry"),
                    &detail,
                    &payload,
                ],
            )
            .await
            .expect("seed a rejected reading");
    }
}

/// Every sensor's readings over the history, every [`STEP_MS`], up to now:
/// a slow sine around the sensor's level, shifted per site.
fn readings(now: i64) -> Vec<Reading> {
    let end = now - now.rem_euclid(STEP_MS);
    let start = end - HISTORY_MS + STEP_MS;
    let mut readings = Vec::new();
    for (site_index, slug) in SITES.into_iter().enumerate() {
        for (key, sensor_type, _, _, _, level, swing) in SENSORS {
            let sensor_type = SensorType::parse(sensor_type).expect("a valid type");
            for at in (start..=end).step_by(STEP_MS as usize) {
                let phase = (at - start) as f64 / (20 * MINUTE_MS) as f64 * TAU + site_index as f64;
                readings.push(Reading {
                    site: site(slug),
                    sensor: sensor(key),
                    sensor_type: sensor_type.clone(),
                    value: level + swing * phase.sin(),
                    at,
                });
            }
        }
    }
    readings
}

/// Rolls the seeded history up with the rollup job itself
/// (`stoker_analytics::rollup::Roller`): `stoker influx setup`'s
/// retention policies, then one pass, which backfills from the oldest
/// reading. The dashboards' rollup queries thus read the job's real
/// output.
async fn roll_up(influx: &TestInflux) {
    let influx = influx.influx();
    influx.setup().await.expect("stoker influx setup");
    let pass = stoker_analytics::rollup::pass_now(influx)
        .await
        .expect("a rollup pass");
    assert!(pass.points > 0, "the rollup job wrote nothing: {pass:?}");
}
