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
}

impl Default for InfluxOptions {
    fn default() -> Self {
        Self {
            url: "http://127.0.0.1:8086".into(),
            token: Secret::default(),
            org: "stoker".into(),
            bucket: "sensor_data".into(),
            timeout: Duration::from_secs(10),
        }
    }
}
