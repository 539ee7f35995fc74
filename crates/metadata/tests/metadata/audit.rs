//! The audit trail: every change through the repository functions is
//! recorded with its actor and its before and after, in the change's own
//! transaction (a refused change records nothing); the table refuses
//! UPDATE, DELETE and TRUNCATE; lists filter and page.

use std::time::Duration;

use stoker_metadata::{
    Actor, AuditChange, AuditEvent, AuditFilter, Entity, NewApiKey, NewGateway, Scope,
    SensorChanges, SiteChanges,
};
use stoker_rules::{NewAlertRule, RuleKind, RuleSelector, Severity};
use stoker_testkit::TestPostgres;

use super::*;

fn ops() -> Actor {
    Actor::Key("ops".into())
}

/// Every event, oldest first.
async fn trail(pool: &Pool) -> Vec<AuditEvent> {
    let mut page = stoker_metadata::list_audit_page(pool, &AuditFilter::default(), 1000, None)
        .await
        .unwrap();
    page.items.reverse();
    page.items
}

#[tokio::test]
async fn the_table_refuses_update_delete_and_truncate() {
    let database = TestPostgres::create().await;
    let pool = with_site(&database).await;
    let client = pool.get().await.unwrap();
    for statement in [
        "UPDATE metadata.audit_events SET actor = 'someone else'",
        "DELETE FROM metadata.audit_events",
        "TRUNCATE metadata.audit_events",
    ] {
        let error = client.batch_execute(statement).await.unwrap_err();
        let message = error.as_db_error().map(|db| db.message().to_owned());
        assert!(
            message
                .as_deref()
                .is_some_and(|message| message.contains("append-only")),
            "{statement}: {error:?}"
        );
    }
    assert_eq!(trail(&pool).await.len(), 1, "the site's creation stays");
}

#[tokio::test]
async fn every_change_is_recorded_with_its_actor_and_before_and_after() {
    let database = TestPostgres::create().await;
    let pool = migrated(&database).await;
    let site_slug = slug("boiler-house-1");
    stoker_metadata::create_site(&pool, &Actor::Cli, &site("boiler-house-1"))
        .await
        .unwrap();
    let changes = SiteChanges::parse(Some("Kesselhaus 1"), None).unwrap();
    stoker_metadata::update_site(&pool, &ops(), &site_slug, 1, &changes)
        .await
        .unwrap();
    stoker_metadata::create_sensor(&pool, &ops(), &site_slug, &sensor("b1_pressure"))
        .await
        .unwrap();
    let unit = SensorChanges {
        unit: Some(Unit::parse("kPa").unwrap()),
        ..SensorChanges::default()
    };
    stoker_metadata::update_sensor(&pool, &ops(), &site_slug, &key("b1_pressure"), 1, &unit)
        .await
        .unwrap();
    let gateway = stoker_metadata::create_gateway(
        &pool,
        &ops(),
        &site_slug,
        &NewGateway::parse("plant", "gw-1").unwrap(),
    )
    .await
    .unwrap();
    let rule = NewAlertRule::new(
        "pressure silent",
        RuleSelector {
            site: Some(site_slug.clone()),
            sensor: Some(key("b1_pressure")),
            sensor_type: None,
        },
        RuleKind::NoData {
            timeout: Duration::from_secs(120),
        },
        Severity::Warning,
        true,
        None,
    )
    .unwrap();
    let rule = stoker_metadata::create_alert_rule(&pool, &ops(), &rule)
        .await
        .unwrap();
    stoker_metadata::delete_alert_rule(&pool, &ops(), rule.id, Some(rule.version))
        .await
        .unwrap();
    stoker_metadata::delete_gateway(&pool, &ops(), &site_slug, gateway.id, None)
        .await
        .unwrap();
    stoker_metadata::delete_sensor(&pool, &ops(), &site_slug, &key("b1_pressure"), None)
        .await
        .unwrap();
    let mut new_key = NewApiKey::new("gw-key", &[Scope::Write]);
    new_key.sites = Some(vec![site_slug.clone()]);
    stoker_metadata::create_api_key_with(&pool, &Actor::Cli, &new_key)
        .await
        .unwrap();
    stoker_metadata::rotate_api_key(&pool, &Actor::Cli, "gw-key", Duration::from_secs(60))
        .await
        .unwrap();
    stoker_metadata::revoke_api_key(&pool, &Actor::Cli, "gw-key")
        .await
        .unwrap();
    // Revoking a revoked key changes nothing, and records nothing.
    stoker_metadata::revoke_api_key(&pool, &Actor::Cli, "gw-key")
        .await
        .unwrap();
    stoker_metadata::delete_site(&pool, &ops(), &site_slug, Some(2))
        .await
        .unwrap();

    let events = trail(&pool).await;
    let summary: Vec<(&str, &str, &str, &str, Option<&str>)> = events
        .iter()
        .map(|event| {
            (
                event.actor.as_str(),
                event.entity.as_str(),
                event.action.as_str(),
                event.entity_id.as_str(),
                event.site.as_deref(),
            )
        })
        .collect();
    let gateway_id = gateway.id.to_string();
    let rule_id = rule.id.to_string();
    let bh = Some("boiler-house-1");
    assert_eq!(
        summary,
        [
            ("cli", "site", "created", "boiler-house-1", bh),
            ("ops", "site", "updated", "boiler-house-1", bh),
            ("ops", "sensor", "created", "b1_pressure", bh),
            ("ops", "sensor", "updated", "b1_pressure", bh),
            ("ops", "gateway", "created", gateway_id.as_str(), bh),
            ("ops", "alert_rule", "created", rule_id.as_str(), bh),
            ("ops", "alert_rule", "deleted", rule_id.as_str(), bh),
            ("ops", "gateway", "deleted", gateway_id.as_str(), bh),
            ("ops", "sensor", "deleted", "b1_pressure", bh),
            ("cli", "api_key", "created", "gw-key", None),
            ("cli", "api_key", "rotated", "gw-key", None),
            ("cli", "api_key", "revoked", "gw-key", None),
            ("ops", "site", "deleted", "boiler-house-1", bh),
        ]
    );
    assert_eq!(events[0].actor_kind, "cli");
    assert_eq!(events[1].actor_kind, "api_key");
    let renamed = &events[1];
    assert_eq!(renamed.before.as_ref().unwrap()["name"], "Boiler house");
    assert_eq!(renamed.after.as_ref().unwrap()["name"], "Kesselhaus 1");
    assert_eq!(renamed.after.as_ref().unwrap()["version"], 2);
    let unit_change = &events[3];
    assert_eq!(unit_change.before.as_ref().unwrap()["unit"], "bar");
    assert_eq!(unit_change.after.as_ref().unwrap()["unit"], "kPa");
    assert!(events[0].before.is_none() && events[12].after.is_none());
    assert_eq!(
        events[6].before.as_ref().unwrap()["name"],
        "pressure silent"
    );
    // A key's record holds what the API shows of it: never a secret or a
    // hash.
    for event in &events[9..12] {
        for side in [&event.before, &event.after].into_iter().flatten() {
            let text = side.to_string();
            assert!(
                !text.contains("sha256") && !text.contains("secret"),
                "{text}"
            );
            assert_eq!(side["sites"], serde_json::json!(["boiler-house-1"]));
        }
    }
    assert!(events[11].after.as_ref().unwrap()["revoked_at"].is_string());
}

#[tokio::test]
async fn a_refused_change_records_nothing() {
    let database = TestPostgres::create().await;
    let pool = with_site(&database).await;
    let site_slug = slug("boiler-house-1");
    let changes = SiteChanges::parse(Some("Renamed"), None).unwrap();
    let stale = stoker_metadata::update_site(&pool, &ops(), &site_slug, 7, &changes).await;
    assert!(
        matches!(stale, Err(Error::VersionConflict { current: 1 })),
        "{stale:?}"
    );
    let zone = SiteChanges::parse(None, Some("Mars/Olympus")).unwrap();
    let unknown = stoker_metadata::update_site(&pool, &ops(), &site_slug, 1, &zone).await;
    assert!(
        matches!(unknown, Err(Error::UnknownTimezone(_))),
        "{unknown:?}"
    );
    stoker_metadata::create_sensor(&pool, &ops(), &site_slug, &sensor("a"))
        .await
        .unwrap();
    let busy = stoker_metadata::delete_site(&pool, &ops(), &site_slug, None).await;
    assert!(
        matches!(busy, Err(Error::SiteHasDependents { sensors: 1, .. })),
        "{busy:?}"
    );
    let twice = stoker_metadata::create_sensor(&pool, &ops(), &site_slug, &sensor("a")).await;
    assert!(
        matches!(twice, Err(Error::SensorExists { .. })),
        "{twice:?}"
    );
    let actions: Vec<String> = trail(&pool)
        .await
        .into_iter()
        .map(|event| format!("{} {}", event.entity, event.action))
        .collect();
    assert_eq!(actions, ["site created", "sensor created"]);
}

#[tokio::test]
async fn lists_filter_by_site_entity_actor_and_time_and_page_newest_first() {
    let database = TestPostgres::create().await;
    let pool = with_site(&database).await;
    stoker_metadata::create_site(&pool, &ops(), &site("boiler-house-2"))
        .await
        .unwrap();
    for index in 0..5 {
        let site_slug = slug(if index % 2 == 0 {
            "boiler-house-1"
        } else {
            "boiler-house-2"
        });
        stoker_metadata::create_sensor(&pool, &ops(), &site_slug, &sensor(&format!("s{index}")))
            .await
            .unwrap();
    }
    // Another schema's operator action goes through `record_audit` in its
    // own transaction.
    let mut client = pool.get().await.unwrap();
    let transaction = client.transaction().await.unwrap();
    let change = AuditChange {
        entity: Entity::Alert,
        id: "0193a8c4-0000-7000-8000-000000000001".into(),
        site: Some("boiler-house-2"),
        action: "acknowledged",
        before: Some(serde_json::json!({"state": "firing"})),
        after: Some(serde_json::json!({"state": "acknowledged"})),
    };
    stoker_metadata::record_audit(&transaction, &Actor::Key("operator".into()), change)
        .await
        .unwrap();
    transaction.commit().await.unwrap();
    drop(client);

    let list = |filter: AuditFilter, limit: i64, after: Option<i64>| {
        let pool = pool.clone();
        async move {
            stoker_metadata::list_audit_page(&pool, &filter, limit, after)
                .await
                .unwrap()
        }
    };
    let all = list(AuditFilter::default(), 1000, None).await;
    assert_eq!(all.items.len(), 8);
    assert!(
        all.items.windows(2).all(|pair| pair[0].id > pair[1].id),
        "newest first"
    );
    assert_eq!(all.items[0].entity, "alert");

    let second = list(
        AuditFilter {
            site: Some(slug("boiler-house-2")),
            ..AuditFilter::default()
        },
        1000,
        None,
    )
    .await;
    let ids: Vec<&str> = second.items.iter().map(|e| e.entity_id.as_str()).collect();
    assert_eq!(ids.len(), 4, "{ids:?}");
    assert!(ids.contains(&"s1") && ids.contains(&"s3") && ids.contains(&"boiler-house-2"));

    let sensors = list(
        AuditFilter {
            entity: Some(Entity::Sensor),
            actor: Some("ops".into()),
            ..AuditFilter::default()
        },
        1000,
        None,
    )
    .await;
    assert_eq!(sensors.items.len(), 5);
    let by_cli = list(
        AuditFilter {
            actor: Some("cli".into()),
            ..AuditFilter::default()
        },
        1000,
        None,
    )
    .await;
    assert_eq!(by_cli.items.len(), 1, "the first site, by with_site");

    let within = list(
        AuditFilter {
            within: Some(vec![slug("boiler-house-1")]),
            ..AuditFilter::default()
        },
        1000,
        None,
    )
    .await;
    assert!(
        within
            .items
            .iter()
            .all(|e| e.site.as_deref() == Some("boiler-house-1"))
    );
    assert_eq!(within.items.len(), 4);

    let newest = all.items[0].at;
    let future = list(
        AuditFilter {
            start: Some(newest + chrono::Duration::seconds(1)),
            ..AuditFilter::default()
        },
        1000,
        None,
    )
    .await;
    assert!(future.items.is_empty());
    let past = list(
        AuditFilter {
            end: Some(newest + chrono::Duration::seconds(1)),
            start: Some(newest - chrono::Duration::hours(1)),
            ..AuditFilter::default()
        },
        1000,
        None,
    )
    .await;
    assert_eq!(past.items.len(), 8);

    // Pages of three cover every event once, in order.
    let mut seen = Vec::new();
    let mut after = None;
    loop {
        let page = list(AuditFilter::default(), 3, after).await;
        seen.extend(page.items.iter().map(|event| event.id));
        match page.next_after {
            Some(next) => after = Some(next.parse().unwrap()),
            None => break,
        }
    }
    let expected: Vec<i64> = all.items.iter().map(|event| event.id).collect();
    assert_eq!(seen, expected);
}
