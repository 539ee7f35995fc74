//! Publishes short runs to the real Mosquitto on 127.0.0.1:1883, each under
//! a topic prefix of its own, and checks what a subscriber receives.

use std::collections::HashMap;
use std::time::Duration;

use rumqttc::{AsyncClient, Event, MqttOptions, Packet, QoS};
use stoker_simulator::{FaultKind, FaultSpec, SimulateArgs, Summary, fault_plan, fleet, run};
use tokio::sync::mpsc::UnboundedReceiver;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

const BROKER_HOST: &str = "127.0.0.1";
const BROKER_PORT: u16 = 1883;

/// The `values` object of a telemetry message.
type Readings = serde_json::Map<String, serde_json::Value>;

/// A client subscribed to every site's telemetry under a topic prefix.
struct Subscriber {
    client: AsyncClient,
    messages: UnboundedReceiver<(String, Vec<u8>)>,
    task: JoinHandle<()>,
}

impl Subscriber {
    /// Subscribes, and waits for the SUBACK so that no message is missed.
    async fn start(run_id: u64, topic_prefix: &str) -> Self {
        let mut options = MqttOptions::new(
            format!("simulator-test-sub-{run_id:016x}"),
            BROKER_HOST,
            BROKER_PORT,
        );
        options.set_keep_alive(Duration::from_secs(5));
        let (client, mut events) = AsyncClient::new(options, 64);
        client
            .subscribe(format!("{topic_prefix}sites/+/telemetry"), QoS::AtLeastOnce)
            .await
            .unwrap();
        let (messages_tx, messages) = tokio::sync::mpsc::unbounded_channel();
        let (subscribed_tx, subscribed_rx) = tokio::sync::oneshot::channel();
        let task = tokio::spawn(async move {
            let mut subscribed_tx = Some(subscribed_tx);
            loop {
                match events.poll().await {
                    Ok(Event::Incoming(Packet::SubAck(_))) => {
                        if let Some(subscribed_tx) = subscribed_tx.take() {
                            let _ = subscribed_tx.send(());
                        }
                    }
                    Ok(Event::Incoming(Packet::Publish(publish))) => {
                        let message = (publish.topic, publish.payload.to_vec());
                        if messages_tx.send(message).is_err() {
                            return;
                        }
                    }
                    Ok(Event::Outgoing(rumqttc::Outgoing::Disconnect)) => return,
                    Ok(_) => {}
                    Err(error) => {
                        panic!("subscriber lost the broker at {BROKER_HOST}:{BROKER_PORT}: {error}")
                    }
                }
            }
        });
        tokio::time::timeout(Duration::from_secs(5), subscribed_rx)
            .await
            .expect("no SUBACK within 5 s: is Mosquitto running on 127.0.0.1:1883?")
            .unwrap();
        Self {
            client,
            messages,
            task,
        }
    }

    /// The next message: its topic and payload.
    async fn next(&mut self) -> (String, Vec<u8>) {
        tokio::time::timeout(Duration::from_secs(5), self.messages.recv())
            .await
            .expect("a published message did not arrive within 5 s")
            .unwrap()
    }

    /// Checks that nothing more arrives, and disconnects.
    async fn finish(mut self) {
        assert!(
            tokio::time::timeout(Duration::from_millis(300), self.messages.recv())
                .await
                .is_err(),
            "more messages arrived than were published"
        );
        self.client.disconnect().await.unwrap();
        let _ = tokio::time::timeout(Duration::from_secs(2), self.task).await;
    }
}

#[tokio::test]
async fn a_bounded_run_delivers_every_message_with_the_contract_shape() {
    let run_id: u64 = rand::random();
    let topic_prefix = format!("test-{run_id:016x}/");
    let args = SimulateArgs {
        sites: 2,
        sensors: 12,
        rate: 20.0,
        messages: Some(20),
        qos: 1,
        topic_prefix: topic_prefix.clone(),
        seed: Some(42),
        ..SimulateArgs::default()
    };
    let expected_fleet = fleet(&args);
    let mut subscriber = Subscriber::start(run_id, &topic_prefix).await;
    let summary = publish(run_id, args).await;
    assert_eq!(summary.messages, 20);
    assert_eq!(summary.readings, 20 * 12);

    let mut per_site: HashMap<String, Vec<i64>> = HashMap::new();
    for _ in 0..20 {
        let (topic, payload) = subscriber.next().await;
        let slug = topic
            .strip_prefix(&format!("{topic_prefix}sites/"))
            .and_then(|rest| rest.strip_suffix("/telemetry"))
            .unwrap_or_else(|| panic!("unexpected topic {topic}"));
        let site = expected_fleet
            .iter()
            .find(|site| site.slug == slug)
            .unwrap_or_else(|| panic!("unknown site {slug}"));

        let body: serde_json::Value = serde_json::from_slice(&payload).unwrap();
        let object = body.as_object().unwrap();
        assert_eq!(object.len(), 2, "{body}");
        let ts = object["ts"].as_i64().unwrap();
        let values = object["values"].as_object().unwrap();
        assert_eq!(values.len(), site.sensors.len(), "{body}");
        for sensor in &site.sensors {
            let value = values[&sensor.key].as_f64().unwrap();
            assert!(
                value.is_finite() && (sensor.min..=sensor.max).contains(&value),
                "{} = {value}",
                sensor.key
            );
        }
        per_site.entry(slug.to_owned()).or_default().push(ts);
    }
    // The run is bounded: nothing more arrives.
    subscriber.finish().await;
    // Both sites publish, each every 1/rate = 50 ms, with rising timestamps.
    assert_eq!(per_site.len(), 2);
    let now = chrono::Utc::now().timestamp_millis();
    for timestamps in per_site.values() {
        assert_eq!(timestamps.len(), 10);
        for pair in timestamps.windows(2) {
            assert_eq!(pair[1] - pair[0], 50, "{timestamps:?}");
        }
        assert!(
            (now - timestamps[0]).abs() < 60_000,
            "{timestamps:?} vs now {now}"
        );
    }
}

#[tokio::test]
async fn with_faults_the_silent_sensor_publishes_nothing_during_its_silence() {
    let run_id: u64 = rand::random();
    let topic_prefix = format!("test-{run_id:016x}/");
    let rate = 20.0;
    let cycle = Duration::from_secs(8);
    // One whole fault cycle of two sites.
    let messages_per_site = (rate * cycle.as_secs_f64()) as u64;
    let args = SimulateArgs {
        sites: 2,
        sensors: 12,
        rate,
        messages: Some(2 * messages_per_site),
        qos: 1,
        topic_prefix: topic_prefix.clone(),
        seed: Some(42),
        faults: true,
        fault_cycle: cycle,
        ..SimulateArgs::default()
    };
    let plan = fault_plan(&args);
    let fault = |kind| plan.iter().find(|spec| spec.kind == kind).unwrap();
    let silent = fault(FaultKind::Silent);
    let stuck = fault(FaultKind::Stuck);
    assert_eq!(
        (silent.site.as_str(), silent.sensor.as_str()),
        ("boiler-house-1", "b1_feedwater_flow")
    );
    let mut subscriber = Subscriber::start(run_id, &topic_prefix).await;
    let summary = publish(run_id, args).await;
    assert_eq!(summary.messages, 2 * messages_per_site);

    // Each site's messages: timestamp and readings.
    let mut per_site: HashMap<String, Vec<(i64, Readings)>> = HashMap::new();
    for _ in 0..summary.messages {
        let (topic, payload) = subscriber.next().await;
        let body: serde_json::Value = serde_json::from_slice(&payload).unwrap();
        let ts = body["ts"].as_i64().unwrap();
        let values = body["values"].as_object().unwrap().clone();
        per_site.entry(topic).or_default().push((ts, values));
    }
    subscriber.finish().await;

    let tick = Duration::from_secs_f64(1.0 / rate);
    let mut silent_messages = 0;
    let mut longest_silence = Duration::ZERO;
    let mut last_heard = None;
    let mut faulty_site = per_site
        .remove(&format!("{topic_prefix}sites/boiler-house-1/telemetry"))
        .unwrap();
    faulty_site.sort_by_key(|(ts, _)| *ts);
    for (index, (ts, values)) in faulty_site.iter().enumerate() {
        // The n-th message of a site is n ticks into the run.
        let elapsed = tick * (index as u32 + 1);
        let near_an_edge = |spec: &FaultSpec| {
            spec.is_active(elapsed.saturating_sub(tick)) != spec.is_active(elapsed + tick)
        };
        let heard = values.contains_key("b1_feedwater_flow");
        if !near_an_edge(silent) {
            assert_eq!(
                heard,
                !silent.is_active(elapsed),
                "message {index} at {elapsed:?}: {values:?}"
            );
        }
        if heard {
            if let Some(last_heard) = last_heard {
                longest_silence =
                    longest_silence.max(Duration::from_millis((ts - last_heard) as u64));
            }
            last_heard = Some(*ts);
        } else {
            silent_messages += 1;
        }
        // The other sensors go on publishing.
        assert_eq!(values.len(), if heard { 12 } else { 11 }, "{values:?}");
        if stuck.is_active(elapsed) && !near_an_edge(stuck) {
            assert_eq!(values["b1_flue_o2"], 20.9, "{values:?}");
        }
    }
    // Silent for 3/8 of the cycle: 3 s, 60 messages.
    assert_eq!(silent.duration, Duration::from_secs(3));
    assert!((59..=61).contains(&silent_messages), "{silent_messages}");
    assert!(longest_silence >= silent.duration, "{longest_silence:?}");
    assert_eq!(
        summary.readings,
        2 * messages_per_site * 12 - silent_messages
    );

    // The other site has no faults.
    let healthy_site = &per_site[&format!("{topic_prefix}sites/boiler-house-2/telemetry")];
    assert_eq!(healthy_site.len() as u64, messages_per_site);
    assert!(healthy_site.iter().all(|(_, values)| values.len() == 12));
}

/// Runs the simulator to its end (at most 30 s) and discards the
/// persistent session it leaves on the broker.
async fn publish(run_id: u64, args: SimulateArgs) -> Summary {
    let publisher_id = format!("simulator-test-pub-{run_id:016x}");
    let publisher = MqttOptions::new(publisher_id.clone(), BROKER_HOST, BROKER_PORT);
    let summary = tokio::time::timeout(
        Duration::from_secs(30),
        run(args, publisher, CancellationToken::new()),
    )
    .await
    .expect("the run did not finish within 30 s")
    .unwrap();
    discard_session(publisher_id).await;
    summary
}

/// A QoS 1 run leaves a persistent session on the broker; connecting once
/// with a clean session under the same client id discards it.
async fn discard_session(client_id: String) {
    let options = MqttOptions::new(client_id, BROKER_HOST, BROKER_PORT);
    let (client, mut events) = AsyncClient::new(options, 8);
    let _ = tokio::time::timeout(Duration::from_secs(5), async {
        loop {
            match events.poll().await {
                Ok(Event::Incoming(Packet::ConnAck(_))) => {
                    let _ = client.try_disconnect();
                }
                Ok(Event::Outgoing(rumqttc::Outgoing::Disconnect)) | Err(_) => return,
                Ok(_) => {}
            }
        }
    })
    .await;
}

#[tokio::test]
async fn with_digital_signals_each_message_carries_a_burner_boolean_and_a_sequencer_state() {
    let run_id: u64 = rand::random();
    let topic_prefix = format!("test-{run_id:016x}/");
    let args = SimulateArgs {
        sites: 1,
        sensors: 12,
        rate: 20.0,
        messages: Some(5),
        qos: 1,
        topic_prefix: topic_prefix.clone(),
        seed: Some(42),
        digital: true,
        ..SimulateArgs::default()
    };
    let site = fleet(&args).remove(0);
    assert_eq!(site.signals.len(), 4, "two boilers, two signals each");
    let mut subscriber = Subscriber::start(run_id, &topic_prefix).await;
    let summary = publish(run_id, args).await;
    assert_eq!(summary.messages, 5);
    assert_eq!(summary.readings, 5 * (12 + 4));
    for _ in 0..5 {
        let (_, payload) = subscriber.next().await;
        let body: serde_json::Value = serde_json::from_slice(&payload).unwrap();
        let values = body["values"].as_object().unwrap();
        assert_eq!(values.len(), 16, "{body}");
        for boiler in 1..=2 {
            let burner = values[&format!("b{boiler}_burner_on")].as_bool();
            let state = values[&format!("b{boiler}_sequencer")].as_str().unwrap();
            assert!(
                ["off", "purge", "ignition", "firing", "lockout"].contains(&state),
                "{body}"
            );
            assert_eq!(burner, Some(state == "firing"), "{body}");
        }
    }
    subscriber.finish().await;
}
