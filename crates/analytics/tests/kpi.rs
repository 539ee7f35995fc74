//! Alarm KPIs: the SQL over the recorded alerts' trails (`kpi::measure`)
//! gives exactly the figures of the same activations as a list
//! (`kpi::compute`), over floods, chattering, stale, acknowledged,
//! reactivated, suppressed and gateway alarms, for
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

/// One alert of `rule` on `sensor` at boiler-house-1 that holds three
/// activations: its condition cleared twice before anyone acknowledged it
/// and returned, reactivating it; the third activation was recorded while
/// suppressed, acknowledged and then cleared, which closed the alert.
fn reactivated() -> Vec<Activation> {
    let at = |minutes: i64| origin() + Duration::hours(10) + Duration::minutes(minutes);
    [(0, None, false), (2, None, false), (5, Some(30), true)]
        .into_iter()
        .map(|(minute, acknowledged, suppressed)| Activation {
            site: "boiler-house-1".into(),
            rule_id: Some(Uuid::from_u128(6)),
            rule_name: Some("rule 6".into()),
            sensor: Some("again".into()),
            activated_at: at(minute),
            cleared_at: Some(at(minute) + Duration::seconds(60)),
            acknowledged_at: acknowledged.map(|seconds| at(minute) + Duration::seconds(seconds)),
            suppressed,
        })
        .collect()
}

/// Records each group of activations as one alert, as the store keeps it:
/// the alert's columns (its last activation's state) and its trail, where
/// the first activation is a `fired` event, each later one a
/// `reactivated` event (a suppressed one followed by its `suppressed`
/// event), each ended by `cleared` (still unacknowledged), `closed`
/// (acknowledged before) or `resolved` (closed by hand), and an
/// acknowledgement by `acknowledged`.
async fn record(pool: &Pool, alerts: &[Vec<Activation>]) {
    let client = pool.get().await.unwrap();
    for (index, lives) in alerts.iter().enumerate() {
        let (first, last) = (&lives[0], &lives[lives.len() - 1]);
        let acknowledged_at = lives.iter().find_map(|life| life.acknowledged_at);
        let state = match (last.cleared_at, acknowledged_at) {
            (Some(_), _) => "closed",
            (None, Some(_)) => "acknowledged",
            (None, None) => "unacknowledged",
        };
        let (kind, group, edge) = match first.rule_id {
            Some(_) => ("threshold", None, None),
            None => (
                "gateway_offline",
                Some("plant"),
                Some(format!("edge-{index}")),
            ),
        };
        let id = Uuid::now_v7();
        client
            .execute(
                "INSERT INTO analytics.alerts (id, rule_id, rule_name, kind, severity, site, sensor,
                     state, active, opened_at, activated_at, message, acknowledged_at,
                     acknowledged_by, resolved_at, resolved_by, gateway_group, gateway_edge_node,
                     suppressed)
                 VALUES ($1, $2, $3, $4, 'warning', $5, $6, $7, $8, $9, $10, 'test', $11,
                         CASE WHEN $11::timestamptz IS NULL THEN NULL ELSE 'operator' END,
                         $12, CASE WHEN $12::timestamptz IS NULL THEN NULL ELSE 'analytics' END,
                         $13, $14, CASE WHEN $15 THEN 'maintenance' END)",
                &[
                    &id,
                    &first.rule_id,
                    &first.rule_name,
                    &kind,
                    &first.site,
                    &first.sensor,
                    &state,
                    &last.cleared_at.is_none(),
                    &first.activated_at,
                    &last.activated_at,
                    &acknowledged_at,
                    &last.cleared_at,
                    &group,
                    &edge,
                    &last.suppressed,
                ],
            )
            .await
            .unwrap();
        let mut trail: Vec<(DateTime<Utc>, &str)> = Vec::new();
        for (number, life) in lives.iter().enumerate() {
            let start = if number == 0 { "fired" } else { "reactivated" };
            trail.push((life.activated_at, start));
            if life.suppressed {
                trail.push((life.activated_at, "suppressed"));
            }
            let mut rest: Vec<(DateTime<Utc>, &str)> = Vec::new();
            if let Some(at) = life.acknowledged_at {
                rest.push((at, "acknowledged"));
            }
            if let Some(at) = life.cleared_at {
                let end = match (life.acknowledged_at, number + 1 == lives.len()) {
                    (Some(acknowledged), _) if acknowledged <= at => "closed",
                    (None, true) => "resolved",
                    _ => "cleared",
                };
                rest.push((at, end));
            }
            rest.sort();
            trail.extend(rest);
        }
        for (at, transition) in trail {
            client
                .execute(
                    "INSERT INTO analytics.alert_events (alert_id, transition, at, actor, detail)
                     VALUES ($1, $2, $3, 'analytics', 'test')",
                    &[&id, &transition, &at],
                )
                .await
                .unwrap();
        }
    }
}

#[tokio::test]
async fn the_sql_over_recorded_alerts_gives_the_figures_of_the_list() {
    let postgres = TestPostgres::create().await;
    let pool = postgres.migrated_pool().await;
    stoker_analytics::migrate(&pool).await.unwrap();
    let mut alerts: Vec<Vec<Activation>> = activations()
        .into_iter()
        .map(|activation| vec![activation])
        .collect();
    alerts.push(reactivated());
    record(&pool, &alerts).await;
    let activations: Vec<Activation> = alerts.concat();

    let whole = KpiRange {
        start: origin(),
        end: origin() + Duration::hours(48),
    };
    let expected = kpi::compute(&activations, whole);
    // The data has what the figures measure.
    assert_eq!(expected.alarms, activations.len() as u64 - 1);
    assert_eq!(expected.suppressed, 1);
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
