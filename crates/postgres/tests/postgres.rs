//! The plumbing against a real Postgres: migrations, LISTEN, leadership.

use std::time::Duration;

use stoker_postgres::{Listener, Notice};
use stoker_testkit::TestPostgres;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

mod embedded {
    refinery::embed_migrations!("../../migrations/metadata");
}

#[tokio::test]
async fn migrations_run_once_per_schema() {
    let database = TestPostgres::create().await;
    let pool = stoker_postgres::connect(&database.options()).unwrap();
    for _ in 0..2 {
        stoker_postgres::run_schema_migrations(&pool, "metadata", embedded::migrations::runner())
            .await
            .unwrap();
    }
    let client = pool.get().await.unwrap();
    let applied: i64 = client
        .query_one("SELECT count(*) FROM metadata.schema_history", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(
        usize::try_from(applied).unwrap(),
        embedded::migrations::runner().get_migrations().len()
    );
}

/// The next notice (`None` for `Listening`), waiting at most ten seconds.
async fn next(received: &mut mpsc::UnboundedReceiver<Option<String>>) -> Option<String> {
    tokio::time::timeout(Duration::from_secs(10), received.recv())
        .await
        .expect("a notice within 10 s")
        .expect("the listener runs")
}

#[tokio::test]
async fn a_listener_reports_listening_then_every_notification() {
    let database = TestPostgres::create().await;
    let pool = stoker_postgres::connect(&database.options()).unwrap();
    let (notices, mut received) = mpsc::unbounded_channel();
    let shutdown = CancellationToken::new();
    let listener = Listener::new(database.options().connector().unwrap(), "stoker_test");
    let task = tokio::spawn(listener.run(
        shutdown.clone(),
        move |notice| {
            let notice = match notice {
                Notice::Listening => None,
                Notice::Notification(payload) => Some(payload.to_owned()),
            };
            let _ = notices.send(notice);
        },
        |lost| panic!("the connection was lost: {lost:?}"),
    ));
    assert_eq!(next(&mut received).await, None);
    let client = pool.get().await.unwrap();
    client
        .execute("SELECT pg_notify('stoker_test', 'first')", &[])
        .await
        .unwrap();
    client
        .execute("SELECT pg_notify('stoker_test', 'second')", &[])
        .await
        .unwrap();
    assert_eq!(next(&mut received).await.as_deref(), Some("first"));
    assert_eq!(next(&mut received).await.as_deref(), Some("second"));
    shutdown.cancel();
    task.await.unwrap();
}

#[tokio::test]
async fn one_process_leads_until_its_session_ends() {
    let database = TestPostgres::create().await;
    let options = database.options();
    const KEY: i64 = 0x5354_4f4b_4552_7e57;
    let first = stoker_postgres::try_lead(&options, KEY)
        .await
        .unwrap()
        .expect("the lock is free");
    assert!(first.holds().await);
    assert!(
        stoker_postgres::try_lead(&options, KEY)
            .await
            .unwrap()
            .is_none()
    );
    drop(first);
    // Postgres frees the lock once it sees the session end.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    loop {
        if stoker_postgres::try_lead(&options, KEY)
            .await
            .unwrap()
            .is_some()
        {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "the lock stayed held"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[test]
fn unreachable_postgres_is_unavailable() {
    let options = stoker_postgres::PostgresOptions::from_url("postgres://nobody@127.0.0.1:1/none");
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let error = runtime.block_on(async {
        let pool = stoker_postgres::connect(&options).unwrap();
        pool.get().await.map(drop).unwrap_err()
    });
    let error = stoker_postgres::Error::from(error);
    assert!(error.is_unavailable(), "{error}");
    assert!(
        error.to_string().starts_with("Postgres is unavailable: "),
        "{error}"
    );
}
