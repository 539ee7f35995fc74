//! The MQTT side: connection, subscriptions, and acknowledgements.
//!
//! Publishes go through the queue (bounded in bytes) to the writer, which
//! acknowledges them (manual acks, persistent session) once durable. See
//! [`Connection`] for why reading and writing are separate halves.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use bytes::BytesMut;
use rumqttc::{
    Connect, ConnectReturnCode, Login, Packet, PubAck, Publish, QoS, Subscribe, SubscribeFilter,
    SubscribeReasonCode,
};
use stoker_domain::EpochMillis;
use stoker_tls::MqttTlsOptions;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

mod link;

pub(crate) use link::{Broker, PacketReader, PacketWriter, encode, open};
pub use link::{client_options, client_options_tls, probe};

use crate::Result;
use crate::envelope::{Acker, Command, Envelope, PendingAck, Target};
use crate::queue::QueueSender;

/// How to reach the broker and what to subscribe to.
#[derive(Debug, Clone, clap::Args)]
pub struct MqttOptions {
    /// Broker URL: mqtt://host:port (tcp:// is accepted too), or mqtts://host:port for TLS (port 8883 by default); user:password@ for authentication.
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

    /// Shared subscription group, to scale out: ingest processes in the same group (e.g. "stoker") split the messages between them ($share/{group}/...). Empty (the default): a plain subscription, whose queued messages survive a broker restart (Mosquitto 2.0.11 loses a shared one's until it is renewed).
    #[arg(
        id = "mqtt_shared_group",
        long = "mqtt-shared-group",
        env = "MQTT_SHARED_GROUP",
        default_value = ""
    )]
    pub shared_group: String,

    /// TLS for an mqtts:// broker.
    #[command(flatten)]
    pub tls: MqttTlsOptions,
}

impl Default for MqttOptions {
    fn default() -> Self {
        Self {
            url: "mqtt://127.0.0.1:1883".into(),
            client_id: "stoker-ingest".into(),
            topic_prefix: String::new(),
            shared_group: String::new(),
            tls: MqttTlsOptions::default(),
        }
    }
}

/// Longest wait for the TCP connection and for the broker's CONNACK.
pub(crate) const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// Acknowledgements gathered into one socket write, at most.
const ACK_WRITE_BYTES: usize = 64 * 1024;

/// Waits `backoff` before the next connection attempt and doubles it (at
/// most 5 s; a connection that comes up resets it); false when `stop`
/// came first.
pub(crate) async fn back_off(stop: &CancellationToken, backoff: &mut Duration) -> bool {
    tokio::select! {
        () = stop.cancelled() => return false,
        () = tokio::time::sleep(*backoff) => {}
    }
    *backoff = (*backoff * 2).min(Duration::from_secs(5));
    true
}

/// Why a connection ended.
#[derive(Debug, thiserror::Error)]
pub(crate) enum SessionError {
    #[error("cannot reach the broker: {0}")]
    Io(#[from] std::io::Error),
    #[error("TLS handshake with the broker failed: {0}")]
    Tls(std::io::Error),
    #[error("the broker did not answer within {0:?}")]
    Timeout(Duration),
    #[error("the broker closed the connection")]
    Closed,
    #[error("the broker refused the connection: {0:?}")]
    Refused(ConnectReturnCode),
    #[error("protocol error: {0:?}")]
    Protocol(rumqttc::mqttbytes::Error),
    #[error("unexpected {0} before CONNACK")]
    Unexpected(&'static str),
}

/// How a session ended without an error.
enum End {
    /// The writer said goodbye: the session is closed cleanly.
    Disconnected,
}

/// The ingestion's MQTT connection (MQTT 3.1.1, persistent session, manual
/// acknowledgements), built on rumqttc's packet codec.
///
/// Reading and writing are two halves that never wait on each other. The
/// reading half hands publishes to the queue and, when the queue is full,
/// stops reading the socket: the broker keeps the backlog, and memory here
/// stays bounded. The writing half sends acknowledgements as the writer
/// gives them, many per socket write, so a full queue never holds them up.
/// (rumqttc's own event loop reads and writes in one loop, one queued ack
/// per turn, so it can neither pause reading nor keep up with acks.)
pub(crate) struct Connection {
    broker: Broker,
    client_id: String,
    login: Option<Login>,
    keep_alive: Duration,
    commands_tx: Option<mpsc::UnboundedSender<Command>>,
    commands: mpsc::UnboundedReceiver<Command>,
    connection: Arc<AtomicU64>,
    pub connected: Arc<AtomicBool>,
    filters: Vec<String>,
    topic_prefix: String,
}

impl Connection {
    pub(crate) fn new(options: &MqttOptions) -> Result<Self> {
        let shared_group = Some(options.shared_group.as_str()).filter(|group| !group.is_empty());
        let mqtt = client_options(&options.url, &options.client_id)?;
        let broker = Broker::new(options)?;
        let (commands_tx, commands) = mpsc::unbounded_channel();
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
            broker,
            client_id: mqtt.client_id(),
            login: mqtt.credentials(),
            keep_alive: mqtt.keep_alive(),
            commands_tx: Some(commands_tx),
            commands,
            connection: Arc::new(AtomicU64::new(0)),
            connected: Arc::new(AtomicBool::new(false)),
            filters,
            topic_prefix: options.topic_prefix.clone(),
        })
    }

    /// The writer's handle. Take every one before [`Connection::run`]: the
    /// session ends when the writer disconnects or every handle is gone.
    pub(crate) fn acker(&self) -> Acker {
        Acker::new(
            self.commands_tx
                .clone()
                .expect("ackers are taken before the connection runs"),
            Arc::clone(&self.connection),
        )
    }

    /// Connects, and reconnects, until the writer disconnects, or until
    /// `stopping` and the connection is gone.
    pub(crate) async fn run(mut self, envelopes: QueueSender, stopping: CancellationToken) {
        self.commands_tx = None;
        let mut backoff = Duration::from_millis(200);
        loop {
            let ended = self.session(&envelopes, &mut backoff).await;
            self.connected.store(false, Ordering::Release);
            match ended {
                Ok(End::Disconnected) => {
                    tracing::info!("disconnected from the MQTT broker");
                    break;
                }
                Err(error) => {
                    if stopping.is_cancelled() {
                        break;
                    }
                    tracing::warn!(%error, broker = %self.broker, retry_in = ?backoff, "MQTT connection lost; reconnecting");
                    if !back_off(&stopping, &mut backoff).await {
                        break;
                    }
                }
            }
        }
    }

    /// One connection, from CONNECT until it ends.
    async fn session(
        &mut self,
        envelopes: &QueueSender,
        backoff: &mut Duration,
    ) -> std::result::Result<End, SessionError> {
        let mut connect = Connect::new(self.client_id.as_str());
        connect.keep_alive = u16::try_from(self.keep_alive.as_secs()).unwrap_or(u16::MAX);
        connect.clean_session = false;
        connect.login = self.login.clone();
        let (mut reader, mut write, connack) = open(&self.broker, connect).await?;
        let number = self.connection.fetch_add(1, Ordering::AcqRel) + 1;
        *backoff = Duration::from_millis(200);
        tracing::info!(
            connection = number,
            session_present = connack.session_present,
            "connected to the MQTT broker"
        );
        // Subscribe on every connection, even with a session present
        // (subscribing again is harmless): Mosquitto 2.0.11 restores a
        // persistent session's shared subscriptions after a restart in
        // name only, and says "session present" while delivering nothing.
        // Ready once the broker confirms.
        let mut subscribe = Subscribe::new_many(
            self.filters
                .iter()
                .map(|filter| SubscribeFilter::new(filter.clone(), QoS::AtLeastOnce)),
        );
        subscribe.pkid = 1;
        write.send(&Packet::Subscribe(subscribe)).await?;
        let reading = read_half(
            &mut reader,
            envelopes,
            number,
            self.keep_alive,
            &self.connected,
            &self.filters,
            &self.topic_prefix,
        );
        let writing = write_half(&mut write, &mut self.commands, number, self.keep_alive);
        tokio::select! {
            ended = reading => ended,
            ended = writing => ended,
        }
    }
}

/// Reads packets: publishes go to the queue (waiting while it is full,
/// which is how the broker is held back), SUBACK marks the subscription.
async fn read_half(
    reader: &mut PacketReader,
    envelopes: &QueueSender,
    connection: u64,
    keep_alive: Duration,
    connected: &AtomicBool,
    filters: &[String],
    topic_prefix: &str,
) -> std::result::Result<End, SessionError> {
    // The writing half pings every half keep-alive: a live broker is
    // never silent for this long.
    let silence = keep_alive * 2;
    loop {
        let packet = tokio::time::timeout(silence, reader.next())
            .await
            .map_err(|_| SessionError::Timeout(silence))??;
        match packet {
            Packet::Publish(publish) => {
                let envelope = envelope(publish, connection, topic_prefix);
                if envelopes.send(envelope).await.is_err() {
                    tracing::debug!("writer stopped; leaving further messages to the broker");
                }
            }
            Packet::SubAck(suback) => {
                let refused = suback
                    .return_codes
                    .iter()
                    .any(|code| matches!(code, SubscribeReasonCode::Failure));
                if refused {
                    tracing::error!(?filters, codes = ?suback.return_codes, "the broker refused a subscription (check its ACLs)");
                } else {
                    tracing::info!(?filters, "subscribed");
                }
                connected.store(true, Ordering::Release);
            }
            Packet::PingResp => {}
            other => tracing::debug!(packet = ?other, "ignored a packet from the broker"),
        }
    }
}

/// Writes acknowledgements as they come, many per socket write; pings
/// every half keep-alive; sends DISCONNECT when the writer is done.
async fn write_half(
    write: &mut PacketWriter,
    commands: &mut mpsc::UnboundedReceiver<Command>,
    connection: u64,
    keep_alive: Duration,
) -> std::result::Result<End, SessionError> {
    let mut ping = tokio::time::interval(keep_alive / 2);
    ping.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    ping.tick().await;
    let mut buffer = BytesMut::with_capacity(ACK_WRITE_BYTES);
    loop {
        let command = tokio::select! {
            command = commands.recv() => command,
            _ = ping.tick() => {
                write.send(&Packet::PingReq).await?;
                continue;
            }
        };
        buffer.clear();
        let mut next = command;
        let mut disconnect = false;
        loop {
            match next {
                Some(Command::Ack(ack)) => {
                    // An ack from an earlier connection would name another
                    // message on this one: leave it (the broker redelivers).
                    if ack.connection == connection {
                        encode(&Packet::PubAck(PubAck::new(ack.pkid)), &mut buffer)?;
                    }
                }
                Some(Command::Disconnect) | None => {
                    encode(&Packet::Disconnect, &mut buffer)?;
                    disconnect = true;
                    break;
                }
            }
            if buffer.len() >= ACK_WRITE_BYTES {
                break;
            }
            match commands.try_recv() {
                Ok(command) => next = Some(command),
                Err(_) => break,
            }
        }
        write.send_encoded(&buffer).await?;
        if disconnect {
            write.close().await;
            return Ok(End::Disconnected);
        }
    }
}

/// A publish as the writer takes it.
fn envelope(publish: Publish, connection: u64, topic_prefix: &str) -> Envelope {
    let target = parse_topic(&publish.topic, topic_prefix);
    // Subscribed at QoS 1, so the broker sends QoS 0 or 1.
    let ack = (publish.qos != QoS::AtMostOnce).then_some(PendingAck {
        pkid: publish.pkid,
        connection,
    });
    Envelope {
        source: crate::journal::Source::Mqtt,
        target,
        // A copy of its own: the payload would otherwise keep the whole
        // read buffer it came in alive while it waits in the queue.
        payload: bytes::Bytes::copy_from_slice(&publish.payload),
        received: EpochMillis::now(),
        ack,
        reply: None,
        oversized: None,
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
        assert_eq!(
            client_options("mqtts://host", "id")
                .unwrap()
                .broker_address()
                .1,
            8883
        );
        // TLS files with a plain URL: the operator meant TLS.
        let options = MqttOptions {
            url: "mqtt://user:pw@host".into(),
            tls: MqttTlsOptions {
                ca_file: Some("/etc/ca.pem".into()),
                ..MqttTlsOptions::default()
            },
            ..MqttOptions::default()
        };
        let error = Broker::new(&options).unwrap_err().to_string();
        assert!(
            error.contains("mqtts://") && !error.contains("pw"),
            "{error}"
        );
        let options = MqttOptions {
            url: "mqtts://host:9883".into(),
            ..MqttOptions::default()
        };
        assert_eq!(
            Broker::new(&options).unwrap().to_string(),
            "mqtts://host:9883"
        );
    }
}
