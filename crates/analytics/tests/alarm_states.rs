//! ISA-18.2 alert states, latching, shelving and rationalization against
//! the real Postgres, one database per test.
//! Length: one test per part of an alert's life, each walking it step by
//! step with the trail, the audit and the notifications checked at each.

use std::time::Duration;

use stoker_analytics::notify::NotifyOptions;
use stoker_analytics::store::{self, AlertFilter, AlertState, NoOutbox, StateFilter, Verdict};
use stoker_domain::{EpochMillis, ReadingValue, SensorKey, SiteSlug};
use stoker_metadata::{Actor, NewSite};
use stoker_postgres::Pool;
use stoker_rules::{AlertRule, NewAlertRule, RuleDraft};
use stoker_testkit::TestPostgres;
use uuid::Uuid;

const AT: i64 = 1_795_000_000_000;

/// A database with the site and two rules: a plain one and a latching one
/// with its rationalization and a 1 h `max_shelve`.
async fn setup() -> (TestPostgres, Pool, AlertRule, AlertRule) {
    let postgres = TestPostgres::create().await;
    let pool = postgres.migrated_pool().await;
    stoker_analytics::migrate(&pool).await.unwrap();
    let site = NewSite::parse("boiler-house-1", "Boiler house 1", "UTC").unwrap();
    stoker_metadata::create_site(&pool, &Actor::Cli, &site)
        .await
        .unwrap();
    let rule = |extra: serde_json::Value| {
        let mut body = serde_json::json!({
            "name": "Steam pressure high", "kind": "threshold", "site": "boiler-house-1",
            "sensor": "b1_steam_pressure", "agg": "mean", "op": ">", "threshold": 12.5,
            "clear_threshold": 12.0, "window": "60s", "for": "30s", "severity": "critical"
        });
        body.as_object_mut()
            .unwrap()
            .extend(extra.as_object().unwrap().clone());
        let draft: RuleDraft = serde_json::from_value(body).unwrap();
        NewAlertRule::parse(&draft).unwrap()
    };
    let plain =
        stoker_metadata::create_alert_rule(&pool, &Actor::Cli, &rule(serde_json::json!({})))
            .await
            .unwrap();
    let latching = stoker_metadata::create_alert_rule(
        &pool,
        &Actor::Cli,
        &rule(serde_json::json!({
            "name": "Steam pressure trip", "latching": true, "max_shelve": "1h",
            "cause": "Steam demand dropped while the burner fires high",
            "consequence": "The safety valve lifts",
            "operator_action": "Reduce the burner load",
            "response_time": "10m"
        })),
    )
    .await
    .unwrap();
    assert!(latching.latching && !plain.latching);
    assert_eq!(plain.max_shelve, Duration::from_secs(8 * 3600));
    (postgres, pool, plain, latching)
}

fn site() -> SiteSlug {
    SiteSlug::parse("boiler-house-1").unwrap()
}

fn pressure() -> SensorKey {
    SensorKey::parse("b1_steam_pressure").unwrap()
}

fn verdict<'a>(
    rule: &'a AlertRule,
    site: &'a SiteSlug,
    sensor: &'a SensorKey,
    at: i64,
    value: f64,
) -> Verdict<'a> {
    Verdict {
        rule,
        site,
        sensor,
        at: EpochMillis::from_millis(at).unwrap(),
        value: Some(ReadingValue::Number(value)),
        message: format!("mean over 1m = {value} bar"),
        explanation: Some(serde_json::json!({"rule_version": rule.version, "value": value})),
    }
}

async fn trail(pool: &Pool, id: Uuid) -> Vec<(String, String)> {
    let (_, events) = store::get_alert(pool, id).await.unwrap();
    events
        .into_iter()
        .map(|event| (event.transition, event.actor))
        .collect()
}

fn pairs(expected: &[(&str, &str)]) -> Vec<(String, String)> {
    expected
        .iter()
        .map(|(transition, actor)| ((*transition).to_owned(), (*actor).to_owned()))
        .collect()
}

/// The audit rows of an alert: (action, actor), oldest first.
async fn audited(pool: &Pool, id: Uuid) -> Vec<(String, String)> {
    pool.get()
        .await
        .unwrap()
        .query(
            "SELECT action, actor FROM metadata.audit_events
             WHERE entity = 'alert' AND entity_id = $1 ORDER BY id",
            &[&id.to_string()],
        )
        .await
        .unwrap()
        .iter()
        .map(|row| (row.get(0), row.get(1)))
        .collect()
}

#[tokio::test]
async fn an_alert_cleared_before_its_acknowledgement_waits_and_is_reactivated() {
    let (_postgres, pool, rule, _) = setup().await;
    let (site, sensor) = (site(), pressure());
    let alert = store::open_alert(&pool, &NoOutbox, &verdict(&rule, &site, &sensor, AT, 13.2))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        (alert.state, alert.active),
        (AlertState::Unacknowledged, true)
    );

    let cleared = store::clear_alert(
        &pool,
        &NoOutbox,
        &verdict(&rule, &site, &sensor, AT + 60_000, 11.8),
    )
    .await
    .unwrap()
    .unwrap();
    assert_eq!(
        (cleared.state, cleared.active),
        (AlertState::ClearedUnacknowledged, false)
    );
    assert_eq!(cleared.resolved_by.as_deref(), Some("analytics"));
    assert_eq!(cleared.resolved_at.unwrap().timestamp_millis(), AT + 60_000);
    // Still listed as open, no longer active.
    let open = store::open_alerts(&pool, Some(&site)).await.unwrap();
    assert_eq!(open.len(), 1);

    // The condition returns: the same alert, active again.
    let again = store::open_alert(
        &pool,
        &NoOutbox,
        &verdict(&rule, &site, &sensor, AT + 120_000, 13.6),
    )
    .await
    .unwrap()
    .unwrap();
    assert_eq!(again.id, alert.id);
    assert_eq!(
        (again.state, again.active, again.resolved_at),
        (AlertState::Unacknowledged, true, None)
    );
    assert_eq!(again.activated_at.timestamp_millis(), AT + 120_000);
    assert_eq!(again.opened_at, alert.opened_at);
    assert_eq!(again.value, Some(ReadingValue::Number(13.6)));
    // Firing again while active changes nothing.
    assert!(
        store::open_alert(
            &pool,
            &NoOutbox,
            &verdict(&rule, &site, &sensor, AT + 130_000, 13.7)
        )
        .await
        .unwrap()
        .is_none()
    );

    store::clear_alert(
        &pool,
        &NoOutbox,
        &verdict(&rule, &site, &sensor, AT + 180_000, 11.0),
    )
    .await
    .unwrap()
    .unwrap();
    // Acknowledging a cleared alert closes it.
    let closed = store::acknowledge(&pool, &NoOutbox, alert.id, "operator-anna")
        .await
        .unwrap();
    assert_eq!((closed.state, closed.active), (AlertState::Closed, false));
    assert_eq!(closed.acknowledged_by.as_deref(), Some("operator-anna"));
    let error = store::acknowledge(&pool, &NoOutbox, alert.id, "operator-anna")
        .await
        .unwrap_err();
    assert!(error.to_string().contains("is closed"), "{error}");

    assert_eq!(
        trail(&pool, alert.id).await,
        pairs(&[
            ("fired", "analytics"),
            ("cleared", "analytics"),
            ("reactivated", "analytics"),
            ("cleared", "analytics"),
            ("acknowledged", "operator-anna"),
        ])
    );
    assert_eq!(
        audited(&pool, alert.id).await,
        pairs(&[("acknowledged", "operator-anna")])
    );
    // The fired and reactivated events keep their explanation.
    let (_, events) = store::get_alert(&pool, alert.id).await.unwrap();
    assert_eq!(events[0].explanation.as_ref().unwrap()["value"], 13.2);
    assert_eq!(events[2].explanation.as_ref().unwrap()["value"], 13.6);
    assert!(events[1].explanation.is_none());

    // Closed: the condition's next return opens a new alert.
    let next = store::open_alert(
        &pool,
        &NoOutbox,
        &verdict(&rule, &site, &sensor, AT + 240_000, 13.0),
    )
    .await
    .unwrap()
    .unwrap();
    assert_ne!(next.id, alert.id);
}

#[tokio::test]
async fn an_acknowledged_alert_closes_when_its_condition_clears() {
    let (_postgres, pool, rule, _) = setup().await;
    let (site, sensor) = (site(), pressure());
    let alert = store::open_alert(&pool, &NoOutbox, &verdict(&rule, &site, &sensor, AT, 13.2))
        .await
        .unwrap()
        .unwrap();
    let acknowledged = store::acknowledge(&pool, &NoOutbox, alert.id, "operator-anna")
        .await
        .unwrap();
    assert_eq!(
        (acknowledged.state, acknowledged.active),
        (AlertState::Acknowledged, true)
    );
    let closed = store::clear_alert(
        &pool,
        &NoOutbox,
        &verdict(&rule, &site, &sensor, AT + 60_000, 11.8),
    )
    .await
    .unwrap()
    .unwrap();
    assert_eq!(closed.state, AlertState::Closed);
    assert_eq!(
        trail(&pool, alert.id).await,
        pairs(&[
            ("fired", "analytics"),
            ("acknowledged", "operator-anna"),
            ("closed", "analytics"),
        ])
    );
}

#[tokio::test]
async fn a_latching_alert_stays_active_until_an_operator_resets_it() {
    let (_postgres, pool, _, rule) = setup().await;
    let (site, sensor) = (site(), pressure());
    let alert = store::open_alert(&pool, &NoOutbox, &verdict(&rule, &site, &sensor, AT, 13.2))
        .await
        .unwrap()
        .unwrap();
    // The rationalization travels with the alert.
    assert_eq!(
        alert.cause.as_deref(),
        Some("Steam demand dropped while the burner fires high")
    );
    assert_eq!(alert.consequence.as_deref(), Some("The safety valve lifts"));
    assert_eq!(
        alert.operator_action.as_deref(),
        Some("Reduce the burner load")
    );
    assert_eq!(alert.response_time.as_deref(), Some("10m"));

    // The condition still holds: nothing to reset.
    let error = store::reset(&pool, &NoOutbox, alert.id, "operator-anna")
        .await
        .unwrap_err();
    assert!(
        matches!(error, stoker_analytics::Error::NotLatched(_)),
        "{error}"
    );

    let latched = store::clear_alert(
        &pool,
        &NoOutbox,
        &verdict(&rule, &site, &sensor, AT + 60_000, 11.8),
    )
    .await
    .unwrap()
    .unwrap();
    assert_eq!(
        (latched.state, latched.active),
        (AlertState::Unacknowledged, true)
    );
    assert_eq!(latched.latched_at.unwrap().timestamp_millis(), AT + 60_000);
    // Clearing again changes nothing.
    assert!(
        store::clear_alert(
            &pool,
            &NoOutbox,
            &verdict(&rule, &site, &sensor, AT + 70_000, 11.0)
        )
        .await
        .unwrap()
        .is_none()
    );

    // Reset before an acknowledgement: cleared, waiting for it.
    let reset = store::reset(&pool, &NoOutbox, alert.id, "operator-anna")
        .await
        .unwrap();
    assert_eq!(
        (reset.state, reset.active, reset.latched_at),
        (AlertState::ClearedUnacknowledged, false, None)
    );
    assert_eq!(reset.resolved_by.as_deref(), Some("operator-anna"));
    store::acknowledge(&pool, &NoOutbox, alert.id, "operator-bob")
        .await
        .unwrap();

    // A second episode, acknowledged first: the reset closes it.
    let second = store::open_alert(
        &pool,
        &NoOutbox,
        &verdict(&rule, &site, &sensor, AT + 120_000, 13.2),
    )
    .await
    .unwrap()
    .unwrap();
    store::acknowledge(&pool, &NoOutbox, second.id, "operator-anna")
        .await
        .unwrap();
    store::clear_alert(
        &pool,
        &NoOutbox,
        &verdict(&rule, &site, &sensor, AT + 180_000, 11.8),
    )
    .await
    .unwrap()
    .unwrap();
    let closed = store::reset(&pool, &NoOutbox, second.id, "operator-anna")
        .await
        .unwrap();
    assert_eq!(closed.state, AlertState::Closed);
    let error = store::reset(&pool, &NoOutbox, second.id, "operator-anna")
        .await
        .unwrap_err();
    assert!(error.to_string().contains("is closed"), "{error}");

    assert_eq!(
        trail(&pool, alert.id).await,
        pairs(&[
            ("fired", "analytics"),
            ("latched", "analytics"),
            ("reset", "operator-anna"),
            ("acknowledged", "operator-bob"),
        ])
    );
    assert_eq!(
        audited(&pool, alert.id).await,
        pairs(&[("reset", "operator-anna"), ("acknowledged", "operator-bob")])
    );
    assert_eq!(
        trail(&pool, second.id).await,
        pairs(&[
            ("fired", "analytics"),
            ("acknowledged", "operator-anna"),
            ("latched", "analytics"),
            ("reset", "operator-anna"),
        ])
    );
}

/// The transitions of an alert announced on MQTT, oldest first.
async fn announced(pool: &Pool, id: Uuid) -> Vec<String> {
    pool.get()
        .await
        .unwrap()
        .query(
            "SELECT e.transition FROM analytics.notifications n
             JOIN analytics.alert_events e ON e.id = n.event_id
             WHERE e.alert_id = $1 AND n.channel = 'mqtt' ORDER BY n.id",
            &[&id],
        )
        .await
        .unwrap()
        .iter()
        .map(|row| row.get(0))
        .collect()
}

#[tokio::test]
async fn a_shelved_alert_is_recorded_not_announced_and_announced_again_at_expiry() {
    let (_postgres, pool, rule, latching) = setup().await;
    let (site, sensor) = (site(), pressure());
    let outbox = NotifyOptions::default();
    let alert = store::open_alert(&pool, &outbox, &verdict(&rule, &site, &sensor, AT, 13.2))
        .await
        .unwrap()
        .unwrap();

    // Bounded, with a reason.
    let error = store::shelve(
        &pool,
        &outbox,
        alert.id,
        "operator-anna",
        Duration::from_secs(9 * 3600),
        "sensor swap",
    )
    .await
    .unwrap_err();
    assert!(
        matches!(error, stoker_analytics::Error::ShelveTooLong { .. }),
        "{error}"
    );
    assert!(error.to_string().contains("at most 8h"), "{error}");
    let error = store::shelve(
        &pool,
        &outbox,
        alert.id,
        "operator-anna",
        Duration::from_secs(60),
        "  ",
    )
    .await
    .unwrap_err();
    assert!(
        matches!(
            error,
            stoker_analytics::Error::InvalidShelve {
                field: "reason",
                ..
            }
        ),
        "{error}"
    );
    let error = store::unshelve(&pool, &outbox, alert.id, "operator-anna")
        .await
        .unwrap_err();
    assert!(
        matches!(error, stoker_analytics::Error::NotShelved(_)),
        "{error}"
    );

    let shelved = store::shelve(
        &pool,
        &outbox,
        alert.id,
        "operator-anna",
        Duration::from_secs(1),
        "sensor swap",
    )
    .await
    .unwrap();
    assert!(shelved.shelved_until.is_some());
    assert_eq!(shelved.shelved_by.as_deref(), Some("operator-anna"));
    assert_eq!(shelved.shelve_reason.as_deref(), Some("sensor swap"));
    // Transitions while shelved are recorded, not announced.
    store::clear_alert(
        &pool,
        &outbox,
        &verdict(&rule, &site, &sensor, AT + 60_000, 11.8),
    )
    .await
    .unwrap()
    .unwrap();
    store::open_alert(
        &pool,
        &outbox,
        &verdict(&rule, &site, &sensor, AT + 120_000, 13.2),
    )
    .await
    .unwrap()
    .unwrap();
    // Not expired yet: nothing taken off.
    assert!(
        store::unshelve_expired(&pool, &outbox, chrono::Utc::now())
            .await
            .unwrap()
            .is_empty()
    );
    tokio::time::sleep(Duration::from_millis(1100)).await;
    let unshelved = store::unshelve_expired(&pool, &outbox, chrono::Utc::now())
        .await
        .unwrap();
    assert_eq!(unshelved.len(), 1);
    assert_eq!(unshelved[0].shelved_until, None);
    assert!(unshelved[0].active);
    assert_eq!(
        trail(&pool, alert.id).await,
        pairs(&[
            ("fired", "analytics"),
            ("shelved", "operator-anna"),
            ("cleared", "analytics"),
            ("reactivated", "analytics"),
            ("unshelved", "analytics"),
        ])
    );
    assert_eq!(announced(&pool, alert.id).await, ["fired", "unshelved"]);
    assert_eq!(
        audited(&pool, alert.id).await,
        pairs(&[("shelved", "operator-anna")])
    );

    // Unshelved by hand while cleared: recorded, and not announced, as
    // nothing is active; the rule's own max_shelve bounds the shelf.
    let other = store::open_alert(
        &pool,
        &outbox,
        &verdict(&latching, &site, &sensor, AT, 13.2),
    )
    .await
    .unwrap()
    .unwrap();
    let error = store::shelve(
        &pool,
        &outbox,
        other.id,
        "operator-anna",
        Duration::from_secs(2 * 3600),
        "sensor swap",
    )
    .await
    .unwrap_err();
    assert!(error.to_string().contains("at most 1h"), "{error}");
    store::shelve(
        &pool,
        &outbox,
        other.id,
        "operator-anna",
        Duration::from_secs(1800),
        "sensor swap",
    )
    .await
    .unwrap();
    store::clear_alert(
        &pool,
        &outbox,
        &verdict(&latching, &site, &sensor, AT + 60_000, 11.8),
    )
    .await
    .unwrap()
    .unwrap();
    store::reset(&pool, &outbox, other.id, "operator-anna")
        .await
        .unwrap();
    let off = store::unshelve(&pool, &outbox, other.id, "operator-bob")
        .await
        .unwrap();
    assert_eq!(off.shelved_until, None);
    assert_eq!(announced(&pool, other.id).await, ["fired"]);
    assert_eq!(
        audited(&pool, other.id).await,
        pairs(&[
            ("shelved", "operator-anna"),
            ("reset", "operator-anna"),
            ("unshelved", "operator-bob"),
        ])
    );
    // Closing empties the shelf.
    store::shelve(
        &pool,
        &outbox,
        other.id,
        "operator-anna",
        Duration::from_secs(60),
        "again",
    )
    .await
    .unwrap();
    let closed = store::resolve(&pool, &outbox, other.id, "operator-anna")
        .await
        .unwrap();
    assert_eq!(
        (closed.state, closed.shelved_until),
        (AlertState::Closed, None)
    );
    // The notification body carries the alert, rationalization and all.
    let body: String = pool
        .get()
        .await
        .unwrap()
        .query_one(
            "SELECT n.body FROM analytics.notifications n
             JOIN analytics.alert_events e ON e.id = n.event_id
             WHERE e.alert_id = $1 AND e.transition = 'fired'",
            &[&other.id],
        )
        .await
        .unwrap()
        .get(0);
    let body: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(body["alert"]["operator_action"], "Reduce the burner load");
    assert_eq!(body["alert"]["response_time"], "10m");
    assert_eq!(body["event"]["explanation"]["value"], 13.2);
}

#[tokio::test]
async fn state_filters_take_the_new_names_and_the_old() {
    let (_postgres, pool, rule, _) = setup().await;
    let site = site();
    let mut ids = Vec::new();
    for index in 0..4 {
        let sensor = SensorKey::parse(format!("sensor_{index}")).unwrap();
        let alert = store::open_alert(
            &pool,
            &NoOutbox,
            &verdict(&rule, &site, &sensor, AT + index * 1000, 13.2),
        )
        .await
        .unwrap()
        .unwrap();
        ids.push((alert.id, sensor));
    }
    // 0 unacknowledged, 1 acknowledged, 2 cleared_unacknowledged, 3 closed.
    store::acknowledge(&pool, &NoOutbox, ids[1].0, "operator-anna")
        .await
        .unwrap();
    store::clear_alert(
        &pool,
        &NoOutbox,
        &verdict(&rule, &site, &ids[2].1, AT + 60_000, 11.0),
    )
    .await
    .unwrap()
    .unwrap();
    store::resolve(&pool, &NoOutbox, ids[3].0, "operator-anna")
        .await
        .unwrap();
    let listed = |name: &'static str| {
        let pool = pool.clone();
        async move {
            let filter = AlertFilter {
                state: Some(StateFilter::parse(name).unwrap()),
                ..AlertFilter::default()
            };
            let mut found: Vec<Uuid> = store::list_alerts(&pool, &filter, 100, None)
                .await
                .unwrap()
                .items
                .iter()
                .map(|alert| alert.id)
                .collect();
            found.sort();
            found
        }
    };
    let of = |indexes: &[usize]| {
        let mut wanted: Vec<Uuid> = indexes.iter().map(|index| ids[*index].0).collect();
        wanted.sort();
        wanted
    };
    assert_eq!(listed("unacknowledged").await, of(&[0]));
    assert_eq!(listed("firing").await, of(&[0]));
    assert_eq!(listed("acknowledged").await, of(&[1]));
    assert_eq!(listed("cleared_unacknowledged").await, of(&[2]));
    assert_eq!(listed("closed").await, of(&[3]));
    assert_eq!(listed("resolved").await, of(&[3]));
    assert_eq!(listed("active").await, of(&[0, 1]));
    assert_eq!(listed("open").await, of(&[0, 1, 2]));
    assert_eq!(StateFilter::parse("shut"), None);
}
