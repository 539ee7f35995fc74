//! Phase (e), line protocol: the readings of (b) as line protocol, in each
//! [`Layout`] (Telegraf's, a field per sensor and one line per message, as
//! (b)'s JSON has one object per message; and Stoker's own, a line per
//! reading), in bodies of `--lp-body-lines` readings (whole messages),
//! posted by `--lp-in-flight` clients:
//! first to InfluxDB's own `/write` (a database of its own, dropped right
//! after: the baseline of the same bodies), then to Stoker's `/write` on a
//! `stoker api` process (an API key of scope `write`, `Authorization:
//! Token`), counted in InfluxDB until every reading is queryable.

use super::*;

/// How phase (e)'s bodies lay the readings out.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub(crate) enum Layout {
    /// Telegraf's (`inputs.modbus`): one line per message, a field per
    /// sensor, tag `site`, nanoseconds.
    Fields,
    /// Stoker's own: one line per reading, tags `site`, `sensor`, `type`,
    /// field `value`, milliseconds.
    Stoker,
}

impl Layout {
    pub(crate) fn name(self) -> &'static str {
        match self {
            Layout::Fields => "Telegraf's layout (a field per sensor)",
            Layout::Stoker => "Stoker's layout (a line per reading)",
        }
    }

    pub(crate) fn key(self) -> &'static str {
        match self {
            Layout::Fields => "fields",
            Layout::Stoker => "stoker",
        }
    }

    /// The measurement whose fields are the readings, for Telegraf's
    /// layout (Stoker's counts its `readings`).
    fn measurement(self) -> Option<&'static str> {
        match self {
            Layout::Fields => Some("modbus"),
            Layout::Stoker => None,
        }
    }

    fn precision(self) -> &'static str {
        match self {
            Layout::Fields => "ns",
            Layout::Stoker => "ms",
        }
    }
}

/// Figures of phase (e), one layout.
#[derive(Debug, Clone)]
pub(crate) struct LineProtocol {
    pub(crate) layout: Layout,
    pub(crate) readings: u64,
    pub(crate) bodies: usize,
    pub(crate) body_lines: usize,
    pub(crate) body_bytes: usize,
    pub(crate) in_flight: usize,
    /// InfluxDB's own `/write`, the same bodies: first post → last answer.
    pub(crate) influx: Raw,
    /// Stoker's `/write`: first post → every reading queryable.
    pub(crate) seconds: f64,
    pub(crate) rate: f64,
    /// From the first post until Stoker answered every body 204.
    pub(crate) answered_after: f64,
    /// Bodies Stoker answered 503 (queue full), posted again after its Retry-After.
    pub(crate) retried: u64,
    /// CPU of the `stoker api` process (as "stoker") and the services.
    pub(crate) cpu: Cpu,
}

/// Encodes `messages` messages (message `m`: site `m % sites`, its
/// `m / sites`-th message at `base_ts + m / sites`) into bodies of
/// `body_lines` readings (whole messages), in `layout`.
pub(crate) fn encode_bodies(
    fleet: &Fleet,
    layout: Layout,
    messages: u64,
    base_ts: i64,
    body_lines: usize,
) -> Vec<Bytes> {
    if layout == Layout::Fields {
        return encode_field_bodies(fleet, messages, base_ts, body_lines);
    }
    let per_message = fleet.readings_per_message();
    let sites = fleet.site_count() as u64;
    let mut bodies = Vec::new();
    let mut batch = LineBatch::with_capacity(body_lines + per_message);
    for message in 0..messages {
        if !batch.is_empty() && batch.len() + per_message > body_lines {
            bodies.push(Bytes::from(batch.as_str().to_owned()));
            batch.clear();
        }
        let seq = message / sites;
        fleet.push_lines(
            &mut batch,
            (message % sites) as usize,
            seq,
            base_ts + seq as i64,
        );
    }
    if !batch.is_empty() {
        bodies.push(Bytes::from(batch.as_str().to_owned()));
    }
    bodies
}

fn encode_field_bodies(
    fleet: &Fleet,
    messages: u64,
    base_ts: i64,
    body_readings: usize,
) -> Vec<Bytes> {
    let per_message = fleet.readings_per_message();
    let per_body = (body_readings / per_message).max(1) as u64;
    let sites = fleet.site_count() as u64;
    let mut bodies = Vec::new();
    let mut body = String::new();
    for message in 0..messages {
        if message > 0 && message % per_body == 0 {
            bodies.push(Bytes::from(std::mem::take(&mut body)));
        }
        let seq = message / sites;
        fleet.push_fields_line(
            &mut body,
            (message % sites) as usize,
            seq,
            base_ts + seq as i64,
        );
    }
    if !body.is_empty() {
        bodies.push(Bytes::from(body));
    }
    bodies
}

/// The running `stoker api` that phase (e) posts to.
#[derive(Debug)]
pub(crate) struct LineTarget<'a> {
    pub(crate) stoker: &'a mut StokerProcess,
    pub(crate) server: std::net::SocketAddr,
    pub(crate) token: &'a str,
}

#[allow(clippy::too_many_arguments)]
pub(crate) async fn line_protocol(
    args: &Args,
    fleet: &Fleet,
    influx: &InfluxHttp,
    database: &str,
    target: LineTarget<'_>,
    layout: Layout,
    procs: &Procs,
    messages: u64,
    base_ts: i64,
    limit: Duration,
) -> anyhow::Result<LineProtocol> {
    let per_message = fleet.readings_per_message() as u64;
    let total = messages * per_message;
    let body_lines = args.lp_body_lines.max(per_message as usize);
    let bodies = Arc::new(encode_bodies(fleet, layout, messages, base_ts, body_lines));
    let body_bytes = bodies.iter().map(Bytes::len).max().unwrap_or(0);
    let in_flight = args.lp_in_flight;

    // InfluxDB's own /write, the same bodies.
    progress!(
        "(e) line protocol, {}: {} bodies of {} readings (≤ {} bytes), to InfluxDB's own /write first",
        layout.name(),
        bodies.len(),
        thousands(body_lines as u64),
        thousands(body_bytes as u64)
    );
    let raw = influx_own_write(
        "(e) InfluxDB's own /write",
        influx,
        procs,
        Arc::clone(&bodies),
        (layout.precision(), layout.measurement()),
        total,
        in_flight,
        format!("bodies of {body_lines} readings, {in_flight} in flight"),
    )
    .await?;
    settle().await;

    // Stoker's /write, the same bodies, counted until all are queryable.
    let LineTarget {
        stoker,
        server,
        token,
    } = target;
    let client = reqwest::Client::builder()
        .pool_max_idle_per_host(in_flight)
        .build()?;
    let url = format!(
        "http://{server}/write?db={}&precision={}",
        fleet.site(0),
        layout.precision()
    );
    let authorization = format!("Token {token}");
    progress!(
        "(e) line protocol: the same bodies to Stoker's /write ({url}), {in_flight} in flight, until every reading is queryable"
    );
    let procs = procs.clone().with_stoker(stoker.pid());
    let cpu_before = procs.cpu();
    let started = Instant::now();
    let retried = Arc::new(AtomicU64::new(0));
    let posting = tokio::spawn(post_all(Arc::clone(&bodies), in_flight, {
        let retried = Arc::clone(&retried);
        move |body: Bytes| {
            let (client, url, authorization, retried) = (
                client.clone(),
                url.clone(),
                authorization.clone(),
                Arc::clone(&retried),
            );
            async move {
                loop {
                    let response = client
                        .post(&url)
                        .header("Authorization", &authorization)
                        .header("Content-Type", "text/plain; charset=utf-8")
                        .body(body.clone())
                        .send()
                        .await
                        .context("posting to Stoker's /write")?;
                    match response.status().as_u16() {
                        204 => return anyhow::Ok(()),
                        503 => {
                            retried.fetch_add(1, Ordering::Relaxed);
                            let wait = response
                                .headers()
                                .get("Retry-After")
                                .and_then(|value| value.to_str().ok())
                                .and_then(|value| value.parse::<u64>().ok())
                                .unwrap_or(1);
                            tokio::time::sleep(Duration::from_secs(wait.clamp(1, 5))).await;
                        }
                        status => {
                            let text = response.text().await.unwrap_or_default();
                            return Err(anyhow!(
                                "Stoker's /write answered {status}: {}",
                                text.chars().take(300).collect::<String>()
                            ));
                        }
                    }
                }
            }
        }
    }));
    let sites = fleet.site_count() as u64;
    let sentinel = format!("sensor = '{}'", fleet.first_sensor());
    let mut counter = WindowCounter::new(base_ts, messages, sites, 1, sentinel);
    let deadline = started + limit;
    let mut answered_after = None;
    let mut next_report = started + Duration::from_secs(2);
    let mut posting = Some(posting);
    let finished = loop {
        let poll_started = Instant::now();
        let stored = counter.poll(influx, database).await? * per_message;
        let polled = Instant::now();
        if let Some(task) = posting.take_if(|task| task.is_finished()) {
            task.await.context("posting line protocol")??;
            answered_after = Some((polled - started).as_secs_f64());
        }
        if stored >= total {
            break polled;
        }
        stoker.check_alive()?;
        if polled >= deadline {
            return Err(anyhow!(
                "(e) line protocol: only {} of {} readings queryable after {:.0} s; Stoker's log:\n{}",
                thousands(stored),
                thousands(total),
                (polled - started).as_secs_f64(),
                stoker.log_tail(10)
            ));
        }
        if polled >= next_report {
            let seconds = (polled - started).as_secs_f64();
            progress!(
                "(e) line protocol: {:.1} s: queryable {} readings ({} /s so far); CPU-s stoker api {:.1}",
                seconds,
                thousands(stored),
                rate(stored as f64 / seconds),
                (procs.cpu() - &cpu_before).stoker()
            );
            next_report = polled + Duration::from_secs(2);
        }
        tokio::time::sleep_until(poll_started + COUNT_POLL).await;
    };
    let seconds = (finished - started).as_secs_f64();
    let cpu = procs.cpu() - cpu_before;
    if let Some(task) = posting {
        task.await.context("posting line protocol")??;
    }
    let answered_after = answered_after.unwrap_or(seconds);
    // Outside the timed window: every reading of the window, exactly once.
    let window = format!(
        "{NOT_PROBE} AND time >= {base_ts}ms AND time < {}ms",
        base_ts + messages.div_ceil(sites) as i64
    );
    let counted = influx.count_readings(database, &window).await?;
    if counted != total {
        return Err(anyhow!(
            "(e) line protocol: {total} readings posted, {counted} stored in their window: expected equal"
        ));
    }
    let phase = LineProtocol {
        layout,
        readings: total,
        bodies: bodies.len(),
        body_lines,
        body_bytes,
        in_flight,
        influx: raw,
        seconds,
        rate: total as f64 / seconds,
        answered_after,
        retried: retried.load(Ordering::Relaxed),
        cpu,
    };
    progress!(
        "(e) line protocol: Stoker {} readings/s ({} readings in {:.2} s, every body answered after {:.2} s, {} retried after 503); {:.2} CPU-s per million; CPU {}",
        rate(phase.rate),
        thousands(total),
        seconds,
        phase.answered_after,
        phase.retried,
        phase.cpu.stoker() / total as f64 * 1e6,
        phase.cpu.describe(seconds)
    );
    Ok(phase)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bodies_hold_whole_messages_up_to_the_line_count() {
        let fleet = Fleet::new(3, 4).unwrap();
        let bodies = encode_bodies(&fleet, Layout::Stoker, 10, 1_733_565_600_000, 10);
        let lines: Vec<usize> = bodies
            .iter()
            .map(|body| {
                body.split(|byte| *byte == b'\n')
                    .filter(|line| !line.is_empty())
                    .count()
            })
            .collect();
        // 4 lines per message: two messages (8 lines) fit in 10.
        assert_eq!(lines, vec![8, 8, 8, 8, 8]);
        let first = std::str::from_utf8(&bodies[0]).unwrap();
        assert!(first.starts_with("readings,site=bench-site-000,sensor=sensor_00,"));
        assert!(first.contains("bench-site-001"));
    }

    #[test]
    fn fields_bodies_hold_a_line_per_message() {
        let fleet = Fleet::new(3, 4).unwrap();
        // 10 readings per body: two messages of 4.
        let bodies = encode_bodies(&fleet, Layout::Fields, 5, 1_733_565_600_000, 10);
        let lines: Vec<Vec<&str>> = bodies
            .iter()
            .map(|body| std::str::from_utf8(body).unwrap().lines().collect())
            .collect();
        assert_eq!(
            lines.iter().map(Vec::len).collect::<Vec<_>>(),
            vec![2, 2, 1]
        );
        assert_eq!(
            lines[0][0],
            "modbus,site=bench-site-000,slave_id=1 sensor_00=0.0,sensor_01=1.7,sensor_02=3.4,sensor_03=5.1 1733565600000000000"
        );
        assert!(lines[0][1].starts_with("modbus,site=bench-site-001,"));
        assert!(lines[1][0].starts_with("modbus,site=bench-site-002,"));
        assert!(lines[1][1].ends_with(" 1733565600001000000"));
    }
}
