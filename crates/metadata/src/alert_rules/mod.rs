//! Alert rules in `metadata.alert_rules`: the row mapping of
//! `stoker-rules`' model and the repository functions.
//!
//! A rule is one row with an explicit column per field (no JSON blob): the
//! kinds' fields and the settings each have a column named as in JSON
//! (`<name>_ms` for a duration, in whole milliseconds; a typed threshold
//! has three, `<name>`, `<name>_flag` and `<name>_state`, one per type it
//! may hold), derived here from the model's field specs; the table's
//! CHECKs require each kind's columns and forbid the others', and repeat
//! the hysteresis rules. A condition (`suppress_when`) has five:
//! `<name>_sensor`, `<name>_op` and its value typed as a threshold's.

use std::sync::LazyLock;

use deadpool_postgres::{GenericClient, Pool};
use stoker_domain::{SensorKey, SensorType, SiteSlug, StateName};
use stoker_rules::{
    AlertRule, FieldSpec, KIND_FIELDS, NewAlertRule, Record, RuleSelector, SETTINGS, Shape, Value,
    Values,
};
use tokio_postgres::Row;
use tokio_postgres::types::ToSql;
use uuid::Uuid;

use crate::audit::{self, Actor, Change, Entity};

mod suppression;

use crate::{Error, Page, Result, fetch_limit, is_foreign_key_violation};
use suppression::condition;
pub use suppression::set_rule_out_of_service;

/// Which rules a list returns.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RuleFilter {
    /// Only the rules scoped to this site (not the site-less rules that
    /// may match its sensors by key or type).
    pub site: Option<SiteSlug>,
    /// Only enabled (`true`) or disabled (`false`) rules.
    pub enabled: Option<bool>,
    /// Only the rules scoped to one of these sites (what a key limited to
    /// sites sees: never a site-less rule); `None`: no such limit.
    pub within: Option<Vec<SiteSlug>>,
}

/// The model's fields that have a column each: the settings, then every
/// kind's fields.
fn fields() -> impl Iterator<Item = &'static FieldSpec> {
    SETTINGS.iter().chain(KIND_FIELDS)
}

/// What a column holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Type {
    Text,
    Number,
    Millis,
    Flag,
}

/// A field's columns and their types: its name, with `_ms` for a duration
/// (`for_ms`); a typed threshold's number, boolean and state name in
/// `<name>`, `<name>_flag` and `<name>_state`.
fn columns(spec: &FieldSpec) -> Vec<(String, Type)> {
    let name = spec.name;
    match spec.shape {
        Shape::Choice(_) | Shape::Text(_) => vec![(name.to_owned(), Type::Text)],
        Shape::Number => vec![(name.to_owned(), Type::Number)],
        Shape::Duration => vec![(format!("{name}_ms"), Type::Millis)],
        Shape::Flag => vec![(name.to_owned(), Type::Flag)],
        Shape::Threshold => vec![
            (name.to_owned(), Type::Number),
            (format!("{name}_flag"), Type::Flag),
            (format!("{name}_state"), Type::Text),
        ],
        // The deciding sensor, the comparison, and the value typed as a
        // threshold's.
        Shape::Condition => vec![
            (format!("{name}_sensor"), Type::Text),
            (format!("{name}_op"), Type::Text),
            (format!("{name}_value"), Type::Number),
            (format!("{name}_value_flag"), Type::Flag),
            (format!("{name}_value_state"), Type::Text),
        ],
    }
}

/// Every field's columns, in [`fields`] order.
fn field_columns() -> impl Iterator<Item = (String, Type)> {
    fields().flat_map(columns)
}

/// The columns a rule's definition sets, in the order of the statements'
/// parameters (after the id, or the id and the expected version): name,
/// site, selector, kind, then [`fields`].
static DEFINITION: LazyLock<Vec<String>> = LazyLock::new(|| {
    ["name", "site_id", "sensor_key", "sensor_type", "kind"]
        .into_iter()
        .map(str::to_owned)
        .chain(field_columns().map(|(column, _)| column))
        .collect()
});

/// The select list of a rule (`r` the rule, `s` its site).
static COLUMNS: LazyLock<String> = LazyLock::new(|| {
    let mut columns = vec![
        "r.id".to_owned(),
        "r.name".to_owned(),
        "s.slug AS site".to_owned(),
    ];
    columns.extend(["sensor_key", "sensor_type", "kind"].map(|name| format!("r.{name}")));
    columns.extend(field_columns().map(|(column, _)| format!("r.{column}")));
    columns.extend(["version", "created_at", "updated_at"].map(|name| format!("r.{name}")));
    columns.push(crate::service::columns("r"));
    columns.join(", ")
});

/// `$from, $from+1, …` for `count` parameters.
fn placeholders(from: usize, count: usize) -> String {
    (from..from + count)
        .map(|index| format!("${index}"))
        .collect::<Vec<_>>()
        .join(", ")
}

/// One column value of a rule's definition.
#[derive(Debug)]
enum Param {
    Text(Option<String>),
    Number(Option<f64>),
    Millis(Option<i64>),
    Flag(Option<bool>),
}

impl Param {
    /// The columns of `spec` holding `value` (`None`: NULL), in
    /// [`columns`] order: the value in the column of its type, NULL in the
    /// others.
    fn of(spec: &FieldSpec, value: Option<&Value>) -> Result<Vec<Self>> {
        let mut params: Vec<Param> = columns(spec)
            .into_iter()
            .map(|(_, column_type)| Param::null(column_type))
            .collect();
        let Some(value) = value else {
            return Ok(params);
        };
        if let Value::Condition(condition) = value {
            return Ok(suppression::condition_params(condition));
        }
        let (column_type, param) = match value {
            Value::Name(name) => (Type::Text, Param::Text(Some(name.clone()))),
            Value::State(name) => (Type::Text, Param::Text(Some(name.as_str().to_owned()))),
            Value::Text(text) => (Type::Text, Param::Text(Some(text.clone()))),
            Value::Number(number) => (Type::Number, Param::Number(Some(*number))),
            Value::Duration(duration) => (
                Type::Millis,
                Param::Millis(Some(stoker_rules::millis(spec.name, *duration)?)),
            ),
            Value::Flag(flag) => (Type::Flag, Param::Flag(Some(*flag))),
            Value::Condition(_) => {
                return Err(invalid(format!("{} holds a condition", spec.name)));
            }
        };
        let slot = columns(spec)
            .into_iter()
            .position(|(_, candidate)| candidate == column_type)
            .ok_or_else(|| invalid(format!("{} has no column for {value:?}", spec.name)))?;
        params[slot] = param;
        Ok(params)
    }

    fn null(column_type: Type) -> Self {
        match column_type {
            Type::Text => Param::Text(None),
            Type::Number => Param::Number(None),
            Type::Millis => Param::Millis(None),
            Type::Flag => Param::Flag(None),
        }
    }

    fn sql(&self) -> &(dyn ToSql + Sync) {
        match self {
            Param::Text(value) => value,
            Param::Number(value) => value,
            Param::Millis(value) => value,
            Param::Flag(value) => value,
        }
    }
}

/// A rule's definition as column values, in [`DEFINITION`]'s order;
/// `site` stands for `site_id` (the statements look the id up by slug).
struct Columns<'a> {
    name: &'a str,
    site: Option<&'a str>,
    sensor_key: Option<&'a str>,
    sensor_type: Option<&'a str>,
    kind: &'static str,
    fields: Vec<Param>,
}

impl<'a> Columns<'a> {
    fn of(rule: &'a NewAlertRule) -> Result<Self> {
        let selector = rule.selector();
        let values: Values = rule
            .setting_values()
            .into_iter()
            .chain(rule.kind().values())
            .collect();
        Ok(Columns {
            name: rule.name(),
            site: selector.site.as_ref().map(SiteSlug::as_str),
            sensor_key: selector.sensor.as_ref().map(SensorKey::as_str),
            sensor_type: selector.sensor_type.as_ref().map(SensorType::as_str),
            kind: rule.kind().name(),
            fields: fields()
                .map(|spec| Param::of(spec, values.get(spec.name)))
                .collect::<Result<Vec<_>>>()?
                .into_iter()
                .flatten()
                .collect(),
        })
    }

    fn params(&self) -> impl Iterator<Item = &(dyn ToSql + Sync)> {
        [
            &self.name as &(dyn ToSql + Sync),
            &self.site,
            &self.sensor_key,
            &self.sensor_type,
            &self.kind,
        ]
        .into_iter()
        .chain(self.fields.iter().map(Param::sql))
    }
}

fn invalid(reason: impl Into<String>) -> Error {
    Error::InvalidRow {
        what: "alert rule",
        reason: reason.into(),
    }
}

/// The values of the fields a row sets, by name: of a field with several
/// columns, the one that is not NULL.
fn values(row: &Row) -> Result<Values> {
    let mut values = Values::new();
    for spec in fields() {
        if spec.shape == Shape::Condition {
            if let Some(condition) = condition(row, spec.name)? {
                values.insert(spec.name, Value::Condition(condition));
            }
            continue;
        }
        for (column, column_type) in columns(spec) {
            let column = column.as_str();
            let value = match (column_type, spec.shape) {
                (Type::Text, Shape::Threshold) => row
                    .try_get::<_, Option<String>>(column)?
                    .map(|name| StateName::parse(name).map(Value::State))
                    .transpose()
                    .map_err(|error| invalid(format!("{column}: {error}")))?,
                (Type::Text, Shape::Text(_)) => {
                    row.try_get::<_, Option<String>>(column)?.map(Value::Text)
                }
                (Type::Text, _) => row.try_get::<_, Option<String>>(column)?.map(Value::Name),
                (Type::Number, _) => row.try_get::<_, Option<f64>>(column)?.map(Value::Number),
                (Type::Millis, _) => match row.try_get::<_, Option<i64>>(column)? {
                    None => None,
                    Some(millis) => Some(Value::Duration(std::time::Duration::from_millis(
                        u64::try_from(millis)
                            .map_err(|_| invalid(format!("{column} is negative")))?,
                    ))),
                },
                (Type::Flag, _) => row.try_get::<_, Option<bool>>(column)?.map(Value::Flag),
            };
            if let Some(value) = value {
                values.insert(spec.name, value);
            }
        }
    }
    Ok(values)
}

fn from_row(row: &Row) -> Result<AlertRule> {
    let parse_error = |error: stoker_domain::ParseError| invalid(error.to_string());
    let selector = RuleSelector {
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
    };
    let record = Record {
        id: row.try_get("id")?,
        version: row.try_get("version")?,
        created_at: row.try_get("created_at")?,
        updated_at: row.try_get("updated_at")?,
    };
    let kind: String = row.try_get("kind")?;
    let mut rule =
        AlertRule::from_stored(record, row.try_get("name")?, selector, &kind, &values(row)?)
            .map_err(|(_, message)| invalid(message))?;
    rule.out_of_service = crate::service::from_row(row, chrono::Utc::now())?;
    Ok(rule)
}

/// The audit record of a change to a rule.
fn rule_change<'a>(
    action: &'a str,
    before: Option<&'a AlertRule>,
    after: Option<&'a AlertRule>,
) -> Result<Change<'a>> {
    let Some(rule) = after.or(before) else {
        return Err(invalid("a change of a rule without the rule"));
    };
    Ok(Change {
        entity: Entity::AlertRule,
        id: rule.id.to_string(),
        site: rule.selector.site.as_ref().map(SiteSlug::as_str),
        action,
        before: before.map(audit::json).transpose()?,
        after: after.map(audit::json).transpose()?,
    })
}

/// The rule, its row locked until the transaction ends
/// ([`Error::AlertRuleNotFound`] if none).
async fn locked(client: &impl GenericClient, id: Uuid) -> Result<AlertRule> {
    let columns = COLUMNS.as_str();
    let statement = client
        .prepare_cached(&format!(
            "SELECT {columns}
             FROM metadata.alert_rules r LEFT JOIN metadata.sites s ON s.id = r.site_id
             WHERE r.id = $1
             FOR UPDATE OF r"
        ))
        .await?;
    match client.query_opt(&statement, &[&id]).await? {
        Some(row) => from_row(&row),
        None => Err(Error::AlertRuleNotFound(id)),
    }
}

/// Creates a rule (enabled or not, as defined), recorded in the audit
/// trail as done by `actor`. Its site, if it names one, must exist
/// ([`Error::SiteNotFound`]).
pub async fn create_alert_rule(
    pool: &Pool,
    actor: &Actor,
    rule: &NewAlertRule,
) -> Result<AlertRule> {
    let definition = DEFINITION.join(", ");
    // $1 the id, $2 the name, $3 the site's slug, then the rest.
    let values = placeholders(4, DEFINITION.len() - 2);
    let columns = COLUMNS.as_str();
    let rule_columns = Columns::of(rule)?;
    let mut client = pool.get().await?;
    let client = client.transaction().await?;
    let statement = client
        .prepare_cached(&format!(
            "WITH target AS (
                 SELECT (SELECT id FROM metadata.sites WHERE slug = $3::text) AS site_id
             ), inserted AS (
                 INSERT INTO metadata.alert_rules (id, {definition})
                 SELECT $1, $2, t.site_id, {values}
                 FROM target t
                 WHERE $3::text IS NULL OR t.site_id IS NOT NULL
                 RETURNING *
             )
             SELECT {columns} FROM inserted r LEFT JOIN metadata.sites s ON s.id = r.site_id"
        ))
        .await?;
    let id = Uuid::now_v7();
    let mut params: Vec<&(dyn ToSql + Sync)> = vec![&id];
    params.extend(rule_columns.params());
    let row = client
        .query_opt(&statement, &params)
        .await
        .map_err(|error| site_vanished(error, rule))?;
    let created = match row {
        Some(row) => from_row(&row)?,
        None => return Err(site_not_found(rule)),
    };
    audit::record(
        &client,
        actor,
        rule_change("created", None, Some(&created))?,
    )
    .await?;
    client.commit().await?;
    Ok(created)
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
    let columns = COLUMNS.as_str();
    let client = pool.get().await?;
    let statement = client
        .prepare_cached(&format!(
            "SELECT {columns}
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
    let within: Option<Vec<&str>> = filter
        .within
        .as_ref()
        .map(|sites| sites.iter().map(SiteSlug::as_str).collect());
    let columns = COLUMNS.as_str();
    let client = pool.get().await?;
    let statement = client
        .prepare_cached(&format!(
            "SELECT {columns}
             FROM metadata.alert_rules r LEFT JOIN metadata.sites s ON s.id = r.site_id
             WHERE ($1::text IS NULL OR s.slug = $1::text)
               AND ($2::boolean IS NULL OR r.enabled = $2::boolean)
               AND ($3::uuid IS NULL OR r.id > $3::uuid)
               AND ($5::text[] IS NULL OR s.slug = ANY($5::text[]))
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
                &within,
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
/// version goes up by one, and the change is recorded in the audit trail
/// as done by `actor`. A PATCH is merged onto the stored rule before (see
/// [`RuleDraft`]). Fails with [`Error::AlertRuleNotFound`],
/// [`Error::VersionConflict`] or [`Error::SiteNotFound`].
pub async fn update_alert_rule(
    pool: &Pool,
    actor: &Actor,
    id: Uuid,
    expected_version: i64,
    rule: &NewAlertRule,
) -> Result<AlertRule> {
    let definition = DEFINITION.join(", ");
    // $1 the id, $2 the version, $3 the name, $4 the site's slug, then the rest.
    let values = placeholders(5, DEFINITION.len() - 2);
    let columns = COLUMNS.as_str();
    let rule_columns = Columns::of(rule)?;
    let mut client = pool.get().await?;
    let transaction = client.transaction().await?;
    let before = locked(&transaction, id).await?;
    if before.version != expected_version {
        return Err(Error::VersionConflict {
            current: before.version,
        });
    }
    let statement = transaction
        .prepare_cached(&format!(
            "WITH target AS (
                 SELECT (SELECT id FROM metadata.sites WHERE slug = $4::text) AS site_id
             ), updated AS (
                 UPDATE metadata.alert_rules r
                 SET ({definition}, version, updated_at) = (
                     $3, t.site_id, {values}, r.version + 1, now()
                 )
                 FROM target t
                 WHERE r.id = $1 AND r.version = $2
                   AND ($4::text IS NULL OR t.site_id IS NOT NULL)
                 RETURNING r.*
             )
             SELECT {columns} FROM updated r LEFT JOIN metadata.sites s ON s.id = r.site_id"
        ))
        .await?;
    let mut params: Vec<&(dyn ToSql + Sync)> = vec![&id, &expected_version];
    params.extend(rule_columns.params());
    let row = transaction
        .query_opt(&statement, &params)
        .await
        .map_err(|error| site_vanished(error, rule))?;
    // The row is locked at the expected version: only a missing site can
    // have refused the change.
    let Some(row) = row else {
        return Err(site_not_found(rule));
    };
    let after = from_row(&row)?;
    audit::record(
        &transaction,
        actor,
        rule_change("updated", Some(&before), Some(&after))?,
    )
    .await?;
    transaction.commit().await?;
    Ok(after)
}

/// Deletes a rule, if its version is `expected_version` (when given),
/// recorded in the audit trail as done by `actor`. Fails with
/// [`Error::AlertRuleNotFound`] or [`Error::VersionConflict`].
pub async fn delete_alert_rule(
    pool: &Pool,
    actor: &Actor,
    id: Uuid,
    expected_version: Option<i64>,
) -> Result<()> {
    let mut client = pool.get().await?;
    let transaction = client.transaction().await?;
    let before = locked(&transaction, id).await?;
    if expected_version.is_some_and(|expected| expected != before.version) {
        return Err(Error::VersionConflict {
            current: before.version,
        });
    }
    let statement = transaction
        .prepare_cached("DELETE FROM metadata.alert_rules WHERE id = $1")
        .await?;
    transaction.execute(&statement, &[&id]).await?;
    audit::record(
        &transaction,
        actor,
        rule_change("deleted", Some(&before), None)?,
    )
    .await?;
    transaction.commit().await?;
    Ok(())
}

/// Every enabled rule, in id order: what the analytics loop evaluates.
pub async fn enabled_alert_rules(pool: &Pool) -> Result<Vec<AlertRule>> {
    let columns = COLUMNS.as_str();
    let client = pool.get().await?;
    let statement = client
        .prepare_cached(&format!(
            "SELECT {columns}
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
