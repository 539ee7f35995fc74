//! The Sparkplug host's broker connection, while this process leads:
//! MQTT 3.1.1 on the same transport as ingestion's (`mqtt::open`, rumqttc's
//! packet codec), a clean session with the STATE offline message as its
//! will (retained, QoS 1), reconnecting with backoff.
//!
//! On every connection (Sparkplug 3.0, host application): subscribe to
//! `spBv1.0/{group}/#` for each group (without `$share`: alias tables and
//! `seq` need every message of an edge node here) and to its own
//! `spBv1.0/STATE/{host_id}`, then publish STATE online (retained, the
//! will's timestamp). The protocol core is reset on every connection:
//! messages may have been missed, so each edge node's next data asks for a
//! rebirth. Each message goes through `Host::handle`: readings and
//! refusals to the writer (through the queue, as every message), rebirth
//! requests out as NCMD (QoS 0), births and deaths to `events`.
//!
//! While the spool is full (the writer can take nothing more), the host
//! publishes STATE offline and disconnects, so edge nodes store and
//! forward; once the spool has room it connects again, with a new STATE
//! timestamp, and publishes online.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use bytes::Bytes;
use rumqttc::{
    Connect, LastWill, Login, Packet, PubAck, Publish, QoS, Subscribe, SubscribeFilter,
    SubscribeReasonCode,
};
use stoker_domain::EpochMillis;
use stoker_sparkplug::{
    Event, GroupId, Handled, Host, HostId, HostSettings, Ignored, StateMessage, Topic, parse_state,
};
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use super::bindings::Bindings;
use super::events::EventQueue;
use super::stats::{SparkplugStats, UNBOUND_GATEWAY};
use crate::envelope::{Decoded, Envelope, Target};
use crate::journal::Source;
use crate::mqtt::{PacketWriter, SessionError, open};
use crate::queue::QueueSender;
use crate::stats::Stats;

/// How often the session looks at whether the spool is full.
const SPOOL_CHECK: Duration = Duration::from_millis(250);

/// At most one log line per refusal reason this often.
const LOG_EVERY: Duration = Duration::from_secs(10);

/// Where and as whom the host connects, and what it reads.
#[derive(Clone)]
pub(crate) struct Settings {
    pub broker: crate::mqtt::Broker,
    pub client_id: String,
    pub login: Option<Login>,
    pub keep_alive: Duration,
    pub groups: Vec<GroupId>,
    pub host_id: HostId,
}

impl std::fmt::Debug for Settings {
    /// Without the login: its password is a secret.
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter
            .debug_struct("Settings")
            .field("broker", &self.broker.to_string())
            .field("client_id", &self.client_id)
            .field("groups", &self.groups)
            .field("host_id", &self.host_id)
            .finish_non_exhaustive()
    }
}

/// What the session shares with the rest of ingestion.
#[derive(Debug, Clone)]
pub(crate) struct Shared {
    pub bindings: Arc<Bindings>,
    pub envelopes: QueueSender,
    /// Ingestion's counters: `spool_full` says when to go offline.
    pub ingest: Arc<Stats>,
    pub stats: Arc<SparkplugStats>,
    pub events: EventQueue,
}

/// How a connection ended without an error.
enum End {
    /// Shutdown, or the leadership was lost.
    Stopped,
    /// The spool is full: STATE offline was published; reconnect once it has room.
    Saturated,
}

/// Runs the host's connection until `stop` (leadership lost) or `shutdown`:
/// on shutdown it publishes STATE offline and disconnects cleanly; on a
/// lost leadership it drops the connection, so that the broker publishes
/// the will (another process may lead by now, and its STATE is the same
/// topic: an offline message of this one's would be older than its birth).
pub(crate) async fn run(
    settings: Settings,
    shared: Shared,
    stop: CancellationToken,
    shutdown: CancellationToken,
) {
    let mut host = Host::new(HostSettings::default());
    let mut backoff = Duration::from_millis(200);
    let mut log = RefusalLog::default();
    loop {
        if stop.is_cancelled() {
            break;
        }
        if shared.ingest.spool_full.load(Ordering::Acquire) {
            // Nothing can be taken: stay offline until the spool has room.
            tokio::select! {
                () = stop.cancelled() => break,
                () = tokio::time::sleep(SPOOL_CHECK) => continue,
            }
        }
        host.reset();
        let mut connection = Connection {
            settings: &settings,
            shared: &shared,
            host: &mut host,
            log: &mut log,
            connect_time: EpochMillis::now(),
            next_pkid: 1,
            backoff: &mut backoff,
        };
        let ended = connection.session(&stop, &shutdown).await;
        shared.stats.online.store(false, Ordering::Release);
        match ended {
            Ok(End::Stopped) => break,
            Ok(End::Saturated) => {}
            Err(error) => {
                if stop.is_cancelled() {
                    break;
                }
                tracing::warn!(%error, broker = %settings.broker, retry_in = ?backoff, "Sparkplug host connection lost; reconnecting");
                if !crate::mqtt::back_off(&stop, &mut backoff).await {
                    break;
                }
            }
        }
    }
}

struct Connection<'a> {
    settings: &'a Settings,
    shared: &'a Shared,
    host: &'a mut Host,
    log: &'a mut RefusalLog,
    /// The CONNECT's time: the will's and the birth's timestamp.
    connect_time: EpochMillis,
    next_pkid: u16,
    backoff: &'a mut Duration,
}

impl Connection<'_> {
    /// One connection, from CONNECT until it ends.
    async fn session(
        &mut self,
        stop: &CancellationToken,
        shutdown: &CancellationToken,
    ) -> Result<End, SessionError> {
        let host_id = &self.settings.host_id;
        let will = host_id.will(self.connect_time);
        let mut connect = Connect::new(self.settings.client_id.as_str());
        connect.keep_alive = u16::try_from(self.settings.keep_alive.as_secs()).unwrap_or(u16::MAX);
        // Sparkplug 3.0: a host application connects with a clean session.
        connect.clean_session = true;
        connect.login = self.settings.login.clone();
        connect.last_will = Some(LastWill::new(
            will.topic,
            will.payload.into_bytes(),
            QoS::AtLeastOnce,
            true,
        ));
        let (mut reader, mut writer, _) = tokio::select! {
            opened = open(&self.settings.broker, connect) => opened?,
            () = stop.cancelled() => return Ok(End::Stopped),
        };
        *self.backoff = Duration::from_millis(200);
        let state_topic = host_id.state_topic();
        let mut filters: Vec<String> = self
            .settings
            .groups
            .iter()
            .map(GroupId::subscription)
            .collect();
        filters.push(state_topic.clone());
        let mut subscribe = Subscribe::new_many(
            filters
                .iter()
                .map(|filter| SubscribeFilter::new(filter.clone(), QoS::AtLeastOnce)),
        );
        subscribe.pkid = self.pkid();
        writer.send(&Packet::Subscribe(subscribe)).await?;
        tracing::info!(host_id = %host_id, groups = ?filters, "Sparkplug host connected; subscribing");

        let keep_alive = self.settings.keep_alive;
        let silence = keep_alive * 2;
        let mut ping = tokio::time::interval(keep_alive / 2);
        ping.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        ping.tick().await;
        let mut spool_check = tokio::time::interval(SPOOL_CHECK);
        spool_check.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut last_packet = Instant::now();
        loop {
            let packet = tokio::select! {
                () = stop.cancelled() => {
                    if shutdown.is_cancelled() {
                        self.go_offline(&mut writer).await?;
                        tracing::info!(host_id = %host_id, "Sparkplug host STATE offline; disconnected");
                    } else {
                        // Leadership lost: the will tells the edge nodes.
                        tracing::warn!(host_id = %host_id, "Sparkplug leadership lost; leaving the connection to its will");
                    }
                    return Ok(End::Stopped);
                }
                _ = ping.tick() => {
                    if last_packet.elapsed() > silence {
                        return Err(SessionError::Timeout(silence));
                    }
                    writer.send(&Packet::PingReq).await?;
                    continue;
                }
                _ = spool_check.tick() => {
                    if self.shared.ingest.spool_full.load(Ordering::Acquire) {
                        tracing::warn!(host_id = %host_id, "the spool is full: Sparkplug host STATE offline until it has room (edge nodes store and forward)");
                        self.go_offline(&mut writer).await?;
                        return Ok(End::Saturated);
                    }
                    continue;
                }
                packet = reader.next() => packet?,
            };
            last_packet = Instant::now();
            match packet {
                Packet::Publish(publish) => {
                    if publish.qos != QoS::AtMostOnce {
                        writer
                            .send(&Packet::PubAck(PubAck::new(publish.pkid)))
                            .await?;
                    }
                    if publish.topic == state_topic {
                        self.own_state(&publish, &mut writer).await?;
                    } else if self.message(publish, &mut writer).await? {
                        // The spool filled while a message waited for the writer.
                        return Ok(End::Saturated);
                    }
                }
                Packet::SubAck(suback) => {
                    let refused = suback
                        .return_codes
                        .iter()
                        .any(|code| matches!(code, SubscribeReasonCode::Failure));
                    if refused {
                        tracing::error!(?filters, codes = ?suback.return_codes, "the broker refused a Sparkplug subscription (check its ACL: svc.stoker reads spBv1.0/#)");
                    }
                    // Sparkplug 3.0: the STATE birth follows the subscriptions.
                    let birth = host_id.birth(self.connect_time);
                    self.publish_state(&mut writer, birth).await?;
                    self.shared.stats.online.store(true, Ordering::Release);
                    self.shared
                        .stats
                        .state_online_published
                        .fetch_add(1, Ordering::Relaxed);
                    tracing::info!(host_id = %host_id, timestamp = %self.connect_time, "Sparkplug host STATE online");
                }
                Packet::PingResp | Packet::PubAck(_) => {}
                other => tracing::debug!(packet = ?other, "ignored a packet from the broker"),
            }
        }
    }

    fn pkid(&mut self) -> u16 {
        let pkid = self.next_pkid;
        self.next_pkid = self.next_pkid.checked_add(1).unwrap_or(1);
        pkid
    }

    /// Publishes a STATE message: QoS 1, retained.
    async fn publish_state(
        &mut self,
        writer: &mut PacketWriter,
        state: StateMessage,
    ) -> Result<(), SessionError> {
        let mut publish = Publish::new(state.topic, QoS::AtLeastOnce, state.payload.into_bytes());
        publish.retain = true;
        publish.pkid = self.pkid();
        writer.send(&Packet::Publish(publish)).await
    }

    /// STATE offline (the will's message, so its timestamp is the birth's),
    /// then a clean DISCONNECT (which discards the will).
    async fn go_offline(&mut self, writer: &mut PacketWriter) -> Result<(), SessionError> {
        let offline = self.settings.host_id.will(self.connect_time);
        self.publish_state(writer, offline).await?;
        self.shared.stats.online.store(false, Ordering::Release);
        self.shared
            .stats
            .state_offline_published
            .fetch_add(1, Ordering::Relaxed);
        writer.send(&Packet::Disconnect).await?;
        writer.close().await;
        Ok(())
    }

    /// The host's own STATE topic: an offline message delivered live (not
    /// the retained one a subscription brings) while this host is online
    /// is the will of an earlier connection, arriving late (a leader that
    /// died, or this process's own previous connection): the retained
    /// STATE now says offline, so the birth is published again.
    async fn own_state(
        &mut self,
        publish: &Publish,
        writer: &mut PacketWriter,
    ) -> Result<(), SessionError> {
        self.shared.stats.message(None);
        match parse_state(&publish.payload) {
            Ok(state)
                if !state.online
                    && !publish.retain
                    && self.shared.stats.online.load(Ordering::Acquire) =>
            {
                tracing::info!(
                    offline_timestamp = state.timestamp,
                    "an earlier STATE offline of this host arrived; publishing STATE online again"
                );
                let birth = self.settings.host_id.birth(self.connect_time);
                self.publish_state(writer, birth).await?;
                self.shared
                    .stats
                    .state_online_published
                    .fetch_add(1, Ordering::Relaxed);
            }
            Ok(_) => {}
            Err(error) => {
                tracing::warn!(topic = %publish.topic, %error, "a STATE message on this host's topic is not Sparkplug's");
            }
        }
        Ok(())
    }

    /// One edge node message through the protocol core. Returns true when
    /// the spool filled while the message waited for room in the queue
    /// (STATE offline was published and the connection closed).
    async fn message(
        &mut self,
        publish: Publish,
        writer: &mut PacketWriter,
    ) -> Result<bool, SessionError> {
        let received = EpochMillis::now();
        if let Ok(Topic::Edge(edge)) = Topic::parse(&publish.topic) {
            self.shared.stats.message(Some(edge.message_type));
        }
        let handled = self.host.handle(&publish.topic, &publish.payload, received);
        tracing::trace!(
            topic = %publish.topic,
            readings = handled.readings.len(),
            refusals = handled.refusals.len(),
            events = handled.events.len(),
            "Sparkplug message handled"
        );
        if let Some(rebirth) = &handled.rebirth {
            let command = Publish::new(
                rebirth.command.topic.clone(),
                QoS::AtMostOnce,
                rebirth.command.payload.clone(),
            );
            writer.send(&Packet::Publish(command)).await?;
            self.shared
                .stats
                .rebirth_requests
                .fetch_add(1, Ordering::Relaxed);
            tracing::info!(edge_node = %rebirth.node, reason = %rebirth.reason, "asked for a rebirth (NCMD Node Control/Rebirth)");
        }
        for event in &handled.events {
            self.shared.events.push(event.clone());
        }
        if let Some(ignored) = &handled.ignored {
            tracing::debug!(topic = %publish.topic, ?ignored, "Sparkplug message ignored");
        }
        // An NDEATH of an edge node this host holds no session of: it was
        // born before this host took over or reconnected, so Postgres (the
        // source of truth) may still say online. The death is recorded
        // (idempotent; the next birth sets it online again).
        // Its bdSeq goes with it: Postgres keeps the last birth's, so the
        // will of an earlier session, delivered late, leaves it online.
        if let (Some(Ignored::StaleDeath { bd_seq, .. }), Some(node)) =
            (&handled.ignored, &handled.node)
            && !self.host.is_online(&node.group_id, &node.edge_node_id)
        {
            self.shared.events.push(Event::NodeDeath {
                node: node.clone(),
                bd_seq: *bd_seq,
                at: received,
                devices: Vec::new(),
            });
        }
        let Some(envelope) = self.envelope(&publish, handled, received) else {
            return Ok(false);
        };
        // The writer takes it when it has room; while it waits, a spool
        // that fills sends the host offline (the message still goes in).
        // The first check is a period away, and the send is polled first:
        // a queue with room takes the message without touching the timer
        // (an interval's immediate first tick still waits for the timer
        // driver's next turn, about a millisecond per message).
        let send = self.shared.envelopes.send(envelope);
        tokio::pin!(send);
        let mut saturated = false;
        let mut check = tokio::time::interval_at(Instant::now() + SPOOL_CHECK, SPOOL_CHECK);
        loop {
            tokio::select! {
                biased;
                sent = &mut send => {
                    if sent.is_err() {
                        tracing::debug!("writer stopped; a Sparkplug message is not stored");
                    }
                    break;
                }
                _ = check.tick() => {
                    if !saturated && self.shared.ingest.spool_full.load(Ordering::Acquire) {
                        tracing::warn!("the spool is full: Sparkplug host STATE offline until it has room (edge nodes store and forward)");
                        self.go_offline(writer).await?;
                        saturated = true;
                    }
                }
            }
        }
        Ok(saturated)
    }

    /// The message for the writer: its readings with the gateway's site,
    /// and the protocol's refusals (counted and logged here); none for a
    /// message that yields neither.
    fn envelope(
        &mut self,
        publish: &Publish,
        handled: Handled,
        received: EpochMillis,
    ) -> Option<Envelope> {
        let gateway = handled.node;
        let edge_node = gateway.as_ref().map(ToString::to_string);
        let stats = &self.shared.stats;
        for refusal in &handled.refusals {
            stats.refusal(refusal.reason);
            if let Some(suppressed) = self.log.admit(refusal.reason.as_str()) {
                tracing::warn!(
                    reason = refusal.reason.as_str(),
                    edge_node,
                    topic = %publish.topic,
                    metric = refusal.metric.as_deref(),
                    detail = %refusal.detail,
                    similar_refusals_not_logged = suppressed,
                    "Sparkplug message refused"
                );
            }
        }
        if handled.readings.is_empty() && handled.refusals.is_empty() {
            return None;
        }
        // Readings always name their edge node (a topic without one is refused).
        let site = gateway.as_ref().and_then(|gateway| {
            self.shared
                .bindings
                .site(&gateway.group_id, &gateway.edge_node_id)
        });
        stats
            .readings
            .fetch_add(handled.readings.len() as u64, Ordering::Relaxed);
        if site.is_none() && !handled.readings.is_empty() {
            stats.unbound(handled.readings.len() as u64);
            if let Some(suppressed) = self.log.admit(UNBOUND_GATEWAY) {
                tracing::warn!(
                    reason = UNBOUND_GATEWAY,
                    edge_node,
                    readings = handled.readings.len(),
                    similar_refusals_not_logged = suppressed,
                    "Sparkplug readings refused: the gateway is bound to no site (POST /api/v1/sites/{{site}}/gateways)"
                );
            }
        }
        Some(Envelope {
            source: Source::Mqtt,
            target: Target::Sparkplug(Box::new(Decoded {
                topic: publish.topic.clone(),
                gateway,
                site,
                readings: handled.readings,
                refusals: handled.refusals,
            })),
            payload: Bytes::copy_from_slice(&publish.payload),
            received,
            ack: None,
            reply: None,
            oversized: None,
        })
    }
}

/// At most one log line per reason every [`LOG_EVERY`], with the number of
/// further refusals it stands for (every one is counted and recorded).
#[derive(Debug, Default)]
struct RefusalLog {
    last: HashMap<&'static str, (Instant, u64)>,
}

impl RefusalLog {
    fn admit(&mut self, reason: &'static str) -> Option<u64> {
        let now = Instant::now();
        match self.last.get_mut(reason) {
            Some((last, suppressed)) if now.duration_since(*last) < LOG_EVERY => {
                *suppressed += 1;
                None
            }
            Some((last, suppressed)) => {
                *last = now;
                Some(std::mem::take(suppressed))
            }
            None => {
                self.last.insert(reason, (now, 0));
                Some(0)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refusals_are_logged_once_per_reason_and_interval() {
        let mut log = RefusalLog::default();
        assert_eq!(log.admit("sequence_gap"), Some(0));
        assert_eq!(log.admit("sequence_gap"), None);
        assert_eq!(log.admit("sequence_gap"), None);
        assert_eq!(log.admit(UNBOUND_GATEWAY), Some(0));
    }
}
