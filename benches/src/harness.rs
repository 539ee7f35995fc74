//! The frame every benchmark binary runs in: the async runtime, a run that
//! Ctrl-C or SIGTERM ends cleanly, phases with hard time limits, and at the
//! end the report printed (and saved as JSON) and the exit status.

use std::path::Path;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::anyhow;

use crate::report::{Figures, Report};

/// Runs a benchmark: `name` prefixes its messages on stderr;
/// `worker_threads` sizes the runtime (its default where `None`); `json`,
/// where given, receives the report as JSON. `run` fills the report and
/// owns every guard (Stoker's process, test servers and databases), so all
/// are dropped before the report is printed, also on Ctrl-C or SIGTERM.
///
/// Exit status: 0 when every target passes, 1 when one fails, 2 when the
/// run could not complete.
pub fn main<F: Figures>(
    name: &str,
    worker_threads: Option<usize>,
    json: Option<&Path>,
    report: impl FnOnce() -> Report<F>,
    run: impl AsyncFnOnce(&mut Report<F>) -> anyhow::Result<()>,
) -> ExitCode {
    crate::since_start();
    let mut builder = tokio::runtime::Builder::new_multi_thread();
    if let Some(threads) = worker_threads {
        builder.worker_threads(threads);
    }
    let runtime = match builder.enable_all().build() {
        Ok(runtime) => runtime,
        Err(error) => {
            eprintln!("{name}: cannot start the async runtime: {error}");
            return ExitCode::from(2);
        }
    };
    let mut report = report();
    let outcome = runtime.block_on(async {
        tokio::select! {
            result = run(&mut report) => result,
            signal = interrupted() => Err(anyhow!("{signal}: stopped Stoker and removed the test databases")),
        }
    });
    // Every guard of the run is dropped by now.
    if let Err(error) = &outcome {
        report.record.error = Some(format!("{error:#}"));
    }
    let text = report.render();
    println!("\n{text}");
    if let Some(path) = json {
        match std::fs::write(
            path,
            serde_json::to_string_pretty(&report.json()).unwrap_or_default(),
        ) {
            Ok(()) => println!("JSON written to {}", path.display()),
            Err(error) => eprintln!("{name}: cannot write {}: {error}", path.display()),
        }
    }
    runtime.shutdown_timeout(Duration::from_secs(2));
    match outcome {
        Err(error) => {
            eprintln!("{name}: benchmark incomplete: {error:#}");
            ExitCode::from(2)
        }
        Ok(()) if report.all_pass() => ExitCode::SUCCESS,
        Ok(()) => ExitCode::from(1),
    }
}

async fn interrupted() -> &'static str {
    let mut terminate =
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(signal) => signal,
            Err(_) => {
                let _ = tokio::signal::ctrl_c().await;
                return "interrupted";
            }
        };
    tokio::select! {
        _ = tokio::signal::ctrl_c() => "interrupted (SIGINT)",
        _ = terminate.recv() => "terminated (SIGTERM)",
    }
}

/// Runs `work` for at most `limit`; past it, the phase fails with a clear message.
pub async fn bounded<T>(
    phase: &str,
    limit: Duration,
    work: impl Future<Output = anyhow::Result<T>>,
) -> anyhow::Result<T> {
    tokio::time::timeout(limit, work).await.map_err(|_| {
        anyhow!("phase {phase} did not finish within its hard limit of {limit:?}; giving up")
    })?
}
