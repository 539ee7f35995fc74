//! Stoker's start (probed until it stores readings) and phase (b), end to
//! end: every message published as fast as the broker takes it, counted
//! in InfluxDB until all are stored.

use super::*;

/// The messages of phase (b) (and of (g), in its own window): the fleet's
/// sites in turn, a site's `seq`-th message at `base_ts + seq`.
pub(crate) fn payloads(fleet: &Fleet, messages: u64, base_ts: i64) -> Arc<Vec<Bytes>> {
    let sites = fleet.site_count() as u64;
    Arc::new(
        (0..messages)
            .map(|message| {
                let seq = message / sites;
                fleet.payload(seq, base_ts + seq as i64)
            })
            .collect(),
    )
}

/// Publishes a probe reading every second until one is queryable.
pub(crate) async fn wait_ready(
    stoker: &mut StokerProcess,
    influx: &InfluxHttp,
    database: &str,
    port: u16,
) -> anyhow::Result<Duration> {
    let started = Instant::now();
    let probe = Publisher::connect(port, &unique_client_id("bench-probe")).await?;
    let topic = format!("sites/{PROBE_SITE}/telemetry");
    let condition = format!("site = '{PROBE_SITE}'");
    let deadline = started + Duration::from_secs(60);
    let mut next_probe = started;
    loop {
        stoker.check_alive()?;
        let now = Instant::now();
        if now >= next_probe {
            let payload = format!(
                "{{\"ts\":{},\"values\":{{\"{PROBE_SENSOR}\":1.0}}}}",
                wall_millis()
            );
            probe.publish(&topic, Bytes::from(payload)).await?;
            next_probe = now + Duration::from_secs(1);
        }
        if influx
            .count_readings(database, &condition)
            .await
            .unwrap_or(0)
            > 0
        {
            probe.close().await;
            return Ok(started.elapsed());
        }
        if now >= deadline {
            return Err(anyhow!(
                "no probe reading reached InfluxDB within 60 s of starting stoker ingest; its log:\n{}",
                stoker.log_tail(15)
            ));
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Phase (b) and the memory figures of (d).
#[derive(Debug, Clone)]
pub(crate) struct EndToEnd {
    pub(crate) readings: u64,
    pub(crate) seconds: f64,
    pub(crate) rate: f64,
    /// From the first publish until the broker acknowledged every message.
    pub(crate) published_after: Option<f64>,
    pub(crate) cpu: Cpu,
    /// Highest VmRSS sampled during the phase, KiB.
    pub(crate) peak_rss_kib: u64,
    /// VmHWM at the end of the phase (the process's peak since it started), KiB.
    pub(crate) hwm_kib: u64,
    /// Mean duration of the count query, ms.
    pub(crate) count_query_ms: f64,
    /// Duration of the full count that confirmed the end, ms.
    pub(crate) confirm_ms: Option<f64>,
}

#[allow(clippy::too_many_arguments)]
pub(crate) async fn end_to_end(
    args: &Args,
    fleet: &Arc<Fleet>,
    payloads: &Arc<Vec<Bytes>>,
    influx: &InfluxHttp,
    database: &str,
    port: u16,
    stoker: &mut StokerProcess,
    procs: &Procs,
    watch: &RssWatch,
    base_ts: i64,
    limit: Duration,
    phase: &str,
) -> anyhow::Result<EndToEnd> {
    let messages = payloads.len() as u64;
    let per_message = fleet.readings_per_message() as u64;
    let total = messages * per_message;
    let publishers = connect_publishers(args.publishers, port, "bench-publisher").await?;
    progress!(
        "{phase}: {} messages ({} readings) from {} publisher(s), QoS 1, as fast as the broker takes them",
        thousands(messages),
        thousands(total),
        args.publishers
    );
    watch.reset();
    let cpu_before = procs.cpu();
    let started = Instant::now();
    let tasks = publish_all(&publishers, fleet, payloads);
    let deadline = started + limit;
    let mut next_report = started + Duration::from_secs(2);
    let mut published_after = None;
    let (mut queries, mut query_time) = (0_u32, Duration::ZERO);
    let mut confirmed_in: Option<Duration> = None;
    let (mut last_stored, mut last_progress) = (0, started);
    // First the first sensor of every message (a twentieth of the points,
    // so the polls weigh little on InfluxDB); once all are there, a full
    // count confirms. Should it fall short, every reading is counted from
    // then on.
    let sites = fleet.site_count() as u64;
    // The phase's own timestamps: other phases write before and after it.
    let window_end = base_ts + messages.div_ceil(sites) as i64;
    let window = format!("time >= {base_ts}ms AND time < {window_end}ms AND {NOT_PROBE}");
    let sentinel = format!("sensor = '{}'", fleet.first_sensor());
    let mut counter = WindowCounter::new(base_ts, messages, sites, 1, sentinel);
    let mut full_counts = false;
    let mut stored;
    let finished = loop {
        let poll_started = Instant::now();
        let counted = counter.poll(influx, database).await?;
        let polled = Instant::now();
        queries += 1;
        query_time += polled - poll_started;
        stored = if full_counts {
            counted
        } else {
            counted * per_message
        };
        if stored >= total && !full_counts {
            let confirming = Instant::now();
            let all = influx.count_readings(database, &window).await?;
            confirmed_in = Some(confirming.elapsed());
            if all >= total {
                stored = all;
                break polled;
            }
            progress!(
                "{phase}: every message's first reading is queryable but only {} of {} readings: counting every reading from now on",
                thousands(all),
                thousands(total)
            );
            full_counts = true;
            counter = WindowCounter::new(base_ts, messages, sites, per_message, NOT_PROBE.into());
            stored = all;
        }
        if full_counts && stored >= total {
            break polled;
        }
        if published_after.is_none()
            && publishers.iter().map(|p| p.acked()).sum::<u64>() >= messages
        {
            published_after = Some((polled - started).as_secs_f64());
            progress!(
                "{phase}: the broker acknowledged all {} messages after {:.2} s",
                thousands(messages),
                (polled - started).as_secs_f64()
            );
        }
        stoker.check_alive()?;
        if publishers.iter().any(|publisher| publisher.is_lost()) {
            return Err(anyhow!("a publisher lost its connection to the broker"));
        }
        if stored > last_stored {
            last_stored = stored;
            last_progress = polled;
        }
        let stalled = polled >= last_progress + STALL;
        if polled >= deadline || stalled {
            let why = if stalled {
                format!("no new reading queryable for {STALL:?}")
            } else {
                format!("hard limit of {limit:?} reached")
            };
            let counted = influx
                .count_readings(database, &window)
                .await
                .map_or_else(|error| format!("failed: {error}"), thousands);
            return Err(anyhow!(
                "{phase}: {why}: only {} of {} readings queryable after {:.0} s (full count: {counted}; the broker took all {} messages from the publishers; Stoker used {:.1} CPU-s; Stoker's counters: {}); Stoker's log:\n{}",
                thousands(stored),
                thousands(total),
                (polled - started).as_secs_f64(),
                thousands(publishers.iter().map(|p| p.acked()).sum()),
                (procs.cpu() - &cpu_before).stoker(),
                counters(stoker).await,
                stoker.log_tail(10)
            ));
        }
        if polled >= next_report {
            let seconds = (polled - started).as_secs_f64();
            let cpu = procs.cpu() - &cpu_before;
            progress!(
                "{phase}: {:.1} s: published {}, acked by broker {}, queryable {} readings ({} /s so far); CPU-s stoker {:.1}, influxd {:.1}",
                seconds,
                thousands(publishers.iter().map(|p| p.published()).sum()),
                thousands(publishers.iter().map(|p| p.acked()).sum()),
                thousands(stored),
                rate(stored as f64 / seconds),
                cpu.stoker(),
                cpu.service("influxd")
            );
            next_report = polled + Duration::from_secs(2);
        }
        tokio::time::sleep_until(poll_started + COUNT_POLL).await;
    };
    let seconds = (finished - started).as_secs_f64();
    let cpu = procs.cpu() - cpu_before;
    let memory = procstat::sample(stoker.pid()).unwrap_or_default();
    for task in tasks {
        task.await.context("publisher")??;
    }
    close_publishers(publishers).await;
    // Outside the timed window: one full count of the phase's window
    // confirms the per-millisecond ones.
    let counted = influx.count_readings(database, &window).await?;
    if stored != total || counted != total {
        return Err(anyhow!(
            "{total} readings published, {stored} counted per millisecond, {counted} in a full count: expected all three equal"
        ));
    }
    let e2e = EndToEnd {
        readings: total,
        seconds,
        rate: total as f64 / seconds,
        published_after,
        cpu,
        peak_rss_kib: watch.peak_kib().max(memory.rss_kib),
        hwm_kib: memory.hwm_kib,
        count_query_ms: query_time.as_secs_f64() * 1000.0 / f64::from(queries.max(1)),
        confirm_ms: confirmed_in.map(|took| took.as_secs_f64() * 1000.0),
    };
    progress!(
        "{phase}: {} readings/s ({} readings in {:.2} s); CPU {}",
        rate(e2e.rate),
        thousands(total),
        seconds,
        e2e.cpu.describe(seconds)
    );
    progress!("{phase}: Stoker's own counters: {}", counters(stoker).await);
    progress!(
        "{phase}: ingestion {:.1} CPU-s per million readings; peak RSS {:.1} MiB (VmHWM {:.1} MiB)",
        e2e.cpu.stoker() / total as f64 * 1e6,
        mib(e2e.peak_rss_kib),
        mib(e2e.hwm_kib)
    );
    Ok(e2e)
}

/// Counts the readings of phase (b) stored so far without rescanning what
/// is already confirmed. Phase (b)'s timestamps are `base_ts + seq` (a
/// site's `seq`-th message), so each millisecond holds a known number of
/// readings; the poll counts per millisecond (`GROUP BY time(1ms)`) from
/// the first millisecond not yet complete, and moves that watermark past
/// every complete one. Each poll scans only the unconfirmed tail.
#[derive(Debug)]
pub(crate) struct WindowCounter {
    pub(crate) base_ts: i64,
    /// Readings expected at `base_ts + seq`.
    pub(crate) expected: Vec<u64>,
    /// First `seq` not known to be complete.
    pub(crate) watermark: usize,
    /// Readings at `seq < watermark`.
    pub(crate) confirmed: u64,
    /// Which readings count.
    pub(crate) condition: String,
}

impl WindowCounter {
    /// Counts `per_message` readings per message, those matching `condition`.
    pub(crate) fn new(
        base_ts: i64,
        messages: u64,
        sites: u64,
        per_message: u64,
        condition: String,
    ) -> Self {
        let expected = (0..messages.div_ceil(sites))
            .map(|seq| (messages - seq * sites).min(sites) * per_message)
            .collect();
        Self {
            base_ts,
            expected,
            watermark: 0,
            confirmed: 0,
            condition,
        }
    }

    /// Readings stored so far.
    pub(crate) async fn poll(
        &mut self,
        influx: &InfluxHttp,
        database: &str,
    ) -> anyhow::Result<u64> {
        if self.watermark >= self.expected.len() {
            return Ok(self.confirmed);
        }
        let from = self.base_ts + self.watermark as i64;
        let to = self.base_ts + self.expected.len() as i64;
        let query = format!(
            "SELECT count(value) FROM readings WHERE time >= {from}ms AND time < {to}ms AND {} GROUP BY time(1ms) fill(none)",
            self.condition
        );
        let mut counts = vec![0_u64; self.expected.len() - self.watermark];
        for series in influx.query(database, &query).await? {
            for row in series.values {
                let (Some(ts), Some(count)) = (
                    row.first().and_then(serde_json::Value::as_i64),
                    row.get(1).and_then(serde_json::Value::as_u64),
                ) else {
                    continue;
                };
                if let Some(slot) = usize::try_from(ts - from)
                    .ok()
                    .and_then(|offset| counts.get_mut(offset))
                {
                    *slot += count;
                }
            }
        }
        Ok(self.absorb(counts))
    }

    /// Takes the counts per millisecond from the watermark on; returns the
    /// readings stored so far.
    pub(crate) fn absorb(&mut self, counts: Vec<u64>) -> u64 {
        let mut tail = 0;
        let mut complete = true;
        for (offset, count) in counts.into_iter().enumerate() {
            let seq = self.watermark + offset;
            if complete && count >= self.expected[seq] {
                continue;
            }
            if complete {
                // Everything before `seq` is complete: move the watermark.
                let done: u64 = self.expected[self.watermark..seq].iter().sum();
                self.confirmed += done;
                self.watermark = seq;
                complete = false;
            }
            tail += count;
        }
        if complete {
            self.confirmed += self.expected[self.watermark..].iter().sum::<u64>();
            self.watermark = self.expected.len();
        }
        self.confirmed + tail
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_window_counter_moves_past_complete_milliseconds_only() {
        // 5 messages over 2 sites, 3 readings each: seq 0 and 1 hold 6
        // readings, seq 2 holds 3.
        let mut counter = WindowCounter::new(1000, 5, 2, 3, String::new());
        assert_eq!(counter.expected, vec![6, 6, 3]);
        assert_eq!(counter.absorb(vec![6, 2, 3]), 11);
        assert_eq!((counter.watermark, counter.confirmed), (1, 6));
        assert_eq!(counter.absorb(vec![6, 3]), 15);
        assert_eq!(counter.watermark, 3);
    }
}
