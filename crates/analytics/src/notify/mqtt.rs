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

/// rumqttc options for a broker URL, `mqtt://[user:password@]host[:port]`.
pub(super) fn client_options(url: &str, client_id: String) -> Result<rumqttc::MqttOptions> {
    let invalid = |reason: String| Error::Config {
        variable: "MQTT_URL",
        reason: format!("{}: {reason}", stoker_domain::redact_url(url)),
    };
    let address = stoker_domain::BrokerAddress::parse(url).map_err(invalid)?;
    let mut options = rumqttc::MqttOptions::new(client_id, address.host, address.port);
    if let Some((user, password)) = address.credentials {
        options.set_credentials(user, password);
    }
    options
        .set_clean_session(true)
        .set_keep_alive(Duration::from_secs(30))
        .set_max_packet_size(64 * 1024, MAX_PACKET_BYTES);
    Ok(options)
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
        options: rumqttc::MqttOptions,
        shutdown: CancellationToken,
    ) -> (Self, tokio::task::JoinHandle<()>) {
        let (requests, receiver) = mpsc::channel(MAX_IN_FLIGHT);
        let task = tokio::spawn(run(options, receiver, shutdown));
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

async fn run(
    options: rumqttc::MqttOptions,
    mut requests: mpsc::Receiver<Request>,
    shutdown: CancellationToken,
) {
    let broker = format!(
        "{}:{}",
        options.broker_address().0,
        options.broker_address().1
    );
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
                    let error = error.to_string();
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
        let options = client_options("mqtt://alice:pw@broker.example:1884", "id".into()).unwrap();
        assert_eq!(options.broker_address(), ("broker.example".into(), 1884));
        assert_eq!(
            client_options("mqtt://127.0.0.1", "id".into())
                .unwrap()
                .broker_address()
                .1,
            1883
        );
        let error = client_options("mqtts://alice:pw@broker.example", "id".into())
            .unwrap_err()
            .to_string();
        assert!(
            error.contains("MQTT_URL") && error.contains("mqtts"),
            "{error}"
        );
        assert!(!error.contains("pw"), "{error}");
        assert!(client_options("not a url", "id".into()).is_err());
    }
}
