//! One phase's load: workers over keep-alive connections for a fixed
//! time after a warm-up, and what they measured.

use super::*;

/// What one connection saw.
#[derive(Debug, Default)]
pub(crate) struct WorkerTally {
    /// Latencies of the requests started in the measured window, µs.
    pub(crate) latencies_us: Vec<u32>,
    /// Requests started in the warm-up.
    pub(crate) warmup: u64,
    /// Non-200 answers (warm-up included).
    pub(crate) non_200: u64,
    /// Requests without an answer: I/O errors, malformed answers, timeouts.
    pub(crate) errors: u64,
    /// The first non-200 answer or error.
    pub(crate) first_failure: Option<String>,
    /// Connections opened.
    pub(crate) connects: u64,
}

pub(crate) async fn worker(target: Target, measure_from: Instant, end: Instant) -> WorkerTally {
    let mut tally = WorkerTally {
        latencies_us: Vec::with_capacity(64 * 1024),
        ..WorkerTally::default()
    };
    let mut conn = Conn::new(&target);
    loop {
        let started = Instant::now();
        if started >= end {
            break;
        }
        if conn.stream.is_none() {
            tally.connects += 1;
        }
        let outcome = tokio::time::timeout(REQUEST_TIMEOUT, conn.exchange(&target.request)).await;
        let took = started.elapsed();
        let failure = match outcome {
            Ok(Ok((200, _))) => None,
            Ok(Ok((status, at))) => {
                tally.non_200 += 1;
                Some(format!(
                    "answer {status} to GET {}: {}",
                    target.path,
                    excerpt(conn.body(&at))
                ))
            }
            Ok(Err(error)) => {
                tally.errors += 1;
                conn.reset();
                Some(format!("GET {}: {error}", target.path))
            }
            Err(_) => {
                tally.errors += 1;
                conn.reset();
                Some(format!(
                    "GET {}: no answer within {REQUEST_TIMEOUT:?}",
                    target.path
                ))
            }
        };
        if let Some(failure) = failure {
            if tally.first_failure.is_none() {
                tally.first_failure = Some(failure);
            }
            // A refused connection must not spin.
            tokio::time::sleep(Duration::from_millis(10)).await;
            continue;
        }
        if started >= measure_from {
            tally
                .latencies_us
                .push(u32::try_from(took.as_micros()).unwrap_or(u32::MAX));
        } else {
            tally.warmup += 1;
        }
    }
    tally
}

/// One load phase's figures.
#[derive(Debug, Clone, Default)]
pub(crate) struct LoadResult {
    pub(crate) connections: usize,
    pub(crate) seconds: f64,
    pub(crate) requests: u64,
    pub(crate) warmup_requests: u64,
    pub(crate) p50_ms: f64,
    pub(crate) p90_ms: f64,
    pub(crate) p99_ms: f64,
    pub(crate) max_ms: f64,
    pub(crate) mean_ms: f64,
    pub(crate) non_200: u64,
    pub(crate) errors: u64,
    pub(crate) connects: u64,
    pub(crate) first_failure: Option<String>,
    pub(crate) cpu: Cpu,
    /// The busiest other processes during the phase: (command, CPU seconds).
    pub(crate) others: Vec<(String, f64)>,
    pub(crate) body_bytes: usize,
    pub(crate) checked: String,
}

impl LoadResult {
    pub(crate) fn rate(&self) -> f64 {
        self.requests as f64 / self.seconds
    }

    pub(crate) fn failures(&self) -> u64 {
        self.non_200 + self.errors
    }

    pub(crate) fn summary(&self) -> String {
        format!(
            "{} req/s ({} requests in {:.1} s), p50 {:.2} ms, p99 {:.2} ms, max {:.2} ms; {} non-200, {} errors; CPU {}",
            rate(self.rate()),
            thousands(self.requests),
            self.seconds,
            self.p50_ms,
            self.p99_ms,
            self.max_ms,
            self.non_200,
            self.errors,
            self.cpu.describe(self.seconds)
        )
    }

    /// The busiest other processes, e.g. " (of which rustc 8.1 s, cc1 1.0 s)".
    pub(crate) fn others_text(&self) -> String {
        if self.others.is_empty() {
            return String::new();
        }
        let list: Vec<String> = self
            .others
            .iter()
            .map(|(command, seconds)| format!("{command} {seconds:.1} s"))
            .collect();
        format!(" (busiest: {})", list.join(", "))
    }

    /// Stoker's CPU time per request, µs.
    pub(crate) fn stoker_us_per_request(&self) -> f64 {
        self.cpu.stoker() / self.requests.max(1) as f64 * 1e6
    }
}

/// The `q`-quantile of sorted values (nearest rank), ms.
pub(crate) fn quantile_ms(sorted_us: &[u32], q: f64) -> f64 {
    nearest_rank(sorted_us.len(), q).map_or(f64::NAN, |index| f64::from(sorted_us[index]) / 1000.0)
}

/// `connections` workers on `target`: a warm-up, then `duration` measured.
pub(crate) async fn load(
    target: &Target,
    connections: usize,
    warmup: Duration,
    duration: Duration,
    procs: &Procs,
) -> anyhow::Result<LoadResult> {
    let measure_from = Instant::now() + warmup;
    let end = measure_from + duration;
    let workers: Vec<_> = (0..connections)
        .map(|_| tokio::spawn(worker(target.clone(), measure_from, end)))
        .collect();
    tokio::time::sleep_until(measure_from).await;
    let cpu_before = procs.cpu();
    let others_before = procstat::all_cpu_ticks();
    tokio::time::sleep_until(end).await;
    let cpu = procs.cpu() - cpu_before;
    let others = procs.busiest_others(&others_before, &procstat::all_cpu_ticks());
    let mut result = LoadResult {
        connections,
        seconds: duration.as_secs_f64(),
        cpu,
        others,
        ..LoadResult::default()
    };
    let mut latencies = Vec::new();
    for worker in workers {
        let tally = worker.await.context("load worker")?;
        latencies.extend_from_slice(&tally.latencies_us);
        result.warmup_requests += tally.warmup;
        result.non_200 += tally.non_200;
        result.errors += tally.errors;
        result.connects += tally.connects;
        if result.first_failure.is_none() {
            result.first_failure = tally.first_failure;
        }
    }
    latencies.sort_unstable();
    result.requests = latencies.len() as u64;
    result.p50_ms = quantile_ms(&latencies, 0.50);
    result.p90_ms = quantile_ms(&latencies, 0.90);
    result.p99_ms = quantile_ms(&latencies, 0.99);
    result.max_ms = quantile_ms(&latencies, 1.0);
    result.mean_ms = latencies.iter().map(|us| f64::from(*us)).sum::<f64>()
        / latencies.len().max(1) as f64
        / 1000.0;
    Ok(result)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quantiles_use_the_nearest_rank() {
        let values: Vec<u32> = (1..=100).map(|ms| ms * 1000).collect();
        assert_eq!(quantile_ms(&values, 0.5), 50.0);
        assert_eq!(quantile_ms(&values, 0.99), 99.0);
        assert_eq!(quantile_ms(&values, 1.0), 100.0);
        assert!(quantile_ms(&[], 0.5).is_nan());
    }
}
