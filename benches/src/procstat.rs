//! Resident memory and CPU time of processes, and busy time of the whole
//! machine, from `/proc` (Linux).

use std::collections::HashMap;
use std::path::Path;

/// What `/proc/<pid>/status` and `/proc/<pid>/stat` say of a process.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ProcSample {
    /// Resident set size now (`VmRSS`), KiB.
    pub rss_kib: u64,
    /// Peak resident set size so far (`VmHWM`), KiB.
    pub hwm_kib: u64,
    /// User + system CPU time, clock ticks.
    pub cpu_ticks: u64,
}

/// Clock ticks per second (`getconf CLK_TCK`; 100 if that fails).
pub fn clock_ticks_per_second() -> f64 {
    std::process::Command::new("getconf")
        .arg("CLK_TCK")
        .output()
        .ok()
        .and_then(|output| String::from_utf8(output.stdout).ok())
        .and_then(|text| text.trim().parse::<f64>().ok())
        .filter(|ticks| *ticks > 0.0)
        .unwrap_or(100.0)
}

/// The fields of `/proc/<pid>/stat` after the command name: index 0 is the
/// state, 1 the parent pid, 11 utime, 12 stime.
fn stat_fields(pid: u32) -> Option<Vec<String>> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let (_, rest) = text.rsplit_once(')')?;
    Some(rest.split_whitespace().map(str::to_owned).collect())
}

/// User + system clock ticks from the fields of [`stat_fields`].
fn ticks_of<S: AsRef<str>>(fields: &[S]) -> Option<u64> {
    let user: u64 = fields.get(11)?.as_ref().parse().ok()?;
    let system: u64 = fields.get(12)?.as_ref().parse().ok()?;
    Some(user + system)
}

/// User + system CPU time of a process, in clock ticks.
pub fn cpu_ticks(pid: u32) -> Option<u64> {
    ticks_of(&stat_fields(pid)?)
}

/// User + system CPU time of every process, in clock ticks: pid →
/// (command name, ticks).
pub fn all_cpu_ticks() -> HashMap<u32, (String, u64)> {
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return HashMap::new();
    };
    entries
        .filter_map(Result::ok)
        .filter_map(|entry| entry.file_name().to_str()?.parse::<u32>().ok())
        .filter_map(|pid| {
            let text = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
            let (head, rest) = text.rsplit_once(')')?;
            let command = head.split_once('(')?.1.to_owned();
            let fields: Vec<&str> = rest.split_whitespace().collect();
            Some((pid, (command, ticks_of(&fields)?)))
        })
        .collect()
}

/// Busy clock ticks of the whole machine: every field of `/proc/stat`'s
/// `cpu` line but idle and iowait (guest time is already in user).
pub fn machine_busy_ticks() -> Option<u64> {
    let text = std::fs::read_to_string("/proc/stat").ok()?;
    let fields: Vec<u64> = text
        .lines()
        .next()?
        .strip_prefix("cpu ")?
        .split_whitespace()
        .filter_map(|field| field.parse().ok())
        .collect();
    // user nice system idle iowait irq softirq steal
    let busy = [0, 1, 2, 5, 6, 7]
        .iter()
        .filter_map(|index| fields.get(*index))
        .sum();
    Some(busy)
}

/// Whether a process exists and is not a zombie.
pub fn is_alive(pid: u32) -> bool {
    stat_fields(pid).is_some_and(|fields| fields.first().is_some_and(|state| state != "Z"))
}

/// Memory and CPU time of a process; `None` once it is gone.
pub fn sample(pid: u32) -> Option<ProcSample> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let field = |name: &str| {
        status
            .lines()
            .find_map(|line| line.strip_prefix(name))
            .and_then(|rest| rest.split_whitespace().next())
            .and_then(|number| number.parse::<u64>().ok())
            .unwrap_or(0)
    };
    Some(ProcSample {
        rss_kib: field("VmRSS:"),
        hwm_kib: field("VmHWM:"),
        cpu_ticks: cpu_ticks(pid)?,
    })
}

/// The first process whose command name (`/proc/<pid>/comm`) is `name`
/// and, if given, whose parent is `parent`.
pub fn find_process(name: &str, parent: Option<u32>) -> Option<u32> {
    let entries = std::fs::read_dir(Path::new("/proc")).ok()?;
    let mut pids: Vec<u32> = entries
        .filter_map(Result::ok)
        .filter_map(|entry| entry.file_name().to_str()?.parse().ok())
        .collect();
    pids.sort_unstable();
    pids.into_iter().find(|pid| {
        let comm = std::fs::read_to_string(format!("/proc/{pid}/comm")).unwrap_or_default();
        comm.trim_end() == name
            && parent.is_none_or(|parent| {
                stat_fields(*pid)
                    .and_then(|fields| fields.get(1)?.parse::<u32>().ok())
                    .is_some_and(|ppid| ppid == parent)
            })
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn this_process_can_be_sampled() {
        let own = sample(std::process::id()).unwrap();
        assert!(own.rss_kib > 0 && own.hwm_kib >= own.rss_kib);
        assert!(is_alive(std::process::id()));
        assert!(clock_ticks_per_second() > 0.0);
        let all = all_cpu_ticks();
        assert!(all.contains_key(&std::process::id()));
        assert!(machine_busy_ticks().is_some());
    }
}
