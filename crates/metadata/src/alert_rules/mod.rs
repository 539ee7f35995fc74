//! Alert rules: the model (`model`) and its repository functions.
//!
//! A rule is one row of `metadata.alert_rules` with an explicit set of
//! columns per kind (no JSON blob); the table's CHECKs require each kind's
//! columns and forbid the others', and repeat the hysteresis rules.

mod model;

use std::time::Duration;

use deadpool_postgres::Pool;
use stoker_domain::{SensorKey, SensorType, SiteSlug};
use tokio_postgres::Row;
use tokio_postgres::types::{FromSql, ToSql};
use uuid::Uuid;

pub use model::{Agg, AlertRule, NewAlertRule, Op, RuleDraft, RuleKind, RuleSelector, Severity};

use crate::{Error, Page, Result, fetch_limit, is_foreign_key_violation};

/// Which rules a list returns.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RuleFilter {
    /// Only the rules scoped to this site (not the site-less rules that
    /// may match its sensors by key or type).
    pub site: Option<SiteSlug>,
    /// Only enabled (`true`) or disabled (`false`) rules.
    pub enabled: Option<bool>,
}

const COLUMNS: &str = "r.id, r.name, s.slug AS site, r.sensor_key, r.sensor_type, r.kind, \
                       r.severity, r.enabled, r.agg, r.op, r.threshold, r.clear_threshold, \
                       r.window_ms, r.for_ms, r.rate_per_min, r.clear_rate_per_min, \
                       r.timeout_ms, r.baseline_ms, r.z, r.clear_z, r.version, r.created_at, \
                       r.updated_at";

/// The columns a rule's definition sets, in the order of the statements'
/// parameters (after the id, or the id and the expected version).
const DEFINITION: &str = "name, site_id, sensor_key, sensor_type, kind, severity, enabled, agg, \
                          op, threshold, clear_threshold, window_ms, for_ms, rate_per_min, \
                          clear_rate_per_min, timeout_ms, baseline_ms, z, clear_z";

/// A rule's definition as column values.
struct Columns<'a> {
    name: &'a str,
    site: Option<&'a str>,
    sensor_key: Option<&'a str>,
    sensor_type: Option<&'a str>,
    kind: &'static str,
    severity: &'static str,
    enabled: bool,
    agg: Option<&'static str>,
    op: Option<&'static str>,
    threshold: Option<f64>,
    clear_threshold: Option<f64>,
    window_ms: Option<i64>,
    for_ms: Option<i64>,
    rate_per_min: Option<f64>,
    clear_rate_per_min: Option<f64>,
    timeout_ms: Option<i64>,
    baseline_ms: Option<i64>,
    z: Option<f64>,
    clear_z: Option<f64>,
}

/// Milliseconds of a duration a [`NewAlertRule`] has validated.
fn ms(duration: Duration) -> Result<i64> {
    model::millis("duration", duration).map_err(Error::from)
}

impl<'a> Columns<'a> {
    fn of(rule: &'a NewAlertRule) -> Result<Self> {
        let selector = rule.selector();
        let mut columns = Columns {
            name: rule.name(),
            site: selector.site.as_ref().map(SiteSlug::as_str),
            sensor_key: selector.sensor.as_ref().map(SensorKey::as_str),
            sensor_type: selector.sensor_type.as_ref().map(SensorType::as_str),
            kind: rule.kind().name(),
            severity: rule.severity().as_str(),
            enabled: rule.enabled(),
            agg: None,
            op: None,
            threshold: None,
            clear_threshold: None,
            window_ms: None,
            for_ms: None,
            rate_per_min: None,
            clear_rate_per_min: None,
            timeout_ms: None,
            baseline_ms: None,
            z: None,
            clear_z: None,
        };
        match *rule.kind() {
            RuleKind::Threshold {
                agg,
                op,
                threshold,
                clear_threshold,
                window,
                for_,
            } => {
                columns.agg = Some(agg.as_str());
                columns.op = Some(op.as_str());
                columns.threshold = Some(threshold);
                columns.clear_threshold = Some(clear_threshold);
                columns.window_ms = Some(ms(window)?);
                columns.for_ms = Some(ms(for_)?);
            }
            RuleKind::RateOfChange {
                op,
                rate_per_min,
                clear_rate_per_min,
                window,
            } => {
                columns.op = Some(op.as_str());
                columns.rate_per_min = Some(rate_per_min);
                columns.clear_rate_per_min = Some(clear_rate_per_min);
                columns.window_ms = Some(ms(window)?);
            }
            RuleKind::NoData { timeout } => columns.timeout_ms = Some(ms(timeout)?),
            RuleKind::Anomaly {
                window,
                baseline,
                z,
                clear_z,
            } => {
                columns.window_ms = Some(ms(window)?);
                columns.baseline_ms = Some(ms(baseline)?);
                columns.z = Some(z);
                columns.clear_z = Some(clear_z);
            }
        }
        Ok(columns)
    }

    /// The values in [`DEFINITION`]'s order; `site` stands for `site_id`
    /// (the statements look the id up by slug).
    fn params(&self) -> [&(dyn ToSql + Sync); 19] {
        [
            &self.name,
            &self.site,
            &self.sensor_key,
            &self.sensor_type,
            &self.kind,
            &self.severity,
            &self.enabled,
            &self.agg,
            &self.op,
            &self.threshold,
            &self.clear_threshold,
            &self.window_ms,
            &self.for_ms,
            &self.rate_per_min,
            &self.clear_rate_per_min,
            &self.timeout_ms,
            &self.baseline_ms,
            &self.z,
            &self.clear_z,
        ]
    }
}

fn invalid(reason: impl Into<String>) -> Error {
    Error::InvalidRow {
        what: "alert rule",
        reason: reason.into(),
    }
}

/// A column that the row's kind requires.
fn required<'a, T: FromSql<'a>>(row: &'a Row, column: &str) -> Result<T> {
    row.try_get::<_, Option<T>>(column)?
        .ok_or_else(|| invalid(format!("{column} is missing")))
}

fn duration(row: &Row, column: &str) -> Result<Duration> {
    let millis: i64 = required(row, column)?;
    u64::try_from(millis)
        .map(Duration::from_millis)
        .map_err(|_| invalid(format!("{column} is negative")))
}

fn from_row(row: &Row) -> Result<AlertRule> {
    let field = |(_, message): (&'static str, String)| invalid(message);
    let kind_name: String = row.try_get("kind")?;
    let kind = match kind_name.as_str() {
        "threshold" => RuleKind::Threshold {
            agg: Agg::parse(required(row, "agg")?).map_err(field)?,
            op: Op::parse(required(row, "op")?).map_err(field)?,
            threshold: required(row, "threshold")?,
            clear_threshold: required(row, "clear_threshold")?,
            window: duration(row, "window_ms")?,
            for_: duration(row, "for_ms")?,
        },
        "rate_of_change" => RuleKind::RateOfChange {
            op: Op::parse(required(row, "op")?).map_err(field)?,
            rate_per_min: required(row, "rate_per_min")?,
            clear_rate_per_min: required(row, "clear_rate_per_min")?,
            window: duration(row, "window_ms")?,
        },
        "no_data" => RuleKind::NoData {
            timeout: duration(row, "timeout_ms")?,
        },
        "anomaly" => RuleKind::Anomaly {
            window: duration(row, "window_ms")?,
            baseline: duration(row, "baseline_ms")?,
            z: required(row, "z")?,
            clear_z: required(row, "clear_z")?,
        },
        other => return Err(invalid(format!("kind {other:?} is unknown"))),
    };
    let parse_error = |error: stoker_domain::ParseError| invalid(error.to_string());
    Ok(AlertRule {
        id: row.try_get("id")?,
        name: row.try_get("name")?,
        selector: RuleSelector {
            site: row
                .try_get::<_, Option<String>>("site")?
                .map(SiteSlug::parse)
                .transpose()
                .map_err(parse_error)?,
            sensor: row
                .try_get::<_, Option<String>>("sensor_key")?
                .map(SensorKey::parse)
                .transpose()
                .map_err(parse_error)?,
            sensor_type: row
                .try_get::<_, Option<String>>("sensor_type")?
                .map(SensorType::parse)
                .transpose()
                .map_err(parse_error)?,
        },
        kind,
        severity: Severity::parse(row.try_get("severity")?).map_err(field)?,
        enabled: row.try_get("enabled")?,
        version: row.try_get("version")?,
        created_at: row.try_get("created_at")?,
        updated_at: row.try_get("updated_at")?,
    })
}

/// Creates a rule (enabled or not, as defined). Its site, if it names one,
/// must exist ([`Error::SiteNotFound`]).
pub async fn create_alert_rule(pool: &Pool, rule: &NewAlertRule) -> Result<AlertRule> {
    let columns = Columns::of(rule)?;
    let client = pool.get().await?;
    let statement = client
        .prepare_cached(&format!(
            "WITH target AS (
                 SELECT (SELECT id FROM metadata.sites WHERE slug = $3::text) AS site_id
             ), inserted AS (
                 INSERT INTO metadata.alert_rules (id, {DEFINITION})
                 SELECT $1, $2, t.site_id, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14,
                        $15, $16, $17, $18, $19, $20
                 FROM target t
                 WHERE $3::text IS NULL OR t.site_id IS NOT NULL
                 RETURNING *
             )
             SELECT {COLUMNS} FROM inserted r LEFT JOIN metadata.sites s ON s.id = r.site_id"
        ))
        .await?;
    let id = Uuid::now_v7();
    let mut params: Vec<&(dyn ToSql + Sync)> = vec![&id];
    params.extend(columns.params());
    let row = client
        .query_opt(&statement, &params)
        .await
        .map_err(|error| site_vanished(error, rule))?;
    match row {
        Some(row) => from_row(&row),
        None => Err(site_not_found(rule)),
    }
}

/// The site a rule names is gone (deleted concurrently).
fn site_vanished(error: tokio_postgres::Error, rule: &NewAlertRule) -> Error {
    if is_foreign_key_violation(&error) {
        site_not_found(rule)
    } else {
        error.into()
    }
}

fn site_not_found(rule: &NewAlertRule) -> Error {
    match &rule.selector().site {
        Some(site) => Error::SiteNotFound(site.clone()),
        None => invalid("the rule names no site, yet its site was not found"),
    }
}

/// One rule by id ([`Error::AlertRuleNotFound`]).
pub async fn get_alert_rule(pool: &Pool, id: Uuid) -> Result<AlertRule> {
    let client = pool.get().await?;
    let statement = client
        .prepare_cached(&format!(
            "SELECT {COLUMNS}
             FROM metadata.alert_rules r LEFT JOIN metadata.sites s ON s.id = r.site_id
             WHERE r.id = $1"
        ))
        .await?;
    match client.query_opt(&statement, &[&id]).await? {
        Some(row) => from_row(&row),
        None => Err(Error::AlertRuleNotFound(id)),
    }
}

/// One page of rules in id order (creation order), starting after the id
/// `after`. `limit` is 1 to [`MAX_PAGE_LIMIT`](crate::MAX_PAGE_LIMIT);
/// `next_after` is the last id of the page when more rules follow. A
/// filter on an unknown site gives an empty page.
pub async fn list_alert_rules_page(
    pool: &Pool,
    filter: &RuleFilter,
    limit: i64,
    after: Option<Uuid>,
) -> Result<Page<AlertRule>> {
    let fetch = fetch_limit(limit)?;
    let client = pool.get().await?;
    let statement = client
        .prepare_cached(&format!(
            "SELECT {COLUMNS}
             FROM metadata.alert_rules r LEFT JOIN metadata.sites s ON s.id = r.site_id
             WHERE ($1::text IS NULL OR s.slug = $1::text)
               AND ($2::boolean IS NULL OR r.enabled = $2::boolean)
               AND ($3::uuid IS NULL OR r.id > $3::uuid)
             ORDER BY r.id
             LIMIT $4"
        ))
        .await?;
    let rules = client
        .query(
            &statement,
            &[
                &filter.site.as_ref().map(SiteSlug::as_str),
                &filter.enabled,
                &after,
                &fetch,
            ],
        )
        .await?
        .iter()
        .map(from_row)
        .collect::<Result<Vec<_>>>()?;
    Ok(Page::from_rows(rules, limit, |rule| rule.id.to_string()))
}

/// Replaces a rule's whole definition (name, selector, kind and its values,
/// severity, enabled) if its version is still `expected_version`; the
/// version goes up by one. A PATCH is merged onto the stored rule before
/// (see [`RuleDraft`]). Fails with [`Error::AlertRuleNotFound`],
/// [`Error::VersionConflict`] or [`Error::SiteNotFound`].
pub async fn update_alert_rule(
    pool: &Pool,
    id: Uuid,
    expected_version: i64,
    rule: &NewAlertRule,
) -> Result<AlertRule> {
    let columns = Columns::of(rule)?;
    let client = pool.get().await?;
    let statement = client
        .prepare_cached(&format!(
            "WITH target AS (
                 SELECT (SELECT id FROM metadata.sites WHERE slug = $4::text) AS site_id
             ), updated AS (
                 UPDATE metadata.alert_rules r
                 SET ({DEFINITION}, version, updated_at) = (
                     $3, t.site_id, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17,
                     $18, $19, $20, $21, r.version + 1, now()
                 )
                 FROM target t
                 WHERE r.id = $1 AND r.version = $2
                   AND ($4::text IS NULL OR t.site_id IS NOT NULL)
                 RETURNING r.*
             )
             SELECT {COLUMNS} FROM updated r LEFT JOIN metadata.sites s ON s.id = r.site_id"
        ))
        .await?;
    let mut params: Vec<&(dyn ToSql + Sync)> = vec![&id, &expected_version];
    params.extend(columns.params());
    let row = client
        .query_opt(&statement, &params)
        .await
        .map_err(|error| site_vanished(error, rule))?;
    if let Some(row) = row {
        return from_row(&row);
    }
    match current_version(&client, id).await? {
        None => Err(Error::AlertRuleNotFound(id)),
        Some(current) if current != expected_version => Err(Error::VersionConflict { current }),
        Some(_) => Err(site_not_found(rule)),
    }
}

/// Deletes a rule, if its version is `expected_version` (when given).
/// Fails with [`Error::AlertRuleNotFound`] or [`Error::VersionConflict`].
pub async fn delete_alert_rule(pool: &Pool, id: Uuid, expected_version: Option<i64>) -> Result<()> {
    let client = pool.get().await?;
    let statement = client
        .prepare_cached(
            "DELETE FROM metadata.alert_rules
             WHERE id = $1 AND ($2::bigint IS NULL OR version = $2::bigint)",
        )
        .await?;
    if client
        .execute(&statement, &[&id, &expected_version])
        .await?
        > 0
    {
        return Ok(());
    }
    match current_version(&client, id).await? {
        None => Err(Error::AlertRuleNotFound(id)),
        Some(current) => Err(Error::VersionConflict { current }),
    }
}

async fn current_version(client: &deadpool_postgres::Client, id: Uuid) -> Result<Option<i64>> {
    let statement = client
        .prepare_cached("SELECT version FROM metadata.alert_rules WHERE id = $1")
        .await?;
    Ok(client
        .query_opt(&statement, &[&id])
        .await?
        .map(|row| row.get("version")))
}

/// Every enabled rule, in id order: what the analytics loop evaluates.
pub async fn enabled_alert_rules(pool: &Pool) -> Result<Vec<AlertRule>> {
    let client = pool.get().await?;
    let statement = client
        .prepare_cached(&format!(
            "SELECT {COLUMNS}
             FROM metadata.alert_rules r LEFT JOIN metadata.sites s ON s.id = r.site_id
             WHERE r.enabled
             ORDER BY r.id"
        ))
        .await?;
    client
        .query(&statement, &[])
        .await?
        .iter()
        .map(from_row)
        .collect()
}
