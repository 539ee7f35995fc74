//! The `analytics.alerts` and `alert_events` rows as the store reads them.

use chrono::{DateTime, Utc};
use stoker_domain::{EpochMillis, ReadingValue};
use tokio_postgres::Row;
use uuid::Uuid;

use super::{Alert, AlertEvent, AlertState, GatewayRef, Suppression};
use crate::{Error, Result};

pub(super) const COLUMNS: &str = "id, rule_id, rule_name, kind, severity, site, sensor, state, opened_at, \
     value, threshold, message, acknowledged_at, acknowledged_by, resolved_at, resolved_by, version, \
     value_flag, value_state, threshold_flag, threshold_state, gateway_group, gateway_edge_node, \
     active, activated_at, latched_at, shelved_until, shelved_by, shelve_reason, cause, consequence, \
     operator_action, response_time_ms, suppressed";

/// The columns of an event, in its table.
pub(super) const EVENT_COLUMNS: &str =
    "id, alert_id, transition, at, actor, value, detail, value_flag, value_state, explanation";

/// A value in the sensor's type as its three columns: the number, the
/// boolean (`<column>_flag`) and the state's name (`<column>_state`), at
/// most one of them set.
pub(super) fn typed_columns(
    value: Option<&ReadingValue>,
) -> (Option<f64>, Option<bool>, Option<&str>) {
    match value {
        None => (None, None, None),
        Some(ReadingValue::Number(number)) => (Some(*number), None, None),
        Some(ReadingValue::Boolean(flag)) => (None, Some(*flag), None),
        Some(ReadingValue::State(name)) => (None, None, Some(name.as_str())),
    }
}

/// The value the three columns named after `column` hold.
fn typed(row: &Row, column: &str) -> Result<Option<ReadingValue>> {
    if let Some(flag) = row.try_get::<_, Option<bool>>(format!("{column}_flag").as_str())? {
        return Ok(Some(ReadingValue::Boolean(flag)));
    }
    if let Some(name) = row.try_get::<_, Option<String>>(format!("{column}_state").as_str())? {
        return Ok(Some(ReadingValue::State(name)));
    }
    Ok(row
        .try_get::<_, Option<f64>>(column)?
        .map(ReadingValue::Number))
}

pub(super) fn alert_from_row(row: &Row) -> Result<Alert> {
    Ok(Alert {
        id: row.try_get("id")?,
        rule_id: row.try_get("rule_id")?,
        rule_name: row.try_get("rule_name")?,
        kind: row.try_get("kind")?,
        severity: row.try_get("severity")?,
        site: row.try_get("site")?,
        sensor: row.try_get("sensor")?,
        gateway: match (
            row.try_get::<_, Option<String>>("gateway_group")?,
            row.try_get::<_, Option<String>>("gateway_edge_node")?,
        ) {
            (Some(group), Some(edge_node)) => Some(GatewayRef { group, edge_node }),
            _ => None,
        },
        state: AlertState::parse(row.try_get("state")?)?,
        active: row.try_get("active")?,
        opened_at: row.try_get("opened_at")?,
        value: typed(row, "value")?,
        threshold: typed(row, "threshold")?,
        message: row.try_get("message")?,
        acknowledged_at: row.try_get("acknowledged_at")?,
        acknowledged_by: row.try_get("acknowledged_by")?,
        resolved_at: row.try_get("resolved_at")?,
        resolved_by: row.try_get("resolved_by")?,
        activated_at: row.try_get("activated_at")?,
        latched_at: row.try_get("latched_at")?,
        shelved_until: row.try_get("shelved_until")?,
        shelved_by: row.try_get("shelved_by")?,
        shelve_reason: row.try_get("shelve_reason")?,
        cause: row.try_get("cause")?,
        consequence: row.try_get("consequence")?,
        operator_action: row.try_get("operator_action")?,
        response_time: row
            .try_get::<_, Option<i64>>("response_time_ms")?
            .map(|millis| {
                humantime::format_duration(std::time::Duration::from_millis(
                    u64::try_from(millis).unwrap_or(0),
                ))
                .to_string()
            }),
        version: row.try_get("version")?,
        suppressed: row
            .try_get::<_, Option<&str>>("suppressed")?
            .map(Suppression::parse)
            .transpose()?,
    })
}

pub(super) fn event_from_row(row: &Row) -> Result<AlertEvent> {
    Ok(AlertEvent {
        id: row.try_get("id")?,
        alert_id: row.try_get("alert_id")?,
        transition: row.try_get("transition")?,
        at: row.try_get("at")?,
        actor: row.try_get("actor")?,
        value: typed(row, "value")?,
        detail: row.try_get("detail")?,
        explanation: row.try_get("explanation")?,
    })
}

pub(super) fn timestamp(at: EpochMillis) -> DateTime<Utc> {
    at.to_datetime()
}

/// The alert with this id, locked until the end of the transaction when
/// `for_update` (the transaction changes it).
pub(super) async fn alert_by_id(
    client: &impl tokio_postgres::GenericClient,
    id: Uuid,
    for_update: bool,
) -> Result<Alert> {
    let lock = if for_update { " FOR UPDATE" } else { "" };
    let row = client
        .query_opt(
            &format!("SELECT {COLUMNS} FROM analytics.alerts WHERE id = $1{lock}"),
            &[&id],
        )
        .await?
        .ok_or(Error::AlertNotFound(id))?;
    alert_from_row(&row)
}
