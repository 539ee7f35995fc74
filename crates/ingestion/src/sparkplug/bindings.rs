//! Which site each gateway (Sparkplug group and edge node) is bound to:
//! the host maps an edge node's metrics to that site's sensors. Held in
//! memory, replaced whole whenever metadata announces a change to
//! `gateways`.

use std::collections::HashMap;
use std::sync::{Arc, RwLock};
use std::time::Duration;

use stoker_domain::SiteSlug;
use stoker_postgres::{Pool, PostgresOptions};
use tokio::sync::broadcast;
use tokio_util::sync::CancellationToken;

/// Gateway bindings by group id, then edge node id (looked up by `&str`).
type ByGateway = HashMap<String, HashMap<String, SiteSlug>>;

/// The bindings in force, shared by the session (lookups) and the task
/// that reloads them.
#[derive(Debug, Default)]
pub(crate) struct Bindings {
    by_gateway: RwLock<Arc<ByGateway>>,
    /// Whether a list was loaded at least once.
    loaded: std::sync::atomic::AtomicBool,
}

impl Bindings {
    /// Replaces every binding with `bindings` (group, edge node, site).
    pub(crate) fn replace(&self, bindings: impl IntoIterator<Item = (String, String, SiteSlug)>) {
        let mut by_gateway = ByGateway::new();
        for (group, edge_node, site) in bindings {
            by_gateway.entry(group).or_default().insert(edge_node, site);
        }
        let by_gateway = Arc::new(by_gateway);
        match self.by_gateway.write() {
            Ok(mut current) => *current = by_gateway,
            Err(poisoned) => *poisoned.into_inner() = by_gateway,
        }
        self.loaded
            .store(true, std::sync::atomic::Ordering::Release);
    }

    /// The site the gateway is bound to, if any.
    pub(crate) fn site(&self, group: &str, edge_node: &str) -> Option<SiteSlug> {
        let current = match self.by_gateway.read() {
            Ok(current) => Arc::clone(&current),
            Err(poisoned) => Arc::clone(&poisoned.into_inner()),
        };
        current.get(group)?.get(edge_node).cloned()
    }

    /// Whether the bindings were loaded (a gateway without one is then
    /// unbound, rather than not known yet).
    pub(crate) fn is_loaded(&self) -> bool {
        self.loaded.load(std::sync::atomic::Ordering::Acquire)
    }

    /// How many gateways are bound.
    pub(crate) fn len(&self) -> usize {
        let current = match self.by_gateway.read() {
            Ok(current) => Arc::clone(&current),
            Err(poisoned) => Arc::clone(&poisoned.into_inner()),
        };
        current.values().map(HashMap::len).sum()
    }
}

impl Bindings {
    /// Loads every binding from metadata.
    pub(crate) async fn reload(&self, pool: &Pool) -> stoker_metadata::Result<usize> {
        let bindings = stoker_metadata::gateway_bindings(pool).await?;
        let count = bindings.len();
        self.replace(
            bindings
                .into_iter()
                .map(|binding| (binding.group, binding.edge_node, binding.site)),
        );
        Ok(count)
    }

    /// Reloads the bindings at start and on every change of `gateways`
    /// that metadata's change feed announces (and after every reconnection
    /// of the feed, which announces "anything may have changed"), until
    /// `shutdown`. A failed reload keeps the last bindings and is tried
    /// again a few seconds later.
    pub(crate) async fn follow(
        self: Arc<Self>,
        pool: Pool,
        options: PostgresOptions,
        shutdown: CancellationToken,
    ) {
        let (sender, mut changes) = broadcast::channel(256);
        let listener = tokio::spawn(stoker_metadata::watch_change_events(
            options,
            sender,
            shutdown.clone(),
        ));
        let mut stale = true;
        loop {
            if stale {
                match self.reload(&pool).await {
                    Ok(count) => {
                        stale = false;
                        tracing::debug!(gateways = count, "gateway bindings loaded");
                    }
                    Err(error) => {
                        tracing::warn!(%error, "cannot load the gateway bindings; keeping the last ones and trying again")
                    }
                }
            }
            let retry = async {
                if stale {
                    tokio::time::sleep(Duration::from_secs(3)).await;
                } else {
                    std::future::pending::<()>().await;
                }
            };
            tokio::select! {
                () = shutdown.cancelled() => break,
                () = retry => {}
                change = changes.recv() => match change {
                    Ok(change) => stale |= change.concerns("gateways"),
                    Err(broadcast::error::RecvError::Lagged(_)) => stale = true,
                    Err(broadcast::error::RecvError::Closed) => break,
                },
            }
        }
        if let Ok(Err(error)) = listener.await {
            tracing::warn!(%error, "metadata change listener of the gateway bindings stopped");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn site(slug: &str) -> SiteSlug {
        SiteSlug::parse(slug).unwrap()
    }

    #[test]
    fn a_gateway_is_found_by_group_and_edge_node_and_replaced_whole() {
        let bindings = Bindings::default();
        assert!(!bindings.is_loaded());
        assert_eq!(bindings.site("plant", "gw1"), None);
        bindings.replace([
            ("plant".into(), "gw1".into(), site("boiler-house-1")),
            ("plant".into(), "gw 2".into(), site("boiler-house-2")),
        ]);
        assert!(bindings.is_loaded());
        assert_eq!(bindings.len(), 2);
        assert_eq!(bindings.site("plant", "gw1"), Some(site("boiler-house-1")));
        assert_eq!(bindings.site("plant", "gw 2"), Some(site("boiler-house-2")));
        assert_eq!(bindings.site("other", "gw1"), None);
        bindings.replace([("plant".into(), "gw 2".into(), site("boiler-house-3"))]);
        assert_eq!(bindings.site("plant", "gw1"), None);
        assert_eq!(bindings.site("plant", "gw 2"), Some(site("boiler-house-3")));
    }
}
