//! Sites and sensors: updates with optimistic locking, deletes that never
//! orphan, keyset pages.

use stoker_domain::{SensorType, Unit, ValidRange};
use stoker_metadata::Actor;
use stoker_metadata::{Error, SensorChanges, SiteChanges};
use stoker_testkit::TestPostgres;

use super::{key, migrated, sensor, site, slug, with_site};

#[tokio::test]
async fn a_site_is_updated_only_from_its_current_version() {
    let database = TestPostgres::create().await;
    let pool = with_site(&database).await;
    let house = slug("boiler-house-1");
    let before = stoker_metadata::get_site(&pool, &house).await.unwrap();

    let renamed = SiteChanges::parse(Some("  Main boiler house "), None).unwrap();
    let updated = stoker_metadata::update_site(&pool, &Actor::Cli, &house, 1, &renamed)
        .await
        .unwrap();
    assert_eq!(updated.name, "Main boiler house");
    assert_eq!(updated.timezone, "Europe/Berlin");
    assert_eq!(updated.version, 2);
    assert_eq!(updated.created_at, before.created_at);
    assert!(updated.updated_at >= before.updated_at);

    // Someone who read version 1 loses, and learns the current version.
    let moved = SiteChanges::parse(None, Some("Europe/Vienna")).unwrap();
    let stale = stoker_metadata::update_site(&pool, &Actor::Cli, &house, 1, &moved).await;
    assert!(
        matches!(stale, Err(Error::VersionConflict { current: 2 })),
        "{stale:?}"
    );
    let moved = stoker_metadata::update_site(&pool, &Actor::Cli, &house, 2, &moved)
        .await
        .unwrap();
    assert_eq!(
        (moved.timezone.as_str(), moved.version),
        ("Europe/Vienna", 3)
    );

    let mars = SiteChanges::parse(None, Some("Mars/Olympus_Mons")).unwrap();
    let unknown = stoker_metadata::update_site(&pool, &Actor::Cli, &house, 3, &mars).await;
    assert!(
        matches!(unknown, Err(Error::UnknownTimezone(ref zone)) if zone == "Mars/Olympus_Mons"),
        "{unknown:?}"
    );
    let missing =
        stoker_metadata::update_site(&pool, &Actor::Cli, &slug("nowhere"), 1, &renamed).await;
    assert!(
        matches!(missing, Err(Error::SiteNotFound(_))),
        "{missing:?}"
    );
    assert_eq!(
        stoker_metadata::get_site(&pool, &house)
            .await
            .unwrap()
            .version,
        3
    );

    assert_eq!(SiteChanges::parse(Some(" "), None).unwrap_err().0, "name");
    assert_eq!(
        SiteChanges::parse(None, Some("")).unwrap_err().0,
        "timezone"
    );
}

#[tokio::test]
async fn a_site_with_sensors_or_rules_is_never_deleted() {
    let database = TestPostgres::create().await;
    let pool = with_site(&database).await;
    let house = slug("boiler-house-1");
    for name in ["b1_steam_pressure", "b1_flue_temp"] {
        stoker_metadata::create_sensor(&pool, &Actor::Cli, &house, &sensor(name))
            .await
            .unwrap();
    }
    let rule = stoker_metadata::create_alert_rule(
        &pool,
        &Actor::Cli,
        &super::alert_rules::no_data_at(&house),
    )
    .await
    .unwrap();

    let refused = stoker_metadata::delete_site(&pool, &Actor::Cli, &house, Some(1)).await;
    assert!(
        matches!(
            refused,
            Err(Error::SiteHasDependents {
                sensors: 2,
                alert_rules: 1,
                gateways: 0
            })
        ),
        "{refused:?}"
    );
    // Not even partly: everything is still there.
    assert_eq!(
        stoker_metadata::list_sensors(&pool, &house)
            .await
            .unwrap()
            .len(),
        2
    );

    for name in ["b1_steam_pressure", "b1_flue_temp"] {
        stoker_metadata::delete_sensor(&pool, &Actor::Cli, &house, &key(name), None)
            .await
            .unwrap();
    }
    let refused = stoker_metadata::delete_site(&pool, &Actor::Cli, &house, None).await;
    assert!(
        matches!(
            refused,
            Err(Error::SiteHasDependents {
                sensors: 0,
                alert_rules: 1,
                gateways: 0
            })
        ),
        "{refused:?}"
    );
    stoker_metadata::delete_alert_rule(&pool, &Actor::Cli, rule.id, Some(rule.version))
        .await
        .unwrap();

    let stale = stoker_metadata::delete_site(&pool, &Actor::Cli, &house, Some(7)).await;
    assert!(
        matches!(stale, Err(Error::VersionConflict { current: 1 })),
        "{stale:?}"
    );
    stoker_metadata::delete_site(&pool, &Actor::Cli, &house, Some(1))
        .await
        .unwrap();
    let gone = stoker_metadata::get_site(&pool, &house).await;
    assert!(matches!(gone, Err(Error::SiteNotFound(_))), "{gone:?}");
    let again = stoker_metadata::delete_site(&pool, &Actor::Cli, &house, None).await;
    assert!(matches!(again, Err(Error::SiteNotFound(_))), "{again:?}");
}

#[tokio::test]
async fn sites_page_through_in_byte_order_without_gaps_or_duplicates() {
    let database = TestPostgres::create().await;
    let pool = migrated(&database).await;
    // '-' < digits < '_' < letters in byte order, whatever the collation.
    let mut slugs = vec!["site-b", "site_1", "site-a", "site1", "site-1"];
    for slug in &slugs {
        stoker_metadata::create_site(&pool, &Actor::Cli, &site(slug))
            .await
            .unwrap();
    }
    slugs.sort_unstable();

    let mut seen = Vec::new();
    let mut after = None;
    let mut pages = 0;
    loop {
        let page = stoker_metadata::list_sites_page(&pool, 2, after.as_ref())
            .await
            .unwrap();
        pages += 1;
        assert!(page.items.len() <= 2);
        seen.extend(page.items.iter().map(|site| site.slug.to_string()));
        match page.next_after {
            Some(last) => {
                assert_eq!(Some(&last), seen.last());
                after = Some(slug(&last));
            }
            None => break,
        }
    }
    assert_eq!(pages, 3);
    assert_eq!(seen, slugs);

    let everything = stoker_metadata::list_sites_page(&pool, 5, None)
        .await
        .unwrap();
    assert_eq!(everything.items.len(), 5);
    assert_eq!(everything.next_after, None, "no empty last page");

    for limit in [0, -1, 1001] {
        let refused = stoker_metadata::list_sites_page(&pool, limit, None).await;
        assert!(
            matches!(refused, Err(Error::InvalidInput { field: "limit", .. })),
            "{refused:?}"
        );
    }
}

#[tokio::test]
async fn a_sensor_is_read_updated_and_deleted_by_version() {
    let database = TestPostgres::create().await;
    let pool = with_site(&database).await;
    let house = slug("boiler-house-1");
    let pressure = key("b1_steam_pressure");
    let created =
        stoker_metadata::create_sensor(&pool, &Actor::Cli, &house, &sensor("b1_steam_pressure"))
            .await
            .unwrap();
    assert_eq!(
        stoker_metadata::get_sensor(&pool, &house, &pressure)
            .await
            .unwrap(),
        created
    );
    let missing = stoker_metadata::get_sensor(&pool, &house, &key("nothing")).await;
    assert!(
        matches!(missing, Err(Error::SensorNotFound { .. })),
        "{missing:?}"
    );
    let missing = stoker_metadata::get_sensor(&pool, &slug("nowhere"), &pressure).await;
    assert!(
        matches!(missing, Err(Error::SiteNotFound(_))),
        "{missing:?}"
    );

    // Only the unit changes.
    let psi = SensorChanges {
        unit: Some(Unit::parse("psi").unwrap()),
        ..SensorChanges::default()
    };
    let updated = stoker_metadata::update_sensor(&pool, &Actor::Cli, &house, &pressure, 1, &psi)
        .await
        .unwrap();
    assert_eq!(updated.unit.as_str(), "psi");
    assert_eq!(updated.sensor_type.as_str(), "pressure");
    assert_eq!((updated.min, updated.max), (Some(0.0), Some(25.0)));
    assert_eq!(updated.version, 2);

    // A range replaces both bounds.
    let range = SensorChanges {
        sensor_type: Some(SensorType::parse("differential_pressure").unwrap()),
        range: Some(ValidRange::new(None, Some(400.0)).unwrap()),
        ..SensorChanges::default()
    };
    let stale =
        stoker_metadata::update_sensor(&pool, &Actor::Cli, &house, &pressure, 1, &range).await;
    assert!(
        matches!(stale, Err(Error::VersionConflict { current: 2 })),
        "{stale:?}"
    );
    let updated = stoker_metadata::update_sensor(&pool, &Actor::Cli, &house, &pressure, 2, &range)
        .await
        .unwrap();
    assert_eq!((updated.min, updated.max), (None, Some(400.0)));
    assert_eq!(updated.sensor_type.as_str(), "differential_pressure");
    assert_eq!(updated.version, 3);
    let registry = stoker_metadata::registry(&pool).await.unwrap();
    assert!(registry[0].range.contains(-5.0) && !registry[0].range.contains(401.0));
    let with_sites = stoker_metadata::site_registry(&pool).await.unwrap();
    assert_eq!(with_sites.sensors, registry);
    assert!(with_sites.sites.is_empty(), "{:?}", with_sites.sites);

    let missing =
        stoker_metadata::update_sensor(&pool, &Actor::Cli, &house, &key("nothing"), 1, &range)
            .await;
    assert!(
        matches!(missing, Err(Error::SensorNotFound { .. })),
        "{missing:?}"
    );
    let missing =
        stoker_metadata::update_sensor(&pool, &Actor::Cli, &slug("nowhere"), &pressure, 1, &range)
            .await;
    assert!(
        matches!(missing, Err(Error::SiteNotFound(_))),
        "{missing:?}"
    );

    let stale =
        stoker_metadata::delete_sensor(&pool, &Actor::Cli, &house, &pressure, Some(2)).await;
    assert!(
        matches!(stale, Err(Error::VersionConflict { current: 3 })),
        "{stale:?}"
    );
    stoker_metadata::delete_sensor(&pool, &Actor::Cli, &house, &pressure, Some(3))
        .await
        .unwrap();
    let gone = stoker_metadata::delete_sensor(&pool, &Actor::Cli, &house, &pressure, None).await;
    assert!(
        matches!(gone, Err(Error::SensorNotFound { .. })),
        "{gone:?}"
    );
    assert!(stoker_metadata::registry(&pool).await.unwrap().is_empty());
    // Its site is still known to ingestion, without sensors.
    let with_sites = stoker_metadata::site_registry(&pool).await.unwrap();
    assert!(with_sites.sensors.is_empty());
    assert_eq!(with_sites.sites, [house]);
}

#[tokio::test]
async fn sensors_page_through_their_site() {
    let database = TestPostgres::create().await;
    let pool = with_site(&database).await;
    let house = slug("boiler-house-1");
    stoker_metadata::create_site(&pool, &Actor::Cli, &site("boiler-house-2"))
        .await
        .unwrap();
    let mut keys = vec!["b2_o2", "b1_flue_temp", "b1-level", "b10_flow", "b1_steam"];
    for name in &keys {
        stoker_metadata::create_sensor(&pool, &Actor::Cli, &house, &sensor(name))
            .await
            .unwrap();
    }
    // Another site's sensors stay out of the pages.
    stoker_metadata::create_sensor(
        &pool,
        &Actor::Cli,
        &slug("boiler-house-2"),
        &sensor("b1_flue_temp"),
    )
    .await
    .unwrap();
    keys.sort_unstable();

    let mut seen = Vec::new();
    let mut after = None;
    let mut pages = 0;
    loop {
        let page = stoker_metadata::list_sensors_page(&pool, &house, 2, after.as_ref())
            .await
            .unwrap();
        pages += 1;
        assert!(page.items.iter().all(|sensor| sensor.site == house));
        seen.extend(page.items.iter().map(|sensor| sensor.key.to_string()));
        match page.next_after {
            Some(last) => after = Some(key(&last)),
            None => break,
        }
    }
    assert_eq!(pages, 3);
    assert_eq!(seen, keys);

    let missing = stoker_metadata::list_sensors_page(&pool, &slug("nowhere"), 2, None).await;
    assert!(
        matches!(missing, Err(Error::SiteNotFound(_))),
        "{missing:?}"
    );
    stoker_metadata::create_site(&pool, &Actor::Cli, &site("boiler-house-3"))
        .await
        .unwrap();
    let empty = stoker_metadata::list_sensors_page(&pool, &slug("boiler-house-3"), 2, None)
        .await
        .unwrap();
    assert!(empty.items.is_empty() && empty.next_after.is_none());
    let past_the_end = stoker_metadata::list_sensors_page(&pool, &house, 2, Some(&key("zzz")))
        .await
        .unwrap();
    assert!(past_the_end.items.is_empty());
}
