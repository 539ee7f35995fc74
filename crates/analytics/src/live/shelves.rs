//! Shelves the evaluation loop takes off at their expiry.

use stoker_domain::SiteSlug;

use super::{Evaluator, TickReport};
use crate::Result;
use crate::store;

impl Evaluator {
    /// Takes off their shelf the alerts whose shelf expired (wall-clock
    /// time: shelving is an operator's); one still active is announced
    /// again.
    pub(super) async fn unshelve_expired(&self, report: &mut TickReport) -> Result<()> {
        let unshelved =
            store::unshelve_expired(&self.stores.pool, &self.outbox, chrono::Utc::now()).await?;
        for alert in &unshelved {
            report.unshelved += 1;
            tracing::info!(alert = %alert.id, site = %alert.site, active = alert.active, "alert shelf expired: unshelved");
            if let Ok(site) = SiteSlug::parse(&alert.site) {
                self.forget_dashboard(&site).await;
            }
        }
        Ok(())
    }
}
