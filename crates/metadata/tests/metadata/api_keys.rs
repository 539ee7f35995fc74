//! API keys: shown once, stored as hashes, checked, limited to sites,
//! expired, rotated, revoked.

use stoker_metadata::Actor;
use stoker_metadata::{Error, KeyCheck, NewApiKey, Scope};
use stoker_testkit::TestPostgres;

use super::migrated;

/// `token` with the last character of its secret changed.
fn with_wrong_secret(token: &str) -> String {
    let mut wrong = token.to_owned();
    let last = wrong.pop().unwrap();
    wrong.push(if last == 'a' { 'b' } else { 'a' });
    wrong
}

#[tokio::test]
async fn a_key_authenticates_until_it_is_revoked() {
    let database = TestPostgres::create().await;
    let pool = migrated(&database).await;
    let (key, token) = stoker_metadata::create_api_key(
        &pool,
        &Actor::Cli,
        " dashboard ",
        &[Scope::Write, Scope::Read],
    )
    .await
    .unwrap();
    let token = token.expose().to_owned();
    assert_eq!(key.name, "dashboard");
    assert_eq!(key.scopes, [Scope::Read, Scope::Write]);
    assert_eq!(key.revoked_at, None);
    assert_eq!(token.len(), 4 + 12 + 1 + 32);
    assert!(
        token.starts_with(&format!("stk_{}_", key.key_id)),
        "{token}"
    );
    assert!(
        key.key_id
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit())
    );

    let valid = KeyCheck::Valid {
        key_id: key.key_id.clone(),
        name: key.name.clone(),
        scopes: vec![Scope::Read, Scope::Write],
        sites: None,
    };
    assert_eq!(
        stoker_metadata::authenticate(&pool, &token).await.unwrap(),
        valid
    );
    // The same key id with another secret.
    assert_eq!(
        stoker_metadata::authenticate(&pool, &with_wrong_secret(&token))
            .await
            .unwrap(),
        KeyCheck::Unknown
    );
    // A well-formed token of no key.
    let stranger = format!("stk_000000000000_{}", &token[17..]);
    assert_eq!(
        stoker_metadata::authenticate(&pool, &stranger)
            .await
            .unwrap(),
        KeyCheck::Unknown
    );
    for garbage in [
        "",
        "hunter2",
        "Bearer x",
        &format!("{token}x"),
        &token[..20],
    ] {
        assert_eq!(
            stoker_metadata::authenticate(&pool, garbage).await.unwrap(),
            KeyCheck::Malformed,
            "{garbage}"
        );
    }

    // A cached row verifies without a round trip.
    let stored = stoker_metadata::fetch_key(&pool, &key.key_id)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        stoker_metadata::verify(&token, &stored, chrono::Utc::now()),
        valid
    );
    assert!(!format!("{stored:?}").contains(&token[17..]));
    assert!(
        stoker_metadata::fetch_key(&pool, "000000000000")
            .await
            .unwrap()
            .is_none()
    );

    let revoked = stoker_metadata::revoke_api_key(&pool, &Actor::Cli, "dashboard")
        .await
        .unwrap();
    assert_eq!(revoked.id, key.id);
    let first_revocation = revoked.revoked_at.expect("revoked");
    assert_eq!(
        stoker_metadata::authenticate(&pool, &token).await.unwrap(),
        KeyCheck::Revoked
    );
    // Revoked is told only to whoever holds the secret.
    assert_eq!(
        stoker_metadata::authenticate(&pool, &with_wrong_secret(&token))
            .await
            .unwrap(),
        KeyCheck::Unknown
    );
    // Twice is fine, by any of its names, and keeps the first time.
    for which in [key.key_id.clone(), key.id.to_string(), "dashboard".into()] {
        let again = stoker_metadata::revoke_api_key(&pool, &Actor::Cli, &which)
            .await
            .unwrap();
        assert_eq!(again.id, key.id);
        assert_eq!(again.revoked_at, Some(first_revocation));
    }
    let missing = stoker_metadata::revoke_api_key(&pool, &Actor::Cli, "nobody").await;
    assert!(
        matches!(missing, Err(Error::ApiKeyNotFound(ref which)) if which == "nobody"),
        "{missing:?}"
    );
}

#[tokio::test]
async fn only_hashes_are_stored_and_listed_keys_carry_no_secret() {
    let database = TestPostgres::create().await;
    let pool = migrated(&database).await;
    let mut secrets = Vec::new();
    for (name, scopes) in [
        ("ingest gateway", &[Scope::Write][..]),
        ("ops", &[Scope::Admin, Scope::Read, Scope::Admin][..]),
    ] {
        let (_, token) = stoker_metadata::create_api_key(&pool, &Actor::Cli, name, scopes)
            .await
            .unwrap();
        secrets.push(token.expose()[17..].to_owned());
        assert_eq!(format!("{token:?}"), "***");
    }
    let keys = stoker_metadata::list_api_keys(&pool).await.unwrap();
    assert_eq!(
        keys.iter().map(|key| key.name.as_str()).collect::<Vec<_>>(),
        ["ingest gateway", "ops"]
    );
    assert_eq!(keys[1].scopes, [Scope::Read, Scope::Admin]);
    let listed = serde_json::to_string(&keys).unwrap();
    assert!(listed.contains(r#""scopes":["read","admin"]"#), "{listed}");
    assert!(
        !listed.contains("sha256") && !listed.contains("secret"),
        "{listed}"
    );

    // Nowhere in the table, in any column, is a secret.
    let client = pool.get().await.unwrap();
    let rows = client
        .query(
            "SELECT k::text AS row, encode(secret_sha256, 'escape') AS raw
             FROM metadata.api_keys k",
            &[],
        )
        .await
        .unwrap();
    for row in rows {
        let text: String = row.get("row");
        let raw: String = row.get("raw");
        for secret in &secrets {
            assert!(!text.contains(secret.as_str()) && !raw.contains(secret.as_str()));
        }
    }
}

#[tokio::test]
async fn names_and_scopes_are_checked() {
    let database = TestPostgres::create().await;
    let pool = migrated(&database).await;
    for (name, scopes, field) in [
        ("", &[Scope::Read][..], "name"),
        (&*"x".repeat(101), &[Scope::Read][..], "name"),
        ("ops", &[][..], "scopes"),
    ] {
        let refused = stoker_metadata::create_api_key(&pool, &Actor::Cli, name, scopes).await;
        assert!(
            matches!(refused, Err(Error::InvalidInput { field: f, .. }) if f == field),
            "{refused:?}"
        );
    }
    stoker_metadata::create_api_key(&pool, &Actor::Cli, "ops", &[Scope::Admin])
        .await
        .unwrap();
    let taken = stoker_metadata::create_api_key(&pool, &Actor::Cli, "ops", &[Scope::Read]).await;
    assert!(matches!(taken, Err(Error::ApiKeyExists(_))), "{taken:?}");
    // Once revoked, its name is free for the next key.
    stoker_metadata::revoke_api_key(&pool, &Actor::Cli, "ops")
        .await
        .unwrap();
    let (next, _) = stoker_metadata::create_api_key(&pool, &Actor::Cli, "ops", &[Scope::Read])
        .await
        .unwrap();
    // By name, the active key is the one revoked.
    let revoked = stoker_metadata::revoke_api_key(&pool, &Actor::Cli, "ops")
        .await
        .unwrap();
    assert_eq!(revoked.id, next.id);

    // The table holds nothing but known scopes.
    let client = pool.get().await.unwrap();
    let refused = client
        .execute(
            "INSERT INTO metadata.api_keys (id, key_id, secret_sha256, name, scopes)
             VALUES (gen_random_uuid(), 'abcdefabcdef', sha256('x'), 'raw', '{root}')",
            &[],
        )
        .await
        .unwrap_err();
    assert_eq!(
        refused.code(),
        Some(&tokio_postgres::error::SqlState::CHECK_VIOLATION),
        "{refused}"
    );
}

fn site(slug: &str) -> stoker_domain::SiteSlug {
    stoker_domain::SiteSlug::parse(slug).unwrap()
}

#[tokio::test]
async fn a_key_is_limited_to_registered_sites_and_may_expire() {
    let database = TestPostgres::create().await;
    let pool = migrated(&database).await;
    let house = stoker_metadata::NewSite::parse("boiler-house-1", "Boiler house 1", "UTC").unwrap();
    stoker_metadata::create_site(&pool, &Actor::Cli, &house)
        .await
        .unwrap();

    let unknown = NewApiKey {
        sites: Some(vec![site("boiler-house-1"), site("nowhere")]),
        ..NewApiKey::new("gw-1", &[Scope::Write])
    };
    let refused = stoker_metadata::create_api_key_with(&pool, &Actor::Cli, &unknown).await;
    assert!(
        matches!(&refused, Err(Error::InvalidInput { field: "sites", message }) if message.contains("nowhere")),
        "{refused:?}"
    );
    let past = NewApiKey {
        expires_at: Some(chrono::Utc::now() - chrono::Duration::seconds(1)),
        ..NewApiKey::new("gw-1", &[Scope::Write])
    };
    let refused = stoker_metadata::create_api_key_with(&pool, &Actor::Cli, &past).await;
    assert!(
        matches!(
            refused,
            Err(Error::InvalidInput {
                field: "expires_at",
                ..
            })
        ),
        "{refused:?}"
    );

    let expires_at = chrono::Utc::now() + chrono::Duration::days(90);
    let new = NewApiKey {
        sites: Some(vec![site("boiler-house-1"), site("boiler-house-1")]),
        expires_at: Some(expires_at),
        ..NewApiKey::new("gw-1", &[Scope::Write])
    };
    let (key, token) = stoker_metadata::create_api_key_with(&pool, &Actor::Cli, &new)
        .await
        .unwrap();
    assert_eq!(key.sites, Some(vec![site("boiler-house-1")]));
    assert_eq!(
        key.expires_at.map(|at| at.timestamp_micros()),
        Some(expires_at.timestamp_micros())
    );
    let token = token.expose().to_owned();
    match stoker_metadata::authenticate(&pool, &token).await.unwrap() {
        KeyCheck::Valid { sites, .. } => assert_eq!(sites, Some(vec![site("boiler-house-1")])),
        other => panic!("{other:?}"),
    }
    // Past its expiry (moved back in the table), it is expired.
    let client = pool.get().await.unwrap();
    client
        .execute(
            "UPDATE metadata.api_keys SET expires_at = now() - interval '1 second' WHERE name = 'gw-1'",
            &[],
        )
        .await
        .unwrap();
    assert_eq!(
        stoker_metadata::authenticate(&pool, &token).await.unwrap(),
        KeyCheck::Expired
    );
    let listed = stoker_metadata::list_api_keys(&pool).await.unwrap();
    assert!(listed[0].is_expired(chrono::Utc::now()));
}

#[tokio::test]
async fn a_rotated_key_takes_both_secrets_until_the_grace_period_ends() {
    let database = TestPostgres::create().await;
    let pool = migrated(&database).await;
    let (key, old) = stoker_metadata::create_api_key(&pool, &Actor::Cli, "grafana", &[Scope::Read])
        .await
        .unwrap();
    let old = old.expose().to_owned();
    let grace = std::time::Duration::from_secs(3600);
    let (rotated, new) = stoker_metadata::rotate_api_key(&pool, &Actor::Cli, "grafana", grace)
        .await
        .unwrap();
    let new = new.expose().to_owned();
    assert_eq!((rotated.id, &rotated.key_id), (key.id, &key.key_id));
    assert_ne!(old, new);
    assert!(new.starts_with(&format!("stk_{}_", key.key_id)));
    let rotated_at = rotated.rotated_at.unwrap();
    let until = rotated.previous_valid_until.unwrap();
    assert_eq!((until - rotated_at).num_seconds(), 3600);
    for token in [&old, &new] {
        assert!(matches!(
            stoker_metadata::authenticate(&pool, token).await.unwrap(),
            KeyCheck::Valid { .. }
        ));
    }
    // After the grace period (judged at a later time), the old one is
    // expired and the new one valid.
    let stored = stoker_metadata::fetch_key(&pool, &key.key_id)
        .await
        .unwrap()
        .unwrap();
    let later = until + chrono::Duration::seconds(1);
    assert_eq!(
        stoker_metadata::verify(&old, &stored, later),
        KeyCheck::Expired
    );
    assert!(matches!(
        stoker_metadata::verify(&new, &stored, later),
        KeyCheck::Valid { .. }
    ));

    // Rotating again without grace: only the newest secret is taken.
    let (_, newest) =
        stoker_metadata::rotate_api_key(&pool, &Actor::Cli, &key.key_id, std::time::Duration::ZERO)
            .await
            .unwrap();
    for (token, expected) in [(&old, KeyCheck::Unknown), (&new, KeyCheck::Expired)] {
        assert_eq!(
            stoker_metadata::authenticate(&pool, token).await.unwrap(),
            expected
        );
    }
    assert!(matches!(
        stoker_metadata::authenticate(&pool, newest.expose())
            .await
            .unwrap(),
        KeyCheck::Valid { .. }
    ));

    let too_long = stoker_metadata::rotate_api_key(
        &pool,
        &Actor::Cli,
        "grafana",
        stoker_metadata::MAX_ROTATION_GRACE + std::time::Duration::from_secs(1),
    )
    .await;
    assert!(
        matches!(too_long, Err(Error::InvalidInput { field: "grace", .. })),
        "{too_long:?}"
    );
    stoker_metadata::revoke_api_key(&pool, &Actor::Cli, "grafana")
        .await
        .unwrap();
    let revoked = stoker_metadata::rotate_api_key(&pool, &Actor::Cli, "grafana", grace).await;
    assert!(
        matches!(revoked, Err(Error::ApiKeyNotFound(_))),
        "{revoked:?}"
    );
    let nul = stoker_metadata::revoke_api_key(&pool, &Actor::Cli, "gra\0fana").await;
    assert!(matches!(nul, Err(Error::ApiKeyNotFound(_))), "{nul:?}");
}
