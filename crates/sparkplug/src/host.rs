//! The host application's view of every edge node: one call per received
//! message ([`Host::handle`]) returns its readings, refusals, events and
//! the rebirth request to publish, if any.

use std::collections::HashMap;

use prost::Message as _;
use stoker_domain::EpochMillis;

use crate::messages::rebirth_command;
use crate::node::EdgeNode;
use crate::outcome::{Handled, Ignored, RebirthRequest};
use crate::proto::Payload;
use crate::refusal::RefusalReason;
use crate::topic::{EdgeNodeId, EdgeTopic, MessageType, Topic};

/// The `uuid` of a payload whose body is another payload, compressed
/// (Tahu's clients' `compress` option).
const COMPRESSED: &str = "SPBV1.0_COMPRESSED";

/// Settings of the host application's protocol state.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HostSettings {
    /// How long after a rebirth request the host asks the same edge node
    /// again while its birth has not come (milliseconds).
    pub rebirth_retry_millis: i64,
}

impl Default for HostSettings {
    fn default() -> Self {
        Self {
            rebirth_retry_millis: 10_000,
        }
    }
}

/// Every edge node's state as one host application sees it.
///
/// ```
/// use stoker_domain::EpochMillis;
/// use stoker_sparkplug::{Host, HostSettings, RefusalReason};
/// let mut host = Host::new(HostSettings::default());
/// // Data before any birth: refused, and a rebirth is requested.
/// let handled = host.handle("spBv1.0/plant/NDATA/gw1", &[], EpochMillis::now());
/// assert_eq!(handled.refusals[0].reason, RefusalReason::BeforeBirth);
/// assert_eq!(handled.rebirth.unwrap().command.topic, "spBv1.0/plant/NCMD/gw1");
/// ```
#[derive(Debug, Default)]
pub struct Host {
    settings: HostSettings,
    /// By group id, then edge node id (looked up by `&str`, no allocation).
    nodes: HashMap<String, HashMap<String, EdgeNode>>,
}

impl Host {
    /// A host that has seen no message yet.
    pub fn new(settings: HostSettings) -> Self {
        Self {
            settings,
            nodes: HashMap::new(),
        }
    }

    /// Forgets every edge node, as after the host's own broker connection
    /// was lost: messages may have been missed, so each edge node's next
    /// data asks for a rebirth.
    pub fn reset(&mut self) {
        self.nodes.clear();
    }

    /// Whether an edge node is online (born, and not dead since).
    pub fn is_online(&self, group_id: &str, edge_node_id: &str) -> bool {
        self.nodes
            .get(group_id)
            .and_then(|nodes| nodes.get(edge_node_id))
            .is_some_and(EdgeNode::is_online)
    }

    /// Handles one message received on `topic`, at `received`.
    pub fn handle(&mut self, topic: &str, payload: &[u8], received: EpochMillis) -> Handled {
        let mut handled = Handled::default();
        let edge = match Topic::parse(topic) {
            Ok(Topic::Edge(edge)) => edge,
            Ok(Topic::State { host_id }) => {
                handled.ignored = Some(Ignored::HostState {
                    host_id: host_id.to_owned(),
                });
                return handled;
            }
            Err(error) => {
                handled.refuse(RefusalReason::InvalidTopic, error.to_string());
                return handled;
            }
        };
        let id = EdgeNodeId::of(&edge);
        if matches!(edge.message_type, MessageType::NCmd | MessageType::DCmd) {
            handled.node = Some(id);
            handled.ignored = Some(Ignored::Command);
            return handled;
        }
        let retry_millis = self.settings.rebirth_retry_millis;
        let node = self.node_mut(&edge);
        match Payload::decode(payload) {
            Ok(decoded) if decoded.uuid.as_deref() == Some(COMPRESSED) => {
                // Its seq is inside the compressed body: the next message's
                // seq shows whether one was missed.
                handled.refuse(
                    RefusalReason::MalformedPayload,
                    format!(
                        "{} of {id} is compressed (uuid {COMPRESSED}): Stoker reads uncompressed Sparkplug B payloads only",
                        edge.message_type
                    ),
                );
            }
            Ok(decoded) => node.handle(&edge, &id, decoded, received, &mut handled),
            Err(error) => {
                let detail = format!(
                    "{} of {id} is not a Sparkplug B payload: {error}",
                    edge.message_type
                );
                node.undecodable(&edge, detail, &mut handled);
            }
        }
        if let Some(reason) = handled.wants_rebirth
            && self
                .node_mut(&edge)
                .may_request_rebirth(received, retry_millis)
        {
            handled.rebirth = Some(RebirthRequest {
                command: rebirth_command(&id, received),
                node: id.clone(),
                reason,
            });
        }
        handled.node = Some(id);
        handled
    }

    fn node_mut(&mut self, edge: &EdgeTopic<'_>) -> &mut EdgeNode {
        self.nodes
            .entry(edge.group_id.to_owned())
            .or_default()
            .entry(edge.edge_node_id.to_owned())
            .or_default()
    }
}
