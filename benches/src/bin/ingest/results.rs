//! The run's results: the report's figures, checks against the targets,
//! text and JSON.

use super::*;

// ------------------------------------------------------------------ report
pub(crate) type Report = report::Report<Results>;

/// The figures of one run.
#[derive(Debug)]
pub(crate) struct Results {
    pub(crate) influx_version: String,
    pub(crate) mosquitto_version: String,
    pub(crate) sites: usize,
    pub(crate) sensors: usize,
    pub(crate) readings: u64,
    pub(crate) messages: u64,
    pub(crate) influx_raw: Option<Raw>,
    pub(crate) mosquitto_raw: Option<Raw>,
    pub(crate) e2e: Option<EndToEnd>,
    pub(crate) latency: Option<Latency>,
    /// Phase (e), one entry per layout, in the order measured.
    pub(crate) line_protocol: Vec<LineProtocol>,
    pub(crate) sparkplug: Option<Sparkplug>,
    /// Phase (g): (b) again, Stoker reading the broker over TLS.
    pub(crate) mqtts: Option<EndToEnd>,
    pub(crate) soak: Option<Soak>,
}

/// The run's record. It reports the settings Stoker reads from the
/// environment it inherits (these prefixes), other than those the
/// benchmark sets itself.
pub(crate) fn run_record() -> RunRecord {
    RunRecord::gather(
        "benches/ingest",
        &[
            "INGEST_",
            "MQTT_",
            "INFLUX_",
            "REDIS_",
            "POSTGRES_",
            "STOKER_",
            "SPARKPLUG_",
        ],
        &[
            "DATABASE_URL",
            "INFLUX_BUCKET",
            "REDIS_KEY_PREFIX",
            "MQTT_URL",
            "MQTT_CLIENT_ID",
            "INGEST_SPOOL_DIR",
            "METRICS_ADDR",
            "SPARKPLUG_GROUPS",
            "SPARKPLUG_HOST_ID",
        ],
    )
}

impl Results {
    pub(crate) fn new(args: &Args) -> Self {
        let mosquitto_version = std::process::Command::new("mosquitto")
            .arg("-h")
            .output()
            .ok()
            .and_then(|output| {
                String::from_utf8_lossy(&output.stdout)
                    .lines()
                    .next()
                    .map(str::to_owned)
            })
            .unwrap_or_else(|| "unknown".into());
        Self {
            influx_version: String::new(),
            mosquitto_version,
            sites: args.sites,
            sensors: args.sensors,
            readings: 0,
            messages: 0,
            influx_raw: None,
            mosquitto_raw: None,
            e2e: None,
            latency: None,
            line_protocol: Vec::new(),
            sparkplug: None,
            mqtts: None,
            soak: None,
        }
    }

    pub(crate) fn lower_raw(&self) -> Option<(f64, &'static str)> {
        let influx = self.influx_raw.as_ref()?.rate;
        let mosquitto = self.mosquitto_raw.as_ref()?.rate;
        Some(if influx <= mosquitto {
            (influx, "InfluxDB")
        } else {
            (mosquitto, "Mosquitto")
        })
    }
}

impl Figures for Results {
    const NOUN: &'static str = "ingestion";
    const TARGET_WIDTHS: [usize; 3] = [42, 22, 14];

    fn checks(&self) -> Vec<Check> {
        let mut checks = Vec::new();
        let rss = |name, peak_mib: f64| {
            Check::new(
                name,
                peak_mib,
                Bound::Below,
                TARGET_RSS_MIB,
                format!("{peak_mib:.1} MiB"),
                format!("< {TARGET_RSS_MIB:.0} MiB"),
            )
        };
        if let Some(e2e) = &self.e2e {
            let per_million = e2e.cpu.stoker() / e2e.readings as f64 * 1e6;
            checks.push(Check::new(
                "(d) CPU per million readings, full rate",
                per_million,
                Bound::AtMost,
                TARGET_CPU_PER_MILLION,
                format!("{per_million:.2} CPU-s"),
                format!("≤ {TARGET_CPU_PER_MILLION:.1} CPU-s"),
            ));
            if let Some((lower, which)) = self.lower_raw() {
                let share = e2e.rate / lower;
                checks.push(Check::new(
                    "(b) throughput / lower raw limit",
                    share,
                    Bound::AtLeast,
                    TARGET_THROUGHPUT_SHARE,
                    format!("{:.1}% (of {which})", share * 100.0),
                    format!("≥ {:.0}%", TARGET_THROUGHPUT_SHARE * 100.0),
                ));
            }
        }
        if let Some(latency) = &self.latency {
            checks.push(Check::new(
                "(c) p99 publish→queryable, half rate",
                latency.p99_ms,
                Bound::Below,
                TARGET_P99_MS,
                format!("{:.0} ms", latency.p99_ms),
                format!("< {TARGET_P99_MS:.0} ms"),
            ));
        }
        if let Some(e2e) = &self.e2e {
            checks.push(rss(
                "(d) peak RSS of ingestion, full rate",
                mib(e2e.hwm_kib.max(e2e.peak_rss_kib)),
            ));
        }
        for lp in &self.line_protocol {
            let share = lp.rate / lp.influx.rate;
            let layout = lp.layout.key();
            checks.push(Check::new(
                format!("(e) line protocol [{layout}] / InfluxDB's /write"),
                share,
                Bound::AtLeast,
                TARGET_LP_SHARE_OF_INFLUX,
                format!("{:.1}%", share * 100.0),
                format!("≥ {:.0}%", TARGET_LP_SHARE_OF_INFLUX * 100.0),
            ));
            if let Some(e2e) = &self.e2e {
                let share = lp.rate / e2e.rate;
                checks.push(Check::new(
                    format!("(e) line protocol [{layout}] / JSON (b), readings/s"),
                    share,
                    Bound::AtLeast,
                    1.0,
                    format!("{:.1}%", share * 100.0),
                    "≥ 100%".into(),
                ));
                let lp_cpu = lp.cpu.stoker() / lp.readings as f64;
                let json_cpu = e2e.cpu.stoker() / e2e.readings as f64;
                let share = lp_cpu / json_cpu;
                checks.push(Check::new(
                    format!("(e) line protocol [{layout}] / JSON (b), CPU per reading"),
                    share,
                    Bound::AtMost,
                    1.0,
                    format!("{:.1}%", share * 100.0),
                    "≤ 100%".into(),
                ));
            }
        }
        if let (Some(sp), Some(e2e)) = (&self.sparkplug, &self.e2e) {
            let share = sp.rate / e2e.rate;
            checks.push(Check::new(
                "(f) Sparkplug / JSON (b), readings/s",
                share,
                Bound::AtLeast,
                1.0,
                format!("{:.1}%", share * 100.0),
                "≥ 100%".into(),
            ));
            let sp_cpu = sp.cpu.stoker() / sp.readings as f64;
            let json_cpu = e2e.cpu.stoker() / e2e.readings as f64;
            let share = sp_cpu / json_cpu;
            checks.push(Check::new(
                "(f) Sparkplug / JSON (b), CPU per reading",
                share,
                Bound::AtMost,
                1.0,
                format!("{:.1}%", share * 100.0),
                "≤ 100%".into(),
            ));
        }
        if let (Some(tls), Some(e2e)) = (&self.mqtts, &self.e2e) {
            let share = tls.rate / e2e.rate;
            checks.push(Check::new(
                "(g) mqtts / plaintext (b), readings/s",
                share,
                Bound::AtLeast,
                TARGET_MQTTS_SHARE,
                format!("{:.1}%", share * 100.0),
                format!("≥ {:.0}%", TARGET_MQTTS_SHARE * 100.0),
            ));
        }
        if let Some(soak) = &self.soak {
            let growth = soak.growth();
            checks.push(Check::new(
                "soak: RSS growth, 1 min → end",
                growth,
                Bound::AtMost,
                TARGET_SOAK_GROWTH,
                format!("{:+.1}%", growth * 100.0),
                format!("≤ {:.0}%", TARGET_SOAK_GROWTH * 100.0),
            ));
            let share = soak.stored as f64 / soak.published.max(1) as f64;
            checks.push(Check {
                name: "soak: every reading queryable".into(),
                measured: format!("{:.1}%", share * 100.0),
                target: "100%".into(),
                ratio: share,
                pass: soak.stored >= soak.published,
            });
            let peak = soak.samples.iter().map(|(_, kib)| *kib).max().unwrap_or(0);
            checks.push(rss("soak: peak RSS", mib(peak)));
            checks.push(Check {
                name: "soak: errors logged".into(),
                measured: format!("{} errors, {} warnings", soak.log.errors, soak.log.warnings),
                target: "0 errors".into(),
                ratio: soak.log.errors as f64,
                pass: soak.log.errors == 0,
            });
            if soak.paced_below_full {
                checks.push(Check::new(
                    "soak: lag, published → queryable",
                    soak.max_lag_seconds,
                    Bound::AtMost,
                    TARGET_SOAK_LAG_S,
                    format!("{:.1} s", soak.max_lag_seconds),
                    format!("≤ {TARGET_SOAK_LAG_S:.0} s"),
                ));
            }
        }
        checks
    }

    fn write_body(&self, out: &mut String, record: &RunRecord) {
        let _ = writeln!(
            out,
            "  servers   InfluxDB {}; {} (test broker, shipped config)",
            self.influx_version, self.mosquitto_version
        );
        let _ = writeln!(
            out,
            "  fleet     {} sites × {} sensors; one message = one site's {} readings; QoS 1; {} readings = {} messages at full rate",
            self.sites,
            self.sensors,
            self.sensors,
            thousands(self.readings),
            thousands(self.messages)
        );
        record.write_settings(
            out,
            "its defaults (no INGEST_*/MQTT_*/INFLUX_*/… settings inherited)",
        );
        let _ = writeln!(out);
        let _ = writeln!(out, "  {:<48} {:>13}  detail", "measurement", "readings/s");
        let row = |out: &mut String, name: &str, value: String, detail: String| {
            let _ = writeln!(out, "  {name:<48} {value:>13}  {detail}");
        };
        if let Some(raw) = &self.influx_raw {
            row(
                out,
                "(a) raw InfluxDB write, tight client",
                rate(raw.rate),
                format!(
                    "{} lines in {:.2} s, {}",
                    thousands(raw.readings),
                    raw.seconds,
                    raw.detail
                ),
            );
        }
        if let Some(raw) = &self.mosquitto_raw {
            row(
                out,
                "(a) raw Mosquitto → bare QoS 1 subscriber",
                rate(raw.rate),
                format!("{:.2} s, {}", raw.seconds, raw.detail),
            );
        }
        if let Some(e2e) = &self.e2e {
            row(
                out,
                "(b) Stoker end to end (publish → queryable)",
                rate(e2e.rate),
                format!(
                    "{} readings in {:.2} s; broker had all after {}; count poll {:.0} ms, full count {}",
                    thousands(e2e.readings),
                    e2e.seconds,
                    e2e.published_after
                        .map_or("n/a".into(), |seconds| format!("{seconds:.2} s")),
                    e2e.count_query_ms,
                    e2e.confirm_ms
                        .map_or("n/a".into(), |ms| format!("{ms:.0} ms")),
                ),
            );
        }
        if let Some(latency) = &self.latency {
            row(
                out,
                "(c) latency phase rate (half of b)",
                rate(latency.readings_per_second),
                format!(
                    "p50 {:.0} ms, p99 {:.0} ms, max {:.0} ms; {} messages over {:.0} s, {} unseen; resolution ≈ {:.0} ms (poll period; query {:.0} ms)",
                    latency.p50_ms,
                    latency.p99_ms,
                    latency.max_ms,
                    thousands(latency.messages),
                    latency.seconds,
                    latency.missing,
                    latency.poll_period_ms,
                    latency.query_ms
                ),
            );
        }
        for lp in &self.line_protocol {
            let layout = lp.layout.key();
            row(
                out,
                &format!("(e) [{layout}] InfluxDB's own /write, same bodies"),
                rate(lp.influx.rate),
                format!(
                    "{} lines in {:.2} s, {}",
                    thousands(lp.influx.readings),
                    lp.influx.seconds,
                    lp.influx.detail
                ),
            );
            row(
                out,
                &format!("(e) [{layout}] Stoker's /write (→ queryable)"),
                rate(lp.rate),
                format!(
                    "{} readings in {:.2} s; {}: {} bodies of {} readings (≤ {} bytes), {} in flight, all answered 204 after {:.2} s, {} retried after 503",
                    thousands(lp.readings),
                    lp.seconds,
                    lp.layout.name(),
                    lp.bodies,
                    lp.body_lines,
                    thousands(lp.body_bytes as u64),
                    lp.in_flight,
                    lp.answered_after,
                    lp.retried
                ),
            );
        }
        if let Some(sp) = &self.sparkplug {
            row(
                out,
                "(f) Sparkplug NDATA end to end (→ queryable)",
                rate(sp.rate),
                format!(
                    "{} readings in {:.2} s; {} NDATA of ≤ {} bytes, QoS 0, {} publisher(s), {}; all written after {}; births queryable after {:.2} s",
                    thousands(sp.readings),
                    sp.seconds,
                    thousands(sp.messages),
                    sp.payload_bytes,
                    sp.publishers,
                    sp.paced.map_or("unpaced".into(), |paced| format!(
                        "paced at {} readings/s",
                        rate(paced)
                    )),
                    sp.written_after
                        .map_or("n/a".into(), |seconds| format!("{seconds:.2} s")),
                    sp.births_after
                ),
            );
        }
        if let Some(tls) = &self.mqtts {
            row(
                out,
                "(g) Stoker end to end, reading over mqtts://",
                rate(tls.rate),
                format!(
                    "{} readings in {:.2} s; published in the clear as in (b), Stoker's link TLS (CA verified by name); broker had all after {}",
                    thousands(tls.readings),
                    tls.seconds,
                    tls.published_after
                        .map_or("n/a".into(), |seconds| format!("{seconds:.2} s")),
                ),
            );
        }
        let _ = writeln!(out);
        if let Some(e2e) = &self.e2e {
            let _ = writeln!(
                out,
                "  (d) ingestion process during (b): CPU {:.2} s = {:.2} CPU-s per million readings; peak RSS {:.1} MiB sampled, VmHWM {:.1} MiB",
                e2e.cpu.stoker(),
                e2e.cpu.stoker() / e2e.readings as f64 * 1e6,
                mib(e2e.peak_rss_kib),
                mib(e2e.hwm_kib)
            );
            let _ = writeln!(
                out,
                "  CPU during (b), {:.2} s wall on {}: {}",
                e2e.seconds,
                record.machine.split(" (").next().unwrap_or_default(),
                e2e.cpu.describe(e2e.seconds)
            );
        }
        if let Some(raw) = &self.influx_raw {
            let _ = writeln!(
                out,
                "  CPU during (a) InfluxDB raw: {}",
                raw.cpu.describe(raw.seconds)
            );
        }
        if let Some(raw) = &self.mosquitto_raw {
            let _ = writeln!(
                out,
                "  CPU during (a) Mosquitto raw: {}",
                raw.cpu.describe(raw.seconds)
            );
        }
        if let Some(latency) = &self.latency {
            let _ = writeln!(
                out,
                "  CPU during (c): {}",
                latency.cpu.describe(latency.seconds.max(0.001))
            );
        }
        for lp in &self.line_protocol {
            let _ = writeln!(
                out,
                "  (e) [{}] stoker api during Stoker's /write: {:.2} CPU-s per million readings; CPU {}",
                lp.layout.key(),
                lp.cpu.stoker() / lp.readings as f64 * 1e6,
                lp.cpu.describe(lp.seconds)
            );
            let _ = writeln!(
                out,
                "  CPU during (e) [{}] InfluxDB's own /write: {}",
                lp.layout.key(),
                lp.influx.cpu.describe(lp.influx.seconds)
            );
        }
        if let Some(sp) = &self.sparkplug {
            let _ = writeln!(
                out,
                "  (f) Sparkplug ingest process: {:.2} CPU-s per million readings (JSON (b): {}); VmHWM {:.1} MiB; CPU {}",
                sp.cpu.stoker() / sp.readings as f64 * 1e6,
                self.e2e.as_ref().map_or("n/a".into(), |e2e| format!(
                    "{:.2}",
                    e2e.cpu.stoker() / e2e.readings as f64 * 1e6
                )),
                mib(sp.hwm_kib),
                sp.cpu.describe(sp.seconds)
            );
        }
        if let Some(tls) = &self.mqtts {
            let _ = writeln!(
                out,
                "  (g) mqtts ingest process: {:.2} CPU-s per million readings (plaintext (b): {}); VmHWM {:.1} MiB; CPU {}",
                tls.cpu.stoker() / tls.readings as f64 * 1e6,
                self.e2e.as_ref().map_or("n/a".into(), |e2e| format!(
                    "{:.2}",
                    e2e.cpu.stoker() / e2e.readings as f64 * 1e6
                )),
                mib(tls.hwm_kib),
                tls.cpu.describe(tls.seconds)
            );
        }
        if let Some(soak) = &self.soak {
            let _ = writeln!(
                out,
                "  soak: {} readings/s for {:.0} s; {} of {} readings queryable{}; CPU {}",
                rate(soak.readings_per_second),
                soak.seconds,
                thousands(soak.stored),
                thousands(soak.published),
                soak.drained_after.map_or(
                    " (NOT all: the drain wait ended after 120 s plus the soak's length, or after 30 s without progress)"
                        .into(),
                    |after| format!(" {after:.1} s after the last publish")
                ),
                soak.cpu.describe(soak.seconds)
            );
            let series: Vec<String> = soak
                .samples
                .iter()
                .map(|(at, kib)| format!("{at:.0}s {:.1}", mib(*kib)))
                .collect();
            let _ = writeln!(out, "  soak RSS (MiB): {}", series.join(", "));
            let _ = writeln!(
                out,
                "  soak lag (published, not yet queryable): at most {:.1} s; Stoker logged {} errors and {} warnings during the soak",
                soak.max_lag_seconds, soak.log.errors, soak.log.warnings
            );
            for sample in &soak.log.samples {
                let _ = writeln!(out, "    {sample}");
            }
        }
    }

    fn json(&self) -> serde_json::Value {
        let raw = |raw: &Option<Raw>| {
            raw.as_ref().map(|raw| {
                json!({
                    "readings": raw.readings, "seconds": raw.seconds,
                    "readings_per_second": raw.rate, "detail": raw.detail, "cpu_seconds": raw.cpu.json(),
                })
            })
        };
        let finite = |value: f64| value.is_finite().then_some(value);
        json!({
            "influxdb": self.influx_version,
            "mosquitto": self.mosquitto_version,
            "sites": self.sites,
            "sensors": self.sensors,
            "readings": self.readings,
            "influx_raw": raw(&self.influx_raw),
            "mosquitto_raw": raw(&self.mosquitto_raw),
            "end_to_end": self.e2e.as_ref().map(|e2e| json!({
                "readings": e2e.readings, "seconds": e2e.seconds, "readings_per_second": e2e.rate,
                "broker_acked_all_after_seconds": e2e.published_after,
                "cpu_seconds": e2e.cpu.json(),
                "stoker_cpu_seconds_per_million": e2e.cpu.stoker() / e2e.readings as f64 * 1e6,
                "stoker_peak_rss_mib": mib(e2e.peak_rss_kib), "stoker_vmhwm_mib": mib(e2e.hwm_kib),
                "count_query_ms": e2e.count_query_ms, "confirm_count_ms": e2e.confirm_ms,
            })),
            "latency": self.latency.as_ref().map(|latency| json!({
                "readings_per_second": latency.readings_per_second, "seconds": latency.seconds,
                "messages": latency.messages, "unseen": latency.missing,
                "p50_ms": finite(latency.p50_ms), "p99_ms": finite(latency.p99_ms), "max_ms": finite(latency.max_ms),
                "poll_period_ms": latency.poll_period_ms, "query_ms": latency.query_ms,
                "cpu_seconds": latency.cpu.json(),
            })),
            "line_protocol": self.line_protocol.iter().map(|lp| json!({
                "layout": lp.layout.key(), "readings": lp.readings, "bodies": lp.bodies, "body_lines": lp.body_lines,
                "in_flight": lp.in_flight, "influx_write": raw(&Some(lp.influx.clone())),
                "seconds": lp.seconds, "readings_per_second": lp.rate,
                "answered_after_seconds": lp.answered_after, "retried_after_503": lp.retried,
                "cpu_seconds": lp.cpu.json(),
                "stoker_cpu_seconds_per_million": lp.cpu.stoker() / lp.readings as f64 * 1e6,
            })).collect::<Vec<_>>(),
            "sparkplug": self.sparkplug.as_ref().map(|sp| json!({
                "readings": sp.readings, "messages": sp.messages, "publishers": sp.publishers,
                "qos": 0, "paced_readings_per_second": sp.paced, "max_payload_bytes": sp.payload_bytes,
                "births_queryable_after_seconds": sp.births_after,
                "seconds": sp.seconds, "readings_per_second": sp.rate,
                "written_after_seconds": sp.written_after,
                "cpu_seconds": sp.cpu.json(),
                "stoker_cpu_seconds_per_million": sp.cpu.stoker() / sp.readings as f64 * 1e6,
                "stoker_vmhwm_mib": mib(sp.hwm_kib),
                "share_of_json_rate": self.e2e.as_ref().map(|e2e| sp.rate / e2e.rate),
                "cpu_per_reading_share_of_json": self.e2e.as_ref().map(|e2e|
                    (sp.cpu.stoker() / sp.readings as f64) / (e2e.cpu.stoker() / e2e.readings as f64)),
            })),
            "mqtts": self.mqtts.as_ref().map(|tls| json!({
                "readings": tls.readings, "seconds": tls.seconds, "readings_per_second": tls.rate,
                "broker_acked_all_after_seconds": tls.published_after,
                "cpu_seconds": tls.cpu.json(),
                "stoker_cpu_seconds_per_million": tls.cpu.stoker() / tls.readings as f64 * 1e6,
                "stoker_vmhwm_mib": mib(tls.hwm_kib),
                "share_of_plaintext_rate": self.e2e.as_ref().map(|e2e| tls.rate / e2e.rate),
            })),
            "soak": self.soak.as_ref().map(|soak| json!({
                "seconds": soak.seconds, "readings_per_second": soak.readings_per_second,
                "published": soak.published, "stored": soak.stored, "drained_after_seconds": soak.drained_after,
                "rss_mib": soak.samples.iter().map(|(at, kib)| json!([at, mib(*kib)])).collect::<Vec<_>>(),
                "growth": soak.growth(), "cpu_seconds": soak.cpu.json(),
            })),
        })
    }
}
