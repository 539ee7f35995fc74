//! Schema migrations: each crate owns one schema and its own series,
//! embedded with refinery; this runner applies any of them.

use deadpool_postgres::Pool;

use crate::{Error, Result};

/// Applies one schema's migrations with its own history table
/// (`{schema}.schema_history`). An advisory lock keyed by the schema name
/// serialises processes that start at the same time. `schema` is a
/// constant of the calling crate, never input.
pub async fn run_schema_migrations(
    pool: &Pool,
    schema: &'static str,
    mut runner: refinery::Runner,
) -> Result<()> {
    let mut connection = pool.get().await?;
    let client: &mut tokio_postgres::Client = &mut connection;
    client
        .execute(
            "SELECT pg_advisory_lock(hashtext('stoker_migrate:' || $1))",
            &[&schema],
        )
        .await?;
    let outcome = async {
        client
            .batch_execute(&format!("CREATE SCHEMA IF NOT EXISTS {schema}"))
            .await?;
        let report = runner
            .set_migration_table_name(format!("{schema}.schema_history"))
            .run_async(client)
            .await
            .map_err(|source| Error::Migration {
                schema: schema.to_owned(),
                source,
            })?;
        for migration in report.applied_migrations() {
            tracing::info!(schema, migration = %migration, "applied migration");
        }
        Ok::<_, Error>(())
    }
    .await;
    let unlocked = client
        .execute(
            "SELECT pg_advisory_unlock(hashtext('stoker_migrate:' || $1))",
            &[&schema],
        )
        .await;
    outcome?;
    unlocked?;
    Ok(())
}
