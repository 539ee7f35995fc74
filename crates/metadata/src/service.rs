//! Out of service (DESIGN.md, "Alarm management"): the four columns a
//! sensor or an alert rule has for it (`out_of_service_until`, `_reason`,
//! `_by`, `_since`), read into [`OutOfService`]; taking one out or back is
//! `sensors::set_sensor_out_of_service` and
//! `alert_rules::set_rule_out_of_service`, and the evaluation loop reads
//! the sensors out of service once per tick ([`sensors_out_of_service`]).

use chrono::{DateTime, Utc};
use deadpool_postgres::Pool;
use stoker_domain::{OutOfService, SensorKey, SiteSlug};
use tokio_postgres::Row;

use crate::{Error, Result};

/// The select list of the columns, for a table aliased `alias`.
pub(crate) fn columns(alias: &str) -> String {
    ["until", "reason", "by", "since"]
        .map(|column| format!("{alias}.out_of_service_{column}"))
        .join(", ")
}

/// The out-of-service a row holds, if it is still in force at `now` (a
/// past `until` is in service again).
pub(crate) fn from_row(row: &Row, now: DateTime<Utc>) -> Result<Option<OutOfService>> {
    let Some(until) = row.try_get::<_, Option<DateTime<Utc>>>("out_of_service_until")? else {
        return Ok(None);
    };
    if until <= now {
        return Ok(None);
    }
    let text = |column: &str| -> Result<String> {
        row.try_get::<_, Option<String>>(column)?
            .ok_or_else(|| Error::InvalidRow {
                what: "out of service",
                reason: format!("{column} is missing"),
            })
    };
    Ok(Some(OutOfService {
        until,
        reason: text("out_of_service_reason")?,
        by: text("out_of_service_by")?,
        since: row
            .try_get::<_, Option<DateTime<Utc>>>("out_of_service_since")?
            .ok_or_else(|| Error::InvalidRow {
                what: "out of service",
                reason: "out_of_service_since is missing".into(),
            })?,
    }))
}

/// What an operator asks for: until when, and why (checked by
/// [`TakeOut::new`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TakeOut {
    until: DateTime<Utc>,
    reason: String,
}

impl TakeOut {
    /// Out of service until `until` (after `now`) for `reason` (trimmed, 1
    /// to 500 characters). `Err`: the field and what is wrong.
    pub fn new(
        until: DateTime<Utc>,
        reason: &str,
        now: DateTime<Utc>,
    ) -> Result<Self, (&'static str, String)> {
        if until <= now {
            return Err(("until", "until must be in the future".to_owned()));
        }
        let reason =
            stoker_domain::checked_reason(reason).map_err(|message| ("reason", message))?;
        Ok(Self { until, reason })
    }

    /// Until when.
    pub fn until(&self) -> DateTime<Utc> {
        self.until
    }

    /// Why.
    pub fn reason(&self) -> &str {
        &self.reason
    }
}

/// Every sensor out of service now, with its site: what the evaluation
/// loop reads once per tick (a partial index holds the few such rows).
pub async fn sensors_out_of_service(
    pool: &Pool,
) -> Result<Vec<(SiteSlug, SensorKey, OutOfService)>> {
    let client = pool.get().await?;
    let statement = client
        .prepare_cached(&format!(
            "SELECT s.slug AS site, se.key, {}
             FROM metadata.sensors se JOIN metadata.sites s ON s.id = se.site_id
             WHERE se.out_of_service_until > now()",
            columns("se")
        ))
        .await?;
    let now = Utc::now();
    let mut out = Vec::new();
    for row in client.query(&statement, &[]).await? {
        let invalid = |error: stoker_domain::ParseError| Error::InvalidRow {
            what: "sensor",
            reason: error.to_string(),
        };
        let site = SiteSlug::parse(row.try_get::<_, String>("site")?).map_err(invalid)?;
        let key = SensorKey::parse(row.try_get::<_, String>("key")?).map_err(invalid)?;
        if let Some(service) = from_row(&row, now)? {
            out.push((site, key, service));
        }
    }
    Ok(out)
}
