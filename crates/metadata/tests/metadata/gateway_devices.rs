//! A gateway's devices: their births and deaths as the Sparkplug host
//! records them, each of the gateway's current session only, and what an
//! NBIRTH and an NDEATH do to them.

use stoker_domain::EpochMillis;
use stoker_metadata::Actor;
use stoker_testkit::TestPostgres;

use super::gateways::{at, gateway, metric};
use super::{slug, with_site};

/// Each device of the gateway `plant`/`gw1`: (id, online, last birth and
/// death in ms), as `gateway_states` reads them, with its sensors.
async fn devices(
    pool: &stoker_postgres::Pool,
) -> Vec<(String, bool, Option<i64>, Option<i64>, Vec<String>)> {
    let states = stoker_metadata::gateway_states(pool).await.unwrap();
    states[0]
        .devices
        .iter()
        .map(|device| {
            let mut sensors: Vec<String> = device
                .sensors
                .iter()
                .map(|key| key.as_str().to_owned())
                .collect();
            sensors.sort_unstable();
            (
                device.device.clone(),
                device.online,
                device.last_birth_at.map(EpochMillis::as_millis),
                device.last_death_at.map(EpochMillis::as_millis),
                sensors,
            )
        })
        .collect()
}

#[tokio::test]
async fn device_births_and_deaths_of_the_current_session_are_recorded() {
    let database = TestPostgres::create().await;
    let pool = with_site(&database).await;
    let house = slug("boiler-house-1");
    let created =
        stoker_metadata::create_gateway(&pool, &Actor::Cli, &house, &gateway("plant", "gw1"))
            .await
            .unwrap();
    assert!(
        !stoker_metadata::record_device_death(&pool, "plant", "gw9", "boiler 1", at(1), None)
            .await
            .unwrap(),
        "not bound"
    );
    // Before any birth, a device birth is of no session.
    stoker_metadata::record_device_birth(&pool, "plant", "gw1", "boiler 1", at(500), None, &[])
        .await
        .unwrap();
    assert!(devices(&pool).await.is_empty());

    stoker_metadata::record_gateway_birth(&pool, "plant", "gw1", at(1_000), Some(3), &[])
        .await
        .unwrap();
    for device in ["boiler 1", "boiler 2"] {
        let announced = [metric(Some(device), "Flame", "Boolean")];
        assert!(
            stoker_metadata::record_device_birth(
                &pool,
                "plant",
                "gw1",
                device,
                at(1_100),
                Some(3),
                &announced
            )
            .await
            .unwrap()
        );
    }
    // A device birth of an earlier session (bdSeq 2), recorded late.
    let stale = [metric(Some("boiler 3"), "Flame", "Boolean")];
    stoker_metadata::record_device_birth(
        &pool,
        "plant",
        "gw1",
        "boiler 3",
        at(1_200),
        Some(2),
        &stale,
    )
    .await
    .unwrap();
    let flame = |device: &str| vec![format!("{}_flame", device.replace(' ', "_"))];
    assert_eq!(
        devices(&pool).await,
        [
            (
                "boiler 1".into(),
                true,
                Some(1_100),
                None,
                flame("boiler 1")
            ),
            (
                "boiler 2".into(),
                true,
                Some(1_100),
                None,
                flame("boiler 2")
            ),
        ]
    );

    // Stale deaths change nothing: of an earlier session, before the
    // gateway's birth, of a device never born.
    for (device, when, bd_seq) in [
        ("boiler 1", 1_500, Some(2)),
        ("boiler 1", 900, Some(3)),
        ("boiler 7", 1_500, Some(3)),
    ] {
        assert!(
            stoker_metadata::record_device_death(&pool, "plant", "gw1", device, at(when), bd_seq)
                .await
                .unwrap()
        );
    }
    assert!(devices(&pool).await.iter().all(|device| device.1));

    // A DDEATH of the current session: that device only; its sensors stay
    // named; the gateway stays online. A second death is no death.
    for when in [1_500, 1_600] {
        assert!(
            stoker_metadata::record_device_death(
                &pool,
                "plant",
                "gw1",
                "boiler 1",
                at(when),
                Some(3)
            )
            .await
            .unwrap()
        );
    }
    assert_eq!(
        devices(&pool).await,
        [
            (
                "boiler 1".into(),
                false,
                Some(1_100),
                Some(1_500),
                flame("boiler 1")
            ),
            (
                "boiler 2".into(),
                true,
                Some(1_100),
                None,
                flame("boiler 2")
            ),
        ]
    );
    let gateway = stoker_metadata::get_gateway(&pool, &house, created.id)
        .await
        .unwrap();
    assert!(gateway.online);
    assert_eq!(
        gateway.version, 1,
        "births and deaths leave the binding's version"
    );
    let shown: Vec<(&str, bool, Option<i64>)> = gateway
        .devices
        .iter()
        .map(|device| {
            (
                device.device.as_str(),
                device.online,
                device.last_death_at.map(|at| at.timestamp_millis()),
            )
        })
        .collect();
    assert_eq!(
        shown,
        [("boiler 1", false, Some(1_500)), ("boiler 2", true, None)]
    );

    // The NDEATH takes the online devices offline; a DDEATH after it is stale.
    stoker_metadata::record_gateway_death(&pool, "plant", "gw1", at(2_000), Some(3))
        .await
        .unwrap();
    stoker_metadata::record_device_death(&pool, "plant", "gw1", "boiler 2", at(2_100), Some(3))
        .await
        .unwrap();
    assert_eq!(
        devices(&pool).await,
        [
            (
                "boiler 1".into(),
                false,
                Some(1_100),
                Some(1_500),
                flame("boiler 1")
            ),
            (
                "boiler 2".into(),
                false,
                Some(1_100),
                Some(2_000),
                flame("boiler 2")
            ),
        ]
    );

    // An NBIRTH brings no device online (and drops their metrics); their
    // DBIRTHs of the new session do, not one of the session before.
    stoker_metadata::record_gateway_birth(&pool, "plant", "gw1", at(3_000), Some(4), &[])
        .await
        .unwrap();
    let announced = [metric(Some("boiler 1"), "Flame", "Boolean")];
    for (bd_seq, when) in [(Some(4), 3_100), (Some(3), 3_200)] {
        stoker_metadata::record_device_birth(
            &pool,
            "plant",
            "gw1",
            "boiler 1",
            at(when),
            bd_seq,
            &announced,
        )
        .await
        .unwrap();
    }
    assert_eq!(
        devices(&pool).await,
        [
            (
                "boiler 1".into(),
                true,
                Some(3_100),
                Some(1_500),
                flame("boiler 1")
            ),
            ("boiler 2".into(), false, Some(1_100), Some(2_000), vec![]),
        ]
    );

    // A rebirth without a death: the new session's devices are offline
    // until their DBIRTHs, with no death recorded.
    stoker_metadata::record_gateway_birth(&pool, "plant", "gw1", at(4_000), Some(5), &[])
        .await
        .unwrap();
    assert_eq!(
        devices(&pool).await[0],
        ("boiler 1".into(), false, Some(3_100), Some(1_500), vec![])
    );

    // Unbinding the gateway takes its devices.
    stoker_metadata::delete_gateway(&pool, &Actor::Cli, &house, created.id, None)
        .await
        .unwrap();
    let client = pool.get().await.unwrap();
    let left: i64 = client
        .query_one("SELECT count(*) FROM metadata.gateway_devices", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(left, 0);
}
