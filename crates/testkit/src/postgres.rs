//! Postgres databases of a test's own on the shared server: created fresh,
//! dropped on drop, leftovers of killed runs dropped after an hour.

use crate::{cleanup, is_stale, unique_name};

/// The admin connection for creating databases: `TEST_POSTGRES_URL`, or the
/// local server with trust auth.
fn postgres_admin_url() -> String {
    std::env::var("TEST_POSTGRES_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".into())
}

async fn admin_client() -> tokio_postgres::Client {
    let (client, connection) =
        tokio_postgres::connect(&postgres_admin_url(), tokio_postgres::NoTls)
            .await
            .expect("Postgres must run on 127.0.0.1:5432 (scripts/dev-up starts it)");
    tokio::spawn(connection);
    client
}

/// A Postgres database of the test's own.
#[derive(Debug)]
pub struct TestPostgres {
    name: String,
}

impl TestPostgres {
    const PREFIX: &'static str = "stoker_test";

    /// Creates a fresh, empty database.
    pub async fn create() -> Self {
        let client = admin_client().await;
        let stale = client
            .query(
                "SELECT datname FROM pg_database WHERE datname LIKE 'stoker\\_test\\_%'",
                &[],
            )
            .await
            .expect("list databases");
        for row in stale {
            let name: String = row.get(0);
            if is_stale(&name, Self::PREFIX) {
                let _ = client
                    .execute(
                        &format!("DROP DATABASE IF EXISTS \"{name}\" WITH (FORCE)"),
                        &[],
                    )
                    .await;
            }
        }
        let name = unique_name(Self::PREFIX);
        client
            .execute(&format!("CREATE DATABASE \"{name}\""), &[])
            .await
            .expect("create test database");
        Self { name }
    }

    /// The database's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Settings that point at the database.
    pub fn options(&self) -> stoker_postgres::PostgresOptions {
        stoker_postgres::PostgresOptions::from_url(self.url())
    }

    /// A migrated pool on the database.
    pub async fn migrated_pool(&self) -> stoker_postgres::Pool {
        let pool = stoker_postgres::connect(&self.options()).expect("pool");
        stoker_metadata::migrate(&pool).await.expect("migrate");
        pool
    }

    /// A connection URL for the database.
    pub fn url(&self) -> String {
        let admin = postgres_admin_url();
        match admin.rsplit_once('/') {
            Some((server, _)) => format!("{server}/{}", self.name),
            None => admin,
        }
    }
}

impl Drop for TestPostgres {
    fn drop(&mut self) {
        let name = self.name.clone();
        cleanup(async move {
            let client = admin_client().await;
            let _ = client
                .execute(
                    &format!("DROP DATABASE IF EXISTS \"{name}\" WITH (FORCE)"),
                    &[],
                )
                .await;
        });
    }
}
