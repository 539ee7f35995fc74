//! `stoker cache rebuild`.

use std::process::ExitCode;

use crate::cli::CacheCommand;

pub async fn run(command: CacheCommand) -> anyhow::Result<ExitCode> {
    match command {
        CacheCommand::Rebuild { stores: _ } => {
            anyhow::bail!("stoker cache rebuild is not implemented yet")
        }
    }
}
