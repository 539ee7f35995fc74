//! Where each alert rule stands for each sensor it is pending or firing
//! for: `alert_state:{rule_id}:{site}:{sensor}`, TTL 300 s, written by the
//! analytics leader at every evaluation. Sensor keys are unique per site
//! only, hence the site in the key. A rule that is quiet for a sensor has
//! no key. Lost with Redis, it is written again at the next evaluation
//! (the leader's state comes from Postgres and InfluxDB, not from here).

use std::time::Duration;

use crate::{Cache, Result};

/// How long an alert state lives without being written again.
pub const ALERT_STATE_TTL: Duration = Duration::from_secs(300);

/// One `alert_state` key's parts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AlertStateKey<'a> {
    /// The rule's id.
    pub rule_id: &'a str,
    /// The site's slug.
    pub site: &'a str,
    /// The sensor's key.
    pub sensor: &'a str,
}

impl Cache {
    fn alert_state_key(&self, key: AlertStateKey<'_>) -> String {
        self.key(&["alert_state", key.rule_id, key.site, key.sensor])
    }

    /// Writes these states (JSON) with [`ALERT_STATE_TTL`] and deletes
    /// those keys, in one round trip.
    pub async fn write_alert_states(
        &self,
        set: &[(AlertStateKey<'_>, String)],
        delete: &[AlertStateKey<'_>],
    ) -> Result<()> {
        if set.is_empty() && delete.is_empty() {
            return Ok(());
        }
        let mut pipeline = redis::pipe();
        for (key, json) in set {
            pipeline
                .cmd("SET")
                .arg(self.alert_state_key(*key))
                .arg(json)
                .arg("EX")
                .arg(ALERT_STATE_TTL.as_secs())
                .ignore();
        }
        for key in delete {
            pipeline.cmd("DEL").arg(self.alert_state_key(*key)).ignore();
        }
        let mut connection = self.connection.clone();
        pipeline.query_async::<()>(&mut connection).await?;
        Ok(())
    }

    /// One rule's state for one sensor (JSON), if it is pending or firing.
    pub async fn alert_state(&self, key: AlertStateKey<'_>) -> Result<Option<String>> {
        let mut connection = self.connection.clone();
        let value: Option<String> = redis::cmd("GET")
            .arg(self.alert_state_key(key))
            .query_async(&mut connection)
            .await?;
        Ok(value)
    }
}
