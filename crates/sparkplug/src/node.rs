//! One edge node's session as the host follows it: its birth's `bdSeq`,
//! the `seq` of its last message, the alias tables of its births, its
//! devices; and what each of its messages yields.
//!
//! Messages are taken in the order they arrive (a reorder timeout of
//! zero): one broker delivers an edge node's messages in order. A gap in
//! `seq`, data naming a metric no birth announced, or data before a birth
//! leave the host unsure of the edge node's state, so it refuses that
//! data, asks for a rebirth and refuses what follows until the birth.

use std::collections::HashMap;
use std::sync::Arc;

use stoker_domain::EpochMillis;

use crate::outcome::{Event, Handled, Ignored, Reading};
use crate::proto::Payload;
use crate::proto::payload::Metric;
use crate::refusal::{Refusal, RefusalReason};
use crate::table::{Lookup, MetricDef, Table, ambiguous_keys, describe, describe_datatype};
use crate::topic::{EdgeNodeId, EdgeTopic, MessageType};
use crate::value::{kind_of, metric_value};

/// The `bdSeq` metric's name.
const BD_SEQ: &str = "bdSeq";

#[derive(Debug, Default)]
enum Phase {
    /// No birth seen, or dead since.
    #[default]
    Offline,
    /// Born: messages are expected in `seq` order.
    Online { bd_seq: Option<u64>, seq: u8 },
    /// Born, but a message was missed or not understood: waiting for a new birth.
    Stale { bd_seq: Option<u64> },
}

#[derive(Debug, Default)]
struct Device {
    table: Table,
    online: bool,
}

/// One edge node's state.
#[derive(Debug, Default)]
pub(crate) struct EdgeNode {
    phase: Phase,
    table: Table,
    devices: HashMap<String, Device>,
    /// Sensor keys two of its metrics map to, with the words naming both.
    ambiguous: HashMap<stoker_domain::SensorKey, String>,
    last_rebirth_request: Option<EpochMillis>,
}

impl EdgeNode {
    pub(crate) fn is_online(&self) -> bool {
        matches!(self.phase, Phase::Online { .. })
    }

    /// Whether a rebirth may be requested now, and if so, notes it.
    pub(crate) fn may_request_rebirth(&mut self, now: EpochMillis, retry_millis: i64) -> bool {
        let due = self
            .last_rebirth_request
            .is_none_or(|last| now.as_millis().saturating_sub(last.as_millis()) >= retry_millis);
        if due {
            self.last_rebirth_request = Some(now);
        }
        due
    }

    /// A payload that does not decode: a death is ignored (it cannot be
    /// matched), anything else leaves the session unknown.
    pub(crate) fn undecodable(
        &mut self,
        topic: &EdgeTopic<'_>,
        detail: String,
        handled: &mut Handled,
    ) {
        if topic.message_type == MessageType::NDeath {
            handled.refuse(RefusalReason::MalformedPayload, detail);
            return;
        }
        self.go_stale();
        handled.refuse_and_rebirth(RefusalReason::MalformedPayload, detail);
    }

    pub(crate) fn handle(
        &mut self,
        topic: &EdgeTopic<'_>,
        id: &EdgeNodeId,
        payload: Payload,
        received: EpochMillis,
        handled: &mut Handled,
    ) {
        match topic.message_type {
            MessageType::NBirth => self.node_birth(id, payload, received, handled),
            MessageType::NDeath => self.node_death(id, &payload, received, handled),
            MessageType::DBirth | MessageType::DDeath | MessageType::NData | MessageType::DData => {
                if !self.in_sequence(topic, id, &payload, handled) {
                    return;
                }
                let device = topic.device_id.unwrap_or_default();
                match topic.message_type {
                    MessageType::DBirth => {
                        self.device_birth(id, device, payload, received, handled)
                    }
                    MessageType::DDeath => self.device_death(id, device, received, handled),
                    _ => self.data(topic, id, payload, received, handled),
                }
            }
            // Commands are ignored before their payload is decoded.
            MessageType::NCmd | MessageType::DCmd => {}
        }
    }

    /// The current birth's `bdSeq` (`None` offline or without one).
    fn bd_seq(&self) -> Option<u64> {
        match self.phase {
            Phase::Online { bd_seq, .. } | Phase::Stale { bd_seq } => bd_seq,
            Phase::Offline => None,
        }
    }

    fn go_stale(&mut self) {
        if let Phase::Online { bd_seq, .. } = self.phase {
            self.phase = Phase::Stale { bd_seq };
        }
    }

    /// Checks that the node is online and the message's `seq` follows the
    /// last one; otherwise refuses it, and asks for a rebirth.
    fn in_sequence(
        &mut self,
        topic: &EdgeTopic<'_>,
        id: &EdgeNodeId,
        payload: &Payload,
        handled: &mut Handled,
    ) -> bool {
        let last = match self.phase {
            Phase::Online { seq, .. } => seq,
            Phase::Offline => {
                handled.refuse_and_rebirth(
                    RefusalReason::BeforeBirth,
                    format!("{} of {id} before its NBIRTH", topic.message_type),
                );
                return false;
            }
            Phase::Stale { .. } => {
                handled.refuse_and_rebirth(
                    RefusalReason::AwaitingRebirth,
                    format!(
                        "{} of {id} while its rebirth is awaited (a message was missed or not understood)",
                        topic.message_type
                    ),
                );
                return false;
            }
        };
        let expected = last.wrapping_add(1);
        match payload.seq {
            Some(seq) if seq == u64::from(expected) => {
                if let Phase::Online { seq: current, .. } = &mut self.phase {
                    *current = expected;
                }
                true
            }
            Some(seq) => {
                self.go_stale();
                handled.refuse_and_rebirth(
                    RefusalReason::SequenceGap,
                    format!(
                        "{} of {id} has seq {seq} after {last} (expected {expected}): a message was missed",
                        topic.message_type
                    ),
                );
                false
            }
            None => {
                self.go_stale();
                handled.refuse_and_rebirth(
                    RefusalReason::MalformedPayload,
                    format!("{} of {id} has no seq", topic.message_type),
                );
                false
            }
        }
    }

    fn node_birth(
        &mut self,
        id: &EdgeNodeId,
        payload: Payload,
        received: EpochMillis,
        handled: &mut Handled,
    ) {
        let seq = match payload.seq.map(u8::try_from) {
            Some(Ok(seq)) => seq,
            Some(Err(_)) | None => {
                self.go_stale();
                let found = payload
                    .seq
                    .map_or_else(|| "none".to_owned(), |seq| seq.to_string());
                handled.refuse_and_rebirth(
                    RefusalReason::MalformedPayload,
                    format!("NBIRTH of {id} has seq {found}, not 0 to 255"),
                );
                return;
            }
        };
        let bd_seq = bd_seq_of(&payload.metrics);
        let (table, refusals) = Table::from_birth(&payload.metrics, None);
        handled.refusals.extend(refusals);
        self.table = table;
        // A new session: its devices are offline until their DBIRTHs, and
        // its sensors are those its new births name.
        self.devices.clear();
        self.phase = Phase::Online { bd_seq, seq };
        self.last_rebirth_request = None;
        self.recompute_ambiguity();
        handled.events.push(Event::NodeBirth {
            node: id.clone(),
            bd_seq,
            at: received,
            metrics: self.table.announced(),
        });
        // The table holds the birth's named metrics, in order.
        let named = payload
            .metrics
            .iter()
            .filter(|metric| metric.name.is_some());
        for (metric, def) in named.zip(&self.table.defs) {
            reading(
                def,
                metric,
                None,
                &payload,
                received,
                &self.ambiguous,
                handled,
            );
        }
    }

    fn node_death(
        &mut self,
        id: &EdgeNodeId,
        payload: &Payload,
        received: EpochMillis,
        handled: &mut Handled,
    ) {
        let death = bd_seq_of(&payload.metrics);
        let current = match self.phase {
            Phase::Online { bd_seq, .. } | Phase::Stale { bd_seq } => bd_seq,
            Phase::Offline => {
                handled.ignored = Some(Ignored::StaleDeath {
                    detail: format!(
                        "NDEATH of {id} (bdSeq {}) while it is not online",
                        show(death)
                    ),
                    bd_seq: death,
                });
                return;
            }
        };
        if death != current {
            handled.ignored = Some(Ignored::StaleDeath {
                detail: format!(
                    "NDEATH of {id} has bdSeq {}, the current birth's is {}: an earlier session's death",
                    show(death),
                    show(current)
                ),
                bd_seq: death,
            });
            return;
        }
        let mut devices: Vec<String> = self
            .devices
            .iter_mut()
            .filter(|(_, device)| device.online)
            .map(|(name, device)| {
                device.online = false;
                name.clone()
            })
            .collect();
        devices.sort();
        self.phase = Phase::Offline;
        handled.events.push(Event::NodeDeath {
            node: id.clone(),
            bd_seq: death,
            at: received,
            devices,
        });
    }

    fn device_birth(
        &mut self,
        id: &EdgeNodeId,
        device: &str,
        payload: Payload,
        received: EpochMillis,
        handled: &mut Handled,
    ) {
        let (table, refusals) = Table::from_birth(&payload.metrics, Some(device));
        handled.refusals.extend(refusals);
        let metrics = table.announced();
        self.devices.insert(
            device.to_owned(),
            Device {
                table,
                online: true,
            },
        );
        self.recompute_ambiguity();
        handled.events.push(Event::DeviceBirth {
            node: id.clone(),
            device: device.to_owned(),
            bd_seq: self.bd_seq(),
            at: received,
            metrics,
        });
        let Some(born) = self.devices.get(device) else {
            return;
        };
        let named = payload
            .metrics
            .iter()
            .filter(|metric| metric.name.is_some());
        for (metric, def) in named.zip(&born.table.defs) {
            reading(
                def,
                metric,
                Some(device),
                &payload,
                received,
                &self.ambiguous,
                handled,
            );
        }
    }

    fn device_death(
        &mut self,
        id: &EdgeNodeId,
        device: &str,
        received: EpochMillis,
        handled: &mut Handled,
    ) {
        let bd_seq = self.bd_seq();
        match self.devices.get_mut(device) {
            Some(known) if known.online => {
                known.online = false;
                handled.events.push(Event::DeviceDeath {
                    node: id.clone(),
                    device: device.to_owned(),
                    bd_seq,
                    at: received,
                });
            }
            _ => {
                handled.ignored = Some(Ignored::StaleDeviceDeath(format!(
                    "DDEATH of device {device:?} of {id}, which is not online"
                )));
            }
        }
    }

    /// The table of the node (`None`) or of an online device.
    fn table_of(&self, device: Option<&str>) -> Option<&Table> {
        match device {
            None => Some(&self.table),
            Some(device) => self
                .devices
                .get(device)
                .filter(|known| known.online)
                .map(|known| &known.table),
        }
    }

    fn data(
        &mut self,
        topic: &EdgeTopic<'_>,
        id: &EdgeNodeId,
        payload: Payload,
        received: EpochMillis,
        handled: &mut Handled,
    ) {
        let device = topic.device_id;
        let Some(table) = self.table_of(device) else {
            self.go_stale();
            handled.refuse_and_rebirth(
                RefusalReason::BeforeBirth,
                format!(
                    "DDATA of device {:?} of {id} before its DBIRTH",
                    device.unwrap_or_default()
                ),
            );
            return;
        };
        // Every metric must be one a birth announced before any is taken:
        // an unknown alias means the tables are not the edge node's.
        let unknown = payload.metrics.iter().find_map(|metric| {
            match (table.lookup(metric), metric.alias, &metric.name) {
                (Lookup::Unknown, Some(alias), _) => Some(format!("alias {alias}")),
                (Lookup::Unknown, None, Some(name)) => Some(format!("metric {name:?}")),
                _ => None,
            }
        });
        if let Some(what) = unknown {
            let whose = device.map_or_else(
                || "NBIRTH".to_owned(),
                |device| format!("DBIRTH of device {device:?}"),
            );
            self.go_stale();
            handled.refuse_and_rebirth(
                RefusalReason::UnknownMetric,
                format!(
                    "{} of {id} names {what}, which its {whose} did not announce",
                    topic.message_type
                ),
            );
            return;
        }
        for (index, metric) in payload.metrics.iter().enumerate() {
            match table.lookup(metric) {
                Lookup::Found(def) => {
                    reading(
                        def,
                        metric,
                        device,
                        &payload,
                        received,
                        &self.ambiguous,
                        handled,
                    );
                }
                Lookup::Duplicate(detail) => handled.refusals.push(Refusal::metric(
                    RefusalReason::AmbiguousMetric,
                    metric
                        .alias
                        .map_or_else(String::new, |alias| format!("alias {alias}")),
                    detail.to_owned(),
                )),
                Lookup::Unknown => handled.refuse(
                    RefusalReason::MalformedPayload,
                    format!(
                        "{} of {id}: metric #{index} has neither alias nor name",
                        topic.message_type
                    ),
                ),
            }
        }
    }

    fn recompute_ambiguity(&mut self) {
        let devices = self
            .devices
            .iter()
            .map(|(name, device)| (Some(name.as_str()), &device.table));
        self.ambiguous = ambiguous_keys(std::iter::once((None, &self.table)).chain(devices));
    }
}

fn show(bd_seq: Option<u64>) -> String {
    bd_seq.map_or_else(|| "none".to_owned(), |bd_seq| bd_seq.to_string())
}

/// The `bdSeq` metric's value (any integer field).
fn bd_seq_of(metrics: &[Metric]) -> Option<u64> {
    use crate::proto::payload::metric::Value;
    metrics
        .iter()
        .find(|metric| metric.name.as_deref() == Some(BD_SEQ))
        .and_then(|metric| match metric.value {
            Some(Value::LongValue(long)) => Some(long),
            Some(Value::IntValue(int)) => Some(u64::from(int)),
            _ => None,
        })
}

/// The reading a metric of `def` yields, or the refusal saying why none.
fn reading(
    def: &MetricDef,
    metric: &Metric,
    device: Option<&str>,
    payload: &Payload,
    received: EpochMillis,
    ambiguous: &HashMap<stoker_domain::SensorKey, String>,
    handled: &mut Handled,
) {
    let name = &def.name;
    let refuse = |handled: &mut Handled, reason, detail: String| {
        handled
            .refusals
            .push(Refusal::metric(reason, name.to_string(), detail));
    };
    let sensor = match &def.sensor {
        // Protocol metrics are not readings.
        None => return,
        Some(Err(error)) => {
            return refuse(handled, RefusalReason::InvalidMetricName, error.to_string());
        }
        Some(Ok(sensor)) => sensor,
    };
    if !ambiguous.is_empty()
        && let Some(detail) = ambiguous.get(&**sensor)
    {
        return refuse(handled, RefusalReason::AmbiguousMetric, detail.clone());
    }
    // Named only in a refusal: a reading costs no formatting.
    let what = || describe(device, name);
    if metric.is_transient == Some(true) {
        return refuse(
            handled,
            RefusalReason::TransientMetric,
            format!("{} is transient: not for a historian", what()),
        );
    }
    if metric.is_null == Some(true) {
        return refuse(
            handled,
            RefusalReason::NullValue,
            format!("{} is null", what()),
        );
    }
    let datatype = match metric.datatype {
        Some(datatype) if datatype != def.datatype => {
            return refuse(
                handled,
                RefusalReason::InvalidValue,
                format!(
                    "{} is sent as {}, but its birth announced {}",
                    what(),
                    describe_datatype(datatype),
                    describe_datatype(def.datatype)
                ),
            );
        }
        _ => def.datatype,
    };
    if let Err(detail) = kind_of(datatype) {
        return refuse(
            handled,
            RefusalReason::UnsupportedDatatype,
            format!("{}: {detail}", what()),
        );
    }
    let value = match metric_value(datatype, metric.value.as_ref()) {
        Ok(value) => value,
        Err(detail) => {
            return refuse(
                handled,
                RefusalReason::InvalidValue,
                format!("{}: {detail}", what()),
            );
        }
    };
    let is_historical = metric.is_historical == Some(true);
    let timestamp = match metric.timestamp.or(payload.timestamp) {
        Some(millis) => match i64::try_from(millis)
            .ok()
            .and_then(|millis| EpochMillis::from_millis(millis).ok())
        {
            Some(timestamp) => timestamp,
            None => {
                return refuse(
                    handled,
                    RefusalReason::InvalidTimestamp,
                    format!(
                        "{} has timestamp {millis}, outside the years 1677 to 2262",
                        what()
                    ),
                );
            }
        },
        None if is_historical => {
            return refuse(
                handled,
                RefusalReason::InvalidTimestamp,
                format!(
                    "{} is historical but neither it nor its payload has a timestamp",
                    what()
                ),
            );
        }
        None => received,
    };
    handled.readings.push(Reading {
        sensor: Arc::clone(sensor),
        metric: Arc::clone(name),
        timestamp,
        value,
        is_historical,
    });
}
