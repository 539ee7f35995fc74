//! The `INFLUX_*` settings.

use std::time::Duration;

use stoker_domain::{Secret, parse_duration};

/// How to reach InfluxDB. Every default works with `scripts/dev-up`.
#[derive(Debug, Clone, clap::Args)]
pub struct InfluxOptions {
    /// InfluxDB base URL (1.x, 2.x or 3.x; the version is detected from /ping).
    #[arg(
        id = "influx_url",
        long = "influx-url",
        env = "INFLUX_URL",
        default_value = "http://127.0.0.1:8086"
    )]
    pub url: String,

    /// API token (2.x/3.x), or `user:password` for a 1.x server with auth; empty for none.
    #[arg(
        id = "influx_token",
        long = "influx-token",
        env = "INFLUX_TOKEN",
        default_value = "",
        hide_env_values = true
    )]
    pub token: Secret,

    /// Organization (2.x only).
    #[arg(
        id = "influx_org",
        long = "influx-org",
        env = "INFLUX_ORG",
        default_value = "stoker"
    )]
    pub org: String,

    /// Bucket (2.x/3.x) or database (1.x) that holds every reading.
    #[arg(
        id = "influx_bucket",
        long = "influx-bucket",
        env = "INFLUX_BUCKET",
        default_value = "sensor_data"
    )]
    pub bucket: String,

    /// Timeout of one request to InfluxDB.
    #[arg(id = "influx_timeout", long = "influx-timeout", env = "INFLUX_TIMEOUT", default_value = "10s", value_parser = parse_duration)]
    pub timeout: Duration,

    /// How long raw readings are kept (`0s`: forever). Set on the database by `stoker influx setup`; ingestion refuses readings older than this.
    #[arg(id = "influx_raw_retention", long = "influx-raw-retention", env = "INFLUX_RAW_RETENTION", default_value = "30days", value_parser = parse_duration)]
    pub raw_retention: Duration,

    /// How long the 1-minute rollup `readings_1m` is kept (`0s`: forever).
    #[arg(id = "influx_rollup_retention", long = "influx-rollup-retention", env = "INFLUX_ROLLUP_RETENTION", default_value = "730days", value_parser = parse_duration)]
    pub rollup_retention: Duration,

    /// PEM file of the CA that signed InfluxDB's certificate (https:// only), instead of the system's trusted roots; alert webhooks over https:// are checked against it too. The certificate must be valid for the URL's host.
    #[arg(id = "influx_ca_file", long = "influx-ca-file", env = "INFLUX_CA_FILE")]
    pub ca_file: Option<std::path::PathBuf>,
}

/// Default of `INFLUX_RAW_RETENTION`: 30 days.
pub const DEFAULT_RAW_RETENTION: Duration = Duration::from_secs(30 * 86_400);

/// Default of `INFLUX_ROLLUP_RETENTION`: 730 days.
pub const DEFAULT_ROLLUP_RETENTION: Duration = Duration::from_secs(730 * 86_400);

impl Default for InfluxOptions {
    fn default() -> Self {
        Self {
            url: "http://127.0.0.1:8086".into(),
            token: Secret::default(),
            org: "stoker".into(),
            bucket: "sensor_data".into(),
            timeout: Duration::from_secs(10),
            raw_retention: DEFAULT_RAW_RETENTION,
            rollup_retention: DEFAULT_ROLLUP_RETENTION,
            ca_file: None,
        }
    }
}

impl InfluxOptions {
    /// The HTTP client's builder: its timeouts and pool, trusting
    /// `INFLUX_CA_FILE`'s roots, when set, instead of the system's.
    pub(crate) fn client_builder(&self) -> crate::Result<reqwest::ClientBuilder> {
        let builder = reqwest::Client::builder()
            .timeout(self.timeout)
            .connect_timeout(self.timeout.min(Duration::from_secs(5)))
            .pool_max_idle_per_host(8);
        Ok(match &self.ca_file {
            Some(ca_file) => {
                let roots = read_ca_file(ca_file).map_err(|reason| crate::Error::InvalidUrl {
                    url: stoker_domain::redact_url(&self.url),
                    reason,
                })?;
                builder.tls_certs_only(roots)
            }
            None => builder,
        })
    }
}

/// The trusted roots of a CA file, for an HTTPS client (InfluxDB,
/// webhooks); the error names the file.
pub fn read_ca_file(path: &std::path::Path) -> Result<Vec<reqwest::Certificate>, String> {
    let pem = std::fs::read(path)
        .map_err(|error| format!("cannot read INFLUX_CA_FILE {}: {error}", path.display()))?;
    let certificates = reqwest::Certificate::from_pem_bundle(&pem).map_err(|error| {
        format!(
            "INFLUX_CA_FILE {} holds no valid PEM certificate: {error}",
            path.display()
        )
    })?;
    if certificates.is_empty() {
        return Err(format!(
            "INFLUX_CA_FILE {} holds no certificate",
            path.display()
        ));
    }
    Ok(certificates)
}
