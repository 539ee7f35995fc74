//! The `gateway_offline` alarm and the `no_data` alerts it holds back, and
//! those a dead device's sensors would raise: all read from the gateways'
//! and their devices' rows the Sparkplug host writes.

use std::collections::HashSet;

use stoker_domain::{EpochMillis, SensorKey, SiteSlug};

use super::{Evaluator, TickReport};
use crate::Result;
use crate::store;

impl Evaluator {
    /// Raises `gateway_offline` for every bound gateway that died (offline
    /// after having been online) and has none for that death yet, and
    /// resolves it for a gateway online again or no longer bound. Postgres
    /// holds both sides (the gateway rows the Sparkplug host writes, the
    /// alerts), so a new leader needs no state of its own.
    pub(super) async fn gateway_alarms(
        &self,
        gateways: &[stoker_metadata::GatewayState],
        report: &mut TickReport,
    ) -> Result<()> {
        let open: Vec<store::Alert> = store::open_alerts(&self.stores.pool, None)
            .await?
            .into_iter()
            .filter(|alert| alert.kind == store::GATEWAY_OFFLINE)
            .collect();
        let is_open = |group: &str, edge_node: &str| {
            open.iter().any(|alert| {
                alert
                    .gateway
                    .as_ref()
                    .is_some_and(|g| g.group == group && g.edge_node == edge_node)
            })
        };
        for gateway in gateways {
            let name = format!("{}/{}", gateway.group, gateway.edge_node);
            match (gateway.online, gateway.last_death_at, gateway.last_birth_at) {
                (false, Some(died), _) => {
                    let verdict = store::GatewayVerdict {
                        site: &gateway.site,
                        group: &gateway.group,
                        edge_node: &gateway.edge_node,
                        at: died,
                        message: format!(
                            "gateway {name} is offline since {}: its {} sensor(s) report nothing, and their no_data alerts are held back until it returns",
                            died.to_datetime()
                                .to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
                            gateway.sensors.len()
                        ),
                    };
                    if let Some(alert) =
                        store::open_gateway_alert(&self.stores.pool, &self.outbox, &verdict).await?
                    {
                        report.fired += 1;
                        tracing::info!(alert = %alert.id, gateway = %name, site = %gateway.site, "gateway offline: alert fired");
                        self.forget_dashboard(&gateway.site).await;
                    }
                }
                (true, _, Some(born)) if is_open(&gateway.group, &gateway.edge_node) => {
                    let verdict = store::GatewayVerdict {
                        site: &gateway.site,
                        group: &gateway.group,
                        edge_node: &gateway.edge_node,
                        at: born,
                        message: format!(
                            "gateway {name} is online again since {}",
                            born.to_datetime()
                                .to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
                        ),
                    };
                    self.resolve_gateway_alert(&verdict, report).await?;
                }
                _ => {}
            }
        }
        // A gateway unbound while offline: nothing will bring it back.
        for alert in &open {
            let Some(gateway) = &alert.gateway else {
                continue;
            };
            let bound = gateways
                .iter()
                .any(|g| g.group == gateway.group && g.edge_node == gateway.edge_node);
            let Ok(site) = SiteSlug::parse(&alert.site) else {
                continue;
            };
            if !bound {
                let verdict = store::GatewayVerdict {
                    site: &site,
                    group: &gateway.group,
                    edge_node: &gateway.edge_node,
                    at: EpochMillis::now(),
                    message: format!(
                        "gateway {}/{} is no longer bound to a site",
                        gateway.group, gateway.edge_node
                    ),
                };
                self.resolve_gateway_alert(&verdict, report).await?;
            }
        }
        Ok(())
    }

    async fn resolve_gateway_alert(
        &self,
        verdict: &store::GatewayVerdict<'_>,
        report: &mut TickReport,
    ) -> Result<()> {
        if let Some(alert) =
            store::clear_gateway_alert(&self.stores.pool, &self.outbox, verdict).await?
        {
            report.cleared += 1;
            tracing::info!(alert = %alert.id, gateway = %format!("{}/{}", verdict.group, verdict.edge_node), site = %verdict.site, message = %verdict.message, "gateway alert resolved");
            self.forget_dashboard(verdict.site).await;
        }
        Ok(())
    }
}

/// The sensors whose `no_data` alerts are held back, at their gateway's
/// site: those the last births of a gateway that is offline after having
/// been online named, and those the last DBIRTH of a device that is dead
/// (offline after a recorded death) named while its gateway is online. A
/// device's death raises no alarm of its own: its gateway's alert is the
/// one alarm, for the gateway's death.
pub(super) fn silenced_sensors(
    gateways: &[stoker_metadata::GatewayState],
) -> HashSet<(&SiteSlug, &SensorKey)> {
    let mut silenced = HashSet::new();
    for gateway in gateways {
        let site = &gateway.site;
        if !gateway.online && gateway.last_death_at.is_some() {
            silenced.extend(gateway.sensors.iter().map(|sensor| (site, sensor)));
            continue;
        }
        for device in &gateway.devices {
            if !device.online && device.last_death_at.is_some() {
                silenced.extend(device.sensors.iter().map(|sensor| (site, sensor)));
            }
        }
    }
    silenced
}
