//! Gateways: bindings, births and deaths as the Sparkplug host records
//! them (a device's: `gateway_devices.rs`), the announced metrics and
//! their registration, the change feed.

use std::time::Duration;
use stoker_metadata::Actor;

use stoker_domain::{EpochMillis, SensorKey, SensorKind, SensorType, States, Unit, ValidRange};
use stoker_metadata::{AnnouncedMetric, Change, Error, GatewayBinding, NewGateway, NewSensor};
use stoker_postgres::PostgresOptions;
use stoker_testkit::TestPostgres;
use tokio::sync::broadcast;
use tokio_util::sync::CancellationToken;

use super::{key, sensor, site, slug, with_site};

pub(crate) fn at(millis: i64) -> EpochMillis {
    EpochMillis::from_millis(millis).unwrap()
}

pub(crate) fn metric(device: Option<&str>, name: &str, datatype: &str) -> AnnouncedMetric {
    AnnouncedMetric {
        device: device.map(str::to_owned),
        metric: name.to_owned(),
        sensor: SensorKey::parse(
            format!(
                "{}{name}",
                device.map(|d| format!("{d}/")).unwrap_or_default()
            )
            .to_lowercase()
            .replace([' ', '/'], "_"),
        )
        .ok(),
        datatype: datatype.to_owned(),
    }
}

pub(crate) fn gateway(group: &str, edge_node: &str) -> NewGateway {
    NewGateway::parse(group, edge_node).unwrap()
}

#[tokio::test]
async fn gateways_are_bound_listed_in_pages_and_unique_across_sites() {
    let database = TestPostgres::create().await;
    let pool = with_site(&database).await;
    let house = slug("boiler-house-1");
    stoker_metadata::create_site(&pool, &Actor::Cli, &site("boiler-house-2"))
        .await
        .unwrap();

    // Listed in creation order.
    for (group, edge_node) in [("Plant", "gw 1"), ("plant", "gw-1"), ("plant", "gw-2")] {
        let created =
            stoker_metadata::create_gateway(&pool, &Actor::Cli, &house, &gateway(group, edge_node))
                .await
                .unwrap();
        assert_eq!((created.version, created.online), (1, false));
        assert!(created.last_birth_at.is_none() && created.metrics.is_empty());
    }
    let taken = stoker_metadata::create_gateway(
        &pool,
        &Actor::Cli,
        &slug("boiler-house-2"),
        &gateway("plant", "gw-1"),
    )
    .await;
    assert!(
        matches!(taken, Err(Error::GatewayExists { .. })),
        "{taken:?}"
    );
    let nowhere = stoker_metadata::create_gateway(
        &pool,
        &Actor::Cli,
        &slug("nowhere"),
        &gateway("plant", "gw-9"),
    )
    .await;
    assert!(
        matches!(nowhere, Err(Error::SiteNotFound(_))),
        "{nowhere:?}"
    );

    let first = stoker_metadata::list_gateways_page(&pool, &house, 2, None)
        .await
        .unwrap();
    let names: Vec<_> = first
        .items
        .iter()
        .map(|g| (g.group.as_str(), g.edge_node.as_str()))
        .collect();
    assert_eq!(names, [("Plant", "gw 1"), ("plant", "gw-1")]);
    let after = first.next_after.as_deref().map(|id| id.parse().unwrap());
    assert_eq!(after, Some(first.items[1].id));
    let second = stoker_metadata::list_gateways_page(&pool, &house, 2, after)
        .await
        .unwrap();
    assert_eq!(second.items.len(), 1);
    assert_eq!(second.items[0].edge_node, "gw-2");
    assert_eq!(second.next_after, None);
    let empty = stoker_metadata::list_gateways_page(&pool, &slug("boiler-house-2"), 10, None)
        .await
        .unwrap();
    assert!(empty.items.is_empty());
    let missing = stoker_metadata::list_gateways_page(&pool, &slug("nowhere"), 10, None).await;
    assert!(
        matches!(missing, Err(Error::SiteNotFound(_))),
        "{missing:?}"
    );

    let mut bindings = stoker_metadata::gateway_bindings(&pool).await.unwrap();
    bindings.sort_by(|a, b| (&a.group, &a.edge_node).cmp(&(&b.group, &b.edge_node)));
    assert_eq!(
        bindings[0],
        GatewayBinding {
            site: house.clone(),
            group: "Plant".into(),
            edge_node: "gw 1".into()
        }
    );
    assert_eq!(bindings.len(), 3);

    // A site with a gateway is not deleted under it.
    let refused = stoker_metadata::delete_site(&pool, &Actor::Cli, &house, None).await;
    assert!(
        matches!(
            refused,
            Err(Error::SiteHasDependents {
                sensors: 0,
                alert_rules: 0,
                gateways: 3
            })
        ),
        "{refused:?}"
    );

    let id = first.items[0].id;
    let stale = stoker_metadata::delete_gateway(&pool, &Actor::Cli, &house, id, Some(7)).await;
    assert!(
        matches!(stale, Err(Error::VersionConflict { current: 1 })),
        "{stale:?}"
    );
    let elsewhere =
        stoker_metadata::delete_gateway(&pool, &Actor::Cli, &slug("boiler-house-2"), id, None)
            .await;
    assert!(
        matches!(elsewhere, Err(Error::GatewayNotFound { .. })),
        "{elsewhere:?}"
    );
    stoker_metadata::delete_gateway(&pool, &Actor::Cli, &house, id, Some(1))
        .await
        .unwrap();
    let gone = stoker_metadata::get_gateway(&pool, &house, id).await;
    assert!(
        matches!(gone, Err(Error::GatewayNotFound { .. })),
        "{gone:?}"
    );
}

#[tokio::test]
async fn the_table_refuses_ids_sparkplug_cannot_have() {
    let database = TestPostgres::create().await;
    let pool = with_site(&database).await;
    let client = pool.get().await.unwrap();
    for (group, edge_node) in [("a/b", "gw"), ("g", "gw+"), ("g", "#"), ("g", "tab\there")] {
        let refused = client
            .execute(
                "INSERT INTO metadata.gateways (id, site_id, group_id, edge_node)
                 SELECT gen_random_uuid(), id, $1, $2 FROM metadata.sites",
                &[&group, &edge_node],
            )
            .await;
        assert!(refused.is_err(), "{group:?}/{edge_node:?} was stored");
    }
}

#[tokio::test]
async fn births_and_deaths_set_the_state_and_the_announced_metrics() {
    let database = TestPostgres::create().await;
    let pool = with_site(&database).await;
    let house = slug("boiler-house-1");
    let created =
        stoker_metadata::create_gateway(&pool, &Actor::Cli, &house, &gateway("plant", "gw1"))
            .await
            .unwrap();
    stoker_metadata::create_sensor(&pool, &Actor::Cli, &house, &sensor("steam_pressure"))
        .await
        .unwrap();

    // Nothing is written for an edge node that is not bound.
    assert!(
        !stoker_metadata::record_gateway_birth(&pool, "plant", "gw9", at(1_000), Some(0), &[])
            .await
            .unwrap()
    );
    assert!(
        !stoker_metadata::record_gateway_death(&pool, "plant", "gw9", at(1_000), None)
            .await
            .unwrap()
    );

    // A death before any birth changes nothing: the gateway was never online.
    assert!(
        stoker_metadata::record_gateway_death(&pool, "plant", "gw1", at(500), None)
            .await
            .unwrap()
    );
    let untouched = stoker_metadata::get_gateway(&pool, &house, created.id)
        .await
        .unwrap();
    assert!(!untouched.online && untouched.last_death_at.is_none());

    let node = [
        metric(None, "Steam Pressure", "Double"),
        metric(None, "Burner On", "Boolean"),
        AnnouncedMetric {
            device: None,
            metric: "Raw\0Bytes".into(),
            sensor: None,
            datatype: "Bytes".into(),
        },
    ];
    assert!(
        stoker_metadata::record_gateway_birth(&pool, "plant", "gw1", at(1_000), Some(3), &node)
            .await
            .unwrap()
    );
    assert!(
        stoker_metadata::record_device_birth(
            &pool,
            "plant",
            "gw1",
            "boiler 1",
            at(1_100),
            Some(3),
            &[metric(Some("boiler 1"), "Sequencer", "String")]
        )
        .await
        .unwrap()
    );
    let online = stoker_metadata::get_gateway(&pool, &house, created.id)
        .await
        .unwrap();
    assert!(online.online);
    assert_eq!(online.bd_seq, Some(3));
    assert_eq!(online.last_birth_at.unwrap().timestamp_millis(), 1_000);
    assert_eq!(online.version, 1, "births leave the binding's version");
    let listed: Vec<_> = online
        .metrics
        .iter()
        .map(|m| {
            (
                m.device.as_deref(),
                m.metric.as_str(),
                m.sensor.as_ref().map(SensorKey::as_str),
                m.datatype.as_str(),
                m.registered,
            )
        })
        .collect();
    assert_eq!(
        listed,
        [
            (
                None,
                "Steam Pressure",
                Some("steam_pressure"),
                "Double",
                true
            ),
            (None, "Burner On", Some("burner_on"), "Boolean", false),
            (None, "Raw\u{FFFD}Bytes", None, "Bytes", false),
            (
                Some("boiler 1"),
                "Sequencer",
                Some("boiler_1_sequencer"),
                "String",
                false
            ),
        ]
    );

    // A device's new birth replaces only its own metrics.
    stoker_metadata::record_device_birth(
        &pool,
        "plant",
        "gw1",
        "boiler 1",
        at(1_200),
        Some(3),
        &[metric(Some("boiler 1"), "Flame", "Boolean")],
    )
    .await
    .unwrap();
    let states = stoker_metadata::gateway_states(&pool).await.unwrap();
    let mut sensors: Vec<_> = states[0].sensors.iter().map(SensorKey::as_str).collect();
    sensors.sort_unstable();
    assert_eq!(sensors, ["boiler_1_flame", "burner_on", "steam_pressure"]);

    // A death older than the birth is stale; the next one counts, once.
    stoker_metadata::record_gateway_death(&pool, "plant", "gw1", at(900), None)
        .await
        .unwrap();
    assert!(
        stoker_metadata::get_gateway(&pool, &house, created.id)
            .await
            .unwrap()
            .online
    );
    // The will of an earlier session (bdSeq 2, the birth's is 3), delivered
    // late, is stale too.
    stoker_metadata::record_gateway_death(&pool, "plant", "gw1", at(1_500), Some(2))
        .await
        .unwrap();
    assert!(
        stoker_metadata::get_gateway(&pool, &house, created.id)
            .await
            .unwrap()
            .online
    );
    for death in [2_000, 3_000] {
        assert!(
            stoker_metadata::record_gateway_death(&pool, "plant", "gw1", at(death), None)
                .await
                .unwrap()
        );
    }
    let state = &stoker_metadata::gateway_states(&pool).await.unwrap()[0];
    assert!(!state.online);
    assert_eq!(state.last_death_at, Some(at(2_000)));
    assert_eq!(state.last_birth_at, Some(at(1_000)));
    assert_eq!(state.site, house);

    // A new NBIRTH replaces every announced metric, the devices' too.
    stoker_metadata::record_gateway_birth(&pool, "plant", "gw1", at(4_000), None, &node[..1])
        .await
        .unwrap();
    let reborn = stoker_metadata::get_gateway(&pool, &house, created.id)
        .await
        .unwrap();
    assert!(reborn.online);
    assert_eq!(reborn.bd_seq, None);
    assert_eq!(reborn.metrics.len(), 1);
    assert_eq!(reborn.last_death_at.unwrap().timestamp_millis(), 2_000);

    // Deleting the gateway takes its announced metrics, not the sensors.
    stoker_metadata::delete_gateway(&pool, &Actor::Cli, &house, created.id, None)
        .await
        .unwrap();
    let client = pool.get().await.unwrap();
    let left: i64 = client
        .query_one("SELECT count(*) FROM metadata.gateway_metrics", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(left, 0);
    stoker_metadata::get_sensor(&pool, &house, &key("steam_pressure"))
        .await
        .unwrap();
}

#[tokio::test]
async fn registering_sensors_is_all_or_nothing() {
    let database = TestPostgres::create().await;
    let pool = with_site(&database).await;
    let house = slug("boiler-house-1");
    let created =
        stoker_metadata::create_gateway(&pool, &Actor::Cli, &house, &gateway("plant", "gw1"))
            .await
            .unwrap();
    stoker_metadata::create_sensor(&pool, &Actor::Cli, &house, &sensor("taken"))
        .await
        .unwrap();
    let new = |name: &str, kind: SensorKind, states: &[&str]| NewSensor {
        key: key(name),
        sensor_type: SensorType::parse("sparkplug").unwrap(),
        unit: Unit::parse("1").unwrap(),
        kind,
        states: States::parse(states.iter().copied()).unwrap(),
        range: ValidRange::new(None, None).unwrap(),
    };
    let refused = stoker_metadata::register_gateway_sensors(
        &pool,
        &Actor::Cli,
        &house,
        created.id,
        &[
            new("fresh", SensorKind::Numeric, &[]),
            new("taken", SensorKind::Boolean, &[]),
        ],
    )
    .await;
    assert!(
        matches!(refused, Err(Error::SensorExists { .. })),
        "{refused:?}"
    );
    let none = stoker_metadata::get_sensor(&pool, &house, &key("fresh")).await;
    assert!(
        matches!(none, Err(Error::SensorNotFound { .. })),
        "{none:?}"
    );

    let registered = stoker_metadata::register_gateway_sensors(
        &pool,
        &Actor::Cli,
        &house,
        created.id,
        &[
            new("fresh", SensorKind::Numeric, &[]),
            new("mode", SensorKind::State, &["off", "on"]),
        ],
    )
    .await
    .unwrap();
    assert_eq!(registered.len(), 2);
    assert_eq!(registered[1].kind, SensorKind::State);

    let unknown = stoker_metadata::register_gateway_sensors(
        &pool,
        &Actor::Cli,
        &house,
        uuid::Uuid::now_v7(),
        &[],
    )
    .await;
    assert!(
        matches!(unknown, Err(Error::GatewayNotFound { .. })),
        "{unknown:?}"
    );
}

/// The next change, waiting at most ten seconds.
async fn next(changes: &mut broadcast::Receiver<Change>) -> Change {
    tokio::time::timeout(Duration::from_secs(10), changes.recv())
        .await
        .expect("a change within 10 s")
        .expect("the listener runs")
}

#[tokio::test]
async fn gateway_changes_are_announced_with_their_site() {
    let database = TestPostgres::create().await;
    let pool = with_site(&database).await;
    let house = slug("boiler-house-1");
    let (sender, mut changes) = broadcast::channel::<Change>(64);
    let shutdown = CancellationToken::new();
    let listener = tokio::spawn(stoker_metadata::watch_change_events(
        PostgresOptions::from_url(database.url()),
        sender,
        shutdown.clone(),
    ));
    assert_eq!(next(&mut changes).await, Change::everything());
    stoker_metadata::create_gateway(&pool, &Actor::Cli, &house, &gateway("plant", "gw1"))
        .await
        .unwrap();
    let expected = Change {
        table: "gateways".into(),
        site: Some(house.clone()),
    };
    assert_eq!(next(&mut changes).await, expected);
    stoker_metadata::record_gateway_birth(&pool, "plant", "gw1", at(1_000), None, &[])
        .await
        .unwrap();
    assert_eq!(next(&mut changes).await, expected);
    // A device's birth and death are changes to its gateway.
    stoker_metadata::record_device_birth(&pool, "plant", "gw1", "boiler 1", at(1_100), None, &[])
        .await
        .unwrap();
    assert_eq!(next(&mut changes).await, expected);
    stoker_metadata::record_device_death(&pool, "plant", "gw1", "boiler 1", at(1_200), None)
        .await
        .unwrap();
    assert_eq!(next(&mut changes).await, expected);
    shutdown.cancel();
    listener.await.unwrap().unwrap();
}
