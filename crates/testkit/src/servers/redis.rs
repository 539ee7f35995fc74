//! `redis-server` of a test's own.

use crate::ports::{free_port, wait_for_port};
use crate::servers::stop_child;
use crate::tls::CertFiles;

/// A Redis server of the test's own on a free port (nothing persisted),
/// for tests that stop Redis. Killed on drop.
#[derive(Debug)]
pub struct TestRedisServer {
    port: u16,
    /// TLS only (`--tls-port`, no plain port): the certificate and CA.
    tls: Option<(CertFiles, std::path::PathBuf)>,
    child: Option<std::process::Child>,
}

impl TestRedisServer {
    /// Starts `redis-server` and waits until it accepts connections.
    pub async fn start() -> Self {
        let mut server = Self {
            port: free_port(),
            tls: None,
            child: None,
        };
        server.spawn().await;
        server
    }

    /// Starts `redis-server` speaking TLS only on its port, with `server`'s
    /// certificate (clients need none).
    pub async fn start_tls(server: CertFiles, ca_file: &std::path::Path) -> Self {
        let mut redis = Self {
            port: free_port(),
            tls: Some((server, ca_file.to_owned())),
            child: None,
        };
        redis.spawn().await;
        redis
    }

    /// `rediss://{host}:{port}`.
    pub fn tls_url(&self, host: &str) -> String {
        format!("rediss://{host}:{}", self.port)
    }

    async fn spawn(&mut self) {
        let mut command = std::process::Command::new("redis-server");
        match &self.tls {
            None => command.args(["--port", &self.port.to_string()]),
            Some((server, ca_file)) => command
                .args(["--port", "0", "--tls-port", &self.port.to_string()])
                .arg("--tls-cert-file")
                .arg(&server.cert)
                .arg("--tls-key-file")
                .arg(&server.key)
                .arg("--tls-ca-cert-file")
                .arg(ca_file)
                .args(["--tls-auth-clients", "no"]),
        };
        let child = command
            .args(["--bind", "127.0.0.1", "--save", "", "--appendonly", "no"])
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
