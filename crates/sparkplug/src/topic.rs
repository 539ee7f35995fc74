//! The Sparkplug topic namespace (specification chapter "Topics and
//! Messages"): `spBv1.0/{group_id}/{message_type}/{edge_node_id}[/{device_id}]`
//! and the host applications' `spBv1.0/STATE/{host_id}`.

use std::fmt;

/// The namespace element of every Sparkplug B topic.
pub const NAMESPACE: &str = "spBv1.0";

/// A Sparkplug message type of an edge node or device topic.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum MessageType {
    /// Birth certificate of an edge node.
    NBirth,
    /// Death certificate of an edge node (its MQTT will, or published before a clean disconnect).
    NDeath,
    /// Birth certificate of a device.
    DBirth,
    /// Death certificate of a device.
    DDeath,
    /// Data of an edge node.
    NData,
    /// Data of a device.
    DData,
    /// Command to an edge node.
    NCmd,
    /// Command to a device.
    DCmd,
}

impl MessageType {
    /// Every message type, in the specification's order.
    pub const ALL: [MessageType; 8] = [
        MessageType::NBirth,
        MessageType::NDeath,
        MessageType::DBirth,
        MessageType::DDeath,
        MessageType::NData,
        MessageType::DData,
        MessageType::NCmd,
        MessageType::DCmd,
    ];

    /// The topic element, e.g. `NBIRTH`.
    pub fn as_str(self) -> &'static str {
        match self {
            MessageType::NBirth => "NBIRTH",
            MessageType::NDeath => "NDEATH",
            MessageType::DBirth => "DBIRTH",
            MessageType::DDeath => "DDEATH",
            MessageType::NData => "NDATA",
            MessageType::DData => "DDATA",
            MessageType::NCmd => "NCMD",
            MessageType::DCmd => "DCMD",
        }
    }

    /// Whether the topic names a device (`DBIRTH`, `DDEATH`, `DDATA`, `DCMD`).
    pub fn is_device(self) -> bool {
        matches!(
            self,
            MessageType::DBirth | MessageType::DDeath | MessageType::DData | MessageType::DCmd
        )
    }

    fn parse(element: &str) -> Option<Self> {
        MessageType::ALL
            .into_iter()
            .find(|kind| kind.as_str() == element)
    }
}

impl fmt::Display for MessageType {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        formatter.write_str(self.as_str())
    }
}

/// A parsed Sparkplug B topic, borrowing its elements from the topic string.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Topic<'a> {
    /// An edge node or device message.
    Edge(EdgeTopic<'a>),
    /// A host application's `spBv1.0/STATE/{host_id}`.
    State {
        /// The host application's id.
        host_id: &'a str,
    },
}

/// The elements of an edge node or device topic.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EdgeTopic<'a> {
    /// The group id.
    pub group_id: &'a str,
    /// The message type.
    pub message_type: MessageType,
    /// The edge node id.
    pub edge_node_id: &'a str,
    /// The device id: present exactly for the device message types.
    pub device_id: Option<&'a str>,
}

/// Why a topic is not a Sparkplug B topic.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TopicError {
    /// The first element is not `spBv1.0`.
    #[error("topic {topic:?} is not Sparkplug B: its namespace is {namespace:?}, not \"spBv1.0\"")]
    Namespace {
        /// The topic (its first 120 characters).
        topic: String,
        /// Its first element.
        namespace: String,
    },
    /// Fewer elements than the message type needs.
    #[error("topic {topic:?} has {found} elements; {expected}")]
    ElementCount {
        /// The topic (its first 120 characters).
        topic: String,
        /// How many `/`-separated elements it has.
        found: usize,
        /// What the namespace requires, in words.
        expected: &'static str,
    },
    /// The third element is not one of the message types.
    #[error(
        "topic {topic:?} has message type {found:?}, not one of NBIRTH, NDEATH, DBIRTH, DDEATH, NDATA, DDATA, NCMD, DCMD or STATE"
    )]
    MessageType {
        /// The topic (its first 120 characters).
        topic: String,
        /// The third element.
        found: String,
    },
    /// An id element is empty or holds `+` or `#`.
    #[error("topic {topic:?} has an invalid {element}: {rule}")]
    Element {
        /// The topic (its first 120 characters).
        topic: String,
        /// Which element (`group_id`, `edge_node_id`, `device_id`, `host_id`).
        element: &'static str,
        /// What is wrong with it.
        rule: &'static str,
    },
}

fn excerpt(topic: &str) -> String {
    topic.chars().take(120).collect()
}

/// Checks an id element: a non-empty UTF-8 string without `+`, `/` or `#`
/// (the topic's own `/` already split it).
fn check_id(topic: &str, element: &'static str, value: &str) -> Result<(), TopicError> {
    let rule = if value.is_empty() {
        "it is empty"
    } else if value.contains(['+', '#']) {
        "it contains '+' or '#', which the namespace reserves"
    } else {
        return Ok(());
    };
    Err(TopicError::Element {
        topic: excerpt(topic),
        element,
        rule,
    })
}

/// Whether an id is valid as a group, edge node, device or host id: a
/// non-empty UTF-8 string without `+`, `/` or `#`.
pub fn is_valid_id(value: &str) -> bool {
    !value.is_empty() && !value.contains(['+', '/', '#'])
}

impl<'a> Topic<'a> {
    /// Parses a topic of the Sparkplug B namespace.
    ///
    /// ```
    /// use stoker_sparkplug::{MessageType, Topic};
    /// let Ok(Topic::Edge(topic)) = Topic::parse("spBv1.0/plant/DDATA/gw1/boiler 1") else { panic!() };
    /// assert_eq!(topic.message_type, MessageType::DData);
    /// assert_eq!(topic.device_id, Some("boiler 1"));
    /// assert_eq!(Topic::parse("spBv1.0/STATE/stoker"), Ok(Topic::State { host_id: "stoker" }));
    /// ```
    pub fn parse(topic: &'a str) -> Result<Self, TopicError> {
        let mut elements = topic.split('/');
        let namespace = elements.next().unwrap_or_default();
        if namespace != NAMESPACE {
            return Err(TopicError::Namespace {
                topic: excerpt(topic),
                namespace: namespace.chars().take(40).collect(),
            });
        }
        let rest: Vec<&'a str> = elements.collect();
        let found = rest.len() + 1;
        let count_error = |expected| TopicError::ElementCount {
            topic: excerpt(topic),
            found,
            expected,
        };
        match rest.as_slice() {
            ["STATE", host_id] => {
                check_id(topic, "host_id", host_id)?;
                Ok(Topic::State { host_id })
            }
            [_] | [] => Err(count_error(
                "a Sparkplug topic has namespace/group_id/message_type/edge_node_id[/device_id], or spBv1.0/STATE/host_id",
            )),
            [group_id, message_type, ids @ ..] => {
                let message_type =
                    MessageType::parse(message_type).ok_or_else(|| TopicError::MessageType {
                        topic: excerpt(topic),
                        found: message_type.chars().take(40).collect(),
                    })?;
                check_id(topic, "group_id", group_id)?;
                let (edge_node_id, device_id) = match (message_type.is_device(), ids) {
                    (false, [edge_node_id]) => (*edge_node_id, None),
                    (true, [edge_node_id, device_id]) => (*edge_node_id, Some(*device_id)),
                    (false, _) => {
                        return Err(count_error(
                            "an edge node message has 4: spBv1.0/group_id/message_type/edge_node_id",
                        ));
                    }
                    (true, _) => {
                        return Err(count_error(
                            "a device message has 5: spBv1.0/group_id/message_type/edge_node_id/device_id",
                        ));
                    }
                };
                check_id(topic, "edge_node_id", edge_node_id)?;
                if let Some(device_id) = device_id {
                    check_id(topic, "device_id", device_id)?;
                }
                Ok(Topic::Edge(EdgeTopic {
                    group_id,
                    message_type,
                    edge_node_id,
                    device_id,
                }))
            }
        }
    }
}

impl fmt::Display for EdgeTopic<'_> {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            formatter,
            "{NAMESPACE}/{}/{}/{}",
            self.group_id, self.message_type, self.edge_node_id
        )?;
        if let Some(device_id) = self.device_id {
            write!(formatter, "/{device_id}")?;
        }
        Ok(())
    }
}

/// An edge node: its group id and edge node id.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct EdgeNodeId {
    /// The group id.
    pub group_id: String,
    /// The edge node id.
    pub edge_node_id: String,
}

impl EdgeNodeId {
    /// The edge node of a topic.
    pub fn of(topic: &EdgeTopic<'_>) -> Self {
        Self {
            group_id: topic.group_id.to_owned(),
            edge_node_id: topic.edge_node_id.to_owned(),
        }
    }
}

impl fmt::Display for EdgeNodeId {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(formatter, "{}/{}", self.group_id, self.edge_node_id)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn edge(topic: &str) -> EdgeTopic<'_> {
        match Topic::parse(topic) {
            Ok(Topic::Edge(edge)) => edge,
            other => panic!("{topic}: {other:?}"),
        }
    }

    #[test]
    fn every_message_type_parses_and_prints_back() {
        for kind in MessageType::ALL {
            let topic = if kind.is_device() {
                format!("spBv1.0/Plant 1/{kind}/Gateway-A/Boiler 1")
            } else {
                format!("spBv1.0/Plant 1/{kind}/Gateway-A")
            };
            let parsed = edge(&topic);
            assert_eq!(parsed.group_id, "Plant 1");
            assert_eq!(parsed.message_type, kind);
            assert_eq!(parsed.edge_node_id, "Gateway-A");
            assert_eq!(parsed.device_id.is_some(), kind.is_device());
            assert_eq!(parsed.to_string(), topic);
        }
    }

    #[test]
    fn state_topic() {
        assert_eq!(
            Topic::parse("spBv1.0/STATE/stoker-1"),
            Ok(Topic::State {
                host_id: "stoker-1"
            })
        );
        // A group may be called STATE: four elements make it an edge topic.
        assert_eq!(edge("spBv1.0/STATE/NDATA/gw").group_id, "STATE");
    }

    #[test]
    fn other_namespaces_are_refused() {
        for topic in [
            "spAv1.0/g/NDATA/n",
            "sites/a/telemetry",
            "",
            "spBv1.1/g/NDATA/n",
        ] {
            assert!(
                matches!(Topic::parse(topic), Err(TopicError::Namespace { .. })),
                "{topic}"
            );
        }
    }

    #[test]
    fn element_counts_are_checked_per_message_type() {
        let cases = [
            ("spBv1.0", 1),
            ("spBv1.0/g", 2),
            ("spBv1.0/g/NDATA", 3),
            ("spBv1.0/g/NDATA/n/d", 5),
            ("spBv1.0/g/DDATA/n", 4),
            ("spBv1.0/g/DDATA/n/d/x", 6),
        ];
        for (topic, found) in cases {
            match Topic::parse(topic) {
                Err(TopicError::ElementCount { found: got, .. }) => {
                    assert_eq!(got, found, "{topic}")
                }
                other => panic!("{topic}: {other:?}"),
            }
        }
    }

    #[test]
    fn unknown_message_types_are_named() {
        let error = Topic::parse("spBv1.0/g/NMETA/n").unwrap_err();
        assert_eq!(
            error,
            TopicError::MessageType {
                topic: "spBv1.0/g/NMETA/n".into(),
                found: "NMETA".into()
            }
        );
        assert!(error.to_string().contains("\"NMETA\""));
        // Case matters.
        assert!(Topic::parse("spBv1.0/g/ndata/n").is_err());
    }

    #[test]
    fn empty_and_reserved_ids_are_refused_by_element() {
        let cases = [
            ("spBv1.0//NDATA/n", "group_id"),
            ("spBv1.0/g/NDATA/", "edge_node_id"),
            ("spBv1.0/g/DDATA/n/", "device_id"),
            ("spBv1.0/g+/NDATA/n", "group_id"),
            ("spBv1.0/g/NDATA/n#", "edge_node_id"),
            ("spBv1.0/STATE/", "host_id"),
        ];
        for (topic, which) in cases {
            match Topic::parse(topic) {
                Err(TopicError::Element { element, .. }) => assert_eq!(element, which, "{topic}"),
                other => panic!("{topic}: {other:?}"),
            }
        }
    }

    #[test]
    fn ids() {
        assert!(is_valid_id("Plant 1"));
        assert!(is_valid_id("Kessel-Haus_ü"));
        for bad in ["", "a/b", "a+", "#"] {
            assert!(!is_valid_id(bad), "{bad}");
        }
    }
}
