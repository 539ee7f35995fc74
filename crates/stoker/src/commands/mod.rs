//! The subcommands.

mod apikey;
mod cache;
mod check;
mod influx;
mod mqtt;
mod run;
mod simulate;

use std::process::ExitCode;

use anyhow::Context;

use crate::cli::Command;

pub(crate) async fn run(command: Command) -> anyhow::Result<ExitCode> {
    match command {
        Command::Serve(args) => {
            let analytics = run::AnalyticsRole {
                evaluation: &args.evaluation,
                notify: &args.notify,
                mqtt_url: &args.ingest.mqtt.url,
                mqtt_tls: &args.ingest.mqtt.tls,
                rollup: &args.rollup,
            };
            let roles = run::Roles {
                ingest: Some(&args.ingest),
                mqtt: true,
                analytics: Some(analytics),
                http: run::Http::Api(&args.http),
                api_notify: Some(&args.notify),
            };
            run::roles(&args.stores, roles).await
        }
        Command::Ingest(args) => {
            let roles = run::Roles {
                ingest: Some(&args.ingest),
                mqtt: true,
                analytics: None,
                http: run::Http::Ops(
                    args.metrics_addr,
                    &args.metrics_tls,
                    args.metrics_connections,
                ),
                api_notify: None,
            };
            run::roles(&args.stores, roles).await
        }
        Command::Api(args) => {
            let roles = run::Roles {
                ingest: Some(&args.ingest),
                mqtt: false,
                analytics: None,
                http: run::Http::Api(&args.http),
                api_notify: Some(&args.notify),
            };
            run::roles(&args.stores, roles).await
        }
        Command::Analytics(args) => {
            let analytics = run::AnalyticsRole {
                evaluation: &args.evaluation,
                notify: &args.notify,
                mqtt_url: &args.mqtt_url,
                mqtt_tls: &args.mqtt_tls,
                rollup: &args.rollup,
            };
            let roles = run::Roles {
                ingest: None,
                mqtt: false,
                analytics: Some(analytics),
                http: run::Http::Ops(
                    args.metrics_addr,
                    &args.metrics_tls,
                    args.metrics_connections,
                ),
                api_notify: None,
            };
            run::roles(&args.stores, roles).await
        }
        Command::Migrate(args) => {
            let pool = stoker_postgres::connect(&args.postgres)?;
            migrate(&pool, &args.postgres).await?;
            println!(
                "migrated: schemas metadata, ingestion and analytics are up to date ({})",
                args.postgres.describe()
            );
            Ok(ExitCode::SUCCESS)
        }
        Command::Check(args) => Ok(check::run(&args).await),
        Command::Simulate(args) => simulate::run(args).await,
        Command::Apikey(command) => apikey::run(command).await,
        Command::Influx(command) => influx::run(command).await,
        Command::Cache(command) => cache::run(command).await,
        Command::Mqtt(command) => mqtt::run(command),
    }
}

/// Applies every schema's migrations.
async fn migrate(
    pool: &stoker_postgres::Pool,
    options: &stoker_postgres::PostgresOptions,
) -> anyhow::Result<()> {
    let context = || {
        format!(
            "migrating Postgres at {} (set DATABASE_URL or POSTGRES_*)",
            options.describe()
        )
    };
    stoker_metadata::migrate(pool).await.with_context(context)?;
    stoker_ingestion::migrate(pool)
        .await
        .with_context(context)?;
    stoker_analytics::migrate(pool)
        .await
        .with_context(context)?;
    Ok(())
}

/// Resolves on the first SIGINT or SIGTERM; a second one exits at once.
async fn shutdown_signal() {
    wait_for_signal().await;
    tokio::spawn(async {
        wait_for_signal().await;
        eprintln!("stoker: second signal, exiting without finishing the shutdown");
        std::process::exit(130);
    });
}

async fn wait_for_signal() {
    let interrupt = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        let mut terminate =
            match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
                Ok(signal) => signal,
                Err(error) => {
                    tracing::warn!(%error, "cannot listen for SIGTERM; only Ctrl-C stops stoker");
                    let _ = interrupt.await;
                    return;
                }
            };
        tokio::select! {
            _ = interrupt => {}
            _ = terminate.recv() => {}
        }
    }
    #[cfg(not(unix))]
    {
        let _ = interrupt.await;
    }
}
