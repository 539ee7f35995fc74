//! The Sparkplug B host inside ingestion: protobuf payloads published to
//! the real broker, the host's STATE and rebirth requests seen by a client
//! of the test's own, readings through the same validation, storage and
//! latest values as every other reading, refusals recorded with their
//! reasons, births and deaths in metadata.

use std::time::Duration;

use prost::Message as _;
use rumqttc::{AsyncClient, Event, MqttOptions, Packet, QoS};
use stoker_domain::{EpochMillis, ReadingValue};
use stoker_ingestion::{SparkplugGroups, SparkplugOptions};
use stoker_sparkplug::HostId;
use stoker_sparkplug::proto::Payload;
use stoker_sparkplug::proto::payload::Metric;
use stoker_sparkplug::proto::payload::metric::Value;
use stoker_testkit::{publish_qos1, unique_client_id};
use tokio::sync::mpsc;

use crate::harness::*;

/// Every message on the subscribed filters, as (topic, payload, retain).
async fn watch(filters: &[String]) -> mpsc::UnboundedReceiver<(String, Vec<u8>, bool)> {
    let options = MqttOptions::new(unique_client_id("sparkplug-watch"), "127.0.0.1", 1883);
    let (client, mut events) = AsyncClient::new(options, 64);
    for filter in filters {
        client.subscribe(filter, QoS::AtLeastOnce).await.unwrap();
    }
    let (sender, receiver) = mpsc::unbounded_channel();
    tokio::spawn(async move {
        let _client = client;
        loop {
            match events.poll().await {
                Ok(Event::Incoming(Packet::Publish(publish))) => {
                    let message = (publish.topic, publish.payload.to_vec(), publish.retain);
                    if sender.send(message).is_err() {
                        break;
                    }
                }
                Ok(_) => {}
                Err(_) => tokio::time::sleep(Duration::from_millis(100)).await,
            }
        }
    });
    receiver
}

/// Removes the retained STATE a test's host left on the shared broker.
async fn clear_retained(topic: &str) {
    let options = MqttOptions::new(unique_client_id("sparkplug-clear"), "127.0.0.1", 1883);
    let (client, mut events) = AsyncClient::new(options, 8);
    client
        .publish(topic, QoS::AtLeastOnce, true, Vec::<u8>::new())
        .await
        .unwrap();
    let acked = async {
        while let Ok(event) = events.poll().await {
            if matches!(event, Event::Incoming(Packet::PubAck(_))) {
                break;
            }
        }
    };
    let _ = tokio::time::timeout(Duration::from_secs(5), acked).await;
}

async fn expect(
    messages: &mut mpsc::UnboundedReceiver<(String, Vec<u8>, bool)>,
    what: &str,
    wanted: impl Fn(&str, &[u8], bool) -> bool,
) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(15);
    loop {
        match tokio::time::timeout_at(deadline, messages.recv()).await {
            Ok(Some((topic, payload, retain))) if wanted(&topic, &payload, retain) => return,
            Ok(Some(_)) => {}
            _ => panic!("no {what} within 15 s"),
        }
    }
}

fn metric(name: Option<&str>, alias: u64, value: f64, timestamp: i64) -> Metric {
    Metric {
        name: name.map(str::to_owned),
        alias: Some(alias),
        timestamp: Some(timestamp as u64),
        datatype: Some(10),
        value: Some(Value::DoubleValue(value)),
        ..Metric::default()
    }
}

fn payload(seq: u64, timestamp: i64, metrics: Vec<Metric>) -> Vec<u8> {
    Payload {
        timestamp: Some(timestamp as u64),
        seq: Some(seq),
        metrics,
        ..Payload::default()
    }
    .encode_to_vec()
}

fn birth(timestamp: i64) -> Vec<u8> {
    let bd_seq = Metric {
        name: Some("bdSeq".into()),
        datatype: Some(8),
        value: Some(Value::LongValue(7)),
        ..Metric::default()
    };
    payload(
        0,
        timestamp,
        vec![
            bd_seq,
            metric(Some("B1 Steam Pressure"), 1, 10.0, timestamp),
            metric(Some("B1 Flue Temp"), 2, 180.0, timestamp),
            metric(Some("Draft Fan Speed"), 3, 55.0, timestamp),
        ],
    )
}

async fn rejected(
    harness: &Harness,
    reason: &str,
) -> Vec<(String, String, Option<String>, String)> {
    let pool = stoker_postgres::connect(&harness.postgres.options()).unwrap();
    let client = pool.get().await.unwrap();
    client
        .query(
            "SELECT site, topic, sensor, detail FROM ingestion.rejected_readings WHERE reason = $1 ORDER BY id",
            &[&reason],
        )
        .await
        .unwrap()
        .iter()
        .map(|row| (row.get(0), row.get(1), row.get(2), row.get(3)))
        .collect()
}

async fn gateway_online(harness: &Harness, group: &str, edge_node: &str) -> Option<bool> {
    let pool = stoker_postgres::connect(&harness.postgres.options()).unwrap();
    let client = pool.get().await.unwrap();
    client
        .query_opt(
            "SELECT online FROM metadata.gateways WHERE group_id = $1 AND edge_node = $2",
            &[&group, &edge_node],
        )
        .await
        .unwrap()
        .map(|row| row.get(0))
}

async fn eventually<F, Fut>(what: &str, mut check: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    for _ in 0..150 {
        if check().await {
            return;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("{what} within 15 s");
}

#[tokio::test]
async fn sparkplug_readings_are_validated_stored_cached_and_refusals_recorded() {
    let group = unique_client_id("plant");
    let host_id = unique_client_id("stoker");
    let options = SparkplugOptions {
        groups: SparkplugGroups::parse(&group).unwrap(),
        host_id: HostId::parse(host_id.clone()).unwrap(),
    };
    let state_topic = format!("spBv1.0/STATE/{host_id}");
    let mut seen = watch(&[state_topic.clone(), format!("spBv1.0/{group}/NCMD/#")]).await;
    let harness = Harness::start_with(Backends {
        sparkplug: Some((options, vec![(group.clone(), "gw1".to_owned())])),
        ..Backends::default()
    })
    .await;
    expect(&mut seen, "STATE online", |topic, payload, _| {
        topic == state_topic && String::from_utf8_lossy(payload).contains("\"online\":true")
    })
    .await;
    // Retained: a client subscribing now is told at once.
    let mut late = watch(std::slice::from_ref(&state_topic)).await;
    expect(
        &mut late,
        "the retained STATE online",
        |topic, payload, retain| {
            topic == state_topic
                && retain
                && String::from_utf8_lossy(payload).contains("\"online\":true")
        },
    )
    .await;

    let t0 = EpochMillis::now().as_millis() - 60_000;
    let node = format!("spBv1.0/{group}/NBIRTH/gw1");
    let data = format!("spBv1.0/{group}/NDATA/gw1");
    publish_qos1(&[
        (node.clone(), birth(t0)),
        (
            data.clone(),
            payload(
                1,
                t0 + 1_000,
                vec![
                    metric(None, 1, 11.0, t0 + 1_000),
                    // Outside b1_steam_pressure's valid range.
                    metric(None, 1, 30.0, t0 + 1_500),
                    // Stored and forwarded: older than the latest value.
                    Metric {
                        is_historical: Some(true),
                        ..metric(None, 1, 9.0, t0 - 30_000)
                    },
                ],
            ),
        ),
        // seq 3 after 1: a gap.
        (
            data.clone(),
            payload(3, t0 + 2_000, vec![metric(None, 1, 12.0, t0 + 2_000)]),
        ),
        // A gateway bound to no site.
        (format!("spBv1.0/{group}/NBIRTH/gw-unbound"), birth(t0)),
        // No edge node in the topic.
        (format!("spBv1.0/{group}/NBIRTH"), birth(t0)),
    ])
    .await;

    expect(&mut seen, "the rebirth request", |topic, _, _| {
        topic == format!("spBv1.0/{group}/NCMD/gw1")
    })
    .await;
    // Birth 10.0 and 180.0 (Draft Fan Speed has no sensor), 11.0, the historical 9.0.
    eventually("four readings in InfluxDB", || async {
        harness
            .influx
            .influx()
            .count_readings(&site())
            .await
            .unwrap_or(0)
            == 4
    })
    .await;
    // The historical 9.0, stored after 11.0 and older, does not replace it.
    eventually("11.0 as the latest steam pressure", || async {
        harness
            .cache
            .latest(&site(), &[key("b1_steam_pressure")])
            .await
            .ok()
            .and_then(|mut values| values.remove(0))
            .is_some_and(|latest| {
                latest.value == ReadingValue::Number(11.0) && latest.ts.as_millis() == t0 + 1_000
            })
    })
    .await;

    eventually("the refusals recorded", || async {
        !rejected(&harness, "unbound_gateway").await.is_empty()
            && !rejected(&harness, "sequence_gap").await.is_empty()
            && !rejected(&harness, "invalid_topic").await.is_empty()
    })
    .await;
    let unknown = rejected(&harness, "unknown_sensor").await;
    assert!(
        unknown
            .iter()
            .any(|(site, topic, sensor, _)| site == "boiler-house-1"
                && *topic == node
                && sensor.as_deref() == Some("draft_fan_speed")),
        "{unknown:?}"
    );
    let range = rejected(&harness, "out_of_range").await;
    assert!(
        range.iter().any(|(_, topic, _, _)| *topic == data),
        "{range:?}"
    );
    let gap = rejected(&harness, "sequence_gap").await;
    assert!(gap[0].3.contains("seq"), "{gap:?}");
    let unbound = rejected(&harness, "unbound_gateway").await;
    assert!(
        unbound[0].3.contains("gw-unbound")
            && unbound[0].3.contains("POST /api/v1/sites/{site}/gateways"),
        "{unbound:?}"
    );
    let invalid = rejected(&harness, "invalid_topic").await;
    assert!(
        invalid
            .iter()
            .any(|(_, topic, _, _)| *topic == format!("spBv1.0/{group}/NBIRTH")),
        "{invalid:?}"
    );
    let stats = harness.ingestion().stats();
    assert_eq!(stats.rejected.get("unknown_sensor"), Some(&1), "{stats:?}");
    assert_eq!(stats.rejected.get("out_of_range"), Some(&1), "{stats:?}");

    // Births and deaths in metadata: online from the birth, offline from the death.
    eventually("gw1 online in metadata", || async {
        gateway_online(&harness, &group, "gw1").await == Some(true)
    })
    .await;
    let death_of = |bd_seq: u64| Payload {
        timestamp: Some((t0 + 3_000) as u64),
        metrics: vec![Metric {
            name: Some("bdSeq".into()),
            datatype: Some(8),
            value: Some(Value::LongValue(bd_seq)),
            ..Metric::default()
        }],
        ..Payload::default()
    };
    let death = death_of(7);
    publish_qos1(&[(format!("spBv1.0/{group}/NDEATH/gw1"), death.encode_to_vec())]).await;
    eventually("gw1 offline in metadata", || async {
        gateway_online(&harness, &group, "gw1").await == Some(false)
    })
    .await;

    // Born while another process led (recorded there), dead now: this
    // host holds no session of it, and records the death all the same.
    let pool = stoker_postgres::connect(&harness.postgres.options()).unwrap();
    stoker_metadata::record_gateway_birth(&pool, &group, "gw1", EpochMillis::now(), Some(8), &[])
        .await
        .unwrap();
    assert_eq!(gateway_online(&harness, &group, "gw1").await, Some(true));
    tokio::time::sleep(Duration::from_millis(5)).await;
    // The will of the earlier session (bdSeq 7), delivered late, leaves it
    // online; the death of session 8 takes it offline.
    publish_qos1(&[(format!("spBv1.0/{group}/NDEATH/gw1"), death.encode_to_vec())]).await;
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert_eq!(gateway_online(&harness, &group, "gw1").await, Some(true));
    publish_qos1(&[(
        format!("spBv1.0/{group}/NDEATH/gw1"),
        death_of(8).encode_to_vec(),
    )])
    .await;
    eventually("gw1 offline again in metadata", || async {
        gateway_online(&harness, &group, "gw1").await == Some(false)
    })
    .await;

    // A clean stop says offline.
    harness.stop().await;
    expect(&mut seen, "STATE offline", |topic, payload, _| {
        topic == state_topic && String::from_utf8_lossy(payload).contains("\"online\":false")
    })
    .await;
    clear_retained(&state_topic).await;
}

#[tokio::test]
async fn state_is_offline_while_the_spool_is_full_and_online_again_with_a_new_timestamp() {
    let mut server = stoker_testkit::TestInfluxServer::start().await;
    let influx = stoker_timeseries::Influx::connect(&server.options("stoker"))
        .await
        .unwrap();
    influx.ensure_database().await.unwrap();
    let group = unique_client_id("plant");
    let host_id = unique_client_id("stoker");
    let state_topic = format!("spBv1.0/STATE/{host_id}");
    let mut seen = watch(std::slice::from_ref(&state_topic)).await;
    let harness = Harness::start_with(Backends {
        influx: Some(influx),
        // The spool takes one batch, then is full.
        tune: Some(|options| options.spool_max_mb = 0),
        sparkplug: Some((
            SparkplugOptions {
                groups: SparkplugGroups::parse(&group).unwrap(),
                host_id: HostId::parse(host_id.clone()).unwrap(),
            },
            Vec::new(),
        )),
        ..Backends::default()
    })
    .await;
    let state = |online: bool| {
        let topic = state_topic.clone();
        move |received: &str, payload: &[u8], _: bool| {
            received == topic
                && String::from_utf8_lossy(payload).contains(&format!("\"online\":{online}"))
        }
    };
    expect(&mut seen, "STATE online", state(true)).await;

    server.stop();
    let now = EpochMillis::now().as_millis();
    for index in 0..3 {
        let payload = format!(
            r#"{{"ts": {}, "values": {{"b1_flue_temp": 180.5}}}}"#,
            now + index
        );
        publish_qos1(&[(
            harness.topic("sites/boiler-house-1/telemetry"),
            payload.into_bytes(),
        )])
        .await;
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    expect(
        &mut seen,
        "STATE offline while the spool is full",
        state(false),
    )
    .await;

    server.start_again().await;
    expect(
        &mut seen,
        "STATE online once the spool has room",
        state(true),
    )
    .await;
    harness.stop().await;
    clear_retained(&state_topic).await;
}
