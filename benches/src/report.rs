//! What every benchmark report holds besides its own figures: the command
//! that reproduces the run, the date, commit and machine, the Stoker
//! settings inherited from the environment, how Stoker ended, a summary of
//! its log, and the targets table with PASS/FAIL; as text and as JSON.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use serde_json::{Value, json};

use stoker_testkit::StokerProcess;

/// Warnings and errors in the log of the process under test.
#[derive(Debug, Clone, Default)]
pub struct LogSummary {
    pub warnings: usize,
    pub errors: usize,
    /// A few distinct messages, timestamps stripped.
    pub samples: Vec<String>,
}

impl LogSummary {
    /// Reads a plain-text log (`LOG_FORMAT=text`); an unreadable one is empty.
    pub fn read(path: &Path) -> Self {
        Self::from_text(&std::fs::read_to_string(path).unwrap_or_default())
    }

    /// Sums up plain-text log lines (`LOG_FORMAT=text`).
    pub fn from_text(text: &str) -> Self {
        let mut summary = Self::default();
        for line in text.lines() {
            let level = if line.contains(" WARN ") {
                summary.warnings += 1;
                true
            } else if line.contains("ERROR") {
                summary.errors += 1;
                true
            } else {
                false
            };
            // Drop the timestamp (first word) to group repeats.
            let message = line
                .split_once(' ')
                .map_or(line, |(_, rest)| rest)
                .trim()
                .chars()
                .take(200)
                .collect::<String>();
            if level && summary.samples.len() < 5 && !summary.samples.contains(&message) {
                summary.samples.push(message);
            }
        }
        summary
    }
}

/// One row of the targets table.
#[derive(Debug)]
pub struct Check {
    pub name: std::borrow::Cow<'static, str>,
    pub measured: String,
    pub target: String,
    /// Measured / target.
    pub ratio: f64,
    pub pass: bool,
}

/// Which side of a target's limit passes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Bound {
    /// `value < limit`.
    Below,
    /// `value ≤ limit`.
    AtMost,
    /// `value ≥ limit`.
    AtLeast,
}

impl Check {
    /// A target on `value` against `limit`, the ratio `value / limit`;
    /// `measured` and `target` are the table's texts.
    pub fn new(
        name: impl Into<std::borrow::Cow<'static, str>>,
        value: f64,
        bound: Bound,
        limit: f64,
        measured: String,
        target: String,
    ) -> Self {
        let pass = match bound {
            Bound::Below => value < limit,
            Bound::AtMost => value <= limit,
            Bound::AtLeast => value >= limit,
        };
        Self {
            name: name.into(),
            measured,
            target,
            ratio: value / limit,
            pass,
        }
    }
}

/// The 0-based index of the `q`-quantile among `count` sorted values
/// (nearest rank); `None` when there are none.
pub fn nearest_rank(count: usize, q: f64) -> Option<usize> {
    (count > 0).then(|| ((q * count as f64).ceil() as usize).clamp(1, count) - 1)
}

/// The trimmed standard output of a command, if it ran and printed anything.
fn command_output(program: &str, args: &[&str]) -> Option<String> {
    let output = std::process::Command::new(program)
        .args(args)
        .output()
        .ok()?;
    let text = String::from_utf8_lossy(&output.stdout).trim().to_owned();
    (!text.is_empty()).then_some(text)
}

/// A word as a POSIX shell reads it back: as it is when it is plain,
/// single-quoted otherwise.
fn shell_word(word: &str) -> String {
    if !word.is_empty()
        && word
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "-_./=:,".contains(c))
    {
        word.to_owned()
    } else {
        format!("'{}'", word.replace('\'', r"'\''"))
    }
}

/// A benchmark's own figures, as its report shows them.
pub trait Figures {
    /// What the benchmark measures, e.g. `ingestion`: the report's title
    /// is `Stoker {NOUN} benchmark`, the process's log the `{NOUN} log`.
    const NOUN: &'static str;
    /// Widths of the targets table's name, measured and target columns.
    const TARGET_WIDTHS: [usize; 3];

    /// The lines between the head (title, date, commit, machine) and the
    /// tail (Stoker's exit and log, the targets, the reproduce line).
    fn write_body(&self, out: &mut String, record: &RunRecord);
    /// The rows of the targets table.
    fn checks(&self) -> Vec<Check>;
    /// The figures as a JSON object.
    fn json(&self) -> Value;
}

/// A benchmark's report: the run's record and the benchmark's figures.
#[derive(Debug)]
pub struct Report<F> {
    pub record: RunRecord,
    pub figures: F,
}

impl<F: Figures> Report<F> {
    /// The report as text.
    pub fn render(&self) -> String {
        let mut out = String::new();
        self.record
            .write_head(&mut out, &format!("Stoker {} benchmark", F::NOUN));
        self.figures.write_body(&mut out, &self.record);
        self.record.write_tail(
            &mut out,
            &format!("{} log", F::NOUN),
            &self.figures.checks(),
            F::TARGET_WIDTHS,
        );
        out
    }

    /// The figures' JSON object with the run's record and targets.
    pub fn json(&self) -> Value {
        self.record
            .json(&self.figures.checks(), self.figures.json())
    }

    /// Whether every target passes.
    pub fn all_pass(&self) -> bool {
        self.figures.checks().iter().all(|check| check.pass)
    }
}

/// How the process under test ended.
#[derive(Debug, Clone)]
pub struct StokerExit {
    /// The process as the report names it, e.g. `stoker ingest`.
    pub process: String,
    /// E.g. `exited cleanly on SIGTERM`.
    pub status: String,
}

/// What a report says of the run besides its figures.
#[derive(Debug)]
pub struct RunRecord {
    /// The wrapper script and the options given, quoted for a shell.
    pub command: String,
    /// Stoker settings inherited from the environment, `NAME=value`, sorted.
    pub overrides: Vec<String>,
    pub date: String,
    /// Short hash, with a note when tracked files have uncommitted changes.
    pub commit: String,
    pub machine: String,
    /// How Stoker's process ended.
    pub stoker_exit: Option<StokerExit>,
    pub log: Option<LogSummary>,
    pub log_path: Option<PathBuf>,
    /// Why the run is incomplete.
    pub error: Option<String>,
}

impl RunRecord {
    /// The run as started by `wrapper` (e.g. `benches/ingest`) with this
    /// process's arguments. `prefixes`: the names of the environment
    /// variables Stoker reads; `set_here`: those the benchmark sets itself
    /// (not inherited, so not reported).
    pub fn gather(wrapper: &str, prefixes: &[&str], set_here: &[&str]) -> Self {
        let mut command = String::from(wrapper);
        for word in std::env::args().skip(1) {
            command.push(' ');
            command.push_str(&shell_word(&word));
        }
        let commit = command_output("git", &["rev-parse", "--short", "HEAD"]).map_or_else(
            || "unknown".to_owned(),
            |commit| {
                let dirty =
                    command_output("git", &["status", "--porcelain", "--untracked-files=no"])
                        .is_some();
                if dirty {
                    format!("{commit} + uncommitted changes")
                } else {
                    commit
                }
            },
        );
        let cpu_model = std::fs::read_to_string("/proc/cpuinfo")
            .ok()
            .and_then(|text| {
                text.lines()
                    .find_map(|line| line.strip_prefix("model name"))
                    .map(|rest| rest.trim_start_matches([' ', '\t', ':']).to_owned())
            })
            .unwrap_or_else(|| "unknown CPU".into());
        let cores = std::thread::available_parallelism().map_or(0, usize::from);
        let memory = std::fs::read_to_string("/proc/meminfo")
            .ok()
            .and_then(|text| {
                text.lines()
                    .find_map(|line| line.strip_prefix("MemTotal:"))
                    .and_then(|rest| rest.split_whitespace().next()?.parse::<u64>().ok())
            })
            .map_or_else(String::new, |kib| {
                format!(", {:.0} GiB RAM", kib as f64 / 1048576.0)
            });
        let mut overrides: Vec<String> = std::env::vars()
            .filter(|(name, _)| {
                prefixes.iter().any(|prefix| name.starts_with(prefix))
                    && !set_here.contains(&name.as_str())
            })
            .map(|(name, value)| {
                if name.contains("TOKEN") || name.contains("PASSWORD") {
                    format!("{name}=…")
                } else {
                    format!("{name}={value}")
                }
            })
            .collect();
        overrides.sort();
        Self {
            command,
            overrides,
            date: chrono::Utc::now().format("%Y-%m-%d %H:%M UTC").to_string(),
            commit,
            machine: format!("{cores} CPUs ({cpu_model}){memory}"),
            stoker_exit: None,
            log: None,
            log_path: None,
            error: None,
        }
    }

    /// Stops Stoker (SIGTERM, then SIGKILL) and records how it ended and
    /// what its log says.
    pub async fn stop_stoker(&mut self, stoker: &mut StokerProcess) {
        let status = stoker.terminate().await.to_string();
        crate::progress!("stopped Stoker: {status}");
        self.stoker_exit = Some(StokerExit {
            process: stoker.name(),
            status,
        });
        self.log = Some(LogSummary::read(stoker.log()));
        self.log_path = Some(stoker.log().to_owned());
    }

    /// The title, then the date, commit and machine lines.
    fn write_head(&self, out: &mut String, title: &str) {
        let _ = writeln!(out, "{title}");
        let _ = writeln!(out, "  date      {}", self.date);
        let _ = writeln!(out, "  commit    {}", self.commit);
        let _ = writeln!(out, "  machine   {}", self.machine);
    }

    /// The `stoker` line of the head: `defaults` when nothing is inherited.
    pub fn write_settings(&self, out: &mut String, defaults: &str) {
        let settings = if self.overrides.is_empty() {
            defaults.to_owned()
        } else {
            format!(
                "settings inherited from the environment: {}",
                self.overrides.join(" ")
            )
        };
        let _ = writeln!(out, "  stoker    {settings}");
    }

    /// How Stoker ended, the summary of its log (`log_label`, e.g.
    /// `ingestion log`), the targets table with its three text columns
    /// `widths` wide, why the run is incomplete, and the command that
    /// reproduces it.
    fn write_tail(&self, out: &mut String, log_label: &str, checks: &[Check], widths: [usize; 3]) {
        if let Some(exit) = &self.stoker_exit {
            let _ = writeln!(out, "  {} {}", exit.process, exit.status);
        }
        if let Some(log) = &self.log {
            let _ = writeln!(
                out,
                "  {log_label} ({}): {} warnings, {} errors",
                self.log_path
                    .as_ref()
                    .map_or("?".into(), |path| path.display().to_string()),
                log.warnings,
                log.errors
            );
            for sample in &log.samples {
                let _ = writeln!(out, "    {sample}");
            }
        }
        if !checks.is_empty() {
            let [name, measured, target] = widths;
            let _ = writeln!(out);
            let _ = writeln!(
                out,
                "  {:<name$} {:>measured$} {:>target$} {:>7}  result",
                "target", "measured", "target", "ratio"
            );
            for check in checks {
                let _ = writeln!(
                    out,
                    "  {:<name$} {:>measured$} {:>target$} {:>7.2}  {}",
                    check.name,
                    check.measured,
                    check.target,
                    check.ratio,
                    if check.pass { "PASS" } else { "FAIL" }
                );
            }
            let _ = writeln!(
                out,
                "  (ratio = measured / target: ≤ 1 passes an upper bound, ≥ 1 a lower bound)"
            );
        }
        if let Some(error) = &self.error {
            let _ = writeln!(out);
            let _ = writeln!(out, "  INCOMPLETE: {error}");
        }
        let _ = writeln!(out);
        let prefix: String = self
            .overrides
            .iter()
            .map(|one| format!("{} ", shell_word(one)))
            .collect();
        let _ = writeln!(out, "  reproduce: {prefix}{}", self.command);
    }

    /// `figures` (a JSON object) with the run's command, environment, date,
    /// commit, machine, Stoker's exit, log summary, targets and error.
    fn json(&self, checks: &[Check], figures: Value) -> Value {
        let finite = |value: f64| value.is_finite().then_some(value);
        let mut object = match figures {
            Value::Object(object) => object,
            _ => serde_json::Map::new(),
        };
        let common = json!({
            "command": self.command,
            "stoker_environment": self.overrides,
            "date": self.date,
            "commit": self.commit,
            "machine": self.machine,
            "stoker_exit": self.stoker_exit.as_ref().map(|exit| &exit.status),
            "log": self.log.as_ref().map(|log| json!({
                "warnings": log.warnings, "errors": log.errors, "samples": log.samples,
            })),
            "targets": checks.iter().map(|check| json!({
                "name": check.name, "measured": check.measured, "target": check.target,
                "ratio": finite(check.ratio), "pass": check.pass,
            })).collect::<Vec<_>>(),
            "error": self.error,
        });
        if let Value::Object(common) = common {
            object.extend(common);
        }
        Value::Object(object)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shell_words_are_quoted_when_needed() {
        assert_eq!(shell_word("--soak"), "--soak");
        assert_eq!(shell_word("300s"), "300s");
        assert_eq!(shell_word("a b"), "'a b'");
        assert_eq!(shell_word("it's"), r"'it'\''s'");
        assert_eq!(shell_word(""), "''");
    }

    #[test]
    fn nearest_ranks() {
        assert_eq!(nearest_rank(0, 0.5), None);
        assert_eq!(nearest_rank(100, 0.5), Some(49));
        assert_eq!(nearest_rank(100, 0.99), Some(98));
        assert_eq!(nearest_rank(100, 1.0), Some(99));
        assert_eq!(nearest_rank(3, 0.0), Some(0));
    }

    #[test]
    fn checks_compare_against_their_bound() {
        let check = |value, bound| Check::new("c", value, bound, 2.0, String::new(), String::new());
        assert!(check(1.0, Bound::Below).pass);
        assert!(!check(2.0, Bound::Below).pass);
        assert!(check(2.0, Bound::AtMost).pass);
        assert!(!check(2.5, Bound::AtMost).pass);
        assert!(check(2.0, Bound::AtLeast).pass);
        assert!(!check(1.0, Bound::AtLeast).pass);
        assert!(!check(f64::NAN, Bound::Below).pass);
        assert_eq!(check(0.5, Bound::AtLeast).ratio, 0.25);
    }

    #[test]
    fn the_tail_lists_targets_and_the_command() {
        let record = RunRecord {
            command: "benches/x --fast".into(),
            overrides: vec!["STOKER_A=b c".into()],
            date: String::new(),
            commit: String::new(),
            machine: String::new(),
            stoker_exit: Some(StokerExit {
                process: "stoker x".into(),
                status: "exited cleanly on SIGTERM".into(),
            }),
            log: None,
            log_path: None,
            error: None,
        };
        let checks = [Check::new(
            "p99",
            5.0,
            Bound::Below,
            10.0,
            "5 ms".into(),
            "< 10 ms".into(),
        )];
        let mut out = String::new();
        record.write_tail(&mut out, "x log", &checks, [6, 8, 9]);
        assert_eq!(
            out,
            "  stoker x exited cleanly on SIGTERM\n\n  target measured    target   ratio  result\n  p99        5 ms   < 10 ms    0.50  PASS\n  (ratio = measured / target: ≤ 1 passes an upper bound, ≥ 1 a lower bound)\n\n  reproduce: 'STOKER_A=b c' benches/x --fast\n"
        );
        let json = record.json(&checks, json!({"figure": 1}));
        assert_eq!(json["figure"], 1);
        assert_eq!(json["targets"][0]["pass"], true);
        assert_eq!(json["stoker_environment"][0], "STOKER_A=b c");
        assert_eq!(json["stoker_exit"], "exited cleanly on SIGTERM");
    }
}
