//! Phase (g), MQTT over TLS: the readings of (b) once more, published in
//! the clear to the broker's plain listener as in (b), and read by a
//! `stoker ingest` process of its own connected to the same broker's TLS
//! listener (`mqtts://localhost:…`, the broker's certificate signed by a
//! CA made for the run and verified by name through `MQTT_CA_FILE`). Only
//! Stoker's own link changes between (b) and (g), so the ratio of their
//! rates is what TLS costs ingestion. It runs right after (b), once (b)'s
//! process is stopped and its persistent session cleared (a second
//! subscriber would take every message too); a new plaintext process
//! takes over after it for the phases that follow.

use super::*;

/// Where phase (g)'s ingest process reads and writes.
pub(crate) struct TlsTarget<'a> {
    /// The stores' environment of the run.
    pub(crate) env: Vec<(&'static str, String)>,
    /// `mqtts://localhost:{tls port}`.
    pub(crate) url: String,
    /// The run's CA, trusted by the ingest process.
    pub(crate) ca_file: &'a std::path::Path,
    /// The broker's plain port, where the publishers publish.
    pub(crate) port: u16,
}

#[allow(clippy::too_many_arguments)]
pub(crate) async fn mqtts(
    args: &Args,
    fleet: &Arc<Fleet>,
    influx: &InfluxHttp,
    database: &str,
    target: TlsTarget<'_>,
    procs: &Procs,
    messages: u64,
    base_ts: i64,
    limit: Duration,
) -> anyhow::Result<EndToEnd> {
    let TlsTarget {
        mut env,
        url,
        ca_file,
        port,
    } = target;
    let client_id = unique_client_id("stoker-bench-mqtts");
    let metrics_port = stoker_testkit::free_port();
    env.extend([
        ("MQTT_URL", url.clone()),
        ("MQTT_CA_FILE", ca_file.display().to_string()),
        ("MQTT_CLIENT_ID", client_id.clone()),
        ("METRICS_ADDR", format!("127.0.0.1:{metrics_port}")),
        ("SPARKPLUG_GROUPS", String::new()),
    ]);
    let mut stoker = process::spawn_stoker(
        &args.stoker,
        "ingest",
        &env,
        &args.log.with_extension("mqtts.log"),
        &args.stoker_log,
    )?
    .with_metrics_port(metrics_port);
    let ready_in = process::until_ready(
        &mut stoker,
        &format!(" on {url}; probing until it is subscribed"),
        async |stoker| wait_ready(stoker, influx, database, port).await,
    )
    .await?;
    progress!("(g) mqtts: Stoker stores readings {ready_in:.1?} after its start, over TLS");
    let procs = procs.clone().with_stoker(stoker.pid());
    let watch = RssWatch::start(stoker.pid());
    let payloads = payloads(fleet, messages, base_ts);
    settle().await;
    let result = end_to_end(
        args,
        fleet,
        &payloads,
        influx,
        database,
        port,
        &mut stoker,
        &procs,
        &watch,
        base_ts,
        limit,
        "(g) mqtts",
    )
    .await;
    watch.stop();
    progress!(
        "stopped the mqtts ingest process: {}",
        stoker.terminate().await
    );
    stoker_testkit::clear_mqtt_session_to(port, &client_id).await;
    result
}
