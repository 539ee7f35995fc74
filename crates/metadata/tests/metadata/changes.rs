//! Change events: which table and which site changed.

use std::time::Duration;
use stoker_metadata::Actor;

use stoker_domain::Unit;
use stoker_metadata::{Change, Scope, SensorChanges};
use stoker_postgres::PostgresOptions;
use stoker_testkit::TestPostgres;
use tokio::sync::broadcast;
use tokio_util::sync::CancellationToken;

use super::{key, sensor, slug, with_site};

/// The next change, waiting at most ten seconds.
async fn next(changes: &mut broadcast::Receiver<Change>) -> Change {
    tokio::time::timeout(Duration::from_secs(10), changes.recv())
        .await
        .expect("a change within 10 s")
        .expect("the listener runs")
}

#[tokio::test]
async fn changes_name_their_table_and_site() {
    let database = TestPostgres::create().await;
    let pool = with_site(&database).await;
    let house = slug("boiler-house-1");
    stoker_metadata::create_sensor(&pool, &Actor::Cli, &house, &sensor("b1_steam_pressure"))
        .await
        .unwrap();

    let (sender, mut changes) = broadcast::channel(64);
    let shutdown = CancellationToken::new();
    let listener = tokio::spawn(stoker_metadata::watch_change_events(
        PostgresOptions::from_url(database.url()),
        sender,
        shutdown.clone(),
    ));
    // First, once listening: anything may have changed.
    assert_eq!(next(&mut changes).await, Change::everything());

    let psi = SensorChanges {
        unit: Some(Unit::parse("psi").unwrap()),
        ..SensorChanges::default()
    };
    stoker_metadata::update_sensor(
        &pool,
        &Actor::Cli,
        &house,
        &key("b1_steam_pressure"),
        1,
        &psi,
    )
    .await
    .unwrap();
    assert_eq!(
        next(&mut changes).await,
        Change {
            table: "sensors".into(),
            site: Some(house.clone())
        }
    );

    let rule = super::alert_rules::no_data_at(&house);
    stoker_metadata::create_alert_rule(&pool, &Actor::Cli, &rule)
        .await
        .unwrap();
    assert_eq!(
        next(&mut changes).await,
        Change {
            table: "alert_rules".into(),
            site: Some(house.clone())
        }
    );

    stoker_metadata::create_api_key(&pool, &Actor::Cli, "ops", &[Scope::Admin])
        .await
        .unwrap();
    assert_eq!(
        next(&mut changes).await,
        Change {
            table: "api_keys".into(),
            site: None
        }
    );

    let client = pool.get().await.unwrap();
    client
        .batch_execute("TRUNCATE metadata.alert_rules")
        .await
        .unwrap();
    assert_eq!(
        next(&mut changes).await,
        Change {
            table: "alert_rules".into(),
            site: None
        }
    );

    shutdown.cancel();
    listener.await.unwrap().unwrap();
}

#[tokio::test]
async fn the_generation_moves_on_every_table_key_revocations_included() {
    let database = TestPostgres::create().await;
    let pool = with_site(&database).await;
    let (generation, mut changes) = tokio::sync::watch::channel(0_u64);
    let shutdown = CancellationToken::new();
    let listener = tokio::spawn(stoker_metadata::watch_changes(
        PostgresOptions::from_url(database.url()),
        generation,
        shutdown.clone(),
    ));
    let mut wait = async || {
        tokio::time::timeout(Duration::from_secs(10), changes.changed())
            .await
            .expect("a bump within 10 s")
            .expect("the listener runs");
        *changes.borrow_and_update()
    };
    assert_eq!(wait().await, 1, "once listening");

    stoker_metadata::create_api_key(&pool, &Actor::Cli, "ops", &[Scope::Admin])
        .await
        .unwrap();
    assert_eq!(wait().await, 2);
    // Caches of keys learn of a revocation at once.
    stoker_metadata::revoke_api_key(&pool, &Actor::Cli, "ops")
        .await
        .unwrap();
    assert_eq!(wait().await, 3);
    let rule = super::alert_rules::no_data_at(&slug("boiler-house-1"));
    stoker_metadata::create_alert_rule(&pool, &Actor::Cli, &rule)
        .await
        .unwrap();
    assert_eq!(wait().await, 4);

    shutdown.cancel();
    listener.await.unwrap().unwrap();
}

#[tokio::test]
async fn a_watch_of_some_tables_moves_on_only_for_them() {
    let database = TestPostgres::create().await;
    let pool = with_site(&database).await;
    let (generation, mut changes) = tokio::sync::watch::channel(0_u64);
    let shutdown = CancellationToken::new();
    let listener = tokio::spawn(stoker_metadata::watch_changes_to(
        PostgresOptions::from_url(database.url()),
        &["sites", "sensors"],
        generation,
        shutdown.clone(),
    ));
    tokio::time::timeout(Duration::from_secs(10), changes.changed())
        .await
        .expect("a bump within 10 s, once listening")
        .unwrap();
    assert_eq!(*changes.borrow_and_update(), 1);

    // A key and a rule are not what this watch is for.
    stoker_metadata::create_api_key(&pool, &Actor::Cli, "ops", &[Scope::Admin])
        .await
        .unwrap();
    let rule = super::alert_rules::no_data_at(&slug("boiler-house-1"));
    stoker_metadata::create_alert_rule(&pool, &Actor::Cli, &rule)
        .await
        .unwrap();
    // A sensor is; its notification comes after the two others.
    stoker_metadata::create_sensor(
        &pool,
        &Actor::Cli,
        &slug("boiler-house-1"),
        &sensor("b1_drum_level"),
    )
    .await
    .unwrap();
    tokio::time::timeout(Duration::from_secs(10), changes.changed())
        .await
        .expect("a bump within 10 s")
        .unwrap();
    assert_eq!(*changes.borrow_and_update(), 2, "the sensor alone");

    shutdown.cancel();
    listener.await.unwrap().unwrap();
}
