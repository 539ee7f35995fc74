//! What the host application publishes and subscribes to: its STATE
//! birth and will (Sparkplug 3.0: retained JSON on `spBv1.0/STATE/{host_id}`,
//! QoS 1), the rebirth request (`NCMD` with `Node Control/Rebirth` = true,
//! QoS 0) and the subscription of a group.

use std::fmt;

use prost::Message as _;
use stoker_domain::EpochMillis;

use crate::proto::Payload;
use crate::proto::payload::Metric;
use crate::proto::payload::metric::Value;
use crate::topic::{EdgeNodeId, NAMESPACE, is_valid_id};
use crate::value::datatype;

/// The metric a host sets to ask an edge node for a new NBIRTH and DBIRTHs.
pub const REBIRTH_METRIC: &str = "Node Control/Rebirth";

/// A message to publish: its topic and payload bytes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Command {
    /// The topic.
    pub topic: String,
    /// The payload.
    pub payload: Vec<u8>,
}

/// The NCMD asking `node` for a rebirth, at `now`: publish it at QoS 0,
/// not retained (specification: NCMD).
pub fn rebirth_command(node: &EdgeNodeId, now: EpochMillis) -> Command {
    // Epoch milliseconds before 1970 do not occur in `now`.
    let timestamp = u64::try_from(now.as_millis()).unwrap_or_default();
    let payload = Payload {
        timestamp: Some(timestamp),
        metrics: vec![Metric {
            name: Some(REBIRTH_METRIC.to_owned()),
            timestamp: Some(timestamp),
            datatype: Some(datatype::BOOLEAN),
            value: Some(Value::BooleanValue(true)),
            ..Metric::default()
        }],
        ..Payload::default()
    };
    Command {
        topic: format!("{NAMESPACE}/{}/NCMD/{}", node.group_id, node.edge_node_id),
        payload: payload.encode_to_vec(),
    }
}

/// Why a configured id cannot be a Sparkplug id.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{what} {value:?} is invalid: a non-empty UTF-8 string without '+', '/' or '#'")]
pub struct IdError {
    /// Which id (`group id`, `host id`).
    pub what: &'static str,
    /// The value (its first 80 characters).
    pub value: String,
}

fn check(what: &'static str, value: String) -> Result<String, IdError> {
    if is_valid_id(&value) {
        Ok(value)
    } else {
        Err(IdError {
            what,
            value: value.chars().take(80).collect(),
        })
    }
}

/// A Sparkplug group id the host follows (`SPARKPLUG_GROUPS`).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct GroupId(String);

impl GroupId {
    /// Parses a group id: non-empty, without `+`, `/` or `#`.
    pub fn parse(value: impl Into<String>) -> Result<Self, IdError> {
        check("group id", value.into()).map(Self)
    }

    /// The id.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The subscription that receives every message of the group:
    /// `spBv1.0/{group}/#` (a plain subscription: alias tables and `seq`
    /// need every message of an edge node in one place).
    pub fn subscription(&self) -> String {
        format!("{NAMESPACE}/{}/#", self.0)
    }
}

impl fmt::Display for GroupId {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        formatter.write_str(&self.0)
    }
}

/// A STATE message: publish it at QoS 1, retained (or register it as the will).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StateMessage {
    /// `spBv1.0/STATE/{host_id}`.
    pub topic: String,
    /// `{"online":…,"timestamp":…}`.
    pub payload: String,
}

/// The host application's id (`SPARKPLUG_HOST_ID`).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct HostId(String);

impl HostId {
    /// Parses a host id: non-empty, without `+`, `/` or `#`.
    pub fn parse(value: impl Into<String>) -> Result<Self, IdError> {
        check("host id", value.into()).map(Self)
    }

    /// The id.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// `spBv1.0/STATE/{host_id}`, which the host subscribes to and publishes on.
    pub fn state_topic(&self) -> String {
        format!("{NAMESPACE}/STATE/{}", self.0)
    }

    fn state(&self, online: bool, timestamp: EpochMillis) -> StateMessage {
        StateMessage {
            topic: self.state_topic(),
            payload: format!(
                "{{\"online\":{online},\"timestamp\":{}}}",
                timestamp.as_millis()
            ),
        }
    }

    /// The will to register in the MQTT CONNECT sent at `connect_time`:
    /// offline, with that time.
    pub fn will(&self, connect_time: EpochMillis) -> StateMessage {
        self.state(false, connect_time)
    }

    /// The birth to publish once subscribed after that CONNECT: online,
    /// with the will's timestamp (the specification requires the same).
    pub fn birth(&self, connect_time: EpochMillis) -> StateMessage {
        self.state(true, connect_time)
    }

    /// Offline at `now`: before a clean disconnect, or while the host
    /// cannot take data (edge nodes then store and forward).
    pub fn offline(&self, now: EpochMillis) -> StateMessage {
        self.state(false, now)
    }
}

impl fmt::Display for HostId {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        formatter.write_str(&self.0)
    }
}

/// A STATE payload as read back: whether the host is online, and the
/// timestamp (its connect time).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HostState {
    /// `online`.
    pub online: bool,
    /// `timestamp`, epoch milliseconds.
    pub timestamp: i64,
}

/// Reads a STATE payload, such as the host's own retained one (a will
/// delivered after this host's birth says offline, and the host then
/// publishes its birth again).
pub fn parse_state(payload: &[u8]) -> Result<HostState, String> {
    let value: serde_json::Value = serde_json::from_slice(payload)
        .map_err(|error| format!("a STATE payload is JSON: {error}"))?;
    let online = value
        .get("online")
        .and_then(serde_json::Value::as_bool)
        .ok_or("a STATE payload has a boolean \"online\"")?;
    let timestamp = value
        .get("timestamp")
        .and_then(serde_json::Value::as_i64)
        .ok_or("a STATE payload has a numeric \"timestamp\" (epoch milliseconds)")?;
    Ok(HostState { online, timestamp })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(millis: i64) -> EpochMillis {
        EpochMillis::from_millis(millis).unwrap()
    }

    #[test]
    fn rebirth_is_an_ncmd_with_node_control_rebirth_true() {
        let node = EdgeNodeId {
            group_id: "Plant 1".into(),
            edge_node_id: "gw-1".into(),
        };
        let command = rebirth_command(&node, at(1_733_565_600_000));
        assert_eq!(command.topic, "spBv1.0/Plant 1/NCMD/gw-1");
        let payload = Payload::decode(command.payload.as_slice()).unwrap();
        assert_eq!(payload.timestamp, Some(1_733_565_600_000));
        assert_eq!(payload.seq, None, "an NCMD carries no seq");
        let [metric] = payload.metrics.as_slice() else {
            panic!("one metric")
        };
        assert_eq!(metric.name.as_deref(), Some("Node Control/Rebirth"));
        assert_eq!(metric.datatype, Some(11));
        assert_eq!(metric.value, Some(Value::BooleanValue(true)));
        assert_eq!(metric.timestamp, Some(1_733_565_600_000));
    }

    #[test]
    fn state_birth_repeats_the_wills_timestamp() {
        let host = HostId::parse("stoker").unwrap();
        let will = host.will(at(1_700_000_000_123));
        let birth = host.birth(at(1_700_000_000_123));
        assert_eq!(will.topic, "spBv1.0/STATE/stoker");
        assert_eq!(birth.topic, will.topic);
        assert_eq!(
            will.payload,
            r#"{"online":false,"timestamp":1700000000123}"#
        );
        assert_eq!(
            birth.payload,
            r#"{"online":true,"timestamp":1700000000123}"#
        );
        assert_eq!(
            host.offline(at(5)).payload,
            r#"{"online":false,"timestamp":5}"#
        );
        assert_eq!(
            parse_state(birth.payload.as_bytes()),
            Ok(HostState {
                online: true,
                timestamp: 1_700_000_000_123
            })
        );
    }

    #[test]
    fn state_payloads_are_checked() {
        assert!(parse_state(b"ONLINE").unwrap_err().contains("JSON"));
        assert!(
            parse_state(br#"{"online":"yes","timestamp":1}"#)
                .unwrap_err()
                .contains("online")
        );
        assert!(
            parse_state(br#"{"online":true}"#)
                .unwrap_err()
                .contains("timestamp")
        );
    }

    #[test]
    fn ids_and_subscription() {
        assert_eq!(
            GroupId::parse("Plant 1").unwrap().subscription(),
            "spBv1.0/Plant 1/#"
        );
        for bad in ["", "a/b", "a+", "a#"] {
            assert!(GroupId::parse(bad).is_err(), "{bad}");
            assert!(HostId::parse(bad).is_err(), "{bad}");
        }
        assert_eq!(
            HostId::parse("a/b").unwrap_err().to_string(),
            "host id \"a/b\" is invalid: a non-empty UTF-8 string without '+', '/' or '#'"
        );
    }
}
