//! `serve`, `ingest`, `api` and `analytics`: the long-running roles.

use std::net::SocketAddr;
use std::process::ExitCode;
use std::sync::Arc;

use anyhow::Context;
use prometheus_client::registry::Registry;
use stoker_analytics::live::EvaluationOptions;
use stoker_analytics::notify::{Dispatcher, NotifyOptions};
use stoker_analytics::rollup::{RollupMetrics, RollupOptions};
use stoker_api::{ApiState, Readiness};
use stoker_cache::Cache;
use stoker_domain::redact_url;
use stoker_ingestion::{IngestOptions, Ingestion};
use stoker_stores::Stores;
use stoker_timeseries::Influx;
use tokio_util::sync::CancellationToken;

use stoker_api::HttpOptions;

use crate::cli::StoreArgs;

/// What the process serves over HTTP.
#[derive(Debug, Clone, Copy)]
pub(super) enum Http<'a> {
    /// The whole API (with /healthz, /readyz, /metrics), with its address
    /// and client timeouts.
    Api(&'a HttpOptions),
    /// Only /healthz, /readyz and /metrics, with its address, HTTPS
    /// settings and connection cap.
    Ops(
        SocketAddr,
        &'a stoker_tls::server::ServerTlsOptions,
        stoker_api::ConnectionOptions,
    ),
}

/// Which roles a process runs.
#[derive(Debug, Clone, Copy)]
pub(super) struct Roles<'a> {
    /// Ingestion's settings; none: the process writes no readings.
    pub ingest: Option<&'a IngestOptions>,
    /// Whether ingestion subscribes to MQTT (else only HTTP telemetry).
    pub mqtt: bool,
    /// Alert evaluation and notifications.
    pub analytics: Option<AnalyticsRole<'a>>,
    /// What is served over HTTP.
    pub http: Http<'a>,
    /// Where the notifications of alerts acknowledged or resolved through
    /// the API go; none: the defaults (MQTT `alerts/{site}` only).
    pub api_notify: Option<&'a NotifyOptions>,
}

/// The analytics role's settings.
#[derive(Debug, Clone, Copy)]
pub(super) struct AnalyticsRole<'a> {
    /// Interval and grace.
    pub evaluation: &'a EvaluationOptions,
    /// Webhooks, retries, topic prefix.
    pub notify: &'a NotifyOptions,
    /// The broker notifications are published to.
    pub mqtt_url: &'a str,
    /// Its TLS settings (an mqtts:// broker).
    pub mqtt_tls: &'a stoker_tls::MqttTlsOptions,
    /// The rollup job's lateness and grace.
    pub rollup: &'a RollupOptions,
}

/// Runs the roles until SIGINT/SIGTERM, then shuts down in order: stop
/// intake, flush and acknowledge, stop analytics, stop HTTP.
pub(super) async fn roles(stores: &StoreArgs, roles: Roles<'_>) -> anyhow::Result<ExitCode> {
    let Roles {
        ingest,
        mqtt,
        analytics,
        http,
        api_notify,
    } = roles;
    for notify in analytics
        .map(|analytics| analytics.notify)
        .iter()
        .chain(&api_notify)
    {
        notify.validate().context("alert notification settings")?;
    }
    let pool = stoker_postgres::connect(&stores.postgres)?;
    super::migrate(&pool, &stores.postgres).await?;
    let influx = Influx::connect(&stores.influx).await.with_context(|| {
        format!(
            "connecting to InfluxDB (INFLUX_URL={})",
            redact_url(&stores.influx.url)
        )
    })?;
    let setup = influx.setup().await.with_context(|| {
        format!(
            "preparing InfluxDB database {:?} (INFLUX_BUCKET; `stoker influx setup` does the same)",
            stores.influx.bucket
        )
    })?;
    tracing::info!(
        version = influx.version(),
        database = influx.database(),
        raw_retention = %super::influx::shown(setup.raw_retention),
        rollup_retention = %super::influx::shown(setup.rollup_retention),
        "InfluxDB ready"
    );
    let cache = Cache::connect(&stores.redis).context("configuring Redis (REDIS_URL)")?;
    if let Err(error) = cache.ping().await {
        tracing::warn!(%error, "Redis is unavailable; going on without the latest-value cache until it answers");
    }
    // Built once; every role takes a clone, sharing the pool and clients.
    let shared = Stores {
        pool,
        postgres: stores.postgres.clone(),
        influx,
        cache,
    };

    // Bind before starting anything else: a taken port is a start-up error.
    let (address, variable) = match http {
        Http::Api(options) => (options.addr, "HTTP_ADDR"),
        Http::Ops(address, ..) => (address, "METRICS_ADDR"),
    };
    // HTTPS: the certificate read now (an unusable one is a start-up
    // error), again on every SIGHUP.
    let tls_options = match http {
        Http::Api(options) => &options.tls,
        Http::Ops(_, tls, _) => tls,
    };
    let certificate = tls_options.load().context("HTTP_TLS_CERT / HTTP_TLS_KEY")?;
    let tls = match &certificate {
        None => None,
        Some(certificate) => {
            tracing::info!(expiry = %certificate.describe(), "HTTPS; SIGHUP reads the certificate again");
            Some(
                certificate
                    .acceptor()
                    .context("HTTP_TLS_CERT / HTTP_TLS_KEY")?,
            )
        }
    };
    let listener = tokio::net::TcpListener::bind(address)
        .await
        .with_context(|| format!("cannot listen on {address} ({variable})"))?;

    let intake = CancellationToken::new();
    let ingestion = match ingest {
        None => None,
        Some(ingest) => {
            let start = async {
                if mqtt {
                    Ingestion::start(ingest, shared.clone(), intake.clone()).await
                } else {
                    Ingestion::start_without_mqtt(ingest, shared.clone(), intake.clone()).await
                }
            };
            let ingestion = tokio::select! {
                started = start => started.context("starting ingestion")?,
                () = super::shutdown_signal() => {
                    intake.cancel();
                    return Ok(ExitCode::SUCCESS);
                }
            };
            if mqtt {
                tracing::info!(broker = %redact_url(&ingest.mqtt.url), client_id = ingest.mqtt.client_id, "ingestion started");
            }
            Some(ingestion)
        }
    };

    let analytics_stop = CancellationToken::new();
    let analytics_metrics = stoker_analytics::live::Metrics::default();
    let rollup_metrics = RollupMetrics::default();
    let mut analytics_tasks = Vec::new();
    if let Some(analytics) = analytics {
        analytics_tasks.push(tokio::spawn(stoker_analytics::live::run(
            shared.clone(),
            analytics.notify.clone(),
            analytics.evaluation.clone(),
            analytics_metrics.clone(),
            analytics_stop.clone(),
        )));
        let dispatcher = Dispatcher::new(
            shared.pool.clone(),
            &shared.postgres,
            analytics.notify.clone(),
            analytics.mqtt_url,
        )
        .and_then(|dispatcher| dispatcher.with_mqtt_tls(analytics.mqtt_tls))
        .and_then(|dispatcher| match &stores.influx.ca_file {
            Some(ca_file) => dispatcher.with_webhook_ca_file(ca_file),
            None => Ok(dispatcher),
        })
        .context("starting alert notifications")?;
        analytics_tasks.push(tokio::spawn(dispatcher.run(analytics_stop.clone())));
        analytics_tasks.push(tokio::spawn(stoker_analytics::rollup::run(
            shared.influx.clone(),
            shared.postgres.clone(),
            analytics.rollup.clone(),
            rollup_metrics.clone(),
            analytics_stop.clone(),
        )));
        tracing::info!(broker = %redact_url(analytics.mqtt_url), webhooks = analytics.notify.webhooks.len(), "alert notifications started");
    }

    let mut registry = Registry::default();
    if let Some(ingestion) = &ingestion {
        ingestion.register_metrics(&mut registry);
    }
    if analytics.is_some() {
        analytics_metrics.register(&mut registry);
        rollup_metrics.register(&mut registry);
    }
    // Each key's request-rate budget, for the API's routes.
    let limiter = match http {
        Http::Api(options) => {
            let limiter = stoker_api::KeyLimiter::new(options.key_budget());
            limiter.register_metrics(&mut registry);
            Some(limiter)
        }
        Http::Ops(..) => None,
    };
    let metrics = Arc::new(registry);
    let mut readiness = Readiness::default().with_stores(
        shared.pool.clone(),
        shared.influx.clone(),
        shared.cache.clone(),
    );
    if let (true, Some(ingestion)) = (mqtt, &ingestion) {
        readiness = readiness.with("ingestion_mqtt", ingestion.readiness_probe());
    }
    let http_stop = CancellationToken::new();
    let server = match http {
        Http::Api(options) => {
            let catalog = stoker_api::Catalog::follow(
                shared.postgres.clone(),
                shared.cache.clone(),
                http_stop.clone(),
            );
            let state = ApiState {
                pool: shared.pool,
                influx: shared.influx,
                cache: shared.cache,
                readiness,
                intake: ingestion.as_ref().map(Ingestion::intake),
                metrics,
                catalog,
                notify: api_notify.cloned().unwrap_or_default(),
                rollup: stoker_api::RollupClock::default(),
                limiter: limiter.unwrap_or_default(),
            };
            let (options, stop) = (options.clone(), http_stop.clone());
            tokio::spawn(async move {
                stoker_api::serve_with_tls(listener, state, &options, tls, stop).await;
            })
        }
        Http::Ops(_, _, connections) => tokio::spawn(stoker_api::serve_ops_tls(
            listener,
            readiness,
            metrics,
            tls,
            connections,
            http_stop.clone(),
        )),
    };
    if let Some(certificate) = certificate {
        let stop = http_stop.clone();
        tokio::spawn(certificate.reload_on_sighup(async move { stop.cancelled().await }));
    }

    super::shutdown_signal().await;
    tracing::info!("shutting down: stopping intake, flushing, stopping analytics, then HTTP");
    intake.cancel();
    if let Some(ingestion) = ingestion {
        ingestion.wait().await;
        tracing::info!("ingestion flushed and acknowledged");
    }
    analytics_stop.cancel();
    for task in analytics_tasks {
        if let Err(error) = task.await {
            tracing::warn!(%error, "an analytics task failed");
        }
    }
    http_stop.cancel();
    server.await.context("the HTTP server task failed")?;
    tracing::info!("stopped");
    Ok(ExitCode::SUCCESS)
}
