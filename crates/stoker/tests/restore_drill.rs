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

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde_json::Value;
use stoker_analytics::notify::NotifyOptions;
use stoker_analytics::store::{self, Verdict};
use stoker_cache::LatestValue;
use stoker_domain::{EpochMillis, SensorKey, SensorType, SiteSlug, Unit, ValidRange};
use stoker_metadata::{NewSensor, NewSite, Scope};
use stoker_postgres::{Pool, PostgresOptions};
use stoker_rules::{Agg, AlertRule, NewAlertRule, Op, RuleKind, RuleSelector, Severity};
use stoker_testkit::{TestInflux, TestPostgres, TestRedis};
use stoker_timeseries::LineBatch;

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

/// A name in testkit's format (`stoker_test_{secs}_{hex}`), so that a
/// database a killed run leaves behind is swept like testkit's own.
fn unique_name() -> String {
    let secs = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default()
        .as_secs();
    let id = stoker_testkit::unique_client_id("r");
    format!("stoker_test_{secs}_{}", id.trim_start_matches("r-"))
}

/// The server's admin connection, as testkit reaches it.
fn postgres_admin_url() -> String {
    std::env::var("TEST_POSTGRES_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".into())
}

/// `url` with its database replaced by `database`.
fn with_database(url: &str, database: &str) -> String {
    match url.rsplit_once('/') {
        Some((server, _)) => format!("{server}/{database}"),
        None => url.to_owned(),
    }
}

/// A Postgres database the restore creates; dropped on drop.
struct RestoredPostgres {
    name: String,
}

impl RestoredPostgres {
    fn url(&self) -> String {
        with_database(&postgres_admin_url(), &self.name)
    }
}

impl Drop for RestoredPostgres {
    fn drop(&mut self) {
        let name = self.name.clone();
        stoker_testkit::cleanup(async move {
            let Ok(pool) =
                stoker_postgres::connect(&PostgresOptions::from_url(postgres_admin_url()))
            else {
                return;
            };
            if let Ok(client) = pool.get().await {
                let _ = client
                    .execute(
                        &format!("DROP DATABASE IF EXISTS \"{name}\" WITH (FORCE)"),
                        &[],
                    )
                    .await;
            }
        });
    }
}

/// An InfluxDB database the restore creates; dropped on drop.
struct RestoredInflux {
    name: String,
}

impl Drop for RestoredInflux {
    fn drop(&mut self) {
        let mut options = stoker_testkit::influx_options();
        options.bucket = self.name.clone();
        stoker_testkit::cleanup(async move {
            if let Ok(influx) = stoker_timeseries::Influx::connect(&options).await {
                let _ = influx.drop_database().await;
            }
        });
    }
}

/// A directory removed with everything in it on drop.
struct TempDir(PathBuf);

impl TempDir {
    fn new() -> Self {
        let path = std::env::temp_dir().join(format!("stoker-restore-drill-{}", unique_name()));
        std::fs::create_dir_all(&path).expect("create the drill's directory");
        Self(path)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// Runs a script or the binary; returns (success, stdout, stderr) and
/// prints both (shown when the test fails).
async fn run(program: &Path, args: &[&str], environment: &[(&str, String)]) -> (bool, String) {
    let mut command = tokio::process::Command::new(program);
    command.args(args).env("RUST_LOG", "warn");
    for (name, value) in environment {
        command.env(name, value);
    }
    let output = command
        .output()
        .await
        .unwrap_or_else(|error| panic!("run {}: {error}", program.display()));
    let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
    let stderr = String::from_utf8_lossy(&output.stderr).into_owned();
    println!(
        "$ {} {}\n{stdout}{stderr}",
        program.display(),
        args.join(" ")
    );
    (output.status.success(), format!("{stdout}{stderr}"))
}

fn site(slug: &str) -> SiteSlug {
    SiteSlug::parse(slug).unwrap()
}

fn key(sensor: &str) -> SensorKey {
    SensorKey::parse(sensor).unwrap()
}

/// The value of reading `index` (0 = newest) of sensor `sensor` at site
/// `site`: distinct per series, so a mixed-up point changes the checksum.
fn reading_value(site: usize, sensor: usize, index: i64) -> f64 {
    let index = index as f64;
    10.0 + site as f64 * 7.0 + sensor as f64 * 1.5 + (index * 0.37).sin() * 3.0 + index * 0.001
}

// ------------------------------------------------------------------ seeding

async fn seed_postgres(pool: &Pool, newest: i64) -> Vec<AlertRule> {
    stoker_ingestion::migrate(pool)
        .await
        .expect("migrate ingestion");
    stoker_analytics::migrate(pool)
        .await
        .expect("migrate analytics");
    let outbox = NotifyOptions::default();
    let mut rules = Vec::new();
    for slug in SITES {
        let new_site = NewSite::parse(slug, &format!("Boiler house {slug}"), "Europe/Berlin")
            .expect("a valid site");
        stoker_metadata::create_site(pool, &new_site)
            .await
            .expect("create site");
        for (sensor, sensor_type, unit) in SENSORS.iter().chain([&(SILENT, "level", "%")]) {
            let new_sensor = NewSensor {
                key: key(sensor),
                sensor_type: SensorType::parse(*sensor_type).unwrap(),
                unit: Unit::parse(*unit).unwrap(),
                range: ValidRange::new(Some(-50.0), Some(1000.0)).unwrap(),
            };
            stoker_metadata::create_sensor(pool, &site(slug), &new_sensor)
                .await
                .expect("create sensor");
        }
        let rule = NewAlertRule::new(
            &format!("{slug} steam pressure high"),
            RuleSelector {
                site: Some(site(slug)),
                sensor: Some(key(SENSORS[0].0)),
                sensor_type: None,
            },
            RuleKind::Threshold {
                agg: Agg::Mean,
                op: Op::Gt,
                threshold: 12.5,
                clear_threshold: 11.0,
                window: Duration::from_secs(60),
                for_: Duration::from_secs(30),
            },
            Severity::Warning,
            true,
        )
        .expect("a valid rule");
        rules.push(
            stoker_metadata::create_alert_rule(pool, &rule)
                .await
                .expect("create rule"),
        );
    }
    let no_data = NewAlertRule::new(
        "spare sensors silent",
        RuleSelector {
            site: None,
            sensor: Some(key(SILENT)),
            sensor_type: None,
        },
        RuleKind::NoData {
            timeout: Duration::from_secs(600),
        },
        Severity::Info,
        false,
    )
    .expect("a valid rule");
    stoker_metadata::create_alert_rule(pool, &no_data)
        .await
        .expect("create rule");
    stoker_metadata::create_api_key(pool, "drill", &[Scope::Read, Scope::Write])
        .await
        .expect("create API key");

    // Alerts with trails: one still firing, one acknowledged, one resolved.
    for (index, rule) in rules.iter().enumerate() {
        let slug = site(SITES[index]);
        let sensor = key(SENSORS[0].0);
        let at = EpochMillis::from_millis(newest - 600_000 + index as i64 * 1000).unwrap();
        let verdict = Verdict {
            rule,
            site: &slug,
            sensor: &sensor,
            at,
            value: Some(13.0 + index as f64),
            message: format!("mean steam pressure {} bar > 12.5 bar", 13.0 + index as f64),
        };
        let alert = store::open_alert(pool, &outbox, &verdict)
            .await
            .expect("open alert")
            .expect("a new alert");
        if index >= 1 {
            store::acknowledge(pool, &outbox, alert.id, "drill-operator")
                .await
                .expect("acknowledge");
        }
        if index >= 2 {
            store::resolve(pool, &outbox, alert.id, "drill-operator")
                .await
                .expect("resolve");
        }
    }

    // The ingestion journal: its writer is internal to ingestion, so rows
    // go in as it writes them.
    let client = pool.get().await.expect("a connection");
    client
        .batch_execute(
            "INSERT INTO ingestion.ingestion_log (minute, source, messages, accepted, rejected)
             SELECT date_trunc('minute', now()) - make_interval(mins => m), s, 60 + m, 58 + m, 2
             FROM generate_series(0, 29) m, unnest(ARRAY['mqtt', 'http']) s;
             INSERT INTO ingestion.rejected_readings
                 (received_at, source, reason, site, sensor, topic, detail, payload_excerpt)
             SELECT now() - make_interval(secs => n), 'mqtt', 'out_of_range', 'drill-a',
                    'b1_flue_temp', 'sites/drill-a/telemetry',
                    'value ' || (2000 + n) || ' outside [-50, 1000]',
                    '{\"b1_flue_temp\": ' || (2000 + n) || '}'
             FROM generate_series(1, 12) n;",
        )
        .await
        .expect("seed the ingestion journal");
    rules
}

/// Seeds readings and their rollup; returns the rollup points written.
async fn seed_influx(influx: &TestInflux, newest: i64) -> u64 {
    let mut batch = LineBatch::with_capacity(1000);
    for (site_index, slug) in SITES.iter().enumerate() {
        for (sensor_index, (sensor, sensor_type, _)) in SENSORS.iter().enumerate() {
            let sensor_type = SensorType::parse(*sensor_type).unwrap();
            for index in 0..READINGS_PER_SENSOR {
                batch.push(
                    &site(slug),
                    &key(sensor),
                    &sensor_type,
                    reading_value(site_index, sensor_index, index),
                    EpochMillis::from_millis(newest - index * STEP_MS).unwrap(),
                );
                if batch.len() == 1000 {
                    influx.influx().write(&batch).await.expect("write readings");
                    batch.clear();
                }
            }
        }
    }
    influx.influx().write(&batch).await.expect("write readings");

    // The rollup policy and its points, as `stoker influx setup` and the
    // rollup job keep them: the backup must carry every policy.
    let influx = influx.influx();
    influx.setup().await.expect("stoker influx setup");
    let oldest = EpochMillis::from_millis(newest - READINGS_PER_SENSOR * STEP_MS).unwrap();
    let through = EpochMillis::from_millis(newest + 60_000).unwrap();
    let rolled = influx.roll_up(oldest, through).await.expect("roll up");
    assert!(rolled.points > 0, "{rolled:?}");
    influx
        .set_rollup_progress(through)
        .await
        .expect("rollup progress");
    rolled.points
}

// ---------------------------------------------------------------- InfluxDB

async fn influx_query(database: &str, query: &str) -> Value {
    let response = reqwest::Client::new()
        .get(format!("{}/query", stoker_testkit::influx_options().url))
        .query(&[("db", database), ("q", query), ("epoch", "ms")])
        .send()
        .await
        .expect("query InfluxDB");
    let body: Value = response.json().await.expect("InfluxDB answers JSON");
    if let Some(error) = body.pointer("/results/0/error") {
        panic!("InfluxDB refused {query}: {error}");
    }
    body
}

/// Every row of every series of a query's first result, with the series'
/// tags rendered `k=v,…` (sorted).
fn series_rows(body: &Value) -> Vec<(String, Vec<Value>)> {
    let mut rows = Vec::new();
    let Some(series) = body.pointer("/results/0/series").and_then(Value::as_array) else {
        return rows;
    };
    for one in series {
        let tags: BTreeMap<String, String> = one
            .get("tags")
            .and_then(Value::as_object)
            .map(|tags| {
                tags.iter()
                    .map(|(k, v)| (k.clone(), v.as_str().unwrap_or_default().to_owned()))
                    .collect()
            })
            .unwrap_or_default();
        let tags = tags
            .iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect::<Vec<_>>()
            .join(",");
        for row in one
            .get("values")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
        {
            rows.push((tags.clone(), row.as_array().cloned().unwrap_or_default()));
        }
    }
    rows
}

/// What the drill compares of an InfluxDB database.
#[derive(Debug, PartialEq)]
struct InfluxContent {
    /// name, duration, shard group duration, default.
    policies: Vec<String>,
    /// `rp.measurement|tags` → points.
    series: BTreeMap<String, usize>,
    /// FNV-1a over every point's `rp.measurement|tags|time|fields…`, sorted.
    checksum: u64,
    points: usize,
}

async fn influx_content(database: &str) -> InfluxContent {
    let policies_body = influx_query(database, "SHOW RETENTION POLICIES").await;
    let mut policies: Vec<String> = series_rows(&policies_body)
        .into_iter()
        .map(|(_, row)| {
            format!(
                "{} {} {} {}",
                row[0],
                row[1],
                row[2],
                row.get(4).cloned().unwrap_or_default()
            )
        })
        .collect();
    policies.sort();
    let measurements: Vec<String> = series_rows(&influx_query(database, "SHOW MEASUREMENTS").await)
        .into_iter()
        .filter_map(|(_, row)| row.first().and_then(Value::as_str).map(str::to_owned))
        .collect();
    let mut lines = Vec::new();
    let mut series = BTreeMap::new();
    let policy_names: Vec<String> = series_rows(&policies_body)
        .into_iter()
        .filter_map(|(_, row)| row.first().and_then(Value::as_str).map(str::to_owned))
        .collect();
    for policy in &policy_names {
        for measurement in &measurements {
            let body = influx_query(
                database,
                &format!("SELECT * FROM \"{policy}\".\"{measurement}\" GROUP BY *"),
            )
            .await;
            for (tags, row) in series_rows(&body) {
                let name = format!("{policy}.{measurement}|{tags}");
                *series.entry(name.clone()).or_insert(0) += 1;
                let fields: Vec<String> = row.iter().map(Value::to_string).collect();
                lines.push(format!("{name}|{}", fields.join("|")));
            }
        }
    }
    lines.sort();
    let mut checksum: u64 = 0xcbf2_9ce4_8422_2325;
    for byte in lines.join("\n").bytes() {
        checksum ^= u64::from(byte);
        checksum = checksum.wrapping_mul(0x0100_0000_01b3);
    }
    InfluxContent {
        policies,
        series,
        checksum,
        points: lines.len(),
    }
}

// ---------------------------------------------------------------- Postgres

/// What the drill compares of the schemas of record.
#[derive(Debug, PartialEq)]
struct PostgresContent {
    /// `schema.table` → (rows, md5 over every row's text, sorted).
    tables: BTreeMap<String, (i64, String)>,
    /// Columns, indexes, constraints, triggers and functions, one line each.
    shape: Vec<String>,
    /// `schema.sequence` → last value.
    sequences: BTreeMap<String, Option<i64>>,
}

async fn postgres_content(url: &str) -> PostgresContent {
    let pool = stoker_postgres::connect(&PostgresOptions::from_url(url)).expect("pool");
    let client = pool.get().await.expect("connect to Postgres");
    let schemas: Vec<String> = SCHEMAS.iter().map(|s| (*s).to_owned()).collect();
    let mut tables = BTreeMap::new();
    for row in client
        .query(
            "SELECT n.nspname, c.relname FROM pg_class c
             JOIN pg_namespace n ON n.oid = c.relnamespace
             WHERE n.nspname = ANY($1) AND c.relkind IN ('r', 'p') ORDER BY 1, 2",
            &[&schemas],
        )
        .await
        .expect("list tables")
    {
        let schema: String = row.get(0);
        let table: String = row.get(1);
        let summary = client
            .query_one(
                &format!(
                    "SELECT count(*), coalesce(md5(string_agg(t::text, '|' ORDER BY t::text)), '')
                     FROM \"{schema}\".\"{table}\" t"
                ),
                &[],
            )
            .await
            .expect("checksum a table");
        tables.insert(
            format!("{schema}.{table}"),
            (summary.get(0), summary.get(1)),
        );
    }
    let mut shape = Vec::new();
    for query in [
        "SELECT table_schema || '.' || table_name || '.' || column_name || ' ' || data_type
             || ' ' || is_nullable || ' ' || coalesce(column_default, '')
         FROM information_schema.columns WHERE table_schema = ANY($1)",
        "SELECT schemaname || ' ' || indexdef FROM pg_indexes WHERE schemaname = ANY($1)",
        "SELECT n.nspname || ' ' || c.conname || ' ' || pg_get_constraintdef(c.oid)
         FROM pg_constraint c JOIN pg_namespace n ON n.oid = c.connamespace
         WHERE n.nspname = ANY($1)",
        "SELECT n.nspname || ' ' || t.tgname || ' ' || pg_get_triggerdef(t.oid)
         FROM pg_trigger t JOIN pg_class c ON c.oid = t.tgrelid
         JOIN pg_namespace n ON n.oid = c.relnamespace
         WHERE n.nspname = ANY($1) AND NOT t.tgisinternal",
        "SELECT n.nspname || ' ' || p.proname || ' ' || md5(p.prosrc)
         FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace
         WHERE n.nspname = ANY($1)",
    ] {
        for row in client.query(query, &[&schemas]).await.expect("read shape") {
            shape.push(row.get::<_, String>(0));
        }
    }
    shape.sort();
    let sequences = client
        .query(
            "SELECT schemaname || '.' || sequencename, last_value FROM pg_sequences
             WHERE schemaname = ANY($1)",
            &[&schemas],
        )
        .await
        .expect("read sequences")
        .iter()
        .map(|row| (row.get(0), row.get(1)))
        .collect();
    PostgresContent {
        tables,
        shape,
        sequences,
    }
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

/// `stoker cache rebuild` on the restored stores: every sensor with data
/// gets its newest reading, a newer cached value is kept, dashboards go.
async fn rebuild_cache(postgres: &RestoredPostgres, influx: &RestoredInflux, newest: i64) {
    let redis = TestRedis::new();
    let cache = redis.cache();
    let sensor_type = SensorType::parse("pressure").unwrap();
    let unit = Unit::parse("bar").unwrap();
    let cached = |value: f64, ts: i64| LatestValue {
        value,
        ts: EpochMillis::from_millis(ts).unwrap(),
        sensor_type: sensor_type.clone(),
        unit: unit.clone(),
    };
    // drill-a: older than InfluxDB's newest (replaced); drill-b: newer
    // (a reading ingestion cached meanwhile: kept).
    let older = cached(-1.0, newest - 3_600_000);
    let newer = cached(99.5, newest + 1_000);
    let (site_a, site_b) = (site(SITES[0]), site(SITES[1]));
    let pressure = key(SENSORS[0].0);
    cache
        .set_latest(&[(&site_a, &pressure, &older), (&site_b, &pressure, &newer)])
        .await
        .expect("prime Redis");
    for slug in SITES {
        cache
            .set_dashboard(&site(slug), "{\"stale\":true}")
            .await
            .expect("prime a dashboard");
    }

    let (ok, output) = run(
        Path::new(BINARY),
        &["cache", "rebuild"],
        &[
            ("DATABASE_URL", postgres.url()),
            ("INFLUX_URL", stoker_testkit::influx_options().url),
            ("INFLUX_BUCKET", influx.name.clone()),
            ("REDIS_URL", stoker_testkit::redis_url()),
            ("REDIS_KEY_PREFIX", redis.prefix().to_owned()),
        ],
    )
    .await;
    assert!(ok, "stoker cache rebuild failed:\n{output}");
    let sensors = SITES.len() * (SENSORS.len() + 1);
    let with_data = SITES.len() * SENSORS.len();
    assert!(
        output.contains(&format!(
            "rebuilt: {} sites, {sensors} sensors: {} refilled (1 kept a newer value already in Redis), {} without data in InfluxDB",
            SITES.len(),
            with_data - 1,
            SITES.len()
        )),
        "{output}"
    );

    for (site_index, slug) in SITES.iter().enumerate() {
        let mut keys: Vec<SensorKey> = SENSORS.iter().map(|(sensor, _, _)| key(sensor)).collect();
        keys.push(key(SILENT));
        let values = cache.latest(&site(slug), &keys).await.expect("read Redis");
        for (sensor_index, value) in values.iter().enumerate() {
            if sensor_index == SENSORS.len() {
                assert_eq!(value, &None, "{slug}: the silent sensor has nothing cached");
                continue;
            }
            let value = value
                .as_ref()
                .unwrap_or_else(|| panic!("{slug}/{}: nothing cached", keys[sensor_index]));
            if site_index == 1 && sensor_index == 0 {
                assert_eq!(value, &newer, "a newer cached value is never replaced");
                continue;
            }
            assert_eq!(
                value.ts.as_millis(),
                newest,
                "{slug}/{}",
                keys[sensor_index]
            );
            let expected = reading_value(site_index, sensor_index, 0);
            assert!(
                (value.value - expected).abs() <= 1e-9 * expected.abs().max(1.0),
                "{slug}/{}: {} cached, {expected} newest",
                keys[sensor_index],
                value.value
            );
            assert_eq!(value.sensor_type.as_str(), SENSORS[sensor_index].1);
            assert_eq!(value.unit.as_str(), SENSORS[sensor_index].2);
        }
        assert_eq!(
            cache.dashboard(&site(slug)).await.expect("read Redis"),
            None,
            "{slug}: the cached dashboard is dropped"
        );
    }
}

#[tokio::test]
async fn cache_rebuild_names_the_store_it_cannot_reach() {
    let postgres = TestPostgres::create().await;
    let _pool = postgres.migrated_pool().await;
    let influx = TestInflux::create().await;
    let influx_url = stoker_testkit::influx_options().url;
    let stores = |redis: &str, bucket: &str| {
        vec![
            ("DATABASE_URL", postgres.url()),
            ("INFLUX_URL", influx_url.clone()),
            ("INFLUX_BUCKET", bucket.to_owned()),
            ("REDIS_URL", redis.to_owned()),
        ]
    };
    let database = influx.influx().database().to_owned();

    let (ok, output) = run(
        Path::new(BINARY),
        &["cache", "rebuild"],
        &stores("redis://127.0.0.1:9", &database),
    )
    .await;
    assert!(!ok, "{output}");
    assert!(
        output.contains("Redis") && output.contains("REDIS_URL"),
        "{output}"
    );

    let missing = unique_name();
    let (ok, output) = run(
        Path::new(BINARY),
        &["cache", "rebuild"],
        &stores(&stoker_testkit::redis_url(), &missing),
    )
    .await;
    assert!(!ok, "{output}");
    assert!(
        output.contains(&missing) && output.contains("INFLUX_BUCKET"),
        "{output}"
    );

    let mut environment = stores(&stoker_testkit::redis_url(), &database);
    environment[0].1 = with_database(&postgres.url(), &unique_name());
    let (ok, output) = run(Path::new(BINARY), &["cache", "rebuild"], &environment).await;
    assert!(!ok, "{output}");
    assert!(
        output.contains("Postgres") && output.contains("DATABASE_URL"),
        "{output}"
    );
}
