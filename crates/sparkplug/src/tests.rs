//! Length: a test module only (declared under `#[cfg(test)]` in lib.rs), one test per rule of the host.
//! The host's rules, message by message: births and alias tables, `seq`,
//! `bdSeq`, rebirth requests, readings and refusals.

use prost::Message as _;
use stoker_domain::EpochMillis;

use crate::proto::Payload;
use crate::proto::payload::Metric;
use crate::proto::payload::metric::Value;
use crate::value::datatype::*;
use crate::*;

const T0: i64 = 1_733_565_600_000;

fn at(millis: i64) -> EpochMillis {
    EpochMillis::from_millis(millis).unwrap()
}

fn metric(name: Option<&str>, alias: Option<u64>, datatype: u32, value: Value) -> Metric {
    Metric {
        name: name.map(str::to_owned),
        alias,
        datatype: Some(datatype),
        value: Some(value),
        ..Metric::default()
    }
}

fn named(name: &str, alias: u64, datatype: u32, value: Value) -> Metric {
    metric(Some(name), Some(alias), datatype, value)
}

/// A data metric: alias and value only, as Tahu's clients send them.
fn aliased(alias: u64, value: Value) -> Metric {
    Metric {
        alias: Some(alias),
        value: Some(value),
        ..Metric::default()
    }
}

fn bd_seq(value: u64) -> Metric {
    named("bdSeq", 0, UINT64, Value::LongValue(value))
}

fn payload(seq: Option<u64>, metrics: Vec<Metric>) -> Vec<u8> {
    Payload {
        timestamp: Some(T0 as u64),
        seq,
        metrics,
        ..Payload::default()
    }
    .encode_to_vec()
}

/// The NBIRTH of node `gw1` in group `plant` used by most tests.
fn node_birth(bd: u64) -> Vec<u8> {
    payload(
        Some(0),
        vec![
            bd_seq(bd),
            named(
                "Node Control/Rebirth",
                1,
                BOOLEAN,
                Value::BooleanValue(false),
            ),
            named(
                "Properties/Hardware Make",
                2,
                STRING,
                Value::StringValue("Acme".into()),
            ),
            named("Flue Temp", 10, DOUBLE, Value::DoubleValue(180.5)),
            named("Burner On", 11, BOOLEAN, Value::BooleanValue(true)),
            named("Sequencer", 12, STRING, Value::StringValue("firing".into())),
        ],
    )
}

const NBIRTH: &str = "spBv1.0/plant/NBIRTH/gw1";
const NDATA: &str = "spBv1.0/plant/NDATA/gw1";
const NDEATH: &str = "spBv1.0/plant/NDEATH/gw1";
const DBIRTH: &str = "spBv1.0/plant/DBIRTH/gw1/Boiler 1";
const DDATA: &str = "spBv1.0/plant/DDATA/gw1/Boiler 1";
const DDEATH: &str = "spBv1.0/plant/DDEATH/gw1/Boiler 1";

fn born() -> Host {
    let mut host = Host::new(HostSettings::default());
    let handled = host.handle(NBIRTH, &node_birth(1), at(T0));
    assert!(handled.refusals.is_empty(), "{:?}", handled.refusals);
    host
}

fn ndata(host: &mut Host, seq: u64, metrics: Vec<Metric>) -> Handled {
    host.handle(NDATA, &payload(Some(seq), metrics), at(T0 + 1000))
}

fn reasons(handled: &Handled) -> Vec<RefusalReason> {
    handled
        .refusals
        .iter()
        .map(|refusal| refusal.reason)
        .collect()
}

fn keys(handled: &Handled) -> Vec<&str> {
    handled
        .readings
        .iter()
        .map(|reading| reading.sensor.as_str())
        .collect()
}

#[test]
fn a_birth_announces_its_metrics_and_yields_their_values() {
    let mut host = Host::new(HostSettings::default());
    let handled = host.handle(NBIRTH, &node_birth(7), at(T0 + 5));
    assert_eq!(
        handled.node,
        Some(EdgeNodeId {
            group_id: "plant".into(),
            edge_node_id: "gw1".into()
        })
    );
    let [
        Event::NodeBirth {
            bd_seq,
            at: when,
            metrics,
            ..
        },
    ] = handled.events.as_slice()
    else {
        panic!("{:?}", handled.events)
    };
    assert_eq!(*bd_seq, Some(7));
    assert_eq!(when.as_millis(), T0 + 5);
    let announced: Vec<_> = metrics.iter().map(|m| (&*m.metric, m.datatype)).collect();
    assert_eq!(
        announced,
        [
            ("Flue Temp", DOUBLE),
            ("Burner On", BOOLEAN),
            ("Sequencer", STRING)
        ]
    );
    // Protocol metrics (bdSeq, Node Control/*, Properties/*) are not readings.
    assert_eq!(keys(&handled), ["flue_temp", "burner_on", "sequencer"]);
    assert_eq!(
        handled
            .readings
            .iter()
            .map(|r| r.value.clone())
            .collect::<Vec<_>>(),
        [
            MetricValue::Number(180.5),
            MetricValue::Boolean(true),
            MetricValue::State("firing".into())
        ]
    );
    assert!(handled.refusals.is_empty());
    assert!(host.is_online("plant", "gw1"));
}

#[test]
fn data_by_alias_or_by_name_yields_typed_readings() {
    let mut host = born();
    let handled = ndata(
        &mut host,
        1,
        vec![
            aliased(10, Value::DoubleValue(181.2)),
            aliased(11, Value::BooleanValue(false)),
            metric(
                Some("Sequencer"),
                None,
                STRING,
                Value::StringValue("lockout".into()),
            ),
        ],
    );
    assert!(handled.refusals.is_empty(), "{:?}", handled.refusals);
    assert_eq!(keys(&handled), ["flue_temp", "burner_on", "sequencer"]);
    assert_eq!(handled.readings[0].value, MetricValue::Number(181.2));
    assert_eq!(handled.readings[1].value, MetricValue::Boolean(false));
    assert_eq!(
        handled.readings[2].value,
        MetricValue::State("lockout".into())
    );
    assert_eq!(&*handled.readings[0].metric, "Flue Temp");
    assert!(handled.rebirth.is_none());
}

#[test]
fn timestamps_come_from_the_metric_else_the_payload_else_the_receive_time() {
    let mut host = born();
    let mut own = aliased(10, Value::DoubleValue(1.0));
    own.timestamp = Some((T0 - 60_000) as u64);
    let plain = aliased(10, Value::DoubleValue(2.0));
    let handled = ndata(&mut host, 1, vec![own, plain]);
    assert_eq!(handled.readings[0].timestamp.as_millis(), T0 - 60_000);
    assert_eq!(
        handled.readings[1].timestamp.as_millis(),
        T0,
        "the payload's"
    );

    let bare = Payload {
        seq: Some(2),
        metrics: vec![aliased(10, Value::DoubleValue(3.0))],
        ..Payload::default()
    };
    let handled = host.handle(NDATA, &bare.encode_to_vec(), at(T0 + 9));
    assert_eq!(
        handled.readings[0].timestamp.as_millis(),
        T0 + 9,
        "the receive time"
    );

    let mut historical = aliased(10, Value::DoubleValue(4.0));
    historical.is_historical = Some(true);
    let bare = Payload {
        seq: Some(3),
        metrics: vec![historical],
        ..Payload::default()
    };
    let handled = host.handle(NDATA, &bare.encode_to_vec(), at(T0 + 9));
    assert_eq!(reasons(&handled), [RefusalReason::InvalidTimestamp]);
    assert!(handled.refusals[0].detail.contains("historical"));

    let mut far = aliased(10, Value::DoubleValue(5.0));
    far.timestamp = Some(u64::MAX);
    let handled = ndata(&mut host, 4, vec![far]);
    assert_eq!(reasons(&handled), [RefusalReason::InvalidTimestamp]);
}

#[test]
fn historical_metrics_are_flagged() {
    let mut host = born();
    let mut old = aliased(10, Value::DoubleValue(170.0));
    old.is_historical = Some(true);
    old.timestamp = Some((T0 - 3_600_000) as u64);
    let handled = ndata(
        &mut host,
        1,
        vec![old, aliased(10, Value::DoubleValue(181.0))],
    );
    assert!(handled.readings[0].is_historical);
    assert!(!handled.readings[1].is_historical);
}

#[test]
fn seq_wraps_from_255_to_0() {
    let mut host = born();
    for step in 1..=600u64 {
        let handled = ndata(
            &mut host,
            step % 256,
            vec![aliased(10, Value::DoubleValue(1.0))],
        );
        assert!(
            handled.refusals.is_empty(),
            "step {step}: {:?}",
            handled.refusals
        );
    }
}

#[test]
fn a_seq_gap_refuses_and_requests_a_rebirth_until_the_birth() {
    let mut host = born();
    assert!(
        ndata(&mut host, 1, vec![aliased(10, Value::DoubleValue(1.0))])
            .refusals
            .is_empty()
    );
    let handled = ndata(&mut host, 3, vec![aliased(10, Value::DoubleValue(3.0))]);
    assert_eq!(reasons(&handled), [RefusalReason::SequenceGap]);
    assert_eq!(
        handled.refusals[0].detail,
        "NDATA of plant/gw1 has seq 3 after 1 (expected 2): a message was missed"
    );
    assert!(handled.readings.is_empty(), "never a guess");
    let request = handled.rebirth.expect("a rebirth request");
    assert_eq!(request.reason, RefusalReason::SequenceGap);
    assert_eq!(request.command.topic, "spBv1.0/plant/NCMD/gw1");
    let ncmd = Payload::decode(request.command.payload.as_slice()).unwrap();
    assert_eq!(
        ncmd.metrics[0].name.as_deref(),
        Some("Node Control/Rebirth")
    );
    assert_eq!(ncmd.metrics[0].value, Some(Value::BooleanValue(true)));

    // Until the birth, data is refused; the request is repeated only after the retry time.
    let handled = ndata(&mut host, 4, vec![aliased(10, Value::DoubleValue(4.0))]);
    assert_eq!(reasons(&handled), [RefusalReason::AwaitingRebirth]);
    assert!(handled.rebirth.is_none(), "asked a second ago");
    let later = host.handle(NDATA, &payload(Some(5), vec![]), at(T0 + 11_000));
    assert_eq!(reasons(&later), [RefusalReason::AwaitingRebirth]);
    assert!(later.rebirth.is_some(), "asked again after the retry time");

    // The birth starts a new session.
    host.handle(NBIRTH, &node_birth(1), at(T0 + 12_000));
    let handled = ndata(&mut host, 1, vec![aliased(10, Value::DoubleValue(5.0))]);
    assert!(handled.refusals.is_empty());
    assert_eq!(handled.readings.len(), 1);
}

#[test]
fn a_missing_seq_is_refused_like_a_gap() {
    let mut host = born();
    let handled = host.handle(NDATA, &payload(None, vec![]), at(T0));
    assert_eq!(reasons(&handled), [RefusalReason::MalformedPayload]);
    assert!(handled.rebirth.is_some());
}

#[test]
fn an_unknown_alias_refuses_the_whole_message_and_requests_a_rebirth() {
    let mut host = born();
    let handled = ndata(
        &mut host,
        1,
        vec![
            aliased(10, Value::DoubleValue(1.0)),
            aliased(99, Value::DoubleValue(2.0)),
        ],
    );
    assert_eq!(reasons(&handled), [RefusalReason::UnknownMetric]);
    assert_eq!(
        handled.refusals[0].detail,
        "NDATA of plant/gw1 names alias 99, which its NBIRTH did not announce"
    );
    assert!(handled.readings.is_empty());
    assert_eq!(
        handled.rebirth.unwrap().reason,
        RefusalReason::UnknownMetric
    );

    let mut host = born();
    let handled = ndata(
        &mut host,
        1,
        vec![metric(Some("Nope"), None, DOUBLE, Value::DoubleValue(1.0))],
    );
    assert_eq!(reasons(&handled), [RefusalReason::UnknownMetric]);
    assert!(handled.refusals[0].detail.contains("metric \"Nope\""));
}

#[test]
fn data_before_a_birth_requests_a_rebirth() {
    let mut host = Host::new(HostSettings::default());
    let handled = ndata(&mut host, 5, vec![aliased(10, Value::DoubleValue(1.0))]);
    assert_eq!(reasons(&handled), [RefusalReason::BeforeBirth]);
    assert_eq!(
        handled.refusals[0].detail,
        "NDATA of plant/gw1 before its NBIRTH"
    );
    assert_eq!(
        handled.rebirth.unwrap().command.topic,
        "spBv1.0/plant/NCMD/gw1"
    );

    // A device's data before its DBIRTH too.
    let mut host = born();
    let handled = host.handle(
        DDATA,
        &payload(Some(1), vec![aliased(1, Value::DoubleValue(1.0))]),
        at(T0),
    );
    assert_eq!(reasons(&handled), [RefusalReason::BeforeBirth]);
    assert_eq!(
        handled.refusals[0].detail,
        "DDATA of device \"Boiler 1\" of plant/gw1 before its DBIRTH"
    );
    assert!(handled.rebirth.is_some());
}

fn device_birth(seq: u64) -> Vec<u8> {
    payload(
        Some(seq),
        vec![
            named(
                "Device Control/Rebirth",
                20,
                BOOLEAN,
                Value::BooleanValue(false),
            ),
            named("Steam Pressure", 21, FLOAT, Value::FloatValue(10.5)),
            named("Flame", 22, BOOLEAN, Value::BooleanValue(true)),
        ],
    )
}

#[test]
fn devices_are_born_send_data_and_die() {
    let mut host = born();
    let handled = host.handle(DBIRTH, &device_birth(1), at(T0 + 1));
    let [
        Event::DeviceBirth {
            device,
            metrics,
            bd_seq: Some(1),
            ..
        },
    ] = handled.events.as_slice()
    else {
        panic!("{:?}", handled.events)
    };
    assert_eq!(device, "Boiler 1");
    assert_eq!(metrics.len(), 2, "Device Control/* is protocol");
    assert_eq!(
        metrics[0].sensor.as_ref().unwrap().as_str(),
        "boiler_1_steam_pressure"
    );
    assert_eq!(
        keys(&handled),
        ["boiler_1_steam_pressure", "boiler_1_flame"]
    );

    let handled = host.handle(
        DDATA,
        &payload(Some(2), vec![aliased(21, Value::FloatValue(10.75))]),
        at(T0),
    );
    assert_eq!(keys(&handled), ["boiler_1_steam_pressure"]);
    assert_eq!(handled.readings[0].value, MetricValue::Number(10.75));

    let handled = host.handle(DDEATH, &payload(Some(3), vec![]), at(T0 + 2));
    assert!(
        matches!(
            handled.events.as_slice(),
            [Event::DeviceDeath { device, bd_seq: Some(1), .. }] if device == "Boiler 1"
        ),
        "a device's death names its node's session: {:?}",
        handled.events
    );
    assert!(
        host.is_online("plant", "gw1"),
        "a device's death is not its node's"
    );

    let handled = host.handle(
        DDATA,
        &payload(Some(4), vec![aliased(21, Value::FloatValue(1.0))]),
        at(T0),
    );
    assert_eq!(reasons(&handled), [RefusalReason::BeforeBirth]);

    // A second DDEATH of a dead device is stale, not an event.
    let mut host = born();
    host.handle(DBIRTH, &device_birth(1), at(T0));
    host.handle(DDEATH, &payload(Some(2), vec![]), at(T0));
    let handled = host.handle(DDEATH, &payload(Some(3), vec![]), at(T0));
    assert!(handled.events.is_empty());
    assert!(matches!(
        handled.ignored,
        Some(Ignored::StaleDeviceDeath(_))
    ));
}

#[test]
fn a_death_with_the_births_bd_seq_takes_the_node_and_its_devices_offline() {
    let mut host = born();
    host.handle(DBIRTH, &device_birth(1), at(T0));
    let handled = host.handle(NDEATH, &payload(None, vec![bd_seq(1)]), at(T0 + 7));
    let [
        Event::NodeDeath {
            bd_seq,
            at: when,
            devices,
            ..
        },
    ] = handled.events.as_slice()
    else {
        panic!("{:?}", handled)
    };
    assert_eq!(*bd_seq, Some(1));
    assert_eq!(when.as_millis(), T0 + 7);
    assert_eq!(devices, &["Boiler 1".to_owned()]);
    assert!(!host.is_online("plant", "gw1"));
    // Data after the death is data before a birth.
    let handled = ndata(&mut host, 1, vec![]);
    assert_eq!(reasons(&handled), [RefusalReason::BeforeBirth]);
}

#[test]
fn a_death_of_an_earlier_session_is_ignored() {
    let mut host = Host::new(HostSettings::default());
    host.handle(NBIRTH, &node_birth(4), at(T0));
    // The will of session 3, delivered after session 4's birth.
    let handled = host.handle(NDEATH, &payload(None, vec![bd_seq(3)]), at(T0 + 1));
    assert!(handled.events.is_empty());
    assert_eq!(
        handled.ignored,
        Some(Ignored::StaleDeath {
            detail:
                "NDEATH of plant/gw1 has bdSeq 3, the current birth's is 4: an earlier session's death"
                    .into(),
            bd_seq: Some(3),
        })
    );
    assert!(handled.refusals.is_empty());
    assert!(host.is_online("plant", "gw1"));
    assert!(
        ndata(&mut host, 1, vec![aliased(10, Value::DoubleValue(1.0))])
            .refusals
            .is_empty()
    );

    // A death of a node that is not online is stale too.
    let mut host = Host::new(HostSettings::default());
    let handled = host.handle(NDEATH, &payload(None, vec![bd_seq(0)]), at(T0));
    assert!(matches!(
        handled.ignored,
        Some(Ignored::StaleDeath {
            bd_seq: Some(0),
            ..
        })
    ));
    assert!(handled.events.is_empty());
}

#[test]
fn a_death_ends_a_session_that_awaits_its_rebirth() {
    let mut host = born();
    ndata(&mut host, 9, vec![]);
    let handled = host.handle(NDEATH, &payload(None, vec![bd_seq(1)]), at(T0));
    assert!(matches!(
        handled.events.as_slice(),
        [Event::NodeDeath { .. }]
    ));
}

#[test]
fn metrics_mapping_to_one_key_are_ambiguous() {
    let mut host = Host::new(HostSettings::default());
    let birth = payload(
        Some(0),
        vec![
            bd_seq(0),
            named("Boiler 1/Flame", 1, BOOLEAN, Value::BooleanValue(true)),
            named("Level", 2, DOUBLE, Value::DoubleValue(1.0)),
        ],
    );
    host.handle(NBIRTH, &birth, at(T0));
    let handled = host.handle(DBIRTH, &device_birth(1), at(T0));
    // The device's "Flame" is boiler_1_flame, as is the node's "Boiler 1/Flame".
    assert_eq!(keys(&handled), ["boiler_1_steam_pressure"]);
    assert_eq!(reasons(&handled), [RefusalReason::AmbiguousMetric]);
    assert_eq!(
        handled.refusals[0].detail,
        "metric \"Boiler 1/Flame\" and metric \"Flame\" of device \"Boiler 1\" both map to sensor boiler_1_flame"
    );
    let handled = ndata(
        &mut host,
        2,
        vec![
            aliased(1, Value::BooleanValue(false)),
            aliased(2, Value::DoubleValue(2.0)),
        ],
    );
    assert_eq!(keys(&handled), ["level"]);
    assert_eq!(reasons(&handled), [RefusalReason::AmbiguousMetric]);
    assert_eq!(
        handled.refusals[0].metric.as_deref(),
        Some("Boiler 1/Flame")
    );
    assert!(
        handled.rebirth.is_none(),
        "a rebirth would not change the names"
    );
}

#[test]
fn an_alias_given_twice_is_ambiguous() {
    let mut host = Host::new(HostSettings::default());
    let birth = payload(
        Some(0),
        vec![
            bd_seq(0),
            named("A", 5, DOUBLE, Value::DoubleValue(1.0)),
            named("B", 5, DOUBLE, Value::DoubleValue(2.0)),
        ],
    );
    host.handle(NBIRTH, &birth, at(T0));
    let handled = ndata(&mut host, 1, vec![aliased(5, Value::DoubleValue(3.0))]);
    assert!(handled.readings.is_empty());
    assert_eq!(reasons(&handled), [RefusalReason::AmbiguousMetric]);
    assert_eq!(
        handled.refusals[0].detail,
        "the birth gives alias 5 to both \"A\" and \"B\""
    );
}

#[test]
fn values_are_refused_with_precise_reasons() {
    let mut host = Host::new(HostSettings::default());
    let birth = payload(
        Some(0),
        vec![
            bd_seq(0),
            named("Recipe", 1, 16, Value::DatasetValue(Default::default())),
            named("Level", 2, DOUBLE, Value::DoubleValue(1.0)),
            named("Offset", 3, INT8, Value::IntValue(0xFF)),
            named("°/°", 4, DOUBLE, Value::DoubleValue(1.0)),
            named("Started", 5, DATETIME, Value::LongValue(T0 as u64)),
        ],
    );
    let handled = host.handle(NBIRTH, &birth, at(T0));
    assert_eq!(keys(&handled), ["level", "offset"]);
    assert_eq!(handled.readings[1].value, MetricValue::Number(-1.0));
    assert_eq!(
        reasons(&handled),
        [
            RefusalReason::UnsupportedDatatype,
            RefusalReason::InvalidMetricName,
            RefusalReason::UnsupportedDatatype
        ]
    );
    assert_eq!(
        handled.refusals[0].detail,
        "metric \"Recipe\": datatype DataSet (16) is not stored; Stoker stores numeric types, Boolean, String and Text"
    );
    assert!(handled.refusals[2].detail.contains("DateTime (13)"));

    let mut null = aliased(2, Value::DoubleValue(0.0));
    null.is_null = Some(true);
    null.value = None;
    let mut transient = aliased(2, Value::DoubleValue(1.0));
    transient.is_transient = Some(true);
    let mut retyped = aliased(2, Value::IntValue(1));
    retyped.datatype = Some(INT32);
    let handled = ndata(
        &mut host,
        1,
        vec![
            null,
            transient,
            retyped,
            aliased(2, Value::StringValue("x".into())),
            aliased(3, Value::IntValue(300)),
        ],
    );
    assert!(handled.readings.is_empty());
    assert_eq!(
        reasons(&handled),
        [
            RefusalReason::NullValue,
            RefusalReason::TransientMetric,
            RefusalReason::InvalidValue,
            RefusalReason::InvalidValue,
            RefusalReason::InvalidValue
        ]
    );
    assert_eq!(handled.refusals[0].detail, "metric \"Level\" is null");
    assert_eq!(
        handled.refusals[2].detail,
        "metric \"Level\" is sent as Int32 (3), but its birth announced Double (10)"
    );
    assert_eq!(
        handled.refusals[3].detail,
        "metric \"Level\": a Double metric carries its value in string_value, which does not hold a Double"
    );
    assert_eq!(
        handled.refusals[4].detail,
        "metric \"Offset\": 300 in int_value does not fit a Int8"
    );
    assert!(
        handled.rebirth.is_none(),
        "bad values are not a lost session"
    );
}

#[test]
fn malformed_payloads_and_topics() {
    let mut host = born();
    let handled = host.handle(NDATA, b"\xff\xff\xff", at(T0));
    assert_eq!(reasons(&handled), [RefusalReason::MalformedPayload]);
    assert!(
        handled.refusals[0]
            .detail
            .starts_with("NDATA of plant/gw1 is not a Sparkplug B payload")
    );
    assert!(handled.rebirth.is_some(), "the message's seq is lost");

    // An undecodable death is refused and changes nothing.
    let mut host = born();
    let handled = host.handle(NDEATH, b"\xff\xff", at(T0));
    assert_eq!(reasons(&handled), [RefusalReason::MalformedPayload]);
    assert!(handled.rebirth.is_none());
    assert!(host.is_online("plant", "gw1"));

    let handled = host.handle("spBv1.0/plant/NMETA/gw1", &[], at(T0));
    assert_eq!(reasons(&handled), [RefusalReason::InvalidTopic]);
    assert!(handled.refusals[0].detail.contains("\"NMETA\""));
    assert_eq!(handled.node, None);

    // A birth without a seq is refused and asked again.
    let mut host = Host::new(HostSettings::default());
    let handled = host.handle(NBIRTH, &payload(None, vec![bd_seq(0)]), at(T0));
    assert_eq!(reasons(&handled), [RefusalReason::MalformedPayload]);
    assert_eq!(
        handled.refusals[0].detail,
        "NBIRTH of plant/gw1 has seq none, not 0 to 255"
    );
    assert!(handled.rebirth.is_some());
}

#[test]
fn commands_and_host_states_are_ignored() {
    let mut host = born();
    let rebirth = rebirth_command(
        &EdgeNodeId {
            group_id: "plant".into(),
            edge_node_id: "gw1".into(),
        },
        at(T0),
    );
    // The host receives its own NCMD through its group subscription.
    let handled = host.handle(&rebirth.topic, &rebirth.payload, at(T0));
    assert_eq!(handled.ignored, Some(Ignored::Command));
    assert!(handled.refusals.is_empty() && handled.rebirth.is_none());
    let handled = host.handle(
        "spBv1.0/STATE/other-host",
        br#"{"online":true,"timestamp":1}"#,
        at(T0),
    );
    assert_eq!(
        handled.ignored,
        Some(Ignored::HostState {
            host_id: "other-host".into()
        })
    );
    // Neither moved the node's seq.
    assert!(ndata(&mut host, 1, vec![]).refusals.is_empty());
}

#[test]
fn reset_forgets_every_session() {
    let mut host = born();
    host.reset();
    assert!(!host.is_online("plant", "gw1"));
    let handled = ndata(&mut host, 1, vec![]);
    assert_eq!(reasons(&handled), [RefusalReason::BeforeBirth]);
}

#[test]
fn edge_nodes_are_followed_separately() {
    let mut host = born();
    let other = "spBv1.0/plant/NBIRTH/gw2";
    host.handle(other, &node_birth(1), at(T0));
    assert!(ndata(&mut host, 1, vec![]).refusals.is_empty());
    let handled = host.handle("spBv1.0/plant/NDATA/gw2", &payload(Some(1), vec![]), at(T0));
    assert!(handled.refusals.is_empty(), "gw2 has its own seq");
    let handled = host.handle("spBv1.0/other/NDATA/gw1", &payload(Some(1), vec![]), at(T0));
    assert_eq!(
        reasons(&handled),
        [RefusalReason::BeforeBirth],
        "another group's gw1"
    );
}

#[test]
fn compressed_payloads_are_refused_without_a_guess() {
    let mut host = born();
    let compressed = Payload {
        uuid: Some("SPBV1.0_COMPRESSED".into()),
        body: Some(vec![0x78, 0x9c, 0x03, 0x00]),
        metrics: vec![metric(
            Some("algorithm"),
            None,
            STRING,
            Value::StringValue("DEFLATE".into()),
        )],
        ..Payload::default()
    };
    let handled = host.handle(NDATA, &compressed.encode_to_vec(), at(T0));
    assert_eq!(reasons(&handled), [RefusalReason::MalformedPayload]);
    assert_eq!(
        handled.refusals[0].detail,
        "NDATA of plant/gw1 is compressed (uuid SPBV1.0_COMPRESSED): Stoker reads uncompressed Sparkplug B payloads only"
    );
    assert!(handled.readings.is_empty() && handled.rebirth.is_none());
    // The compressed message held seq 1: the next one shows the gap.
    let handled = ndata(&mut host, 2, vec![]);
    assert_eq!(reasons(&handled), [RefusalReason::SequenceGap]);
}
