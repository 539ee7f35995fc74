//! The soak: the full rate (or a share of it) for a long time, with
//! Stoker's memory sampled throughout.

use super::*;

/// Stoker's own counters from its `/metrics` (for diagnostics only:
/// every figure of the report is measured from the outside).
pub(crate) async fn counters(stoker: &StokerProcess) -> String {
    let Some(text) = stoker.metrics().await else {
        return "its /metrics did not answer".into();
    };
    let wanted = [
        ("stoker_ingest_messages_total", "messages"),
        ("stoker_ingest_readings_accepted_total", "readings accepted"),
        ("stoker_ingest_acked_total", "acked"),
        ("stoker_ingest_write_errors_total", "write errors"),
        ("stoker_ingest_spooled_batches_total", "spooled batches"),
        ("stoker_ingest_mqtt_connected", "mqtt connected"),
    ];
    let found: Vec<String> = wanted
        .iter()
        .filter_map(|(metric, label)| {
            text.lines()
                .find_map(|line| line.strip_prefix(metric)?.strip_prefix(' '))
                .map(|value| format!("{label} {}", value.trim()))
        })
        .collect();
    if found.is_empty() {
        "no stoker_ingest_* counters in its /metrics".into()
    } else {
        found.join(", ")
    }
}

/// The highest RSS of a process since the last reset, sampled every 100 ms.
#[derive(Debug)]
pub(crate) struct RssWatch {
    pub(crate) peak_kib: Arc<AtomicU64>,
    pub(crate) task: JoinHandle<()>,
}

impl RssWatch {
    pub(crate) fn start(pid: u32) -> Self {
        let peak_kib = Arc::new(AtomicU64::new(0));
        let task = {
            let peak_kib = Arc::clone(&peak_kib);
            tokio::spawn(async move {
                while let Some(sample) = procstat::sample(pid) {
                    peak_kib.fetch_max(sample.rss_kib, Ordering::Relaxed);
                    tokio::time::sleep(RSS_POLL).await;
                }
            })
        };
        Self { peak_kib, task }
    }

    pub(crate) fn reset(&self) {
        self.peak_kib.store(0, Ordering::Relaxed);
    }

    pub(crate) fn peak_kib(&self) -> u64 {
        self.peak_kib.load(Ordering::Relaxed)
    }

    pub(crate) fn stop(&self) {
        self.task.abort();
    }
}

pub(crate) fn mib(kib: u64) -> f64 {
    kib as f64 / 1024.0
}

#[derive(Debug, Clone)]
pub(crate) struct Soak {
    pub(crate) seconds: f64,
    pub(crate) readings_per_second: f64,
    pub(crate) published: u64,
    pub(crate) stored: u64,
    pub(crate) drained_after: Option<f64>,
    /// (seconds since the start of the soak, VmRSS KiB).
    pub(crate) samples: Vec<(f64, u64)>,
    pub(crate) reference_kib: u64,
    pub(crate) end_kib: u64,
    pub(crate) cpu: Cpu,
    /// The most messages published but not queryable at a sample, in
    /// seconds of publishing.
    pub(crate) max_lag_seconds: f64,
    /// Whether the soak ran below the full rate (then its lag must stay
    /// bounded).
    pub(crate) paced_below_full: bool,
    /// Warnings and errors Stoker logged during the soak.
    pub(crate) log: report::LogSummary,
}

impl Soak {
    pub(crate) fn growth(&self) -> f64 {
        (self.end_kib as f64 - self.reference_kib as f64) / self.reference_kib.max(1) as f64
    }
}

#[allow(clippy::too_many_arguments)]
pub(crate) async fn soak(
    fleet: &Arc<Fleet>,
    influx: &InfluxHttp,
    database: &str,
    port: u16,
    stoker: &mut StokerProcess,
    procs: &Procs,
    readings_per_second: f64,
    duration: Duration,
    paced_below_full: bool,
) -> anyhow::Result<Soak> {
    let per_message = fleet.readings_per_message() as u64;
    let publisher = Arc::new(Publisher::connect(port, &unique_client_id("bench-soak")).await?);
    progress!(
        "soak: {} readings/s for {duration:?}; RSS every {SOAK_SAMPLE:?}",
        rate(readings_per_second)
    );
    let start_ms = wall_millis();
    let cpu_before = procs.cpu();
    let log_offset = std::fs::metadata(stoker.log()).map_or(0, |meta| meta.len());
    let messages_per_second = readings_per_second / per_message as f64;
    let mut max_lag_seconds: f64 = 0.0;
    let started = Instant::now();
    let task = tokio::spawn(publish_paced(
        Arc::clone(&publisher),
        Arc::clone(fleet),
        readings_per_second / per_message as f64,
        duration,
        None,
    ));
    // Messages whose first reading is queryable (one sensor per site: cheap).
    let one_sensor = format!(
        "time >= {start_ms}ms AND sensor = '{}' AND {NOT_PROBE}",
        fleet.first_sensor()
    );
    let mut samples = Vec::new();
    let mut next_sample = started;
    while !task.is_finished() {
        stoker.check_alive()?;
        if Instant::now() >= next_sample {
            let sample = procstat::sample(stoker.pid()).unwrap_or_default();
            let at = started.elapsed().as_secs_f64();
            samples.push((at, sample.rss_kib));
            let published = publisher.published();
            let seen = influx.count_readings(database, &one_sensor).await?;
            let lag = published.saturating_sub(seen) as f64 / messages_per_second.max(1e-9);
            max_lag_seconds = max_lag_seconds.max(lag);
            progress!(
                "soak: {:>5.0} s: RSS {:.1} MiB; messages published {}, acked by broker {}, queryable {} (lag {:.1} s)",
                at,
                mib(sample.rss_kib),
                thousands(published),
                thousands(publisher.acked()),
                thousands(seen),
                lag
            );
            next_sample += SOAK_SAMPLE;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let seconds = started.elapsed().as_secs_f64();
    let end: ProcSample = procstat::sample(stoker.pid()).unwrap_or_default();
    samples.push((seconds, end.rss_kib));
    let cpu = procs.cpu() - cpu_before;
    let published = task.await.context("soak publisher")??;
    publisher.wait_acked(Duration::from_secs(30)).await?;
    if let Ok(publisher) = Arc::try_unwrap(publisher) {
        publisher.close().await;
    }
    let expected = published * per_message;
    // Polls one sensor per site (cheap), then confirms with a full count.
    // At the full rate publishers outpace InfluxDB over minutes and the
    // broker holds a backlog (ingestion reads only as fast as it writes):
    // allow as long again as the soak to drain it. A stall (no progress
    // for 30 s) still ends the wait early.
    let drain_deadline = Instant::now() + Duration::from_secs(120) + duration;
    let (mut last_seen, mut last_progress) = (0, Instant::now());
    let mut next_report = Instant::now() + Duration::from_secs(10);
    let drained_after = loop {
        let seen = influx.count_readings(database, &one_sensor).await?;
        if seen >= published {
            break Some(started.elapsed().as_secs_f64() - seconds);
        }
        if seen > last_seen {
            (last_seen, last_progress) = (seen, Instant::now());
        }
        if Instant::now() >= next_report {
            progress!(
                "soak: draining: {} of {} messages queryable",
                thousands(seen),
                thousands(published)
            );
            next_report = Instant::now() + Duration::from_secs(10);
        }
        let stalled = Instant::now() >= last_progress + STALL;
        if stalled || Instant::now() >= drain_deadline {
            progress!(
                "soak: only {} of {} messages queryable {:.0} s after the last publish{}; Stoker's counters: {}",
                thousands(seen),
                thousands(published),
                started.elapsed().as_secs_f64() - seconds,
                if stalled {
                    " (no progress for 30 s)"
                } else {
                    ""
                },
                counters(stoker).await
            );
            break None;
        }
        tokio::time::sleep(Duration::from_secs(1)).await;
    };
    let stored = influx
        .count_readings(database, &format!("time >= {start_ms}ms AND {NOT_PROBE}"))
        .await?;
    // The one-minute sample (or the first, for soaks shorter than that).
    let reference_kib = samples
        .iter()
        .find(|(at, _)| *at >= 60.0 - 0.5)
        .or(samples.first())
        .map_or(0, |(_, kib)| *kib);
    let logged = std::fs::read(stoker.log()).unwrap_or_default();
    let during = String::from_utf8_lossy(logged.get(log_offset as usize..).unwrap_or_default());
    let result = Soak {
        seconds,
        readings_per_second,
        published: expected,
        stored,
        drained_after,
        samples,
        reference_kib,
        end_kib: end.rss_kib,
        cpu,
        max_lag_seconds,
        paced_below_full,
        log: report::LogSummary::from_text(&during),
    };
    progress!(
        "soak: RSS {:.1} MiB at one minute, {:.1} MiB at the end ({:+.1}%)",
        mib(result.reference_kib),
        mib(result.end_kib),
        result.growth() * 100.0
    );
    Ok(result)
}
