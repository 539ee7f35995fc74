//! Metadata against a real Postgres database of the test's own (one per
//! test, dropped afterwards).

mod alert_rules;
mod api_keys;
mod audit;
mod changes;
mod gateway_devices;
mod gateways;
mod kinds;
mod sites_and_sensors;

use std::time::Duration;
use stoker_metadata::Actor;

use stoker_domain::{SensorKey, SensorType, SiteSlug, Unit, ValidRange};
use stoker_metadata::{Error, NewSensor, NewSite};
use stoker_postgres::{Pool, PostgresOptions};
use stoker_testkit::TestPostgres;
use tokio_util::sync::CancellationToken;

async fn migrated(database: &TestPostgres) -> Pool {
    database.migrated_pool().await
}

fn slug(slug: &str) -> SiteSlug {
    SiteSlug::parse(slug).unwrap()
}

fn key(key: &str) -> SensorKey {
    SensorKey::parse(key).unwrap()
}

fn site(slug: &str) -> NewSite {
    NewSite::parse(slug, "Boiler house", "Europe/Berlin").unwrap()
}

fn sensor(key: &str) -> NewSensor {
    NewSensor {
        key: SensorKey::parse(key).unwrap(),
        sensor_type: SensorType::parse("pressure").unwrap(),
        unit: Unit::parse("bar").unwrap(),
        kind: stoker_domain::SensorKind::Numeric,
        states: stoker_domain::States::default(),
        range: ValidRange::new(Some(0.0), Some(25.0)).unwrap(),
    }
}

/// A pool on a migrated database with site `boiler-house-1`.
async fn with_site(database: &TestPostgres) -> Pool {
    let pool = migrated(database).await;
    stoker_metadata::create_site(&pool, &Actor::Cli, &site("boiler-house-1"))
        .await
        .unwrap();
    pool
}

#[tokio::test]
async fn migrating_twice_is_a_no_op_with_a_history_per_schema() {
    let database = TestPostgres::create().await;
    let pool = migrated(&database).await;
    let client = pool.get().await.unwrap();
    let count = "SELECT count(*) FROM metadata.schema_history";
    let applied: i64 = client.query_one(count, &[]).await.unwrap().get(0);
    assert!(applied >= 2, "V1 and V2 at least: {applied}");
    stoker_metadata::migrate(&pool).await.unwrap();
    let again: i64 = client.query_one(count, &[]).await.unwrap().get(0);
    assert_eq!(again, applied);
}

#[tokio::test]
async fn sites_are_created_listed_and_unique() {
    let database = TestPostgres::create().await;
    let pool = migrated(&database).await;
    let created = stoker_metadata::create_site(&pool, &Actor::Cli, &site("boiler-house-2"))
        .await
        .unwrap();
    stoker_metadata::create_site(&pool, &Actor::Cli, &site("boiler-house-1"))
        .await
        .unwrap();
    assert_eq!(created.slug.as_str(), "boiler-house-2");
    assert_eq!(created.timezone, "Europe/Berlin");
    assert_eq!(created.version, 1);

    let slugs: Vec<_> = stoker_metadata::list_sites(&pool)
        .await
        .unwrap()
        .into_iter()
        .map(|site| site.slug.to_string())
        .collect();
    assert_eq!(slugs, ["boiler-house-1", "boiler-house-2"]);

    let fetched = stoker_metadata::get_site(&pool, &created.slug)
        .await
        .unwrap();
    assert_eq!(fetched, created);

    let duplicate = stoker_metadata::create_site(&pool, &Actor::Cli, &site("boiler-house-2")).await;
    assert!(
        matches!(duplicate, Err(Error::SiteExists(_))),
        "{duplicate:?}"
    );
    let missing = stoker_metadata::get_site(&pool, &SiteSlug::parse("nowhere").unwrap()).await;
    assert!(
        matches!(missing, Err(Error::SiteNotFound(_))),
        "{missing:?}"
    );
}

#[tokio::test]
async fn unknown_timezones_are_refused() {
    let database = TestPostgres::create().await;
    let pool = migrated(&database).await;
    let mars = NewSite::parse("mars-1", "Mars", "Mars/Olympus_Mons").unwrap();
    let error = stoker_metadata::create_site(&pool, &Actor::Cli, &mars)
        .await
        .unwrap_err();
    assert!(matches!(error, Error::UnknownTimezone(_)), "{error}");
    assert!(stoker_metadata::list_sites(&pool).await.unwrap().is_empty());
}

#[tokio::test]
async fn sensors_belong_to_a_site_and_feed_the_registry() {
    let database = TestPostgres::create().await;
    let pool = migrated(&database).await;
    let slug = SiteSlug::parse("boiler-house-1").unwrap();
    stoker_metadata::create_site(&pool, &Actor::Cli, &site("boiler-house-1"))
        .await
        .unwrap();

    let created =
        stoker_metadata::create_sensor(&pool, &Actor::Cli, &slug, &sensor("b1_steam_pressure"))
            .await
            .unwrap();
    assert_eq!(created.site, slug);
    assert_eq!((created.min, created.max), (Some(0.0), Some(25.0)));
    let json = serde_json::to_value(&created).unwrap();
    assert_eq!(json["type"], "pressure");
    assert_eq!(json["unit"], "bar");

    let duplicate =
        stoker_metadata::create_sensor(&pool, &Actor::Cli, &slug, &sensor("b1_steam_pressure"))
            .await;
    assert!(
        matches!(duplicate, Err(Error::SensorExists { .. })),
        "{duplicate:?}"
    );
    let orphan = stoker_metadata::create_sensor(
        &pool,
        &Actor::Cli,
        &SiteSlug::parse("nowhere").unwrap(),
        &sensor("x"),
    )
    .await;
    assert!(matches!(orphan, Err(Error::SiteNotFound(_))), "{orphan:?}");

    assert_eq!(
        stoker_metadata::list_sensors(&pool, &slug).await.unwrap(),
        vec![created]
    );
    let registry = stoker_metadata::registry(&pool).await.unwrap();
    assert_eq!(registry.len(), 1);
    assert_eq!(registry[0].key.as_str(), "b1_steam_pressure");
    assert!(registry[0].range.contains(10.4) && !registry[0].range.contains(30.0));
}

#[tokio::test]
async fn changes_are_announced_to_listeners() {
    let database = TestPostgres::create().await;
    let pool = migrated(&database).await;
    let (generation, mut changes) = tokio::sync::watch::channel(0_u64);
    let shutdown = CancellationToken::new();
    let listener = tokio::spawn(stoker_metadata::watch_changes(
        PostgresOptions::from_url(database.url()),
        generation,
        shutdown.clone(),
    ));
    // The first bump comes once the LISTEN is in place.
    tokio::time::timeout(Duration::from_secs(10), changes.changed())
        .await
        .unwrap()
        .unwrap();

    stoker_metadata::create_site(&pool, &Actor::Cli, &site("boiler-house-1"))
        .await
        .unwrap();
    tokio::time::timeout(Duration::from_secs(10), changes.changed())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(*changes.borrow(), 2);

    shutdown.cancel();
    listener.await.unwrap().unwrap();
}
