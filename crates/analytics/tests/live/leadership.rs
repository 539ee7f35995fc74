//! Leadership: a new leader rebuilds its state; another process takes
//! over when the leader dies.

use std::time::Duration;
use stoker_analytics::evaluate::{self};
use stoker_analytics::live::{EvaluationOptions, Evaluator};
use stoker_analytics::notify::NotifyOptions;
use stoker_analytics::store::{self};
use stoker_postgres::Pool;
use stoker_rules::{Agg, Op, RuleKind, Threshold};

use crate::harness::*;

#[tokio::test]
async fn a_new_leader_rebuilds_a_pending_count_and_open_alerts_without_duplicates() {
    let harness = Harness::start().await;
    let origin = origin();
    harness
        .write("b1_steam_pressure", origin, -60..400, |s| {
            Some(if (100..300).contains(&s) { 14.0 } else { 10.0 })
        })
        .await;
    let rule = harness
        .rule(
            "Steam pressure high",
            "b1_steam_pressure",
            RuleKind::Threshold {
                agg: Some(Agg::Min),
                op: Op::Gt,
                threshold: Threshold::Number(12.5),
                clear_threshold: Some(12.0),
                window: Duration::from_secs(10),
                for_: Duration::from_secs(60),
            },
        )
        .await;
    let options = EvaluationOptions {
        interval: Duration::from_secs(10),
        grace: Duration::ZERO,
    };
    // Condition holds from tick 110; the first leader evaluates up to 140
    // (pending), then stops.
    let mut first = Evaluator::new(harness.stores.clone(), NotifyOptions::default(), &options);
    first.take_over(origin).await.unwrap();
    for tick in evaluate::ticks(origin, origin + 140 * SECOND, 10 * SECOND) {
        first.tick(tick).await.unwrap();
    }
    assert!(alerts_of(&harness.pool, &rule, origin).await.is_empty());
    // A second leader takes over at 150 with the pending count rebuilt
    // from InfluxDB: it fires at 170 (held 60 s since 110), not 60 s later.
    let mut second = Evaluator::new(harness.stores.clone(), NotifyOptions::default(), &options);
    second.take_over(origin + 150 * SECOND).await.unwrap();
    for tick in evaluate::ticks(origin + 150 * SECOND, origin + 200 * SECOND, 10 * SECOND) {
        second.tick(tick).await.unwrap();
    }
    assert_eq!(
        alerts_of(&harness.pool, &rule, origin).await,
        vec![(170, None)]
    );
    // A third takes over while it fires: it neither opens a duplicate nor
    // loses it, and clears it on time.
    let mut third = Evaluator::new(harness.stores.clone(), NotifyOptions::default(), &options);
    third.take_over(origin + 210 * SECOND).await.unwrap();
    for tick in evaluate::ticks(origin + 210 * SECOND, origin + 390 * SECOND, 10 * SECOND) {
        third.tick(tick).await.unwrap();
    }
    assert_eq!(
        alerts_of(&harness.pool, &rule, origin).await,
        vec![(170, Some(310))]
    );
}

#[tokio::test]
async fn one_process_leads_and_another_takes_over_when_it_dies() {
    let harness = Harness::start().await;
    // No reading ever: a no-data rule on every sensor of the site fires at
    // its first tick.
    harness
        .rule(
            "Sensor silent",
            "*",
            RuleKind::NoData {
                timeout: Duration::from_secs(1),
            },
        )
        .await;
    let options = EvaluationOptions {
        interval: Duration::from_secs(1),
        grace: Duration::ZERO,
    };
    let spawn = |shutdown: tokio_util::sync::CancellationToken| {
        tokio::spawn(stoker_analytics::live::run(
            harness.stores.clone(),
            NotifyOptions::default(),
            options.clone(),
            stoker_analytics::live::Metrics::default(),
            shutdown,
        ))
    };
    let (first_stop, second_stop) = (
        tokio_util::sync::CancellationToken::new(),
        tokio_util::sync::CancellationToken::new(),
    );
    let first = spawn(first_stop.clone());
    let open = |pool: Pool| async move { store::open_alerts(&pool, None).await.unwrap().len() };
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while open(harness.pool.clone()).await < 1 {
        assert!(
            tokio::time::Instant::now() < deadline,
            "no alert from the first process"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // A second process starts, follows, then the leader dies without
    // cleaning up (its task is aborted mid-flight).
    let second = spawn(second_stop.clone());
    tokio::time::sleep(Duration::from_millis(2_500)).await;
    assert_eq!(
        open(harness.pool.clone()).await,
        1,
        "the follower opened nothing"
    );
    first.abort();
    let died = tokio::time::Instant::now();
    harness.sensor("b1_flue_temp", "temperature", "°C").await;
    let deadline = died + Duration::from_secs(10);
    while open(harness.pool.clone()).await < 2 {
        assert!(
            tokio::time::Instant::now() < deadline,
            "the second process did not take over"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // Took over within two intervals (plus the new sensor's first tick).
    assert!(
        died.elapsed() < Duration::from_secs(4),
        "took {:?}",
        died.elapsed()
    );
    tokio::time::sleep(Duration::from_millis(2_500)).await;
    let client = harness.pool.get().await.unwrap();
    let row = client
        .query_one(
            "SELECT count(*), count(DISTINCT (rule_id, site, sensor)) FROM analytics.alerts",
            &[],
        )
        .await
        .unwrap();
    assert_eq!(
        (row.get::<_, i64>(0), row.get::<_, i64>(1)),
        (2, 2),
        "no duplicate alerts"
    );
    second_stop.cancel();
    tokio::time::timeout(Duration::from_secs(5), second)
        .await
        .unwrap()
        .unwrap();
    first_stop.cancel();
}
