//! The run: connect, seed, publish on schedule, wait for the broker's
//! acknowledgements, disconnect.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use rumqttc::{AsyncClient, Event, EventLoop, MqttOptions, Outgoing, Packet, QoS};
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use crate::args::SimulateArgs;
use crate::error::{Error, Result};
use crate::faults::{FaultSpec, SiteFaults, fault_plan};
use crate::fleet::{SiteSpec, fleet};
use crate::payload::Encoder;
use crate::seeding::seed_fleet;
use crate::signal::SiteSignals;

/// How often progress is logged.
const PROGRESS_INTERVAL: Duration = Duration::from_secs(10);
/// How long to wait, after the last publish, for the broker to confirm
/// every message.
const CONFIRM_TIMEOUT: Duration = Duration::from_secs(30);
/// How long to wait for the DISCONNECT to go out before dropping the
/// connection.
const DISCONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// Pause after a connection error before the next poll reconnects, so a
/// broker that is down is not hammered (and the log not flooded).
const RECONNECT_DELAY: Duration = Duration::from_millis(500);
/// Requests queued between the publisher and the event loop. Large enough
/// to absorb bursts; when full, publishing waits (backpressure).
const REQUEST_QUEUE: usize = 1024;
/// Behind schedule by more than this is reported as falling behind.
const BEHIND_TOLERANCE: Duration = Duration::from_secs(1);

/// What a finished run did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Summary {
    /// Messages published (one per site and tick).
    pub messages: u64,
    /// Readings published: messages × sensors per site, less those of
    /// sensors that a fault silenced.
    pub readings: u64,
    /// From the first publish until the broker confirmed the last message.
    pub elapsed: Duration,
}

/// Counts kept by the event loop task.
#[derive(Debug, Default)]
struct Confirmations {
    /// PUBACKs received (QoS 1).
    acknowledged: AtomicU64,
    /// PUBLISH packets written to the connection, retransmissions included
    /// (the QoS 0 confirmation: nothing more can be known).
    sent: AtomicU64,
}

/// A site while the run publishes it.
#[derive(Debug)]
struct SiteRun {
    topic: String,
    signals: SiteSignals,
}

/// Publishes the fleet described by `args` through an MQTT connection made
/// with `mqtt` until `--duration` has passed, `--messages` have been sent,
/// or `shutdown` is cancelled; then waits (up to 30 s) until the broker has
/// acknowledged every QoS 1 message and disconnects.
///
/// With QoS 1 the session is made persistent (`clean_session = false`):
/// with a clean session rumqttc drops unacknowledged and queued publishes
/// when it reconnects, and the simulator promises that every QoS 1 message
/// arrives. Give each simulator its own stable client id.
pub async fn run(
    args: SimulateArgs,
    mut mqtt: MqttOptions,
    shutdown: CancellationToken,
) -> Result<Summary> {
    args.validate()?;
    let seed = args.seed.unwrap_or_else(rand::random);
    let sites = fleet(&args);
    tracing::info!(
        sites = args.sites,
        sensors_per_site = args.sensors,
        rate_per_site = args.rate,
        qos = args.qos,
        seed,
        topic_prefix = %args.topic_prefix,
        "starting the boiler fleet simulation"
    );
    // Seeding comes first: if the API refuses, no connection has been made.
    if let Some(base_url) = &args.seed_api {
        seed_fleet(base_url, args.api_key.as_deref(), &sites).await?;
    }

    let qos = if args.qos == 0 {
        QoS::AtMostOnce
    } else {
        QoS::AtLeastOnce
    };
    if qos == QoS::AtLeastOnce {
        mqtt.set_clean_session(false);
    }
    let (client, event_loop) = AsyncClient::new(mqtt, REQUEST_QUEUE);
    let confirmations = Arc::new(Confirmations::default());
    let stop_event_loop = CancellationToken::new();
    let mut event_loop_task = tokio::spawn(drive_event_loop(
        event_loop,
        Arc::clone(&confirmations),
        stop_event_loop.clone(),
    ));

    let outcome =
        publish_and_confirm(&args, seed, &sites, &client, qos, &confirmations, &shutdown).await;

    // Disconnect even after an error, so the broker does not wait out the
    // keep-alive. The event loop task ends by itself once DISCONNECT is out;
    // the timeout covers a broker that is gone (the request queue may even
    // be full then).
    let disconnect = async {
        client.disconnect().await.ok()?;
        (&mut event_loop_task).await.ok()
    };
    if tokio::time::timeout(DISCONNECT_TIMEOUT, disconnect)
        .await
        .ok()
        .flatten()
        .is_none()
    {
        tracing::warn!(
            "could not disconnect cleanly from the MQTT broker; dropping the connection"
        );
        stop_event_loop.cancel();
        if !event_loop_task.is_finished() {
            let _ = event_loop_task.await;
        }
    }
    let summary = outcome?;
    tracing::info!(
        messages = summary.messages,
        readings = summary.readings,
        elapsed_seconds = summary.elapsed.as_secs_f64(),
        rate = summary.messages as f64 / summary.elapsed.as_secs_f64().max(f64::EPSILON),
        "simulation finished"
    );
    Ok(summary)
}

async fn publish_and_confirm(
    args: &SimulateArgs,
    seed: u64,
    sites: &[SiteSpec],
    client: &AsyncClient,
    qos: QoS,
    confirmations: &Confirmations,
    shutdown: &CancellationToken,
) -> Result<Summary> {
    let started = Instant::now();
    let Published { messages, readings } =
        publish(args, seed, sites, client, qos, shutdown).await?;
    let confirmed_count = || match qos {
        QoS::AtMostOnce => confirmations.sent.load(Ordering::Relaxed),
        _ => confirmations.acknowledged.load(Ordering::Relaxed),
    };
    let waiting_since = Instant::now();
    while confirmed_count() < messages {
        if waiting_since.elapsed() >= CONFIRM_TIMEOUT {
            return Err(Error::Unconfirmed {
                published: messages,
                confirmed: confirmed_count(),
                waited: CONFIRM_TIMEOUT,
            });
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    Ok(Summary {
        messages,
        readings,
        elapsed: started.elapsed(),
    })
}

/// What `publish` handed to the client.
#[derive(Debug, Clone, Copy)]
struct Published {
    messages: u64,
    readings: u64,
}

/// Publishes on schedule and returns how many messages and readings were
/// handed to the client.
///
/// The schedule is computed, not ticked: message `k` (of all sites, round
/// robin) is due at `start + k / (rate × sites)`, which spreads the sites
/// evenly over each period. If the publisher falls behind (a slow broker, an
/// overloaded machine) it catches up in a burst, and each message keeps its
/// due time as timestamp, so one site's timestamps are always `1/rate`
/// apart and never collide.
async fn publish(
    args: &SimulateArgs,
    seed: u64,
    sites: &[SiteSpec],
    client: &AsyncClient,
    qos: QoS,
    shutdown: &CancellationToken,
) -> Result<Published> {
    let tick_seconds = 1.0 / args.rate;
    let site_count = sites.len() as u64;
    let spacing_seconds = tick_seconds / sites.len() as f64;
    let sensors = args.sensors as usize;
    let mut encoder = Encoder::new(&sites[0].sensors).with_signals(&sites[0].signals);
    let signals = &sites[0].signals;
    let faults = fault_plan(args);
    log_fault_plan(&faults);
    let mut runs: Vec<SiteRun> = sites
        .iter()
        .enumerate()
        .map(|(index, site)| SiteRun {
            topic: format!("{}sites/{}/telemetry", args.topic_prefix, site.slug),
            signals: SiteSignals::new(seed, index, sensors, tick_seconds)
                .with_faults(SiteFaults::new(&faults, site)),
        })
        .collect();

    let start = Instant::now();
    let start_millis = chrono::Utc::now().timestamp_millis();
    let end = args.duration.map(|duration| start + duration);
    let limit = args.messages.unwrap_or(u64::MAX);
    let mut progress = Progress::new(start, args.rate * sites.len() as f64);
    let mut published: u64 = 0;
    let mut readings: u64 = 0;

    while published < limit {
        let offset_seconds = published as f64 * spacing_seconds;
        let due = start + Duration::from_secs_f64(offset_seconds);
        if end.is_some_and(|end| due >= end) {
            break;
        }
        if due > Instant::now() {
            tokio::select! {
                biased;
                () = shutdown.cancelled() => break,
                () = tokio::time::sleep_until(due) => {}
            }
        } else if shutdown.is_cancelled() {
            break;
        }

        let site = &mut runs[(published % site_count) as usize];
        site.signals.step();
        let ts_millis = start_millis + (offset_seconds * 1000.0).round() as i64;
        let mut readings_in_message: u64 = 0;
        // Read before the readings' closure borrows the signals mutably
        // (empty, and so no allocation, without --digital).
        let digital: Vec<_> = signals
            .iter()
            .map(|signal| site.signals.signal(signal))
            .collect();
        let payload = encoder.encode_with_signals(
            ts_millis,
            |index| {
                let reading = site.signals.reading(index);
                readings_in_message += u64::from(reading.is_some());
                reading
            },
            |index| digital[index],
        );
        readings_in_message += signals.len() as u64;
        // rumqttc takes the topic by value; this clone and the payload are
        // the only allocations per message.
        tokio::select! {
            biased;
            () = shutdown.cancelled() => break,
            sent = client.publish(site.topic.clone(), qos, false, payload) => sent?,
        }
        published += 1;
        readings += readings_in_message;
        progress.maybe_log(published, readings, due);
    }
    progress.log_behind_at_end(published);
    Ok(Published {
        messages: published,
        readings,
    })
}

/// Says which faults the run will inject, and when.
fn log_fault_plan(faults: &[FaultSpec]) {
    for fault in faults {
        let FaultSpec {
            site, sensor, kind, ..
        } = fault;
        let start = humantime::format_duration(fault.start);
        let duration = humantime::format_duration(fault.duration);
        let cycle = humantime::format_duration(fault.cycle);
        tracing::info!(
            fault = %kind,
            %site,
            %sensor,
            %start,
            %duration,
            %cycle,
            "fault plan: {kind} on {site}/{sensor} from {start} for {duration}, every {cycle}"
        );
    }
}

/// The periodic progress log line.
#[derive(Debug)]
struct Progress {
    target_rate: f64,
    next_log: Instant,
    last_log: Instant,
    messages_at_last_log: u64,
    worst_behind: Duration,
}

impl Progress {
    fn new(start: Instant, target_rate: f64) -> Self {
        Self {
            target_rate,
            next_log: start + PROGRESS_INTERVAL,
            last_log: start,
            messages_at_last_log: 0,
            worst_behind: Duration::ZERO,
        }
    }

    fn maybe_log(&mut self, published: u64, readings: u64, due: Instant) {
        let now = Instant::now();
        self.worst_behind = self.worst_behind.max(now.saturating_duration_since(due));
        if now < self.next_log {
            return;
        }
        let interval = now.duration_since(self.last_log).as_secs_f64();
        let rate = (published - self.messages_at_last_log) as f64 / interval;
        let behind_ms = self.worst_behind.as_millis() as u64;
        if self.worst_behind > BEHIND_TOLERANCE {
            tracing::warn!(
                messages = published,
                readings,
                rate,
                target_rate = self.target_rate,
                behind_ms,
                "simulator is falling behind its schedule"
            );
        } else {
            tracing::info!(
                messages = published,
                readings,
                rate,
                target_rate = self.target_rate,
                behind_ms,
                "simulator progress"
            );
        }
        self.last_log = now;
        self.messages_at_last_log = published;
        self.next_log = now + PROGRESS_INTERVAL;
        self.worst_behind = Duration::ZERO;
    }

    /// Short runs end before the first progress line; say so if they could
    /// not keep up.
    fn log_behind_at_end(&self, published: u64) {
        if self.worst_behind > BEHIND_TOLERANCE {
            tracing::warn!(
                messages = published,
                behind_ms = self.worst_behind.as_millis() as u64,
                "simulator fell behind its schedule"
            );
        }
    }
}

/// Polls the MQTT event loop until DISCONNECT has been sent or `stop` is
/// cancelled, counting confirmations. Connection errors are logged and
/// polling goes on: rumqttc reconnects on the next poll.
async fn drive_event_loop(
    mut event_loop: EventLoop,
    confirmations: Arc<Confirmations>,
    stop: CancellationToken,
) {
    loop {
        let event = tokio::select! {
            biased;
            () = stop.cancelled() => return,
            event = event_loop.poll() => event,
        };
        match event {
            Ok(Event::Incoming(Packet::PubAck(_))) => {
                confirmations.acknowledged.fetch_add(1, Ordering::Relaxed);
            }
            Ok(Event::Outgoing(Outgoing::Publish(_))) => {
                confirmations.sent.fetch_add(1, Ordering::Relaxed);
            }
            Ok(Event::Incoming(Packet::ConnAck(connack))) => {
                tracing::info!(
                    session_present = connack.session_present,
                    "connected to the MQTT broker"
                );
            }
            Ok(Event::Outgoing(Outgoing::Disconnect)) => return,
            Ok(_) => {}
            // Every client handle is gone: nothing more will be sent.
            Err(rumqttc::ConnectionError::RequestsDone) => return,
            Err(error) => {
                tracing::warn!(%error, "MQTT connection error; reconnecting");
                tokio::select! {
                    () = stop.cancelled() => return,
                    () = tokio::time::sleep(RECONNECT_DELAY) => {}
                }
            }
        }
    }
}
