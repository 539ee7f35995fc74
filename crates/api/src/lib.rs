//! Stoker's HTTP API (warp): the only crate that speaks HTTP to clients.
//!
//! Layout:
//! - `auth`: API keys (`Authorization: Bearer`), checked against the
//!   catalog's in-memory copy; 401 vs 403; the [`Principal`](auth) a
//!   route acts as, with the sites a key is limited to (403
//!   `forbidden_site` under `/sites/{site}` of another site, checked once
//!   for every such route); each live key's request spent from its budget.
//! - `rate_limit`: the keys' request-rate budgets ([`KeyLimiter`], a
//!   lock-free token bucket per key; 429 `rate_limited` past it).
//! - `options`: the listeners' settings ([`HttpOptions`],
//!   [`ConnectionOptions`]).
//! - `api_keys`: `/api-keys`, key management (list, create, rotate,
//!   revoke) for keys of every site.
//! - `audit`: `/audit`, the audit trail (admin) read back in pages; the
//!   changes are recorded by the repository functions, under the
//!   principal's [`Actor`](stoker_metadata::Actor) every change handler
//!   passes.
//! - `problem`: the error vocabulary ([`ApiError`], [`Denied`], refused
//!   readings and the refusal reason → status table) and the one `recover`
//!   handler that turns every rejection into `application/problem+json`
//!   with a stable `code`. A leaf: the features import it, it imports none
//!   of them.
//! - `body`: JSON bodies parsed field by field, so a bad request gets a
//!   message per field.
//! - `sites`: sites and sensors (metadata).
//! - `gateways`: a site's Sparkplug gateways (bound by id), their online
//!   state and announced metrics, and the one-call registration of the
//!   metrics that have no sensor yet.
//! - `catalog`: sites and sensors in memory for the read routes, dropped
//!   on every metadata change Postgres announces.
//! - `readings`: latest values: Redis first, InfluxDB on a miss (which
//!   re-warms Redis).
//! - `dashboard`: latest values with a status per sensor and the site's
//!   open alerts (Postgres), cached in Redis for 60 s and dropped on
//!   metadata changes and alert transitions.
//! - `rules`: alert rules; a PATCH is merged onto the stored rule.
//! - `condition`: a rule's `suppress_when` checked against the sites'
//!   sensors, and the `out_of_service` schema.
//! - `suppression`: sensors and rules out of service
//!   (`…/out-of-service`) and `/maintenance-windows` (DESIGN.md, "Alarm
//!   management").
//! - `preview`: `POST /alert-rules/preview`, a saved or draft rule replayed
//!   over a past range by analytics' backtest; answers cached in Redis.
//! - `alerts`: alerts and their event trail (analytics' store);
//!   acknowledged and resolved under the API key's name, with the
//!   transition's notifications queued like the evaluation loop's.
//! - `kpis`: `GET /alarm-kpis`, measured alarm performance of a site (or
//!   every site the key may see) over a range, from analytics' `kpi`.
//! - `openapi`: the OpenAPI 3 document, from one table of every route.
//! - `page`: cursor pagination (`limit`, `cursor`, `next_cursor`).
//! - `history`: one sensor's readings per time bucket (InfluxQL
//!   `GROUP BY time`): JSON of at most 10,000 points, or CSV
//!   (`?format=csv`, `Accept: text/csv`) streamed a chunk at a time.
//! - `telemetry`: `POST /api/v1/sites/{site}/telemetry`, JSON bodies handed
//!   to ingestion's `Intake`.
//! - `influx_write`: `POST /api/v2/write` and `POST /write`, line protocol
//!   as InfluxDB 2.x and 1.x take it (keys as `Token`, `Bearer`, Basic or
//!   `p`; gzip bodies), handed to the same `Intake`, answered in
//!   InfluxDB's own error shapes rather than problem+json.
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

// The OpenAPI document is one large `json!` literal.
#![recursion_limit = "512"]

mod alerts;
mod api_keys;
mod audit;
mod auth;
mod body;
mod catalog;
mod condition;
mod dashboard;
mod gateways;
mod history;
mod influx_write;
mod kpis;
mod openapi;
mod options;
mod page;
mod preview;
mod problem;
mod rate_limit;
mod readings;
mod rules;
mod server;
mod sites;
mod suppression;
mod telemetry;

use std::sync::Arc;

use prometheus_client::registry::Registry;

use stoker_cache::Cache;
use stoker_postgres::Pool;
use stoker_timeseries::Influx;
use tokio_util::sync::CancellationToken;
use warp::Filter;

pub use catalog::Catalog;
pub use history::RollupClock;
pub use options::{ConnectionOptions, HttpOptions};
pub use problem::{ApiError, Denied};
pub use rate_limit::{KeyBudget, KeyLimiter, RequestRate};

/// What the handlers share, once per process: routes hold it behind an
/// [`Arc`] ([`State`]), so a request clones one pointer.
#[derive(Debug, Clone)]
pub struct ApiState {
    /// Postgres (metadata, alerts).
    pub pool: Pool,
    /// InfluxDB (history; latest values when Redis misses).
    pub influx: Influx,
    /// Redis (latest values, dashboard and preview caches).
    pub cache: Cache,
    /// Roles running in the same process that `/readyz` reports on.
    pub readiness: Readiness,
    /// Where `POST …/telemetry` hands payloads; none when this process runs
    /// no ingestion (the route then answers 503).
    pub intake: Option<stoker_ingestion::Intake>,
    /// Metrics served at `/metrics`.
    pub metrics: Arc<Registry>,
    /// Sites and sensors in memory for the read routes.
    pub catalog: Catalog,
    /// Where the notifications of alerts acknowledged or resolved through
    /// the API go (MQTT topic prefix, webhooks): the same settings as the
    /// evaluation loop's, so every transition is announced alike.
    pub notify: stoker_analytics::notify::NotifyOptions,
    /// How far InfluxDB's 1-minute rollup reaches, for history reads.
    pub rollup: RollupClock,
    /// Each key's request-rate budget (`KeyLimiter::new` of
    /// [`HttpOptions::key_budget`]; its metrics registered in `metrics`).
    pub limiter: KeyLimiter,
}

impl ApiState {
    /// After a handler created or changed a site or sensor: telemetry the
    /// caller posts next reaches an ingestion that knows it (see
    /// `Intake::metadata_changed`), not only once the change notice came.
    pub(crate) fn metadata_changed(&self) {
        if let Some(intake) = &self.intake {
            intake.metadata_changed();
        }
    }
}

/// The handlers' shared state.
pub(crate) type State = Arc<ApiState>;

/// What `/readyz` checks: each store the process uses (Postgres and
/// InfluxDB must answer; Redis down is reported as degraded, since every
/// route falls back without it) and named probes of the roles that share
/// the process (e.g. the ingestion's broker subscription).
#[derive(Clone, Default)]
pub struct Readiness {
    probes: Vec<(&'static str, Probe)>,
    stores: Option<StoreChecks>,
}

/// The stores `/readyz` tries.
#[derive(Clone)]
struct StoreChecks {
    pool: Pool,
    influx: Influx,
    cache: Cache,
}

/// How long `/readyz` waits for one store.
const STORE_CHECK_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(2);

/// One store check: `Ok` or what went wrong.
async fn bounded_check(
    check: impl std::future::Future<Output = Result<(), String>>,
) -> Result<(), String> {
    match tokio::time::timeout(STORE_CHECK_TIMEOUT, check).await {
        Ok(outcome) => outcome,
        Err(_) => Err(format!("no answer within {STORE_CHECK_TIMEOUT:?}")),
    }
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

    /// Adds the stores: `/readyz` tries each one on every call.
    pub fn with_stores(mut self, pool: Pool, influx: Influx, cache: Cache) -> Self {
        self.stores = Some(StoreChecks {
            pool,
            influx,
            cache,
        });
        self
    }

    async fn report(&self) -> (bool, serde_json::Map<String, serde_json::Value>) {
        let mut ready = true;
        let mut checks = serde_json::Map::new();
        if let Some(stores) = &self.stores {
            let postgres = bounded_check(async {
                let client = stores.pool.get().await.map_err(|error| error.to_string())?;
                client
                    .simple_query("SELECT 1")
                    .await
                    .map(drop)
                    .map_err(|error| error.to_string())
            });
            let influx = bounded_check(async {
                stores
                    .influx
                    .ping()
                    .await
                    .map(drop)
                    .map_err(|error| error.to_string())
            });
            let redis = bounded_check(async {
                stores.cache.ping().await.map_err(|error| error.to_string())
            });
            let (postgres, influx, redis) = tokio::join!(postgres, influx, redis);
            for (name, outcome, required) in [
                ("postgres", postgres, true),
                ("influxdb", influx, true),
                ("redis", redis, false),
            ] {
                let value = match outcome {
                    Ok(()) => serde_json::Value::from("ok"),
                    Err(detail) => {
                        ready &= !required;
                        let state = if required { "failed" } else { "degraded" };
                        serde_json::json!({ "status": state, "detail": detail })
                    }
                };
                checks.insert(name.to_owned(), value);
            }
        }
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
        f.debug_struct("Readiness")
            .field(
                "probes",
                &self.probes.iter().map(|(name, _)| name).collect::<Vec<_>>(),
            )
            .field("stores", &self.stores.is_some())
            .finish()
    }
}

/// Every route, with errors rendered as problem+json.
pub fn routes(
    state: ApiState,
) -> impl Filter<Extract = (impl warp::Reply,), Error = std::convert::Infallible> + Clone {
    let ops = ops(state.readiness.clone(), Arc::clone(&state.metrics));
    let state: State = Arc::new(state);
    let influx_writes = boxed(influx_write::routes(Arc::clone(&state)));
    let api = warp::path("api").and(warp::path("v1")).and(
        boxed(
            warp::path!("openapi.json")
                .and(warp::get())
                .and(warp::any().map({
                    let state = Arc::clone(&state);
                    move || Arc::clone(&state)
                }))
                .then(|state: State| async move {
                    warp::reply::json(&openapi::served(&state.pool).await)
                }),
        )
        .or(boxed(sites::routes(Arc::clone(&state))))
        .unify()
        .or(boxed(gateways::routes(Arc::clone(&state))))
        .unify()
        .or(boxed(readings::routes(Arc::clone(&state))))
        .unify()
        .or(boxed(history::routes(Arc::clone(&state))))
        .unify()
        .or(boxed(telemetry::routes(Arc::clone(&state))))
        .unify()
        .or(boxed(preview::routes(Arc::clone(&state))))
        .unify()
        .or(boxed(suppression::routes(Arc::clone(&state))))
        .unify()
        .or(boxed(rules::routes(Arc::clone(&state))))
        .unify()
        .or(boxed(alerts::routes(Arc::clone(&state))))
        .unify()
        .or(boxed(kpis::routes(Arc::clone(&state))))
        .unify()
        .or(boxed(dashboard::routes(Arc::clone(&state))))
        .unify()
        .or(boxed(api_keys::routes(Arc::clone(&state))))
        .unify()
        .or(boxed(audit::routes(Arc::clone(&state))))
        .unify(),
    );
    with_errors_and_logs(ops.or(api).or(influx_writes))
}

/// `/healthz`, `/readyz` and `/metrics`: no key, no store needed.
fn ops(
    readiness: Readiness,
    metrics: Arc<Registry>,
) -> impl Filter<Extract = (impl warp::Reply,), Error = warp::Rejection> + Clone {
    let healthz = warp::path!("healthz")
        .and(warp::get())
        .map(|| warp::reply::json(&serde_json::json!({"status": "ok"})));
    let readyz = warp::path!("readyz").and(warp::get()).then(move || {
        let readiness = readiness.clone();
        async move {
            let (ready, checks) = readiness.report().await;
            let status = if ready {
                warp::http::StatusCode::OK
            } else {
                warp::http::StatusCode::SERVICE_UNAVAILABLE
            };
            let body = serde_json::json!({"status": if ready { "ready" } else { "not ready" }, "checks": checks});
            warp::reply::with_status(warp::reply::json(&body), status)
        }
    });
    let metrics = warp::path!("metrics").and(warp::get()).map(move || {
        let mut body = String::new();
        if let Err(error) = prometheus_client::encoding::text::encode(&mut body, &metrics) {
            tracing::error!(%error, "cannot encode metrics");
        }
        warp::reply::with_header(
            body,
            "content-type",
            "application/openmetrics-text; version=1.0.0; charset=utf-8",
        )
    });
    healthz.or(readyz).or(metrics)
}

/// Every rejection rendered as problem+json, a 405 with the `Allow` header
/// RFC 9110 requires (the methods the route table answers at the path),
/// and each request logged.
fn with_errors_and_logs<F, R>(
    filter: F,
) -> impl Filter<Extract = (impl warp::Reply,), Error = std::convert::Infallible> + Clone
where
    F: Filter<Extract = (R,), Error = warp::Rejection> + Clone + Send + Sync + 'static,
    R: warp::Reply,
{
    let answered = filter
        .map(|reply: R| reply.into_response())
        .recover(problem::recover)
        .unify();
    warp::path::full()
        .and(answered)
        .map(
            |path: warp::path::FullPath, mut response: warp::reply::Response| {
                if response.status() == warp::http::StatusCode::METHOD_NOT_ALLOWED
                    && let Some(allow) = openapi::allowed_methods(path.as_str())
                    && let Ok(allow) = warp::http::HeaderValue::from_str(&allow)
                {
                    response
                        .headers_mut()
                        .insert(warp::http::header::ALLOW, allow);
                }
                response
            },
        )
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

/// Serves only `/healthz`, `/readyz` and `/metrics` (roles without the
/// API, such as `ingest`) until `shutdown`, with the default client
/// timeouts and connection cap.
pub async fn serve_ops(
    listener: tokio::net::TcpListener,
    readiness: Readiness,
    metrics: Arc<Registry>,
    shutdown: CancellationToken,
) {
    serve_ops_tls(
        listener,
        readiness,
        metrics,
        None,
        ConnectionOptions::default(),
        shutdown,
    )
    .await;
}

/// Like [`serve_ops`], over HTTPS when `tls` is given, holding at most
/// `connections` connections.
pub async fn serve_ops_tls(
    listener: tokio::net::TcpListener,
    readiness: Readiness,
    metrics: Arc<Registry>,
    tls: Option<stoker_tls::TlsAcceptor>,
    connections: ConnectionOptions,
    shutdown: CancellationToken,
) {
    if let Ok(address) = listener.local_addr() {
        tracing::info!(
            %address,
            https = tls.is_some(),
            max_connections = connections.max_connections,
            "health and metrics listening"
        );
    }
    let service = warp::service(with_errors_and_logs(ops(readiness, metrics)));
    let limits = HttpOptions {
        connections,
        ..HttpOptions::default()
    }
    .limits();
    server::run(listener, service, limits, tls, shutdown).await;
}

/// Serves the API on `listener` until `shutdown` with the default client
/// timeouts ([`HttpOptions::default`]); requests in flight are answered
/// before it returns.
pub async fn serve(
    listener: tokio::net::TcpListener,
    state: ApiState,
    shutdown: CancellationToken,
) {
    serve_with(listener, state, &HttpOptions::default(), shutdown).await;
}

/// Like [`serve`], with the client timeouts and connection cap of
/// `options` (its address is the listener's business; the keys' budget is
/// `state.limiter`'s).
pub async fn serve_with(
    listener: tokio::net::TcpListener,
    state: ApiState,
    options: &HttpOptions,
    shutdown: CancellationToken,
) {
    serve_with_tls(listener, state, options, None, shutdown).await;
}

/// Like [`serve_with`], over HTTPS when `tls` is given.
pub async fn serve_with_tls(
    listener: tokio::net::TcpListener,
    state: ApiState,
    options: &HttpOptions,
    tls: Option<stoker_tls::TlsAcceptor>,
    shutdown: CancellationToken,
) {
    if let Ok(address) = listener.local_addr() {
        tracing::info!(
            %address,
            https = tls.is_some(),
            header_timeout = ?options.header_timeout,
            body_timeout = ?options.body_timeout,
            max_connections = options.connections.max_connections,
            key_budget = %state.limiter.budget(),
            "HTTP API listening"
        );
    }
    let service = warp::service(routes(state));
    server::run(listener, service, options.limits(), tls, shutdown).await;
}

/// A site slug from the path; one that cannot be a slug names no site (404).
fn site_from_path(value: &str) -> Result<stoker_domain::SiteSlug, ApiError> {
    stoker_domain::SiteSlug::parse(value).map_err(|_| {
        let shown: String = value.chars().take(64).collect();
        ApiError::NotFound(format!("site {shown:?} does not exist"))
    })
}

/// A sensor key from the path; one that cannot be a key names no sensor (404).
fn sensor_from_path(
    site: &stoker_domain::SiteSlug,
    value: &str,
) -> Result<stoker_domain::SensorKey, ApiError> {
    stoker_domain::SensorKey::parse(value).map_err(|_| {
        let shown: String = value.chars().take(64).collect();
        ApiError::NotFound(format!("sensor {shown:?} does not exist at site {site}"))
    })
}

/// A resource id from the path; one that is not a UUID names no
/// `resource` (404).
fn uuid_from_path(resource: &str, value: &str) -> Result<uuid::Uuid, ApiError> {
    uuid::Uuid::parse_str(value).map_err(|_| {
        let shown: String = value.chars().take(64).collect();
        ApiError::NotFound(format!(
            "{resource} {shown:?} does not exist (ids are UUIDs)"
        ))
    })
}

/// A route as a boxed filter answering a plain response: keeps the types,
/// and the futures, of long route chains small.
fn boxed<F, R>(filter: F) -> warp::filters::BoxedFilter<(warp::reply::Response,)>
where
    F: Filter<Extract = (R,), Error = warp::Rejection> + Clone + Send + Sync + 'static,
    R: warp::Reply + 'static,
{
    filter.map(|reply: R| reply.into_response()).boxed()
}
