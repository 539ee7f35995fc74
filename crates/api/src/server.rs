//! The HTTP/1.1 server under the routes: hyper, set up with the limits
//! warp's own `warp::serve` leaves open (it sets no timer, so hyper's
//! header timeout never runs, and keeps hyper's 400 KB head buffer).
//!
//! - The request line and headers must arrive within
//!   [`HttpOptions::header_timeout`](crate::HttpOptions): a client that
//!   sends them a byte at a time (slowloris), or nothing at all, is
//!   disconnected. The same timer bounds how long a kept-alive connection
//!   may sit idle between requests.
//! - The head is at most [`MAX_HEAD_BYTES`] and [`MAX_HEADERS`] headers:
//!   more is answered 431 by hyper and the connection closed.
//! - A request body must have arrived within
//!   [`HttpOptions::body_timeout`](crate::HttpOptions) of its head: the
//!   body then fails with [`BodyTimeout`], which the route answers 408.
//! - Only HTTP/1.1 (and 1.0): warp's server also took cleartext HTTP/2
//!   with prior knowledge, which no client of this API uses and which the
//!   header timeout does not cover.
//!
//! - At most [`Limits::max_connections`] connections at once
//!   (`HTTP_MAX_CONNECTIONS`, a TLS handshake under way included): at the
//!   cap the server stops accepting, and new connections wait in the
//!   kernel's backlog until one closes (an idle kept-alive one does within
//!   the header timeout). Waiting rather than refusing: a burst of clients
//!   is served late instead of failed, and a refused client would only
//!   reconnect at once; when the backlog is full too, the kernel refuses.
//!   Reaching the cap is logged (at most once a minute).
//!
//! A connection that ends in an error (a timeout, a malformed request, a
//! client gone) is logged at debug level: clients can cause them at will,
//! so they are not the server's errors.

use std::convert::Infallible;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;

use hyper::body::{Body, Frame, Incoming, SizeHint};
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio_util::sync::CancellationToken;

/// Largest request head (request line and headers) in bytes. hyper's
/// buffer holds the head whole before parsing it; the least it allows is
/// 8 KiB.
pub(crate) const MAX_HEAD_BYTES: usize = 16 * 1024;

/// Most headers in one request (hyper's default).
pub(crate) const MAX_HEADERS: usize = 100;

/// How often reaching the connection cap is logged, at most.
const CAP_WARNING_INTERVAL: Duration = Duration::from_secs(60);

/// The limits of one server.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Limits {
    pub header_timeout: Duration,
    pub body_timeout: Duration,
    /// Connections held at once, at most (at least 1).
    pub max_connections: usize,
}

/// The body did not arrive within the body timeout.
#[derive(Debug, Clone, Copy)]
pub(crate) struct BodyTimeout(pub Duration);

impl std::fmt::Display for BodyTimeout {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "the request body did not arrive within {}",
            humantime::format_duration(self.0)
        )
    }
}

impl std::error::Error for BodyTimeout {}

/// A request body that fails with [`BodyTimeout`] once its deadline
/// passes.
#[derive(Debug)]
pub(crate) struct TimedBody {
    inner: Incoming,
    limit: Duration,
    /// None for a body that is already complete (no timer needed).
    deadline: Option<Pin<Box<tokio::time::Sleep>>>,
}

impl TimedBody {
    fn new(inner: Incoming, limit: Duration) -> Self {
        let deadline = (!inner.is_end_stream()).then(|| Box::pin(tokio::time::sleep(limit)));
        Self {
            inner,
            limit,
            deadline,
        }
    }
}

impl Body for TimedBody {
    type Data = Bytes;
    type Error = Box<dyn std::error::Error + Send + Sync>;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Self::Data>, Self::Error>>> {
        let this = self.get_mut();
        if let Poll::Ready(frame) = Pin::new(&mut this.inner).poll_frame(cx) {
            return Poll::Ready(frame.map(|frame| frame.map_err(Into::into)));
        }
        if let Some(deadline) = &mut this.deadline
            && deadline.as_mut().poll(cx).is_ready()
        {
            return Poll::Ready(Some(Err(Box::new(BodyTimeout(this.limit)))));
        }
        Poll::Pending
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

/// Serves `service` (a warp filter as a service) on `listener` until
/// `shutdown`, then waits for the requests in flight. With `tls`, every
/// connection is HTTPS (a plain-HTTP client fails the handshake), the
/// handshake bounded by the header timeout.
pub(crate) async fn run<S>(
    listener: tokio::net::TcpListener,
    service: S,
    limits: Limits,
    tls: Option<stoker_tls::TlsAcceptor>,
    shutdown: CancellationToken,
) where
    S: tower_service::Service<
            hyper::Request<TimedBody>,
            Response = warp::reply::Response,
            Error = Infallible,
        > + Clone
        + Send
        + 'static,
    S::Future: Send + 'static,
{
    let graceful = Arc::new(hyper_util::server::graceful::GracefulShutdown::new());
    let slots = Arc::new(Semaphore::new(
        limits.max_connections.clamp(1, Semaphore::MAX_PERMITS),
    ));
    let mut warned_at: Option<tokio::time::Instant> = None;
    loop {
        // A slot first: at the cap nothing is accepted until one frees.
        let permit = match Arc::clone(&slots).try_acquire_owned() {
            Ok(permit) => permit,
            Err(_) => {
                if warned_at.is_none_or(|at| at.elapsed() >= CAP_WARNING_INTERVAL) {
                    tracing::warn!(
                        max_connections = limits.max_connections,
                        "the listener holds its most connections (HTTP_MAX_CONNECTIONS): new ones wait until one closes"
                    );
                    warned_at = Some(tokio::time::Instant::now());
                }
                tokio::select! {
                    permit = Arc::clone(&slots).acquire_owned() => match permit {
                        Ok(permit) => permit,
                        // Never closed; were it, nothing more could be served.
                        Err(_) => break,
                    },
                    () = shutdown.cancelled() => break,
                }
            }
        };
        let stream = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((stream, _)) => stream,
                Err(error) => {
                    // Out of file descriptors and the like: wait a little
                    // rather than spin.
                    tracing::warn!(%error, "cannot accept a connection");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            },
            () = shutdown.cancelled() => break,
        };
        let service = service.clone();
        match &tls {
            None => serve_connection(stream, service, limits, &graceful, permit),
            Some(acceptor) => {
                let acceptor = acceptor.clone();
                let graceful = Arc::clone(&graceful);
                tokio::spawn(async move {
                    match tokio::time::timeout(limits.header_timeout, acceptor.accept(stream)).await
                    {
                        Ok(Ok(stream)) => {
                            serve_connection(stream, service, limits, &graceful, permit);
                        }
                        Ok(Err(error)) => tracing::debug!(%error, "TLS handshake failed"),
                        Err(_) => tracing::debug!("TLS handshake timed out"),
                    }
                });
            }
        }
    }
    drop(listener);
    match Arc::try_unwrap(graceful) {
        Ok(graceful) => graceful.shutdown().await,
        // A handshake under way still holds it: it ends within the
        // header timeout, and its connection with the process.
        Err(graceful) => {
            tokio::time::sleep(limits.header_timeout).await;
            if let Ok(graceful) = Arc::try_unwrap(graceful) {
                graceful.shutdown().await;
            }
        }
    }
}

/// Serves HTTP/1.1 on one connection (plain or TLS), watched by `graceful`;
/// its slot (`permit`) frees when it ends.
fn serve_connection<S, IO>(
    stream: IO,
    service: S,
    limits: Limits,
    graceful: &hyper_util::server::graceful::GracefulShutdown,
    permit: OwnedSemaphorePermit,
) where
    S: tower_service::Service<
            hyper::Request<TimedBody>,
            Response = warp::reply::Response,
            Error = Infallible,
        > + Clone
        + Send
        + 'static,
    S::Future: Send + 'static,
    IO: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    let body_timeout = limits.body_timeout;
    let hyper_service = hyper::service::service_fn(move |request: hyper::Request<Incoming>| {
        let mut service = service.clone();
        tower_service::Service::call(
            &mut service,
            request.map(|body| TimedBody::new(body, body_timeout)),
        )
    });
    let connection = hyper::server::conn::http1::Builder::new()
        .timer(TokioTimer::new())
        .header_read_timeout(limits.header_timeout)
        .max_buf_size(MAX_HEAD_BYTES)
        .max_headers(MAX_HEADERS)
        .serve_connection(TokioIo::new(stream), hyper_service);
    let connection = graceful.watch(connection);
    tokio::spawn(async move {
        if let Err(error) = connection.await {
            tracing::debug!(%error, "HTTP connection ended with an error");
        }
        drop(permit);
    });
}

/// Whether `error` is, or was caused by, a [`BodyTimeout`].
pub(crate) fn body_timeout(error: &(dyn std::error::Error + 'static)) -> Option<BodyTimeout> {
    let mut cause = Some(error);
    while let Some(error) = cause {
        if let Some(timeout) = error.downcast_ref::<BodyTimeout>() {
            return Some(*timeout);
        }
        cause = error.source();
    }
    None
}
