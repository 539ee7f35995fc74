//! `serve`, `ingest` and `api`: the long-running roles.

use std::net::SocketAddr;
use std::process::ExitCode;
use std::sync::Arc;

use anyhow::Context;
use prometheus_client::registry::Registry;
use stoker_api::{ApiState, Readiness};
use stoker_cache::Cache;
use stoker_domain::redact_url;
use stoker_ingestion::{IngestOptions, Ingestion, Stores};
use stoker_timeseries::Influx;
use tokio_util::sync::CancellationToken;

use crate::cli::StoreArgs;

/// What the process serves over HTTP.
#[derive(Debug, Clone, Copy)]
pub enum Http {
    /// The whole API (with /healthz, /readyz, /metrics).
    Api(SocketAddr),
    /// Only /healthz, /readyz and /metrics.
    Ops(SocketAddr),
}

/// Runs a role until SIGINT/SIGTERM, then shuts down in order: stop
/// intake, flush and acknowledge, stop HTTP. Every role writes readings:
/// from MQTT when `mqtt`, from HTTP telemetry when it serves the API.
pub async fn roles(
    stores: &StoreArgs,
    ingest: &IngestOptions,
    mqtt: bool,
    http: Http,
) -> anyhow::Result<ExitCode> {
    let pool = stoker_metadata::connect(&stores.postgres)?;
    super::migrate(&pool, &stores.postgres).await?;
    let influx = Influx::connect(&stores.influx)
        .await
        .with_context(|| format!("connecting to InfluxDB (INFLUX_URL={})", stores.influx.url))?;
    influx.ensure_database().await.with_context(|| {
        format!(
            "preparing InfluxDB database {:?} (INFLUX_BUCKET)",
            stores.influx.bucket
        )
    })?;
    tracing::info!(
        version = influx.version(),
        database = influx.database(),
        "InfluxDB ready"
    );
    let cache = Cache::connect(&stores.redis).context("configuring Redis (REDIS_URL)")?;
    if let Err(error) = cache.ping().await {
        tracing::warn!(%error, "Redis is unavailable; going on without the latest-value cache until it answers");
    }

    // Bind before starting anything else: a taken port is a start-up error.
    let (address, variable) = match http {
        Http::Api(address) => (address, "HTTP_ADDR"),
        Http::Ops(address) => (address, "METRICS_ADDR"),
    };
    let listener = tokio::net::TcpListener::bind(address)
        .await
        .with_context(|| format!("cannot listen on {address} ({variable})"))?;

    let intake = CancellationToken::new();
    let ingestion_stores = Stores {
        pool: pool.clone(),
        postgres: stores.postgres.clone(),
        influx: influx.clone(),
        cache: cache.clone(),
    };
    let start = async {
        if mqtt {
            Ingestion::start(ingest, ingestion_stores, intake.clone()).await
        } else {
            Ingestion::start_without_mqtt(ingest, ingestion_stores, intake.clone()).await
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

    let mut registry = Registry::default();
    ingestion.register_metrics(&mut registry);
    let metrics = Arc::new(registry);
    let mut readiness =
        Readiness::default().with_stores(pool.clone(), influx.clone(), cache.clone());
    if mqtt {
        readiness = readiness.with("ingestion_mqtt", ingestion.readiness_probe());
    }
    let http_stop = CancellationToken::new();
    let server = match http {
        Http::Api(_) => {
            let catalog = stoker_api::Catalog::follow(
                stores.postgres.clone(),
                cache.clone(),
                http_stop.clone(),
            );
            let state = ApiState {
                pool,
                influx,
                cache,
                readiness,
                intake: Some(ingestion.intake()),
                metrics,
                catalog,
            };
            tokio::spawn(stoker_api::serve(listener, state, http_stop.clone()))
        }
        Http::Ops(_) => tokio::spawn(stoker_api::serve_ops(
            listener,
            readiness,
            metrics,
            http_stop.clone(),
        )),
    };

    super::shutdown_signal().await;
    tracing::info!("shutting down: stopping intake, flushing, then stopping HTTP");
    intake.cancel();
    ingestion.wait().await;
    tracing::info!("ingestion flushed and acknowledged");
    http_stop.cancel();
    server.await.context("the HTTP server task failed")?;
    tracing::info!("stopped");
    Ok(ExitCode::SUCCESS)
}
