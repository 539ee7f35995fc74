//! The real `stoker` binary as a child process, for the platform tests and
//! the benchmarks alike: started with the environment it is given, its
//! stdout and stderr captured in a log file, its spool in a scratch
//! directory of its own unless it is given one, stopped gracefully
//! (SIGINT or SIGTERM, SIGKILL after 15 s) or killed outright, and never
//! left running: dropped, it is interrupted (or killed, if asked for), and
//! a test that panics meanwhile prints the end of its log.
//!
//! ```no_run
//! # async fn example() {
//! use stoker_testkit::StokerCommand;
//! let mut ingest = StokerCommand::new("target/release/stoker", "ingest")
//!     .env("DATABASE_URL", "postgres://postgres@127.0.0.1/stoker")
//!     .spawn()
//!     .expect("run the stoker binary");
//! ingest.check_alive().expect("still running");
//! assert!(ingest.interrupt().success());
//! # }
//! ```

use std::fmt;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use crate::unique_client_id;

/// How long a graceful stop may take before the process is killed.
const STOP_LIMIT: Duration = Duration::from_secs(15);

/// Lines of the log a panicking test prints when the process drops.
const TAIL_ON_PANIC: usize = 40;

/// How to start `stoker <subcommand>`.
#[derive(Debug, Clone)]
pub struct StokerCommand {
    binary: PathBuf,
    subcommand: String,
    env: Vec<(String, String)>,
    log: Option<PathBuf>,
    kill_on_drop: bool,
}

impl StokerCommand {
    /// `binary subcommand` with `RUST_LOG=warn`, plain-text logs without
    /// colours, on top of the inherited environment.
    pub fn new(binary: impl Into<PathBuf>, subcommand: &str) -> Self {
        Self {
            binary: binary.into(),
            subcommand: subcommand.to_owned(),
            env: vec![
                ("RUST_LOG".into(), "warn".into()),
                ("LOG_FORMAT".into(), "text".into()),
                ("NO_COLOR".into(), "1".into()),
            ],
            log: None,
            kill_on_drop: false,
        }
    }

    /// One more environment variable (a later one of the same name wins).
    pub fn env(mut self, name: &str, value: impl Into<String>) -> Self {
        self.env.push((name.to_owned(), value.into()));
        self
    }

    /// More environment variables, in order.
    pub fn envs(mut self, env: &[(&str, String)]) -> Self {
        self.env.extend(
            env.iter()
                .map(|(name, value)| ((*name).to_owned(), value.clone())),
        );
        self
    }

    /// Its `RUST_LOG`.
    pub fn rust_log(self, filter: &str) -> Self {
        self.env("RUST_LOG", filter)
    }

    /// Its stdout and stderr go to this file (created, with its directory)
    /// rather than to a file in its scratch directory.
    pub fn log_to(mut self, path: &Path) -> Self {
        self.log = Some(path.to_owned());
        self
    }

    /// Dropped while running, it is killed (SIGKILL) at once rather than
    /// interrupted.
    pub fn kill_on_drop(mut self) -> Self {
        self.kill_on_drop = true;
        self
    }

    /// Starts the process. Without an `INGEST_SPOOL_DIR` of the caller's,
    /// its spool is in its scratch directory (Stoker's default, `./spool`,
    /// may be another run's).
    pub fn spawn(self) -> std::io::Result<StokerProcess> {
        let scratch = TempDir::create(&format!("stoker-{}", self.subcommand))?;
        let log = match &self.log {
            Some(log) => log.clone(),
            None => scratch.path().join("stoker.log"),
        };
        if let Some(parent) = log.parent().filter(|parent| !parent.as_os_str().is_empty()) {
            std::fs::create_dir_all(parent)?;
        }
        let log_file = std::fs::File::create(&log)?;
        let mut command = Command::new(&self.binary);
        command
            .arg(&self.subcommand)
            .stdin(Stdio::null())
            .stdout(log_file.try_clone()?)
            .stderr(log_file);
        if !self.env.iter().any(|(name, _)| name == "INGEST_SPOOL_DIR") {
            command.env("INGEST_SPOOL_DIR", scratch.path().join("spool"));
        }
        for (name, value) in &self.env {
            command.env(name, value);
        }
        let child = command.spawn()?;
        Ok(StokerProcess {
            child,
            binary: self.binary,
            subcommand: self.subcommand,
            log,
            kill_on_drop: self.kill_on_drop,
            metrics_port: None,
            _scratch: scratch,
        })
    }
}

/// A running `stoker <subcommand>` (see the module's documentation).
#[derive(Debug)]
pub struct StokerProcess {
    child: Child,
    binary: PathBuf,
    subcommand: String,
    log: PathBuf,
    kill_on_drop: bool,
    metrics_port: Option<u16>,
    /// Dropped after the process is stopped (fields drop after `drop`).
    _scratch: TempDir,
}

/// The process is not (or no longer) what the caller waits for: it exited,
/// or did not get ready in time. Says so with the end of its log.
#[derive(Debug)]
pub struct StokerError(String);

impl fmt::Display for StokerError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for StokerError {}

/// How a graceful stop ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stopped {
    /// The process had exited before it was asked to stop.
    AlreadyExited(ExitStatus),
    /// It exited on the signal.
    Exited(ExitStatus),
    /// It did not exit within 15 s of the signal and was killed.
    Killed,
}

impl fmt::Display for Stopped {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::AlreadyExited(status) => write!(f, "had already exited ({status})"),
            Self::Exited(status) if status.success() => f.write_str("exited cleanly on SIGTERM"),
            Self::Exited(status) => write!(f, "exited on SIGTERM with {status}"),
            Self::Killed => f.write_str("did not stop within 15 s of SIGTERM; killed"),
        }
    }
}

impl StokerProcess {
    /// The process serves its `/metrics` on this loopback port (its
    /// `METRICS_ADDR`), for [`StokerProcess::metrics`].
    pub fn with_metrics_port(mut self, port: u16) -> Self {
        self.metrics_port = Some(port);
        self
    }

    /// `stoker <subcommand>`.
    pub fn name(&self) -> String {
        format!("stoker {}", self.subcommand)
    }

    /// Its subcommand (`ingest`, `api`, …).
    pub fn subcommand(&self) -> &str {
        &self.subcommand
    }

    /// The binary it runs.
    pub fn binary(&self) -> &Path {
        &self.binary
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// The file that receives its stdout and stderr.
    pub fn log(&self) -> &Path {
        &self.log
    }

    /// Everything it printed so far.
    pub fn printed(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// The last `lines` lines of its log, each indented by four spaces.
    pub fn log_tail(&self, lines: usize) -> String {
        log_tail(&self.log, lines)
    }

    /// An error with the end of the log if the process has exited.
    pub fn check_alive(&mut self) -> Result<(), StokerError> {
        match self.child.try_wait() {
            Ok(None) => Ok(()),
            Ok(Some(status)) => Err(StokerError(format!(
                "stoker {} exited ({status}); last lines of {}:\n{}",
                self.subcommand,
                self.log.display(),
                self.log_tail(15)
            ))),
            Err(error) => Err(StokerError(format!(
                "cannot check on stoker {}: {error}",
                self.subcommand
            ))),
        }
    }

    /// Polls `GET http://{addr}/readyz` every 100 ms until it answers 200;
    /// says how long that took. An error, with the last answer and the end
    /// of the log, if the process exits or `limit` passes first.
    pub async fn wait_ready(
        &mut self,
        addr: SocketAddr,
        limit: Duration,
    ) -> Result<Duration, StokerError> {
        let started = Instant::now();
        let client = reqwest::Client::builder()
            .timeout(Duration::from_secs(3))
            .build()
            .map_err(|error| StokerError(format!("an HTTP client: {error}")))?;
        let url = format!("http://{addr}/readyz");
        loop {
            self.check_alive()?;
            let last = match client.get(&url).send().await {
                Ok(response) if response.status().is_success() => return Ok(started.elapsed()),
                Ok(response) => {
                    format!(
                        "{}: {}",
                        response.status(),
                        response.text().await.unwrap_or_default()
                    )
                }
                Err(error) => error.to_string(),
            };
            if started.elapsed() > limit {
                return Err(StokerError(format!(
                    "/readyz did not answer 200 within {} s (last: {last}); Stoker's log:\n{}",
                    limit.as_secs(),
                    self.log_tail(15)
                )));
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// The text of its `/metrics`; `None` if it does not answer or no
    /// metrics port was given.
    pub async fn metrics(&self) -> Option<String> {
        let url = format!("http://127.0.0.1:{}/metrics", self.metrics_port?);
        let response = reqwest::Client::new()
            .get(url)
            .timeout(Duration::from_secs(2))
            .send()
            .await
            .ok()?;
        Some(response.text().await.unwrap_or_default())
    }

    /// SIGINT, then waits up to 15 s (SIGKILL after that), blocking the
    /// thread; returns how it exited.
    pub fn interrupt(&mut self) -> ExitStatus {
        self.signal("-INT");
        let deadline = Instant::now() + STOP_LIMIT;
        while Instant::now() < deadline {
            if let Ok(Some(status)) = self.child.try_wait() {
                return status;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        self.kill()
    }

    /// SIGTERM, then SIGKILL if it is still running after 15 s, waiting
    /// without blocking the runtime; says how it ended.
    pub async fn terminate(&mut self) -> Stopped {
        if let Ok(Some(status)) = self.child.try_wait() {
            return Stopped::AlreadyExited(status);
        }
        self.signal("-TERM");
        let deadline = Instant::now() + STOP_LIMIT;
        while Instant::now() < deadline {
            if let Ok(Some(status)) = self.child.try_wait() {
                return Stopped::Exited(status);
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
        Stopped::Killed
    }

    /// SIGKILL: the process gets no chance to flush anything.
    pub fn kill(&mut self) -> ExitStatus {
        let _ = self.child.kill();
        self.child.wait().expect("wait for stoker")
    }

    fn signal(&self, signal: &str) {
        let _ = Command::new("kill")
            .args([signal, &self.child.id().to_string()])
            .status();
    }
}

impl Drop for StokerProcess {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            if self.kill_on_drop {
                let _ = self.child.kill();
                let _ = self.child.wait();
            } else {
                self.interrupt();
            }
        }
        if std::thread::panicking() {
            eprintln!(
                "stoker {} (pid {}), the end of its log:\n{}",
                self.subcommand,
                self.child.id(),
                self.log_tail(TAIL_ON_PANIC)
            );
        }
    }
}

/// The last `lines` lines of a file, each indented by four spaces.
pub fn log_tail(path: &Path, lines: usize) -> String {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let all: Vec<&str> = text.lines().collect();
    all[all.len().saturating_sub(lines)..]
        .iter()
        .map(|line| format!("    {line}"))
        .collect::<Vec<_>>()
        .join("\n")
}

/// A directory of the test's (or run's) own under the system's temporary
/// directory, removed on drop.
#[derive(Debug)]
pub struct TempDir(PathBuf);

impl TempDir {
    /// A new, empty directory named after `stem` and made unique.
    pub fn create(stem: &str) -> std::io::Result<Self> {
        let path = std::env::temp_dir().join(unique_client_id(stem));
        std::fs::create_dir_all(&path)?;
        Ok(Self(path))
    }

    /// The same, panicking if it cannot be created (for tests).
    pub fn new(stem: &str) -> Self {
        Self::create(stem).expect("a temporary directory")
    }

    pub fn path(&self) -> &Path {
        &self.0
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn log_tails_are_indented() {
        let dir = TempDir::create("stoker-testkit-test").unwrap();
        let path = dir.path().join("log");
        std::fs::write(&path, "one\ntwo\nthree\n").unwrap();
        assert_eq!(log_tail(&path, 2), "    two\n    three");
        let kept = dir.path().to_owned();
        drop(dir);
        assert!(!kept.exists());
    }
}
