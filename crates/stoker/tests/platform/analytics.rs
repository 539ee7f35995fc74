//! Several `stoker analytics` processes: one evaluates, another takes over
//! when it is killed, and no alert is opened twice.

use std::time::Duration;
use stoker_metadata::Actor;

use stoker_analytics::store;
use stoker_domain::{SensorKey, SensorType, SiteSlug, Unit, ValidRange};
use stoker_metadata::NewSensor;
use stoker_postgres::Pool;
use stoker_rules::{NewAlertRule, RuleKind, RuleSelector, Severity};
use stoker_testkit::{TestInflux, TestPostgres, TestRedis, unique_topic_prefix};

use crate::faults::seed;
use crate::helpers::spawn_stoker;
use stoker_testkit::free_port;

async fn open_alerts(pool: &Pool) -> usize {
    store::open_alerts(pool, None)
        .await
        .map_or(0, |alerts| alerts.len())
}

async fn wait_for_open_alerts(pool: &Pool, expected: usize, limit: Duration) -> usize {
    let deadline = tokio::time::Instant::now() + limit;
    loop {
        let open = open_alerts(pool).await;
        if open >= expected || tokio::time::Instant::now() >= deadline {
            return open;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test]
async fn a_killed_analytics_leader_is_replaced_within_two_intervals_without_duplicates() {
    let postgres = TestPostgres::create().await;
    let pool = postgres.migrated_pool().await;
    stoker_analytics::migrate(&pool).await.unwrap();
    seed(&pool, "boiler-house-1", 2).await;
    let site = SiteSlug::parse("boiler-house-1").unwrap();
    // No reading ever arrives: a no-data rule on the site fires for every
    // sensor at the first tick.
    let rule = NewAlertRule::new(
        "Sensor silent",
        RuleSelector {
            site: Some(site.clone()),
            sensor: None,
            sensor_type: None,
        },
        RuleKind::NoData {
            timeout: Duration::from_secs(1),
        },
        Severity::Warning,
        true,
        None,
    )
    .unwrap();
    stoker_metadata::create_alert_rule(&pool, &Actor::Cli, &rule)
        .await
        .unwrap();
    let influx = TestInflux::create().await;
    let redis = TestRedis::new();
    let topics = unique_topic_prefix();
    let spawn = |metrics: &str| {
        spawn_stoker(
            "analytics",
            &[
                ("DATABASE_URL", postgres.url()),
                ("INFLUX_BUCKET", influx.influx().database().to_owned()),
                ("REDIS_KEY_PREFIX", redis.prefix().to_owned()),
                ("ALERT_MQTT_TOPIC_PREFIX", topics.clone()),
                ("METRICS_ADDR", metrics.to_owned()),
                ("ANALYTICS_INTERVAL", "1s".to_owned()),
                ("ANALYTICS_GRACE", "0s".to_owned()),
            ],
        )
    };

    let (first, second) = (
        format!("127.0.0.1:{}", free_port()),
        format!("127.0.0.1:{}", free_port()),
    );
    let mut leader = spawn(&first);
    assert_eq!(
        wait_for_open_alerts(&pool, 2, Duration::from_secs(20)).await,
        2,
        "the first process raised no alerts"
    );
    let mut follower = spawn(&second);
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert_eq!(open_alerts(&pool).await, 2, "the follower evaluated too");
    // Each process says on /metrics whether it leads.
    let leads = |address: String| async move {
        let text = reqwest::get(format!("http://{address}/metrics"))
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        text.lines().any(|line| line == "stoker_analytics_leader 1")
    };
    assert!(
        leads(first.clone()).await,
        "the first process does not say it leads"
    );
    assert!(!leads(second.clone()).await, "the follower says it leads");

    leader.kill();
    let killed = tokio::time::Instant::now();
    let sensor = NewSensor {
        key: SensorKey::parse("t99").unwrap(),
        sensor_type: SensorType::parse("temperature").unwrap(),
        unit: Unit::parse("°C").unwrap(),
        kind: stoker_domain::SensorKind::Numeric,
        states: stoker_domain::States::default(),
        range: ValidRange::new(Some(0.0), Some(1000.0)).unwrap(),
    };
    stoker_metadata::create_sensor(&pool, &Actor::Cli, &site, &sensor)
        .await
        .unwrap();
    assert_eq!(
        wait_for_open_alerts(&pool, 3, Duration::from_secs(15)).await,
        3,
        "the follower did not take over"
    );
    // Two intervals, plus the tick at which the new sensor is first judged.
    assert!(
        killed.elapsed() < Duration::from_secs(4),
        "took {:?}",
        killed.elapsed()
    );
    tokio::time::sleep(Duration::from_secs(2)).await;
    let client = pool.get().await.unwrap();
    let row = client
        .query_one(
            "SELECT count(*), count(DISTINCT (rule_id, site, sensor)) FROM analytics.alerts",
            &[],
        )
        .await
        .unwrap();
    assert_eq!(
        (row.get::<_, i64>(0), row.get::<_, i64>(1)),
        (3, 3),
        "an alert was opened twice"
    );
    assert!(
        leads(second).await,
        "the follower does not say it leads now"
    );
    assert!(
        follower.interrupt().success(),
        "the follower did not stop cleanly"
    );
}

#[tokio::test]
async fn influx_setup_then_the_analytics_role_keeps_the_rollup() {
    use stoker_timeseries::LineBatch;
    use stoker_timeseries::rollup::floor_minute;

    let postgres = TestPostgres::create().await;
    let influx = TestInflux::create().await;
    let database = influx.influx().database().to_owned();

    // `stoker influx setup`, twice: the second run changes nothing.
    for _ in 0..2 {
        let output = std::process::Command::new(crate::helpers::BINARY)
            .args(["influx", "setup"])
            .env("INFLUX_BUCKET", &database)
            .env("INFLUX_RAW_RETENTION", "14days")
            .output()
            .expect("run stoker influx setup");
        let stdout = String::from_utf8_lossy(&output.stdout);
        assert!(
            output.status.success(),
            "{stdout}{}",
            String::from_utf8_lossy(&output.stderr)
        );
        assert!(stdout.contains("kept 14 days"), "{stdout}");
        assert!(
            stdout.contains("readings_1m") && stdout.contains("kept 730 days"),
            "{stdout}"
        );
    }

    // Ten minutes of readings from before the role starts.
    let site = SiteSlug::parse("boiler-house-1").unwrap();
    let sensor = SensorKey::parse("b1_flue_temp").unwrap();
    let kind = SensorType::parse("temperature").unwrap();
    let start = floor_minute(stoker_domain::EpochMillis::now().plus_millis(-11 * 60_000));
    let mut batch = LineBatch::default();
    for second in 0..600 {
        batch.push(
            &site,
            &sensor,
            &kind,
            150.0 + f64::from(second % 11),
            start.plus_millis(i64::from(second) * 1_000),
        );
    }
    influx.influx().write(&batch).await.unwrap();

    let metrics = format!("127.0.0.1:{}", free_port());
    let mut analytics = spawn_stoker(
        "analytics",
        &[
            ("DATABASE_URL", postgres.url()),
            ("INFLUX_BUCKET", database.clone()),
            ("REDIS_KEY_PREFIX", TestRedis::new().prefix().to_owned()),
            ("ALERT_MQTT_TOPIC_PREFIX", unique_topic_prefix()),
            ("METRICS_ADDR", metrics.clone()),
        ],
    );
    // Its first pass backfills the ten minutes at once.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    let through = loop {
        if let Some(through) = influx.influx().rollup_progress().await.unwrap()
            && through >= start.plus_millis(10 * 60_000)
        {
            break through;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "no rollup within 20 s"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    let maxima = influx
        .influx()
        .history_with_rollup(
            &site,
            &sensor,
            start,
            start.plus_millis(10 * 60_000),
            Duration::from_secs(60),
            stoker_timeseries::Aggregate::Max,
            through,
        )
        .await
        .unwrap();
    assert_eq!(maxima.len(), 10);
    assert!(maxima.iter().all(|(_, max)| *max == 160.0), "{maxima:?}");
    let text = reqwest::get(format!("http://{metrics}/metrics"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        text.lines().any(|line| line == "stoker_rollup_leader 1"),
        "{text}"
    );
    assert!(analytics.interrupt().success());
}
