//! A Sparkplug gateway that dies raises one `gateway_offline` alert, which
//! its next birth resolves; meanwhile the `no_data` alerts of its sensors
//! are held back, and come again once it is back and they are still silent.
//! A dead device of an online gateway holds back its own sensors' `no_data`
//! alerts the same way, and raises no alarm.

use std::time::Duration;
use stoker_metadata::Actor;

use stoker_analytics::live::{EvaluationOptions, Evaluator};
use stoker_analytics::notify::NotifyOptions;
use stoker_analytics::store::{self, AlertFilter, AlertState};
use stoker_domain::{EpochMillis, SensorKey};
use stoker_metadata::{AnnouncedMetric, NewGateway};
use stoker_rules::RuleKind;

use crate::harness::*;

fn at(millis: i64) -> EpochMillis {
    EpochMillis::from_millis(millis).unwrap()
}

async fn alerts(harness: &Harness, kind: &str) -> Vec<store::Alert> {
    let filter = AlertFilter {
        kind: Some(kind.to_owned()),
        ..AlertFilter::default()
    };
    store::list_alerts(&harness.pool, &filter, 100, None)
        .await
        .unwrap()
        .items
}

#[tokio::test]
async fn a_dead_gateway_raises_one_alert_and_holds_back_its_sensors_no_data() {
    let harness = Harness::start().await;
    harness.sensor("b1_flue_temp", "temperature", "°C").await;
    harness.age_sensors().await;
    let origin = origin();
    // Both sensors report for the first 100 s, then fall silent.
    for sensor in ["b1_steam_pressure", "b1_flue_temp"] {
        harness
            .write(sensor, origin, -60..100, |_| Some(10.0))
            .await;
    }
    let silent = harness
        .rule(
            "Silent sensor",
            "*",
            RuleKind::NoData {
                timeout: Duration::from_secs(60),
            },
        )
        .await;
    // The gateway feeds the steam pressure only.
    stoker_metadata::create_gateway(
        &harness.pool,
        &Actor::Cli,
        &site(),
        &NewGateway::parse("plant", "gw1").unwrap(),
    )
    .await
    .unwrap();
    let metric = AnnouncedMetric {
        device: None,
        metric: "B1 Steam Pressure".into(),
        sensor: Some(SensorKey::parse("b1_steam_pressure").unwrap()),
        datatype: "Double".into(),
    };
    stoker_metadata::record_gateway_birth(
        &harness.pool,
        "plant",
        "gw1",
        at(origin - 60 * SECOND),
        Some(0),
        std::slice::from_ref(&metric),
    )
    .await
    .unwrap();

    let options = EvaluationOptions {
        interval: Duration::from_secs(10),
        grace: Duration::ZERO,
    };
    let mut evaluator = Evaluator::new(harness.stores.clone(), NotifyOptions::default(), &options);
    evaluator.take_over(origin).await.unwrap();
    let mut suppressed = 0;
    for tick in (0..=100).step_by(10) {
        evaluator.tick(origin + tick * SECOND).await.unwrap();
    }
    assert!(alerts(&harness, "gateway_offline").await.is_empty());

    // The will arrives: offline from 105 s.
    stoker_metadata::record_gateway_death(
        &harness.pool,
        "plant",
        "gw1",
        at(origin + 105 * SECOND),
        None,
    )
    .await
    .unwrap();
    for tick in (110..=300).step_by(10) {
        suppressed += evaluator
            .tick(origin + tick * SECOND)
            .await
            .unwrap()
            .suppressed;
    }
    let offline = alerts(&harness, "gateway_offline").await;
    assert_eq!(offline.len(), 1, "one alert over twenty ticks: {offline:?}");
    let alert = &offline[0];
    assert_eq!(alert.state, AlertState::Unacknowledged);
    assert_eq!((alert.rule_id, alert.sensor.as_deref()), (None, None));
    let gateway = alert.gateway.as_ref().unwrap();
    assert_eq!(
        (gateway.group.as_str(), gateway.edge_node.as_str()),
        ("plant", "gw1")
    );
    assert_eq!(alert.site, "boiler-house-1");
    assert_eq!(alert.opened_at.timestamp_millis(), origin + 105 * SECOND);
    assert!(alert.message.contains("plant/gw1"), "{}", alert.message);
    // The flue temperature (not the gateway's) is alerted as silent; the
    // steam pressure's alarm is recorded suppressed (gateway_offline), not
    // announced, at every tick.
    let silent_alerts = alerts(&harness, "no_data").await;
    let sensors: Vec<_> = silent_alerts
        .iter()
        .filter(|alert| alert.suppressed.is_none())
        .map(|alert| alert.sensor.as_deref().unwrap())
        .collect();
    assert_eq!(sensors, ["b1_flue_temp"]);
    let held: Vec<_> = silent_alerts
        .iter()
        .filter(|alert| alert.suppressed.is_some())
        .map(|alert| (alert.sensor.as_deref().unwrap(), alert.suppressed))
        .collect();
    assert_eq!(
        held,
        [(
            "b1_steam_pressure",
            Some(store::Suppression::GatewayOffline)
        )]
    );
    assert!(suppressed >= 10, "held back at each tick: {suppressed}");

    // A new leader reads the same rows: no second alert.
    let mut successor = Evaluator::new(harness.stores.clone(), NotifyOptions::default(), &options);
    successor.take_over(origin + 310 * SECOND).await.unwrap();
    successor.tick(origin + 310 * SECOND).await.unwrap();
    assert_eq!(alerts(&harness, "gateway_offline").await.len(), 1);

    // Born again at 315 s: resolved by analytics; the steam pressure, still
    // silent, is now alerted.
    stoker_metadata::record_gateway_birth(
        &harness.pool,
        "plant",
        "gw1",
        at(origin + 315 * SECOND),
        Some(1),
        std::slice::from_ref(&metric),
    )
    .await
    .unwrap();
    let report = successor.tick(origin + 320 * SECOND).await.unwrap();
    assert_eq!(report.suppressed, 0);
    let (alert, events) = store::get_alert(&harness.pool, alert.id).await.unwrap();
    assert_eq!(alert.state, AlertState::ClearedUnacknowledged);
    assert_eq!(alert.resolved_by.as_deref(), Some("analytics"));
    assert_eq!(
        alert.resolved_at.unwrap().timestamp_millis(),
        origin + 315 * SECOND
    );
    let transitions: Vec<_> = events
        .iter()
        .map(|event| event.transition.as_str())
        .collect();
    assert_eq!(transitions, ["fired", "cleared"]);
    let silent_alerts = alerts(&harness, "no_data").await;
    let mut sensors: Vec<_> = silent_alerts
        .iter()
        .map(|alert| alert.sensor.as_deref().unwrap())
        .collect();
    sensors.sort_unstable();
    assert_eq!(sensors, ["b1_flue_temp", "b1_steam_pressure"]);
    assert!(
        silent_alerts
            .iter()
            .all(|alert| alert.rule_id == Some(silent.id) && alert.suppressed.is_none())
    );

    // Resolved and online: later ticks raise nothing more for it.
    for tick in (330..=360).step_by(10) {
        successor.tick(origin + tick * SECOND).await.unwrap();
    }
    assert_eq!(alerts(&harness, "gateway_offline").await.len(), 1);
}

#[tokio::test]
async fn a_dead_device_holds_back_its_sensors_no_data_and_raises_no_gateway_alert() {
    let harness = Harness::start().await;
    harness.sensor("boiler_1_pressure", "pressure", "bar").await;
    harness.age_sensors().await;
    let origin = origin();
    // Both sensors report for the first 100 s, then fall silent.
    for sensor in ["b1_steam_pressure", "boiler_1_pressure"] {
        harness
            .write(sensor, origin, -60..100, |_| Some(10.0))
            .await;
    }
    harness
        .rule(
            "Silent sensor",
            "*",
            RuleKind::NoData {
                timeout: Duration::from_secs(60),
            },
        )
        .await;
    // The steam pressure is the edge node's own; the device Boiler 1
    // feeds boiler_1_pressure.
    stoker_metadata::create_gateway(
        &harness.pool,
        &Actor::Cli,
        &site(),
        &NewGateway::parse("plant", "gw1").unwrap(),
    )
    .await
    .unwrap();
    let announced = |device: Option<&str>, metric: &str, sensor: &str| AnnouncedMetric {
        device: device.map(str::to_owned),
        metric: metric.into(),
        sensor: Some(SensorKey::parse(sensor).unwrap()),
        datatype: "Double".into(),
    };
    stoker_metadata::record_gateway_birth(
        &harness.pool,
        "plant",
        "gw1",
        at(origin - 60 * SECOND),
        Some(0),
        &[announced(None, "B1 Steam Pressure", "b1_steam_pressure")],
    )
    .await
    .unwrap();
    let device = [announced(Some("Boiler 1"), "Pressure", "boiler_1_pressure")];
    stoker_metadata::record_device_birth(
        &harness.pool,
        "plant",
        "gw1",
        "Boiler 1",
        at(origin - 50 * SECOND),
        Some(0),
        &device,
    )
    .await
    .unwrap();

    let options = EvaluationOptions {
        interval: Duration::from_secs(10),
        grace: Duration::ZERO,
    };
    let mut evaluator = Evaluator::new(harness.stores.clone(), NotifyOptions::default(), &options);
    evaluator.take_over(origin).await.unwrap();
    for tick in (0..=100).step_by(10) {
        evaluator.tick(origin + tick * SECOND).await.unwrap();
    }

    // Boiler 1's DDEATH at 105 s; the edge node stays online.
    stoker_metadata::record_device_death(
        &harness.pool,
        "plant",
        "gw1",
        "Boiler 1",
        at(origin + 105 * SECOND),
        Some(0),
    )
    .await
    .unwrap();
    let mut suppressed = 0;
    for tick in (110..=300).step_by(10) {
        suppressed += evaluator
            .tick(origin + tick * SECOND)
            .await
            .unwrap()
            .suppressed;
    }
    // No gateway alarm: the gateway did not die. The node's own silent
    // sensor is alerted; the dead device's is held back at every tick.
    assert!(alerts(&harness, "gateway_offline").await.is_empty());
    let silent: Vec<_> = alerts(&harness, "no_data")
        .await
        .into_iter()
        .filter(|alert| alert.suppressed.is_none())
        .map(|alert| alert.sensor.unwrap())
        .collect();
    assert_eq!(silent, ["b1_steam_pressure"]);
    assert!(suppressed >= 10, "held back at each tick: {suppressed}");

    // Born again at 315 s and still silent: now it is alerted.
    stoker_metadata::record_device_birth(
        &harness.pool,
        "plant",
        "gw1",
        "Boiler 1",
        at(origin + 315 * SECOND),
        Some(0),
        &device,
    )
    .await
    .unwrap();
    let report = evaluator.tick(origin + 320 * SECOND).await.unwrap();
    assert_eq!(report.suppressed, 0);
    let mut silent: Vec<_> = alerts(&harness, "no_data")
        .await
        .into_iter()
        .filter(|alert| alert.suppressed.is_none())
        .map(|alert| alert.sensor.unwrap())
        .collect();
    silent.sort_unstable();
    assert_eq!(silent, ["b1_steam_pressure", "boiler_1_pressure"]);
    assert!(alerts(&harness, "gateway_offline").await.is_empty());
}

#[tokio::test]
async fn an_alert_resolved_by_hand_stays_resolved_for_that_death_and_unbinding_resolves_it() {
    let harness = Harness::start().await;
    let origin = origin();
    let created = stoker_metadata::create_gateway(
        &harness.pool,
        &Actor::Cli,
        &site(),
        &NewGateway::parse("plant", "gw1").unwrap(),
    )
    .await
    .unwrap();
    let options = EvaluationOptions {
        interval: Duration::from_secs(10),
        grace: Duration::ZERO,
    };
    let mut evaluator = Evaluator::new(harness.stores.clone(), NotifyOptions::default(), &options);
    evaluator.take_over(origin).await.unwrap();
    // Bound, never born: not offline "after having been online".
    evaluator.tick(origin).await.unwrap();
    assert!(alerts(&harness, "gateway_offline").await.is_empty());

    for (birth, death) in [(10, 20), (40, 50)] {
        stoker_metadata::record_gateway_birth(
            &harness.pool,
            "plant",
            "gw1",
            at(origin + birth * SECOND),
            None,
            &[],
        )
        .await
        .unwrap();
        stoker_metadata::record_gateway_death(
            &harness.pool,
            "plant",
            "gw1",
            at(origin + death * SECOND),
            None,
        )
        .await
        .unwrap();
        evaluator
            .tick(origin + (death + 10) * SECOND)
            .await
            .unwrap();
        let open = alerts(&harness, "gateway_offline").await;
        let alert = open.first().unwrap();
        if alert.state != AlertState::Closed {
            store::resolve(
                &harness.pool,
                &NotifyOptions::default(),
                alert.id,
                "operator",
            )
            .await
            .unwrap();
        }
        evaluator
            .tick(origin + (death + 20) * SECOND)
            .await
            .unwrap();
    }
    // One alert per death, each resolved by hand and not raised again.
    let all = alerts(&harness, "gateway_offline").await;
    assert_eq!(all.len(), 2, "{all:?}");
    assert!(
        all.iter()
            .all(|alert| alert.resolved_by.as_deref() == Some("operator"))
    );

    // Died a third time, then unbound: analytics resolves it.
    stoker_metadata::record_gateway_birth(
        &harness.pool,
        "plant",
        "gw1",
        at(origin + 70 * SECOND),
        None,
        &[],
    )
    .await
    .unwrap();
    stoker_metadata::record_gateway_death(
        &harness.pool,
        "plant",
        "gw1",
        at(origin + 80 * SECOND),
        None,
    )
    .await
    .unwrap();
    evaluator.tick(origin + 90 * SECOND).await.unwrap();
    stoker_metadata::delete_gateway(&harness.pool, &Actor::Cli, &site(), created.id, None)
        .await
        .unwrap();
    evaluator.tick(origin + 100 * SECOND).await.unwrap();
    let all = alerts(&harness, "gateway_offline").await;
    assert_eq!(all.len(), 3);
    assert_eq!(all[0].state, AlertState::ClearedUnacknowledged);
    assert_eq!(all[0].resolved_by.as_deref(), Some("analytics"));
}
