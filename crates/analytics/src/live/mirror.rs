//! The leader's state mirrored to Redis (`alert_state`): written at
//! every tick, never read back (a new leader rebuilds it from Postgres and
//! InfluxDB).

use std::collections::HashMap;

use serde::Serialize;
use stoker_cache::AlertStateKey;
use uuid::Uuid;

use super::{Evaluator, StateKey};
use crate::engine::Phase;

impl Evaluator {
    /// Writes pending and firing states to Redis and deletes the states
    /// that became quiet. Redis is a mirror: a failure is logged, no more.
    pub(super) async fn mirror(&mut self, tick: i64) {
        #[derive(Serialize)]
        struct Mirrored {
            phase: &'static str,
            since: i64,
            tick: i64,
        }
        let rule_ids: HashMap<Uuid, String> = self
            .phases
            .keys()
            .chain(self.mirrored.iter())
            .map(|(rule, _, _)| (*rule, rule.to_string()))
            .collect();
        fn as_key<'a>(
            rule_ids: &'a HashMap<Uuid, String>,
            (rule, site, sensor): &'a StateKey,
        ) -> AlertStateKey<'a> {
            AlertStateKey {
                rule_id: rule_ids.get(rule).map_or("", String::as_str),
                site: site.as_str(),
                sensor: sensor.as_str(),
            }
        }
        let mut set = Vec::with_capacity(self.phases.len());
        for (key, phase) in &self.phases {
            let (phase, since) = match *phase {
                Phase::Pending { since } => ("pending", since),
                Phase::Firing { since } => ("firing", since),
                Phase::Quiet => continue,
            };
            let json = serde_json::to_string(&Mirrored { phase, since, tick }).unwrap_or_default();
            set.push((as_key(&rule_ids, key), json));
        }
        let gone: Vec<AlertStateKey<'_>> = self
            .mirrored
            .iter()
            .filter(|key| !self.phases.contains_key(*key))
            .map(|key| as_key(&rule_ids, key))
            .collect();
        if let Err(error) = self.stores.cache.write_alert_states(&set, &gone).await {
            tracing::debug!(%error, "could not mirror alert states to Redis");
        }
        drop(set);
        drop(gone);
        self.mirrored = self.phases.keys().cloned().collect();
    }
}
