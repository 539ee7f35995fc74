//! Alert rules: every kind round-trips, invalid rules are refused by the
//! constructor (naming the field) and by the table's CHECKs.
//! Length: a round trip per kind and a refusal per rule of the model, each
//! a table of cases over one shared fixture.

use std::time::Duration;
use stoker_metadata::Actor;

use serde_json::json;
use stoker_domain::{SensorKey, SensorType, SiteSlug, StateName};
use stoker_metadata::{Error, RuleFilter};
use stoker_rules::{
    Agg, AlertRule, NewAlertRule, Op, RuleDraft, RuleKind, RuleSelector, Severity, Threshold,
};
use stoker_testkit::TestPostgres;

use super::{migrated, site, slug, with_site};

/// Fields to set, fields to remove, and the field the refusal names.
type Case<'a> = (&'a [(&'a str, serde_json::Value)], &'a [&'a str], &'a str);

fn pressure_at(site: &SiteSlug) -> RuleSelector {
    RuleSelector {
        site: Some(site.clone()),
        sensor: None,
        sensor_type: Some(SensorType::parse("pressure").unwrap()),
    }
}

/// A no-data rule scoped to `site`.
pub(super) fn no_data_at(site: &SiteSlug) -> NewAlertRule {
    NewAlertRule::new(
        "Silent sensor",
        pressure_at(site),
        RuleKind::NoData {
            timeout: Duration::from_secs(120),
        },
        Severity::Warning,
        true,
        None,
    )
    .unwrap()
}

fn threshold() -> RuleKind {
    RuleKind::Threshold {
        agg: Some(Agg::Mean),
        op: Op::Gt,
        threshold: Threshold::Number(12.5),
        clear_threshold: Some(12.0),
        window: Duration::from_secs(60),
        for_: Duration::from_secs(30),
    }
}

fn equality(agg: Agg, op: Op, threshold: Threshold) -> RuleKind {
    RuleKind::Threshold {
        agg: Some(agg),
        op,
        threshold,
        clear_threshold: None,
        window: Duration::from_secs(30),
        for_: Duration::from_secs(10),
    }
}

fn every_kind() -> [RuleKind; 6] {
    [
        threshold(),
        equality(
            Agg::Last,
            Op::Eq,
            Threshold::State(StateName::parse("lockout").unwrap()),
        ),
        equality(Agg::Max, Op::Ne, Threshold::Boolean(false)),
        RuleKind::RateOfChange {
            op: Op::Le,
            rate_per_min: -2.0,
            clear_rate_per_min: -1.5,
            window: Duration::from_secs(300),
        },
        RuleKind::NoData {
            timeout: Duration::from_millis(120_500),
        },
        RuleKind::Anomaly {
            window: Duration::from_secs(600),
            baseline: Duration::from_secs(24 * 3600),
            z: 3.0,
            clear_z: 2.0,
        },
    ]
}

#[tokio::test]
async fn every_kind_round_trips_through_postgres_and_json() {
    let database = TestPostgres::create().await;
    let pool = with_site(&database).await;
    let house = slug("boiler-house-1");
    let selectors = [
        pressure_at(&house),
        RuleSelector {
            site: Some(house.clone()),
            sensor: Some(SensorKey::parse("b1_sequencer").unwrap()),
            ..RuleSelector::default()
        },
        RuleSelector {
            sensor: Some(SensorKey::parse("b1_burner_on").unwrap()),
            ..RuleSelector::default()
        },
        // A key without a site: that key at every site.
        RuleSelector {
            sensor: Some(SensorKey::parse("b1_flue_temp").unwrap()),
            ..RuleSelector::default()
        },
        RuleSelector {
            site: Some(house.clone()),
            ..RuleSelector::default()
        },
        RuleSelector {
            sensor_type: Some(SensorType::parse("temperature").unwrap()),
            ..RuleSelector::default()
        },
    ];
    for (kind, selector) in every_kind().into_iter().zip(selectors) {
        let new = NewAlertRule::new(
            kind.name(),
            selector.clone(),
            kind.clone(),
            Severity::Critical,
            false,
            None,
        )
        .unwrap();
        let created = stoker_metadata::create_alert_rule(&pool, &Actor::Cli, &new)
            .await
            .unwrap();
        assert_eq!(created.kind, kind);
        assert_eq!(created.selector, selector);
        assert_eq!(created.name, kind.name());
        assert_eq!(
            (created.severity, created.enabled),
            (Severity::Critical, false)
        );
        assert_eq!(created.version, 1);
        let fetched = stoker_metadata::get_alert_rule(&pool, created.id)
            .await
            .unwrap();
        assert_eq!(fetched, created);

        // JSON and back, and through a draft (the API's PATCH path) back
        // to the same definition.
        let json = serde_json::to_value(&created).unwrap();
        assert_eq!(json["kind"], kind.name());
        let decoded: AlertRule = serde_json::from_value(json.clone()).unwrap();
        assert_eq!(decoded, created, "{json}");
        let draft = RuleDraft::from(&created);
        assert_eq!(NewAlertRule::parse(&draft).unwrap(), new);
    }
}

#[tokio::test]
async fn rules_serialize_to_the_design_shape() {
    let database = TestPostgres::create().await;
    let pool = with_site(&database).await;
    let new = NewAlertRule::new(
        "High steam pressure",
        pressure_at(&slug("boiler-house-1")),
        threshold(),
        Severity::Warning,
        true,
        None,
    )
    .unwrap();
    let rule = stoker_metadata::create_alert_rule(&pool, &Actor::Cli, &new)
        .await
        .unwrap();
    let mut json = serde_json::to_value(&rule).unwrap();
    let object = json.as_object_mut().unwrap();
    for stamp in ["created_at", "updated_at"] {
        assert!(object.remove(stamp).unwrap().is_string());
    }
    assert_eq!(
        json,
        json!({
            "id": rule.id.to_string(), "name": "High steam pressure", "kind": "threshold",
            "site": "boiler-house-1", "sensor": null, "sensor_type": "pressure",
            "agg": "mean", "op": ">", "threshold": 12.5, "clear_threshold": 12.0,
            "window": "1m", "for": "30s", "severity": "warning", "enabled": true,
            "latching": false, "max_shelve": "8h", "cause": null, "consequence": null,
            "operator_action": null, "response_time": null, "escalate_after": null,
            "suppress_when": null, "out_of_service": null, "version": 1
        })
    );

    let others = every_kind();
    let shapes = [
        json!({"agg": "last", "op": "==", "threshold": "lockout", "window": "30s", "for": "10s"}),
        json!({"agg": "max", "op": "!=", "threshold": false, "window": "30s", "for": "10s"}),
        json!({"op": "<=", "rate_per_min": -2.0, "clear_rate_per_min": -1.5, "window": "5m"}),
        json!({"timeout": "2m 500ms"}),
        json!({"window": "10m", "baseline": "1day", "z": 3.0, "clear_z": 2.0}),
    ];
    for (kind, shape) in others[1..].iter().zip(shapes) {
        let json = serde_json::to_value(kind).unwrap();
        let mut expected = shape.as_object().unwrap().clone();
        expected.insert("kind".into(), kind.name().into());
        assert_eq!(json, serde_json::Value::Object(expected));
    }
}

#[tokio::test]
async fn invalid_rules_are_refused_naming_the_field() {
    let valid = json!({
        "name": "High pressure", "kind": "threshold", "site": "boiler-house-1",
        "sensor_type": "pressure", "agg": "mean", "op": ">", "threshold": 12.5,
        "clear_threshold": 12.0, "window": "60s", "for": "30s", "severity": "warning"
    });
    assert!(NewAlertRule::parse(&draft(&valid, &[], &[])).is_ok());
    let cases: [Case; 12] = [
        // No clear threshold: the rule could never clear.
        (&[], &["clear_threshold"], "clear_threshold"),
        // Clearing above where a > rule fires.
        (&[("clear_threshold", json!(13.0))], &[], "clear_threshold"),
        // Clearing below where a < rule fires.
        (
            &[("op", json!("<")), ("clear_threshold", json!(12.0))],
            &[],
            "clear_threshold",
        ),
        // Nothing selected.
        (&[], &["site", "sensor_type"], "selector"),
        (&[("window", json!("0s"))], &[], "window"),
        (&[("op", json!("=>"))], &[], "op"),
        // An equality compares a boolean or a state, not a number, and
        // has no clear value.
        (&[("op", json!("!="))], &[], "threshold"),
        (
            &[("op", json!("==")), ("threshold", json!("lockout"))],
            &[],
            "agg",
        ),
        (&[("severity", json!("fatal"))], &[], "severity"),
        (&[("site", json!("Boiler House"))], &[], "site"),
        // A field of another kind.
        (&[("z", json!(3.0))], &[], "z"),
        (&[("kind", json!("flapping"))], &[], "kind"),
    ];
    for (set, unset, field) in cases {
        let refused = NewAlertRule::parse(&draft(&valid, set, unset)).unwrap_err();
        assert_eq!(refused.0, field, "{set:?} {unset:?}: {}", refused.1);
    }

    let anomaly = json!({
        "name": "Odd flue temperature", "kind": "anomaly", "sensor_type": "temperature",
        "window": "10m", "baseline": "24h", "z": 3.0, "clear_z": 2.0, "severity": "info"
    });
    assert!(NewAlertRule::parse(&draft(&anomaly, &[], &[])).is_ok());
    for (set, field) in [
        (("baseline", json!("10m")), "baseline"),
        (("baseline", json!("5m")), "baseline"),
        (("clear_z", json!(3.5)), "clear_z"),
        (("z", json!(0.0)), "z"),
    ] {
        let refused = NewAlertRule::parse(&draft(&anomaly, &[set], &[])).unwrap_err();
        assert_eq!(refused.0, field, "{}", refused.1);
    }
    let rate = json!({
        "name": "Fast drop", "kind": "rate_of_change", "sensor": "b1_steam_pressure",
        "op": "<", "rate_per_min": -1.0, "clear_rate_per_min": -2.0, "window": "5m",
        "severity": "critical"
    });
    let refused = NewAlertRule::parse(&draft(&rate, &[], &[])).unwrap_err();
    assert_eq!(refused.0, "clear_rate_per_min", "{}", refused.1);
}

fn draft(base: &serde_json::Value, set: &[(&str, serde_json::Value)], unset: &[&str]) -> RuleDraft {
    let mut value = base.clone();
    let object = value.as_object_mut().unwrap();
    for (field, new) in set {
        object.insert((*field).to_owned(), new.clone());
    }
    for field in unset {
        object.remove(*field);
    }
    serde_json::from_value(value).unwrap()
}

#[tokio::test]
async fn the_table_refuses_half_defined_rules_written_by_raw_sql() {
    let database = TestPostgres::create().await;
    let pool = migrated(&database).await;
    let client = pool.get().await.unwrap();
    let insert = |columns: &str, values: &str| {
        format!(
            "INSERT INTO metadata.alert_rules (id, name, sensor_type, severity, kind, {columns})
             VALUES (gen_random_uuid(), 'raw', 'pressure', 'info', {values})"
        )
    };
    let refusals = [
        // A threshold rule without its clear threshold.
        (
            insert(
                "agg, op, threshold, window_ms, for_ms",
                "'threshold', 'mean', '>', 12.5, 60000, 0",
            ),
            "alert_rules_threshold_columns",
        ),
        // With a column of another kind.
        (
            insert(
                "agg, op, threshold, clear_threshold, window_ms, for_ms, z",
                "'threshold', 'mean', '>', 12.5, 12.0, 60000, 0, 3",
            ),
            "alert_rules_threshold_columns",
        ),
        // Hysteresis the wrong way.
        (
            insert(
                "agg, op, threshold, clear_threshold, window_ms, for_ms",
                "'threshold', 'mean', '>', 12.5, 13.0, 60000, 0",
            ),
            "alert_rules_threshold_hysteresis",
        ),
        (
            insert(
                "op, rate_per_min, window_ms",
                "'rate_of_change', '>', 1.0, 60000",
            ),
            "alert_rules_rate_of_change_columns",
        ),
        (
            insert("window_ms", "'no_data', 60000"),
            "alert_rules_no_data_columns",
        ),
        (
            insert(
                "window_ms, baseline_ms, z, clear_z",
                "'anomaly', 60000, 60000, 3, 2",
            ),
            "alert_rules_anomaly_hysteresis",
        ),
        // Equality with a clear value, or with a number.
        (
            insert(
                "agg, op, threshold_state, clear_threshold, window_ms, for_ms",
                "'threshold', 'last', '==', 'lockout', 1.0, 60000, 0",
            ),
            "alert_rules_threshold_columns",
        ),
        (
            insert(
                "agg, op, threshold, window_ms, for_ms",
                "'threshold', 'last', '==', 3, 60000, 0",
            ),
            "alert_rules_threshold_columns",
        ),
        // A state compared by max; a boolean and a state at once.
        (
            insert(
                "agg, op, threshold_state, window_ms, for_ms",
                "'threshold', 'max', '==', 'lockout', 60000, 0",
            ),
            "alert_rules_threshold_columns",
        ),
        (
            insert(
                "agg, op, threshold_flag, threshold_state, window_ms, for_ms",
                "'threshold', 'last', '!=', true, 'lockout', 60000, 0",
            ),
            "alert_rules_threshold_columns",
        ),
        // A typed threshold on another kind, or with an ordering op.
        (
            insert("timeout_ms, threshold_flag", "'no_data', 60000, true"),
            "alert_rules_typed_threshold_only_threshold",
        ),
        (
            insert(
                "agg, op, threshold, clear_threshold, threshold_flag, window_ms, for_ms",
                "'threshold', 'mean', '>', 12.5, 12.0, true, 60000, 0",
            ),
            "alert_rules_threshold_columns",
        ),
        (
            insert(
                "op, rate_per_min, clear_rate_per_min, window_ms",
                "'rate_of_change', '==', 1.0, 1.0, 60000",
            ),
            "alert_rules_rate_of_change_hysteresis",
        ),
        // No selector at all.
        (
            "INSERT INTO metadata.alert_rules (id, name, severity, kind, timeout_ms)
             VALUES (gen_random_uuid(), 'raw', 'info', 'no_data', 60000)"
                .to_owned(),
            "alert_rules_selector",
        ),
    ];
    for (statement, constraint) in refusals {
        let error = client.execute(statement.as_str(), &[]).await.unwrap_err();
        let db = error.as_db_error().expect("a database error");
        assert_eq!(db.constraint(), Some(constraint), "{statement}: {db}");
    }
    let accepted = client
        .execute(insert("timeout_ms", "'no_data', 60000").as_str(), &[])
        .await
        .unwrap();
    assert_eq!(accepted, 1);
    let (state, flag) = ("threshold_state", "threshold_flag");
    for (column, values) in [
        (state, "'last', '==', 'lockout'"),
        (flag, "'min', '!=', true"),
    ] {
        let columns = format!("agg, op, {column}, window_ms, for_ms");
        let values = format!("'threshold', {values}, 60000, 0");
        let inserted = client.execute(&insert(&columns, &values), &[]).await;
        assert_eq!(inserted.unwrap(), 1, "{values}");
    }
    for number in ["'NaN'", "'Infinity'", "'-Infinity'"] {
        let values = format!("'threshold', 'mean', '>', {number}, 12.0, 60000, 0");
        let error = client
            .execute(
                insert(
                    "agg, op, threshold, clear_threshold, window_ms, for_ms",
                    &values,
                )
                .as_str(),
                &[],
            )
            .await
            .unwrap_err();
        assert_eq!(
            error.code(),
            Some(&tokio_postgres::error::SqlState::CHECK_VIOLATION),
            "{number}: {error}"
        );
    }
}

#[tokio::test]
async fn rules_are_replaced_and_deleted_by_version() {
    let database = TestPostgres::create().await;
    let pool = with_site(&database).await;
    let house = slug("boiler-house-1");
    let created = stoker_metadata::create_alert_rule(&pool, &Actor::Cli, &no_data_at(&house))
        .await
        .unwrap();

    // A new definition, of another kind and without a site.
    let replacement = NewAlertRule::new(
        "Flue too hot",
        RuleSelector {
            sensor: Some(SensorKey::parse("b1_flue_temp").unwrap()),
            ..RuleSelector::default()
        },
        threshold(),
        Severity::Critical,
        false,
        None,
    )
    .unwrap();
    let updated =
        stoker_metadata::update_alert_rule(&pool, &Actor::Cli, created.id, 1, &replacement)
            .await
            .unwrap();
    assert_eq!(updated.id, created.id);
    assert_eq!(updated.version, 2);
    assert_eq!(updated.kind, threshold());
    assert_eq!(updated.selector.site, None);
    assert_eq!(updated.name, "Flue too hot");
    assert!(!updated.enabled);
    assert_eq!(updated.created_at, created.created_at);
    assert_eq!(
        stoker_metadata::get_alert_rule(&pool, created.id)
            .await
            .unwrap(),
        updated
    );

    let stale =
        stoker_metadata::update_alert_rule(&pool, &Actor::Cli, created.id, 1, &replacement).await;
    assert!(
        matches!(stale, Err(Error::VersionConflict { current: 2 })),
        "{stale:?}"
    );
    let elsewhere = no_data_at(&slug("nowhere"));
    let missing_site =
        stoker_metadata::update_alert_rule(&pool, &Actor::Cli, created.id, 2, &elsewhere).await;
    assert!(
        matches!(missing_site, Err(Error::SiteNotFound(_))),
        "{missing_site:?}"
    );
    let missing_site = stoker_metadata::create_alert_rule(&pool, &Actor::Cli, &elsewhere).await;
    assert!(
        matches!(missing_site, Err(Error::SiteNotFound(_))),
        "{missing_site:?}"
    );
    let unknown = uuid::Uuid::now_v7();
    let missing =
        stoker_metadata::update_alert_rule(&pool, &Actor::Cli, unknown, 1, &replacement).await;
    assert!(
        matches!(missing, Err(Error::AlertRuleNotFound(id)) if id == unknown),
        "{missing:?}"
    );
    let missing = stoker_metadata::get_alert_rule(&pool, unknown).await;
    assert!(
        matches!(missing, Err(Error::AlertRuleNotFound(_))),
        "{missing:?}"
    );

    let stale = stoker_metadata::delete_alert_rule(&pool, &Actor::Cli, created.id, Some(1)).await;
    assert!(
        matches!(stale, Err(Error::VersionConflict { current: 2 })),
        "{stale:?}"
    );
    stoker_metadata::delete_alert_rule(&pool, &Actor::Cli, created.id, Some(2))
        .await
        .unwrap();
    let gone = stoker_metadata::delete_alert_rule(&pool, &Actor::Cli, created.id, None).await;
    assert!(matches!(gone, Err(Error::AlertRuleNotFound(_))), "{gone:?}");
}

#[tokio::test]
async fn rules_page_in_creation_order_and_filter() {
    let database = TestPostgres::create().await;
    let pool = with_site(&database).await;
    let house = slug("boiler-house-1");
    stoker_metadata::create_site(&pool, &Actor::Cli, &site("boiler-house-2"))
        .await
        .unwrap();
    let mut ids = Vec::new();
    for index in 0..5 {
        let rule = NewAlertRule::new(
            &format!("rule {index}"),
            pressure_at(&house),
            threshold(),
            Severity::Info,
            index % 2 == 0,
            None,
        )
        .unwrap();
        ids.push(
            stoker_metadata::create_alert_rule(&pool, &Actor::Cli, &rule)
                .await
                .unwrap()
                .id,
        );
    }
    let other = stoker_metadata::create_alert_rule(
        &pool,
        &Actor::Cli,
        &no_data_at(&slug("boiler-house-2")),
    )
    .await
    .unwrap();

    let only_house = RuleFilter {
        site: Some(house.clone()),
        enabled: None,
        within: None,
    };
    let mut seen = Vec::new();
    let mut after = None;
    let mut pages = 0;
    loop {
        let page = stoker_metadata::list_alert_rules_page(&pool, &only_house, 2, after)
            .await
            .unwrap();
        pages += 1;
        seen.extend(page.items.iter().map(|rule| rule.id));
        match page.next_after {
            Some(last) => after = Some(last.parse().unwrap()),
            None => break,
        }
    }
    assert_eq!(pages, 3);
    assert_eq!(seen, ids);

    let all = stoker_metadata::list_alert_rules_page(&pool, &RuleFilter::default(), 100, None)
        .await
        .unwrap();
    assert_eq!(all.items.len(), 6);
    assert_eq!(all.items.last().map(|rule| rule.id), Some(other.id));

    let disabled = RuleFilter {
        site: Some(house.clone()),
        enabled: Some(false),
        within: None,
    };
    let page = stoker_metadata::list_alert_rules_page(&pool, &disabled, 100, None)
        .await
        .unwrap();
    assert_eq!(
        page.items.iter().map(|rule| rule.id).collect::<Vec<_>>(),
        [ids[1], ids[3]]
    );
    let nowhere = RuleFilter {
        site: Some(slug("nowhere")),
        enabled: None,
        within: None,
    };
    assert!(
        stoker_metadata::list_alert_rules_page(&pool, &nowhere, 10, None)
            .await
            .unwrap()
            .items
            .is_empty()
    );

    let enabled: Vec<_> = stoker_metadata::enabled_alert_rules(&pool)
        .await
        .unwrap()
        .into_iter()
        .map(|rule| rule.id)
        .collect();
    assert_eq!(enabled, [ids[0], ids[2], ids[4], other.id]);
}
