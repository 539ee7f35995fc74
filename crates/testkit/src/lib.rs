//! Test support: every test gets its own Postgres database, InfluxDB
//! database, Redis key prefix and MQTT topic prefix on the real local
//! servers, so tests run in parallel and leave nothing behind.
//!
//! Each resource is removed when its guard drops. Postgres database names
//! carry their creation time, and creating one also drops test databases
//! older than an hour, which a killed test run may have left behind.
//!
//! ```no_run
//! # async fn example() {
//! let postgres = stoker_testkit::TestPostgres::create().await;
//! let influx = stoker_testkit::TestInflux::create().await;
//! let redis = stoker_testkit::TestRedis::new();
//! let topics = stoker_testkit::unique_topic_prefix();
//! # }
//! ```

mod influx;
mod mqtt;
mod ports;
mod postgres;
mod redis;
mod servers;
pub mod stoker;
mod tls;

use std::time::{Duration, SystemTime, UNIX_EPOCH};

pub use influx::{TestInflux, influx_options};
pub use mqtt::{
    SYSTEM_BROKER_PORT, clear_mqtt_session, clear_mqtt_session_to, publish_qos1, publish_qos1_to,
    unique_topic_prefix,
};
pub use ports::{free_port, wait_for_port};
pub use postgres::TestPostgres;
pub use redis::{TestRedis, redis_url};
pub use servers::{
    BrokerTls, TLS_SERVER_PASSWORD, TestBroker, TestInfluxServer, TestPostgresServer,
    TestRedisServer,
};
pub use stoker::{StokerCommand, StokerError, StokerProcess, TempDir};
pub use tls::{CertFiles, TestCa};

/// Test databases older than this are taken for leftovers of a killed run.
const STALE_AFTER: Duration = Duration::from_secs(3600);

fn unique_name(prefix: &str) -> String {
    let created = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default()
        .as_secs();
    format!("{prefix}_{created}_{}", uuid::Uuid::new_v4().simple())
}

/// Whether a name made by [`unique_name`] is older than [`STALE_AFTER`].
fn is_stale(name: &str, prefix: &str) -> bool {
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default()
        .as_secs();
    name.strip_prefix(prefix)
        .and_then(|rest| rest.strip_prefix('_'))
        .and_then(|rest| rest.split('_').next())
        .and_then(|secs| secs.parse::<u64>().ok())
        .is_some_and(|created| now.saturating_sub(created) > STALE_AFTER.as_secs())
}

/// Runs async cleanup from `Drop`, on a thread of its own so it works
/// whether or not the dropping thread is inside a runtime (for tests'
/// own guards too).
pub fn cleanup<F>(work: F)
where
    F: std::future::Future<Output = ()> + Send + 'static,
{
    let thread = std::thread::spawn(move || {
        if let Ok(runtime) = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
        {
            runtime.block_on(work);
        }
    });
    let _ = thread.join();
}

/// Polls `condition` every 20 ms until it holds; panics with `what` after
/// `limit`.
pub async fn wait_until<F: FnMut() -> bool>(what: &str, limit: Duration, mut condition: F) {
    let deadline = tokio::time::Instant::now() + limit;
    while !condition() {
        assert!(
            tokio::time::Instant::now() < deadline,
            "timed out after {limit:?} waiting until {what}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// A unique MQTT client id with a readable stem.
pub fn unique_client_id(stem: &str) -> String {
    format!("{stem}-{}", uuid::Uuid::new_v4().simple())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stale_names_are_recognised_by_their_timestamp() {
        assert!(is_stale("stoker_test_1000_abc", "stoker_test"));
        assert!(!is_stale(&unique_name("stoker_test"), "stoker_test"));
        assert!(!is_stale("stoker_other_1000_abc", "stoker_test"));
    }
}
