//! Sites, sensors, gateways, alert rules and API keys in Postgres, schema `metadata`:
//! the source of truth for what exists and who may use it.
//!
//! Layout:
//! - `migrations`: [`migrate`] for this crate's schema, through
//!   `stoker-postgres`' runner. The pool, the settings and the LISTEN
//!   connection are `stoker-postgres`' too; its errors arrive here as
//!   [`Error::Postgres`].
//! - `sites`, `sensors`: repository functions (create, get, keyset pages,
//!   update with optimistic locking, delete that never orphans); all SQL
//!   lives in the modules of this crate.
//! - `gateways`: Sparkplug B edge nodes bound to sites (create, get,
//!   keyset pages, delete), their online state and announced metrics as
//!   the Sparkplug host records births and deaths
//!   ([`record_gateway_birth`], [`record_device_birth`],
//!   [`record_gateway_death`]), the bindings it maps by
//!   ([`gateway_bindings`]) and the states analytics reads
//!   ([`gateway_states`]).
//! - `alert_rules`: the columns of `stoker-rules`' model (one explicit set
//!   per kind, checked again by the table's CHECKs) and its repository
//!   functions.
//! - `api_keys`: [`create_api_key_with`] (tokens `stk_<key_id>_<secret>`,
//!   only the SHA-256 of the secret is stored; optionally limited to sites
//!   and with an expiry), [`rotate_api_key`] (a new secret, the old one
//!   valid for a grace period), [`revoke_api_key`], and [`authenticate`] /
//!   [`verify`], which compare hashes in constant time.
//! - `audit`: the audit trail, `metadata.audit_events` (append-only):
//!   every repository function that changes configuration takes the
//!   [`Actor`] and records the change, with the entity's JSON before and
//!   after, in its own transaction ([`record_audit`] for other schemas'
//!   operator actions); [`list_audit_page`] reads it back.
//! - `service`, `maintenance`: alarm suppression's configuration: a
//!   sensor's or rule's time out of service ([`TakeOut`],
//!   [`set_sensor_out_of_service`], [`set_rule_out_of_service`],
//!   [`sensors_out_of_service`]) and maintenance windows, one-off or
//!   weekly on the site's wall clock (chrono-tz), with their repository
//!   functions and [`current_maintenance_windows`] for the evaluation loop.
//! - `changes`: [`watch_changes`] and [`watch_change_events`], a LISTEN
//!   (`stoker_postgres::Listener`) on `stoker_metadata` (row-level triggers
//!   say which table and site changed) so that in-memory copies refresh as
//!   soon as the data changes.
//!
//! Every query is a prepared statement with bound parameters; optimistic
//! locking means every update and delete names the version it read
//! ([`Error::VersionConflict`] otherwise), and pages are keyset pages
//! ([`Page`]).
//!
//! ```no_run
//! # async fn example() -> stoker_metadata::Result<()> {
//! use stoker_metadata::NewSite;
//! use stoker_postgres::PostgresOptions;
//! let pool = stoker_postgres::connect(&PostgresOptions::default())?;
//! stoker_metadata::migrate(&pool).await?;
//! let site = NewSite::parse("boiler-house-1", "Boiler house 1", "Europe/Berlin").unwrap();
//! stoker_metadata::create_site(&pool, &stoker_metadata::Actor::Cli, &site).await?;
//! # Ok(()) }
//! ```

#![warn(missing_docs)]

mod alert_rules;
mod api_keys;
mod audit;
mod changes;
mod gateways;
mod maintenance;
mod migrations;
mod sensors;
mod service;
mod sites;

pub use alert_rules::{
    RuleFilter, create_alert_rule, delete_alert_rule, enabled_alert_rules, get_alert_rule,
    list_alert_rules_page, set_rule_out_of_service, update_alert_rule,
};
pub use api_keys::{
    ApiKey, KeyCheck, MAX_ROTATION_GRACE, NewApiKey, Scope, StoredKey, authenticate,
    create_api_key, create_api_key_with, fetch_key, list_api_keys, parse_expiry, parse_sites,
    revoke_api_key, rotate_api_key, token_key_id, verify,
};
pub use audit::{
    Actor, AuditEvent, AuditFilter, Change as AuditChange, Entity, list_audit_page,
    record as record_audit,
};
pub use changes::{Change, watch_change_events, watch_changes, watch_changes_to};
pub use gateways::{
    AnnouncedMetric, GATEWAY_ID_MAX_LEN, GATEWAY_ID_PATTERN, Gateway, GatewayBinding,
    GatewayDevice, GatewayDeviceState, GatewayMetric, GatewayState, NewGateway, create_gateway,
    delete_gateway, gateway_bindings, gateway_states, get_gateway, list_gateways_page,
    record_device_birth, record_device_death, record_gateway_birth, record_gateway_death,
    register_gateway_sensors,
};
pub use maintenance::{
    DAY_NAMES, MaintenanceWindow, NewMaintenanceWindow, Schedule, Weekly, WindowFilter,
    create_maintenance_window, current_maintenance_windows, delete_maintenance_window,
    get_maintenance_window, list_maintenance_windows_page, site_timezone,
};
pub use migrations::migrate;
pub use sensors::{
    NewSensor, RegistryEntry, Sensor, SensorChanges, SiteRegistry, create_sensor, delete_sensor,
    get_sensor, list_sensors, list_sensors_page, registry, set_sensor_out_of_service,
    site_registry, update_sensor,
};
pub use service::{TakeOut, sensors_out_of_service};
pub use sites::{
    NewSite, SITE_NAME_MAX_LEN, Site, SiteChanges, TIMEZONE_MAX_LEN, create_site, delete_site,
    get_site, list_sites, list_sites_page, list_sites_page_within, timezone_names, update_site,
};

use serde::Serialize;
use stoker_domain::{SensorKey, SiteSlug};
// The repository modules name them from the crate root.
use stoker_postgres::{is_foreign_key_violation, is_unique_violation};
use uuid::Uuid;

/// What can go wrong with metadata.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// Postgres is unavailable, its settings are invalid, a query or a
    /// migration failed.
    #[error(transparent)]
    Postgres(#[from] stoker_postgres::Error),
    /// A row holds a value the domain types refuse (written outside Stoker).
    #[error("stored {what} is invalid: {reason}")]
    InvalidRow {
        /// The kind of value.
        what: &'static str,
        /// Why it was refused.
        reason: String,
    },
    /// No site has this slug.
    #[error("site {0} does not exist")]
    SiteNotFound(SiteSlug),
    /// A site with this slug exists already.
    #[error("site {0} already exists")]
    SiteExists(SiteSlug),
    /// The site has a sensor with this key already.
    #[error("sensor {sensor} already exists at site {site}")]
    SensorExists {
        /// The site.
        site: SiteSlug,
        /// The sensor's key.
        sensor: SensorKey,
    },
    /// The timezone is not an IANA name Postgres knows.
    #[error("timezone {0:?} is unknown: use an IANA name such as Europe/Berlin or UTC")]
    UnknownTimezone(String),
    /// The row exists, but with another version than the one the change
    /// was based on: someone changed it in between. Re-read and retry.
    #[error(
        "the record was changed in the meantime (its version is now {current}): re-read it and retry"
    )]
    VersionConflict {
        /// The row's version now.
        current: i64,
    },
    /// A site that still has sensors, alert rules or gateways cannot be
    /// deleted: deleting it would orphan them, and nothing is deleted in
    /// cascade.
    #[error(
        "the site still has {sensors} sensor(s), {alert_rules} alert rule(s) and {gateways} gateway(s): delete them first"
    )]
    SiteHasDependents {
        /// Its sensors.
        sensors: i64,
        /// The alert rules scoped to it.
        alert_rules: i64,
        /// The gateways bound to it.
        gateways: i64,
    },
    /// The site has no sensor with this key.
    #[error("sensor {sensor} does not exist at site {site}")]
    SensorNotFound {
        /// The site.
        site: SiteSlug,
        /// The sensor's key.
        sensor: SensorKey,
    },
    /// A sensor's kind never changes (InfluxDB holds its readings in
    /// that kind's encoding).
    #[error("the kind of sensor {sensor} cannot change: it is {current}")]
    KindUnchangeable {
        /// The sensor's key.
        sensor: SensorKey,
        /// Its kind.
        current: stoker_domain::SensorKind,
    },
    /// A change to a state sensor's states that drops, moves or renames
    /// one of them (InfluxDB holds each reading's index in the list).
    #[error("the states of sensor {sensor} may only grow at the end: {detail}")]
    StatesNotKept {
        /// The sensor's key.
        sensor: SensorKey,
        /// Which state would not be kept.
        detail: String,
    },
    /// A range or states the sensor's kind cannot have (only a numeric
    /// sensor has a range, only a state sensor states).
    #[error("{field} does not fit the sensor's kind: {message}")]
    KindConflict {
        /// The field.
        field: &'static str,
        /// What is wrong.
        message: String,
    },
    /// The site has no gateway with this id.
    #[error("gateway {id} does not exist at site {site}")]
    GatewayNotFound {
        /// The site.
        site: SiteSlug,
        /// The gateway's id.
        id: Uuid,
    },
    /// The edge node is bound already (an edge node feeds one site).
    #[error("the edge node {edge_node:?} of group {group:?} is bound to a site already")]
    GatewayExists {
        /// The group id.
        group: String,
        /// The edge node id.
        edge_node: String,
    },
    /// No alert rule has this id.
    #[error("alert rule {0} does not exist")]
    AlertRuleNotFound(Uuid),
    /// No maintenance window has this id.
    #[error("maintenance window {0} does not exist")]
    MaintenanceWindowNotFound(Uuid),
    /// No API key has this id, key id or name.
    #[error("API key {0:?} does not exist")]
    ApiKeyNotFound(String),
    /// An active API key has this name already (names pick out one active
    /// key, so that a key can be revoked by name).
    #[error("an active API key named {0:?} exists already")]
    ApiKeyExists(String),
    /// An argument is invalid; `field` names it.
    #[error("{field} is invalid: {message}")]
    InvalidInput {
        /// The argument or field.
        field: &'static str,
        /// What is wrong, in words.
        message: String,
    },
}

impl Error {
    /// Whether Postgres itself is unreachable (as opposed to a refused request).
    pub fn is_unavailable(&self) -> bool {
        matches!(self, Error::Postgres(error) if error.is_unavailable())
    }
}

stoker_postgres::wraps_postgres_errors!(Error);

/// Result with this crate's [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

impl From<(&'static str, String)> for Error {
    /// A validating constructor's `(field, message)` error.
    fn from((field, message): (&'static str, String)) -> Self {
        Error::InvalidInput { field, message }
    }
}

/// The largest page any `list_*_page` function returns.
pub const MAX_PAGE_LIMIT: i64 = 1000;

/// One page of a list in a stable order (keyset pagination: a page starts
/// after the sort key of the previous page's last item, so rows inserted
/// or deleted meanwhile never cause duplicates or gaps among the others).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Page<T> {
    /// The items, in the list's order; at most the requested limit.
    pub items: Vec<T>,
    /// The sort key of the last item when more items follow, to pass as
    /// `after` for the next page; `None` on the last page.
    pub next_after: Option<String>,
}

impl<T> Page<T> {
    /// Builds a page from up to `limit + 1` rows fetched in order: the
    /// extra row only tells that another page follows.
    pub fn from_rows(mut items: Vec<T>, limit: i64, key: impl Fn(&T) -> String) -> Self {
        let limit = usize::try_from(limit).unwrap_or(usize::MAX);
        let next_after = if items.len() > limit {
            items.truncate(limit);
            items.last().map(key)
        } else {
            None
        };
        Self { items, next_after }
    }
}

/// Checks a page size and returns the number of rows to fetch (one more
/// than the page holds, to know whether another page follows).
fn fetch_limit(limit: i64) -> Result<i64> {
    if (1..=MAX_PAGE_LIMIT).contains(&limit) {
        Ok(limit + 1)
    } else {
        Err(Error::InvalidInput {
            field: "limit",
            message: format!("limit must be between 1 and {MAX_PAGE_LIMIT}"),
        })
    }
}
