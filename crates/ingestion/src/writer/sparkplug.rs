//! A Sparkplug B message the host decoded, into the pending batch: its
//! readings through the same checks as every reading (`validate`'s
//! `accept_readings`: registered at the gateway's site, of the sensor's
//! kind, in range, not in the future, not too old), each protocol refusal
//! recorded with its reason. The host has counted and logged the protocol
//! refusals and the unbound gateway already; the writer records them.

use std::borrow::Cow;

use stoker_sparkplug::MetricValue;

use super::{Pending, Writer};
use crate::envelope::{Decoded, Envelope, Receipt};
use crate::payload::{RawReading, RawValue};

/// The refusal of readings from a gateway bound to no site.
const UNBOUND_GATEWAY: &str = "unbound_gateway";

impl Writer {
    /// Validates a decoded Sparkplug message into the pending batch. The
    /// message counts once; each protocol refusal counts as one refused
    /// reading.
    pub(super) async fn accept_sparkplug(
        &self,
        envelope: &Envelope,
        decoded: &Decoded,
        receipt: &mut Receipt,
        pending: &mut Pending,
    ) {
        let site = decoded.site.as_ref().map_or("", |site| site.as_str());
        for refusal in &decoded.refusals {
            self.record_unlogged(
                envelope,
                site,
                refusal.metric.as_deref(),
                refusal.reason.as_str(),
                &refusal.detail,
                pending,
            );
        }
        let refused = decoded.refusals.len() as i64;
        let mut messages = 1;
        if refused > 0 {
            pending
                .journal
                .count(envelope.received, envelope.source, messages, 0, refused);
            messages = 0;
        }
        if decoded.readings.is_empty() {
            if messages == 1 {
                pending
                    .journal
                    .count(envelope.received, envelope.source, 1, 0, 0);
            }
            return;
        }
        let Some(bound) = &decoded.site else {
            let gateway = match &decoded.gateway {
                Some(gateway) => format!(
                    "gateway {gateway} (group {:?}, edge node {:?})",
                    gateway.group_id, gateway.edge_node_id
                ),
                None => format!("topic {:?} names no gateway and", decoded.topic),
            };
            let detail = format!(
                "{gateway} is bound to no site: bind it with POST /api/v1/sites/{{site}}/gateways; {} readings refused",
                decoded.readings.len()
            );
            let readings = decoded.readings.len() as i64;
            pending
                .journal
                .count(envelope.received, envelope.source, messages, 0, readings);
            self.record_unlogged(envelope, "", None, UNBOUND_GATEWAY, &detail, pending);
            receipt.message_refused = true;
            return;
        };
        let readings = decoded
            .readings
            .iter()
            .map(|reading| RawReading {
                sensor: Cow::Borrowed(reading.sensor.as_str()),
                value: Ok(match &reading.value {
                    MetricValue::Number(number) => RawValue::Number(*number),
                    MetricValue::Boolean(flag) => RawValue::Boolean(*flag),
                    MetricValue::State(name) => RawValue::Text(Cow::Borrowed(name)),
                }),
                timestamp: Some(reading.timestamp),
            })
            .collect();
        self.accept_readings(
            envelope,
            bound.as_str(),
            readings,
            super::validate::Origin::Message,
            messages,
            receipt,
            pending,
        )
        .await;
    }
}
