//! A bare InfluxDB 1.x HTTP client: pre-encoded line-protocol bodies
//! posted to `/write`, and the benchmark's fixed InfluxQL queries on
//! `/query`. Kept apart from `stoker-timeseries` on purpose: the raw limit
//! must not depend on the code under test.

use std::collections::HashMap;
use std::time::Duration;

use anyhow::{Context, anyhow};
use bytes::Bytes;
use serde_json::Value;

/// One series of a query result.
#[derive(Debug, Clone, Default)]
pub struct Series {
    /// The series' tags (with `GROUP BY`).
    pub tags: HashMap<String, String>,
    /// Rows; the first column is the time (epoch ms).
    pub values: Vec<Vec<Value>>,
}

/// A connection to one InfluxDB server.
#[derive(Debug, Clone)]
pub struct InfluxHttp {
    http: reqwest::Client,
    base: String,
}

impl InfluxHttp {
    /// A client for the server at `base` (e.g. `http://127.0.0.1:8086`).
    pub fn new(base: &str) -> anyhow::Result<Self> {
        let http = reqwest::Client::builder()
            .timeout(Duration::from_secs(30))
            .pool_max_idle_per_host(16)
            .build()?;
        Ok(Self {
            http,
            base: base.trim_end_matches('/').to_owned(),
        })
    }

    /// Posts one body of line protocol (millisecond timestamps) to `database`.
    pub async fn write(&self, database: &str, body: Bytes) -> anyhow::Result<()> {
        self.write_in(database, body, "ms").await
    }

    /// Posts one body of line protocol with timestamps in `precision`
    /// (`ns`, `u`, `ms`, `s`…) to `database`.
    pub async fn write_in(
        &self,
        database: &str,
        body: Bytes,
        precision: &str,
    ) -> anyhow::Result<()> {
        let response = self
            .http
            .post(format!("{}/write", self.base))
            .query(&[("db", database), ("precision", precision)])
            .body(body)
            .send()
            .await
            .context("POST /write")?;
        let status = response.status();
        if status.is_success() {
            Ok(())
        } else {
            let text = response.text().await.unwrap_or_default();
            let excerpt: String = text.chars().take(300).collect();
            Err(anyhow!("POST /write answered {status}: {excerpt}"))
        }
    }

    /// Runs a read query on `database`, timestamps as epoch milliseconds.
    pub async fn query(&self, database: &str, query: &str) -> anyhow::Result<Vec<Series>> {
        let response = self
            .http
            .get(format!("{}/query", self.base))
            .query(&[("db", database), ("q", query), ("epoch", "ms")])
            .send()
            .await
            .context("GET /query")?;
        let status = response.status();
        let body: Value = response.json().await.context("decoding /query")?;
        if !status.is_success() {
            return Err(anyhow!("GET /query answered {status}: {body}"));
        }
        if let Some(error) = body.get("error") {
            return Err(anyhow!("query {query:?} failed: {error}"));
        }
        let mut series = Vec::new();
        for result in body["results"].as_array().into_iter().flatten() {
            if let Some(error) = result.get("error") {
                return Err(anyhow!("query {query:?} failed: {error}"));
            }
            for one in result["series"].as_array().into_iter().flatten() {
                let tags = one["tags"]
                    .as_object()
                    .map(|tags| {
                        tags.iter()
                            .map(|(key, value)| {
                                (key.clone(), value.as_str().unwrap_or_default().to_owned())
                            })
                            .collect()
                    })
                    .unwrap_or_default();
                let values = one["values"]
                    .as_array()
                    .map(|rows| {
                        rows.iter()
                            .filter_map(|row| row.as_array().cloned())
                            .collect()
                    })
                    .unwrap_or_default();
                series.push(Series { tags, values });
            }
        }
        Ok(series)
    }

    /// `SELECT count(value) FROM readings WHERE {condition}`: the number of
    /// stored readings, summed over the series the answer holds.
    pub async fn count_readings(&self, database: &str, condition: &str) -> anyhow::Result<u64> {
        let query = format!("SELECT count(value) FROM readings WHERE {condition}");
        let series = self.query(database, &query).await?;
        Ok(series
            .iter()
            .flat_map(|one| one.values.iter())
            .filter_map(|row| row.get(1).and_then(Value::as_u64))
            .sum())
    }
}

impl InfluxHttp {
    /// The values of every field of `measurement` in `database` (points ×
    /// fields), counted by InfluxDB.
    pub async fn count_fields(&self, database: &str, measurement: &str) -> anyhow::Result<u64> {
        let query = format!("SELECT count(*) FROM \"{measurement}\"");
        let series = self.query(database, &query).await?;
        Ok(series
            .iter()
            .flat_map(|one| one.values.iter())
            .flat_map(|row| row.iter().skip(1).filter_map(Value::as_u64))
            .sum())
    }
}

/// The version the InfluxDB server at `url` reports on `/ping`
/// (`unreachable`, or `unknown` without the header).
pub async fn server_version(url: &str) -> String {
    let Ok(response) = reqwest::get(format!("{}/ping", url.trim_end_matches('/'))).await else {
        return "unreachable".into();
    };
    response
        .headers()
        .get("X-Influxdb-Version")
        .and_then(|value| value.to_str().ok())
        .unwrap_or("unknown")
        .to_owned()
}
