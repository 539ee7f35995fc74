//! The settings of the HTTP listeners: address, client timeouts, the
//! connection cap and the keys' request-rate budget.

use std::net::SocketAddr;
use std::time::Duration;

use crate::rate_limit::{KeyBudget, RequestRate, parse_burst};
use crate::server;

/// Where the API listens, how long it waits for a client, how many
/// connections it holds, and how fast each key may send.
#[derive(Debug, Clone, clap::Args)]
pub struct HttpOptions {
    /// Address the HTTP API listens on.
    #[arg(
        id = "http_addr",
        long = "http-addr",
        env = "HTTP_ADDR",
        default_value = "127.0.0.1:8080"
    )]
    pub addr: SocketAddr,
    /// A request's line and headers must arrive within this, or the
    /// connection is closed (slow or stalled clients); also how long a
    /// kept-alive connection may idle between requests.
    #[arg(
        id = "http_header_timeout",
        long = "http-header-timeout",
        env = "HTTP_HEADER_TIMEOUT",
        default_value = "10s",
        value_parser = parse_timeout
    )]
    pub header_timeout: Duration,
    /// A request's body must arrive within this of its headers, or the
    /// request is answered 408.
    #[arg(
        id = "http_body_timeout",
        long = "http-body-timeout",
        env = "HTTP_BODY_TIMEOUT",
        default_value = "60s",
        value_parser = parse_timeout
    )]
    pub body_timeout: Duration,
    /// How many connections the listener holds.
    #[command(flatten)]
    pub connections: ConnectionOptions,
    /// Requests each API key may send, per second by default (`50000`,
    /// `50000/s`, `600/min`, `3600/h`); past it, 429 with Retry-After.
    #[arg(
        id = "api_key_rate",
        long = "api-key-rate",
        env = "API_KEY_RATE",
        default_value = "50000/s"
    )]
    pub key_rate: RequestRate,
    /// Requests a key that sent nothing for a while may send at once;
    /// unset: as many as API_KEY_RATE names.
    #[arg(
        id = "api_key_burst",
        long = "api-key-burst",
        env = "API_KEY_BURST",
        value_parser = parse_burst
    )]
    pub key_burst: Option<u32>,
    /// HTTPS: the certificate and key of the listener.
    #[command(flatten)]
    pub tls: stoker_tls::server::ServerTlsOptions,
}

impl Default for HttpOptions {
    fn default() -> Self {
        let budget = KeyBudget::default();
        Self {
            addr: SocketAddr::from(([127, 0, 0, 1], 8080)),
            header_timeout: Duration::from_secs(10),
            body_timeout: Duration::from_secs(60),
            connections: ConnectionOptions::default(),
            key_rate: budget.rate,
            key_burst: None,
            tls: stoker_tls::server::ServerTlsOptions::default(),
        }
    }
}

impl HttpOptions {
    /// What each key may send: `API_KEY_RATE`, with a burst of
    /// `API_KEY_BURST` or else the rate's number of requests.
    pub fn key_budget(&self) -> KeyBudget {
        KeyBudget {
            rate: self.key_rate,
            burst: self.key_burst.unwrap_or(self.key_rate.requests()),
        }
    }

    pub(crate) fn limits(&self) -> server::Limits {
        server::Limits {
            header_timeout: self.header_timeout,
            body_timeout: self.body_timeout,
            max_connections: self.connections.max_connections,
        }
    }
}

/// How many connections a listener (the API's, or the `/healthz`,
/// `/readyz`, `/metrics` one of `stoker ingest` and `stoker analytics`)
/// holds at once.
#[derive(Debug, Clone, Copy, clap::Args)]
pub struct ConnectionOptions {
    /// Most connections the listener holds at once; past it, new ones wait
    /// unaccepted (in the kernel's backlog) until one closes.
    #[arg(
        id = "http_max_connections",
        long = "http-max-connections",
        env = "HTTP_MAX_CONNECTIONS",
        default_value = "4096",
        value_parser = parse_max_connections
    )]
    pub max_connections: usize,
}

impl ConnectionOptions {
    /// The default cap (DESIGN.md's 4,096).
    pub const DEFAULT_MAX_CONNECTIONS: usize = 4096;
    /// The largest cap taken (file descriptors run out long before).
    pub const MAX_MAX_CONNECTIONS: usize = 1_000_000;
}

impl Default for ConnectionOptions {
    fn default() -> Self {
        Self {
            max_connections: Self::DEFAULT_MAX_CONNECTIONS,
        }
    }
}

/// A connection cap of at least 1 and at most a million.
fn parse_max_connections(text: &str) -> Result<usize, String> {
    match text.trim().parse::<usize>() {
        Ok(cap) if (1..=ConnectionOptions::MAX_MAX_CONNECTIONS).contains(&cap) => Ok(cap),
        _ => Err(format!(
            "{text:?} is not a connection limit: a whole number from 1 to {}",
            ConnectionOptions::MAX_MAX_CONNECTIONS
        )),
    }
}

/// A timeout of at least 1 ms and at most an hour.
fn parse_timeout(text: &str) -> Result<Duration, String> {
    let duration = stoker_domain::parse_duration(text).map_err(|error| error.to_string())?;
    if duration < Duration::from_millis(1) || duration > Duration::from_secs(3600) {
        return Err(format!("{text:?} must be between 1ms and 1h"));
    }
    Ok(duration)
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[derive(Debug, Parser)]
    struct Command {
        #[command(flatten)]
        http: HttpOptions,
    }

    #[test]
    fn the_defaults_are_designs() {
        let parsed = Command::try_parse_from(["stoker"]).unwrap().http;
        assert_eq!(parsed.connections.max_connections, 4096);
        assert_eq!(parsed.key_budget(), KeyBudget::default());
        assert_eq!(
            parsed.key_budget().to_string(),
            "50000/s with a burst of 50000"
        );
        let default = HttpOptions::default();
        assert_eq!(default.key_budget(), parsed.key_budget());
        assert_eq!(
            default.connections.max_connections,
            parsed.connections.max_connections
        );
    }

    #[test]
    fn the_burst_follows_the_rate_unless_set() {
        let parsed = Command::try_parse_from(["stoker", "--api-key-rate", "600/min"])
            .unwrap()
            .http;
        assert_eq!(parsed.key_budget().burst, 600);
        let parsed = Command::try_parse_from([
            "stoker",
            "--api-key-rate",
            "50",
            "--api-key-burst",
            "5",
            "--http-max-connections",
            "2",
        ])
        .unwrap()
        .http;
        assert_eq!(parsed.key_budget().to_string(), "50/s with a burst of 5");
        assert_eq!(parsed.connections.max_connections, 2);
        for bad in [
            ["--api-key-rate", "0"],
            ["--api-key-burst", "0"],
            ["--http-max-connections", "0"],
            ["--http-max-connections", "many"],
        ] {
            let arguments = ["stoker", bad[0], bad[1]];
            assert!(Command::try_parse_from(arguments).is_err(), "{bad:?}");
        }
    }
}
