//! A rule's alarm suppression: its `suppress_when` read from its five
//! columns, and taking it out of service and back.

use deadpool_postgres::Pool;
use stoker_domain::{SensorKey, StateName};
use stoker_rules::{AlertRule, Op, SuppressWhen, Threshold};
use tokio_postgres::Row;
use uuid::Uuid;

use super::{COLUMNS, Param, from_row, invalid, locked, rule_change};
use crate::Result;
use crate::audit::{self, Actor};

/// A condition's columns, in `columns` order: sensor, op, then the typed
/// value.
pub(super) fn condition_params(condition: &SuppressWhen) -> Vec<Param> {
    let (number, flag, state) = match &condition.value {
        Threshold::Number(number) => (Some(*number), None, None),
        Threshold::Boolean(flag) => (None, Some(*flag), None),
        Threshold::State(name) => (None, None, Some(name.as_str().to_owned())),
    };
    vec![
        Param::Text(Some(condition.sensor.as_str().to_owned())),
        Param::Text(Some(condition.op.as_str().to_owned())),
        Param::Number(number),
        Param::Flag(flag),
        Param::Text(state),
    ]
}

/// A condition's five columns (`<name>_sensor`, `_op`, `_value`,
/// `_value_flag`, `_value_state`); none when its sensor is NULL.
pub(super) fn condition(row: &Row, name: &str) -> Result<Option<SuppressWhen>> {
    let column = |suffix: &str| format!("{name}_{suffix}");
    let Some(sensor) = row.try_get::<_, Option<String>>(column("sensor").as_str())? else {
        return Ok(None);
    };
    let sensor = SensorKey::parse(sensor).map_err(|error| invalid(format!("{name}: {error}")))?;
    let op: String = row
        .try_get::<_, Option<String>>(column("op").as_str())?
        .ok_or_else(|| invalid(format!("{name} has a sensor and no op")))?;
    let op = Op::parse(&op).map_err(|(_, message)| invalid(message))?;
    let value = if let Some(flag) = row.try_get::<_, Option<bool>>(column("value_flag").as_str())? {
        Threshold::Boolean(flag)
    } else if let Some(state) = row.try_get::<_, Option<String>>(column("value_state").as_str())? {
        Threshold::State(
            StateName::parse(state).map_err(|error| invalid(format!("{name}: {error}")))?,
        )
    } else {
        Threshold::Number(
            row.try_get::<_, Option<f64>>(column("value").as_str())?
                .ok_or_else(|| invalid(format!("{name} has a sensor and no value")))?,
        )
    };
    Ok(Some(SuppressWhen { sensor, op, value }))
}

/// Takes a rule out of service (`Some`: until when and why) or back into
/// service (`None`), recorded in the audit trail as done by `actor`
/// (action `out_of_service` or `in_service`; nothing is recorded when a
/// rule in service is put back). Not a change of its definition: the
/// version stays. Fails with [`Error::AlertRuleNotFound`].
pub async fn set_rule_out_of_service(
    pool: &Pool,
    actor: &Actor,
    id: Uuid,
    take_out: Option<&crate::TakeOut>,
) -> Result<AlertRule> {
    let columns = COLUMNS.as_str();
    let mut client = pool.get().await?;
    let transaction = client.transaction().await?;
    let before = locked(&transaction, id).await?;
    if take_out.is_none() && before.out_of_service.is_none() {
        return Ok(before);
    }
    let statement = transaction
        .prepare_cached(&format!(
            "WITH updated AS (
                 UPDATE metadata.alert_rules
                 SET out_of_service_until = $2, out_of_service_reason = $3,
                     out_of_service_by = CASE WHEN $2::timestamptz IS NULL THEN NULL ELSE $4 END,
                     out_of_service_since =
                         CASE WHEN $2::timestamptz IS NULL THEN NULL ELSE now() END
                 WHERE id = $1
                 RETURNING *
             )
             SELECT {columns} FROM updated r LEFT JOIN metadata.sites s ON s.id = r.site_id"
        ))
        .await?;
    let row = transaction
        .query_one(
            &statement,
            &[
                &id,
                &take_out.map(crate::TakeOut::until),
                &take_out.map(crate::TakeOut::reason),
                &actor.name(),
            ],
        )
        .await?;
    let after = from_row(&row)?;
    let action = if take_out.is_some() {
        "out_of_service"
    } else {
        "in_service"
    };
    audit::record(
        &transaction,
        actor,
        rule_change(action, Some(&before), Some(&after))?,
    )
    .await?;
    transaction.commit().await?;
    Ok(after)
}
