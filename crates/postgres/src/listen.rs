//! A LISTEN on one channel, on a connection of its own (a pooled
//! connection cannot receive notifications), kept open until shutdown.
//!
//! Notifications sent while no connection listened are lost to it, so the
//! listener reports [`Notice::Listening`] after every (re)connection: the
//! caller treats it as "anything may have changed". What a payload means
//! is the caller's (metadata's change feed, the notification outbox's
//! wake-ups).

use std::time::Duration;

use futures::StreamExt;
use tokio_postgres::AsyncMessage;
use tokio_util::sync::CancellationToken;

use crate::PgConnector;

/// What a listener reports to its caller.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Notice<'a> {
    /// The LISTEN is in place (after every (re)connection).
    Listening,
    /// A notification arrived with this payload.
    Notification(&'a str),
}

/// A connection that ended before shutdown, reported before the wait to
/// reconnect, so that the caller words its own log line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Lost {
    /// Whether the LISTEN had been in place on that connection (the wait
    /// then starts again from the first backoff).
    pub listened: bool,
    /// Why the connection ended.
    pub error: String,
    /// How long the listener waits before it reconnects.
    pub retry_in: Duration,
}

/// A LISTEN on `channel`, reconnecting with a backoff that doubles after
/// every failure, from `first_backoff` up to `max_backoff`, and starts
/// over once a connection has listened.
#[derive(Debug, Clone)]
pub struct Listener {
    connector: PgConnector,
    channel: &'static str,
    first_backoff: Duration,
    max_backoff: Duration,
}

impl Listener {
    /// A listener on `channel` (a constant of the caller, never input)
    /// through a connection made by `connector`; backoff from 250 ms to 10 s.
    pub fn new(connector: PgConnector, channel: &'static str) -> Self {
        Self {
            connector,
            channel,
            first_backoff: Duration::from_millis(250),
            max_backoff: Duration::from_secs(10),
        }
    }

    /// The same listener with another backoff.
    pub fn with_backoff(self, first_backoff: Duration, max_backoff: Duration) -> Self {
        Self {
            first_backoff,
            max_backoff,
            ..self
        }
    }

    /// Listens until `shutdown`: `notice` hears every (re)connection and
    /// every notification, `lost` every connection that ended (or could
    /// not be made) before shutdown.
    pub async fn run(
        self,
        shutdown: CancellationToken,
        mut notice: impl FnMut(Notice<'_>),
        mut lost: impl FnMut(&Lost),
    ) {
        let mut backoff = self.first_backoff;
        while !shutdown.is_cancelled() {
            let (listened, error) = match self.listen_once(&mut notice, &shutdown).await {
                Ok(()) => return,
                Err(failure) => failure,
            };
            if listened {
                backoff = self.first_backoff;
            }
            lost(&Lost {
                listened,
                error,
                retry_in: backoff,
            });
            tokio::select! {
                () = shutdown.cancelled() => return,
                () = tokio::time::sleep(backoff) => {}
            }
            backoff = (backoff * 2).min(self.max_backoff);
        }
    }

    /// One connection's life: `Ok` on shutdown, else whether the LISTEN
    /// had been in place and why the connection ended.
    async fn listen_once(
        &self,
        notice: &mut impl FnMut(Notice<'_>),
        shutdown: &CancellationToken,
    ) -> Result<(), (bool, String)> {
        let connect = tokio::select! {
            () = shutdown.cancelled() => return Ok(()),
            connect = self.connector.connect() => connect,
        };
        let (client, mut connection) =
            connect.map_err(|error| (false, crate::error_chain(&error)))?;
        // The connection delivers the LISTEN's answer and the notifications
        // only while it is polled, so one loop drives both.
        let mut messages =
            futures::stream::poll_fn(move |context| connection.poll_message(context));
        let statement = format!("LISTEN {}", self.channel);
        let listen = client.batch_execute(&statement);
        tokio::pin!(listen);
        let mut listening = false;
        loop {
            tokio::select! {
                // Shutdown first, then the LISTEN's answer before the
                // messages read after it.
                biased;
                () = shutdown.cancelled() => return Ok(()),
                answer = &mut listen, if !listening => {
                    answer.map_err(|error| (false, crate::error_chain(&error)))?;
                    listening = true;
                    tracing::debug!(channel = self.channel, "listening");
                    notice(Notice::Listening);
                }
                message = messages.next() => match message {
                    Some(Ok(AsyncMessage::Notification(notification))) => {
                        notice(Notice::Notification(notification.payload()));
                    }
                    Some(Ok(_)) => {}
                    Some(Err(error)) => return Err((listening, crate::error_chain(&error))),
                    None => return Err((listening, "the connection closed".to_owned())),
                },
            }
        }
    }
}
