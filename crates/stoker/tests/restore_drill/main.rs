//! The restore drill: seed a Postgres database and an InfluxDB database,
//! back them up with `scripts/backup`, restore them with `scripts/restore`
//! into fresh databases, and compare every table (rows and checksums,
//! shape, sequences) and every series (points and a checksum over every
//! point); then refill Redis from the restored stores with
//! `stoker cache rebuild`, as the runbook says.
//!
//! Everything the drill creates (restored databases, the backup directory)
//! is removed by guards, on failure too. Names are unique per run, so the
//! drill runs beside other tests.
//!
//! `restored`: the fresh databases; `seed`: what is backed up; `content`:
//! what is compared; `cache`: the cache rebuilt afterwards.

mod cache;
mod content;
mod restored;
mod seed;

use cache::rebuild_cache;
use content::*;
use restored::*;
use seed::*;
use std::path::{Path, PathBuf};
use std::time::{SystemTime, UNIX_EPOCH};
use stoker_testkit::{TestInflux, TestPostgres};

const BINARY: &str = env!("CARGO_BIN_EXE_stoker");

/// The schemas of record.
const SCHEMAS: [&str; 3] = ["metadata", "ingestion", "analytics"];

const SITES: [&str; 3] = ["drill-a", "drill-b", "drill-c"];

/// Sensors with readings, per site.
const SENSORS: [(&str, &str, &str); 4] = [
    ("b1_steam_pressure", "pressure", "bar"),
    ("b1_flue_temp", "temperature", "°C"),
    ("b1_feed_flow", "flow", "m3/h"),
    ("b1_flue_o2", "o2", "%"),
];

/// A sensor registered at every site that never sent a reading.
const SILENT: &str = "b2_spare";

const READINGS_PER_SENSOR: i64 = 250;

const STEP_MS: i64 = 10_000;

fn scripts() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../scripts")
}

fn now_ms() -> i64 {
    i64::try_from(
        SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap_or_default()
            .as_millis(),
    )
    .unwrap_or(i64::MAX)
}

// -------------------------------------------------------------------- drill
#[tokio::test]
async fn a_backup_restores_into_fresh_databases_identical_and_the_cache_is_rebuilt() {
    let newest = now_ms() - 5_000;
    let source_postgres = TestPostgres::create().await;
    let pool = source_postgres.migrated_pool().await;
    seed_postgres(&pool, newest).await;
    let source_influx = TestInflux::create().await;
    let rollup_points = seed_influx(&source_influx, newest).await;
    let source_database = source_influx.influx().database().to_owned();
    let influx_url = stoker_testkit::influx_options().url;

    let directory = TempDir::new();
    let backup = directory.0.join("backup");
    let backup_path = backup.to_str().expect("a UTF-8 path");
    let (ok, output) = run(
        &scripts().join("backup"),
        &[backup_path],
        &[
            ("DATABASE_URL", source_postgres.url()),
            ("INFLUX_URL", influx_url.clone()),
            ("INFLUX_BUCKET", source_database.clone()),
        ],
    )
    .await;
    assert!(ok, "scripts/backup failed:\n{output}");
    let manifest = std::fs::read_to_string(backup.join("MANIFEST")).expect("a MANIFEST");
    for schema in SCHEMAS {
        assert!(
            backup.join(format!("postgres/{schema}.dump")).is_file(),
            "no dump of {schema}"
        );
    }
    assert!(
        manifest.contains(&format!(
            "influxdb.points autogen.readings {}",
            SITES.len() as i64 * SENSORS.len() as i64 * READINGS_PER_SENSOR
        )),
        "{manifest}"
    );
    assert!(
        manifest.contains("postgres.rows metadata.sites 3"),
        "{manifest}"
    );

    // Restore into fresh databases; the guards drop them whatever happens.
    let restored_postgres = RestoredPostgres {
        name: unique_name(),
    };
    let restored_influx = RestoredInflux {
        name: unique_name(),
    };
    let restore_environment = [
        ("DATABASE_URL", restored_postgres.url()),
        ("INFLUX_URL", influx_url.clone()),
        ("INFLUX_BUCKET", restored_influx.name.clone()),
    ];
    let (ok, output) = run(
        &scripts().join("restore"),
        &[backup_path],
        &restore_environment,
    )
    .await;
    assert!(ok, "scripts/restore failed:\n{output}");
    assert!(output.contains("stoker cache rebuild"), "{output}");

    let source = postgres_content(&source_postgres.url()).await;
    for table in [
        "metadata.sites",
        "metadata.sensors",
        "metadata.alert_rules",
        "metadata.api_keys",
        "metadata.gateways",
        "metadata.gateway_metrics",
        "metadata.gateway_devices",
        "metadata.audit_events",
        "metadata.maintenance_windows",
        "analytics.alerts",
        "analytics.alert_events",
        "analytics.notifications",
        "ingestion.ingestion_log",
        "ingestion.rejected_readings",
    ] {
        assert!(
            source.tables.get(table).is_some_and(|(rows, _)| *rows > 0),
            "the drill seeds {table}: {:?}",
            source.tables
        );
    }
    let restored = postgres_content(&restored_postgres.url()).await;
    assert_eq!(restored.tables, source.tables, "rows or checksums differ");
    assert_eq!(restored.shape, source.shape, "schema objects differ");
    assert_eq!(restored.sequences, source.sequences, "sequences differ");

    let source_points = influx_content(&source_database).await;
    assert_eq!(
        source_points.points,
        (SITES.len() * SENSORS.len()) * READINGS_PER_SENSOR as usize + rollup_points as usize + 1,
        "readings, their rollup and the rollup's progress"
    );
    let restored_points = influx_content(&restored_influx.name).await;
    assert_eq!(restored_points, source_points, "InfluxDB content differs");

    // Restoring again over the restored databases is refused without
    // --force; with it, Postgres is replaced and InfluxDB merged (the
    // same points: nothing changes).
    let (ok, output) = run(
        &scripts().join("restore"),
        &[backup_path],
        &restore_environment,
    )
    .await;
    assert!(!ok, "a restore over data must be refused:\n{output}");
    assert!(output.contains("already holds data"), "{output}");
    let (ok, output) = run(
        &scripts().join("restore"),
        &["--force", backup_path],
        &restore_environment,
    )
    .await;
    assert!(ok, "scripts/restore --force failed:\n{output}");
    assert_eq!(postgres_content(&restored_postgres.url()).await, source);
    assert_eq!(
        influx_content(&restored_influx.name).await,
        source_points,
        "a merge of the same backup changes nothing"
    );

    rebuild_cache(&restored_postgres, &restored_influx, newest).await;
}
