//! The Sparkplug B host application's protocol core (Eclipse Sparkplug
//! 3.0), without I/O: ingestion feeds it the messages it receives and
//! publishes what it returns.
//!
//! - [`proto`]: the payload types, generated from the vendored
//!   `proto/sparkplug_b.proto` at build time (prost, with protox as the
//!   compiler: no `protoc` needed).
//! - [`Topic`]: the namespace, `spBv1.0/{group}/{type}/{edge_node}[/{device}]`
//!   and `spBv1.0/STATE/{host_id}`, with precise errors.
//! - [`Host`]: each edge node's session: the alias tables of its NBIRTH and
//!   DBIRTHs, `bdSeq` (an NDEATH of an earlier session is ignored), `seq`
//!   (a gap, an unknown alias or data before a birth refuse the data and
//!   ask for a rebirth, never a guess), and per message its [`Reading`]s
//!   (sensor key, timestamp, typed value, `is_historical`), [`Refusal`]s,
//!   online/offline [`Event`]s and the [`RebirthRequest`] to publish.
//! - [`sensor_key`]: DESIGN.md's mapping of a metric to a sensor key;
//!   [`MetricValue`] and [`kind_of`]: datatypes to sensor kinds.
//! - [`HostId`], [`GroupId`]: the host's STATE birth, will and offline
//!   message, and a group's subscription; [`rebirth_command`].
//!
//! Only this crate knows Sparkplug's wire format.
//!
//! ```
//! use prost::Message;
//! use stoker_domain::EpochMillis;
//! use stoker_sparkplug::proto::{Payload, payload::{Metric, metric::Value}};
//! use stoker_sparkplug::{Event, Host, HostSettings, MetricValue};
//!
//! let metric = |name: Option<&str>, alias, value| Metric {
//!     name: name.map(str::to_owned), alias: Some(alias), datatype: Some(10),
//!     value: Some(value), ..Metric::default()
//! };
//! let birth = Payload {
//!     timestamp: Some(1_733_565_600_000), seq: Some(0),
//!     metrics: vec![
//!         Metric { name: Some("bdSeq".into()), datatype: Some(8), value: Some(Value::LongValue(3)), ..Metric::default() },
//!         metric(Some("Flue Temp"), 1, Value::DoubleValue(180.0)),
//!     ],
//!     ..Payload::default()
//! };
//! let data = Payload {
//!     timestamp: Some(1_733_565_601_000), seq: Some(1),
//!     metrics: vec![metric(None, 1, Value::DoubleValue(181.2))],
//!     ..Payload::default()
//! };
//! let mut host = Host::new(HostSettings::default());
//! let now = EpochMillis::now();
//! let born = host.handle("spBv1.0/plant/NBIRTH/gw1", &birth.encode_to_vec(), now);
//! assert!(matches!(born.events[0], Event::NodeBirth { bd_seq: Some(3), .. }));
//! let handled = host.handle("spBv1.0/plant/NDATA/gw1", &data.encode_to_vec(), now);
//! assert_eq!(handled.readings[0].sensor.as_str(), "flue_temp");
//! assert_eq!(handled.readings[0].value, MetricValue::Number(181.2));
//! assert_eq!(handled.readings[0].timestamp.as_millis(), 1_733_565_601_000);
//! ```

mod host;
mod key;
mod messages;
mod node;
mod outcome;
pub mod proto;
mod refusal;
mod table;
mod topic;
mod value;

pub use host::{Host, HostSettings};
pub use key::{KeyError, is_protocol_metric, sensor_key};
pub use messages::{
    Command, GroupId, HostId, HostState, IdError, REBIRTH_METRIC, StateMessage, parse_state,
    rebirth_command,
};
pub use outcome::{Event, Handled, Ignored, Reading, RebirthRequest};
pub use refusal::{Refusal, RefusalReason};
pub use table::Announced;
pub use topic::{EdgeNodeId, EdgeTopic, MessageType, NAMESPACE, Topic, TopicError, is_valid_id};
pub use value::{Kind, MetricValue, datatype, datatype_by_name, datatype_name, kind_of};

#[cfg(test)]
mod tests;
