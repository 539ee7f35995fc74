//! What one message yields ([`Handled`]): readings, refusals, events,
//! the rebirth to request, or why it was ignored.

use std::sync::Arc;

use stoker_domain::{EpochMillis, SensorKey};

use crate::messages::Command;
use crate::refusal::{Refusal, RefusalReason};
use crate::table::Announced;
use crate::topic::EdgeNodeId;
use crate::value::MetricValue;

/// A metric value a data or birth message carries for a sensor.
#[derive(Debug, Clone, PartialEq)]
pub struct Reading {
    /// The sensor key (DESIGN.md's mapping of the device and metric name),
    /// shared with the alias table.
    pub sensor: Arc<SensorKey>,
    /// The metric's Sparkplug name, for messages.
    pub metric: Arc<str>,
    /// The metric's timestamp, else the payload's, else the receive time.
    pub timestamp: EpochMillis,
    /// The value, typed by the metric's datatype.
    pub value: MetricValue,
    /// A historical value (store and forward): stored, but not a current value.
    pub is_historical: bool,
}

/// An edge node or device coming online or going offline.
#[derive(Debug, Clone, PartialEq)]
pub enum Event {
    /// An NBIRTH: the edge node is online, with a new session (its devices
    /// are offline until their DBIRTHs).
    NodeBirth {
        /// The edge node.
        node: EdgeNodeId,
        /// The birth's `bdSeq`.
        bd_seq: Option<u64>,
        /// When the birth was received.
        at: EpochMillis,
        /// The metrics it announced (protocol metrics left out).
        metrics: Vec<Announced>,
    },
    /// An NDEATH matching the current birth: the edge node and all its
    /// devices are offline.
    NodeDeath {
        /// The edge node.
        node: EdgeNodeId,
        /// The death's `bdSeq` (the birth's).
        bd_seq: Option<u64>,
        /// When the death was received.
        at: EpochMillis,
        /// The devices that were online until then.
        devices: Vec<String>,
    },
    /// A DBIRTH: the device is online.
    DeviceBirth {
        /// The edge node.
        node: EdgeNodeId,
        /// The device id.
        device: String,
        /// The `bdSeq` of its edge node's current birth: a record of the
        /// gateway's state tells by it whether the device's birth belongs
        /// to the session it holds.
        bd_seq: Option<u64>,
        /// When the birth was received.
        at: EpochMillis,
        /// The metrics it announced (protocol metrics left out).
        metrics: Vec<Announced>,
    },
    /// A DDEATH: the device is offline (its edge node stays online).
    DeviceDeath {
        /// The edge node.
        node: EdgeNodeId,
        /// The device id.
        device: String,
        /// The `bdSeq` of its edge node's current birth (a DDEATH carries
        /// none): a record of the gateway's state ignores the death of a
        /// device of another session, as it ignores a stale NDEATH.
        bd_seq: Option<u64>,
        /// When the death was received.
        at: EpochMillis,
    },
}

/// A message that carries nothing for the host to store or act on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Ignored {
    /// An NDEATH whose `bdSeq` is not the current birth's (a will delivered
    /// after the next birth), or of an edge node that is not online.
    StaleDeath {
        /// What makes it stale.
        detail: String,
        /// The death's `bdSeq`: a host that took over holds no session of
        /// the edge node, and its records may still say online; this lets
        /// them tell an earlier session's will from the current one's.
        bd_seq: Option<u64>,
    },
    /// A DDEATH of a device that is not online.
    StaleDeviceDeath(String),
    /// An NCMD or DCMD (this host's own, or another host's).
    Command,
    /// A host application's STATE message.
    HostState {
        /// Whose.
        host_id: String,
    },
}

/// A rebirth the host asks of an edge node: publish `command` (QoS 0, not retained).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RebirthRequest {
    /// The edge node asked.
    pub node: EdgeNodeId,
    /// What made the host ask (the refusal of the message that did).
    pub reason: RefusalReason,
    /// The NCMD to publish: `Node Control/Rebirth` = true.
    pub command: Command,
}

/// What one message yields.
#[derive(Debug, Default, Clone, PartialEq)]
pub struct Handled {
    /// The edge node the message concerns, when its topic names one.
    pub node: Option<EdgeNodeId>,
    /// Readings to store.
    pub readings: Vec<Reading>,
    /// The message or the metrics of it that yield no reading, and why.
    pub refusals: Vec<Refusal>,
    /// Edge nodes and devices going online or offline.
    pub events: Vec<Event>,
    /// A rebirth to request.
    pub rebirth: Option<RebirthRequest>,
    /// Why the message was ignored, when it was.
    pub ignored: Option<Ignored>,
    /// The refusal that calls for a rebirth (whether one is requested now
    /// depends on the last request's time).
    pub(crate) wants_rebirth: Option<RefusalReason>,
}

impl Handled {
    pub(crate) fn refuse(&mut self, reason: RefusalReason, detail: impl Into<String>) {
        self.refusals.push(Refusal::message(reason, detail));
    }

    /// Refuses the message and asks the edge node for a rebirth: the
    /// host's picture of it is no longer known to be right.
    pub(crate) fn refuse_and_rebirth(&mut self, reason: RefusalReason, detail: impl Into<String>) {
        self.refuse(reason, detail);
        self.wants_rebirth.get_or_insert(reason);
    }
}
