//! Boolean and state readings by MQTT JSON: stored as DESIGN.md says
//! (field `value` 0/1 or the state's index, field `state` its name),
//! cached natively, and refused as `wrong_kind` or `unknown_state` when
//! they are not of their sensor's kind, counted and recorded.

use std::time::Duration;
use stoker_domain::{EpochMillis, ReadingValue, SensorKind, SensorType, States, Unit, ValidRange};
use stoker_metadata::Actor;
use stoker_metadata::NewSensor;
use stoker_testkit::{publish_qos1, wait_until};

use crate::harness::*;

async fn add_sensor(harness: &Harness, name: &str, kind: SensorKind, states: &[&str]) {
    let pool = stoker_postgres::connect(&harness.postgres.options()).unwrap();
    let sensor = NewSensor {
        key: key(name),
        sensor_type: SensorType::parse("burner").unwrap(),
        unit: Unit::parse("-").unwrap(),
        kind,
        states: States::parse(states.iter().copied()).unwrap(),
        range: ValidRange::default(),
    };
    stoker_metadata::create_sensor(&pool, &Actor::Cli, &site(), &sensor)
        .await
        .unwrap();
}

#[tokio::test]
async fn booleans_and_states_are_stored_in_their_kind_and_others_refused() {
    let harness = Harness::start().await;
    add_sensor(&harness, "b1_burner_on", SensorKind::Boolean, &[]).await;
    add_sensor(
        &harness,
        "b1_sequencer",
        SensorKind::State,
        &["off", "purge", "ignition", "firing", "lockout"],
    )
    .await;
    let now = EpochMillis::now().as_millis() - 10_000;
    let telemetry = harness.topic("sites/boiler-house-1/telemetry");
    let messages = vec![
        (
            telemetry.clone(),
            format!(r#"{{"ts": {now}, "values": {{"b1_burner_on": false, "b1_sequencer": "purge", "b1_steam_pressure": 10.4}}}}"#).into_bytes(),
        ),
        // The per-sensor topic: a bare boolean, a bare JSON string, the object shape.
        (
            harness.topic("sites/boiler-house-1/sensors/b1_burner_on"),
            b"true".to_vec(),
        ),
        (
            harness.topic("sites/boiler-house-1/sensors/b1_sequencer"),
            br#""firing""#.to_vec(),
        ),
        (
            harness.topic("sites/boiler-house-1/sensors/b1_sequencer"),
            format!(r#"{{"value": "ignition", "ts": {}}}"#, now + 1000).into_bytes(),
        ),
        // Of the wrong kind, or no declared state.
        (
            telemetry,
            format!(r#"{{"ts": {now}, "values": {{"b1_burner_on": 1, "b1_sequencer": "Lockout", "b1_steam_pressure": false, "b1_flue_temp": "hot"}}}}"#).into_bytes(),
        ),
        (
            harness.topic("sites/boiler-house-1/sensors/b1_sequencer"),
            b"3".to_vec(),
        ),
    ];
    publish_qos1(&messages).await;
    wait_until(
        "all 6 messages are settled",
        Duration::from_secs(10),
        || harness.ingestion().stats().acked == 6,
    )
    .await;
    let stats = harness.ingestion().stats();
    assert_eq!(stats.accepted, 6, "{stats:?}");
    let expected: std::collections::BTreeMap<&str, u64> =
        [("wrong_kind", 3), ("unknown_state", 1), ("non_numeric", 1)]
            .into_iter()
            .collect();
    assert_eq!(stats.rejected, expected);

    // InfluxDB: a boolean is 0/1, a state its index, and its name too.
    let influx = harness.influx.influx();
    let start = EpochMillis::from_millis(now - 60_000).unwrap();
    let end = EpochMillis::from_millis(now + 120_000).unwrap();
    let burner = influx
        .readings(&site(), &key("b1_burner_on"), start, end)
        .await
        .unwrap();
    assert_eq!(
        burner.iter().map(|(_, value)| *value).collect::<Vec<_>>(),
        vec![0.0, 1.0]
    );
    let sequencer = influx
        .readings(&site(), &key("b1_sequencer"), start, end)
        .await
        .unwrap();
    assert_eq!(
        sequencer
            .iter()
            .map(|(_, value)| *value)
            .collect::<Vec<_>>(),
        vec![1.0, 2.0, 3.0],
        "purge, ignition (ts + 1 s), firing (received now)"
    );
    let names = influx
        .state_names(&site(), &key("b1_sequencer"), start, end)
        .await
        .unwrap();
    assert_eq!(
        names
            .iter()
            .map(|(_, name)| name.as_str())
            .collect::<Vec<_>>(),
        vec!["purge", "ignition", "firing"]
    );

    // Redis: the native value, newest first.
    let mut latest = Vec::new();
    for _ in 0..200 {
        latest = harness
            .cache
            .latest(&site(), &[key("b1_burner_on"), key("b1_sequencer")])
            .await
            .unwrap();
        if latest.iter().all(Option::is_some) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let values: Vec<_> = latest
        .iter()
        .map(|latest| latest.as_ref().map(|latest| latest.value.clone()))
        .collect();
    assert_eq!(
        values,
        vec![
            Some(ReadingValue::Boolean(true)),
            Some(ReadingValue::State("firing".into()))
        ]
    );

    // Each refusal recorded with its reason and a precise detail.
    let pool = stoker_postgres::connect(&harness.postgres.options()).unwrap();
    let client = pool.get().await.unwrap();
    let mut recorded = Vec::new();
    for _ in 0..200 {
        recorded = client
            .query(
                "SELECT reason, sensor, detail FROM ingestion.rejected_readings ORDER BY sensor COLLATE \"C\", reason",
                &[],
            )
            .await
            .unwrap()
            .iter()
            .map(|row| {
                (
                    row.get::<_, String>(0),
                    row.get::<_, Option<String>>(1).unwrap_or_default(),
                    row.get::<_, String>(2),
                )
            })
            .collect();
        if recorded.len() == 5 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let reasons: Vec<(&str, &str)> = recorded
        .iter()
        .map(|(reason, sensor, _)| (sensor.as_str(), reason.as_str()))
        .collect();
    assert_eq!(
        reasons,
        vec![
            ("b1_burner_on", "wrong_kind"),
            ("b1_flue_temp", "non_numeric"),
            ("b1_sequencer", "unknown_state"),
            ("b1_sequencer", "wrong_kind"),
            ("b1_steam_pressure", "wrong_kind"),
        ]
    );
    let unknown = &recorded[2].2;
    assert!(
        unknown.contains("\"Lockout\"")
            && unknown.contains("off, purge, ignition, firing, lockout"),
        "{unknown}"
    );
    harness.stop().await;
}
