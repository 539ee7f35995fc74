//! Mosquitto of a test's own, with the shipped configuration.

use crate::mqtt::publish_qos1_to;
use crate::ports::{free_port, wait_for_port};
use crate::servers::stop_child;
use crate::tls::CertFiles;
use crate::unique_name;

/// The TLS listener of a [`TestBroker::start_tls`].
#[derive(Debug, Clone)]
pub struct BrokerTls {
    /// The CA the broker trusts for client certificates.
    pub ca_file: std::path::PathBuf,
    /// The broker's own certificate and key.
    pub server: CertFiles,
    /// Whether a client must present a certificate signed by the CA.
    pub require_client_cert: bool,
}

/// A Mosquitto of the test's own on a free port, configured as the project
/// ships it (`docker/mosquitto/mosquitto.conf`: 1,000 messages in flight,
/// a million queued per offline session), unlike the machine's broker with
/// Mosquitto's defaults. Killed on drop.
#[derive(Debug)]
pub struct TestBroker {
    port: u16,
    /// The TLS listener's port, when the broker has one.
    tls_port: Option<u16>,
    directory: std::path::PathBuf,
    child: Option<std::process::Child>,
}

impl TestBroker {
    /// Starts the broker and waits until it accepts connections.
    pub async fn start() -> Self {
        Self::start_from(
            include_str!("../../../../docker/mosquitto/mosquitto.conf"),
            None,
            None,
        )
        .await
    }

    /// Starts the broker with, beside its plain listener (where the test
    /// publishes), a TLS listener with `tls`'s certificate, requiring a
    /// client certificate signed by its CA when `tls` says so (the
    /// certificate's common name is then the client's user).
    pub async fn start_tls(tls: &BrokerTls) -> Self {
        Self::start_from(
            include_str!("../../../../docker/mosquitto/mosquitto.conf"),
            None,
            Some(tls),
        )
        .await
    }

    /// Starts a broker configured as the project ships it for production
    /// (`docker/mosquitto/mosquitto.secure.conf`: no anonymous access, the
    /// shipped ACL `docker/mosquitto/acl`) with the users of
    /// `password_file`, read where it is (so [`TestBroker::reload`] picks
    /// up changes to it). Killed on drop.
    pub async fn start_secure(password_file: &std::path::Path) -> Self {
        Self::start_from(
            include_str!("../../../../docker/mosquitto/mosquitto.secure.conf"),
            Some(password_file),
            None,
        )
        .await
    }

    /// Starts Mosquitto with a shipped config, its listener, persistence
    /// and log moved into a directory of the test's own; with a password
    /// file, the shipped ACL too.
    async fn start_from(
        shipped: &str,
        password_file: Option<&std::path::Path>,
        tls: Option<&BrokerTls>,
    ) -> Self {
        let port = free_port();
        let directory = std::env::temp_dir().join(unique_name("stoker_test_broker"));
        std::fs::create_dir_all(directory.join("data")).expect("broker directory");
        let acl = directory.join("acl");
        if password_file.is_some() {
            std::fs::write(&acl, include_str!("../../../../docker/mosquitto/acl"))
                .expect("broker ACL");
        }
        let mut config = String::new();
        let mut listeners = 0;
        for line in shipped.lines() {
            let keyword = line.split_whitespace().next().unwrap_or_default();
            // The shipped TLS listener (its certificates are the
            // operator's): left out; `start_tls` adds one of its own.
            if keyword == "listener" {
                listeners += 1;
            }
            if listeners > 1 {
                continue;
            }
            match (keyword, password_file) {
                ("listener", _) => config.push_str(&format!("listener {port} 127.0.0.1\n")),
                ("persistence_location", _) => config.push_str(&format!(
                    "persistence_location {}/\n",
                    directory.join("data").display()
                )),
                ("password_file", Some(file)) => {
                    config.push_str(&format!("password_file {}\n", file.display()));
                }
                ("acl_file", Some(_)) => {
                    config.push_str(&format!("acl_file {}\n", acl.display()));
                }
                ("log_dest" | "pid_file" | "user" | "log_type", _)
                | ("connection_messages", None) => {}
                _ => {
                    config.push_str(line);
                    config.push('\n');
                }
            }
        }
        config.push_str(&format!(
            "log_dest file {}\nlog_type error\nlog_type warning\n",
            directory.join("mosquitto.log").display()
        ));
        if password_file.is_some() {
            // Notices too: they say why a client was refused.
            config.push_str("log_type notice\n");
        }
        // As root, Mosquitto would switch to user `mosquitto`, which cannot
        // write the test's directory.
        let user = std::env::var("USER").unwrap_or_else(|_| "root".into());
        config.push_str(&format!("user {user}\n"));
        let tls_port = tls.map(|tls| {
            let tls_port = free_port();
            config.push_str(&format!(
                "listener {tls_port} 127.0.0.1\ncafile {}\ncertfile {}\nkeyfile {}\n",
                tls.ca_file.display(),
                tls.server.cert.display(),
                tls.server.key.display()
            ));
            if tls.require_client_cert {
                config.push_str("require_certificate true\nuse_identity_as_username true\n");
            }
            tls_port
        });
        std::fs::write(directory.join("mosquitto.conf"), config).expect("broker config");
        let mut broker = Self {
            port,
            tls_port,
            directory,
            child: None,
        };
        broker.spawn().await;
        broker
    }

    /// SIGHUP: the broker reads its password and ACL files again (and
    /// disconnects clients whose user is gone). Returns at once; the
    /// reload follows within milliseconds.
    pub fn reload(&self) {
        if let Some(child) = &self.child {
            let _ = std::process::Command::new("kill")
                .args(["-HUP", &child.id().to_string()])
                .status();
        }
    }

    /// The broker's log so far (empty if none).
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.directory.join("mosquitto.log")).unwrap_or_default()
    }

    async fn spawn(&mut self) {
        let child = std::process::Command::new("mosquitto")
            .arg("-c")
            .arg(self.directory.join("mosquitto.conf"))
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .expect("mosquitto must be installed (scripts/dev-up installs it)");
        self.child = Some(child);
        wait_for_port(self.port, "the test broker").await;
        if let Some(tls_port) = self.tls_port {
            wait_for_port(tls_port, "the test broker's TLS listener").await;
        }
    }

    /// Stops the broker (SIGTERM: it saves its persistent state).
    pub fn stop(&mut self) {
        stop_child(&mut self.child);
    }

    /// Stops and starts the broker again on the same port and state.
    pub async fn restart(&mut self) {
        self.stop();
        self.spawn().await;
    }

    /// The broker's port on 127.0.0.1.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// `mqtt://127.0.0.1:{port}`.
    pub fn url(&self) -> String {
        format!("mqtt://127.0.0.1:{}", self.port)
    }

    /// `mqtts://{host}:{tls port}`: the TLS listener under the name
    /// `host` (which resolves to 127.0.0.1: "localhost", "127.0.0.1").
    ///
    /// # Panics
    /// When the broker was started without TLS.
    pub fn tls_url(&self, host: &str) -> String {
        let port = self.tls_port.expect("a broker started with start_tls");
        format!("mqtts://{host}:{port}")
    }

    /// Publishes at QoS 1 and waits for every acknowledgement.
    pub async fn publish_qos1(&self, messages: &[(String, Vec<u8>)]) {
        publish_qos1_to(self.port, messages).await;
    }
}

impl Drop for TestBroker {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
        let _ = std::fs::remove_dir_all(&self.directory);
    }
}
