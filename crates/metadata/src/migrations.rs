//! The `metadata` schema's migrations, applied by the shared runner.

use stoker_postgres::Pool;

use crate::Result;

mod embedded {
    refinery::embed_migrations!("../../migrations/metadata");
}

/// Applies the `metadata` schema's migrations. Re-running is a no-op.
pub async fn migrate(pool: &Pool) -> Result<()> {
    stoker_postgres::run_schema_migrations(pool, "metadata", embedded::migrations::runner())
        .await?;
    Ok(())
}
