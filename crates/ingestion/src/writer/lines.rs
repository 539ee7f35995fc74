//! Line protocol (InfluxDB-compatible writes) into the pending batch: each
//! line's readings through the same validation as every other reading
//! (`validate`'s `accept_readings`), a line refused whole (it does not
//! parse, names no reading, or its time is out of range) counted and
//! recorded like a refused message. Every refusal in the receipt names its
//! line.

use super::{Pending, Writer};
use crate::Reason;
use crate::envelope::{BodyRefusal, Envelope, LineWrite, Receipt, Refused};
use crate::payload::{self, LineOutcome, Refusal};

impl Writer {
    /// Validates a line-protocol body into the pending batch. The body is
    /// one message; its lines are counted as its readings.
    pub(super) async fn accept_lines(
        &self,
        envelope: &Envelope,
        write: &LineWrite,
        refused: Option<&BodyRefusal>,
        receipt: &mut Receipt,
        pending: &mut Pending,
    ) {
        if let Some(refused) = refused {
            let refusal = match refused {
                BodyRefusal::TooLarge { length } => Refusal::new(
                    Reason::PayloadTooLarge,
                    format!(
                        "the body is over {} bytes ({length} bytes at least, decompressed)",
                        payload::MAX_PAYLOAD_BYTES
                    ),
                ),
                BodyRefusal::Undecodable { detail } => {
                    Refusal::new(Reason::MalformedLine, detail.clone())
                }
            };
            self.refuse_message(envelope, &write.site, refusal, 1, 1, receipt, pending);
            return;
        }
        // The message is counted with its first line; a body of comments
        // and blank lines is a message with no reading.
        let mut messages = 1;
        for outcome in payload::read_lines(&envelope.payload, write) {
            let first = receipt.refused.len();
            match outcome {
                LineOutcome::Readings {
                    line,
                    site,
                    readings,
                } => {
                    self.accept_readings(envelope, &site, readings, messages, receipt, pending)
                        .await;
                    // The same checks as every reading; the answer names
                    // the line (and the sensor) of each refusal.
                    for refused in &mut receipt.refused[first..] {
                        refused.detail = match &refused.sensor {
                            Some(sensor) => {
                                format!("line {line}, sensor {sensor:?}: {}", refused.detail)
                            }
                            None => format!("line {line}: {}", refused.detail),
                        };
                    }
                }
                LineOutcome::Refused { refusal, .. } => {
                    self.stats.reject(refusal.reason, 1);
                    pending
                        .journal
                        .count(envelope.received, envelope.source, messages, 0, 1);
                    self.record(envelope, &write.site, None, &refusal, pending);
                    receipt.refused.push(Refused {
                        sensor: None,
                        reason: refusal.reason,
                        detail: refusal.detail,
                    });
                }
            }
            messages = 0;
        }
        if messages == 1 {
            pending
                .journal
                .count(envelope.received, envelope.source, 1, 0, 0);
        }
    }
}
