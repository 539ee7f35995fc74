//! Sensor kinds: booleans and states beside numbers. A kind never
//! changes; a state sensor's states only grow at the end.

use stoker_domain::{SensorKind, States, ValidRange};
use stoker_metadata::Actor;
use stoker_metadata::{Error, SensorChanges};
use stoker_testkit::TestPostgres;

use super::*;

fn of_kind(key: &str, kind: SensorKind, states: &[&str]) -> NewSensor {
    NewSensor {
        kind,
        states: States::parse(states.iter().copied()).unwrap(),
        range: ValidRange::default(),
        ..sensor(key)
    }
}

#[tokio::test]
async fn booleans_and_states_are_stored_with_their_kind() {
    let database = TestPostgres::create().await;
    let pool = with_site(&database).await;
    let house = slug("boiler-house-1");
    let burner = stoker_metadata::create_sensor(
        &pool,
        &Actor::Cli,
        &house,
        &of_kind("b1_burner_on", SensorKind::Boolean, &[]),
    )
    .await
    .unwrap();
    assert_eq!((burner.kind, burner.states.len()), (SensorKind::Boolean, 0));
    let sequencer = stoker_metadata::create_sensor(
        &pool,
        &Actor::Cli,
        &house,
        &of_kind(
            "b1_sequencer",
            SensorKind::State,
            &["off", "purge", "ignition", "firing", "lockout"],
        ),
    )
    .await
    .unwrap();
    assert_eq!(sequencer.kind, SensorKind::State);
    assert_eq!(sequencer.states.index_of("firing"), Some(3));
    let json = serde_json::to_value(&sequencer).unwrap();
    assert_eq!(json["kind"], "state");
    assert_eq!(json["states"][4], "lockout");
    let json = serde_json::to_value(&burner).unwrap();
    assert_eq!(json["kind"], "boolean");
    assert!(json.get("states").is_none(), "{json}");

    // A numeric sensor made before kinds existed reads as numeric.
    let pressure =
        stoker_metadata::create_sensor(&pool, &Actor::Cli, &house, &sensor("b1_pressure"))
            .await
            .unwrap();
    assert_eq!(pressure.kind, SensorKind::Numeric);

    let registry = stoker_metadata::registry(&pool).await.unwrap();
    let entry = registry
        .iter()
        .find(|entry| entry.key.as_str() == "b1_sequencer")
        .unwrap();
    assert_eq!(entry.kind, SensorKind::State);
    assert_eq!(entry.states, sequencer.states);
}

#[tokio::test]
async fn kinds_states_and_ranges_must_fit_together() {
    let database = TestPostgres::create().await;
    let pool = with_site(&database).await;
    let house = slug("boiler-house-1");
    for (new, field) in [
        (of_kind("a", SensorKind::State, &[]), "states"),
        (of_kind("b", SensorKind::Boolean, &["on"]), "states"),
        (of_kind("c", SensorKind::Numeric, &["on"]), "states"),
        (
            NewSensor {
                range: ValidRange::new(Some(0.0), None).unwrap(),
                ..of_kind("d", SensorKind::Boolean, &[])
            },
            "min",
        ),
        (
            NewSensor {
                range: ValidRange::new(None, Some(1.0)).unwrap(),
                ..of_kind("e", SensorKind::State, &["off"])
            },
            "max",
        ),
    ] {
        let refused = stoker_metadata::create_sensor(&pool, &Actor::Cli, &house, &new).await;
        assert!(
            matches!(&refused, Err(Error::InvalidInput { field: named, .. }) if *named == field),
            "{}: {refused:?}",
            new.key
        );
    }
    assert!(
        stoker_metadata::list_sensors(&pool, &house)
            .await
            .unwrap()
            .is_empty()
    );
}

#[tokio::test]
async fn a_kind_never_changes_and_states_only_grow() {
    let database = TestPostgres::create().await;
    let pool = with_site(&database).await;
    let house = slug("boiler-house-1");
    let sequencer = key("b1_sequencer");
    stoker_metadata::create_sensor(
        &pool,
        &Actor::Cli,
        &house,
        &of_kind(
            "b1_sequencer",
            SensorKind::State,
            &["off", "purge", "firing"],
        ),
    )
    .await
    .unwrap();
    let change = |kind: Option<SensorKind>, states: Option<&[&str]>| SensorChanges {
        kind,
        states: states.map(|names| States::parse(names.iter().copied()).unwrap()),
        ..SensorChanges::default()
    };

    let refused = stoker_metadata::update_sensor(
        &pool,
        &Actor::Cli,
        &house,
        &sequencer,
        1,
        &change(Some(SensorKind::Boolean), None),
    )
    .await;
    assert!(
        matches!(
            refused,
            Err(Error::KindUnchangeable {
                current: SensorKind::State,
                ..
            })
        ),
        "{refused:?}"
    );
    for states in [
        &["off", "purge"][..],
        &["off", "firing", "purge"],
        &["off", "pre-purge", "firing"],
    ] {
        let refused = stoker_metadata::update_sensor(
            &pool,
            &Actor::Cli,
            &house,
            &sequencer,
            1,
            &change(None, Some(states)),
        )
        .await;
        assert!(
            matches!(&refused, Err(Error::StatesNotKept { .. })),
            "{states:?}: {refused:?}"
        );
    }
    let refused = stoker_metadata::update_sensor(
        &pool,
        &Actor::Cli,
        &house,
        &sequencer,
        1,
        &SensorChanges {
            range: Some(ValidRange::new(Some(0.0), Some(4.0)).unwrap()),
            ..SensorChanges::default()
        },
    )
    .await;
    assert!(
        matches!(&refused, Err(Error::KindConflict { field: "min", .. })),
        "{refused:?}"
    );

    // The same kind, and states grown at the end: accepted.
    let grown = stoker_metadata::update_sensor(
        &pool,
        &Actor::Cli,
        &house,
        &sequencer,
        1,
        &change(
            Some(SensorKind::State),
            Some(&["off", "purge", "firing", "lockout"]),
        ),
    )
    .await
    .unwrap();
    assert_eq!(grown.version, 2);
    assert_eq!(grown.states.index_of("lockout"), Some(3));
    assert_eq!(grown.states.index_of("firing"), Some(2));

    // Another writer meets the table's trigger.
    let client = pool.get().await.unwrap();
    for statement in [
        "UPDATE metadata.sensors SET kind = 'boolean', states = '{}' WHERE key = 'b1_sequencer'",
        "UPDATE metadata.sensors SET states = '{purge,off}' WHERE key = 'b1_sequencer'",
    ] {
        let error = client.execute(statement, &[]).await.unwrap_err();
        assert!(
            error.as_db_error().is_some_and(|db| db
                .constraint()
                .is_some_and(|name| name.starts_with("sensors_"))),
            "{statement}: {error:?}"
        );
    }
}
