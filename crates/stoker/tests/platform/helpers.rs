//! Running the binary: a child process that is stopped on drop.

use std::path::PathBuf;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::Duration;

pub const BINARY: &str = env!("CARGO_BIN_EXE_stoker");

/// Creates an API key with `stoker apikey create` against the database at
/// `database_url` and returns the token it prints.
pub fn create_api_key(database_url: &str, name: &str, scopes: &str) -> String {
    let output = Command::new(BINARY)
        .args(["apikey", "create", "--name", name, "--scopes", scopes])
        .env("DATABASE_URL", database_url)
        .env("RUST_LOG", "warn")
        .output()
        .expect("run the stoker binary");
    assert!(
        output.status.success(),
        "stoker apikey create failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    let token = String::from_utf8(output.stdout).expect("a UTF-8 token");
    let token = token.trim().to_owned();
    assert!(token.starts_with("stk_"), "{token}");
    token
}

/// A running `stoker` process, interrupted (SIGINT) on drop.
pub struct Stoker {
    child: Child,
}

impl Stoker {
    /// Starts `stoker <command>` with these environment variables.
    pub fn spawn(command: &str, environment: &[(&str, String)]) -> Self {
        let mut process = Command::new(BINARY);
        process
            .arg(command)
            .env("RUST_LOG", "warn")
            .stdout(Stdio::null());
        for (name, value) in environment {
            process.env(name, value);
        }
        Self {
            child: process.spawn().expect("run the stoker binary"),
        }
    }

    /// SIGINT, then waits up to 15 s (SIGKILL after that).
    pub fn interrupt(&mut self) -> ExitStatus {
        let _ = Command::new("kill")
            .args(["-INT", &self.child.id().to_string()])
            .status();
        for _ in 0..300 {
            if let Ok(Some(status)) = self.child.try_wait() {
                return status;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        self.kill()
    }

    /// SIGKILL: the process gets no chance to flush anything.
    pub fn kill(&mut self) -> ExitStatus {
        let _ = self.child.kill();
        self.child.wait().expect("wait for stoker")
    }
}

impl Drop for Stoker {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            self.interrupt();
        }
    }
}

/// A temporary directory removed on drop (a spool).
pub struct TempDir(pub PathBuf);

impl TempDir {
    pub fn new(stem: &str) -> Self {
        Self(std::env::temp_dir().join(stoker_testkit::unique_client_id(stem)))
    }

    pub fn path(&self) -> String {
        self.0.display().to_string()
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}
