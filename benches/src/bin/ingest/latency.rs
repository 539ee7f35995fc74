//! Phase (c), latency at half the rate of (b): a paced publisher, and the
//! first poll that shows each message.

use super::*;

/// Published messages of phase (c) that are not yet seen in InfluxDB,
/// per site, oldest first, and the latencies of those that were.
#[derive(Debug)]
pub(crate) struct Tracker {
    pub(crate) outstanding: Vec<VecDeque<(i64, Instant)>>,
    pub(crate) latencies_ms: Vec<f64>,
}

impl Tracker {
    pub(crate) fn new(sites: usize) -> Self {
        Self {
            outstanding: vec![VecDeque::new(); sites],
            latencies_ms: Vec::new(),
        }
    }

    pub(crate) fn published(&mut self, site: usize, ts: i64, at: Instant) {
        self.outstanding[site].push_back((ts, at));
    }

    pub(crate) fn oldest_ts(&self) -> Option<i64> {
        self.outstanding
            .iter()
            .filter_map(|site| site.front().map(|(ts, _)| *ts))
            .min()
    }

    pub(crate) fn outstanding(&self) -> usize {
        self.outstanding.iter().map(VecDeque::len).sum()
    }

    /// InfluxDB holds readings of `site` up to `stored_ts`, as seen at `at`.
    pub(crate) fn stored(&mut self, site: usize, stored_ts: i64, at: Instant) {
        let queue = &mut self.outstanding[site];
        while let Some(&(ts, published)) = queue.front() {
            if ts > stored_ts {
                break;
            }
            self.latencies_ms
                .push((at - published).as_secs_f64() * 1000.0);
            queue.pop_front();
        }
    }
}

/// Publishes at `message_rate` messages/s for `duration`, each site's
/// timestamps the publish time (ms), strictly increasing per site.
pub(crate) async fn publish_paced(
    publisher: Arc<Publisher>,
    fleet: Arc<Fleet>,
    message_rate: f64,
    duration: Duration,
    tracker: Option<Arc<Mutex<Tracker>>>,
) -> anyhow::Result<u64> {
    let sites = fleet.site_count();
    let mut last_ts = vec![i64::MIN; sites];
    let mut ticker = tokio::time::interval(Duration::from_millis(2));
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
    let started = Instant::now();
    let mut sent = 0_u64;
    loop {
        ticker.tick().await;
        let elapsed = started.elapsed();
        if elapsed >= duration {
            return Ok(sent);
        }
        let due = (elapsed.as_secs_f64() * message_rate) as u64;
        while sent < due {
            let site = (sent % sites as u64) as usize;
            let ts = wall_millis().max(last_ts[site].saturating_add(1));
            last_ts[site] = ts;
            let payload = fleet.payload(sent / sites as u64, ts);
            if let Some(tracker) = &tracker {
                tracker
                    .lock()
                    .map_err(|_| anyhow!("tracker poisoned"))?
                    .published(site, ts, Instant::now());
            }
            publisher.publish(fleet.topic(site), payload).await?;
            sent += 1;
        }
    }
}

#[derive(Debug, Clone)]
pub(crate) struct Latency {
    pub(crate) readings_per_second: f64,
    pub(crate) seconds: f64,
    pub(crate) messages: u64,
    pub(crate) missing: u64,
    pub(crate) p50_ms: f64,
    pub(crate) p99_ms: f64,
    pub(crate) max_ms: f64,
    pub(crate) poll_period_ms: f64,
    pub(crate) query_ms: f64,
    pub(crate) cpu: Cpu,
}

/// The `q`-quantile of sorted values (nearest rank); `missing` values
/// count as infinitely late.
pub(crate) fn quantile(sorted: &[f64], missing: usize, q: f64) -> f64 {
    nearest_rank(sorted.len() + missing, q).map_or(f64::NAN, |index| {
        sorted.get(index).copied().unwrap_or(f64::INFINITY)
    })
}

#[allow(clippy::too_many_arguments)]
pub(crate) async fn latency(
    args: &Args,
    fleet: &Arc<Fleet>,
    influx: &InfluxHttp,
    database: &str,
    port: u16,
    stoker: &mut StokerProcess,
    procs: &Procs,
    readings_per_second: f64,
) -> anyhow::Result<Latency> {
    let per_message = fleet.readings_per_message() as f64;
    let message_rate = readings_per_second / per_message;
    let publisher = Arc::new(Publisher::connect(port, &unique_client_id("bench-paced")).await?);
    let tracker = Arc::new(Mutex::new(Tracker::new(fleet.site_count())));
    progress!(
        "(c) latency: {} readings/s ({} msg/s) for {:?}; polling InfluxDB every {:?} for each site's newest timestamp",
        rate(readings_per_second),
        rate(message_rate),
        args.latency_duration,
        LATENCY_POLL
    );
    let cpu_before = procs.cpu();
    let started = Instant::now();
    let task = tokio::spawn(publish_paced(
        Arc::clone(&publisher),
        Arc::clone(fleet),
        message_rate,
        args.latency_duration,
        Some(Arc::clone(&tracker)),
    ));
    let drain = Duration::from_secs(30);
    let mut publishing_ended: Option<Instant> = None;
    let (mut polls, mut query_time) = (0_u32, Duration::ZERO);
    let mut next_report = started + Duration::from_secs(5);
    loop {
        let poll_started = Instant::now();
        let oldest = tracker
            .lock()
            .map_err(|_| anyhow!("tracker poisoned"))?
            .oldest_ts();
        if publishing_ended.is_none() && task.is_finished() {
            publishing_ended = Some(poll_started);
        }
        if let Some(oldest) = oldest {
            // One sensor per site is enough (a message's readings are one
            // write) and costs InfluxDB a twentieth of all of them.
            let query = format!(
                "SELECT last(value) FROM readings WHERE time >= {oldest}ms AND sensor = '{}' GROUP BY site",
                fleet.first_sensor()
            );
            let series = influx.query(database, &query).await?;
            let seen = Instant::now();
            polls += 1;
            query_time += seen - poll_started;
            let mut tracker = tracker.lock().map_err(|_| anyhow!("tracker poisoned"))?;
            for one in series {
                let site = one.tags.get("site").and_then(|site| fleet.site_index(site));
                let stored = one
                    .values
                    .iter()
                    .filter_map(|row| row.first().and_then(serde_json::Value::as_i64))
                    .max();
                if let (Some(site), Some(stored)) = (site, stored) {
                    tracker.stored(site, stored, seen);
                }
            }
        } else if publishing_ended.is_some() {
            break;
        }
        if let Some(ended) = publishing_ended
            && poll_started >= ended + drain
        {
            break;
        }
        stoker.check_alive()?;
        if poll_started >= next_report {
            let (outstanding, done) = {
                let tracker = tracker.lock().map_err(|_| anyhow!("tracker poisoned"))?;
                (tracker.outstanding(), tracker.latencies_ms.len())
            };
            progress!(
                "(c) latency: {:.0} s: {} messages queryable, {} outstanding",
                (poll_started - started).as_secs_f64(),
                thousands(done as u64),
                thousands(outstanding as u64)
            );
            next_report = poll_started + Duration::from_secs(5);
        }
        tokio::time::sleep_until(poll_started + LATENCY_POLL).await;
    }
    let seconds = publishing_ended.map_or(0.0, |ended| (ended - started).as_secs_f64());
    let cpu = procs.cpu() - cpu_before;
    let messages = task.await.context("paced publisher")??;
    publisher.wait_acked(Duration::from_secs(10)).await?;
    if let Ok(publisher) = Arc::try_unwrap(publisher) {
        publisher.close().await;
    }
    let (mut latencies, missing) = {
        let tracker = tracker.lock().map_err(|_| anyhow!("tracker poisoned"))?;
        (tracker.latencies_ms.clone(), tracker.outstanding())
    };
    latencies.sort_by(f64::total_cmp);
    let result = Latency {
        readings_per_second,
        seconds,
        messages,
        missing: missing as u64,
        p50_ms: quantile(&latencies, missing, 0.50),
        p99_ms: quantile(&latencies, missing, 0.99),
        max_ms: if missing > 0 {
            f64::INFINITY
        } else {
            latencies.last().copied().unwrap_or(f64::NAN)
        },
        poll_period_ms: seconds * 1000.0 / f64::from(polls.max(1)),
        query_ms: query_time.as_secs_f64() * 1000.0 / f64::from(polls.max(1)),
        cpu,
    };
    progress!(
        "(c) latency: p50 {:.0} ms, p99 {:.0} ms, max {:.0} ms over {} messages ({} never seen within {drain:?}); poll every {:.0} ms (query {:.0} ms)",
        result.p50_ms,
        result.p99_ms,
        result.max_ms,
        thousands(messages),
        missing,
        result.poll_period_ms,
        result.query_ms
    );
    Ok(result)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quantiles_use_the_nearest_rank_and_count_missing_as_late() {
        let values: Vec<f64> = (1..=100).map(f64::from).collect();
        assert_eq!(quantile(&values, 0, 0.5), 50.0);
        assert_eq!(quantile(&values, 0, 0.99), 99.0);
        assert_eq!(quantile(&values, 0, 1.0), 100.0);
        assert_eq!(quantile(&values[..98], 2, 0.99), f64::INFINITY);
        assert!(quantile(&[], 0, 0.5).is_nan());
    }

    #[test]
    fn the_tracker_assigns_each_message_the_first_poll_that_shows_it() {
        let start = Instant::now();
        let mut tracker = Tracker::new(2);
        tracker.published(0, 100, start);
        tracker.published(0, 110, start);
        tracker.published(1, 105, start);
        assert_eq!(tracker.oldest_ts(), Some(100));
        tracker.stored(0, 100, start + Duration::from_millis(40));
        assert_eq!(tracker.latencies_ms.len(), 1);
        assert_eq!(tracker.oldest_ts(), Some(105));
        tracker.stored(0, 200, start + Duration::from_millis(80));
        tracker.stored(1, 200, start + Duration::from_millis(80));
        assert_eq!(tracker.outstanding(), 0);
        assert_eq!(tracker.latencies_ms.len(), 3);
    }
}
