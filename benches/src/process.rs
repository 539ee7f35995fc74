//! The process under test and the processes around it: the real `stoker`
//! binary as the test kit's child process (started on the run's own stores
//! and scratch directory, its log in the file the benchmark names, killed
//! on drop), and the CPU time of Stoker, the services it works with and the
//! benchmark.

use std::collections::HashMap;
use std::path::Path;
use std::time::Duration;

use anyhow::Context;
use serde_json::Value;
pub use stoker_testkit::StokerProcess;
use stoker_testkit::{StokerCommand, TestInflux, TestPostgres, TestRedis};

use crate::procstat;

/// The settings that point Stoker at the run's own stores: its Postgres
/// database, InfluxDB database and Redis key prefix.
pub fn store_env(
    postgres: &TestPostgres,
    influx: &TestInflux,
    redis: &TestRedis,
) -> Vec<(&'static str, String)> {
    vec![
        ("DATABASE_URL", postgres.url()),
        ("INFLUX_URL", stoker_testkit::influx_options().url),
        ("INFLUX_BUCKET", influx.influx().database().to_owned()),
        ("REDIS_URL", stoker_testkit::redis_url()),
        ("REDIS_KEY_PREFIX", redis.prefix().to_owned()),
    ]
}

/// Starts `binary subcommand` with `env` on top of the inherited
/// environment, plus `RUST_LOG=rust_log`, plain-text logs (stdout and
/// stderr) to `log`, and `INGEST_SPOOL_DIR` in a scratch directory of the
/// run's own; killed on drop if still running, the scratch directory
/// removed after it.
pub fn spawn_stoker(
    binary: &Path,
    subcommand: &'static str,
    env: &[(&str, String)],
    log: &Path,
    rust_log: &str,
) -> anyhow::Result<StokerProcess> {
    StokerCommand::new(binary, subcommand)
        .envs(env)
        .rust_log(rust_log)
        .log_to(log)
        .kill_on_drop()
        .spawn()
        .with_context(|| format!("starting {} {subcommand}", binary.display()))
}

/// `stoker apikey create --name bench --scopes <scopes>` on the run's
/// database: the token, which the command prints alone on stdout.
pub async fn create_api_key(
    stoker: &Path,
    database_url: &str,
    scopes: &str,
) -> anyhow::Result<String> {
    let output = tokio::process::Command::new(stoker)
        .args(["apikey", "create", "--name", "bench", "--scopes", scopes])
        .env("DATABASE_URL", database_url)
        .env("RUST_LOG", "warn")
        .stdin(std::process::Stdio::null())
        .kill_on_drop(true)
        .output()
        .await
        .with_context(|| format!("running {} apikey create", stoker.display()))?;
    let token = String::from_utf8_lossy(&output.stdout).trim().to_owned();
    if !output.status.success() || token.is_empty() || token.contains(char::is_whitespace) {
        anyhow::bail!(
            "{} apikey create failed ({}): {}",
            stoker.display(),
            output.status,
            String::from_utf8_lossy(&output.stderr).trim()
        );
    }
    crate::progress!("created an API key of scope {scopes} (stoker apikey create)");
    Ok(token)
}

/// Says Stoker started (`note` follows the pid, e.g. `; waiting for
/// /readyz`), then runs `ready` for at most 90 s: it waits until the
/// process is ready and says how long that took.
pub async fn until_ready(
    stoker: &mut StokerProcess,
    note: &str,
    ready: impl AsyncFnOnce(&mut StokerProcess) -> anyhow::Result<Duration>,
) -> anyhow::Result<Duration> {
    crate::progress!(
        "started {} {} (pid {}){note}",
        stoker.binary().display(),
        stoker.subcommand(),
        stoker.pid()
    );
    crate::harness::bounded("Stoker start", Duration::from_secs(90), ready(stoker)).await
}

/// The processes whose CPU time a report breaks down: Stoker (once it
/// runs), the services it works with, the benchmark itself and, if asked
/// for, the whole machine.
#[derive(Debug, Clone)]
pub struct Procs {
    stoker: Option<u32>,
    /// (name in the report, pid if found).
    services: Vec<(&'static str, Option<u32>)>,
    bench: u32,
    machine: bool,
    ticks: f64,
}

impl Procs {
    /// `services` in the order the report lists them; with `machine`, the
    /// report adds the busy time of every other process ("everything else").
    pub fn new(services: Vec<(&'static str, Option<u32>)>, machine: bool) -> Self {
        Self {
            stoker: None,
            services,
            bench: std::process::id(),
            machine,
            ticks: procstat::clock_ticks_per_second(),
        }
    }

    /// The same, with Stoker's process.
    pub fn with_stoker(self, pid: u32) -> Self {
        Self {
            stoker: Some(pid),
            ..self
        }
    }

    /// CPU seconds used so far.
    pub fn cpu(&self) -> Cpu {
        let seconds = |pid: Option<u32>| {
            pid.and_then(procstat::cpu_ticks)
                .map_or(f64::NAN, |ticks| ticks as f64 / self.ticks)
        };
        Cpu {
            stoker: seconds(self.stoker),
            services: self
                .services
                .iter()
                .map(|(name, pid)| (*name, seconds(*pid)))
                .collect(),
            bench: seconds(Some(self.bench)),
            machine: self.machine.then(|| {
                procstat::machine_busy_ticks().map_or(f64::NAN, |ticks| ticks as f64 / self.ticks)
            }),
        }
    }

    /// The three commands, other than the processes above, that used the
    /// most CPU between two [`procstat::all_cpu_ticks`] snapshots, in CPU
    /// seconds (processes born and gone in between are not seen).
    pub fn busiest_others(
        &self,
        before: &HashMap<u32, (String, u64)>,
        after: &HashMap<u32, (String, u64)>,
    ) -> Vec<(String, f64)> {
        let ours: Vec<u32> = self
            .stoker
            .into_iter()
            .chain(self.services.iter().filter_map(|(_, pid)| *pid))
            .chain([self.bench])
            .collect();
        let mut per_command: HashMap<&str, u64> = HashMap::new();
        for (pid, (command, ticks)) in after {
            if ours.contains(pid) {
                continue;
            }
            let earlier = before.get(pid).map_or(0, |(_, ticks)| *ticks);
            *per_command.entry(command.as_str()).or_default() += ticks.saturating_sub(earlier);
        }
        let mut busiest: Vec<(String, f64)> = per_command
            .into_iter()
            .filter(|(_, ticks)| *ticks > 0)
            .map(|(command, ticks)| (command.to_owned(), ticks as f64 / self.ticks))
            .collect();
        busiest.sort_by(|a, b| b.1.total_cmp(&a.1));
        busiest.truncate(3);
        busiest
    }
}

/// CPU seconds (user + system) per process of [`Procs`]; `NaN` where
/// unknown. A difference of two is the CPU time between them.
#[derive(Debug, Clone, Default)]
pub struct Cpu {
    stoker: f64,
    services: Vec<(&'static str, f64)>,
    bench: f64,
    /// Every process of the machine, where asked for.
    machine: Option<f64>,
}

impl std::ops::Sub<&Cpu> for Cpu {
    type Output = Cpu;
    fn sub(self, earlier: &Cpu) -> Cpu {
        Cpu {
            stoker: self.stoker - earlier.stoker,
            services: self
                .services
                .iter()
                .zip(&earlier.services)
                .map(|((name, now), (_, then))| (*name, now - then))
                .collect(),
            bench: self.bench - earlier.bench,
            machine: self
                .machine
                .zip(earlier.machine)
                .map(|(now, then)| now - then),
        }
    }
}

impl std::ops::Sub for Cpu {
    type Output = Cpu;
    fn sub(self, earlier: Cpu) -> Cpu {
        self - &earlier
    }
}

impl Cpu {
    pub fn stoker(&self) -> f64 {
        self.stoker
    }

    /// The service of that name in [`Procs::new`]; `NaN` if none.
    pub fn service(&self, name: &str) -> f64 {
        self.services
            .iter()
            .find(|(service, _)| *service == name)
            .map_or(f64::NAN, |(_, seconds)| *seconds)
    }

    /// E.g. `stoker 1.2 s (60%), influxd 0.4 s (20%), bench 0.1 s (5%)`
    /// over `elapsed` seconds; Stoker only where it was measured.
    pub fn describe(&self, elapsed: f64) -> String {
        let part = |name: &str, seconds: f64| {
            if seconds.is_nan() {
                format!("{name} n/a")
            } else {
                format!("{name} {seconds:.1} s ({:.0}%)", seconds / elapsed * 100.0)
            }
        };
        let mut parts = Vec::new();
        if !self.stoker.is_nan() {
            parts.push(part("stoker", self.stoker));
        }
        for (name, seconds) in &self.services {
            parts.push(part(name, *seconds));
        }
        parts.push(part("bench", self.bench));
        if let Some(machine) = self.machine {
            let ours = [self.stoker, self.bench]
                .into_iter()
                .chain(self.services.iter().map(|(_, seconds)| *seconds))
                .filter(|seconds| !seconds.is_nan())
                .sum::<f64>();
            parts.push(part("everything else", (machine - ours).max(0.0)));
        }
        parts.join(", ")
    }

    /// `{"stoker": …, <services>…, "bench": …[, "machine": …]}`, `null` where unknown.
    pub fn json(&self) -> Value {
        let number = |seconds: f64| Value::from((!seconds.is_nan()).then_some(seconds));
        let mut object = serde_json::Map::new();
        object.insert("stoker".into(), number(self.stoker));
        for (name, seconds) in &self.services {
            object.insert((*name).into(), number(*seconds));
        }
        object.insert("bench".into(), number(self.bench));
        if let Some(machine) = self.machine {
            object.insert("machine".into(), number(machine));
        }
        Value::Object(object)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cpu(stoker: f64, influxd: f64, machine: Option<f64>) -> Cpu {
        Cpu {
            stoker,
            services: vec![("influxd", influxd)],
            bench: 1.0,
            machine,
        }
    }

    #[test]
    fn cpu_is_described_per_process() {
        let spent = cpu(3.0, 2.0, None) - cpu(1.0, f64::NAN, None);
        assert_eq!(spent.stoker(), 2.0);
        assert!(spent.service("influxd").is_nan());
        assert!(spent.service("mosquitto").is_nan());
        assert_eq!(
            spent.describe(4.0),
            "stoker 2.0 s (50%), influxd n/a, bench 0.0 s (0%)"
        );
        assert_eq!(
            cpu(f64::NAN, 1.0, None).describe(2.0),
            "influxd 1.0 s (50%), bench 1.0 s (50%)"
        );
        assert_eq!(
            cpu(1.0, 1.0, Some(5.0)).describe(10.0),
            "stoker 1.0 s (10%), influxd 1.0 s (10%), bench 1.0 s (10%), everything else 2.0 s (20%)"
        );
        assert_eq!(
            cpu(f64::NAN, 0.5, Some(2.0)).json().to_string(),
            r#"{"bench":1.0,"influxd":0.5,"machine":2.0,"stoker":null}"#
        );
    }
}
