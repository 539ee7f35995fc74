//! `stoker apikey create|rotate|list|revoke`; each change is recorded in
//! the audit trail under the actor `cli`.

use std::process::ExitCode;

use anyhow::Context;
use stoker_metadata::{Actor, NewApiKey, Scope};
use stoker_postgres::PostgresOptions;

use crate::cli::ApikeyCommand;

pub(super) async fn run(command: ApikeyCommand) -> anyhow::Result<ExitCode> {
    match command {
        ApikeyCommand::Create {
            postgres,
            name,
            scopes,
            sites,
            expires,
        } => {
            let parsed = Scope::parse_list(&scopes).and_then(|scopes| {
                let sites = sites
                    .as_deref()
                    .map(stoker_metadata::parse_sites)
                    .transpose()?;
                let expires_at = expires
                    .as_deref()
                    .map(|text| stoker_metadata::parse_expiry(text, chrono::Utc::now()))
                    .transpose()?;
                Ok(NewApiKey {
                    name,
                    scopes,
                    sites,
                    expires_at,
                })
            });
            let new = match parsed {
                Ok(new) => new,
                Err((field, message)) => {
                    eprintln!("stoker apikey create: --{field}: {message}");
                    return Ok(ExitCode::from(2));
                }
            };
            let pool = connect(&postgres).await?;
            let (key, token) =
                match stoker_metadata::create_api_key_with(&pool, &Actor::Cli, &new).await {
                    Ok(created) => created,
                    Err(stoker_metadata::Error::InvalidInput { field, message }) => {
                        eprintln!("stoker apikey create: {field}: {message}");
                        return Ok(ExitCode::from(2));
                    }
                    Err(error) => return Err(error).context("creating the API key"),
                };
            // The token alone on stdout, so that scripts can capture it;
            // what it is on stderr.
            println!("{}", token.expose());
            eprintln!(
                "created API key {:?} (id {}, scopes {}, sites {}, expires {}); it is shown only this once: store it now",
                key.name,
                key.key_id,
                scope_names(&key.scopes),
                site_names(key.sites.as_deref()),
                time_or_dash(key.expires_at),
            );
            Ok(ExitCode::SUCCESS)
        }
        ApikeyCommand::Rotate {
            postgres,
            name,
            grace,
        } => {
            let grace = match stoker_domain::parse_duration(&grace) {
                Ok(grace) => grace,
                Err(error) => {
                    eprintln!("stoker apikey rotate: --grace: {error}");
                    return Ok(ExitCode::from(2));
                }
            };
            let pool = connect(&postgres).await?;
            match stoker_metadata::rotate_api_key(&pool, &Actor::Cli, &name, grace).await {
                Ok((key, token)) => {
                    println!("{}", token.expose());
                    eprintln!(
                        "rotated API key {:?} (id {}): the new secret is shown only this once; the old one is valid until {}",
                        key.name,
                        key.key_id,
                        time_or_dash(key.previous_valid_until),
                    );
                    Ok(ExitCode::SUCCESS)
                }
                Err(stoker_metadata::Error::ApiKeyNotFound(_)) => {
                    eprintln!(
                        "stoker apikey rotate: no unrevoked API key is named {name:?} or has that id (stoker apikey list shows them)"
                    );
                    Ok(ExitCode::from(1))
                }
                Err(stoker_metadata::Error::InvalidInput { field, message }) => {
                    eprintln!("stoker apikey rotate: --{field}: {message}");
                    Ok(ExitCode::from(2))
                }
                Err(error) => Err(error).context("rotating the API key"),
            }
        }
        ApikeyCommand::List { postgres } => {
            let pool = connect(&postgres).await?;
            let keys = stoker_metadata::list_api_keys(&pool)
                .await
                .context("listing API keys")?;
            println!(
                "{:<24} {:<14} {:<18} {:<24} {:<20} {:<20} {:<20} revoked",
                "name", "id", "scopes", "sites", "created", "expires", "rotated"
            );
            for key in keys {
                println!(
                    "{:<24} {:<14} {:<18} {:<24} {:<20} {:<20} {:<20} {}",
                    key.name,
                    key.key_id,
                    scope_names(&key.scopes),
                    site_names(key.sites.as_deref()),
                    time_or_dash(Some(key.created_at)),
                    time_or_dash(key.expires_at),
                    time_or_dash(key.rotated_at),
                    time_or_dash(key.revoked_at),
                );
            }
            Ok(ExitCode::SUCCESS)
        }
        ApikeyCommand::Revoke { postgres, key } => {
            let pool = connect(&postgres).await?;
            match stoker_metadata::revoke_api_key(&pool, &Actor::Cli, &key).await {
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

/// `*` for every site, else the slugs comma-separated.
fn site_names(sites: Option<&[stoker_domain::SiteSlug]>) -> String {
    match sites {
        None => "*".to_owned(),
        Some(sites) => sites
            .iter()
            .map(stoker_domain::SiteSlug::as_str)
            .collect::<Vec<_>>()
            .join(","),
    }
}

fn time_or_dash(at: Option<chrono::DateTime<chrono::Utc>>) -> String {
    at.map_or_else(
        || "-".to_owned(),
        |at| at.format("%Y-%m-%d %H:%M:%SZ").to_string(),
    )
}

/// A pool on a migrated database (keys live in schema `metadata`).
async fn connect(postgres: &PostgresOptions) -> anyhow::Result<stoker_postgres::Pool> {
    let pool = stoker_postgres::connect(postgres)?;
    super::migrate(&pool, postgres).await?;
    Ok(pool)
}
