//! Stoker's HTTP API (warp): the only crate that speaks HTTP to clients.
//!
//! Layout:
//! - `problem`: [`ApiError`] and the one `recover` handler that turns every
//!   rejection into `application/problem+json` with a stable `code`.
//! - `body`: JSON bodies parsed field by field, so a bad request gets a
//!   message per field.
//! - `sites`: sites and sensors (metadata).
//! - `readings`: latest values: Redis first, InfluxDB on a miss (which
//!   re-warms Redis).
//!
//! [`serve`] takes an already-bound listener and a shutdown token, so tests
//! bind port 0.
//!
//! ```no_run
//! # async fn example(state: stoker_api::ApiState) -> std::io::Result<()> {
//! let listener = tokio::net::TcpListener::bind("127.0.0.1:8080").await?;
//! let shutdown = tokio_util::sync::CancellationToken::new();
//! stoker_api::serve(listener, state, shutdown).await;
//! # Ok(()) }
//! ```

mod body;
mod problem;
mod readings;
mod sites;
mod telemetry;

use std::net::SocketAddr;

use stoker_cache::Cache;
use stoker_metadata::Pool;
use stoker_timeseries::Influx;
use tokio_util::sync::CancellationToken;
use warp::Filter;

pub use problem::ApiError;

/// Where the API listens.
#[derive(Debug, Clone, clap::Args)]
pub struct HttpOptions {
    /// Address the HTTP API listens on.
    #[arg(
        id = "http_addr",
        long = "http-addr",
        env = "HTTP_ADDR",
        default_value = "127.0.0.1:8080"
    )]
    pub addr: SocketAddr,
}

impl Default for HttpOptions {
    fn default() -> Self {
        Self {
            addr: SocketAddr::from(([127, 0, 0, 1], 8080)),
        }
    }
}

/// What the handlers share. Cheap to clone.
#[derive(Debug, Clone)]
pub struct ApiState {
    /// Postgres (metadata).
    pub pool: Pool,
    /// InfluxDB (history; latest values when Redis misses).
    pub influx: Influx,
    /// Redis (latest values).
    pub cache: Cache,
    /// Roles running in the same process that `/readyz` reports on.
    pub readiness: Readiness,
    /// Where `POST …/telemetry` hands payloads; none when this process runs
    /// no ingestion (the route then answers 503).
    pub intake: Option<stoker_ingestion::Intake>,
}

/// Named readiness probes of the roles that share the process (e.g. the
/// ingestion's broker subscription), reported by `/readyz`.
#[derive(Clone, Default)]
pub struct Readiness {
    probes: Vec<(&'static str, Probe)>,
}

/// One readiness probe: true when its role is ready.
type Probe = std::sync::Arc<dyn Fn() -> bool + Send + Sync>;

impl Readiness {
    /// Adds a probe; `/readyz` answers 503 while any probe is false.
    pub fn with(
        mut self,
        name: &'static str,
        probe: impl Fn() -> bool + Send + Sync + 'static,
    ) -> Self {
        self.probes.push((name, std::sync::Arc::new(probe)));
        self
    }

    fn report(&self) -> (bool, serde_json::Map<String, serde_json::Value>) {
        let mut ready = true;
        let mut checks = serde_json::Map::new();
        for (name, probe) in &self.probes {
            let ok = probe();
            ready &= ok;
            checks.insert(
                (*name).to_owned(),
                serde_json::Value::from(if ok { "ok" } else { "not ready" }),
            );
        }
        (ready, checks)
    }
}

impl std::fmt::Debug for Readiness {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_list()
            .entries(self.probes.iter().map(|(name, _)| name))
            .finish()
    }
}

/// Every route, with errors rendered as problem+json.
pub fn routes(
    state: ApiState,
) -> impl Filter<Extract = (impl warp::Reply,), Error = std::convert::Infallible> + Clone {
    let healthz = warp::path!("healthz")
        .and(warp::get())
        .map(|| warp::reply::json(&serde_json::json!({"status": "ok"})));
    let readiness = state.readiness.clone();
    let readyz = warp::path!("readyz").and(warp::get()).map(move || {
        let (ready, checks) = readiness.report();
        let status = if ready {
            warp::http::StatusCode::OK
        } else {
            warp::http::StatusCode::SERVICE_UNAVAILABLE
        };
        let body = serde_json::json!({"status": if ready { "ready" } else { "not ready" }, "checks": checks});
        warp::reply::with_status(warp::reply::json(&body), status)
    });
    let api = warp::path("api").and(warp::path("v1")).and(
        sites::routes(state.clone())
            .or(readings::routes(state.clone()))
            .or(telemetry::routes(state)),
    );
    healthz
        .or(readyz)
        .or(api)
        .recover(problem::recover)
        .with(warp::log::custom(|info| {
            tracing::debug!(
                method = %info.method(),
                path = info.path(),
                status = info.status().as_u16(),
                elapsed_ms = info.elapsed().as_secs_f64() * 1000.0,
                "request"
            );
        }))
}

/// Serves the API on `listener` until `shutdown`; requests in flight are
/// answered before it returns.
pub async fn serve(
    listener: tokio::net::TcpListener,
    state: ApiState,
    shutdown: CancellationToken,
) {
    if let Ok(address) = listener.local_addr() {
        tracing::info!(%address, "HTTP API listening");
    }
    warp::serve(routes(state))
        .incoming(listener)
        .graceful(async move { shutdown.cancelled().await })
        .run()
        .await;
}

/// A site slug from the path; one that cannot be a slug names no site (404).
fn site_from_path(value: &str) -> Result<stoker_domain::SiteSlug, ApiError> {
    stoker_domain::SiteSlug::parse(value).map_err(|_| {
        let shown: String = value.chars().take(64).collect();
        ApiError::NotFound(format!("site {shown:?} does not exist"))
    })
}
