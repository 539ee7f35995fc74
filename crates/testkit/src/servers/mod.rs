//! Servers of a test's own, on free ports with their data in temporary
//! directories, for tests that stop, kill and restart a dependency without
//! disturbing the shared one: Mosquitto with the shipped configuration
//! ([`TestBroker`]), `influxd`, `redis-server` and a Postgres cluster.

mod broker;
mod influxd;
mod postgres;
mod redis;

pub use broker::{BrokerTls, TestBroker};
pub use influxd::TestInfluxServer;
pub use postgres::{TLS_SERVER_PASSWORD, TestPostgresServer};
pub use redis::TestRedisServer;

/// SIGTERM, then waits for the exit.
fn stop_child(child: &mut Option<std::process::Child>) {
    if let Some(mut running) = child.take() {
        let _ = std::process::Command::new("kill")
            .arg(running.id().to_string())
            .status();
        let _ = running.wait();
    }
}
