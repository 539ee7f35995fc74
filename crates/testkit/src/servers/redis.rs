//! `redis-server` of a test's own.

use crate::ports::{free_port, wait_for_port};
use crate::servers::stop_child;

/// A Redis server of the test's own on a free port (nothing persisted),
/// for tests that stop Redis. Killed on drop.
#[derive(Debug)]
pub struct TestRedisServer {
    port: u16,
    child: Option<std::process::Child>,
}

impl TestRedisServer {
    /// Starts `redis-server` and waits until it accepts connections.
    pub async fn start() -> Self {
        let mut server = Self {
            port: free_port(),
            child: None,
        };
        server.spawn().await;
        server
    }

    async fn spawn(&mut self) {
        let child = std::process::Command::new("redis-server")
            .args([
                "--bind",
                "127.0.0.1",
                "--port",
                &self.port.to_string(),
                "--save",
                "",
                "--appendonly",
                "no",
            ])
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .expect("redis-server must be installed (scripts/dev-up installs it)");
        self.child = Some(child);
        wait_for_port(self.port, "redis-server").await;
    }

    /// Kills the server (SIGKILL): no shutdown of any kind.
    pub fn kill(&mut self) {
        if let Some(mut running) = self.child.take() {
            let _ = running.kill();
            let _ = running.wait();
        }
    }

    /// Stops the server.
    pub fn stop(&mut self) {
        stop_child(&mut self.child);
    }

    /// Starts it again on the same port (empty: Redis only caches).
    pub async fn start_again(&mut self) {
        self.spawn().await;
    }

    /// `redis://127.0.0.1:{port}`.
    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }
}

impl Drop for TestRedisServer {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}
