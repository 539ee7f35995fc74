//! The outbox: transactional, each notification sent once, bodies and
//! settings checked, Postgres outages waited out.

use std::collections::HashSet;
use std::time::Duration;
use stoker_analytics::notify::{self, Dispatcher, NotifyOptions};
use stoker_postgres::PostgresOptions;
use tokio_util::sync::CancellationToken;

use crate::support::*;

#[tokio::test]
async fn a_rolled_back_transition_sends_nothing() {
    let (postgres, pool) = setup().await;
    let receiver = Receiver::start(|_| 200).await;
    let options = options(&[&receiver.url]);

    let rolled_back = new_event(&pool).await;
    {
        let mut client = pool.get().await.unwrap();
        let tx = client.transaction().await.unwrap();
        notify::enqueue(&tx, &options, rolled_back, &site(), &body(rolled_back))
            .await
            .unwrap();
        tx.rollback().await.unwrap();
    }
    // A committed one afterwards: once it is delivered, the dispatcher has
    // seen everything there was to see.
    let (committed, _) = enqueue_committed(&pool, &options).await;
    let running = Running::start(&pool, &postgres, options, &system_broker());
    wait_for(
        &pool,
        committed,
        "webhook",
        "the committed one is delivered",
        |row| row.delivered,
    )
    .await;
    wait_for(
        &pool,
        committed,
        "mqtt",
        "the committed one is published",
        |row| row.delivered,
    )
    .await;
    running.stop().await;

    assert!(notifications(&pool, rolled_back).await.is_empty());
    let received = receiver.received();
    assert_eq!(received.len(), 1, "{received:?}");
    assert_eq!(
        received[0].header("x-stoker-event-id"),
        committed.to_string()
    );
}

#[tokio::test]
async fn dispatchers_side_by_side_send_each_notification_once() {
    let (postgres, pool) = setup().await;
    let receiver = Receiver::start(|_| 200).await;
    let mut options = options(&[&receiver.url]);
    // Thirty alarms at one site at once are a flood: here each is sent.
    options.flood.count = 0;
    let mut events = Vec::new();
    for _ in 0..30 {
        events.push(enqueue_committed(&pool, &options).await.0);
    }
    let first = Running::start(&pool, &postgres, options.clone(), &system_broker());
    let second = Running::start(&pool, &postgres, options, &system_broker());
    eventually("every notification is delivered", || async {
        let client = pool.get().await.unwrap();
        let pending: i64 = client
            .query_one(
                "SELECT count(*) FROM analytics.notifications WHERE delivered_at IS NULL",
                &[],
            )
            .await
            .unwrap()
            .get(0);
        (pending == 0).then_some(())
    })
    .await;
    first.stop().await;
    second.stop().await;

    let received = receiver.received();
    let deliveries: HashSet<&str> = received
        .iter()
        .map(|request| request.header("x-stoker-delivery"))
        .collect();
    assert_eq!(received.len(), events.len(), "each sent once");
    assert_eq!(deliveries.len(), events.len());
    let client = pool.get().await.unwrap();
    let attempts: i64 = client
        .query_one("SELECT sum(attempts) FROM analytics.notifications", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(attempts, 2 * events.len() as i64);
}

#[tokio::test]
async fn enqueue_refuses_a_body_that_is_not_json() {
    let (_postgres, pool) = setup().await;
    let event = new_event(&pool).await;
    let mut client = pool.get().await.unwrap();
    let tx = client.transaction().await.unwrap();
    let error = notify::enqueue(&tx, &options(&[]), event, &site(), "fired!")
        .await
        .unwrap_err();
    assert!(matches!(error, notify::Error::InvalidBody(_)), "{error}");
}

#[tokio::test]
async fn the_dispatcher_waits_out_an_unreachable_postgres_and_stops_on_shutdown() {
    let unreachable = PostgresOptions::from_url(format!(
        "postgres://postgres@127.0.0.1:{}/stoker",
        closed_port()
    ));
    let pool = stoker_postgres::connect(&unreachable).unwrap();
    let dispatcher = Dispatcher::new(pool, &unreachable, options(&[]), &system_broker()).unwrap();
    let shutdown = CancellationToken::new();
    let task = tokio::spawn(dispatcher.run(shutdown.clone()));
    // Let it fail a few times first.
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(!task.is_finished(), "an outage does not end the dispatcher");
    shutdown.cancel();
    tokio::time::timeout(PATIENCE, task)
        .await
        .expect("the dispatcher stops on shutdown")
        .unwrap();
}

#[tokio::test]
async fn settings_are_checked_before_anything_starts() {
    let pool = stoker_postgres::connect(&PostgresOptions::default()).unwrap();
    let postgres = PostgresOptions::default();
    let without_secret = NotifyOptions {
        webhook_secret: None,
        ..options(&["https://hooks.example.com/stoker"])
    };
    let error = Dispatcher::new(pool.clone(), &postgres, without_secret, &system_broker())
        .unwrap_err()
        .to_string();
    assert!(error.contains("ALERT_WEBHOOK_SECRET"), "{error}");
    let error = Dispatcher::new(pool, &postgres, options(&[]), "http://127.0.0.1:1883")
        .unwrap_err()
        .to_string();
    assert!(error.contains("MQTT_URL"), "{error}");
}
