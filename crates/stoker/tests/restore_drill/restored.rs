//! Where a backup is restored: fresh Postgres and InfluxDB databases and
//! a backup directory, each removed by its guard; running the scripts.

use std::path::{Path, PathBuf};
use std::time::{SystemTime, UNIX_EPOCH};
use stoker_postgres::PostgresOptions;

/// A name in testkit's format (`stoker_test_{secs}_{hex}`), so that a
/// database a killed run leaves behind is swept like testkit's own.
pub(crate) fn unique_name() -> String {
    let secs = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default()
        .as_secs();
    let id = stoker_testkit::unique_client_id("r");
    format!("stoker_test_{secs}_{}", id.trim_start_matches("r-"))
}

/// The server's admin connection, as testkit reaches it.
pub(crate) fn postgres_admin_url() -> String {
    std::env::var("TEST_POSTGRES_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".into())
}

/// `url` with its database replaced by `database`.
pub(crate) fn with_database(url: &str, database: &str) -> String {
    match url.rsplit_once('/') {
        Some((server, _)) => format!("{server}/{database}"),
        None => url.to_owned(),
    }
}

/// A Postgres database the restore creates; dropped on drop.
pub(crate) struct RestoredPostgres {
    pub(crate) name: String,
}

impl RestoredPostgres {
    pub(crate) fn url(&self) -> String {
        with_database(&postgres_admin_url(), &self.name)
    }
}

impl Drop for RestoredPostgres {
    fn drop(&mut self) {
        let name = self.name.clone();
        stoker_testkit::cleanup(async move {
            let Ok(pool) =
                stoker_postgres::connect(&PostgresOptions::from_url(postgres_admin_url()))
            else {
                return;
            };
            if let Ok(client) = pool.get().await {
                let _ = client
                    .execute(
                        &format!("DROP DATABASE IF EXISTS \"{name}\" WITH (FORCE)"),
                        &[],
                    )
                    .await;
            }
        });
    }
}

/// An InfluxDB database the restore creates; dropped on drop.
pub(crate) struct RestoredInflux {
    pub(crate) name: String,
}

impl Drop for RestoredInflux {
    fn drop(&mut self) {
        let mut options = stoker_testkit::influx_options();
        options.bucket = self.name.clone();
        stoker_testkit::cleanup(async move {
            if let Ok(influx) = stoker_timeseries::Influx::connect(&options).await {
                let _ = influx.drop_database().await;
            }
        });
    }
}

/// A directory removed with everything in it on drop.
pub(crate) struct TempDir(pub(crate) PathBuf);

impl TempDir {
    pub(crate) fn new() -> Self {
        let path = std::env::temp_dir().join(format!("stoker-restore-drill-{}", unique_name()));
        std::fs::create_dir_all(&path).expect("create the drill's directory");
        Self(path)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// Runs a script or the binary; returns (success, stdout, stderr) and
/// prints both (shown when the test fails).
pub(crate) async fn run(
    program: &Path,
    args: &[&str],
    environment: &[(&str, String)],
) -> (bool, String) {
    let mut command = tokio::process::Command::new(program);
    command.args(args).env("RUST_LOG", "warn");
    for (name, value) in environment {
        command.env(name, value);
    }
    let output = command
        .output()
        .await
        .unwrap_or_else(|error| panic!("run {}: {error}", program.display()));
    let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
    let stderr = String::from_utf8_lossy(&output.stderr).into_owned();
    println!(
        "$ {} {}\n{stdout}{stderr}",
        program.display(),
        args.join(" ")
    );
    (output.status.success(), format!("{stdout}{stderr}"))
}
