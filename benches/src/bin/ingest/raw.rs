//! Phase (a), the raw limits: InfluxDB fed pre-encoded line protocol by a
//! bare client, and Mosquitto relaying to a bare subscriber.

use super::*;

// ------------------------------------------------------------------ phases
/// A raw limit: how many readings in how long.
#[derive(Debug, Clone)]
pub(crate) struct Raw {
    pub(crate) readings: u64,
    pub(crate) seconds: f64,
    pub(crate) rate: f64,
    pub(crate) detail: String,
    pub(crate) cpu: Cpu,
}

pub(crate) async fn influx_raw(
    args: &Args,
    fleet: &Fleet,
    influx: &InfluxHttp,
    procs: &Procs,
    base_ts: i64,
) -> anyhow::Result<Raw> {
    let lines_wanted = args.readings.min(RAW_LINES_MAX);
    let per_message = fleet.readings_per_message() as u64;
    let sites = fleet.site_count() as u64;
    progress!(
        "(a) InfluxDB raw: pre-encoding {} lines into {}-line bodies",
        thousands(lines_wanted),
        thousands(args.influx_batch as u64)
    );
    let mut bodies: Vec<Bytes> = Vec::new();
    let mut batch = LineBatch::with_capacity(args.influx_batch + per_message as usize);
    let mut lines = 0_u64;
    let mut message = 0_u64;
    while lines + batch.len() as u64 + per_message <= lines_wanted.max(per_message) {
        let seq = message / sites;
        fleet.push_lines(
            &mut batch,
            (message % sites) as usize,
            seq,
            base_ts + seq as i64,
        );
        message += 1;
        if batch.len() >= args.influx_batch {
            lines += batch.len() as u64;
            bodies.push(Bytes::from(batch.as_str().to_owned()));
            batch.clear();
        }
    }
    if !batch.is_empty() {
        lines += batch.len() as u64;
        bodies.push(Bytes::from(batch.as_str().to_owned()));
    }
    drop(batch);
    let detail = format!(
        "{}-line bodies, {} in flight",
        args.influx_batch, args.influx_in_flight
    );
    influx_own_write(
        "(a) InfluxDB raw",
        influx,
        procs,
        Arc::new(bodies),
        ("ms", None),
        lines,
        args.influx_in_flight,
        detail,
    )
    .await
}

/// Posts `bodies` (`lines` lines in all, each a new point) to InfluxDB's
/// own `/write` with `in_flight` requests at once, into a database of its
/// own, dropped as soon as they are counted so that its compactions do not
/// run during Stoker's phases: readings/s over the posts.
#[allow(clippy::too_many_arguments)]
pub(crate) async fn influx_own_write(
    phase: &str,
    influx: &InfluxHttp,
    procs: &Procs,
    bodies: Arc<Vec<Bytes>>,
    (precision, measurement): (&'static str, Option<&'static str>),
    lines: u64,
    in_flight: usize,
    detail: String,
) -> anyhow::Result<Raw> {
    let raw_db = TestInflux::create().await;
    let database = raw_db.influx().database().to_owned();
    progress!(
        "{phase}: posting {} bodies, {in_flight} in flight, to database {database}",
        bodies.len()
    );
    let cpu_before = procs.cpu();
    let started = Instant::now();
    post_all(bodies, in_flight, {
        let (influx, database) = (influx.clone(), database.clone());
        move |body: Bytes| {
            let (influx, database) = (influx.clone(), database.clone());
            async move { influx.write_in(&database, body, precision).await }
        }
    })
    .await
    .with_context(|| format!("{phase}: InfluxDB writer"))?;
    let seconds = started.elapsed().as_secs_f64();
    let cpu = procs.cpu() - cpu_before;
    // Readings in Stoker's layout, or every field of `measurement`.
    let stored = match measurement {
        None => influx.count_readings(&database, "time > 0").await?,
        Some(measurement) => influx.count_fields(&database, measurement).await?,
    };
    if stored != lines {
        return Err(anyhow!(
            "{phase}: InfluxDB took {lines} readings but {stored} are stored: distinct points expected"
        ));
    }
    drop(raw_db);
    let raw = Raw {
        readings: lines,
        seconds,
        rate: lines as f64 / seconds,
        detail,
        cpu,
    };
    progress!(
        "{phase}: {} readings/s ({} lines in {:.2} s; CPU {})",
        rate(raw.rate),
        thousands(lines),
        seconds,
        raw.cpu.describe(seconds)
    );
    Ok(raw)
}

/// Posts every body with `in_flight` concurrent workers, each taking the
/// next body when its previous one is answered.
pub(crate) async fn post_all<F, Fut>(
    bodies: Arc<Vec<Bytes>>,
    in_flight: usize,
    post: F,
) -> anyhow::Result<()>
where
    F: Fn(Bytes) -> Fut + Clone + Send + 'static,
    Fut: std::future::Future<Output = anyhow::Result<()>> + Send,
{
    let next = Arc::new(AtomicUsize::new(0));
    let mut workers = Vec::new();
    for _ in 0..in_flight.max(1) {
        let (bodies, next, post) = (Arc::clone(&bodies), Arc::clone(&next), post.clone());
        workers.push(tokio::spawn(async move {
            loop {
                let index = next.fetch_add(1, Ordering::Relaxed);
                let Some(body) = bodies.get(index) else {
                    return anyhow::Ok(());
                };
                post(body.clone()).await?;
            }
        }));
    }
    for worker in workers {
        worker.await.context("poster")??;
    }
    Ok(())
}

/// Spawns one task per publisher, each sending its share of `payloads`
/// (message `m` goes to site `m % sites`).
pub(crate) fn publish_all(
    publishers: &[Arc<Publisher>],
    fleet: &Arc<Fleet>,
    payloads: &Arc<Vec<Bytes>>,
) -> Vec<JoinHandle<anyhow::Result<()>>> {
    let count = publishers.len();
    publishers
        .iter()
        .enumerate()
        .map(|(first, publisher)| {
            let (publisher, fleet, payloads) = (
                Arc::clone(publisher),
                Arc::clone(fleet),
                Arc::clone(payloads),
            );
            tokio::spawn(async move {
                let sites = fleet.site_count();
                let mut message = first;
                while let Some(payload) = payloads.get(message) {
                    publisher
                        .publish(fleet.topic(message % sites), payload.clone())
                        .await?;
                    message += count;
                }
                anyhow::Ok(())
            })
        })
        .collect()
}

pub(crate) async fn connect_publishers(
    count: usize,
    port: u16,
    stem: &str,
) -> anyhow::Result<Vec<Arc<Publisher>>> {
    let mut publishers = Vec::with_capacity(count);
    for _ in 0..count {
        publishers.push(Arc::new(
            Publisher::connect(port, &unique_client_id(stem)).await?,
        ));
    }
    Ok(publishers)
}

pub(crate) async fn close_publishers(publishers: Vec<Arc<Publisher>>) {
    for publisher in publishers {
        if let Ok(publisher) = Arc::try_unwrap(publisher) {
            publisher.close().await;
        }
    }
}

pub(crate) async fn mosquitto_raw(
    args: &Args,
    fleet: &Arc<Fleet>,
    payloads: &Arc<Vec<Bytes>>,
    port: u16,
    procs: &Procs,
) -> anyhow::Result<Raw> {
    let messages = payloads.len() as u64;
    let per_message = fleet.readings_per_message() as u64;
    let subscriber = Subscriber::connect(
        port,
        &unique_client_id("bench-bare-subscriber"),
        "sites/+/telemetry",
    )
    .await?;
    let publishers = connect_publishers(args.publishers, port, "bench-raw-publisher").await?;
    progress!(
        "(a) Mosquitto raw: {} publisher(s) → broker → bare QoS 1 subscriber, {} messages of {} readings",
        args.publishers,
        thousands(messages),
        per_message
    );
    let cpu_before = procs.cpu();
    let started = Instant::now();
    let tasks = publish_all(&publishers, fleet, payloads);
    let deadline = started + Duration::from_secs(60) + Duration::from_secs(messages / 500);
    let mut next_report = started + Duration::from_secs(2);
    while subscriber.received() < messages {
        if subscriber.is_lost() {
            return Err(anyhow!("the bare subscriber lost its connection"));
        }
        if publishers.iter().any(|publisher| publisher.is_lost()) {
            return Err(anyhow!("a publisher lost its connection to the broker"));
        }
        let now = Instant::now();
        if now >= deadline {
            return Err(anyhow!(
                "(a) Mosquitto raw: {} of {} messages delivered before the deadline",
                subscriber.received(),
                messages
            ));
        }
        if now >= next_report {
            progress!(
                "(a) Mosquitto raw: published {}, acked {}, delivered {}",
                thousands(publishers.iter().map(|p| p.published()).sum()),
                thousands(publishers.iter().map(|p| p.acked()).sum()),
                thousands(subscriber.received())
            );
            next_report = now + Duration::from_secs(2);
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let seconds = started.elapsed().as_secs_f64();
    let cpu = procs.cpu() - cpu_before;
    for task in tasks {
        task.await.context("raw publisher")??;
    }
    close_publishers(publishers).await;
    subscriber.close().await;
    let readings = messages * per_message;
    let raw = Raw {
        readings,
        seconds,
        rate: readings as f64 / seconds,
        detail: format!(
            "{} msg/s, {} publisher(s), in flight {}",
            rate(messages as f64 / seconds),
            args.publishers,
            IN_FLIGHT
        ),
        cpu,
    };
    progress!(
        "(a) Mosquitto raw: {} readings/s ({} msg/s; CPU {})",
        rate(raw.rate),
        rate(messages as f64 / seconds),
        raw.cpu.describe(seconds)
    );
    Ok(raw)
}
