//! The command line: subcommands, each flattening the option blocks of the
//! crates it wires together.

use clap::{Args, CommandFactory, FromArgMatches, Parser, Subcommand};
use stoker_analytics::live::EvaluationOptions;
use stoker_analytics::notify::NotifyOptions;
use stoker_analytics::rollup::RollupOptions;
use stoker_api::HttpOptions;
use stoker_cache::RedisOptions;
use stoker_ingestion::IngestOptions;
use stoker_postgres::PostgresOptions;
use stoker_simulator::SimulateArgs;
use stoker_timeseries::InfluxOptions;

use crate::config_file;

/// Stoker: telemetry for industrial boiler houses.
///
/// Sensors publish readings over MQTT (or HTTP); Stoker validates them,
/// stores every reading in InfluxDB, keeps the latest per sensor in Redis,
/// and serves dashboards over HTTP. Every setting is an environment
/// variable (shown below each option), optionally read from a TOML file
/// whose keys are those variable names. Precedence: flag, environment,
/// file, built-in default. The defaults work with scripts/dev-up.
#[derive(Debug, Parser)]
#[command(name = "stoker", version, propagate_version = true)]
pub(crate) struct Cli {
    /// TOML file of settings, e.g. `INFLUX_URL = "http://influx:8086"`.
    #[arg(long, env = "STOKER_CONFIG", global = true, value_name = "FILE")]
    pub config: Option<std::path::PathBuf>,

    #[command(flatten)]
    pub logging: Logging,

    #[command(subcommand)]
    pub command: Command,
}

/// What to run; `serve` when none is given.
#[derive(Debug, Subcommand)]
#[allow(clippy::large_enum_variant)]
pub(crate) enum Command {
    /// Run every role in one process: ingestion, alert evaluation and the HTTP API (the default).
    Serve(ServeArgs),
    /// Run the ingestion role alone (MQTT to InfluxDB and Redis).
    Ingest(IngestArgs),
    /// Run the HTTP API role alone (HTTP telemetry included, no MQTT).
    Api(ApiArgs),
    /// Run alert evaluation alone: one of several such processes evaluates (Postgres advisory lock), every one sends notifications.
    Analytics(AnalyticsArgs),
    /// Apply the Postgres migrations of every schema, then exit.
    Migrate(MigrateArgs),
    /// Check the configuration and every dependency; exit non-zero if any fails.
    Check(CheckArgs),
    /// Publish a simulated boiler fleet over MQTT.
    Simulate(SimulateCommand),
    /// Create, list and revoke API keys (stored only as hashes).
    #[command(subcommand)]
    Apikey(ApikeyCommand),
    /// Prepare InfluxDB (database, retention, rollup series) and maintain the 1-minute rollup.
    #[command(subcommand)]
    Influx(InfluxCommand),
    /// Rebuild what Redis caches from the stores of record (Redis is never restored from a backup).
    #[command(subcommand)]
    Cache(CacheCommand),
    /// MQTT broker credentials for Mosquitto's per-site ACL (docker/mosquitto/mosquitto.secure.conf).
    #[command(subcommand)]
    Mqtt(MqttCommand),
}

/// `stoker mqtt …`.
#[derive(Debug, Clone, Subcommand)]
pub(crate) enum MqttCommand {
    /// Generate a random password for a gateway (--site) or a Stoker process (--service); print it once (on stdout, alone) and write its Mosquitto password-file line.
    #[command(
        after_long_help = MQTT_CREDENTIALS_HELP,
        group(clap::ArgGroup::new("mqtt_user").args(["site", "service"]).required(true))
    )]
    Credentials(MqttCredentialsArgs),
}

/// `stoker mqtt credentials`.
#[derive(Debug, Clone, Args)]
pub(crate) struct MqttCredentialsArgs {
    /// A gateway's user: its site's slug. The ACL lets it publish only under sites/SLUG/.
    #[arg(long, value_name = "SLUG")]
    pub site: Option<String>,
    /// A Stoker process's user, named svc.NAME: `--service stoker` for serve, ingest and analytics (the ACL lets svc.stoker read sites/+/# and write alerts/#).
    #[arg(long, value_name = "NAME")]
    pub service: Option<String>,
    /// Mosquitto's password file: the user's line is added, or replaces the user's old one, atomically; other lines are kept as they are. Created (mode 0600) if missing. Without it, the line is printed on stderr.
    #[arg(long, value_name = "PATH")]
    pub password_file: Option<std::path::PathBuf>,
}

const MQTT_CREDENTIALS_HELP: &str = "\
Setup, once per broker (files in docker/mosquitto/):
  mosquitto.secure.conf  allow_anonymous false, password_file, acl_file and
                         the QoS 1 limits of mosquitto.conf
  acl                    `pattern write sites/%u/#`: a gateway logs in as its
                         site's slug and may publish only under sites/SLUG/;
                         user svc.stoker reads sites/+/# (shared subscriptions
                         included) and writes alerts/#; nobody else reads
                         anything unless the ACL grants it

For Stoker itself (serve, ingest, analytics: one user):
  stoker mqtt credentials --service stoker --password-file /path/passwd
  then MQTT_URL=mqtt://svc.stoker:PASSWORD@broker:1883

For each gateway (no ACL edit: the pattern covers every site):
  PASSWORD=$(stoker mqtt credentials --site boiler-house-1 --password-file /path/passwd)
  and configure the gateway with user boiler-house-1 and that password.

Then reload the broker so that it reads the password file (and the ACL)
again, without dropping connections:
  docker compose kill -s SIGHUP mosquitto     or     kill -HUP <mosquitto pid>
Running the command again for the same user replaces its password (a new
one: the old one is refused from the reload on). To revoke a user, delete
its line and reload: Mosquitto disconnects it.

The password is 43 random letters and digits (256 bits), shown only this
once. The file keeps Mosquitto 2.0's hash, the same as mosquitto_passwd
writes: user:$7$101$<base64 12-byte salt>$<base64 PBKDF2-HMAC-SHA512, 101
iterations>. The broker reads the file as its own user (mosquitto) after
dropping privileges, on a reload too: an existing file keeps its owner and
mode, a new one is created 0600 and must be given to that user (chown). In
Docker, mount the file's directory rather than the file: the file is
replaced by a rename, which a single-file bind mount does not follow.";

/// `stoker influx …`.
#[derive(Debug, Clone, Subcommand)]
pub(crate) enum InfluxCommand {
    /// Create the database, set the raw retention and create the rollup's retention policy; idempotent (`serve` runs it at start).
    Setup {
        #[command(flatten)]
        influx: InfluxOptions,
    },
    /// Roll up a past range into readings_1m again, e.g. for readings written straight into InfluxDB, not through Stoker (the running job keeps the rollup current by itself, late readings included).
    Rollup {
        #[command(flatten)]
        influx: InfluxOptions,
        /// Start of the range: RFC 3339 (2026-11-22T10:00:00Z) or epoch milliseconds; rounded down to the minute.
        #[arg(long)]
        from: String,
        /// End of the range (exclusive), like --from; default: now.
        #[arg(long)]
        to: Option<String>,
    },
}

/// `stoker cache …`.
#[derive(Debug, Clone, Subcommand)]
pub(crate) enum CacheCommand {
    /// Refill Redis's latest value of every sensor from InfluxDB and drop the cached dashboards.
    Rebuild {
        #[command(flatten)]
        stores: StoreArgs,
    },
}

/// `stoker apikey …`.
#[derive(Debug, Clone, Subcommand)]
pub(crate) enum ApikeyCommand {
    /// Create a key and print it once (on stdout, alone: `KEY=$(stoker apikey create …)`); only its hash is kept.
    Create {
        #[command(flatten)]
        postgres: PostgresOptions,
        /// A name to recognise the key by (unique among live keys), e.g. "grafana" or "gateway-bh1".
        #[arg(long)]
        name: String,
        /// What the key may do, comma-separated: read (GET routes), write (telemetry, alert acknowledgement), admin (everything, metadata changes included).
        #[arg(long, default_value = "read")]
        scopes: String,
        /// Limit the key to these sites, comma-separated (each must exist); elsewhere it gets 403. Default: every site.
        #[arg(long)]
        sites: Option<String>,
        /// When the key stops being valid: a duration from now (90d, 12h) or an RFC 3339 time. Default: never.
        #[arg(long)]
        expires: Option<String>,
    },
    /// Give a key a new secret, printed once (on stdout, alone); the old one stays valid for the grace period.
    Rotate {
        #[command(flatten)]
        postgres: PostgresOptions,
        /// Name, public id or UUID of the (unrevoked) key.
        #[arg(long)]
        name: String,
        /// How long the old secret stays valid (0s: not at all; at most 30d).
        #[arg(long, default_value = "24h")]
        grace: String,
    },
    /// List keys: name, id, scopes, sites, created, expires, rotated, revoked (never the secret).
    List {
        #[command(flatten)]
        postgres: PostgresOptions,
    },
    /// Revoke a key by its name, its public id (the part after stk_) or its UUID; effective at once.
    Revoke {
        #[command(flatten)]
        postgres: PostgresOptions,
        /// Name, public id or UUID of the key.
        key: String,
    },
}

/// Stores every role needs.
#[derive(Debug, Clone, Args)]
pub(crate) struct StoreArgs {
    #[command(flatten)]
    pub postgres: PostgresOptions,
    #[command(flatten)]
    pub influx: InfluxOptions,
    #[command(flatten)]
    pub redis: RedisOptions,
}

#[derive(Debug, Clone, Args)]
pub(crate) struct ServeArgs {
    #[command(flatten)]
    pub stores: StoreArgs,
    #[command(flatten)]
    pub ingest: IngestOptions,
    #[command(flatten)]
    pub http: HttpOptions,
    #[command(flatten)]
    pub evaluation: EvaluationOptions,
    #[command(flatten)]
    pub notify: NotifyOptions,
    #[command(flatten)]
    pub rollup: RollupOptions,
}

#[derive(Debug, Clone, Args)]
pub(crate) struct AnalyticsArgs {
    #[command(flatten)]
    pub stores: StoreArgs,
    #[command(flatten)]
    pub evaluation: EvaluationOptions,
    #[command(flatten)]
    pub notify: NotifyOptions,
    #[command(flatten)]
    pub rollup: RollupOptions,
    /// The broker alert notifications are published to (`alerts/{site}`).
    #[arg(
        id = "analytics_mqtt_url",
        long = "mqtt-url",
        env = "MQTT_URL",
        default_value = "mqtt://127.0.0.1:1883"
    )]
    pub mqtt_url: String,
    /// TLS for an mqtts:// broker.
    #[command(flatten)]
    pub mqtt_tls: stoker_tls::MqttTlsOptions,
    /// Where `stoker analytics` serves /healthz, /readyz and /metrics.
    #[arg(
        id = "analytics_metrics_addr",
        long = "metrics-addr",
        env = "METRICS_ADDR",
        default_value = "127.0.0.1:9465"
    )]
    pub metrics_addr: std::net::SocketAddr,
    /// HTTPS on the health and metrics listener.
    #[command(flatten)]
    pub metrics_tls: stoker_tls::server::ServerTlsOptions,
    /// Connections the health and metrics listener holds.
    #[command(flatten)]
    pub metrics_connections: stoker_api::ConnectionOptions,
}

#[derive(Debug, Clone, Args)]
pub(crate) struct IngestArgs {
    #[command(flatten)]
    pub stores: StoreArgs,
    #[command(flatten)]
    pub ingest: IngestOptions,
    /// Where `stoker ingest` serves /healthz, /readyz and /metrics.
    #[arg(
        long = "metrics-addr",
        env = "METRICS_ADDR",
        default_value = "127.0.0.1:9464"
    )]
    pub metrics_addr: std::net::SocketAddr,
    /// HTTPS on the health and metrics listener.
    #[command(flatten)]
    pub metrics_tls: stoker_tls::server::ServerTlsOptions,
    /// Connections the health and metrics listener holds.
    #[command(flatten)]
    pub metrics_connections: stoker_api::ConnectionOptions,
}

#[derive(Debug, Clone, Args)]
pub(crate) struct ApiArgs {
    #[command(flatten)]
    pub stores: StoreArgs,
    #[command(flatten)]
    pub http: HttpOptions,
    /// HTTP telemetry is written by an ingestion writer in this process
    /// (batching and spool settings below; the MQTT settings are unused).
    #[command(flatten)]
    pub ingest: IngestOptions,
    /// Alerts acknowledged or resolved through the API queue their
    /// notifications with these settings (the analytics processes deliver
    /// them): set them as for `stoker analytics`.
    #[command(flatten)]
    pub notify: NotifyOptions,
}

#[derive(Debug, Clone, Args)]
pub(crate) struct MigrateArgs {
    #[command(flatten)]
    pub postgres: PostgresOptions,
}

#[derive(Debug, Clone, Args)]
pub(crate) struct CheckArgs {
    #[command(flatten)]
    pub stores: StoreArgs,
    #[command(flatten)]
    pub ingest: IngestOptions,
    #[command(flatten)]
    pub email: stoker_analytics::notify::EmailOptions,
}

#[derive(Debug, Clone, Args)]
pub(crate) struct SimulateCommand {
    #[command(flatten)]
    pub simulate: SimulateArgs,

    /// Broker URL to publish to (mqtts:// for TLS).
    #[arg(
        long = "mqtt-url",
        env = "MQTT_URL",
        default_value = "mqtt://127.0.0.1:1883",
        hide_env_values = true
    )]
    pub mqtt_url: String,

    /// Client id of the simulator's MQTT session (QoS 1 uses a persistent session).
    #[arg(
        long = "mqtt-client-id",
        env = "SIMULATE_CLIENT_ID",
        default_value = "stoker-simulator"
    )]
    pub client_id: String,

    /// TLS for an mqtts:// broker.
    #[command(flatten)]
    pub mqtt_tls: stoker_tls::MqttTlsOptions,
}

/// Log output.
#[derive(Debug, Clone, Args)]
pub(crate) struct Logging {
    /// Log filter, e.g. `info`, `stoker_ingestion=debug,info`.
    #[arg(
        long = "log",
        env = "RUST_LOG",
        default_value = "info,tokio_postgres=warn,refinery_core=warn",
        global = true
    )]
    pub filter: String,

    /// Log format: `text` for people, `json` for log collectors.
    #[arg(long = "log-format", env = "LOG_FORMAT", default_value = "text", value_parser = ["text", "json"], global = true)]
    pub format: String,
}

impl Logging {
    pub(crate) fn init(&self) {
        let filter = tracing_subscriber::EnvFilter::try_new(&self.filter)
            .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
        let builder = tracing_subscriber::fmt()
            .with_env_filter(filter)
            .with_writer(std::io::stderr);
        if self.format == "json" {
            builder.json().init();
        } else {
            builder.init();
        }
    }
}

/// Parses the command line, with defaults from the config file when one
/// is named (by `--config` or `STOKER_CONFIG`).
pub(crate) fn parse() -> anyhow::Result<Cli> {
    let mut arguments: Vec<std::ffi::OsString> = std::env::args_os().collect();
    let mut command = Cli::command().subcommand_required(false);
    if let Some(path) = config_file::named_in(&arguments) {
        let settings = config_file::load(&path)?;
        command = config_file::apply_defaults(command, &settings)?;
    }
    let mut matches = match command.clone().try_get_matches_from(&arguments) {
        Ok(matches) => matches,
        Err(error) => error.exit(),
    };
    if matches.subcommand_name().is_none() {
        // No subcommand: `serve`, with the same arguments and file.
        arguments.push("serve".into());
        matches = match command.try_get_matches_from(&arguments) {
            Ok(matches) => matches,
            Err(error) => error.exit(),
        };
    }
    Ok(Cli::from_arg_matches(&matches)?)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_command_line_is_consistent() {
        Cli::command().debug_assert();
    }
}
