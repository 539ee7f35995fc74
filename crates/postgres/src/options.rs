//! Postgres settings and the connection pool.

use std::time::Duration;

use deadpool_postgres::{Manager, ManagerConfig, Pool, RecyclingMethod, Runtime};
use stoker_domain::Secret;

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

    /// The driver's configuration.
    pub fn pg_config(&self) -> Result<tokio_postgres::Config> {
        let mut config = match &self.database_url {
            Some(url) => url
                .expose()
                .parse::<tokio_postgres::Config>()
                .map_err(|error| Error::Config {
                    variable: "DATABASE_URL",
                    reason: error.to_string(),
                })?,
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
                config
            }
        };
        config
            .application_name("stoker")
            .connect_timeout(Duration::from_secs(5));
        Ok(config)
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

/// Builds the process's connection pool. Connections open lazily, so this
/// succeeds while Postgres is down; the first query says whether it is up.
pub fn connect(options: &PostgresOptions) -> Result<Pool> {
    let config = options.pg_config()?;
    let manager_config = ManagerConfig {
        recycling_method: RecyclingMethod::Fast,
    };
    let manager = Manager::from_config(config, tokio_postgres::NoTls, manager_config);
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
    fn a_bad_url_names_the_variable() {
        let error = PostgresOptions::from_url("not a url")
            .pg_config()
            .unwrap_err();
        assert!(error.to_string().contains("DATABASE_URL"), "{error}");
    }
}
