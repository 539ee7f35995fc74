//! Redis access for Stoker. Redis is only ever a cache: everything here can
//! be rebuilt from InfluxDB and Postgres, and every caller carries on when
//! Redis is away.
//!
//! Layout:
//! - [`RedisOptions`]: `REDIS_URL`, `REDIS_KEY_PREFIX`.
//! - [`Cache`]: a self-reconnecting connection; the only place that builds
//!   Redis keys (`{prefix}latest:{site}:{sensor}`, …, see DESIGN.md).
//! - latest values: [`Cache::set_latest`] writes a whole batch in one round
//!   trip through a Lua script that compares timestamps inside Redis, so a
//!   late, older reading never replaces a newer one.
//! - caches: dashboards (`dashboard:{site}`, 60 s) and alert-rule previews
//!   (`analytics:preview:{digest}`, 30 min).
//!
//! ```no_run
//! # async fn example() -> stoker_cache::Result<()> {
//! use stoker_cache::{Cache, RedisOptions};
//! let cache = Cache::connect(&RedisOptions::default())?;
//! cache.ping().await?;
//! # Ok(()) }
//! ```

mod alert_state;
mod dashboard;
mod latest;
mod preview;

use std::time::Duration;

use redis::aio::{ConnectionManager, ConnectionManagerConfig};

pub use alert_state::{ALERT_STATE_TTL, AlertStateKey};
pub use dashboard::DASHBOARD_TTL;
pub use latest::{LatestSlot, LatestValue};
pub use preview::ANALYTICS_TTL;

/// How long a latest value lives: a sensor silent for longer shows as stale.
pub const LATEST_TTL: Duration = Duration::from_secs(300);

/// How to reach Redis.
#[derive(Debug, Clone, clap::Args)]
pub struct RedisOptions {
    /// Redis URL (redis:// or rediss://, optionally with user:password@).
    #[arg(
        id = "redis_url",
        long = "redis-url",
        env = "REDIS_URL",
        default_value = "redis://127.0.0.1:6379",
        hide_env_values = true
    )]
    pub url: String,

    /// Prefix of every key Stoker writes, to share a Redis with others.
    #[arg(
        id = "redis_key_prefix",
        long = "redis-key-prefix",
        env = "REDIS_KEY_PREFIX",
        default_value = ""
    )]
    pub key_prefix: String,

    /// PEM file of the CA that signed Redis's certificate (rediss:// only); unset: the system's trusted roots. The certificate must be valid for the URL's host.
    #[arg(id = "redis_ca_file", long = "redis-ca-file", env = "REDIS_CA_FILE")]
    pub ca_file: Option<std::path::PathBuf>,
}

impl Default for RedisOptions {
    fn default() -> Self {
        Self {
            url: "redis://127.0.0.1:6379".into(),
            key_prefix: String::new(),
            ca_file: None,
        }
    }
}

/// What can go wrong with Redis.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// `REDIS_URL` is not a Redis URL.
    #[error("REDIS_URL is invalid: {0}")]
    InvalidUrl(String),
    /// Redis did not answer, or answered with an error.
    #[error("Redis is unavailable: {0}")]
    Unavailable(#[from] redis::RedisError),
    /// A cached value could not be decoded (written by something else).
    #[error("cached value at {key} is invalid: {reason}")]
    InvalidValue {
        /// The key.
        key: String,
        /// Why it was refused.
        reason: String,
    },
}

/// Result with this crate's [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// A connection to Redis that reconnects by itself. Cheap to clone.
#[derive(Clone)]
pub struct Cache {
    connection: ConnectionManager,
    prefix: String,
}

impl std::fmt::Debug for Cache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Cache")
            .field("prefix", &self.prefix)
            .finish()
    }
}

impl Cache {
    /// Prepares a connection. It opens lazily, so this succeeds while Redis
    /// is down; calls fail fast until it is back.
    pub fn connect(options: &RedisOptions) -> Result<Self> {
        let invalid =
            |error: redis::RedisError| Error::InvalidUrl(redact(&error.to_string(), &options.url));
        let client = match &options.ca_file {
            None => redis::Client::open(options.url.as_str()).map_err(invalid)?,
            Some(ca_file) => {
                if !options.url.starts_with("rediss://") {
                    return Err(Error::InvalidUrl(
                        "REDIS_CA_FILE is set but REDIS_URL is not rediss://: use rediss:// for TLS".into(),
                    ));
                }
                let root_cert = std::fs::read(ca_file).map_err(|error| {
                    Error::InvalidUrl(format!(
                        "cannot read REDIS_CA_FILE {}: {error}",
                        ca_file.display()
                    ))
                })?;
                let certificates = redis::TlsCertificates {
                    client_tls: None,
                    root_cert: Some(root_cert),
                };
                redis::Client::build_with_tls(options.url.as_str(), certificates)
                    .map_err(invalid)?
            }
        };
        // Short timeouts and no retries inside a call: callers treat Redis as
        // optional and must not stall behind it.
        let config = ConnectionManagerConfig::new()
            .set_connection_timeout(Some(Duration::from_secs(1)))
            .set_response_timeout(Some(Duration::from_secs(2)))
            .set_number_of_retries(1)
            .set_max_delay(Duration::from_secs(2));
        let connection = ConnectionManager::new_lazy_with_config(client, config)
            .map_err(|error| Error::InvalidUrl(error.to_string()))?;
        Ok(Self {
            connection,
            prefix: options.key_prefix.clone(),
        })
    }

    /// Checks that Redis answers.
    pub async fn ping(&self) -> Result<()> {
        let mut connection = self.connection.clone();
        redis::cmd("PING")
            .query_async::<()>(&mut connection)
            .await?;
        Ok(())
    }

    fn key(&self, parts: &[&str]) -> String {
        let length = self.prefix.len() + parts.iter().map(|part| part.len() + 1).sum::<usize>();
        let mut key = String::with_capacity(length);
        key.push_str(&self.prefix);
        for (index, part) in parts.iter().enumerate() {
            if index > 0 {
                key.push(':');
            }
            key.push_str(part);
        }
        key
    }
}

/// Removes the URL (which may carry a password) from a message.
fn redact(message: &str, url: &str) -> String {
    message.replace(url, "<REDIS_URL>")
}
