//! The InfluxDB connection.

use std::collections::BTreeMap;

use reqwest::{Method, RequestBuilder, StatusCode};
use serde::Deserialize;
use stoker_domain::{EpochMillis, SensorKey, SensorType, SiteSlug, redact_url};

use crate::{Error, InfluxOptions, LineBatch, Result, influxql};

/// Which write API the server speaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Flavor {
    /// InfluxDB 1.x: `/write?db=`.
    V1,
    /// InfluxDB 2.x or 3.x: `/api/v2/write?org=&bucket=`.
    V2,
}

/// A sensor's most recent reading, as InfluxDB has it.
#[derive(Debug, Clone, PartialEq)]
pub struct LatestPoint {
    /// The sensor.
    pub sensor: SensorKey,
    /// Its type tag.
    pub sensor_type: SensorType,
    /// The reading's value.
    pub value: f64,
    /// The reading's timestamp.
    pub timestamp: EpochMillis,
}

/// A connection to one InfluxDB database (1.x) or bucket (2.x/3.x).
/// Cheap to clone: clones share the HTTP connection pool.
#[derive(Clone)]
pub struct Influx {
    http: reqwest::Client,
    base: url::Url,
    pub(crate) options: InfluxOptions,
    version: String,
    pub(crate) flavor: Flavor,
}

impl std::fmt::Debug for Influx {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Influx")
            .field("url", &self.base.as_str())
            .field("database", &self.options.bucket)
            .field("version", &self.version)
            .finish()
    }
}

impl Influx {
    /// Connects: checks the URL, pings the server and learns its version.
    pub async fn connect(options: &InfluxOptions) -> Result<Self> {
        let base = parse_base_url(&options.url)?;
        let http = options
            .client_builder()?
            .build()
            .map_err(|source| Error::Unreachable {
                url: redact_url(&options.url),
                source: source.without_url(),
            })?;
        let version = ping(&http, &base).await?;
        let flavor = if version.starts_with("1.") {
            Flavor::V1
        } else {
            Flavor::V2
        };
        Ok(Self {
            http,
            base,
            options: options.clone(),
            version,
            flavor,
        })
    }

    /// A connection to another database on the same server (tests give
    /// each test its own).
    pub fn with_database(&self, database: &str) -> Self {
        let mut other = self.clone();
        other.options.bucket = database.to_owned();
        other
    }

    /// The server's version, from `X-Influxdb-Version`.
    pub fn version(&self) -> &str {
        &self.version
    }

    /// The write API in use.
    pub fn flavor(&self) -> Flavor {
        self.flavor
    }

    /// The database (1.x) or bucket (2.x/3.x) in use.
    pub fn database(&self) -> &str {
        &self.options.bucket
    }

    /// Pings the server again; returns its version.
    pub async fn ping(&self) -> Result<String> {
        ping(&self.http, &self.base).await
    }

    /// Writes a batch. A batch is all-or-nothing for Stoker's purposes:
    /// on error, write it again (points are idempotent).
    pub async fn write(&self, batch: &LineBatch) -> Result<()> {
        if batch.is_empty() {
            return Ok(());
        }
        self.write_lines(batch.as_str().to_owned(), None).await
    }

    /// Writes line protocol with millisecond timestamps to the database's
    /// default policy, or to `policy` (on 2.x/3.x: bucket
    /// `{bucket}_{policy}`, which setup maps to it).
    pub(crate) async fn write_lines(&self, body: String, policy: Option<&str>) -> Result<()> {
        let request = match self.flavor {
            Flavor::V2 => {
                let bucket = match policy {
                    Some(policy) => format!("{}_{policy}", self.options.bucket),
                    None => self.options.bucket.clone(),
                };
                self.request(Method::POST, "api/v2/write").query(&[
                    ("org", self.options.org.as_str()),
                    ("bucket", bucket.as_str()),
                    ("precision", "ms"),
                ])
            }
            Flavor::V1 => {
                let mut query = vec![("db", self.options.bucket.as_str()), ("precision", "ms")];
                if let Some(policy) = policy {
                    query.push(("rp", policy));
                }
                self.request(Method::POST, "write").query(&query)
            }
        };
        let written = self.send(request.body(body)).await.map(drop);
        match written {
            // The other points are stored; those older than the retention
            // would be deleted at once anyway. Writing the batch again
            // cannot change that, so it must not be retried (ingestion
            // refuses such readings before they get here; a batch spooled
            // for longer than the retention can still meet this).
            Err(Error::Rejected {
                status: 400,
                message,
            }) if message.contains("points beyond retention policy dropped") => {
                tracing::warn!(%message, policy = policy.unwrap_or("default"), "InfluxDB dropped points older than the policy's retention (INFLUX_RAW_RETENTION, INFLUX_ROLLUP_RETENTION)");
                Ok(())
            }
            other => other,
        }
    }

    /// Creates the database if it does not exist (1.x). On 2.x/3.x the
    /// bucket must exist already; this checks that it does.
    pub async fn ensure_database(&self) -> Result<()> {
        match self.flavor {
            Flavor::V1 => {
                let statement = format!(
                    "CREATE DATABASE {}",
                    influxql::identifier(&self.options.bucket)
                );
                self.run_statement(&statement).await
            }
            Flavor::V2 => {
                let request = self
                    .request(Method::GET, "api/v2/buckets")
                    .query(&[("name", self.options.bucket.as_str())]);
                let body = self.send(request).await?;
                let buckets: Buckets = serde_json::from_str(&body)
                    .map_err(|error| Error::Decode(error.to_string()))?;
                if buckets.buckets.is_empty() {
                    return Err(Error::Rejected {
                        status: 404,
                        message: format!(
                            "bucket {:?} does not exist in org {:?}: create it (INFLUX_BUCKET)",
                            self.options.bucket, self.options.org
                        ),
                    });
                }
                Ok(())
            }
        }
    }

    /// Whether the database (1.x) or bucket (2.x/3.x) exists; changes nothing.
    pub async fn database_exists(&self) -> Result<bool> {
        match self.flavor {
            Flavor::V1 => {
                let series = self.query("SHOW DATABASES").await?;
                Ok(series.iter().any(|one| {
                    one.values.iter().any(|row| {
                        row.first().and_then(|name| name.as_str())
                            == Some(self.options.bucket.as_str())
                    })
                }))
            }
            Flavor::V2 => match self.ensure_database().await {
                Ok(()) => Ok(true),
                Err(Error::Rejected { status: 404, .. }) => Ok(false),
                Err(error) => Err(error),
            },
        }
    }

    /// Drops the database (1.x only; used by tests to leave nothing behind).
    pub async fn drop_database(&self) -> Result<()> {
        let statement = format!(
            "DROP DATABASE {}",
            influxql::identifier(&self.options.bucket)
        );
        self.run_statement(&statement).await
    }

    /// The last reading of every sensor of `site`.
    pub async fn latest_per_sensor(&self, site: &SiteSlug) -> Result<Vec<LatestPoint>> {
        let series = self.query(&influxql::latest_per_sensor(site)).await?;
        let mut points = Vec::with_capacity(series.len());
        for one in series {
            let (Some(sensor), Some(sensor_type)) = (one.tags.get("sensor"), one.tags.get("type"))
            else {
                continue;
            };
            // Tags written by someone else than Stoker may not parse: skip them.
            let (Ok(sensor), Ok(sensor_type)) = (
                SensorKey::parse(sensor.as_str()),
                SensorType::parse(sensor_type.as_str()),
            ) else {
                continue;
            };
            if let Some((timestamp, value)) = one.rows().next_back() {
                points.push(LatestPoint {
                    sensor,
                    sensor_type,
                    value,
                    timestamp,
                });
            }
        }
        Ok(points)
    }

    /// How many readings a site has in InfluxDB, over all time.
    pub async fn count_readings(&self, site: &SiteSlug) -> Result<u64> {
        let series = self.query(&influxql::count_readings(site)).await?;
        Ok(series
            .iter()
            .flat_map(|one| one.values.iter())
            .filter_map(|row| row.get(1).and_then(serde_json::Value::as_u64))
            .sum())
    }

    /// One sensor's raw readings in `[start, end)`, oldest first.
    pub async fn readings(
        &self,
        site: &SiteSlug,
        sensor: &SensorKey,
        start: EpochMillis,
        end: EpochMillis,
    ) -> Result<Vec<(EpochMillis, f64)>> {
        let series = self
            .query(&influxql::readings(site, sensor, start, end))
            .await?;
        Ok(series.iter().flat_map(Series::rows).collect())
    }

    /// One sensor's readings in `[start, end)` summed up by `aggregate` per
    /// `every` bucket (aligned to the epoch), oldest first; buckets without
    /// readings are left out.
    pub async fn history(
        &self,
        site: &SiteSlug,
        sensor: &SensorKey,
        start: EpochMillis,
        end: EpochMillis,
        every: std::time::Duration,
        aggregate: crate::Aggregate,
    ) -> Result<Vec<(EpochMillis, f64)>> {
        let every_ms = u64::try_from(every.as_millis()).unwrap_or(u64::MAX);
        let series = self
            .query(&influxql::history(
                site, sensor, start, end, every_ms, aggregate,
            ))
            .await?;
        Ok(series.iter().flat_map(Series::rows).collect())
    }

    /// Per-bucket statistics of every series `filter` selects over
    /// `[start, end)`, in `bucket_ms` buckets aligned to the epoch (see
    /// [`BucketStats`]); empty buckets are left out, and series without a
    /// reading in the range are absent.
    pub async fn bucket_stats(
        &self,
        filter: &crate::SeriesFilter,
        start: EpochMillis,
        end: EpochMillis,
        bucket_ms: u64,
        columns: crate::Columns,
    ) -> Result<Vec<SeriesBuckets>> {
        let series = self
            .query(&influxql::bucket_stats(
                filter, start, end, bucket_ms, columns,
            ))
            .await?;
        series.into_iter().map(SeriesBuckets::from_series).collect()
    }

    /// Runs a read query built by `influxql` and returns its series.
    pub(crate) async fn query(&self, query: &str) -> Result<Vec<Series>> {
        let request = self.request(Method::GET, "query").query(&[
            ("db", self.options.bucket.as_str()),
            ("q", query),
            ("epoch", "ms"),
        ]);
        let body = self.send(request).await?;
        let response: QueryResponse =
            serde_json::from_str(&body).map_err(|error| Error::Decode(error.to_string()))?;
        if let Some(message) = response.error {
            return Err(Error::Query { message });
        }
        let mut series = Vec::new();
        for result in response.results {
            if let Some(message) = result.error {
                return Err(Error::Query { message });
            }
            series.extend(result.series);
        }
        Ok(series)
    }

    /// Runs a statement that changes the server (1.x wants POST for those).
    pub(crate) async fn run_statement(&self, statement: &str) -> Result<()> {
        let request = self
            .request(Method::POST, "query")
            .form(&[("q", statement)]);
        let body = self.send(request).await?;
        let response: QueryResponse =
            serde_json::from_str(&body).map_err(|error| Error::Decode(error.to_string()))?;
        let message = response
            .error
            .or_else(|| response.results.into_iter().find_map(|result| result.error));
        match message {
            Some(message) => Err(Error::Query { message }),
            None => Ok(()),
        }
    }

    pub(crate) fn request(&self, method: Method, path: &str) -> RequestBuilder {
        let url = self.base.join(path).unwrap_or_else(|_| self.base.clone());
        let mut request = self.http.request(method, url);
        let token = self.options.token.expose();
        if !token.is_empty() {
            request = match (self.flavor, token.split_once(':')) {
                // 1.x before 1.8 knows no token header: send user and password.
                (Flavor::V1, Some((user, password))) => {
                    request.query(&[("u", user), ("p", password)])
                }
                _ => request.header("Authorization", format!("Token {token}")),
            };
        }
        request
    }

    pub(crate) async fn send(&self, request: RequestBuilder) -> Result<String> {
        let response = request.send().await.map_err(|source| {
            if source.is_connect() {
                Error::Unreachable {
                    url: redact_url(self.base.as_str()),
                    source: source.without_url(),
                }
            } else {
                Error::Unavailable {
                    status: None,
                    message: source.without_url().to_string(),
                }
            }
        })?;
        let status = response.status();
        let body = response.text().await.map_err(|error| Error::Unavailable {
            status: Some(status.as_u16()),
            message: error.without_url().to_string(),
        })?;
        if status.is_success() {
            Ok(body)
        } else {
            Err(status_error(status, body))
        }
    }
}

fn status_error(status: StatusCode, body: String) -> Error {
    // InfluxDB explains errors as {"error": "..."}; keep the raw text otherwise.
    let message = serde_json::from_str::<ErrorBody>(&body)
        .map(|parsed| parsed.error.or(parsed.message).unwrap_or_default())
        .unwrap_or(body);
    let message: String = message.chars().take(500).collect();
    if status.is_client_error() && status != StatusCode::TOO_MANY_REQUESTS {
        Error::Rejected {
            status: status.as_u16(),
            message,
        }
    } else {
        Error::Unavailable {
            status: Some(status.as_u16()),
            message,
        }
    }
}

fn parse_base_url(text: &str) -> Result<url::Url> {
    let invalid = |reason: String| Error::InvalidUrl {
        url: redact_url(text),
        reason,
    };
    let mut base = url::Url::parse(text).map_err(|error| invalid(error.to_string()))?;
    if !matches!(base.scheme(), "http" | "https") {
        return Err(invalid("the scheme must be http or https".into()));
    }
    if !base.path().ends_with('/') {
        let path = format!("{}/", base.path());
        base.set_path(&path);
    }
    Ok(base)
}

async fn ping(http: &reqwest::Client, base: &url::Url) -> Result<String> {
    let url = base.join("ping").map_err(|error| Error::InvalidUrl {
        url: redact_url(base.as_str()),
        reason: error.to_string(),
    })?;
    let response = http
        .get(url)
        .send()
        .await
        .map_err(|source| Error::Unreachable {
            url: redact_url(base.as_str()),
            source: source.without_url(),
        })?;
    response
        .headers()
        .get("x-influxdb-version")
        .and_then(|value| value.to_str().ok())
        .map(str::to_owned)
        .ok_or_else(|| Error::NotInflux {
            url: redact_url(base.as_str()),
        })
}

#[derive(Debug, Deserialize)]
struct ErrorBody {
    error: Option<String>,
    message: Option<String>,
}

#[derive(Debug, Deserialize)]
struct Buckets {
    #[serde(default)]
    buckets: Vec<serde_json::Value>,
}

#[derive(Debug, Deserialize)]
struct QueryResponse {
    #[serde(default)]
    results: Vec<StatementResult>,
    error: Option<String>,
}

#[derive(Debug, Deserialize)]
struct StatementResult {
    #[serde(default)]
    series: Vec<Series>,
    error: Option<String>,
}

/// The readings of one bucket of one series, as InfluxDB sums them up.
/// Statistics the query did not ask for ([`crate::Columns`]) are NaN.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct BucketStats {
    /// The bucket's start.
    pub start: EpochMillis,
    /// Readings in the bucket (at least 1).
    pub count: u64,
    /// Their sum.
    pub sum: f64,
    /// The lowest.
    pub min: f64,
    /// The highest.
    pub max: f64,
    /// The oldest.
    pub first: f64,
    /// The newest.
    pub last: f64,
    /// Sample standard deviation; 0 for a single reading.
    pub stddev: f64,
}

/// One series' buckets, oldest first.
#[derive(Debug, Clone, PartialEq)]
pub struct SeriesBuckets {
    /// The `site` tag.
    pub site: String,
    /// The `sensor` tag.
    pub sensor: String,
    /// Its non-empty buckets, oldest first.
    pub buckets: Vec<BucketStats>,
}

impl SeriesBuckets {
    pub(crate) fn from_series(series: Series) -> Result<Self> {
        let tag = |name: &str| series.tags.get(name).cloned().unwrap_or_default();
        let (site, sensor) = (tag("site"), tag("sensor"));
        let malformed = |row: &[serde_json::Value]| {
            Error::Decode(format!(
                "bucket row of {site}/{sensor} does not match the columns {:?}: {row:?}",
                series.columns
            ))
        };
        let position = |name: &str| series.columns.iter().position(|column| column == name);
        let at = [
            position("count"),
            position("sum"),
            position("min"),
            position("max"),
            position("first"),
            position("last"),
            position("stddev"),
        ];
        let mut buckets = Vec::with_capacity(series.values.len());
        for row in &series.values {
            // A column not asked for is NaN; one asked for must be a number
            // (stddev excepted: null for a single reading).
            let number = |slot: usize| match at[slot] {
                None => Some(f64::NAN),
                Some(index) => row.get(index).and_then(serde_json::Value::as_f64),
            };
            let start = row
                .first()
                .and_then(serde_json::Value::as_i64)
                .and_then(|millis| EpochMillis::from_millis(millis).ok())
                .ok_or_else(|| malformed(row))?;
            let count = at[0]
                .and_then(|index| row.get(index))
                .and_then(serde_json::Value::as_u64)
                .ok_or_else(|| malformed(row))?;
            if count == 0 {
                continue;
            }
            let (Some(sum), Some(min), Some(max), Some(first), Some(last)) =
                (number(1), number(2), number(3), number(4), number(5))
            else {
                return Err(malformed(row));
            };
            buckets.push(BucketStats {
                start,
                count,
                sum,
                min,
                max,
                first,
                last,
                // InfluxDB answers null for a single reading.
                stddev: number(6).unwrap_or(0.0),
            });
        }
        Ok(Self {
            site,
            sensor,
            buckets,
        })
    }
}

/// One series of a query answer: a tag set and rows of `[time, value]`.
#[derive(Debug, Deserialize)]
pub(crate) struct Series {
    #[serde(default)]
    pub(crate) tags: BTreeMap<String, String>,
    #[serde(default)]
    pub(crate) columns: Vec<String>,
    #[serde(default)]
    pub(crate) values: Vec<Vec<serde_json::Value>>,
}

impl Series {
    /// Rows as (timestamp, value), skipping nulls (empty GROUP BY buckets).
    fn rows(&self) -> impl DoubleEndedIterator<Item = (EpochMillis, f64)> + '_ {
        self.values.iter().filter_map(|row| {
            let millis = row.first()?.as_i64()?;
            let value = row.get(1)?.as_f64()?;
            Some((EpochMillis::from_millis(millis).ok()?, value))
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_must_be_http() {
        assert!(parse_base_url("http://127.0.0.1:8086").is_ok());
        assert_eq!(
            parse_base_url("https://influx.example/prefix")
                .unwrap()
                .as_str(),
            "https://influx.example/prefix/"
        );
        let error = parse_base_url("127.0.0.1:8086").unwrap_err().to_string();
        assert!(error.contains("INFLUX_URL"), "{error}");
        assert!(parse_base_url("ftp://host").is_err());
    }

    #[test]
    fn client_errors_are_permanent_server_errors_transient() {
        assert!(
            !status_error(StatusCode::BAD_REQUEST, "{\"error\":\"bad\"}".into()).is_transient()
        );
        assert!(status_error(StatusCode::SERVICE_UNAVAILABLE, String::new()).is_transient());
        assert!(status_error(StatusCode::TOO_MANY_REQUESTS, String::new()).is_transient());
        let message = status_error(
            StatusCode::NOT_FOUND,
            "{\"error\":\"database not found\"}".into(),
        );
        assert_eq!(
            message.to_string(),
            "InfluxDB refused the request (404): database not found"
        );
    }
}
