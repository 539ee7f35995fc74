//! Retention setup ([`Influx::setup`]): the raw readings' retention and
//! the rollup's policy (1.x), or the buckets, retention rules and DBRP
//! mapping that give 2.x/3.x the same InfluxQL view.

use std::time::Duration;

use reqwest::Method;
use serde::Deserialize;

use super::ROLLUP_POLICY;
use crate::influxql::identifier;
use crate::{Error, Flavor, Influx, Result};

/// What [`Influx::setup`] found and made.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SetupReport {
    /// The database (1.x) or bucket (2.x/3.x).
    pub database: String,
    /// The raw readings' retention policy (1.x) or bucket.
    pub raw_policy: String,
    /// How long raw readings are kept; `None`: forever.
    pub raw_retention: Option<Duration>,
    /// The rollup's retention policy (1.x) or bucket.
    pub rollup_policy: String,
    /// How long the rollup is kept; `None`: forever.
    pub rollup_retention: Option<Duration>,
}

/// InfluxDB 1.x's smallest retention.
const SHORTEST_RETENTION: Duration = Duration::from_secs(3_600);

impl Influx {
    /// Prepares the database for Stoker, idempotently: creates it (1.x),
    /// sets the raw readings' retention and creates or updates the
    /// rollup's retention policy (1.x) or bucket and DBRP mapping
    /// (2.x/3.x).
    pub async fn setup(&self) -> Result<SetupReport> {
        let raw = retention(self.options.raw_retention, "INFLUX_RAW_RETENTION")?;
        let rollup = retention(self.options.rollup_retention, "INFLUX_ROLLUP_RETENTION")?;
        match self.flavor {
            Flavor::V1 => self.setup_v1(raw, rollup).await,
            Flavor::V2 => self.setup_v2(raw, rollup).await,
        }
    }

    async fn setup_v1(
        &self,
        raw: Option<Duration>,
        rollup: Option<Duration>,
    ) -> Result<SetupReport> {
        self.ensure_database().await?;
        let database = identifier(&self.options.bucket);
        let policies = self
            .query(&format!("SHOW RETENTION POLICIES ON {database}"))
            .await?;
        let mut default_policy = None;
        let mut rollup_exists = false;
        for series in &policies {
            let name_at = series.columns.iter().position(|column| column == "name");
            let default_at = series.columns.iter().position(|column| column == "default");
            for row in &series.values {
                let name = name_at
                    .and_then(|at| row.get(at))
                    .and_then(serde_json::Value::as_str);
                if name == Some(ROLLUP_POLICY) {
                    rollup_exists = true;
                }
                let is_default = default_at
                    .and_then(|at| row.get(at))
                    .and_then(serde_json::Value::as_bool)
                    == Some(true);
                if is_default {
                    default_policy = name.map(str::to_owned);
                }
            }
        }
        let raw_policy = default_policy.unwrap_or_else(|| "autogen".to_owned());
        let raw_exists = policies.iter().any(|series| !series.values.is_empty());
        self.run_statement(&format!(
            "{} DEFAULT",
            policy_statement(&raw_policy, &database, raw, raw_exists)
        ))
        .await?;
        self.run_statement(&policy_statement(
            ROLLUP_POLICY,
            &database,
            rollup,
            rollup_exists,
        ))
        .await?;
        Ok(SetupReport {
            database: self.options.bucket.clone(),
            raw_policy,
            raw_retention: raw,
            rollup_policy: ROLLUP_POLICY.to_owned(),
            rollup_retention: rollup,
        })
    }

    async fn setup_v2(
        &self,
        raw: Option<Duration>,
        rollup: Option<Duration>,
    ) -> Result<SetupReport> {
        let Some(bucket) = self.find_bucket(&self.options.bucket).await? else {
            return Err(Error::Rejected {
                status: 404,
                message: format!(
                    "bucket {:?} does not exist in org {:?}: create it (INFLUX_BUCKET)",
                    self.options.bucket, self.options.org
                ),
            });
        };
        self.set_bucket_retention(&bucket.id, raw).await?;
        let rollup_name = self.rollup_bucket();
        let rollup_bucket = match self.find_bucket(&rollup_name).await? {
            Some(found) => {
                self.set_bucket_retention(&found.id, rollup).await?;
                found
            }
            None => {
                let body = serde_json::json!({
                    "orgID": bucket.org_id,
                    "name": rollup_name,
                    "retentionRules": retention_rules(rollup),
                });
                let request = self.request(Method::POST, "api/v2/buckets").json(&body);
                let created = self.send(request).await?;
                serde_json::from_str(&created).map_err(|error| Error::Decode(error.to_string()))?
            }
        };
        let request = self.request(Method::GET, "api/v2/dbrps").query(&[
            ("orgID", bucket.org_id.as_str()),
            ("db", self.options.bucket.as_str()),
            ("rp", ROLLUP_POLICY),
        ]);
        let mappings: Dbrps = serde_json::from_str(&self.send(request).await?)
            .map_err(|error| Error::Decode(error.to_string()))?;
        if mappings.content.is_empty() {
            let body = serde_json::json!({
                "orgID": bucket.org_id,
                "bucketID": rollup_bucket.id,
                "database": self.options.bucket,
                "retention_policy": ROLLUP_POLICY,
                "default": false,
            });
            let request = self.request(Method::POST, "api/v2/dbrps").json(&body);
            self.send(request).await?;
        }
        Ok(SetupReport {
            database: self.options.bucket.clone(),
            raw_policy: self.options.bucket.clone(),
            raw_retention: raw,
            rollup_policy: rollup_name,
            rollup_retention: rollup,
        })
    }

    async fn find_bucket(&self, name: &str) -> Result<Option<Bucket>> {
        let request = self
            .request(Method::GET, "api/v2/buckets")
            .query(&[("name", name), ("org", self.options.org.as_str())]);
        let body = self.send(request).await?;
        let found: BucketList =
            serde_json::from_str(&body).map_err(|error| Error::Decode(error.to_string()))?;
        Ok(found.buckets.into_iter().next())
    }

    async fn set_bucket_retention(&self, id: &str, keep: Option<Duration>) -> Result<()> {
        let body = serde_json::json!({ "retentionRules": retention_rules(keep) });
        let request = self
            .request(Method::PATCH, &format!("api/v2/buckets/{id}"))
            .json(&body);
        self.send(request).await.map(drop)
    }

    /// The 2.x/3.x bucket that holds the rollup (`write_lines` writes
    /// there for policy [`ROLLUP_POLICY`]).
    fn rollup_bucket(&self) -> String {
        format!("{}_{ROLLUP_POLICY}", self.options.bucket)
    }

    /// How long raw readings are kept, as configured; `None`: forever.
    pub fn raw_retention(&self) -> Option<Duration> {
        Some(self.options.raw_retention).filter(|keep| !keep.is_zero())
    }
}

/// InfluxDB's retention for a configured duration: `None` is forever.
fn retention(keep: Duration, variable: &str) -> Result<Option<Duration>> {
    if keep.is_zero() {
        return Ok(None);
    }
    if keep < SHORTEST_RETENTION {
        return Err(Error::Rejected {
            status: 400,
            message: format!(
                "{variable} is {keep:?}: InfluxDB keeps data at least 1 hour (or 0s for forever)"
            ),
        });
    }
    Ok(Some(keep))
}

/// `CREATE` (or, when it `exists`, `ALTER`) `RETENTION POLICY` keeping
/// data `keep`, with InfluxDB's own default shard durations (1 h under 2
/// days, 1 day up to 6 months, 7 days beyond). `database` is quoted.
fn policy_statement(name: &str, database: &str, keep: Option<Duration>, exists: bool) -> String {
    let shard = match keep.map(|keep| keep.as_secs()) {
        Some(secs) if secs < 2 * 86_400 => 3_600,
        Some(secs) if secs <= 180 * 86_400 => 86_400,
        _ => 7 * 86_400,
    };
    let duration = keep.map_or_else(|| "INF".to_owned(), |keep| format!("{}s", keep.as_secs()));
    let (verb, replication) = if exists {
        ("ALTER", "")
    } else {
        ("CREATE", " REPLICATION 1")
    };
    format!(
        "{verb} RETENTION POLICY {} ON {database} DURATION {duration}{replication} SHARD DURATION {shard}s",
        identifier(name)
    )
}

fn retention_rules(keep: Option<Duration>) -> serde_json::Value {
    match keep {
        None => serde_json::json!([]),
        Some(keep) => serde_json::json!([{ "type": "expire", "everySeconds": keep.as_secs() }]),
    }
}

#[derive(Debug, Deserialize)]
struct BucketList {
    #[serde(default)]
    buckets: Vec<Bucket>,
}

#[derive(Debug, Deserialize)]
struct Bucket {
    id: String,
    #[serde(rename = "orgID")]
    org_id: String,
}

#[derive(Debug, Deserialize)]
struct Dbrps {
    #[serde(default)]
    content: Vec<serde_json::Value>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn policies_get_influxdbs_own_shard_durations() {
        assert_eq!(
            policy_statement(
                "autogen",
                "\"db\"",
                Some(Duration::from_secs(30 * 86_400)),
                true
            ),
            "ALTER RETENTION POLICY \"autogen\" ON \"db\" DURATION 2592000s SHARD DURATION 86400s"
        );
        assert_eq!(
            policy_statement("rollup", "\"db\"", None, false),
            "CREATE RETENTION POLICY \"rollup\" ON \"db\" DURATION INF REPLICATION 1 SHARD DURATION 604800s"
        );
        assert!(retention(Duration::from_secs(60), "X").is_err());
        assert_eq!(retention(Duration::ZERO, "X").unwrap(), None);
    }
}
