//! API keys: shown once, stored as hashes, checked, revoked.

use stoker_metadata::{Error, KeyCheck, Scope};
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
    let (key, token) =
        stoker_metadata::create_api_key(&pool, " dashboard ", &[Scope::Write, Scope::Read])
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
    assert_eq!(stoker_metadata::verify(&token, &stored), valid);
    assert!(!format!("{stored:?}").contains(&token[17..]));
    assert!(
        stoker_metadata::fetch_key(&pool, "000000000000")
            .await
            .unwrap()
            .is_none()
    );

    let revoked = stoker_metadata::revoke_api_key(&pool, "dashboard")
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
        let again = stoker_metadata::revoke_api_key(&pool, &which)
            .await
            .unwrap();
        assert_eq!(again.id, key.id);
        assert_eq!(again.revoked_at, Some(first_revocation));
    }
    let missing = stoker_metadata::revoke_api_key(&pool, "nobody").await;
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
        let (_, token) = stoker_metadata::create_api_key(&pool, name, scopes)
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
        let refused = stoker_metadata::create_api_key(&pool, name, scopes).await;
        assert!(
            matches!(refused, Err(Error::InvalidInput { field: f, .. }) if f == field),
            "{refused:?}"
        );
    }
    stoker_metadata::create_api_key(&pool, "ops", &[Scope::Admin])
        .await
        .unwrap();
    let taken = stoker_metadata::create_api_key(&pool, "ops", &[Scope::Read]).await;
    assert!(matches!(taken, Err(Error::ApiKeyExists(_))), "{taken:?}");
    // Once revoked, its name is free for the next key.
    stoker_metadata::revoke_api_key(&pool, "ops").await.unwrap();
    let (next, _) = stoker_metadata::create_api_key(&pool, "ops", &[Scope::Read])
        .await
        .unwrap();
    // By name, the active key is the one revoked.
    let revoked = stoker_metadata::revoke_api_key(&pool, "ops").await.unwrap();
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
