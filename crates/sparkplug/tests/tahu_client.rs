//! A client written by others: Eclipse Tahu's Node.js Sparkplug client
//! (`sparkplug-client` 3.2.4 from the npm registry, unmodified) publishes
//! an edge node session to the local broker (`MQTT_URL`, default
//! `mqtt://127.0.0.1:1883`); `tests/tahu/run` installs it into
//! `.dev/sparkplug-tahu` and prints what the broker delivered. The host
//! decodes every message with the metrics, aliases, `seq` and `bdSeq` the
//! client sent. If the client cannot be installed or run, the test fails
//! and says why.

use std::path::Path;
use std::process::Command;

use prost::Message as _;
use stoker_domain::EpochMillis;
use stoker_sparkplug::proto::Payload;
use stoker_sparkplug::{Event, Handled, Host, HostSettings, MetricValue};

const T0: i64 = 1_733_565_600_000;

fn hex(text: &str) -> Vec<u8> {
    assert!(text.len().is_multiple_of(2), "odd hex {text}");
    (0..text.len())
        .step_by(2)
        .map(|at| u8::from_str_radix(&text[at..at + 2], 16).expect("hex"))
        .collect()
}

/// The messages the client published, in the order the broker delivered them.
fn tahu_session(group: &str) -> Vec<(String, Vec<u8>)> {
    let url = std::env::var("MQTT_URL").unwrap_or_else(|_| "mqtt://127.0.0.1:1883".to_owned());
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/tahu/run");
    let output = Command::new(&script)
        .args([&url, group])
        .output()
        .unwrap_or_else(|error| panic!("cannot run {}: {error}", script.display()));
    assert!(
        output.status.success(),
        "Tahu's sparkplug-client did not complete its session ({}):\n{}",
        output.status,
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8(output.stdout)
        .expect("UTF-8 output")
        .lines()
        .map(|line| {
            let message: serde_json::Value = serde_json::from_str(line).expect("a JSON line");
            (
                message["topic"].as_str().expect("topic").to_owned(),
                hex(message["payload"].as_str().expect("payload")),
            )
        })
        .collect()
}

fn values(handled: &Handled) -> Vec<(&str, MetricValue, i64, bool)> {
    handled
        .readings
        .iter()
        .map(|reading| {
            (
                reading.sensor.as_str(),
                reading.value.clone(),
                reading.timestamp.as_millis(),
                reading.is_historical,
            )
        })
        .collect()
}

#[test]
fn tahus_node_client_session_decodes_with_its_metrics_aliases_seq_and_bd_seq() {
    let group = format!(
        "stoker-test-{}-{}",
        std::process::id(),
        EpochMillis::now().as_millis()
    );
    let session = tahu_session(&group);
    let topics: Vec<String> = session.iter().map(|(topic, _)| topic.clone()).collect();
    let base = format!("spBv1.0/{group}");
    assert_eq!(
        topics,
        [
            format!("{base}/NBIRTH/Gateway 1"),
            format!("{base}/DBIRTH/Gateway 1/Boiler 1"),
            format!("{base}/NDATA/Gateway 1"),
            format!("{base}/DDATA/Gateway 1/Boiler 1"),
            format!("{base}/DDEATH/Gateway 1/Boiler 1"),
            format!("{base}/NDEATH/Gateway 1"),
        ]
    );

    // The client's own seq and bdSeq, as it put them on the wire.
    let payloads: Vec<Payload> = session
        .iter()
        .map(|(_, bytes)| Payload::decode(bytes.as_slice()).expect("a Sparkplug B payload"))
        .collect();
    let seqs: Vec<Option<u64>> = payloads.iter().map(|payload| payload.seq).collect();
    assert_eq!(seqs, [Some(0), Some(1), Some(2), Some(3), Some(4), None]);
    let aliases: Vec<(Option<&str>, Option<u64>)> = payloads[0]
        .metrics
        .iter()
        .map(|metric| (metric.name.as_deref(), metric.alias))
        .collect();
    assert_eq!(
        aliases,
        [
            (Some("Node Control/Rebirth"), None),
            (Some("Properties/Hardware Make"), None),
            (Some("Flue Temp"), Some(1)),
            (Some("Burner On"), Some(2)),
            (Some("Sequencer"), Some(3)),
            (Some("Draft Offset"), Some(4)),
            (Some("Starts"), Some(5)),
            (Some("bdSeq"), None),
        ]
    );
    assert!(
        payloads[2]
            .metrics
            .iter()
            .all(|metric| metric.name.is_none() && metric.alias.is_some())
    );

    let mut host = Host::new(HostSettings::default());
    let received = EpochMillis::now();
    let handled: Vec<Handled> = session
        .iter()
        .map(|(topic, payload)| host.handle(topic, payload, received))
        .collect();
    for (handled, topic) in handled.iter().zip(&topics) {
        assert!(
            handled.rebirth.is_none(),
            "{topic} asked for a rebirth: {handled:?}"
        );
    }
    let [birth, device_birth, data, device_data, device_death, death] = handled.as_slice() else {
        panic!("six messages")
    };

    assert!(birth.refusals.is_empty(), "{:?}", birth.refusals);
    let Event::NodeBirth {
        node,
        bd_seq,
        metrics,
        ..
    } = &birth.events[0]
    else {
        panic!("{:?}", birth.events)
    };
    assert_eq!(node.to_string(), format!("{group}/Gateway 1"));
    assert_eq!(*bd_seq, Some(0));
    assert_eq!(
        metrics.len(),
        5,
        "protocol metrics are not announced as sensors"
    );
    assert_eq!(
        values(birth),
        [
            ("flue_temp", MetricValue::Number(180.5), T0, false),
            ("burner_on", MetricValue::Boolean(true), T0, false),
            ("sequencer", MetricValue::State("purge".into()), T0, false),
            ("draft_offset", MetricValue::Number(-3.0), T0, false),
            ("starts", MetricValue::Number(4_000_000_000.0), T0, false),
        ]
    );

    assert!(
        device_birth.refusals.is_empty(),
        "{:?}",
        device_birth.refusals
    );
    assert!(
        matches!(&device_birth.events[..], [Event::DeviceBirth { device, .. }] if device == "Boiler 1")
    );
    assert_eq!(
        values(device_birth),
        [
            (
                "boiler_1_steam_pressure",
                MetricValue::Number(10.5),
                T0,
                false
            ),
            ("boiler_1_flame", MetricValue::Boolean(true), T0, false),
        ]
    );

    assert!(data.refusals.is_empty(), "{:?}", data.refusals);
    assert_eq!(
        values(data),
        [
            ("flue_temp", MetricValue::Number(181.25), T0 + 1000, false),
            ("draft_offset", MetricValue::Number(-5.0), T0 + 1000, false),
            ("flue_temp", MetricValue::Number(170.0), T0 - 60_000, true),
            (
                "sequencer",
                MetricValue::State("firing".into()),
                T0 + 1000,
                false
            ),
        ]
    );

    assert!(
        device_data.refusals.is_empty(),
        "{:?}",
        device_data.refusals
    );
    assert_eq!(
        values(device_data),
        [
            (
                "boiler_1_steam_pressure",
                MetricValue::Number(10.75),
                T0 + 2000,
                false
            ),
            (
                "boiler_1_flame",
                MetricValue::Boolean(false),
                T0 + 2000,
                false
            ),
        ]
    );

    assert!(
        matches!(&device_death.events[..], [Event::DeviceDeath { device, bd_seq: Some(0), .. }] if device == "Boiler 1")
    );

    assert!(
        matches!(&death.events[..], [Event::NodeDeath { bd_seq: Some(0), devices, .. }] if devices.is_empty()),
        "{death:?}"
    );
    assert!(!host.is_online(&group, "Gateway 1"));
}
