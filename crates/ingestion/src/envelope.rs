//! What travels from intake to the writer and back: the message
//! ([`Envelope`], [`Target`], and for line protocol the [`LineWrite`] it
//! came in as), its acknowledgement handle ([`PendingAck`], sent through an
//! [`Acker`]) and the HTTP answer ([`Receipt`]).
//!
//! `mqtt` and the HTTP intake make envelopes, `queue` carries them, the
//! `writer` consumes them and settles their acknowledgements and
//! receipts: these types sit below all three.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use bytes::Bytes;
use stoker_domain::EpochMillis;
use tokio::sync::{mpsc, oneshot};

use crate::Reason;
use crate::journal::Source;

/// Which topic (or route) a message came in on.
#[derive(Debug, Clone)]
pub(crate) enum Target {
    /// `sites/{site}/telemetry`.
    Telemetry { site: String },
    /// `sites/{site}/sensors/{sensor}`.
    Sensor { site: String, sensor: String },
    /// A topic outside the layout.
    Unknown { topic: String },
    /// An InfluxDB-compatible write: line protocol, or why its body could
    /// not be read.
    Lines {
        write: LineWrite,
        refused: Option<BodyRefusal>,
    },
    /// A Sparkplug B message the host decoded (`sparkplug`).
    Sparkplug(Box<Decoded>),
}

/// A Sparkplug B message as the host application decoded it: its readings
/// and the protocol's refusals, and the site its gateway is bound to.
#[derive(Debug, Clone)]
pub(crate) struct Decoded {
    /// The topic it came on.
    pub topic: String,
    /// The gateway (group and edge node) that sent it; none when its topic
    /// names none (refused as `invalid_topic`).
    pub gateway: Option<stoker_sparkplug::EdgeNodeId>,
    /// The site the gateway is bound to; none: its readings are refused.
    pub site: Option<stoker_domain::SiteSlug>,
    pub readings: Vec<stoker_sparkplug::Reading>,
    pub refusals: Vec<stoker_sparkplug::Refusal>,
}

/// Why a line-protocol body was refused before it could be read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BodyRefusal {
    /// Over the limit: `length` bytes at least (declared, or decompressed
    /// so far).
    TooLarge {
        /// The body's length, or as much of it as was read.
        length: u64,
    },
    /// Its `Content-Encoding` cannot be decoded: not one Stoker takes
    /// (identity, gzip), or a gzip body that does not decompress.
    Undecodable {
        /// What is wrong, precisely.
        detail: String,
    },
}

/// How a line-protocol body is read: the InfluxDB-compatible write it came
/// in as (DESIGN.md, "InfluxDB-compatible writes").
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LineWrite {
    /// The route, as recorded with a refusal (`/api/v2/write`, `/write`).
    pub route: &'static str,
    /// The bucket (2.x) or database (1.x): the site of every line without
    /// a `site` tag.
    pub site: String,
    /// The unit of the lines' timestamps.
    pub precision: stoker_timeseries::line::Precision,
    /// A tag whose value prefixes each field's key (`name=b1`,
    /// `steam_pressure` → `b1_steam_pressure`), when the write names one.
    pub sensor_prefix_tag: Option<String>,
    /// The sites the write's API key may write; `None`: every site. A
    /// line of another site is refused as `forbidden_site`.
    pub sites: Option<Vec<String>>,
}

impl Target {
    /// The site as named in the topic or route (not validated).
    pub(crate) fn site(&self) -> &str {
        match self {
            Target::Telemetry { site } | Target::Sensor { site, .. } => site,
            Target::Lines { write, .. } => &write.site,
            Target::Sparkplug(decoded) => decoded.site.as_ref().map_or("", |site| site.as_str()),
            Target::Unknown { .. } => "",
        }
    }

    /// The topic, as recorded with a refusal.
    pub(crate) fn describe(&self) -> String {
        match self {
            Target::Telemetry { site } => format!("sites/{site}/telemetry"),
            Target::Sensor { site, sensor } => format!("sites/{site}/sensors/{sensor}"),
            Target::Unknown { topic } => topic.clone(),
            Target::Lines { write, .. } => format!("POST {} ({})", write.route, write.site),
            Target::Sparkplug(decoded) => decoded.topic.clone(),
        }
    }
}

/// One message on its way to storage.
#[derive(Debug)]
pub(crate) struct Envelope {
    pub source: Source,
    pub target: Target,
    pub payload: Bytes,
    pub received: EpochMillis,
    /// Set for QoS 1 messages: acknowledged once durable.
    pub ack: Option<PendingAck>,
    /// Set for HTTP requests: answered once durable.
    pub reply: Option<oneshot::Sender<Receipt>>,
    /// Set when an HTTP body was refused unread for its declared length.
    pub oversized: Option<u64>,
}

impl Envelope {
    /// The first bytes of the payload as recorded with a refusal: as text,
    /// or for a Sparkplug B (protobuf) payload in hexadecimal.
    pub(crate) fn payload_excerpt(&self) -> String {
        match &self.target {
            Target::Sparkplug(_) => {
                let head = &self.payload[..self.payload.len().min(128)];
                let hex: String = head.iter().map(|byte| format!("{byte:02x}")).collect();
                format!("protobuf hex {hex}")
            }
            _ => crate::journal::excerpt(&self.payload),
        }
    }
}

/// What became of one message, for the HTTP answer.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Receipt {
    /// Readings stored.
    pub accepted: usize,
    /// Readings (or the whole message) refused.
    pub refused: Vec<Refused>,
    /// Whether the message as a whole was refused (malformed, unknown site…).
    pub message_refused: bool,
}

/// One refusal in a [`Receipt`].
#[derive(Debug, Clone, PartialEq)]
pub struct Refused {
    /// The sensor as named, when the refusal is about one reading.
    pub sensor: Option<String>,
    /// Why.
    pub reason: Reason,
    /// A precise explanation.
    pub detail: String,
}

/// A QoS 1 message waiting for its acknowledgement, tagged with the
/// connection it arrived on.
#[derive(Debug)]
pub(crate) struct PendingAck {
    pub pkid: u16,
    pub connection: u64,
}

/// What the writing half of the broker connection sends.
#[derive(Debug)]
pub(crate) enum Command {
    Ack(PendingAck),
    Disconnect,
}

/// Sends acknowledgements and the final disconnect. Never waits: the
/// connection's writing half takes them in bulk.
#[derive(Debug, Clone)]
pub(crate) struct Acker {
    commands: mpsc::UnboundedSender<Command>,
    connection: Arc<AtomicU64>,
}

impl Acker {
    /// A handle on the connection whose writing half reads `commands` and
    /// whose current number is `connection`.
    pub(crate) fn new(
        commands: mpsc::UnboundedSender<Command>,
        connection: Arc<AtomicU64>,
    ) -> Self {
        Self {
            commands,
            connection,
        }
    }

    /// Acknowledges a message, unless it arrived on an earlier connection:
    /// its packet id means nothing on the new one (the broker redelivers the
    /// message, and that copy is acknowledged). Returns whether it was sent.
    pub(crate) fn ack(&self, pending: PendingAck) -> bool {
        pending.connection == self.connection.load(Ordering::Acquire)
            && self.commands.send(Command::Ack(pending)).is_ok()
    }

    /// Ends the session cleanly after every acknowledgement already given.
    pub(crate) fn disconnect(&self) {
        let _ = self.commands.send(Command::Disconnect);
    }
}
