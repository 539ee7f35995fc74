//! A Postgres cluster of a test's own.

use std::time::Duration;

use crate::ports::{free_port, wait_for_port};
use crate::unique_name;

/// A Postgres server of the test's own (Debian's binaries, `initdb` into a
/// temporary directory, trust auth, fsync off), on a free port, for tests
/// that stop and restart Postgres without disturbing the shared one.
/// Database `stoker` exists. Removed on drop.
///
/// Postgres refuses to run as root: when the test runs as root, the server
/// runs as the `postgres` system user.
#[derive(Debug)]
pub struct TestPostgresServer {
    port: u16,
    directory: std::path::PathBuf,
    bin: std::path::PathBuf,
    user: Option<(u32, u32)>,
    child: Option<std::process::Child>,
    tls: bool,
}

/// The password of user `postgres` on a server started with
/// [`TestPostgresServer::start_tls`] (TCP sessions authenticate with it).
pub const TLS_SERVER_PASSWORD: &str = "stoker-tls-test";

impl TestPostgresServer {
    /// Creates the cluster, starts it and creates database `stoker`.
    pub async fn start() -> Self {
        Self::start_with(None).await
    }

    /// The same with `ssl = on`, a certificate of `ca` valid for
    /// `localhost` only, and a `pg_hba.conf` that takes TCP sessions over
    /// TLS only (`hostssl`, SCRAM with [`TLS_SERVER_PASSWORD`]): a plain
    /// session is refused.
    pub async fn start_tls(ca: &crate::TestCa) -> Self {
        Self::start_with(Some(ca)).await
    }

    async fn start_with(ca: Option<&crate::TestCa>) -> Self {
        let bin = std::fs::read_dir("/usr/lib/postgresql")
            .expect("Postgres server binaries under /usr/lib/postgresql (package postgresql)")
            .filter_map(|entry| entry.ok().map(|entry| entry.path().join("bin")))
            .filter(|bin| bin.join("postgres").exists())
            .max()
            .expect("a Postgres server version under /usr/lib/postgresql");
        let directory = std::env::temp_dir().join(unique_name("stoker_test_postgres"));
        std::fs::create_dir_all(&directory).expect("postgres directory");
        let user = Self::run_as();
        if let Some((uid, gid)) = user {
            std::os::unix::fs::chown(&directory, Some(uid), Some(gid)).expect("chown");
        }
        let mut server = Self {
            port: free_port(),
            directory,
            bin,
            user,
            child: None,
            tls: ca.is_some(),
        };
        let status = server
            .command("initdb")
            .args([
                "-A",
                "trust",
                "-U",
                "postgres",
                "-E",
                "UTF8",
                "--no-sync",
                "-D",
            ])
            .arg(server.directory.join("data"))
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .status()
            .expect("run initdb");
        assert!(status.success(), "initdb failed");
        if let Some(ca) = ca {
            server.install_tls(ca);
        }
        server.spawn().await;
        let (client, connection) = server
            .admin_config()
            .connect(tokio_postgres::NoTls)
            .await
            .expect("connect to the test Postgres server");
        tokio::spawn(connection);
        client
            .execute("CREATE DATABASE stoker", &[])
            .await
            .expect("create database stoker");
        if server.tls {
            client
                .batch_execute(&format!(
                    "ALTER USER postgres PASSWORD '{TLS_SERVER_PASSWORD}'"
                ))
                .await
                .expect("set the password");
        }
        server
    }

    /// The server's certificate and key (readable by the server only, as
    /// Postgres wants) and a pg_hba.conf with TLS-only TCP sessions.
    fn install_tls(&self, ca: &crate::TestCa) {
        use std::os::unix::fs::PermissionsExt as _;
        let files = ca.server("postgres", &["localhost"]);
        for (from, to) in [(&files.cert, "server.crt"), (&files.key, "server.key")] {
            let to = self.directory.join(to);
            std::fs::copy(from, &to).expect("copy the server's TLS file");
            std::fs::set_permissions(&to, std::fs::Permissions::from_mode(0o600))
                .expect("chmod the server's TLS file");
            if let Some((uid, gid)) = self.user {
                std::os::unix::fs::chown(&to, Some(uid), Some(gid)).expect("chown");
            }
        }
        std::fs::write(
            self.directory.join("data").join("pg_hba.conf"),
            "local all all trust\n\
             hostssl all all 127.0.0.1/32 scram-sha-256\n\
             hostssl all all ::1/128 scram-sha-256\n",
        )
        .expect("write pg_hba.conf");
    }

    /// A session as `postgres` over the Unix socket (trusted, plain).
    fn admin_config(&self) -> tokio_postgres::Config {
        let mut config = tokio_postgres::Config::new();
        config
            .host_path(&self.directory)
            .port(self.port)
            .user("postgres")
            .dbname("postgres");
        config
    }

    /// The `postgres` user's uid and gid when running as root.
    fn run_as() -> Option<(u32, u32)> {
        let me = std::process::Command::new("id").arg("-u").output().ok()?;
        if String::from_utf8_lossy(&me.stdout).trim() != "0" {
            return None;
        }
        let id = |flag: &str| -> Option<u32> {
            let output = std::process::Command::new("id")
                .args([flag, "postgres"])
                .output()
                .ok()?;
            String::from_utf8_lossy(&output.stdout).trim().parse().ok()
        };
        Some((id("-u")?, id("-g")?))
    }

    fn command(&self, program: &str) -> std::process::Command {
        use std::os::unix::process::CommandExt as _;
        let mut command = std::process::Command::new(self.bin.join(program));
        if let Some((uid, gid)) = self.user {
            command.uid(uid).gid(gid);
        }
        command
    }

    async fn spawn(&mut self) {
        let mut command = self.command("postgres");
        command
            .arg("-D")
            .arg(self.directory.join("data"))
            .args(["-p", &self.port.to_string(), "-k"])
            .arg(&self.directory);
        if self.tls {
            command
                .args(["-c", "ssl=on", "-c"])
                .arg(format!(
                    "ssl_cert_file={}",
                    self.directory.join("server.crt").display()
                ))
                .arg("-c")
                .arg(format!(
                    "ssl_key_file={}",
                    self.directory.join("server.key").display()
                ));
        }
        let child = command
            .args([
                "-c",
                "listen_addresses=127.0.0.1",
                "-c",
                "fsync=off",
                "-c",
                "log_min_messages=fatal",
            ])
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .expect("start postgres");
        self.child = Some(child);
        wait_for_port(self.port, "postgres").await;
        // The port opens before the server accepts sessions.
        let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
        while self
            .admin_config()
            .connect(tokio_postgres::NoTls)
            .await
            .is_err()
        {
            assert!(
                tokio::time::Instant::now() < deadline,
                "postgres did not accept connections"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Stops the server: fast shutdown (SIGINT), open sessions are ended.
    pub fn stop(&mut self) {
        if let Some(mut running) = self.child.take() {
            let _ = std::process::Command::new("kill")
                .args(["-INT", &running.id().to_string()])
                .status();
            let _ = running.wait();
        }
    }

    /// Starts it again on the same port and data.
    pub async fn start_again(&mut self) {
        self.spawn().await;
    }

    /// `postgres://postgres@127.0.0.1:{port}/stoker`.
    pub fn url(&self) -> String {
        format!("postgres://postgres@127.0.0.1:{}/stoker", self.port)
    }

    /// Its TCP port.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// For a server started with [`TestPostgresServer::start_tls`]:
    /// `postgres://postgres:{password}@{host}:{port}/stoker?{query}`.
    pub fn tls_url(&self, host: &str, query: &str) -> String {
        format!(
            "postgres://postgres:{TLS_SERVER_PASSWORD}@{host}:{}/stoker?{query}",
            self.port
        )
    }
}

impl Drop for TestPostgresServer {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = std::process::Command::new("kill")
                .args(["-QUIT", &child.id().to_string()])
                .status();
            let _ = child.wait();
        }
        let _ = std::fs::remove_dir_all(&self.directory);
    }
}
