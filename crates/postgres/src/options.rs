//! Postgres settings and the connection pool.

use std::path::PathBuf;
use std::time::Duration;

use deadpool_postgres::{Manager, ManagerConfig, Pool, RecyclingMethod, Runtime};
use stoker_domain::Secret;

use crate::tls::{PgTls, SslMode, SslSettings, split_ssl_settings};
use crate::{Error, Result};

/// How to reach Postgres: `DATABASE_URL`, or the `POSTGRES_*` parts when it
/// is not set. Every default works with `scripts/dev-up`.
#[derive(Debug, Clone, clap::Args)]
pub struct PostgresOptions {
    /// Connection URL, e.g. postgres://user:password@host:5432/stoker; overrides the POSTGRES_* parts.
    #[arg(
        id = "postgres_database_url",
        long = "database-url",
        env = "DATABASE_URL",
        hide_env_values = true
    )]
    pub database_url: Option<Secret>,

    /// Postgres host (when DATABASE_URL is not set).
    #[arg(
        id = "postgres_host",
        long = "postgres-host",
        env = "POSTGRES_HOST",
        default_value = "127.0.0.1"
    )]
    pub host: String,

    /// Postgres port (when DATABASE_URL is not set).
    #[arg(
        id = "postgres_port",
        long = "postgres-port",
        env = "POSTGRES_PORT",
        default_value_t = 5432
    )]
    pub port: u16,

    /// Database name (when DATABASE_URL is not set).
    #[arg(
        id = "postgres_database",
        long = "postgres-db",
        env = "POSTGRES_DB",
        default_value = "stoker"
    )]
    pub database: String,

    /// User name (when DATABASE_URL is not set).
    #[arg(
        id = "postgres_user",
        long = "postgres-user",
        env = "POSTGRES_USER",
        default_value = "postgres"
    )]
    pub user: String,

    /// Password (when DATABASE_URL is not set); empty for none.
    #[arg(
        id = "postgres_password",
        long = "db-password",
        env = "DB_PASSWORD",
        default_value = "",
        hide_env_values = true
    )]
    pub password: Secret,

    /// Largest number of connections the process keeps open.
    #[arg(
        id = "postgres_pool_size",
        long = "postgres-pool-size",
        env = "POSTGRES_POOL_SIZE",
        default_value_t = 16
    )]
    pub pool_size: usize,

    /// TLS as libpq's sslmode says: disable, prefer (TLS when offered), require, verify-ca, verify-full. A URL's own sslmode wins.
    #[arg(
        id = "postgres_sslmode",
        long = "postgres-sslmode",
        env = "POSTGRES_SSLMODE",
        value_enum
    )]
    pub sslmode: Option<SslMode>,

    /// PEM file of the CAs trusted for the server's certificate (libpq's sslrootcert; `system` for the system's roots). A URL's own sslrootcert wins.
    #[arg(
        id = "postgres_sslrootcert",
        long = "postgres-sslrootcert",
        env = "POSTGRES_SSLROOTCERT"
    )]
    pub sslrootcert: Option<PathBuf>,
}

impl Default for PostgresOptions {
    fn default() -> Self {
        Self {
            database_url: None,
            host: "127.0.0.1".into(),
            port: 5432,
            database: "stoker".into(),
            user: "postgres".into(),
            password: Secret::default(),
            pool_size: 16,
            sslmode: None,
            sslrootcert: None,
        }
    }
}

impl PostgresOptions {
    /// Settings for a connection URL (tests use one database each).
    pub fn from_url(url: impl Into<String>) -> Self {
        Self {
            database_url: Some(Secret::new(url)),
            ..Self::default()
        }
    }

    /// The driver's configuration (`sslmode` as the driver knows it: the
    /// `verify-*` modes are `require` to it, [`PostgresOptions::connector`]
    /// verifies).
    pub fn pg_config(&self) -> Result<tokio_postgres::Config> {
        Ok(self.settings()?.0)
    }

    /// The driver's configuration and the TLS settings it does not hold.
    fn settings(&self) -> Result<(tokio_postgres::Config, SslSettings)> {
        let (mut config, mut ssl) = match &self.database_url {
            Some(url) => {
                let invalid = |reason: String| Error::Config {
                    variable: "DATABASE_URL",
                    reason,
                };
                let (rest, ssl) = split_ssl_settings(url.expose()).map_err(invalid)?;
                let config = rest
                    .parse::<tokio_postgres::Config>()
                    .map_err(|error| invalid(error.to_string()))?;
                (config, ssl)
            }
            None => {
                let mut config = tokio_postgres::Config::new();
                config
                    .host(&self.host)
                    .port(self.port)
                    .dbname(&self.database)
                    .user(&self.user);
                if !self.password.is_empty() {
                    config.password(self.password.expose());
                }
                (config, SslSettings::default())
            }
        };
        ssl.mode = ssl.mode.or(self.sslmode);
        ssl.root_cert = ssl.root_cert.or_else(|| self.sslrootcert.clone());
        // libpq's default, or verify-full with the system's roots.
        let mode = ssl.mode.unwrap_or(if ssl.is_system() {
            SslMode::VerifyFull
        } else {
            SslMode::Prefer
        });
        ssl.mode = Some(mode);
        config
            .application_name("stoker")
            .connect_timeout(Duration::from_secs(5))
            .ssl_mode(mode.driver());
        Ok((config, ssl))
    }

    /// How this process connects (its pool, LISTEN and leadership
    /// connections): the driver's configuration and the TLS its `sslmode`
    /// asks for (files read now).
    pub fn connector(&self) -> Result<PgConnector> {
        let (config, ssl) = self.settings()?;
        let invalid = |reason: String| Error::Config {
            variable: if self.database_url.is_some() {
                "DATABASE_URL (sslmode, sslrootcert) or POSTGRES_SSLMODE, POSTGRES_SSLROOTCERT"
            } else {
                "POSTGRES_SSLMODE, POSTGRES_SSLROOTCERT"
            },
            reason,
        };
        let system = ssl.is_system();
        let mode = ssl.mode.unwrap_or(SslMode::Prefer);
        if system && !matches!(mode, SslMode::VerifyFull | SslMode::Disable) {
            return Err(invalid(format!(
                "sslrootcert=system needs sslmode=verify-full, not {}",
                mode.as_str()
            )));
        }
        if ssl.root_cert.is_none() && matches!(mode, SslMode::VerifyCa | SslMode::VerifyFull) {
            return Err(invalid(format!(
                "sslmode={} needs a root certificate: set sslrootcert to the CA file \
                 (or to `system` for the system's roots)",
                mode.as_str()
            )));
        }
        let verify = match mode {
            // Never used: the driver does not ask for TLS.
            SslMode::Disable => stoker_tls::Verify::Nothing,
            SslMode::VerifyFull => stoker_tls::Verify::Full,
            _ if ssl.root_cert.is_some() => stoker_tls::Verify::ChainOnly,
            _ => stoker_tls::Verify::Nothing,
        };
        let tls = stoker_tls::ClientTls {
            ca_file: ssl.root_cert.filter(|_| !system),
            identity: None,
        };
        let connector = tls
            .connector_verifying(verify)
            .map_err(|error| invalid(error.to_string()))?;
        Ok(PgConnector {
            config,
            tls: PgTls::new(connector),
        })
    }

    /// Where the settings point, without the password (for messages).
    pub fn describe(&self) -> String {
        match self.pg_config() {
            Ok(config) => {
                let host = config
                    .get_hosts()
                    .first()
                    .map(|host| match host {
                        tokio_postgres::config::Host::Tcp(name) => name.clone(),
                        tokio_postgres::config::Host::Unix(path) => path.display().to_string(),
                    })
                    .unwrap_or_default();
                let port = config.get_ports().first().copied().unwrap_or(5432);
                format!(
                    "{}@{host}:{port}/{}",
                    config.get_user().unwrap_or_default(),
                    config.get_dbname().unwrap_or_default()
                )
            }
            Err(error) => error.to_string(),
        }
    }
}

/// How to open a connection of one's own: the driver's configuration and
/// the TLS the settings ask for. Every connection of the process, pooled
/// or not, goes through one.
#[derive(Clone)]
pub struct PgConnector {
    config: tokio_postgres::Config,
    tls: PgTls,
}

impl std::fmt::Debug for PgConnector {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // The driver's configuration hides its password.
        f.debug_struct("PgConnector")
            .field("config", &self.config)
            .finish_non_exhaustive()
    }
}

/// A connection made by a [`PgConnector`]: drive it (spawn it, or poll
/// its messages) for its client to work.
pub type PgConnection = tokio_postgres::Connection<
    tokio_postgres::Socket,
    crate::tls::PgTlsStream<tokio_postgres::Socket>,
>;

impl PgConnector {
    /// Opens a connection.
    pub async fn connect(
        &self,
    ) -> std::result::Result<(tokio_postgres::Client, PgConnection), tokio_postgres::Error> {
        self.config.connect(self.tls.clone()).await
    }

    /// What the last connection's TLS was: "TLS 1.3, certificate valid
    /// until …", or `None` when it was plain.
    pub fn last_handshake(&self) -> Option<String> {
        self.tls.last_handshake()
    }
}

/// Builds the process's connection pool. Connections open lazily, so this
/// succeeds while Postgres is down; the first query says whether it is up.
pub fn connect(options: &PostgresOptions) -> Result<Pool> {
    let PgConnector { config, tls } = options.connector()?;
    let manager_config = ManagerConfig {
        recycling_method: RecyclingMethod::Fast,
    };
    let manager = Manager::from_config(config, tls, manager_config);
    Pool::builder(manager)
        .max_size(options.pool_size.max(1))
        .runtime(Runtime::Tokio1)
        .wait_timeout(Some(Duration::from_secs(5)))
        .create_timeout(Some(Duration::from_secs(5)))
        .recycle_timeout(Some(Duration::from_secs(5)))
        .build()
        .map_err(|error| Error::Config {
            variable: "POSTGRES_POOL_SIZE",
            reason: error.to_string(),
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn url_overrides_parts_and_password_never_shows() {
        let options = PostgresOptions::from_url("postgres://alice:s3cret@db.example:6543/plant");
        assert_eq!(options.describe(), "alice@db.example:6543/plant");
        assert!(!format!("{options:?}").contains("s3cret"));
    }

    #[test]
    fn parts_are_used_without_a_url() {
        assert_eq!(
            PostgresOptions::default().describe(),
            "postgres@127.0.0.1:5432/stoker"
        );
    }

    #[test]
    fn sslmode_and_root_follow_libpq() {
        use tokio_postgres::config::SslMode as Driver;
        let driver_mode = |options: &PostgresOptions| options.pg_config().unwrap().get_ssl_mode();
        // The driver hears require for verify-*, and never sslrootcert.
        let url = PostgresOptions::from_url(
            "postgres://u:s3cret@db/x?sslmode=verify-full&sslrootcert=/nonexistent/ca.pem",
        );
        assert_eq!(driver_mode(&url), Driver::Require);
        let error = url.connector().unwrap_err().to_string();
        assert!(error.contains("/nonexistent/ca.pem"), "{error}");
        assert!(!error.contains("s3cret"), "{error}");
        // Without a root file: verify-* refused, require encrypts only.
        let rootless = PostgresOptions::from_url("postgres://db/x?sslmode=verify-ca");
        let error = rootless.connector().unwrap_err().to_string();
        assert!(error.contains("sslrootcert"), "{error}");
        assert!(
            PostgresOptions::from_url("postgres://db/x?sslmode=require")
                .connector()
                .is_ok()
        );
        // The default is prefer; POSTGRES_SSLMODE applies when the URL
        // does not say, and the URL wins.
        assert_eq!(driver_mode(&PostgresOptions::default()), Driver::Prefer);
        let mut parts = PostgresOptions {
            sslmode: Some(SslMode::Disable),
            ..PostgresOptions::default()
        };
        assert_eq!(driver_mode(&parts), Driver::Disable);
        parts.database_url = Some(Secret::new("postgres://db/x?sslmode=require"));
        assert_eq!(driver_mode(&parts), Driver::Require);
        // sslrootcert=system asks for verify-full and refuses less.
        let system = PostgresOptions::from_url("postgres://db/x?sslrootcert=system");
        assert_eq!(driver_mode(&system), Driver::Require);
        let weak = PostgresOptions::from_url("postgres://db/x?sslrootcert=system&sslmode=require");
        let error = weak.connector().unwrap_err().to_string();
        assert!(error.contains("verify-full"), "{error}");
    }

    #[test]
    fn a_bad_url_names_the_variable() {
        let error = PostgresOptions::from_url("not a url")
            .pg_config()
            .unwrap_err();
        assert!(error.to_string().contains("DATABASE_URL"), "{error}");
    }
}
