//! MQTT publishing with the broker's acknowledgement: a publish counts as
//! delivered only when its PUBACK arrives.
//!
//! One task owns rumqttc's event loop and is the only one to hand it
//! publishes, and it does so only while connected. rumqttc reports each
//! publish it sends as `Outgoing::Publish(pkid)`, in the order they were
//! handed over; the task keeps that order in a queue and so knows which
//! packet id is whose, then answers each caller when `PubAck(pkid)` comes.
//! The session is clean: when the connection breaks, rumqttc drops what was
//! not acknowledged, and so every caller then waiting is answered with the
//! error (the outbox retries them); nothing is left to be sent later
//! behind the task's back.

use std::collections::{HashMap, VecDeque};
use std::time::Duration;

use rumqttc::{AsyncClient, Event, Outgoing, Packet, QoS};
use tokio::sync::{mpsc, oneshot};
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use super::{Error, Result};

/// Publishes in flight at once, at most (the outbox sends no more).
pub(super) const MAX_IN_FLIGHT: usize = 64;

/// Largest MQTT packet sent: larger bodies fail their attempt (a packet
/// over rumqttc's limit would break the connection instead).
const MAX_PACKET_BYTES: usize = 1024 * 1024;

/// The first wait before reconnecting, doubled after every failure.
const FIRST_RECONNECT_DELAY: Duration = Duration::from_millis(250);
/// The longest wait before reconnecting.
const MAX_RECONNECT_DELAY: Duration = Duration::from_secs(5);

type Reply = oneshot::Sender<Result<(), String>>;

/// One publish to make.
struct Request {
    topic: String,
    body: String,
    /// When the caller gives up; a request still waiting for a connection
    /// then is answered with the connection's error.
    deadline: Instant,
    reply: Reply,
}

/// The broker alert notifications go to: its address, the client id, and
/// the TLS connector of an `mqtts://` broker. rumqttc runs without its
/// own TLS (it would bring a second, vulnerable, rustls-webpki), so a TLS
/// broker is reached through a [`stoker_tls::tunnel::Tunnel`].
#[derive(Clone)]
pub(super) struct Broker {
    address: stoker_domain::BrokerAddress,
    client_id: String,
    tls: Option<stoker_tls::Connector>,
}

impl std::fmt::Debug for Broker {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.describe())
    }
}

impl Broker {
    /// The broker of a URL, `mqtt[s]://[user:password@]host[:port]`; TLS
    /// set later by [`Broker::with_tls`].
    pub(super) fn parse(url: &str, client_id: String) -> Result<Self> {
        let address = stoker_domain::BrokerAddress::parse(url).map_err(|reason| Error::Config {
            variable: "MQTT_URL",
            reason: format!("{}: {reason}", stoker_domain::redact_url(url)),
        })?;
        let broker = Self {
            address,
            client_id,
            tls: None,
        };
        broker.with_tls(&stoker_tls::MqttTlsOptions::default())
    }

    /// With the TLS settings (the files read now).
    pub(super) fn with_tls(mut self, tls: &stoker_tls::MqttTlsOptions) -> Result<Self> {
        self.tls = tls
            .connector_for(&self.address)
            .map_err(|reason| Error::Config {
                variable: "MQTT_URL",
                reason,
            })?;
        Ok(self)
    }

    /// `mqtt[s]://host:port`, without credentials.
    pub(super) fn describe(&self) -> String {
        let scheme = if self.tls.is_some() { "mqtts" } else { "mqtt" };
        format!("{scheme}://{}:{}", self.address.host, self.address.port)
    }

    /// rumqttc options reaching the broker at `host:port` (or, with
    /// `Transport::Unix`, the tunnel's socket path in `host`).
    fn options(&self, host: String, port: u16) -> rumqttc::MqttOptions {
        let mut options = rumqttc::MqttOptions::new(self.client_id.clone(), host, port);
        if let Some((user, password)) = &self.address.credentials {
            options.set_credentials(user.clone(), password.clone());
        }
        options
            .set_clean_session(true)
            .set_keep_alive(Duration::from_secs(30))
            .set_max_packet_size(64 * 1024, MAX_PACKET_BYTES);
        options
    }

    /// The options to run rumqttc with, and the tunnel to keep open while
    /// it runs for a TLS broker.
    fn connect_options(
        &self,
    ) -> std::io::Result<(rumqttc::MqttOptions, Option<stoker_tls::tunnel::Tunnel>)> {
        let Some(connector) = &self.tls else {
            return Ok((
                self.options(self.address.host.clone(), self.address.port),
                None,
            ));
        };
        let tunnel = stoker_tls::tunnel::Tunnel::open(
            "alert notifications",
            self.address.host.clone(),
            self.address.port,
            connector.clone(),
        )?;
        let mut options = self.options(tunnel.path().display().to_string(), 0);
        options.set_transport(rumqttc::Transport::unix());
        Ok((options, Some(tunnel)))
    }
}

/// The handle the dispatcher publishes through.
#[derive(Debug)]
pub(super) struct Publisher {
    requests: mpsc::Sender<Request>,
}

impl std::fmt::Debug for Request {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Request")
            .field("topic", &self.topic)
            .field("bytes", &self.body.len())
            .finish()
    }
}

impl Publisher {
    /// Starts the task that owns the connection; it ends on `shutdown`
    /// (after a clean disconnect) or when every handle is dropped.
    pub(super) fn start(
        broker: Broker,
        shutdown: CancellationToken,
    ) -> (Self, tokio::task::JoinHandle<()>) {
        let (requests, receiver) = mpsc::channel(MAX_IN_FLIGHT);
        let task = tokio::spawn(run(broker, receiver, shutdown));
        (Self { requests }, task)
    }

    /// Publishes `body` on `topic` at QoS 1, not retained, and waits for
    /// the broker's acknowledgement, for `timeout` at most.
    pub(super) async fn publish(
        &self,
        topic: &str,
        body: &str,
        timeout: Duration,
    ) -> Result<(), String> {
        if topic.len() + body.len() + 16 > MAX_PACKET_BYTES {
            return Err(format!(
                "the body ({} bytes) is larger than an MQTT notification may be ({MAX_PACKET_BYTES} bytes)",
                body.len()
            ));
        }
        let (reply, answer) = oneshot::channel();
        let deadline = Instant::now() + timeout;
        let request = Request {
            topic: topic.to_owned(),
            body: body.to_owned(),
            deadline,
            reply,
        };
        // The task answers a request that waits for a connection by its
        // deadline, with the connection's error; this bound covers the
        // rest: a connection attempt under way, a broker that takes the
        // publish and never acknowledges it.
        let outcome = tokio::time::timeout_at(deadline + Duration::from_millis(100), async {
            self.requests
                .send(request)
                .await
                .map_err(|_| "the MQTT publisher has stopped".to_owned())?;
            answer
                .await
                .map_err(|_| "the MQTT publisher has stopped".to_owned())?
        })
        .await;
        outcome.unwrap_or_else(|_| {
            Err(format!(
                "the broker did not acknowledge the publish within {timeout:?}"
            ))
        })
    }
}

/// The connection's state, as the task sees it.
struct State {
    client: AsyncClient,
    connected: bool,
    /// Why the last connection failed or ended.
    last_error: Option<String>,
    /// Handed to rumqttc, waiting for their packet id, in order.
    awaiting_packet_id: VecDeque<Reply>,
    /// Sent, waiting for their PUBACK.
    awaiting_ack: HashMap<u16, Reply>,
    /// Waiting for a connection.
    waiting: VecDeque<Request>,
}

impl State {
    fn submit(&mut self, request: Request) {
        // A caller that gave up has counted the attempt as failed and will
        // make another: sending this one too would only send it twice.
        if request.reply.is_closed() {
            return;
        }
        if !self.connected {
            self.waiting.push_back(request);
            return;
        }
        match self.client.try_publish(
            request.topic,
            QoS::AtLeastOnce,
            false,
            request.body.into_bytes(),
        ) {
            Ok(()) => self.awaiting_packet_id.push_back(request.reply),
            Err(error) => {
                let _ = request
                    .reply
                    .send(Err(format!("cannot queue the publish: {error}")));
            }
        }
    }

    /// Answers every request in flight with `error`.
    fn fail_in_flight(&mut self, error: &str) {
        let failed = self
            .awaiting_packet_id
            .drain(..)
            .chain(self.awaiting_ack.drain().map(|(_, reply)| reply));
        for reply in failed {
            let _ = reply.send(Err(error.to_owned()));
        }
    }

    /// Answers every request with `error`.
    fn fail_all(&mut self, error: &str) {
        self.fail_in_flight(error);
        for request in self.waiting.drain(..) {
            let _ = request.reply.send(Err(error.to_owned()));
        }
    }

    /// Answers the waiting requests whose deadline has come.
    fn expire_waiting(&mut self, now: Instant) {
        while self
            .waiting
            .front()
            .is_some_and(|request| request.deadline <= now)
        {
            if let Some(request) = self.waiting.pop_front() {
                let reason = self.last_error.as_deref().unwrap_or("still connecting");
                let _ = request
                    .reply
                    .send(Err(format!("cannot reach the broker: {reason}")));
            }
        }
    }
}

async fn run(broker: Broker, mut requests: mpsc::Receiver<Request>, shutdown: CancellationToken) {
    let (options, tunnel) = match broker.connect_options() {
        Ok(opened) => opened,
        Err(error) => {
            tracing::error!(broker = %broker.describe(), %error, "cannot open the TLS link for alert notifications; MQTT notifications fail");
            fail_until_stopped(requests, shutdown, &error.to_string()).await;
            return;
        }
    };
    let broker = broker.describe();
    let (client, mut eventloop) = AsyncClient::new(options, MAX_IN_FLIGHT * 2);
    let mut state = State {
        client,
        connected: false,
        last_error: None,
        awaiting_packet_id: VecDeque::new(),
        awaiting_ack: HashMap::new(),
        waiting: VecDeque::new(),
    };
    let mut reconnect_delay = FIRST_RECONNECT_DELAY;
    let mut reconnect_at: Option<Instant> = None;
    loop {
        let next_expiry = state.waiting.front().map(|request| request.deadline);
        // While a connection attempt is under way, requests wait in the
        // channel: taking one would cancel the attempt and start it over.
        let connecting = !state.connected && reconnect_at.is_none();
        tokio::select! {
            () = shutdown.cancelled() => break,
            request = requests.recv(), if !connecting => match request {
                Some(request) => state.submit(request),
                None => break,
            },
            () = sleep_until(reconnect_at), if reconnect_at.is_some() => reconnect_at = None,
            () = sleep_until(next_expiry), if next_expiry.is_some() => state.expire_waiting(Instant::now()),
            // rumqttc's poll keeps its progress across cancellation: an
            // event produced but not returned is returned by the next poll.
            event = eventloop.poll(), if reconnect_at.is_none() => match event {
                Ok(Event::Incoming(Packet::ConnAck(_))) => {
                    state.connected = true;
                    reconnect_delay = FIRST_RECONNECT_DELAY;
                    if state.last_error.take().is_some() {
                        tracing::info!(%broker, "connected to the broker again: alert notifications are published");
                    } else {
                        tracing::debug!(%broker, "alert notifications connected to the broker");
                    }
                    for request in std::mem::take(&mut state.waiting) {
                        state.submit(request);
                    }
                }
                Ok(Event::Outgoing(Outgoing::Publish(packet_id))) => {
                    if let Some(reply) = state.awaiting_packet_id.pop_front() {
                        state.awaiting_ack.insert(packet_id, reply);
                    }
                }
                Ok(Event::Incoming(Packet::PubAck(ack))) => {
                    if let Some(reply) = state.awaiting_ack.remove(&ack.pkid) {
                        let _ = reply.send(Ok(()));
                    }
                }
                Ok(_) => {}
                Err(error) => {
                    // Through a tunnel, rumqttc sees a closed stream: the
                    // tunnel knows why (a certificate refused, …).
                    let error = tunnel
                        .as_ref()
                        .and_then(stoker_tls::tunnel::Tunnel::last_error)
                        .unwrap_or_else(|| error.to_string());
                    if state.connected || state.last_error.is_none() {
                        tracing::warn!(%broker, %error, retry_in = ?reconnect_delay, "cannot publish alert notifications: the broker connection failed; retrying");
                    } else {
                        tracing::debug!(%broker, %error, retry_in = ?reconnect_delay, "the broker is still unreachable");
                    }
                    state.connected = false;
                    state.fail_in_flight(&format!("the broker connection failed: {error}"));
                    state.last_error = Some(error);
                    reconnect_at = Some(Instant::now() + reconnect_delay);
                    reconnect_delay = (reconnect_delay * 2).min(MAX_RECONNECT_DELAY);
                }
            },
        }
    }
    state.fail_all("the MQTT publisher is shutting down");
    if state.connected && state.client.try_disconnect().is_ok() {
        let _ = tokio::time::timeout(Duration::from_secs(2), async {
            while let Ok(event) = eventloop.poll().await {
                if let Event::Outgoing(Outgoing::Disconnect) = event {
                    break;
                }
            }
        })
        .await;
    }
}

/// Answers every request with `error` until shut down.
async fn fail_until_stopped(
    mut requests: mpsc::Receiver<Request>,
    shutdown: CancellationToken,
    error: &str,
) {
    loop {
        tokio::select! {
            () = shutdown.cancelled() => return,
            request = requests.recv() => match request {
                Some(request) => {
                    let _ = request.reply.send(Err(format!("cannot reach the broker: {error}")));
                }
                None => return,
            },
        }
    }
}

async fn sleep_until(deadline: Option<Instant>) {
    match deadline {
        Some(deadline) => tokio::time::sleep_until(deadline).await,
        None => std::future::pending().await,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn broker_urls_are_checked() {
        let broker = Broker::parse("mqtt://alice:pw@broker.example:1884", "id".into()).unwrap();
        assert_eq!(broker.describe(), "mqtt://broker.example:1884");
        let (options, tunnel) = broker.connect_options().unwrap();
        assert_eq!(options.broker_address(), ("broker.example".into(), 1884));
        assert!(tunnel.is_none());
        assert_eq!(
            Broker::parse("mqtt://127.0.0.1", "id".into())
                .unwrap()
                .describe(),
            "mqtt://127.0.0.1:1883"
        );
        // TLS files for a plain URL: the operator meant TLS.
        let tls = stoker_tls::MqttTlsOptions {
            ca_file: Some("/nonexistent/ca.pem".into()),
            ..Default::default()
        };
        let error = Broker::parse("mqtt://alice:pw@broker.example", "id".into())
            .unwrap()
            .with_tls(&tls)
            .unwrap_err()
            .to_string();
        assert!(
            error.contains("MQTT_URL") && error.contains("mqtts"),
            "{error}"
        );
        let error = Broker::parse("mqtts://alice:pw@broker.example", "id".into())
            .unwrap()
            .with_tls(&tls)
            .unwrap_err()
            .to_string();
        assert!(error.contains("/nonexistent/ca.pem"), "{error}");
        assert!(!error.contains("pw"), "{error}");
        let error = Broker::parse("http://alice:pw@host", "id".into())
            .unwrap_err()
            .to_string();
        assert!(!error.contains("pw"), "{error}");
        assert!(Broker::parse("not a url", "id".into()).is_err());
    }
}
