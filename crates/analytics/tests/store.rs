//! Alerts and their event trail against the real Postgres, one database per
//! test.

use std::time::Duration;
use stoker_metadata::Actor;

use stoker_analytics::store::{self, AlertFilter, AlertState, NoOutbox, StateFilter, Verdict};
use stoker_domain::{EpochMillis, ReadingValue, SensorKey, SiteSlug};
use stoker_metadata::NewSite;
use stoker_postgres::Pool;
use stoker_rules::{Agg, AlertRule, NewAlertRule, Op, RuleKind, RuleSelector, Severity, Threshold};
use stoker_testkit::TestPostgres;

async fn setup() -> (TestPostgres, Pool, AlertRule) {
    let postgres = TestPostgres::create().await;
    let pool = postgres.migrated_pool().await;
    stoker_analytics::migrate(&pool).await.unwrap();
    // Twice: re-running is a no-op.
    stoker_analytics::migrate(&pool).await.unwrap();
    let site = NewSite::parse("boiler-house-1", "Boiler house 1", "UTC").unwrap();
    stoker_metadata::create_site(&pool, &Actor::Cli, &site)
        .await
        .unwrap();
    let rule = NewAlertRule::new(
        "Steam pressure high",
        RuleSelector {
            site: Some(site.slug().clone()),
            sensor: None,
            sensor_type: None,
        },
        RuleKind::Threshold {
            agg: Some(Agg::Mean),
            op: Op::Gt,
            threshold: Threshold::Number(12.5),
            clear_threshold: Some(12.0),
            window: Duration::from_secs(60),
            for_: Duration::from_secs(30),
        },
        Severity::Critical,
        true,
        None,
    )
    .unwrap();
    let rule = stoker_metadata::create_alert_rule(&pool, &Actor::Cli, &rule)
        .await
        .unwrap();
    (postgres, pool, rule)
}

fn site() -> SiteSlug {
    SiteSlug::parse("boiler-house-1").unwrap()
}

fn sensor(key: &str) -> SensorKey {
    SensorKey::parse(key).unwrap()
}

fn firing<'a>(
    rule: &'a AlertRule,
    site: &'a SiteSlug,
    sensor: &'a SensorKey,
    at: i64,
) -> Verdict<'a> {
    Verdict {
        rule,
        site,
        sensor,
        at: EpochMillis::from_millis(at).unwrap(),
        value: Some(stoker_domain::ReadingValue::Number(13.2)),
        message: "mean over 1m = 13.2 bar, > 12.5 for 30s".into(),
    }
}

#[tokio::test]
async fn an_alert_fires_once_is_acknowledged_and_resolved_with_a_trail() {
    let (_postgres, pool, rule) = setup().await;
    let (site, pressure) = (site(), sensor("b1_steam_pressure"));
    let at = 1_795_000_000_000;

    // Ten processes opening the same alert at once: one alert.
    let opened = futures::future::join_all((0..10).map(|_| {
        let (pool, rule, site, pressure) =
            (pool.clone(), rule.clone(), site.clone(), pressure.clone());
        async move {
            store::open_alert(&pool, &NoOutbox, &firing(&rule, &site, &pressure, at))
                .await
                .unwrap()
        }
    }))
    .await;
    let opened: Vec<_> = opened.into_iter().flatten().collect();
    assert_eq!(opened.len(), 1);
    let alert = &opened[0];
    assert_eq!(alert.state, AlertState::Firing);
    assert_eq!(alert.severity, "critical");
    assert_eq!(alert.opened_at.timestamp_millis(), at);

    let acknowledged = store::acknowledge(&pool, &NoOutbox, alert.id, "operator-1")
        .await
        .unwrap();
    assert_eq!(acknowledged.state, AlertState::Acknowledged);
    assert_eq!(acknowledged.acknowledged_by.as_deref(), Some("operator-1"));
    let again = store::acknowledge(&pool, &NoOutbox, alert.id, "operator-2")
        .await
        .unwrap_err();
    assert_eq!(
        again.to_string(),
        format!(
            "alert {} is acknowledged: it cannot be acknowledged",
            alert.id
        )
    );

    // Still open: the rule cannot open a second one.
    assert!(
        store::open_alert(
            &pool,
            &NoOutbox,
            &firing(&rule, &site, &pressure, at + 10_000)
        )
        .await
        .unwrap()
        .is_none()
    );

    let clearing = Verdict {
        rule: &rule,
        site: &site,
        sensor: &pressure,
        at: EpochMillis::from_millis(at + 60_000).unwrap(),
        value: Some(stoker_domain::ReadingValue::Number(11.8)),
        message: "mean over 1m = 11.8 bar, no longer > 12".into(),
    };
    let cleared = store::clear_alert(&pool, &NoOutbox, &clearing)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(cleared.state, AlertState::Resolved);
    assert_eq!(cleared.resolved_by.as_deref(), Some(store::ANALYTICS));
    let resolve = store::resolve(&pool, &NoOutbox, alert.id, "operator-1")
        .await
        .unwrap_err();
    assert!(resolve.to_string().contains("is resolved"), "{resolve}");

    let (stored, events) = store::get_alert(&pool, alert.id).await.unwrap();
    assert_eq!(stored, cleared);
    let trail: Vec<(&str, &str, Option<f64>)> = events
        .iter()
        .map(|event| {
            (
                event.transition.as_str(),
                event.actor.as_str(),
                event.value.as_ref().and_then(ReadingValue::as_number),
            )
        })
        .collect();
    assert_eq!(
        trail,
        vec![
            ("fired", "analytics", Some(13.2)),
            ("acknowledged", "operator-1", None),
            ("resolved", "analytics", Some(11.8)),
        ]
    );

    // The trail cannot be rewritten.
    let client = pool.get().await.unwrap();
    for statement in [
        "UPDATE analytics.alert_events SET actor = 'someone-else'",
        "DELETE FROM analytics.alert_events",
        "TRUNCATE analytics.alert_events CASCADE",
    ] {
        let error = client.batch_execute(statement).await.unwrap_err();
        assert!(
            format!("{error:?}").contains("append-only"),
            "{statement}: {error:?}"
        );
    }

    // After it resolved, the rule may fire again.
    assert!(
        store::open_alert(
            &pool,
            &NoOutbox,
            &firing(&rule, &site, &pressure, at + 120_000)
        )
        .await
        .unwrap()
        .is_some()
    );
    assert!(
        store::alerted_since(
            &pool,
            rule.id,
            &site,
            &pressure,
            EpochMillis::from_millis(at + 120_000).unwrap()
        )
        .await
        .unwrap()
    );
    assert!(
        !store::alerted_since(
            &pool,
            rule.id,
            &site,
            &pressure,
            EpochMillis::from_millis(at + 120_001).unwrap()
        )
        .await
        .unwrap()
    );
}

#[tokio::test]
async fn alerts_list_by_state_and_site_in_pages() {
    let (_postgres, pool, rule) = setup().await;
    let site = site();
    let base = 1_795_000_000_000;
    let mut ids = Vec::new();
    for index in 0..7 {
        let key = sensor(&format!("sensor_{index}"));
        let alert = store::open_alert(
            &pool,
            &NoOutbox,
            &firing(&rule, &site, &key, base + index * 1000),
        )
        .await
        .unwrap()
        .unwrap();
        ids.push(alert.id);
    }
    store::resolve(&pool, &NoOutbox, ids[0], "operator-1")
        .await
        .unwrap();
    store::acknowledge(&pool, &NoOutbox, ids[1], "operator-1")
        .await
        .unwrap();

    // Newest first, three per page.
    let mut seen = Vec::new();
    let mut after: Option<String> = None;
    loop {
        let page = store::list_alerts(&pool, &AlertFilter::default(), 3, after.as_deref())
            .await
            .unwrap();
        seen.extend(page.items.iter().map(|alert| alert.id));
        match page.next_after {
            Some(next) => after = Some(next),
            None => break,
        }
    }
    let mut newest_first = ids.clone();
    newest_first.reverse();
    assert_eq!(seen, newest_first);

    let open = AlertFilter {
        state: Some(StateFilter::Open),
        ..AlertFilter::default()
    };
    assert_eq!(
        store::list_alerts(&pool, &open, 100, None)
            .await
            .unwrap()
            .items
            .len(),
        6
    );
    let acknowledged = AlertFilter {
        state: Some(StateFilter::Is(AlertState::Acknowledged)),
        site: Some(site.clone()),
        ..AlertFilter::default()
    };
    let page = store::list_alerts(&pool, &acknowledged, 100, None)
        .await
        .unwrap();
    assert_eq!(
        page.items.iter().map(|alert| alert.id).collect::<Vec<_>>(),
        vec![ids[1]]
    );
    let elsewhere = AlertFilter {
        site: Some(SiteSlug::parse("boiler-house-2").unwrap()),
        ..AlertFilter::default()
    };
    assert!(
        store::list_alerts(&pool, &elsewhere, 100, None)
            .await
            .unwrap()
            .items
            .is_empty()
    );
    assert_eq!(
        store::open_alerts(&pool, Some(&site)).await.unwrap().len(),
        6
    );
}

#[tokio::test]
async fn each_transition_queues_its_notifications_in_the_same_transaction() {
    let (_postgres, pool, rule) = setup().await;
    let (site, pressure) = (site(), sensor("b1_steam_pressure"));
    let outbox = stoker_analytics::notify::NotifyOptions {
        webhooks: vec!["http://127.0.0.1:9/hook".parse().unwrap()],
        topic_prefix: "test/".into(),
        ..Default::default()
    };
    let alert = store::open_alert(
        &pool,
        &outbox,
        &firing(&rule, &site, &pressure, 1_795_000_000_000),
    )
    .await
    .unwrap()
    .unwrap();
    store::acknowledge(&pool, &outbox, alert.id, "operator-1")
        .await
        .unwrap();

    let client = pool.get().await.unwrap();
    let rows = client
        .query(
            "SELECT e.transition, n.channel, n.target, n.body
             FROM analytics.notifications n JOIN analytics.alert_events e ON e.id = n.event_id
             ORDER BY n.id",
            &[],
        )
        .await
        .unwrap();
    let queued: Vec<(String, String, String)> = rows
        .iter()
        .map(|row| (row.get(0), row.get(1), row.get(2)))
        .collect();
    assert_eq!(
        queued,
        vec![
            (
                "fired".into(),
                "mqtt".into(),
                "test/alerts/boiler-house-1".into()
            ),
            (
                "fired".into(),
                "webhook".into(),
                "http://127.0.0.1:9/hook".into()
            ),
            (
                "acknowledged".into(),
                "mqtt".into(),
                "test/alerts/boiler-house-1".into()
            ),
            (
                "acknowledged".into(),
                "webhook".into(),
                "http://127.0.0.1:9/hook".into()
            ),
        ]
    );
    let body: serde_json::Value = serde_json::from_str(rows[2].get::<_, &str>(3)).unwrap();
    assert_eq!(body["event"]["transition"], "acknowledged");
    assert_eq!(body["event"]["actor"], "operator-1");
    assert_eq!(body["alert"]["id"], alert.id.to_string());
    assert_eq!(body["alert"]["state"], "acknowledged");
    assert_eq!(body["alert"]["site"], "boiler-house-1");
}
