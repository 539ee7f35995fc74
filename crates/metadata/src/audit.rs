//! The audit trail, `metadata.audit_events`: every change of configuration
//! and every operator action, recorded by [`record`] in the transaction of
//! the change itself (so a change without its record cannot commit), and
//! read back in pages by [`list_audit_page`]. The table refuses UPDATE,
//! DELETE and TRUNCATE.
//!
//! Who acts is an [`Actor`]: an API key (its name) or the command line
//! (`cli`). What is changed is an [`Entity`]; its before and after are the
//! entity's API JSON, never a secret or a hash.

use std::fmt;

use chrono::{DateTime, Utc};
use deadpool_postgres::{GenericClient, Pool};
use serde::Serialize;
use serde_json::Value;
use stoker_domain::SiteSlug;

use crate::{Error, Page, Result, fetch_limit};

/// Who made a change.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Actor {
    /// The command line (`stoker apikey …`): recorded as `cli`.
    Cli,
    /// A request authenticated by an API key: its name.
    Key(String),
}

impl Actor {
    /// The name recorded: the key's name, or `cli`.
    pub fn name(&self) -> &str {
        match self {
            Actor::Cli => "cli",
            Actor::Key(name) => name,
        }
    }

    /// How it acted: `cli` or `api_key`.
    pub fn kind(&self) -> &'static str {
        match self {
            Actor::Cli => "cli",
            Actor::Key(_) => "api_key",
        }
    }
}

impl fmt::Display for Actor {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// What a change concerns. A new entity (maintenance windows, say) is a
/// variant here and its name in [`Entity::ALL`]; the table takes any name.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Entity {
    /// A site.
    Site,
    /// A sensor of a site.
    Sensor,
    /// A Sparkplug gateway bound to a site.
    Gateway,
    /// An alert rule.
    AlertRule,
    /// An API key.
    ApiKey,
    /// An alert an operator acted on (acknowledged, resolved).
    Alert,
    /// A maintenance window of a site.
    MaintenanceWindow,
}

impl Entity {
    /// Every entity, in the order of their names.
    pub const ALL: [Entity; 7] = [
        Entity::Alert,
        Entity::AlertRule,
        Entity::ApiKey,
        Entity::Gateway,
        Entity::MaintenanceWindow,
        Entity::Sensor,
        Entity::Site,
    ];

    /// Every entity's name, as `?entity=` takes it.
    pub const NAMES: [&'static str; 7] = [
        "alert",
        "alert_rule",
        "api_key",
        "gateway",
        "maintenance_window",
        "sensor",
        "site",
    ];

    /// Its name in the table and in JSON.
    pub fn as_str(self) -> &'static str {
        match self {
            Entity::Site => "site",
            Entity::Sensor => "sensor",
            Entity::Gateway => "gateway",
            Entity::AlertRule => "alert_rule",
            Entity::ApiKey => "api_key",
            Entity::Alert => "alert",
            Entity::MaintenanceWindow => "maintenance_window",
        }
    }

    /// The entity of a name written by [`Entity::as_str`].
    pub fn parse(text: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|entity| entity.as_str() == text)
    }
}

/// A change about to be recorded.
#[derive(Debug, Clone)]
pub struct Change<'a> {
    /// What it concerns.
    pub entity: Entity,
    /// How the API names it (a slug, a sensor key, a UUID, a key's name).
    pub id: String,
    /// The site it belongs to, if one.
    pub site: Option<&'a str>,
    /// What was done: `created`, `updated`, `deleted`, `rotated`, …
    pub action: &'a str,
    /// The entity before (none for a creation).
    pub before: Option<Value>,
    /// The entity after (none for a deletion).
    pub after: Option<Value>,
}

/// The entity's JSON, for [`Change::before`] and [`Change::after`].
pub(crate) fn json(value: &impl Serialize) -> Result<Value> {
    serde_json::to_value(value).map_err(|error| Error::InvalidRow {
        what: "audit record",
        reason: error.to_string(),
    })
}

/// Records `change` by `actor` on `client`: call it inside the transaction
/// of the change, so that both commit or neither does.
pub async fn record(client: &impl GenericClient, actor: &Actor, change: Change<'_>) -> Result<()> {
    let statement = client
        .prepare_cached(
            "INSERT INTO metadata.audit_events
                 (actor, actor_kind, entity, entity_id, site, action, before, after)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
        )
        .await?;
    client
        .execute(
            &statement,
            &[
                &actor.name(),
                &actor.kind(),
                &change.entity.as_str(),
                &change.id,
                &change.site,
                &change.action,
                &change.before,
                &change.after,
            ],
        )
        .await?;
    Ok(())
}

/// One recorded change, as `GET /api/v1/audit` shows it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct AuditEvent {
    /// Its id (increasing).
    pub id: i64,
    /// When the change was made (its transaction's time).
    pub at: DateTime<Utc>,
    /// Who: an API key's name, or `cli`.
    pub actor: String,
    /// `api_key` or `cli`.
    pub actor_kind: String,
    /// What it concerns (an [`Entity`]'s name).
    pub entity: String,
    /// How the API names the entity.
    pub entity_id: String,
    /// The site it belongs to, if one.
    pub site: Option<String>,
    /// What was done.
    pub action: String,
    /// The entity before (null for a creation).
    pub before: Option<Value>,
    /// The entity after (null for a deletion).
    pub after: Option<Value>,
}

/// Which events a list returns.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct AuditFilter {
    /// One site's events only.
    pub site: Option<SiteSlug>,
    /// One entity's events only.
    pub entity: Option<Entity>,
    /// One actor's events only (a key's name, or `cli`).
    pub actor: Option<String>,
    /// Events at or after this time.
    pub start: Option<DateTime<Utc>>,
    /// Events before this time.
    pub end: Option<DateTime<Utc>>,
    /// Only events of these sites (what a key limited to sites sees: never
    /// an event without a site); `None`: no such limit.
    pub within: Option<Vec<SiteSlug>>,
}

/// Events, newest first, `limit` per page after the event `after` (a
/// page's `next_after`: the last event's id). `limit` is 1 to
/// [`MAX_PAGE_LIMIT`](crate::MAX_PAGE_LIMIT).
pub async fn list_audit_page(
    pool: &Pool,
    filter: &AuditFilter,
    limit: i64,
    after: Option<i64>,
) -> Result<Page<AuditEvent>> {
    let fetch = fetch_limit(limit)?;
    let within: Option<Vec<&str>> = filter
        .within
        .as_ref()
        .map(|sites| sites.iter().map(SiteSlug::as_str).collect());
    let client = pool.get().await?;
    // Newest first by id, the order the changes were recorded in.
    let statement = client
        .prepare_cached(
            "SELECT id, at, actor, actor_kind, entity, entity_id, site, action, before, after
             FROM metadata.audit_events
             WHERE ($1::text IS NULL OR site = $1::text)
               AND ($2::text IS NULL OR entity = $2::text)
               AND ($3::text IS NULL OR actor = $3::text)
               AND ($4::timestamptz IS NULL OR at >= $4::timestamptz)
               AND ($5::timestamptz IS NULL OR at < $5::timestamptz)
               AND ($6::bigint IS NULL OR id < $6::bigint)
               AND ($7::text[] IS NULL OR site = ANY($7::text[]))
             ORDER BY id DESC
             LIMIT $8",
        )
        .await?;
    let events = client
        .query(
            &statement,
            &[
                &filter.site.as_ref().map(SiteSlug::as_str),
                &filter.entity.map(Entity::as_str),
                &filter.actor,
                &filter.start,
                &filter.end,
                &after,
                &within,
                &fetch,
            ],
        )
        .await?
        .iter()
        .map(|row| {
            Ok(AuditEvent {
                id: row.try_get("id")?,
                at: row.try_get("at")?,
                actor: row.try_get("actor")?,
                actor_kind: row.try_get("actor_kind")?,
                entity: row.try_get("entity")?,
                entity_id: row.try_get("entity_id")?,
                site: row.try_get("site")?,
                action: row.try_get("action")?,
                before: row.try_get("before")?,
                after: row.try_get("after")?,
            })
        })
        .collect::<Result<Vec<_>>>()?;
    Ok(Page::from_rows(events, limit, |event| event.id.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn entity_names_round_trip_and_are_listed_in_order() {
        for (entity, name) in Entity::ALL.into_iter().zip(Entity::NAMES) {
            assert_eq!(entity.as_str(), name);
            assert_eq!(Entity::parse(name), Some(entity));
        }
        assert!(Entity::NAMES.windows(2).all(|pair| pair[0] < pair[1]));
        assert_eq!(Entity::parse("Site"), None);
        assert_eq!(Actor::Cli.name(), "cli");
        assert_eq!(Actor::Key("ops".into()).kind(), "api_key");
    }
}
