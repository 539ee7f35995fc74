//! What the drill compares: every table (rows and checksums, shape,
//! sequences) and every series (points and a checksum over every point).

use serde_json::Value;
use std::collections::BTreeMap;
use stoker_postgres::PostgresOptions;

use super::*;

// ---------------------------------------------------------------- InfluxDB
pub(crate) async fn influx_query(database: &str, query: &str) -> Value {
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
pub(crate) fn series_rows(body: &Value) -> Vec<(String, Vec<Value>)> {
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
pub(crate) struct InfluxContent {
    /// name, duration, shard group duration, default.
    pub(crate) policies: Vec<String>,
    /// `rp.measurement|tags` → points.
    pub(crate) series: BTreeMap<String, usize>,
    /// FNV-1a over every point's `rp.measurement|tags|time|fields…`, sorted.
    pub(crate) checksum: u64,
    pub(crate) points: usize,
}

pub(crate) async fn influx_content(database: &str) -> InfluxContent {
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
pub(crate) struct PostgresContent {
    /// `schema.table` → (rows, md5 over every row's text, sorted).
    pub(crate) tables: BTreeMap<String, (i64, String)>,
    /// Columns, indexes, constraints, triggers and functions, one line each.
    pub(crate) shape: Vec<String>,
    /// `schema.sequence` → last value.
    pub(crate) sequences: BTreeMap<String, Option<i64>>,
}

pub(crate) async fn postgres_content(url: &str) -> PostgresContent {
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
