//! The Sparkplug host application as the edge nodes see it through the
//! broker: its STATE (online, offline) and the rebirth requests it sends,
//! for the benchmarks that publish as edge nodes.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::anyhow;
use rumqttc::{AsyncClient, Event, Incoming, MqttOptions, QoS};
use stoker_sparkplug::{HostState, NAMESPACE, parse_state};
use stoker_testkit::unique_client_id;
use tokio::task::JoinHandle;
use tokio::time::Instant;

use crate::process::StokerProcess;

/// What the broker tells about a Sparkplug host application: its STATE
/// (retained) and the rebirth requests (NCMD) it sends to a group's edge
/// nodes, which mean it saw a `seq` gap.
#[derive(Debug)]
pub struct HostWatch {
    client: AsyncClient,
    state_topic: String,
    state: Arc<Mutex<Option<HostState>>>,
    rebirths: Arc<AtomicU64>,
    first_rebirth: Arc<Mutex<Option<String>>>,
    lost: Arc<Mutex<Option<String>>>,
    task: JoinHandle<()>,
}

impl HostWatch {
    /// Connects to the broker on `port` and subscribes to
    /// `spBv1.0/STATE/{host_id}` (QoS 1) and `spBv1.0/{group}/NCMD/#` (QoS 0).
    pub async fn connect(port: u16, host_id: &str, group: &str) -> anyhow::Result<Self> {
        let mut options = MqttOptions::new(unique_client_id("bench-state"), "127.0.0.1", port);
        options
            .set_clean_session(true)
            .set_keep_alive(Duration::from_secs(30));
        let (client, mut eventloop) = AsyncClient::new(options, 16);
        let state_topic = format!("{NAMESPACE}/STATE/{host_id}");
        client.subscribe(&state_topic, QoS::AtLeastOnce).await?;
        client
            .subscribe(format!("{NAMESPACE}/{group}/NCMD/#"), QoS::AtMostOnce)
            .await?;
        let state = Arc::new(Mutex::new(None));
        let rebirths = Arc::new(AtomicU64::new(0));
        let first_rebirth = Arc::new(Mutex::new(None));
        let lost = Arc::new(Mutex::new(None));
        let task = {
            let (state, rebirths, first_rebirth, lost) = (
                Arc::clone(&state),
                Arc::clone(&rebirths),
                Arc::clone(&first_rebirth),
                Arc::clone(&lost),
            );
            tokio::spawn(async move {
                loop {
                    match eventloop.poll().await {
                        Ok(Event::Incoming(Incoming::Publish(publish))) => {
                            if publish.topic == state_topic {
                                if let (Ok(parsed), Ok(mut slot)) =
                                    (parse_state(&publish.payload), state.lock())
                                {
                                    *slot = Some(parsed);
                                }
                            } else {
                                rebirths.fetch_add(1, Ordering::Relaxed);
                                if let Ok(mut first) = first_rebirth.lock() {
                                    first.get_or_insert(publish.topic);
                                }
                            }
                        }
                        Ok(_) => {}
                        Err(error) => {
                            if let Ok(mut slot) = lost.lock() {
                                *slot = Some(error.to_string());
                            }
                            return;
                        }
                    }
                }
            })
        };
        Ok(Self {
            client,
            state_topic: format!("{NAMESPACE}/STATE/{host_id}"),
            state,
            rebirths,
            first_rebirth,
            lost,
            task,
        })
    }

    /// The host's last STATE, if any.
    pub fn state(&self) -> Option<HostState> {
        self.state.lock().ok().and_then(|state| *state)
    }

    /// An error when the host asked for a rebirth, went offline after
    /// `online_since` or the watch lost its connection.
    pub fn check(&self, online_since: i64) -> anyhow::Result<()> {
        let rebirths = self.rebirths.load(Ordering::Relaxed);
        if rebirths > 0 {
            let first = self
                .first_rebirth
                .lock()
                .ok()
                .and_then(|first| first.clone())
                .unwrap_or_default();
            return Err(anyhow!(
                "Stoker asked for {rebirths} rebirth(s) (first: {first}): it saw a seq gap, so QoS 0 messages were lost between the publishers and Stoker; pace the publishers (benches/ingest: --sparkplug-rate)"
            ));
        }
        match self.state() {
            Some(state) if !state.online && state.timestamp >= online_since => {
                return Err(anyhow!(
                    "Stoker's Sparkplug host published STATE offline (its spool is full, or it stopped): QoS 0 messages sent meanwhile are lost"
                ));
            }
            _ => {}
        }
        if let Some(error) = self.lost.lock().ok().and_then(|lost| lost.clone()) {
            return Err(anyhow!(
                "the STATE watch lost its broker connection: {error}"
            ));
        }
        Ok(())
    }

    /// Waits until the host's STATE says online with a timestamp at or
    /// after `since` (epoch ms: its connection is younger); returns that
    /// timestamp.
    pub async fn wait_online(
        &self,
        since: i64,
        stoker: &mut StokerProcess,
        limit: Duration,
    ) -> anyhow::Result<i64> {
        let deadline = Instant::now() + limit;
        loop {
            stoker.check_alive()?;
            if let Some(state) = self
                .state()
                .filter(|state| state.online && state.timestamp >= since)
            {
                return Ok(state.timestamp);
            }
            if let Some(error) = self.lost.lock().ok().and_then(|lost| lost.clone()) {
                return Err(anyhow!(
                    "the STATE watch lost its broker connection: {error}"
                ));
            }
            if Instant::now() >= deadline {
                return Err(anyhow!(
                    "no STATE online on {} within {limit:?} of starting the Sparkplug ingest process (last STATE: {:?}); its log:\n{}",
                    self.state_topic,
                    self.state(),
                    stoker.log_tail(15)
                ));
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Disconnects.
    pub async fn close(self) {
        let _ = self.client.try_disconnect();
        let _ = tokio::time::timeout(Duration::from_secs(2), &mut { self.task }).await;
    }
}
