//! The run's results: the report's figures, checks against the targets,
//! text and JSON.

use super::*;

// ------------------------------------------------------------------ report
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum PhaseName {
    Healthz,
    Latest,
    Influx,
    History,
    HealthzTls,
    LatestTls,
}

impl PhaseName {
    pub(crate) fn label(self) -> &'static str {
        match self {
            PhaseName::Healthz => "baseline /healthz",
            PhaseName::Latest => "latest",
            PhaseName::Influx => "baseline InfluxDB",
            PhaseName::History => "history",
            PhaseName::HealthzTls => "baseline /healthz over HTTPS",
            PhaseName::LatestTls => "latest over HTTPS",
        }
    }

    pub(crate) fn row(self) -> &'static str {
        match self {
            PhaseName::Healthz => "baseline: the server's HTTP stack (GET /healthz)",
            PhaseName::Latest => "latest: GET …/sites/bench-1/latest",
            PhaseName::Influx => "baseline: InfluxDB alone (raw query, /query)",
            PhaseName::History => "history: GET …/history, 24 h, every=1m",
            PhaseName::HealthzTls => "baseline over HTTPS: GET /healthz",
            PhaseName::LatestTls => "latest over HTTPS: GET …/sites/bench-1/latest",
        }
    }

    pub(crate) fn key(self) -> &'static str {
        match self {
            PhaseName::Healthz => "healthz",
            PhaseName::Latest => "latest",
            PhaseName::Influx => "influx",
            PhaseName::History => "history",
            PhaseName::HealthzTls => "healthz_https",
            PhaseName::LatestTls => "latest_https",
        }
    }
}

pub(crate) type Report = report::Report<Results>;

/// The figures of one run.
#[derive(Debug)]
pub(crate) struct Results {
    pub(crate) influx_version: String,
    pub(crate) client_threads: usize,
    pub(crate) phases: Vec<(PhaseName, LoadResult)>,
}

/// The run's record. It reports the settings Stoker reads from the
/// environment it inherits (these prefixes), other than those the
/// benchmark sets itself.
pub(crate) fn run_record() -> RunRecord {
    RunRecord::gather(
        "benches/api",
        &[
            "HTTP_",
            "API_",
            "INGEST_",
            "INFLUX_",
            "REDIS_",
            "POSTGRES_",
            "STOKER_",
        ],
        &[
            "DATABASE_URL",
            "INFLUX_URL",
            "INFLUX_BUCKET",
            "REDIS_URL",
            "REDIS_KEY_PREFIX",
            "HTTP_ADDR",
            "INGEST_SPOOL_DIR",
        ],
    )
}

impl Results {
    pub(crate) fn new(args: &Args) -> Self {
        Self {
            influx_version: String::new(),
            client_threads: args.client_threads.max(1),
            phases: Vec::new(),
        }
    }

    pub(crate) fn phase(&self, name: PhaseName) -> Option<&LoadResult> {
        self.phases
            .iter()
            .find(|(phase, _)| *phase == name)
            .map(|(_, result)| result)
    }
}

impl Figures for Results {
    const NOUN: &'static str = "API";
    const TARGET_WIDTHS: [usize; 3] = [44, 20, 16];

    fn checks(&self) -> Vec<Check> {
        let mut checks = Vec::new();
        for (phase, name) in [
            (PhaseName::Latest, "latest: requests/s"),
            (PhaseName::LatestTls, "latest over HTTPS: requests/s"),
        ] {
            if let Some(latest) = self.phase(phase) {
                checks.push(Check::new(
                    name,
                    latest.rate(),
                    Bound::AtLeast,
                    TARGET_LATEST_RPS,
                    format!("{} req/s", rate(latest.rate())),
                    format!("≥ {} req/s", rate(TARGET_LATEST_RPS)),
                ));
            }
        }
        // (phase, target name, limit, decimals of the measured figure)
        let p99_targets = [
            (PhaseName::Latest, "latest: p99", TARGET_LATEST_P99_MS, 2),
            (
                PhaseName::LatestTls,
                "latest over HTTPS: p99",
                TARGET_LATEST_P99_MS,
                2,
            ),
            (
                PhaseName::History,
                "history (24 h, 1,440 points): p99",
                TARGET_HISTORY_P99_MS,
                1,
            ),
        ];
        for (phase, name, limit, decimals) in p99_targets {
            if let Some(result) = self.phase(phase) {
                checks.push(Check::new(
                    name,
                    result.p99_ms,
                    Bound::Below,
                    limit,
                    format!("{:.decimals$} ms", result.p99_ms),
                    format!("< {limit:.0} ms"),
                ));
            }
        }
        if !self.phases.is_empty() {
            let failures: u64 = self
                .phases
                .iter()
                .map(|(_, result)| result.failures())
                .sum();
            let answers: u64 = self
                .phases
                .iter()
                .map(|(_, result)| result.requests + result.warmup_requests + result.failures())
                .sum();
            checks.push(Check {
                name: "every answer 200 (all phases, warm-ups too)".into(),
                measured: format!("{} of {} not", thousands(failures), thousands(answers)),
                target: "0 not".into(),
                ratio: failures as f64,
                pass: failures == 0,
            });
        }
        checks
    }

    fn write_body(&self, out: &mut String, record: &RunRecord) {
        let _ = writeln!(
            out,
            "  servers   stoker api (child process, release); InfluxDB {}; Redis; Postgres",
            self.influx_version
        );
        let _ = writeln!(
            out,
            "  client    this process: {} runtime thread(s), one keep-alive HTTP/1.1 connection per task, one request in flight per connection",
            self.client_threads
        );
        record.write_settings(
            out,
            "its defaults (no HTTP_*/API_*/INFLUX_*/REDIS_*/… settings inherited)",
        );
        if !self.phases.is_empty() {
            let _ = writeln!(out);
            let _ = writeln!(
                out,
                "  {:<50} {:>5} {:>9} {:>8} {:>8} {:>8} {:>8}  detail",
                "measurement", "conns", "req/s", "p50 ms", "p90 ms", "p99 ms", "max ms"
            );
            for (name, result) in &self.phases {
                let _ = writeln!(
                    out,
                    "  {:<50} {:>5} {:>9} {:>8.2} {:>8.2} {:>8.2} {:>8.2}  {} requests in {:.0} s; {} bytes per answer ({}); stoker {:.0} µs CPU per request",
                    name.row(),
                    result.connections,
                    rate(result.rate()),
                    result.p50_ms,
                    result.p90_ms,
                    result.p99_ms,
                    result.max_ms,
                    thousands(result.requests),
                    result.seconds,
                    thousands(result.body_bytes as u64),
                    result.checked,
                    result.stoker_us_per_request()
                );
            }
            let ratio = |over: PhaseName, under: PhaseName| {
                Some(self.phase(over)?.rate() / self.phase(under)?.rate())
            };
            if let Some(share) = ratio(PhaseName::Latest, PhaseName::Healthz) {
                let _ = writeln!(
                    out,
                    "  latest / baseline /healthz: {:.1}% of the requests/s of the server's HTTP stack",
                    share * 100.0
                );
            }
            if let Some(share) = ratio(PhaseName::LatestTls, PhaseName::Latest) {
                let _ = writeln!(
                    out,
                    "  latest over HTTPS / latest: {:.1}% of the plaintext requests/s (keep-alive connections: one handshake each)",
                    share * 100.0
                );
            }
            if let (Some(history), Some(influx)) = (
                self.phase(PhaseName::History),
                self.phase(PhaseName::Influx),
            ) {
                let _ = writeln!(
                    out,
                    "  history / baseline InfluxDB: {:.1}% of the requests/s, p50 {:+.2} ms and p99 {:+.2} ms over InfluxDB alone",
                    history.rate() / influx.rate() * 100.0,
                    history.p50_ms - influx.p50_ms,
                    history.p99_ms - influx.p99_ms
                );
            }
            let _ = writeln!(out);
            for (name, result) in &self.phases {
                let _ = writeln!(
                    out,
                    "  CPU during {} ({:.0} s): {}{}",
                    name.label(),
                    result.seconds,
                    result.cpu.describe(result.seconds),
                    result.others_text()
                );
            }
            for (name, result) in &self.phases {
                if let Some(failure) = &result.first_failure {
                    let _ = writeln!(
                        out,
                        "  {}: {} non-200, {} errors; the first: {failure}",
                        name.label(),
                        result.non_200,
                        result.errors
                    );
                }
            }
        }
    }

    fn json(&self) -> Value {
        let finite = |value: f64| value.is_finite().then_some(value);
        let phases: serde_json::Map<String, Value> = self
            .phases
            .iter()
            .map(|(name, result)| {
                (
                    name.key().to_owned(),
                    json!({
                        "connections": result.connections,
                        "seconds": result.seconds,
                        "requests": result.requests,
                        "warmup_requests": result.warmup_requests,
                        "requests_per_second": finite(result.rate()),
                        "p50_ms": finite(result.p50_ms), "p90_ms": finite(result.p90_ms),
                        "p99_ms": finite(result.p99_ms), "max_ms": finite(result.max_ms),
                        "mean_ms": finite(result.mean_ms),
                        "non_200": result.non_200, "errors": result.errors,
                        "connects": result.connects,
                        "first_failure": result.first_failure,
                        "body_bytes": result.body_bytes,
                        "cpu_seconds": result.cpu.json(),
                        "busiest_other_processes": result.others.iter().map(|(command, seconds)| json!([command, seconds])).collect::<Vec<_>>(),
                        "stoker_cpu_us_per_request": finite(result.stoker_us_per_request()),
                    }),
                )
            })
            .collect();
        json!({
            "influxdb": self.influx_version,
            "client_threads": self.client_threads,
            "phases": phases,
        })
    }
}
