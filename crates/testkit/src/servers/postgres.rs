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
}

impl TestPostgresServer {
    /// Creates the cluster, starts it and creates database `stoker`.
    pub async fn start() -> Self {
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
        server.spawn().await;
        let (client, connection) = tokio_postgres::connect(
            &format!("postgres://postgres@127.0.0.1:{}/postgres", server.port),
            tokio_postgres::NoTls,
        )
        .await
        .expect("connect to the test Postgres server");
        tokio::spawn(connection);
        client
            .execute("CREATE DATABASE stoker", &[])
            .await
            .expect("create database stoker");
        server
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
        let child = self
            .command("postgres")
            .arg("-D")
            .arg(self.directory.join("data"))
            .args(["-p", &self.port.to_string(), "-k"])
            .arg(&self.directory)
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
        while tokio_postgres::connect(
            &format!("postgres://postgres@127.0.0.1:{}/postgres", self.port),
            tokio_postgres::NoTls,
        )
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
