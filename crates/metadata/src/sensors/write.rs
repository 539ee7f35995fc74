//! Changes to sensors: create, update, delete, each in one transaction
//! with its audit record.

use deadpool_postgres::{GenericClient, Pool};
use stoker_domain::{SensorKey, SensorType, SiteSlug, Unit, ValidRange};

use super::{
    COLUMNS, NewSensor, Sensor, SensorChanges, check_kind, from_row, insert_sensor, invalid,
    not_found_or_conflict,
};
use crate::audit::{self, Actor, Change, Entity};
use crate::{Error, Result};

/// Adds a sensor to a site, recorded in the audit trail as done by
/// `actor`.
pub async fn create_sensor(
    pool: &Pool,
    actor: &Actor,
    site: &SiteSlug,
    sensor: &NewSensor,
) -> Result<Sensor> {
    sensor.check()?;
    let mut client = pool.get().await?;
    let transaction = client.transaction().await?;
    let created = insert_sensor(&transaction, site, sensor).await?;
    audit::record(
        &transaction,
        actor,
        sensor_change("created", None, Some(&created))?,
    )
    .await?;
    transaction.commit().await?;
    Ok(created)
}

/// The audit record of a change to a sensor.
pub(crate) fn sensor_change<'a>(
    action: &'a str,
    before: Option<&'a Sensor>,
    after: Option<&'a Sensor>,
) -> Result<Change<'a>> {
    let Some(sensor) = after.or(before) else {
        return Err(Error::InvalidRow {
            what: "audit record",
            reason: "a change of a sensor without the sensor".into(),
        });
    };
    Ok(Change {
        entity: Entity::Sensor,
        id: sensor.key.to_string(),
        site: Some(sensor.site.as_str()),
        action,
        before: before.map(audit::json).transpose()?,
        after: after.map(audit::json).transpose()?,
    })
}

/// Changes a sensor's type, unit, valid range or states if its version is
/// still `expected_version`; the version goes up by one, and the change is
/// recorded in the audit trail as done by `actor`. Fails with
/// [`Error::SiteNotFound`], [`Error::SensorNotFound`],
/// [`Error::VersionConflict`] (with the current version),
/// [`Error::KindUnchangeable`] (a kind other than the sensor's),
/// [`Error::StatesNotKept`] (states that drop, move or rename one of the
/// current ones) or [`Error::InvalidInput`] (a range or states its kind
/// cannot have).
pub async fn update_sensor(
    pool: &Pool,
    actor: &Actor,
    site: &SiteSlug,
    key: &SensorKey,
    expected_version: i64,
    changes: &SensorChanges,
) -> Result<Sensor> {
    let mut client = pool.get().await?;
    let transaction = client.transaction().await?;
    let before = locked(&transaction, site, key).await?;
    if before.version != expected_version {
        return Err(Error::VersionConflict {
            current: before.version,
        });
    }
    check_changes(&before, changes)?;
    let statement = transaction
        .prepare_cached(&format!(
            "UPDATE metadata.sensors se
             SET type = coalesce($4::text, se.type),
                 unit = coalesce($5::text, se.unit),
                 min_value = CASE WHEN $6::boolean THEN $7::double precision ELSE se.min_value END,
                 max_value = CASE WHEN $6::boolean THEN $8::double precision ELSE se.max_value END,
                 states = coalesce($9::text[], se.states),
                 version = se.version + 1,
                 updated_at = now()
             FROM metadata.sites s
             WHERE s.id = se.site_id AND s.slug = $1 AND se.key = $2 AND se.version = $3
             RETURNING {COLUMNS}"
        ))
        .await?;
    let range = changes.range;
    let row = transaction
        .query_one(
            &statement,
            &[
                &site.as_str(),
                &key.as_str(),
                &expected_version,
                &changes.sensor_type.as_ref().map(SensorType::as_str),
                &changes.unit.as_ref().map(Unit::as_str),
                &range.is_some(),
                &range.and_then(|range| range.min()),
                &range.and_then(|range| range.max()),
                &changes
                    .states
                    .as_ref()
                    .map(|states| states.names().collect::<Vec<_>>()),
            ],
        )
        .await
        .map_err(|error| kind_violation(&error, key).unwrap_or_else(|| error.into()))?;
    let after = from_row(&row)?;
    audit::record(
        &transaction,
        actor,
        sensor_change("updated", Some(&before), Some(&after))?,
    )
    .await?;
    transaction.commit().await?;
    Ok(after)
}

/// The sensor, its row locked until the transaction ends; else why not.
async fn locked(client: &impl GenericClient, site: &SiteSlug, key: &SensorKey) -> Result<Sensor> {
    let statement = client
        .prepare_cached(&format!(
            "SELECT {COLUMNS} FROM metadata.sensors se JOIN metadata.sites s ON s.id = se.site_id
             WHERE s.slug = $1 AND se.key = $2
             FOR UPDATE OF se"
        ))
        .await?;
    match client
        .query_opt(&statement, &[&site.as_str(), &key.as_str()])
        .await?
    {
        Some(row) => from_row(&row),
        None => Err(not_found_or_conflict(client, site, key).await?),
    }
}

/// Checks changes to a sensor's kind, states and range against the
/// sensor as stored, for precise errors; the table's trigger and checks
/// stand behind it against any other writer.
fn check_changes(current: &Sensor, changes: &SensorChanges) -> Result<()> {
    let key = &current.key;
    if let Some(kind) = changes.kind
        && kind != current.kind
    {
        return Err(Error::KindUnchangeable {
            sensor: key.clone(),
            current: current.kind,
        });
    }
    let states = changes.states.as_ref().unwrap_or(&current.states);
    if let Some((index, state)) = states.first_not_kept(&current.states) {
        return Err(Error::StatesNotKept {
            sensor: key.clone(),
            detail: format!(
                "state {state:?} (index {index}) must stay at its index; new states may only be added at the end"
            ),
        });
    }
    if changes.kind.is_none() && changes.states.is_none() && changes.range.is_none() {
        return Ok(());
    }
    let range = changes
        .range
        .unwrap_or(ValidRange::new(current.min, current.max).map_err(invalid("valid range"))?);
    check_kind(current.kind, states, &range)
        .map_err(|(field, message)| Error::KindConflict { field, message })
}

/// The precise error for a write the table's kind trigger or checks
/// refused, if that is why it failed.
fn kind_violation(error: &tokio_postgres::Error, key: &SensorKey) -> Option<Error> {
    let constraint = error.as_db_error()?.constraint()?;
    let message = || {
        error
            .as_db_error()
            .map(|db| db.message().to_owned())
            .unwrap_or_default()
    };
    Some(match constraint {
        "sensors_kind_kept" => Error::InvalidInput {
            field: "kind",
            message: message(),
        },
        "sensors_states_grow" => Error::StatesNotKept {
            sensor: key.clone(),
            detail: message(),
        },
        "sensors_states_per_kind" => Error::KindConflict {
            field: "states",
            message: "only a state sensor has states, and it has at least one".to_owned(),
        },
        "sensors_range_only_numeric" => Error::KindConflict {
            field: "min",
            message: "only a numeric sensor has a valid range".to_owned(),
        },
        _ => return None,
    })
}

/// Deletes a sensor, if its version is `expected_version` (when given),
/// recorded in the audit trail as done by `actor`. Alert rules that name
/// its key stay (they may match the key at other sites, or a sensor
/// created again later). Fails with [`Error::SiteNotFound`],
/// [`Error::SensorNotFound`] or [`Error::VersionConflict`].
pub async fn delete_sensor(
    pool: &Pool,
    actor: &Actor,
    site: &SiteSlug,
    key: &SensorKey,
    expected_version: Option<i64>,
) -> Result<()> {
    let mut client = pool.get().await?;
    let transaction = client.transaction().await?;
    let before = locked(&transaction, site, key).await?;
    if expected_version.is_some_and(|expected| expected != before.version) {
        return Err(Error::VersionConflict {
            current: before.version,
        });
    }
    let statement = transaction
        .prepare_cached("DELETE FROM metadata.sensors WHERE id = $1")
        .await?;
    transaction.execute(&statement, &[&before.id]).await?;
    audit::record(
        &transaction,
        actor,
        sensor_change("deleted", Some(&before), None)?,
    )
    .await?;
    transaction.commit().await?;
    Ok(())
}

/// Takes a sensor out of service (`Some`: until when and why) or back into
/// service (`None`), recorded in the audit trail as done by `actor`
/// (action `out_of_service` or `in_service`; nothing is recorded when a
/// sensor in service is put back). Not a change of its definition: the
/// version stays. Fails with [`Error::SiteNotFound`] or
/// [`Error::SensorNotFound`].
pub async fn set_sensor_out_of_service(
    pool: &Pool,
    actor: &Actor,
    site: &SiteSlug,
    key: &SensorKey,
    take_out: Option<&crate::TakeOut>,
) -> Result<Sensor> {
    let mut client = pool.get().await?;
    let transaction = client.transaction().await?;
    let before = locked(&transaction, site, key).await?;
    if take_out.is_none() && before.out_of_service.is_none() {
        return Ok(before);
    }
    let statement = transaction
        .prepare_cached(&format!(
            "UPDATE metadata.sensors se
             SET out_of_service_until = $2, out_of_service_reason = $3,
                 out_of_service_by = CASE WHEN $2::timestamptz IS NULL THEN NULL ELSE $4 END,
                 out_of_service_since = CASE WHEN $2::timestamptz IS NULL THEN NULL ELSE now() END
             FROM metadata.sites s
             WHERE s.id = se.site_id AND se.id = $1
             RETURNING {COLUMNS}"
        ))
        .await?;
    let row = transaction
        .query_one(
            &statement,
            &[
                &before.id,
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
        sensor_change(action, Some(&before), Some(&after))?,
    )
    .await?;
    transaction.commit().await?;
    Ok(after)
}
