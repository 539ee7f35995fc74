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
    let (postgres, redis, mqtt, influx, smtp) = tokio::join!(
        bounded(check_postgres(args)),
        bounded(check_redis(args)),
        bounded(check_mqtt(args)),
        bounded(check_influx(args)),
        stoker_analytics::notify::check_smtp(&args.email, TIMEOUT),
    );
    let mut outcomes = vec![
        Outcome {
            name: "Postgres",
            target: args.stores.postgres.describe(),
            result: postgres,
            variable: "DATABASE_URL (or POSTGRES_HOST, POSTGRES_PORT, POSTGRES_DB, POSTGRES_USER, DB_PASSWORD), sslmode and sslrootcert (or POSTGRES_SSLMODE, POSTGRES_SSLROOTCERT)",
        },
        Outcome {
            name: "Redis",
            target: redact(&args.stores.redis.url),
            result: redis,
            variable: "REDIS_URL, REDIS_CA_FILE",
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
            variable: "INFLUX_URL (and INFLUX_TOKEN, INFLUX_ORG, INFLUX_BUCKET), INFLUX_CA_FILE",
        },
    ];
    // Alert e-mail, when configured: the password never shows.
    if let (Some(result), Some(url)) = (smtp, &args.email.smtp_url) {
        outcomes.push(Outcome {
            name: "SMTP",
            target: url.describe(),
            result,
            variable: "ALERT_SMTP_URL, ALERT_SMTP_CA_FILE, ALERT_EMAIL_FROM",
        });
    }
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
    let connector = args
        .stores
        .postgres
        .connector()
        .map_err(|error| error.to_string())?;
    let (client, connection) = connector
        .connect()
        .await
        .map_err(|error| format!("cannot connect: {}", stoker_postgres::error_chain(&error)))?;
    let connection = tokio::spawn(connection);
    let row = client
        .query_one(
            "SELECT current_setting('server_version'),
                    to_regclass('metadata.schema_history') IS NOT NULL",
            &[],
        )
        .await
        .map_err(|error| stoker_postgres::error_chain(&error))?;
    drop(client);
    connection.abort();
    let version: String = row.get(0);
    let migrated: bool = row.get(1);
    let schema = if migrated {
        "migrated"
    } else {
        "not migrated yet: run `stoker migrate`"
    };
    let tls = connector
        .last_handshake()
        .unwrap_or_else(|| "plain TCP, no TLS".to_owned());
    Ok(format!("PostgreSQL {version}, {schema}, {tls}"))
}

async fn check_redis(args: &CheckArgs) -> Result<String, String> {
    let options = &args.stores.redis;
    let cache = Cache::connect(options).map_err(|error| error.to_string())?;
    cache.ping().await.map_err(|error| error.to_string())?;
    let tls = if options.url.starts_with("rediss://") {
        let (host, port) = host_port(&options.url, 6379)?;
        let tls = stoker_tls::ClientTls {
            ca_file: options.ca_file.clone(),
            identity: None,
        };
        stoker_tls::certificate::probe(&host, port, &tls).await?
    } else {
        "plain TCP, no TLS".to_owned()
    };
    Ok(format!("answers PING, {tls}"))
}

/// The host and port of a `scheme://[user[:password]@]host[:port][/…]`
/// URL.
fn host_port(url: &str, default_port: u16) -> Result<(String, u16), String> {
    let invalid = || format!("cannot read the host of {}", redact(url));
    let (_, rest) = url.split_once("://").ok_or_else(invalid)?;
    let authority = rest.split(['/', '?', '#']).next().unwrap_or_default();
    let address = authority
        .rsplit_once('@')
        .map_or(authority, |(_, host)| host);
    let (host, port) = match address.rsplit_once(':') {
        Some((host, port)) if !port.contains(']') => {
            (host, port.parse::<u16>().map_err(|_| invalid())?)
        }
        _ => (address, default_port),
    };
    if host.is_empty() {
        return Err(invalid());
    }
    Ok((host.to_owned(), port))
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
    let options = &args.stores.influx;
    let tls = if options.url.starts_with("https://") {
        let (host, port) = host_port(&options.url, 443)?;
        let tls = stoker_tls::ClientTls {
            ca_file: options.ca_file.clone(),
            identity: None,
        };
        stoker_tls::certificate::probe(&host, port, &tls).await?
    } else {
        "plain HTTP, no TLS".to_owned()
    };
    Ok(format!("InfluxDB {}, {state}, {tls}", influx.version()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn host_and_port_come_out_of_urls() {
        let read = |url| host_port(url, 443).unwrap();
        assert_eq!(
            read("https://influx.example"),
            ("influx.example".into(), 443)
        );
        assert_eq!(read("rediss://:pw@cache:6380/0"), ("cache".into(), 6380));
        assert_eq!(read("https://[::1]:8086/x"), ("[::1]".into(), 8086));
        assert_eq!(read("https://[::1]"), ("[::1]".into(), 443));
        assert!(host_port("rediss://host:notaport", 1).is_err());
        assert!(host_port("nonsense", 1).is_err());
    }
}
