//! The Sparkplug B host application (DESIGN.md, "Sparkplug B"): one ingest
//! process at a time leads it, and its readings take the same path as
//! every other reading.
//!
//! ```text
//! lead ── Postgres advisory lock ──▶ session (its own MQTT connection, STATE will)
//!   session: PUBLISH ─▶ stoker_sparkplug::Host::handle ─┬─▶ readings, refusals ─queue─▶ writer
//!                                                         ├─▶ rebirth NCMD ─▶ broker (QoS 0)
//!                                                         └─▶ births, deaths ─▶ events ─▶ Postgres
//! ```
//!
//! - `lead`: the leadership loop: only the holder of [`LOCK_KEY`] runs a
//!   session; the others try again every few seconds and take over when
//!   Postgres frees the lock of a leader that died.
//! - `session`: the connection (clean session, the STATE offline message
//!   as its will), subscriptions without `$share`, STATE online after
//!   subscribing, each message through the protocol core, STATE offline
//!   while the spool is full.
//! - `bindings`: which site each gateway (group, edge node) is bound to.
//! - `events`: births and deaths recorded in metadata, off the message path.
//! - `stats`: the counters and gauges, and their Prometheus metrics.

mod bindings;
mod events;
mod lead;
mod session;
mod stats;

use std::sync::Arc;

use stoker_sparkplug::{GroupId, HostId};

pub(crate) use lead::{Host, run};
pub(crate) use stats::{SparkplugStats, register};

use crate::IngestOptions;

/// The Sparkplug host's advisory lock (`stoker_postgres::try_lead`), one
/// per deployment: analytics' evaluation and rollup hold `…0001` and `…0002`.
pub(crate) const LOCK_KEY: i64 = 0x5354_4f4b_4552_0003;

/// The Sparkplug B host application's settings.
#[derive(Debug, Clone, clap::Args)]
pub struct SparkplugOptions {
    /// Sparkplug B groups whose edge nodes Stoker reads, comma-separated group ids (e.g. "plant-1,plant-2"); empty (the default): no Sparkplug host. One ingest process at a time reads them (a Postgres advisory lock), subscribed to spBv1.0/{group}/# without $share.
    #[arg(
        id = "sparkplug_groups",
        long = "sparkplug-groups",
        env = "SPARKPLUG_GROUPS",
        default_value = "",
        value_parser = Groups::parse
    )]
    pub groups: Groups,

    /// The Sparkplug host application id: Stoker publishes its STATE on spBv1.0/STATE/{id} (retained; offline as its will), which edge nodes configured with this primary host watch to store and forward. The same in every ingest process of a deployment.
    #[arg(
        id = "sparkplug_host_id",
        long = "sparkplug-host-id",
        env = "SPARKPLUG_HOST_ID",
        default_value = "stoker",
        value_parser = parse_host_id
    )]
    pub host_id: HostId,
}

impl Default for SparkplugOptions {
    fn default() -> Self {
        Self {
            groups: Groups::default(),
            host_id: parse_host_id("stoker").expect("a valid host id"),
        }
    }
}

/// The configured Sparkplug groups (`SPARKPLUG_GROUPS`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Groups(Arc<[GroupId]>);

impl Groups {
    /// Parses `SPARKPLUG_GROUPS`: comma-separated group ids, blanks around
    /// them and empty entries ignored, each a valid Sparkplug id.
    pub fn parse(value: &str) -> Result<Self, String> {
        let mut groups: Vec<GroupId> = Vec::new();
        for part in value
            .split(',')
            .map(str::trim)
            .filter(|part| !part.is_empty())
        {
            let group = GroupId::parse(part).map_err(|error| error.to_string())?;
            if !groups.contains(&group) {
                groups.push(group);
            }
        }
        Ok(Self(groups.into()))
    }

    /// The groups, in the order given.
    pub fn as_slice(&self) -> &[GroupId] {
        &self.0
    }

    /// Whether no group is configured (the host is off).
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

/// The host to run, when `SPARKPLUG_GROUPS` names any group.
pub(crate) fn host(
    options: &IngestOptions,
    stores: &stoker_stores::Stores,
    envelopes: &crate::queue::QueueSender,
    ingest: &Arc<crate::stats::Stats>,
) -> crate::Result<Option<Host>> {
    if options.sparkplug.groups.is_empty() {
        return Ok(None);
    }
    Ok(Some(Host {
        settings: settings(options)?,
        pool: stores.pool.clone(),
        postgres: stores.postgres.clone(),
        envelopes: envelopes.clone(),
        ingest: Arc::clone(ingest),
        stats: Arc::default(),
    }))
}

/// The host's connection settings: the broker of `MQTT_URL`, as the
/// client id of ingestion's connection with `-sparkplug` after it (its
/// own clean session beside ingestion's persistent one).
fn settings(options: &IngestOptions) -> crate::Result<session::Settings> {
    let client_id = format!("{}-sparkplug", options.mqtt.client_id);
    let mqtt = crate::client_options(&options.mqtt.url, &client_id)?;
    Ok(session::Settings {
        broker: crate::mqtt::Broker::new(&options.mqtt)?,
        client_id,
        login: mqtt.credentials(),
        keep_alive: mqtt.keep_alive(),
        groups: options.sparkplug.groups.as_slice().to_vec(),
        host_id: options.sparkplug.host_id.clone(),
    })
}

fn parse_host_id(value: &str) -> Result<HostId, String> {
    HostId::parse(value.trim()).map_err(|error| error.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn groups_are_comma_separated_valid_ids() {
        assert!(Groups::parse("").unwrap().is_empty());
        assert!(Groups::parse(" , ").unwrap().is_empty());
        let groups = Groups::parse("plant-1, Plant 2,plant-1").unwrap();
        let names: Vec<&str> = groups.as_slice().iter().map(GroupId::as_str).collect();
        assert_eq!(names, ["plant-1", "Plant 2"]);
        assert!(
            Groups::parse("plant/1")
                .unwrap_err()
                .contains("group id \"plant/1\" is invalid")
        );
        assert!(parse_host_id("a#").is_err());
        assert_eq!(SparkplugOptions::default().host_id.as_str(), "stoker");
    }
}
