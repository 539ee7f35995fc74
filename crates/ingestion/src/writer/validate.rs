//! Validation: each message parsed (`payload`) and its readings checked
//! against the registry (registered, of the sensor's kind, in range or one
//! of its states, neither in the future nor older than InfluxDB keeps)
//! into the pending batch; every refusal
//! counted, logged (at most one line per reason every ten seconds),
//! recorded for the journal and reported in the HTTP receipt.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use stoker_domain::{EpochMillis, SensorKind};
use tokio::time::Instant;

use super::{Pending, Writer};
use crate::Reason;
use crate::envelope::{Envelope, Receipt, Refused, Target};
use crate::journal::Rejection;
use crate::payload::{self, RawReading, RawValue, Refusal};
use crate::registry::{SensorEntry, Sensors, Typed};

/// Readings may be at most this far ahead of the receive time (DESIGN.md).
const MAX_FUTURE_MILLIS: i64 = 5 * 60 * 1000;

/// Where a run of readings comes from, for the details of their refusals.
#[derive(Debug, Clone, Copy)]
pub(super) enum Origin<'a> {
    /// One message (JSON, a Sparkplug message): refusals name the sensor.
    Message,
    /// Consecutive lines of a line-protocol body, each as its number and
    /// the end (exclusive) of its readings in the run, in order: refusals
    /// name the line too.
    Lines(&'a [(usize, usize)]),
}

impl Origin<'_> {
    /// The number of the line reading `index` of the run came from.
    fn line_of(self, index: usize) -> Option<usize> {
        match self {
            Origin::Message => None,
            Origin::Lines(lines) => {
                let at = lines.partition_point(|&(_, end)| end <= index);
                lines.get(at).map(|&(line, _)| line)
            }
        }
    }
}

impl Writer {
    /// Validates one message into the pending batch.
    pub(super) async fn accept(&self, envelope: Envelope, pending: &mut Pending) {
        self.stats.messages.fetch_add(1, Ordering::Relaxed);
        // Whatever the message brings (readings, or only a settlement for a
        // refused one), it is settled by the next flush.
        pending
            .deadline
            .get_or_insert_with(|| Instant::now() + self.limits.linger);
        pending.oldest.get_or_insert_with(std::time::Instant::now);
        let mut receipt = Receipt::default();
        let readings = match &envelope.target {
            Target::Lines { write, refused } => {
                self.accept_lines(&envelope, write, refused.as_ref(), &mut receipt, pending)
                    .await;
                return settle_message(envelope, receipt, pending);
            }
            Target::Sparkplug(decoded) => {
                self.accept_sparkplug(&envelope, decoded, &mut receipt, pending)
                    .await;
                return settle_message(envelope, receipt, pending);
            }
            Target::Telemetry { site } => match envelope.oversized {
                Some(length) => Err(Refusal::new(
                    Reason::PayloadTooLarge,
                    format!(
                        "payload is {length} bytes; the limit is {}",
                        payload::MAX_PAYLOAD_BYTES
                    ),
                )),
                None => payload::parse_telemetry(&envelope.payload)
                    .map(|readings| (site.as_str(), readings)),
            },
            Target::Sensor { site, sensor } => {
                payload::parse_sensor_value(&envelope.payload, sensor)
                    .map(|reading| (site.as_str(), vec![reading]))
            }
            Target::Unknown { topic } => Err(Refusal::new(
                Reason::InvalidTopic,
                format!(
                    "topic {topic:?} is not sites/{{site}}/telemetry or sites/{{site}}/sensors/{{sensor}}"
                ),
            )),
        };
        let site_named = envelope.target.site();
        match readings {
            Err(refusal) => {
                self.refuse_message(&envelope, site_named, refusal, 1, 1, &mut receipt, pending)
            }
            Ok((site, readings)) => {
                self.accept_readings(
                    &envelope,
                    site,
                    readings,
                    Origin::Message,
                    1,
                    &mut receipt,
                    pending,
                )
                .await;
            }
        }
        settle_message(envelope, receipt, pending);
    }

    /// Validates the readings of one site into the pending batch, counting
    /// them as `messages` messages (0 for a further part of a message
    /// already counted).
    #[allow(clippy::too_many_arguments)]
    pub(super) async fn accept_readings(
        &self,
        envelope: &Envelope,
        site: &str,
        readings: Vec<RawReading<'_>>,
        origin: Origin<'_>,
        messages: i64,
        receipt: &mut Receipt,
        pending: &mut Pending,
    ) {
        let mut registry = self.registry.snapshot();
        if registry.lacks_any(site, readings.iter().map(|reading| reading.sensor.as_ref())) {
            registry = self.registry.reload_for_unknown(&self.pool).await;
        }
        match registry.site(site) {
            None => {
                let detail = format!("site {:?} is not registered", excerpt(site));
                match origin {
                    Origin::Message => {
                        let refusal = Refusal::new(Reason::UnknownSite, detail);
                        let count = readings.len() as u64;
                        self.refuse_message(
                            envelope, site, refusal, count, messages, receipt, pending,
                        );
                    }
                    // Each line refused on its own, as it would be alone.
                    Origin::Lines(lines) => {
                        let mut start = 0;
                        let mut messages = messages;
                        for &(line, end) in lines {
                            let refusal =
                                Refusal::new(Reason::UnknownSite, format!("line {line}: {detail}"));
                            let count = (end - start) as u64;
                            self.refuse_message(
                                envelope, site, refusal, count, messages, receipt, pending,
                            );
                            (start, messages) = (end, 0);
                        }
                    }
                }
            }
            Some(sensors) => {
                let mut rejected = 0_i64;
                let mut accepted = 0_i64;
                let oldest = self.oldest_accepted(envelope.received);
                for (index, reading) in readings.into_iter().enumerate() {
                    match validate(&reading, sensors, envelope.received, oldest) {
                        Ok((entry, value, timestamp)) => {
                            pending.push_reading(entry, value, timestamp);
                            accepted += 1;
                        }
                        Err(mut refusal) => {
                            rejected += 1;
                            self.stats.reject(refusal.reason, 1);
                            if let Some(line) = origin.line_of(index) {
                                refusal.detail = format!(
                                    "line {line}, sensor {:?}: {}",
                                    excerpt(&reading.sensor),
                                    refusal.detail
                                );
                            }
                            self.record(envelope, site, Some(&reading.sensor), &refusal, pending);
                            receipt.refused.push(Refused {
                                sensor: Some(excerpt(&reading.sensor)),
                                reason: refusal.reason,
                                detail: refusal.detail,
                            });
                        }
                    }
                }
                receipt.accepted += accepted as usize;
                pending.journal.count(
                    envelope.received,
                    envelope.source,
                    messages,
                    accepted,
                    rejected,
                );
            }
        }
    }

    /// The oldest timestamp accepted at `received`: the raw retention
    /// back, less a margin (a twenty-fourth of it, at most an hour) for
    /// the time a batch may wait in the spool. `None`: kept forever.
    fn oldest_accepted(&self, received: EpochMillis) -> Option<EpochMillis> {
        let keep = self.influx.raw_retention()?;
        let margin = (keep / 24).min(Duration::from_secs(3_600));
        let back = i64::try_from((keep - margin).as_millis()).unwrap_or(i64::MAX);
        EpochMillis::from_millis(received.as_millis().saturating_sub(back)).ok()
    }

    /// Refuses a whole message (or, for line protocol, a whole line or
    /// site's part) as `readings` refused readings of `messages` messages.
    #[allow(clippy::too_many_arguments)]
    pub(super) fn refuse_message(
        &self,
        envelope: &Envelope,
        site: &str,
        refusal: Refusal,
        readings: u64,
        messages: i64,
        receipt: &mut Receipt,
        pending: &mut Pending,
    ) {
        let readings = readings.max(1);
        self.stats.reject(refusal.reason, readings);
        pending.journal.count(
            envelope.received,
            envelope.source,
            messages,
            0,
            readings as i64,
        );
        self.record(envelope, site, None, &refusal, pending);
        receipt.message_refused = true;
        receipt.refused.push(Refused {
            sensor: None,
            reason: refusal.reason,
            detail: refusal.detail,
        });
    }

    /// Logs (rate-limited) and records one refusal for the journal.
    pub(super) fn record(
        &self,
        envelope: &Envelope,
        site: &str,
        sensor: Option<&str>,
        refusal: &Refusal,
        pending: &mut Pending,
    ) {
        if let Some(suppressed) = pending.log.admit(refusal.reason) {
            tracing::warn!(
                reason = refusal.reason.as_str(),
                site,
                sensor,
                topic = %envelope.target.describe(),
                detail = %refusal.detail,
                similar_refusals_not_logged = suppressed,
                "reading refused"
            );
        }
        self.record_unlogged(
            envelope,
            site,
            sensor,
            refusal.reason.as_str(),
            &refusal.detail,
            pending,
        );
    }

    /// Records one refusal for the journal (its logging is the caller's).
    pub(super) fn record_unlogged(
        &self,
        envelope: &Envelope,
        site: &str,
        sensor: Option<&str>,
        reason: &'static str,
        detail: &str,
        pending: &mut Pending,
    ) {
        let rejection = Rejection {
            received: envelope.received,
            source: envelope.source,
            reason,
            site: site.chars().take(200).collect(),
            sensor: sensor.map(|sensor| sensor.chars().take(200).collect()),
            topic: envelope.target.describe(),
            detail: detail.to_owned(),
            payload_excerpt: envelope.payload_excerpt(),
        };
        if !pending.journal.record(rejection) {
            self.stats
                .rejections_unrecorded
                .fetch_add(1, Ordering::Relaxed);
        }
    }
}

/// Hands a validated message's acknowledgement and answer to the batch,
/// settled once it is durable.
fn settle_message(envelope: Envelope, receipt: Receipt, pending: &mut Pending) {
    pending.acks.extend(envelope.ack);
    if let Some(reply) = envelope.reply {
        pending.replies.push((reply, receipt));
    }
}

/// Checks one reading against its sensor: registered, of its kind (in
/// range, or one of its states), not in the future, and (when `oldest` is
/// set) not older than InfluxDB keeps.
fn validate<'a>(
    reading: &RawReading,
    sensors: &'a Sensors,
    received: EpochMillis,
    oldest: Option<EpochMillis>,
) -> Result<(&'a Arc<SensorEntry>, Typed, EpochMillis), Refusal> {
    let entry = sensors.get(reading.sensor.as_ref()).ok_or_else(|| {
        Refusal::new(
            Reason::UnknownSensor,
            format!(
                "sensor {:?} is not registered at this site",
                excerpt(&reading.sensor)
            ),
        )
    })?;
    let value = match &reading.value {
        Ok(value) => typed(entry, value, &reading.sensor)?,
        Err(refusal) => return Err(refusal.clone()),
    };
    let timestamp = reading.timestamp.unwrap_or(received);
    if timestamp.as_millis() > received.as_millis() + MAX_FUTURE_MILLIS {
        return Err(Refusal::new(
            Reason::FutureTimestamp,
            format!(
                "timestamp {timestamp} is more than 5 minutes after the receive time {received}"
            ),
        ));
    }
    if let Some(oldest) = oldest
        && timestamp < oldest
    {
        return Err(Refusal::new(
            Reason::TooOld,
            format!(
                "timestamp {timestamp} is older than InfluxDB keeps raw readings (INFLUX_RAW_RETENTION): the oldest accepted now is {oldest}"
            ),
        ));
    }
    Ok((entry, value, timestamp))
}

/// The reading's value in its sensor's kind, or why it is not one: a
/// value of another kind is `wrong_kind` (but a string for a numeric
/// sensor `non_numeric`, as before kinds), a number outside the valid
/// range `out_of_range`, a name the sensor does not declare
/// `unknown_state`. A line-protocol integer is a number, but 1 and 0 for
/// a boolean sensor are `true` and `false` (a Modbus coil); any other
/// integer for it is `wrong_kind`. Allocates only to refuse.
fn typed(entry: &SensorEntry, value: &RawValue<'_>, sensor: &str) -> Result<Typed, Refusal> {
    match (entry.kind, value) {
        (SensorKind::Numeric, RawValue::Number(number)) => in_range(entry, *number),
        // Integers beyond 2^53 round, as InfluxDB's float field would.
        (SensorKind::Numeric, RawValue::Integer(integer)) => in_range(entry, *integer as f64),
        (SensorKind::Boolean, RawValue::Boolean(flag)) => Ok(Typed::Boolean(*flag)),
        (SensorKind::Boolean, RawValue::Integer(1)) => Ok(Typed::Boolean(true)),
        (SensorKind::Boolean, RawValue::Integer(0)) => Ok(Typed::Boolean(false)),
        (SensorKind::Boolean, RawValue::Integer(integer)) => Err(Refusal::new(
            Reason::WrongKind,
            format!(
                "value of {sensor:?} is the integer {integer}, but {} is a boolean sensor: an integer is taken only as 1 (true) or 0 (false), as a Modbus coil; expected true, false, 1i or 0i",
                entry.key
            ),
        )),
        (SensorKind::State, RawValue::Text(name)) => entry
            .states
            .index_of(name)
            .map(Typed::State)
            .ok_or_else(|| {
                Refusal::new(
                    Reason::UnknownState,
                    format!(
                        "value of {sensor:?} is {}, which is not one of its states ({})",
                        value.describe(),
                        entry.states.names().collect::<Vec<_>>().join(", ")
                    ),
                )
            }),
        (SensorKind::Numeric, RawValue::Text(_)) => Err(Refusal::new(
            Reason::NonNumeric,
            format!(
                "value of {sensor:?} is {}, not a finite number",
                value.describe()
            ),
        )),
        (kind, _) => Err(Refusal::new(
            Reason::WrongKind,
            format!(
                "value of {sensor:?} is {}, but {} is a {kind} sensor: expected {}",
                value.describe(),
                entry.key,
                kind.expects()
            ),
        )),
    }
}

fn in_range(entry: &SensorEntry, number: f64) -> Result<Typed, Refusal> {
    if entry.range.contains(number) {
        Ok(Typed::Number(number))
    } else {
        Err(out_of_range(entry, number))
    }
}

fn out_of_range(entry: &SensorEntry, value: f64) -> Refusal {
    Refusal::new(
        Reason::OutOfRange,
        format!(
            "value {value} of {} is outside its valid range [{}, {}]",
            entry.key,
            entry
                .range
                .min()
                .map_or("-inf".into(), |min| min.to_string()),
            entry
                .range
                .max()
                .map_or("+inf".into(), |max| max.to_string()),
        ),
    )
}

fn excerpt(text: &str) -> String {
    text.chars().take(64).collect()
}

#[cfg(test)]
mod tests {
    use std::borrow::Cow;

    use stoker_domain::{SensorKey, SensorType, SiteSlug, States, Unit, ValidRange};

    use super::*;

    fn entry(kind: SensorKind, states: &[&str]) -> SensorEntry {
        SensorEntry::new(
            SiteSlug::parse("boiler-house-1").unwrap(),
            SensorKey::parse("b1_x").unwrap(),
            SensorType::parse("status").unwrap(),
            Unit::parse("-").unwrap(),
            match kind {
                SensorKind::Numeric => ValidRange::new(Some(0.0), Some(25.0)).unwrap(),
                _ => ValidRange::default(),
            },
            kind,
            States::parse(states.iter().copied()).unwrap(),
        )
    }

    fn reason(entry: &SensorEntry, value: RawValue<'_>) -> Result<Typed, (Reason, String)> {
        typed(entry, &value, "b1_x").map_err(|refusal| (refusal.reason, refusal.detail))
    }

    #[test]
    fn each_kind_takes_its_values_and_refuses_the_others() {
        let numeric = entry(SensorKind::Numeric, &[]);
        let boolean = entry(SensorKind::Boolean, &[]);
        let state = entry(SensorKind::State, &["off", "purge", "firing"]);
        let text = |name: &'static str| RawValue::Text(Cow::Borrowed(name));

        assert_eq!(
            reason(&numeric, RawValue::Number(10.4)),
            Ok(Typed::Number(10.4))
        );
        assert_eq!(
            reason(&boolean, RawValue::Boolean(true)),
            Ok(Typed::Boolean(true))
        );
        assert_eq!(reason(&state, text("firing")), Ok(Typed::State(2)));

        assert_eq!(
            reason(&numeric, RawValue::Number(30.0)).unwrap_err().0,
            Reason::OutOfRange
        );
        assert_eq!(
            reason(&numeric, text("high")),
            Err((
                Reason::NonNumeric,
                "value of \"b1_x\" is the string \"high\", not a finite number".into()
            ))
        );
        assert_eq!(
            reason(&numeric, RawValue::Boolean(true)),
            Err((
                Reason::WrongKind,
                "value of \"b1_x\" is true, but b1_x is a numeric sensor: expected a finite number"
                    .into()
            ))
        );
        for wrong in [RawValue::Number(1.0), text("true")] {
            assert_eq!(reason(&boolean, wrong).unwrap_err().0, Reason::WrongKind);
        }
        for wrong in [RawValue::Number(2.0), RawValue::Boolean(false)] {
            assert_eq!(reason(&state, wrong).unwrap_err().0, Reason::WrongKind);
        }
        assert_eq!(
            reason(&state, text("Firing")),
            Err((
                Reason::UnknownState,
                "value of \"b1_x\" is the string \"Firing\", which is not one of its states (off, purge, firing)".into()
            ))
        );
    }

    #[test]
    fn line_protocol_integers_are_numbers_and_a_boolean_sensors_coils() {
        let numeric = entry(SensorKind::Numeric, &[]);
        let boolean = entry(SensorKind::Boolean, &[]);
        let state = entry(SensorKind::State, &["off", "on"]);
        assert_eq!(
            reason(&numeric, RawValue::Integer(12)),
            Ok(Typed::Number(12.0))
        );
        assert_eq!(
            reason(&numeric, RawValue::Integer(26)).unwrap_err().0,
            Reason::OutOfRange
        );
        assert_eq!(
            reason(&boolean, RawValue::Integer(1)),
            Ok(Typed::Boolean(true))
        );
        assert_eq!(
            reason(&boolean, RawValue::Integer(0)),
            Ok(Typed::Boolean(false))
        );
        for other in [2, -1, i128::from(u64::MAX)] {
            assert_eq!(
                reason(&boolean, RawValue::Integer(other)),
                Err((
                    Reason::WrongKind,
                    format!(
                        "value of \"b1_x\" is the integer {other}, but b1_x is a boolean sensor: an integer is taken only as 1 (true) or 0 (false), as a Modbus coil; expected true, false, 1i or 0i"
                    )
                ))
            );
        }
        assert_eq!(
            reason(&boolean, RawValue::Number(1.0)).unwrap_err().0,
            Reason::WrongKind,
            "a float (and a JSON number) is no coil"
        );
        assert_eq!(
            reason(&state, RawValue::Integer(1)),
            Err((
                Reason::WrongKind,
                "value of \"b1_x\" is the integer 1, but b1_x is a state sensor: expected the name of one of its states, as a string".into()
            ))
        );
    }
}
