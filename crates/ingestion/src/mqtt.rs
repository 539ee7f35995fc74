//! The MQTT side: connection, subscriptions, the event loop, and
//! acknowledgements.
//!
//! The event loop is polled in a task of its own and never waits on
//! storage: publishes go through a bounded channel to the writer, which
//! acknowledges them (manual acks, persistent session) once durable.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use rumqttc::{AsyncClient, Event, EventLoop, Outgoing, Packet, Publish, QoS};
use stoker_domain::EpochMillis;
use tokio_util::sync::CancellationToken;

use crate::queue::QueueSender;
use crate::writer::{Envelope, Target};
use crate::{Error, Result};

/// How to reach the broker and what to subscribe to.
#[derive(Debug, Clone, clap::Args)]
pub struct MqttOptions {
    /// Broker URL: mqtt://host:port (tcp:// is accepted too); user:password@ for authentication.
    #[arg(
        id = "mqtt_url",
        long = "mqtt-url",
        env = "MQTT_URL",
        default_value = "mqtt://127.0.0.1:1883",
        hide_env_values = true
    )]
    pub url: String,

    /// Client id of the ingestion's persistent session: unacknowledged messages wait for it at the broker across restarts.
    #[arg(
        id = "mqtt_client_id",
        long = "mqtt-client-id",
        env = "MQTT_CLIENT_ID",
        default_value = "stoker-ingest"
    )]
    pub client_id: String,

    /// Prefix of every topic (e.g. "plant-a/"), for brokers shared with other systems.
    #[arg(
        id = "mqtt_topic_prefix",
        long = "mqtt-topic-prefix",
        env = "MQTT_TOPIC_PREFIX",
        default_value = ""
    )]
    pub topic_prefix: String,

    /// Shared subscription group: ingestion processes in the same group split the messages between them ($share/{group}/...); empty to subscribe plainly.
    #[arg(
        id = "mqtt_shared_group",
        long = "mqtt-shared-group",
        env = "MQTT_SHARED_GROUP",
        default_value = "stoker"
    )]
    pub shared_group: String,
}

impl Default for MqttOptions {
    fn default() -> Self {
        Self {
            url: "mqtt://127.0.0.1:1883".into(),
            client_id: "stoker-ingest".into(),
            topic_prefix: String::new(),
            shared_group: "stoker".into(),
        }
    }
}

/// rumqttc options for a broker URL and client id. Also used by the
/// simulator and `stoker check`.
pub fn client_options(url: &str, client_id: &str) -> Result<rumqttc::MqttOptions> {
    let invalid = |reason: String| Error::InvalidMqttUrl {
        url: stoker_domain::redact_url(url),
        reason,
    };
    let parsed = url::Url::parse(url).map_err(|error| invalid(error.to_string()))?;
    match parsed.scheme() {
        "mqtt" | "tcp" => {}
        "mqtts" | "ssl" => {
            return Err(invalid(
                "TLS (mqtts://) is not supported yet; use mqtt://".into(),
            ));
        }
        other => {
            return Err(invalid(format!(
                "unknown scheme {other:?}; use mqtt://host:port"
            )));
        }
    }
    let host = parsed
        .host_str()
        .filter(|host| !host.is_empty())
        .ok_or_else(|| invalid("no host".into()))?;
    let mut options = rumqttc::MqttOptions::new(client_id, host, parsed.port().unwrap_or(1883));
    if !parsed.username().is_empty() {
        options.set_credentials(parsed.username(), parsed.password().unwrap_or_default());
    }
    options
        .set_keep_alive(Duration::from_secs(30))
        // Large enough that an oversized payload arrives and is refused
        // with a count, instead of breaking the connection (and being
        // redelivered for ever).
        .set_max_packet_size(16 * 1024 * 1024, 1024 * 1024);
    Ok(options)
}

/// Extra room in rumqttc's request channel for acks of messages still
/// waiting in the queue.
const QUEUED_ACK_ROOM: usize = 8_192;

/// Longest wait to queue an acknowledgement or the disconnect.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(5);

/// A QoS 1 message waiting for its acknowledgement, tagged with the
/// connection it arrived on.
#[derive(Debug)]
pub(crate) struct PendingAck {
    publish: Publish,
    connection: u64,
}

/// Sends acknowledgements and the final disconnect.
#[derive(Debug, Clone)]
pub(crate) struct Acker {
    client: AsyncClient,
    connection: Arc<AtomicU64>,
}

impl Acker {
    /// Acknowledges a message, unless it arrived on an earlier connection:
    /// its packet id means nothing on the new one (the broker redelivers the
    /// message, and that copy is acknowledged). Returns whether it was sent.
    pub async fn ack(&self, pending: PendingAck) -> bool {
        if pending.connection != self.connection.load(Ordering::Acquire) {
            return false;
        }
        // Most acks fit the request channel at once; only when it is full
        // wait, bounded: if the event loop is gone (broker away at
        // shutdown) the channel may never drain, and the broker redelivers.
        match self.client.try_ack(&pending.publish) {
            Ok(()) => true,
            Err(_) => matches!(
                tokio::time::timeout(REQUEST_TIMEOUT, self.client.ack(&pending.publish)).await,
                Ok(Ok(()))
            ),
        }
    }

    /// Ends the session cleanly once every acknowledgement is queued.
    pub async fn disconnect(&self) {
        let _ = tokio::time::timeout(REQUEST_TIMEOUT, self.client.disconnect()).await;
    }
}

/// The connection: client, event loop and its state.
pub(crate) struct Connection {
    pub client: AsyncClient,
    eventloop: EventLoop,
    connection: Arc<AtomicU64>,
    pub connected: Arc<AtomicBool>,
    filters: Vec<String>,
    topic_prefix: String,
}

impl Connection {
    /// `acks_outstanding`: the acknowledgements a full set of batches in
    /// flight can queue at once.
    pub fn new(options: &MqttOptions, acks_outstanding: usize) -> Result<Self> {
        let shared_group = Some(options.shared_group.as_str()).filter(|group| !group.is_empty());
        let mut mqtt = client_options(&options.url, &options.client_id)?;
        mqtt.set_clean_session(false).set_manual_acks(true);
        // Acknowledgements travel through the request channel: room for
        // those of every batch in flight, so settling rarely waits.
        let (client, eventloop) = AsyncClient::new(mqtt, acks_outstanding + QUEUED_ACK_ROOM);
        let filters = ["sites/+/telemetry", "sites/+/sensors/+"]
            .iter()
            .map(|filter| {
                let filter = format!("{}{filter}", options.topic_prefix);
                match shared_group {
                    Some(group) => format!("$share/{group}/{filter}"),
                    None => filter,
                }
            })
            .collect();
        Ok(Self {
            client,
            eventloop,
            connection: Arc::new(AtomicU64::new(0)),
            connected: Arc::new(AtomicBool::new(false)),
            filters,
            topic_prefix: options.topic_prefix.clone(),
        })
    }

    pub fn acker(&self) -> Acker {
        Acker {
            client: self.client.clone(),
            connection: Arc::clone(&self.connection),
        }
    }

    /// Polls the event loop until the writer disconnects, or until
    /// `stopping` and the connection is gone.
    pub async fn run(mut self, envelopes: QueueSender, stopping: CancellationToken) {
        let mut backoff = Duration::from_millis(200);
        loop {
            match self.eventloop.poll().await {
                Ok(Event::Incoming(Packet::Publish(publish))) => {
                    let envelope = self.envelope(publish);
                    // Never waits: see `queue` for why the event loop must not.
                    if envelopes.send(envelope).is_err() {
                        tracing::debug!("writer stopped; leaving further messages to the broker");
                    }
                }
                Ok(Event::Incoming(Packet::ConnAck(connack))) => {
                    let number = self.connection.fetch_add(1, Ordering::AcqRel) + 1;
                    // With a session present the subscriptions are still in
                    // place; otherwise ready once the broker confirms them.
                    self.connected
                        .store(connack.session_present, Ordering::Release);
                    backoff = Duration::from_millis(200);
                    tracing::info!(
                        connection = number,
                        session_present = connack.session_present,
                        "connected to the MQTT broker"
                    );
                    if !connack.session_present {
                        for filter in &self.filters {
                            if let Err(error) =
                                self.client.try_subscribe(filter.as_str(), QoS::AtLeastOnce)
                            {
                                tracing::error!(%error, filter, "cannot subscribe");
                            }
                        }
                    }
                }
                Ok(Event::Incoming(Packet::SubAck(suback))) => {
                    self.connected.store(true, Ordering::Release);
                    tracing::info!(filters = ?self.filters, codes = ?suback.return_codes, "subscribed");
                }
                Ok(Event::Outgoing(Outgoing::Disconnect)) => {
                    tracing::info!("disconnected from the MQTT broker");
                    break;
                }
                Ok(_) => {}
                Err(error) => {
                    self.connected.store(false, Ordering::Release);
                    if stopping.is_cancelled() {
                        break;
                    }
                    tracing::warn!(%error, retry_in = ?backoff, "MQTT connection lost; reconnecting");
                    tokio::select! {
                        () = stopping.cancelled() => break,
                        () = tokio::time::sleep(backoff) => {}
                    }
                    backoff = (backoff * 2).min(Duration::from_secs(5));
                }
            }
        }
        self.connected.store(false, Ordering::Release);
    }

    fn envelope(&self, publish: Publish) -> Envelope {
        let target = parse_topic(&publish.topic, &self.topic_prefix);
        let ack = (publish.qos != QoS::AtMostOnce).then(|| PendingAck {
            connection: self.connection.load(Ordering::Acquire),
            // The ack needs only the packet id and QoS: no copy of the
            // topic or payload waits with it.
            publish: Publish {
                dup: false,
                qos: publish.qos,
                retain: false,
                topic: String::new(),
                pkid: publish.pkid,
                payload: bytes::Bytes::new(),
            },
        });
        Envelope {
            source: crate::journal::Source::Mqtt,
            target,
            payload: publish.payload,
            received: EpochMillis::now(),
            ack,
            reply: None,
            oversized: None,
        }
    }
}

/// Splits `{prefix}sites/{site}/telemetry` or
/// `{prefix}sites/{site}/sensors/{sensor}`.
fn parse_topic(topic: &str, prefix: &str) -> Target {
    let unknown = || Target::Unknown {
        topic: topic.chars().take(200).collect(),
    };
    let Some(rest) = topic
        .strip_prefix(prefix)
        .and_then(|rest| rest.strip_prefix("sites/"))
    else {
        return unknown();
    };
    let parts: Vec<&str> = rest.split('/').collect();
    match parts.as_slice() {
        [site, "telemetry"] => Target::Telemetry {
            site: (*site).to_owned(),
        },
        [site, "sensors", sensor] => Target::Sensor {
            site: (*site).to_owned(),
            sensor: (*sensor).to_owned(),
        },
        _ => unknown(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn topics_are_split_after_the_prefix() {
        assert!(
            matches!(parse_topic("sites/b-1/telemetry", ""), Target::Telemetry { site } if site == "b-1")
        );
        assert!(matches!(
            parse_topic("p/x/sites/b-1/sensors/t1", "p/x/"),
            Target::Sensor { site, sensor } if site == "b-1" && sensor == "t1"
        ));
        assert!(matches!(
            parse_topic("sites/b-1/other", ""),
            Target::Unknown { .. }
        ));
        assert!(matches!(
            parse_topic("elsewhere/sites/b-1/telemetry", ""),
            Target::Unknown { .. }
        ));
    }

    #[test]
    fn broker_urls_are_checked_and_passwords_hidden() {
        let options = client_options("mqtt://127.0.0.1:1884", "id").unwrap();
        assert_eq!(options.broker_address(), ("127.0.0.1".to_owned(), 1884));
        assert_eq!(
            client_options("tcp://broker", "id")
                .unwrap()
                .broker_address()
                .1,
            1883
        );
        let error = client_options("http://user:pw@host", "id")
            .unwrap_err()
            .to_string();
        assert!(
            error.contains("MQTT_URL") && !error.contains("pw"),
            "{error}"
        );
        assert!(
            client_options("mqtts://host", "id")
                .unwrap_err()
                .to_string()
                .contains("TLS")
        );
    }
}
