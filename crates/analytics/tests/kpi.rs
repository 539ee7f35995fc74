//! Alarm KPIs: the SQL over the recorded alerts (`kpi::measure`) gives
//! exactly the figures of the same activations as a list (`kpi::compute`),
//! over floods, chattering, stale, acknowledged and gateway alarms, for
//! every site, one site and the sites a key is limited to.

use chrono::{DateTime, Duration, Utc};
use stoker_analytics::kpi::{self, Activation, KpiRange, KpiScope};
use stoker_domain::SiteSlug;
use stoker_postgres::Pool;
use stoker_testkit::TestPostgres;
use uuid::Uuid;

/// A small deterministic generator (a 64-bit LCG).
struct Dice(u64);

impl Dice {
    fn next(&mut self, below: u64) -> u64 {
        self.0 = self
            .0
            .wrapping_mul(6_364_136_223_846_793_005)
            .wrapping_add(1_442_695_040_888_963_407);
        (self.0 >> 33) % below
    }
}

fn origin() -> DateTime<Utc> {
    DateTime::parse_from_rfc3339("2026-11-01T00:00:00Z")
        .unwrap()
        .with_timezone(&Utc)
}

/// An activation of `rule` on `sensor` at `at`, cleared a little later and
/// acknowledged one time in three.
fn push(
    activations: &mut Vec<Activation>,
    site: &str,
    rule: u128,
    sensor: &str,
    at: DateTime<Utc>,
    dice: &mut Dice,
) {
    let cleared = at + Duration::seconds(5 + dice.next(3_000) as i64);
    let acknowledged =
        (dice.next(3) == 0).then(|| at + Duration::milliseconds(1 + dice.next(900_000) as i64));
    activations.push(Activation {
        site: site.to_owned(),
        rule_id: Some(Uuid::from_u128(rule)),
        rule_name: Some(format!("rule {rule}")),
        sensor: Some(sensor.to_owned()),
        activated_at: at,
        cleared_at: Some(cleared),
        acknowledged_at: acknowledged,
        suppressed: false,
    });
}

/// Two days of alarms at three sites: background noise, a flood at one
/// site, a chattering pair, long and open alarms, acknowledgements,
/// gateway alarms. Every pair has at most one open alarm, as the database
/// demands.
fn activations() -> Vec<Activation> {
    let mut dice = Dice(7);
    let sites = ["boiler-house-1", "boiler-house-2", "b-3"];
    let mut activations = Vec::new();
    // Background: 600 alarms over two days.
    for _ in 0..600 {
        let site = sites[dice.next(3) as usize];
        let rule = 1 + u128::from(dice.next(4));
        let sensor = format!("s{}", dice.next(12));
        let at = origin() + Duration::milliseconds(dice.next(2 * 86_400_000) as i64);
        push(&mut activations, site, rule, &sensor, at, &mut dice);
    }
    // A flood: 25 alarms within 4 minutes at boiler-house-2, hour 30.
    for index in 0..25 {
        let at =
            origin() + Duration::hours(30) + Duration::seconds(index * 9 + dice.next(5) as i64);
        push(
            &mut activations,
            "boiler-house-2",
            9,
            &format!("f{index}"),
            at,
            &mut dice,
        );
    }
    // A chattering pair: 4 activations 15 s apart, and again later.
    for index in 0..4 {
        let at = origin() + Duration::hours(5) + Duration::seconds(index * 15);
        push(&mut activations, "b-3", 8, "level", at, &mut dice);
        let later = origin() + Duration::hours(40) + Duration::seconds(index * 19);
        push(&mut activations, "b-3", 8, "level", later, &mut dice);
    }
    // Long alarms: cleared after 30 h, and one still active.
    let mut long = activations.len();
    push(
        &mut activations,
        "boiler-house-1",
        7,
        "long",
        origin() + Duration::hours(1),
        &mut dice,
    );
    activations[long].cleared_at = Some(origin() + Duration::hours(31));
    long = activations.len();
    push(
        &mut activations,
        "boiler-house-1",
        7,
        "open",
        origin() + Duration::hours(2),
        &mut dice,
    );
    activations[long].cleared_at = None;
    // Gateway alarms: no rule, no sensor.
    for hour in [3, 20, 33] {
        activations.push(Activation {
            site: "b-3".into(),
            rule_id: None,
            rule_name: None,
            sensor: None,
            activated_at: origin() + Duration::hours(hour),
            cleared_at: Some(origin() + Duration::hours(hour + 1)),
            acknowledged_at: Some(origin() + Duration::hours(hour) + Duration::seconds(42)),
            suppressed: false,
        });
    }
    activations
}

/// Records the activations as alerts, as the store's columns hold them.
async fn record(pool: &Pool, activations: &[Activation]) {
    let client = pool.get().await.unwrap();
    for (index, activation) in activations.iter().enumerate() {
        let state = match (activation.cleared_at, activation.acknowledged_at) {
            (Some(_), _) => "resolved",
            (None, Some(_)) => "acknowledged",
            (None, None) => "firing",
        };
        let (kind, group, edge) = match activation.rule_id {
            Some(_) => ("threshold", None, None),
            None => (
                "gateway_offline",
                Some("plant"),
                Some(format!("edge-{index}")),
            ),
        };
        client
            .execute(
                "INSERT INTO analytics.alerts (id, rule_id, rule_name, kind, severity, site, sensor,
                     state, opened_at, message, acknowledged_at, acknowledged_by, resolved_at,
                     resolved_by, gateway_group, gateway_edge_node)
                 VALUES ($1, $2, $3, $4, 'warning', $5, $6, $7, $8, 'test', $9,
                         CASE WHEN $9::timestamptz IS NULL THEN NULL ELSE 'operator' END,
                         $10, CASE WHEN $10::timestamptz IS NULL THEN NULL ELSE 'analytics' END,
                         $11, $12)",
                &[
                    &Uuid::now_v7(),
                    &activation.rule_id,
                    &activation.rule_name,
                    &kind,
                    &activation.site,
                    &activation.sensor,
                    &state,
                    &activation.activated_at,
                    &activation.acknowledged_at,
                    &activation.cleared_at,
                    &group,
                    &edge,
                ],
            )
            .await
            .unwrap();
    }
}

#[tokio::test]
async fn the_sql_over_recorded_alerts_gives_the_figures_of_the_list() {
    let postgres = TestPostgres::create().await;
    let pool = postgres.migrated_pool().await;
    stoker_analytics::migrate(&pool).await.unwrap();
    let activations = activations();
    record(&pool, &activations).await;

    let whole = KpiRange {
        start: origin(),
        end: origin() + Duration::hours(48),
    };
    let expected = kpi::compute(&activations, whole);
    // The data has what the figures measure.
    assert_eq!(expected.alarms, activations.len() as u64);
    assert!(expected.peak_10min >= 25, "{expected:?}");
    assert!(expected.flood_share > 0.0, "{expected:?}");
    assert!(expected.chattering >= 1, "{expected:?}");
    assert_eq!(expected.stale, 2, "{expected:?}");
    assert_eq!(expected.top.len(), kpi::TOP);
    assert!(expected.time_to_ack_s.median.is_some());

    let site = |slug: &str| SiteSlug::parse(slug).unwrap();
    let ranges = [
        whole,
        KpiRange {
            start: origin() + Duration::hours(29),
            end: origin() + Duration::hours(31) + Duration::milliseconds(123),
        },
        KpiRange {
            start: origin() + Duration::hours(47),
            end: origin() + Duration::hours(50),
        },
    ];
    let scopes = [
        KpiScope::default(),
        KpiScope {
            site: Some(site("boiler-house-2")),
            within: None,
        },
        KpiScope {
            site: None,
            within: Some(vec![site("b-3"), site("boiler-house-1")]),
        },
        KpiScope {
            site: Some(site("b-3")),
            within: Some(vec![site("boiler-house-1")]),
        },
    ];
    for range in ranges {
        for scope in &scopes {
            let chosen: Vec<Activation> = activations
                .iter()
                .filter(|activation| {
                    scope
                        .site
                        .as_ref()
                        .is_none_or(|site| site.as_str() == activation.site)
                        && scope.within.as_ref().is_none_or(|sites| {
                            sites.iter().any(|site| site.as_str() == activation.site)
                        })
                })
                .cloned()
                .collect();
            let measured = kpi::measure(&pool, scope, range).await.unwrap();
            assert_eq!(
                measured,
                kpi::compute(&chosen, range),
                "{scope:?} over {range:?}"
            );
        }
    }
}
