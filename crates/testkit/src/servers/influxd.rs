//! `influxd` of a test's own.

use stoker_timeseries::InfluxOptions;

use crate::ports::{free_port, wait_for_port};
use crate::servers::stop_child;
use crate::tls::CertFiles;
use crate::unique_name;

/// An InfluxDB server (Debian's `influxd`, 1.x) of the test's own, on free
/// ports with its data in a temporary directory, for tests that stop and
/// restart InfluxDB without disturbing the shared one. Removed on drop.
#[derive(Debug)]
pub struct TestInfluxServer {
    port: u16,
    tls: bool,
    directory: std::path::PathBuf,
    child: Option<std::process::Child>,
}

impl TestInfluxServer {
    /// Starts `influxd` and waits until it answers.
    pub async fn start() -> Self {
        Self::start_with(None).await
    }

    /// Starts `influxd` serving HTTPS only, with `server`'s certificate.
    pub async fn start_tls(server: &CertFiles) -> Self {
        Self::start_with(Some(server)).await
    }

    async fn start_with(tls: Option<&CertFiles>) -> Self {
        let port = free_port();
        let rpc_port = free_port();
        let directory = std::env::temp_dir().join(unique_name("stoker_test_influxd"));
        std::fs::create_dir_all(&directory).expect("influxd directory");
        let config = format!(
            "reporting-enabled = false\nbind-address = \"127.0.0.1:{rpc_port}\"\n\
             [meta]\n  dir = \"{dir}/meta\"\n  logging-enabled = false\n\
             [data]\n  dir = \"{dir}/data\"\n  wal-dir = \"{dir}/wal\"\n  query-log-enabled = false\n\
             [http]\n  bind-address = \"127.0.0.1:{port}\"\n  log-enabled = false\n\
             [monitor]\n  store-enabled = false\n\
             [logging]\n  level = \"warn\"\n",
            dir = directory.display()
        );
        let config = match tls {
            None => config,
            Some(files) => config.replace(
                "  log-enabled = false\n",
                &format!(
                    "  log-enabled = false\n  https-enabled = true\n  https-certificate = \"{}\"\n  https-private-key = \"{}\"\n",
                    files.cert.display(),
                    files.key.display()
                ),
            ),
        };
        std::fs::write(directory.join("influxdb.conf"), config).expect("influxd config");
        let mut server = Self {
            port,
            tls: tls.is_some(),
            directory,
            child: None,
        };
        server.spawn().await;
        server
    }

    async fn spawn(&mut self) {
        let child = std::process::Command::new("influxd")
            .arg("-config")
            .arg(self.directory.join("influxdb.conf"))
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .expect("influxd must be installed (scripts/dev-up installs it)");
        self.child = Some(child);
        wait_for_port(self.port, "influxd").await;
    }

    /// Stops the server (SIGTERM).
    pub fn stop(&mut self) {
        stop_child(&mut self.child);
    }

    /// Starts it again on the same port and data.
    pub async fn start_again(&mut self) {
        self.spawn().await;
    }

    /// `http://127.0.0.1:{port}` (`https://localhost:{port}` with TLS).
    pub fn url(&self) -> String {
        if self.tls {
            format!("https://localhost:{}", self.port)
        } else {
            format!("http://127.0.0.1:{}", self.port)
        }
    }

    /// Settings for database `database` on this server.
    pub fn options(&self, database: &str) -> InfluxOptions {
        InfluxOptions {
            url: self.url(),
            bucket: database.to_owned(),
            ..InfluxOptions::default()
        }
    }
}

impl Drop for TestInfluxServer {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
        let _ = std::fs::remove_dir_all(&self.directory);
    }
}
