//! Line protocol (InfluxDB-compatible writes) into the pending batch: each
//! line's readings through the same validation as every other reading
//! (`validate`'s `accept_readings`, consecutive lines of one site as one
//! run), a line refused whole (it does not
//! parse, names no reading, or its time is out of range) counted and
//! recorded like a refused message. Every refusal in the receipt names its
//! line.

use std::borrow::Cow;

use super::validate::Origin;
use super::{Pending, Writer};
use crate::Reason;
use crate::envelope::{BodyRefusal, Envelope, LineWrite, Receipt, Refused};
use crate::payload::{self, LineOutcome, RawReading, Refusal};

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
        // and blank lines is a message with no reading. Consecutive lines
        // of one site are validated as one run (one registry look-up, one
        // count), refusals still naming their line.
        let mut messages = 1;
        let mut run = Run::default();
        for outcome in payload::read_lines(&envelope.payload, write) {
            match outcome {
                LineOutcome::Readings {
                    line,
                    site,
                    readings,
                } => {
                    if run.site.as_ref().is_some_and(|current| *current != site) {
                        self.accept_run(envelope, &mut run, &mut messages, receipt, pending)
                            .await;
                    }
                    run.site.get_or_insert(site);
                    run.readings.extend(readings);
                    run.lines.push((line, run.readings.len()));
                }
                LineOutcome::Refused { refusal, .. } => {
                    // In order: the lines before it first.
                    self.accept_run(envelope, &mut run, &mut messages, receipt, pending)
                        .await;
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
                    messages = 0;
                }
            }
        }
        self.accept_run(envelope, &mut run, &mut messages, receipt, pending)
            .await;
        if messages == 1 {
            pending
                .journal
                .count(envelope.received, envelope.source, 1, 0, 0);
        }
    }

    /// Validates the run of lines gathered so far (if any) and empties it.
    async fn accept_run<'a>(
        &self,
        envelope: &Envelope,
        run: &mut Run<'a>,
        messages: &mut i64,
        receipt: &mut Receipt,
        pending: &mut Pending,
    ) {
        let Some(site) = run.site.take() else {
            return;
        };
        let readings = std::mem::take(&mut run.readings);
        self.accept_readings(
            envelope,
            &site,
            readings,
            Origin::Lines(&run.lines),
            *messages,
            receipt,
            pending,
        )
        .await;
        run.lines.clear();
        *messages = 0;
    }
}

/// Consecutive lines of one site, not yet validated.
#[derive(Default)]
struct Run<'a> {
    site: Option<Cow<'a, str>>,
    readings: Vec<RawReading<'a>>,
    /// Each line's number and the end of its readings in `readings`.
    lines: Vec<(usize, usize)>,
}
