//! `stoker apikey create|list|revoke`.

use std::process::ExitCode;

use anyhow::Context;
use stoker_metadata::Scope;
use stoker_postgres::PostgresOptions;

use crate::cli::ApikeyCommand;

pub(super) async fn run(command: ApikeyCommand) -> anyhow::Result<ExitCode> {
    match command {
        ApikeyCommand::Create {
            postgres,
            name,
            scopes,
        } => {
            let scopes = match Scope::parse_list(&scopes) {
                Ok(scopes) => scopes,
                Err((_, message)) => {
                    eprintln!("stoker apikey create: --scopes: {message}");
                    return Ok(ExitCode::from(2));
                }
            };
            let pool = connect(&postgres).await?;
            let (key, token) = stoker_metadata::create_api_key(&pool, &name, &scopes)
                .await
                .context("creating the API key")?;
            // The token alone on stdout, so that scripts can capture it;
            // what it is on stderr.
            println!("{}", token.expose());
            eprintln!(
                "created API key {:?} (id {}, scopes {}); it is shown only this once: store it now",
                key.name,
                key.key_id,
                scope_names(&key.scopes)
            );
            Ok(ExitCode::SUCCESS)
        }
        ApikeyCommand::List { postgres } => {
            let pool = connect(&postgres).await?;
            let keys = stoker_metadata::list_api_keys(&pool)
                .await
                .context("listing API keys")?;
            println!(
                "{:<24} {:<14} {:<18} {:<22} revoked",
                "name", "id", "scopes", "created"
            );
            for key in keys {
                println!(
                    "{:<24} {:<14} {:<18} {:<22} {}",
                    key.name,
                    key.key_id,
                    scope_names(&key.scopes),
                    key.created_at.format("%Y-%m-%d %H:%M:%SZ"),
                    key.revoked_at.map_or_else(
                        || "-".to_owned(),
                        |at| at.format("%Y-%m-%d %H:%M:%SZ").to_string()
                    )
                );
            }
            Ok(ExitCode::SUCCESS)
        }
        ApikeyCommand::Revoke { postgres, key } => {
            let pool = connect(&postgres).await?;
            match stoker_metadata::revoke_api_key(&pool, &key).await {
                Ok(revoked) => {
                    println!("revoked API key {:?} (id {})", revoked.name, revoked.key_id);
                    Ok(ExitCode::SUCCESS)
                }
                Err(stoker_metadata::Error::ApiKeyNotFound(_)) => {
                    eprintln!(
                        "stoker apikey revoke: no API key is named {key:?} or has that id (stoker apikey list shows them)"
                    );
                    Ok(ExitCode::from(1))
                }
                Err(error) => Err(error).context("revoking the API key"),
            }
        }
    }
}

fn scope_names(scopes: &[Scope]) -> String {
    scopes
        .iter()
        .map(|scope| scope.as_str())
        .collect::<Vec<_>>()
        .join(",")
}

/// A pool on a migrated database (keys live in schema `metadata`).
async fn connect(postgres: &PostgresOptions) -> anyhow::Result<stoker_postgres::Pool> {
    let pool = stoker_postgres::connect(postgres)?;
    super::migrate(&pool, postgres).await?;
    Ok(pool)
}
