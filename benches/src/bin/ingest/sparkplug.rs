//! Phase (f), Sparkplug B: the readings of (b) as NDATA of edge nodes.
//! Each site is one edge node of group `bench` (edge node id = the site's
//! slug) bound to its site as a gateway; a `stoker ingest` process of its
//! own with `SPARKPLUG_GROUPS=bench` leads the Sparkplug host (the bench
//! waits for its retained STATE online), each edge node sends its NBIRTH
//! (every sensor a named, aliased `Double`), then the (b) messages as
//! NDATA (aliases only, `seq` 1, 2, … wrapping after 255), QoS 0, counted
//! in InfluxDB until every reading is queryable, exactly once.

use super::*;
use prost::Message as _;
use stoker_benches::sparkplug::HostWatch;
use stoker_domain::SiteSlug;
use stoker_metadata::Actor;
use stoker_sparkplug::proto::Payload;
use stoker_sparkplug::proto::payload::Metric;
use stoker_sparkplug::proto::payload::metric::Value;
use stoker_sparkplug::{NAMESPACE, REBIRTH_METRIC, datatype};

/// The Sparkplug group of the benchmark's edge nodes.
pub(crate) const GROUP: &str = "bench";

/// The host id of phase (f)'s ingest process (`SPARKPLUG_HOST_ID`).
pub(crate) const HOST_ID: &str = "stoker-bench";

/// Longest wait for the host's STATE online, and then for the births.
pub(crate) const STARTUP: Duration = Duration::from_secs(60);

/// Figures of phase (f).
#[derive(Debug, Clone)]
pub(crate) struct Sparkplug {
    pub(crate) readings: u64,
    pub(crate) messages: u64,
    pub(crate) publishers: usize,
    /// The pace asked for (`--sparkplug-rate`), readings/s; `None`: as fast
    /// as the connections take them.
    pub(crate) paced: Option<f64>,
    /// Largest NDATA payload, bytes.
    pub(crate) payload_bytes: usize,
    /// From the STATE online until every birth's readings were queryable.
    pub(crate) births_after: f64,
    /// First publish → every reading queryable.
    pub(crate) seconds: f64,
    pub(crate) rate: f64,
    /// From the first publish until the connections wrote every message.
    pub(crate) written_after: Option<f64>,
    /// CPU of the phase's ingest process (as "stoker") and the services.
    pub(crate) cpu: Cpu,
    /// VmHWM of the phase's ingest process at the end, KiB.
    pub(crate) hwm_kib: u64,
}

/// The alias of sensor `position` in every edge node's birth.
pub(crate) fn alias(position: usize) -> u64 {
    position as u64 + 1
}

/// `spBv1.0/bench/{NBIRTH|NDATA}/{site}`.
pub(crate) fn topic(message_type: &str, site: &str) -> String {
    format!("{NAMESPACE}/{GROUP}/{message_type}/{site}")
}

/// The NBIRTH of every edge node at `ts`: `seq` 0, `bdSeq` 0, `Node
/// Control/Rebirth`, and each sensor by name (its key), alias and datatype
/// `Double`, with a value (a reading at `ts`, outside the data's window).
pub(crate) fn birth(fleet: &Fleet, ts: i64) -> Bytes {
    let timestamp = u64::try_from(ts).unwrap_or_default();
    let mut metrics = vec![
        Metric {
            name: Some("bdSeq".into()),
            datatype: Some(datatype::INT64),
            value: Some(Value::LongValue(0)),
            ..Metric::default()
        },
        Metric {
            name: Some(REBIRTH_METRIC.into()),
            datatype: Some(datatype::BOOLEAN),
            value: Some(Value::BooleanValue(false)),
            ..Metric::default()
        },
    ];
    metrics.extend((0..fleet.readings_per_message()).map(|position| Metric {
        name: Some(fleet.sensor(position).to_owned()),
        alias: Some(alias(position)),
        datatype: Some(datatype::DOUBLE),
        value: Some(Value::DoubleValue(Fleet::value(0, position))),
        ..Metric::default()
    }));
    let payload = Payload {
        timestamp: Some(timestamp),
        seq: Some(0),
        metrics,
        ..Payload::default()
    };
    Bytes::from(payload.encode_to_vec())
}

/// The NDATA of an edge node's `index`-th message (0, 1, …) at `ts`: the
/// readings of the JSON path's message of the same index, by alias only
/// (no name, no datatype: the birth gave them), `seq` following the
/// birth's 0 and wrapping after 255.
pub(crate) fn data(fleet: &Fleet, index: u64, ts: i64) -> Bytes {
    let metrics = (0..fleet.readings_per_message())
        .map(|position| Metric {
            alias: Some(alias(position)),
            value: Some(Value::DoubleValue(Fleet::value(index, position))),
            ..Metric::default()
        })
        .collect();
    let payload = Payload {
        timestamp: Some(u64::try_from(ts).unwrap_or_default()),
        seq: Some((index + 1) % 256),
        metrics,
        ..Payload::default()
    };
    Bytes::from(payload.encode_to_vec())
}

/// The NDATA of `messages` messages, in the order of (b): message `m` is
/// site `m % sites`'s `m / sites`-th, at `base_ts + m / sites`.
pub(crate) fn encode_messages(fleet: &Fleet, messages: u64, base_ts: i64) -> Vec<Bytes> {
    let sites = fleet.site_count() as u64;
    (0..messages)
        .map(|message| {
            let index = message / sites;
            data(fleet, index, base_ts + index as i64)
        })
        .collect()
}

/// Binds every site to its edge node: group `bench`, edge node id = the
/// site's slug.
pub(crate) async fn bind_gateways(
    pool: &stoker_postgres::Pool,
    fleet: &Fleet,
) -> anyhow::Result<()> {
    for site in 0..fleet.site_count() {
        let slug = SiteSlug::parse(fleet.site(site))?;
        let gateway = stoker_metadata::NewGateway::parse(GROUP, slug.as_str())
            .map_err(|(field, reason)| anyhow!("gateway of {slug}: {field}: {reason}"))?;
        stoker_metadata::create_gateway(pool, &Actor::Cli, &slug, &gateway)
            .await
            .with_context(|| format!("binding edge node {GROUP}/{slug} to its site"))?;
    }
    Ok(())
}

/// The stores and broker phase (f) runs on.
#[derive(Debug)]
pub(crate) struct SparkplugTarget<'a> {
    /// The ingest process's settings: the run's stores and `MQTT_URL`.
    pub(crate) env: Vec<(&'static str, String)>,
    pub(crate) pool: &'a stoker_postgres::Pool,
    pub(crate) port: u16,
}

/// Stoker's `stoker_sparkplug_*` counters that are not zero (diagnostics).
async fn sparkplug_counters(stoker: &StokerProcess) -> String {
    let Some(text) = stoker.metrics().await else {
        return "its /metrics did not answer".into();
    };
    let found: Vec<&str> = text
        .lines()
        .filter(|line| line.starts_with("stoker_sparkplug_") && !line.ends_with(" 0"))
        .collect();
    if found.is_empty() {
        "no stoker_sparkplug_* counter above 0".into()
    } else {
        found.join(", ")
    }
}

#[allow(clippy::too_many_arguments)]
pub(crate) async fn sparkplug(
    args: &Args,
    fleet: &Arc<Fleet>,
    influx: &InfluxHttp,
    database: &str,
    target: SparkplugTarget<'_>,
    procs: &Procs,
    messages: u64,
    base_ts: i64,
    limit: Duration,
) -> anyhow::Result<Sparkplug> {
    let per_message = fleet.readings_per_message() as u64;
    let total = messages * per_message;
    let sites = fleet.site_count();
    let payloads = Arc::new(encode_messages(fleet, messages, base_ts));
    let payload_bytes = payloads.iter().map(Bytes::len).max().unwrap_or(0);
    let topics: Arc<Vec<String>> = Arc::new(
        (0..sites)
            .map(|site| topic("NDATA", fleet.site(site)))
            .collect(),
    );
    let paced = (args.sparkplug_rate > 0.0).then_some(args.sparkplug_rate);

    // The ingest process that leads the Sparkplug host.
    let SparkplugTarget {
        mut env,
        pool,
        port,
    } = target;
    let client_id = unique_client_id("stoker-bench-sparkplug");
    let metrics_port = stoker_testkit::free_port();
    env.extend([
        ("MQTT_CLIENT_ID", client_id.clone()),
        ("METRICS_ADDR", format!("127.0.0.1:{metrics_port}")),
        ("SPARKPLUG_GROUPS", GROUP.to_owned()),
        ("SPARKPLUG_HOST_ID", HOST_ID.to_owned()),
    ]);
    let watch = HostWatch::connect(port, HOST_ID, GROUP).await?;
    let spawned_at = wall_millis();
    let mut stoker = process::spawn_stoker(
        &args.stoker,
        "ingest",
        &env,
        &args.log.with_extension("sparkplug.log"),
        &args.stoker_log,
    )?
    .with_metrics_port(metrics_port);
    let online_since = process::until_ready(
        &mut stoker,
        &format!(" with SPARKPLUG_GROUPS={GROUP}; waiting for its STATE online"),
        async |stoker| {
            let started = Instant::now();
            watch.wait_online(spawned_at, stoker, STARTUP).await?;
            Ok(started.elapsed())
        },
    )
    .await?;
    progress!("(f) Sparkplug: the host published STATE online {online_since:.1?} after its start");
    let online_at = watch.state().map_or(spawned_at, |state| state.timestamp);

    // Births, before the timed window: each edge node's readings at
    // `birth_ts` and its gateway online in Postgres say the host follows it.
    let publishers = connect_publishers(args.publishers, port, "bench-edge-node").await?;
    let birth_ts = base_ts - 500;
    let birth_payload = birth(fleet, birth_ts);
    let births_started = Instant::now();
    for site in 0..sites {
        publishers[site % publishers.len()]
            .publish_at_most_once(&topic("NBIRTH", fleet.site(site)), birth_payload.clone())
            .await?;
    }
    let at_birth = format!("time = {birth_ts}ms AND {NOT_PROBE}");
    let expected_births = (sites as u64) * per_message;
    loop {
        stoker.check_alive()?;
        watch.check(online_at)?;
        let stored = influx.count_readings(database, &at_birth).await?;
        let online = stoker_metadata::gateway_states(pool)
            .await?
            .iter()
            .filter(|gateway| gateway.group == GROUP && gateway.online)
            .count();
        if stored >= expected_births && online >= sites {
            break;
        }
        if births_started.elapsed() >= STARTUP {
            return Err(anyhow!(
                "(f) Sparkplug: {} of {} birth readings queryable and {online} of {sites} gateways online {STARTUP:?} after the births; Stoker's counters: {}; its log:\n{}",
                thousands(stored),
                thousands(expected_births),
                sparkplug_counters(&stoker).await,
                stoker.log_tail(10)
            ));
        }
        tokio::time::sleep(COUNT_POLL).await;
    }
    let births_after = births_started.elapsed().as_secs_f64();
    progress!(
        "(f) Sparkplug: {sites} edge nodes born ({} birth readings queryable, every gateway online) after {births_after:.2} s",
        thousands(expected_births)
    );
    settle().await;

    // NDATA, timed.
    progress!(
        "(f) Sparkplug: {} NDATA ({} readings, ≤ {} bytes each) from {} publisher(s), QoS 0, {}",
        thousands(messages),
        thousands(total),
        payload_bytes,
        publishers.len(),
        paced.map_or(
            "as fast as the connections take them".into(),
            |rate| format!("paced at {} readings/s", stoker_benches::rate(rate))
        )
    );
    let procs = procs.clone().with_stoker(stoker.pid());
    // The births are written already: count the NDATA only.
    let births_written: u64 = publishers.iter().map(|publisher| publisher.written()).sum();
    let cpu_before = procs.cpu();
    let started = Instant::now();
    let tasks = publish_edge_nodes(
        &publishers,
        &payloads,
        &topics,
        paced.map(|rate| rate / per_message as f64),
        started,
    );
    let sentinel = format!("sensor = '{}'", fleet.first_sensor());
    let mut counter = WindowCounter::new(base_ts, messages, sites as u64, 1, sentinel);
    let deadline = started + limit;
    let mut written_after = None;
    let mut next_report = started + Duration::from_secs(2);
    let (mut last_stored, mut last_progress) = (0, started);
    let finished = loop {
        let poll_started = Instant::now();
        let stored = counter.poll(influx, database).await? * per_message;
        let polled = Instant::now();
        let written = publishers
            .iter()
            .map(|publisher| publisher.written())
            .sum::<u64>()
            .saturating_sub(births_written);
        if written_after.is_none() && written >= messages {
            written_after = Some((polled - started).as_secs_f64());
        }
        if stored >= total {
            break polled;
        }
        stoker.check_alive()?;
        let problem = watch.check(online_at).err().or_else(|| {
            publishers
                .iter()
                .any(|publisher| publisher.is_lost())
                .then(|| anyhow!("a publisher lost its connection to the broker"))
        });
        if stored > last_stored {
            (last_stored, last_progress) = (stored, polled);
        }
        let problem = problem.or_else(|| {
            (polled >= last_progress + STALL)
                .then(|| anyhow!("no new reading queryable for {STALL:?}"))
                .or_else(|| {
                    (polled >= deadline).then(|| anyhow!("hard limit of {limit:?} reached"))
                })
        });
        if let Some(problem) = problem {
            return Err(anyhow!(
                "(f) Sparkplug: {problem}: {} of {} readings queryable after {:.0} s ({} of {} messages written by the publishers); Stoker's counters: {}; {}; its log:\n{}",
                thousands(stored),
                thousands(total),
                (polled - started).as_secs_f64(),
                thousands(written),
                thousands(messages),
                sparkplug_counters(&stoker).await,
                counters(&stoker).await,
                stoker.log_tail(10)
            ));
        }
        if polled >= next_report {
            let seconds = (polled - started).as_secs_f64();
            progress!(
                "(f) Sparkplug: {:.1} s: written {}, queryable {} readings ({} /s so far); CPU-s stoker {:.1}, influxd {:.1}",
                seconds,
                thousands(written),
                thousands(stored),
                rate(stored as f64 / seconds),
                (procs.cpu() - &cpu_before).stoker(),
                (procs.cpu() - &cpu_before).service("influxd")
            );
            next_report = polled + Duration::from_secs(2);
        }
        tokio::time::sleep_until(poll_started + COUNT_POLL).await;
    };
    let seconds = (finished - started).as_secs_f64();
    let cpu = procs.cpu() - cpu_before;
    let hwm_kib = procstat::sample(stoker.pid()).unwrap_or_default().hwm_kib;
    for task in tasks {
        task.await.context("edge node publisher")??;
    }
    close_publishers(publishers).await;
    // Outside the timed window: every reading of the window, exactly once,
    // and no rebirth asked for.
    watch.check(online_at)?;
    let window = format!(
        "{NOT_PROBE} AND time >= {base_ts}ms AND time < {}ms",
        base_ts + messages.div_ceil(sites as u64) as i64
    );
    let counted = influx.count_readings(database, &window).await?;
    if counted != total {
        return Err(anyhow!(
            "(f) Sparkplug: {total} readings published, {counted} stored in their window: expected equal; Stoker's counters: {}",
            sparkplug_counters(&stoker).await
        ));
    }
    progress!(
        "(f) Stoker's Sparkplug counters: {}",
        sparkplug_counters(&stoker).await
    );
    watch.close().await;
    progress!(
        "stopped the Sparkplug ingest process: {}",
        stoker.terminate().await
    );
    // Its ingestion's persistent session would collect the soak's messages.
    stoker_testkit::clear_mqtt_session_to(port, &client_id).await;
    let phase = Sparkplug {
        readings: total,
        messages,
        publishers: args.publishers,
        paced,
        payload_bytes,
        births_after,
        seconds,
        rate: total as f64 / seconds,
        written_after,
        cpu,
        hwm_kib,
    };
    progress!(
        "(f) Sparkplug: {} readings/s ({} readings in {:.2} s, all written after {}); {:.2} CPU-s per million; CPU {}",
        rate(phase.rate),
        thousands(total),
        seconds,
        phase
            .written_after
            .map_or("n/a".into(), |after| format!("{after:.2} s")),
        phase.cpu.stoker() / total as f64 * 1e6,
        phase.cpu.describe(seconds)
    );
    Ok(phase)
}

/// Publishes every NDATA at QoS 0, each edge node's from one connection
/// (site `s` on publisher `s % publishers`, so its `seq` arrives in
/// order); with `message_rate`, message `m` not before `started + m /
/// message_rate`.
fn publish_edge_nodes(
    publishers: &[Arc<Publisher>],
    payloads: &Arc<Vec<Bytes>>,
    topics: &Arc<Vec<String>>,
    message_rate: Option<f64>,
    started: Instant,
) -> Vec<JoinHandle<anyhow::Result<()>>> {
    let count = publishers.len();
    publishers
        .iter()
        .enumerate()
        .map(|(mine, publisher)| {
            let (publisher, payloads, topics) = (
                Arc::clone(publisher),
                Arc::clone(payloads),
                Arc::clone(topics),
            );
            tokio::spawn(async move {
                let sites = topics.len();
                for (message, payload) in payloads.iter().enumerate() {
                    let site = message % sites;
                    if site % count != mine {
                        continue;
                    }
                    if let Some(rate) = message_rate {
                        tokio::time::sleep_until(
                            started + Duration::from_secs_f64(message as f64 / rate),
                        )
                        .await;
                    }
                    publisher
                        .publish_at_most_once(&topics[site], payload.clone())
                        .await?;
                }
                anyhow::Ok(())
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use stoker_domain::EpochMillis;
    use stoker_sparkplug::{Host, HostSettings, MetricValue};

    #[test]
    fn births_name_every_sensor_and_data_carry_aliases_only() {
        let fleet = Fleet::new(2, 3).unwrap();
        let nbirth = Payload::decode(birth(&fleet, 1_733_565_599_500).as_ref()).unwrap();
        assert_eq!(
            (nbirth.seq, nbirth.timestamp),
            (Some(0), Some(1_733_565_599_500))
        );
        let names: Vec<_> = nbirth
            .metrics
            .iter()
            .map(|metric| metric.name.as_deref().unwrap())
            .collect();
        assert_eq!(
            names,
            [
                "bdSeq",
                "Node Control/Rebirth",
                "sensor_00",
                "sensor_01",
                "sensor_02"
            ]
        );
        assert_eq!(nbirth.metrics[3].alias, Some(2));
        assert_eq!(nbirth.metrics[3].datatype, Some(datatype::DOUBLE));

        let ndata = Payload::decode(data(&fleet, 7, 1_733_565_600_007).as_ref()).unwrap();
        assert_eq!(
            (ndata.seq, ndata.timestamp),
            (Some(8), Some(1_733_565_600_007))
        );
        assert_eq!(ndata.metrics.len(), 3);
        for (position, metric) in ndata.metrics.iter().enumerate() {
            assert_eq!(metric.name, None);
            assert_eq!(metric.datatype, None);
            assert_eq!(metric.alias, Some(alias(position)));
            assert_eq!(
                metric.value,
                Some(Value::DoubleValue(Fleet::value(7, position)))
            );
        }
        // seq wraps after 255: the 255th message after the birth is 255,
        // the next 0.
        let seq = |index| {
            Payload::decode(data(&fleet, index, 0).as_ref())
                .unwrap()
                .seq
        };
        assert_eq!(
            (seq(254), seq(255), seq(256)),
            (Some(255), Some(0), Some(1))
        );
        assert_eq!(
            topic("NDATA", fleet.site(1)),
            "spBv1.0/bench/NDATA/bench-site-001"
        );
    }

    #[test]
    fn the_host_reads_the_readings_of_the_json_path_without_a_gap() {
        // 2 sites, 600 messages each: seq wraps twice per edge node.
        let fleet = Fleet::new(2, 3).unwrap();
        let base_ts = 1_733_565_600_000;
        let messages = encode_messages(&fleet, 1200, base_ts);
        let mut host = Host::new(HostSettings::default());
        let now = EpochMillis::now();
        for site in 0..2 {
            let born = host.handle(
                &topic("NBIRTH", fleet.site(site)),
                &birth(&fleet, base_ts - 500),
                now,
            );
            assert!(born.refusals.is_empty(), "{:?}", born.refusals);
            assert_eq!(born.readings.len(), 3);
        }
        for (message, payload) in messages.iter().enumerate() {
            let (site, index) = (message % 2, (message / 2) as u64);
            let handled = host.handle(&topic("NDATA", fleet.site(site)), payload, now);
            assert!(
                handled.refusals.is_empty(),
                "message {message}: {:?}",
                handled.refusals
            );
            assert!(handled.rebirth.is_none(), "message {message}");
            let readings: Vec<_> = handled
                .readings
                .iter()
                .map(|reading| {
                    (
                        reading.sensor.as_str().to_owned(),
                        reading.value.clone(),
                        reading.timestamp.as_millis(),
                    )
                })
                .collect();
            let expected: Vec<_> = (0..3)
                .map(|position| {
                    (
                        fleet.sensor(position).to_owned(),
                        MetricValue::Number(Fleet::value(index, position)),
                        base_ts + index as i64,
                    )
                })
                .collect();
            assert_eq!(readings, expected, "message {message}");
        }
    }
}
