//! `check`: every dependency, one line each, naming the variable to fix.

use std::process::ExitCode;
use std::time::Duration;

use stoker_cache::Cache;
use stoker_timeseries::Influx;

use crate::cli::CheckArgs;
use stoker_domain::redact_url as redact;

/// Longest wait for one dependency.
const TIMEOUT: Duration = Duration::from_secs(5);

/// The outcome of one check.
struct Outcome {
    name: &'static str,
    target: String,
    result: Result<String, String>,
    variable: &'static str,
}

pub(super) async fn run(args: &CheckArgs) -> ExitCode {
    let (postgres, redis, mqtt, influx) = tokio::join!(
        bounded(check_postgres(args)),
        bounded(check_redis(args)),
        bounded(check_mqtt(args)),
        bounded(check_influx(args)),
    );
    let outcomes = [
        Outcome {
            name: "Postgres",
            target: args.stores.postgres.describe(),
            result: postgres,
            variable: "DATABASE_URL (or POSTGRES_HOST, POSTGRES_PORT, POSTGRES_DB, POSTGRES_USER, DB_PASSWORD)",
        },
        Outcome {
            name: "Redis",
            target: redact(&args.stores.redis.url),
            result: redis,
            variable: "REDIS_URL",
        },
        Outcome {
            name: "MQTT",
            target: redact(&args.ingest.mqtt.url),
            result: mqtt,
            variable: "MQTT_URL, MQTT_CA_FILE, MQTT_CLIENT_CERT, MQTT_CLIENT_KEY",
        },
        Outcome {
            name: "InfluxDB",
            target: redact(&args.stores.influx.url),
            result: influx,
            variable: "INFLUX_URL (and INFLUX_TOKEN, INFLUX_ORG, INFLUX_BUCKET)",
        },
    ];
    let mut failed = 0;
    for outcome in &outcomes {
        match &outcome.result {
            Ok(detail) => println!("ok    {:<9} {}: {detail}", outcome.name, outcome.target),
            Err(error) => {
                failed += 1;
                println!(
                    "FAIL  {:<9} {}: {error} (check {})",
                    outcome.name, outcome.target, outcome.variable
                );
            }
        }
    }
    if failed == 0 {
        println!("all {} dependencies answer", outcomes.len());
        ExitCode::SUCCESS
    } else {
        println!("{failed} of {} dependencies failed", outcomes.len());
        ExitCode::FAILURE
    }
}

async fn bounded(check: impl Future<Output = Result<String, String>>) -> Result<String, String> {
    tokio::time::timeout(TIMEOUT, check)
        .await
        .unwrap_or_else(|_| Err(format!("no answer within {} s", TIMEOUT.as_secs())))
}

async fn check_postgres(args: &CheckArgs) -> Result<String, String> {
    let pool =
        stoker_postgres::connect(&args.stores.postgres).map_err(|error| error.to_string())?;
    let client = pool
        .get()
        .await
        .map_err(|error| format!("cannot connect: {error}"))?;
    let row = client
        .query_one(
            "SELECT current_setting('server_version'),
                    to_regclass('metadata.schema_history') IS NOT NULL",
            &[],
        )
        .await
        .map_err(|error| error.to_string())?;
    let version: String = row.get(0);
    let migrated: bool = row.get(1);
    let schema = if migrated {
        "migrated"
    } else {
        "not migrated yet: run `stoker migrate`"
    };
    Ok(format!("PostgreSQL {version}, {schema}"))
}

async fn check_redis(args: &CheckArgs) -> Result<String, String> {
    let cache = Cache::connect(&args.stores.redis).map_err(|error| error.to_string())?;
    cache.ping().await.map_err(|error| error.to_string())?;
    Ok("answers PING".into())
}

async fn check_mqtt(args: &CheckArgs) -> Result<String, String> {
    let client_id = format!("stoker-check-{}", std::process::id());
    stoker_ingestion::probe_broker(&args.ingest.mqtt, &client_id).await
}

async fn check_influx(args: &CheckArgs) -> Result<String, String> {
    let influx = Influx::connect(&args.stores.influx)
        .await
        .map_err(|error| error.to_string())?;
    let database = influx.database().to_owned();
    let exists = influx
        .database_exists()
        .await
        .map_err(|error| error.to_string())?;
    let state = if !exists {
        format!(
            "database {database} does not exist yet (`stoker influx setup` or serve creates it on 1.x)"
        )
    } else {
        // Only says how far the rollup is; a missing one is not a failure.
        let rollup = match influx.rollup_progress().await {
            Ok(Some(through)) => {
                let lag =
                    (stoker_domain::EpochMillis::now().as_millis() - through.as_millis()) / 1_000;
                format!("rollup readings_1m through {through} ({lag} s ago)")
            }
            Ok(None) => "no rollup yet (the analytics role writes it)".to_owned(),
            Err(error) => format!("rollup unknown: {error}"),
        };
        format!("database {database} exists, {rollup}")
    };
    Ok(format!("InfluxDB {}, {state}", influx.version()))
}
