//! `stoker apikey`: keys limited to sites and with an expiry, rotation
//! with a grace period, as an operator types them.

use std::process::{Command, Output};

use stoker_metadata::KeyCheck;
use stoker_testkit::TestPostgres;

use crate::helpers::BINARY;

fn apikey(database_url: &str, args: &[&str]) -> Output {
    Command::new(BINARY)
        .arg("apikey")
        .args(args)
        .env("DATABASE_URL", database_url)
        .env("RUST_LOG", "warn")
        .output()
        .expect("run the stoker binary")
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

#[tokio::test]
async fn keys_are_limited_to_sites_expire_and_rotate_from_the_command_line() {
    let postgres = TestPostgres::create().await;
    let pool = postgres.migrated_pool().await;
    let site = stoker_metadata::NewSite::parse("boiler-house-1", "Boiler house 1", "UTC").unwrap();
    let seeder = stoker_metadata::Actor::Key("tests".into());
    stoker_metadata::create_site(&pool, &seeder, &site)
        .await
        .unwrap();
    let url = postgres.url();

    for (args, words) in [
        (&["--sites", "nowhere"][..], "no such site: nowhere"),
        (&["--sites", "Not A Slug"][..], "--sites"),
        (&["--expires", "soon"][..], "--expires"),
        (
            &["--expires", "2001-01-01T00:00:00Z"][..],
            "not in the future",
        ),
    ] {
        let mut all = vec!["create", "--name", "gw-1", "--scopes", "write"];
        all.extend_from_slice(args);
        let output = apikey(&url, &all);
        assert_eq!(
            output.status.code(),
            Some(2),
            "{args:?}: {}",
            text(&output.stderr)
        );
        assert!(
            text(&output.stderr).contains(words),
            "{args:?}: {}",
            text(&output.stderr)
        );
    }

    let output = apikey(
        &url,
        &[
            "create",
            "--name",
            "gw-1",
            "--scopes",
            "write",
            "--sites",
            "boiler-house-1",
            "--expires",
            "90d",
        ],
    );
    assert!(output.status.success(), "{}", text(&output.stderr));
    let old = text(&output.stdout).trim().to_owned();
    assert!(
        text(&output.stderr).contains("sites boiler-house-1"),
        "{}",
        text(&output.stderr)
    );
    match stoker_metadata::authenticate(&pool, &old).await.unwrap() {
        KeyCheck::Valid { sites, .. } => {
            let sites: Vec<String> = sites.unwrap().iter().map(ToString::to_string).collect();
            assert_eq!(sites, ["boiler-house-1"]);
        }
        other => panic!("{other:?}"),
    }

    let output = apikey(&url, &["rotate", "--name", "gw-1", "--grace", "24h"]);
    assert!(output.status.success(), "{}", text(&output.stderr));
    let new = text(&output.stdout).trim().to_owned();
    assert!(new.starts_with("stk_") && new != old, "{new}");
    assert!(
        text(&output.stderr).contains("valid until"),
        "{}",
        text(&output.stderr)
    );
    for token in [&old, &new] {
        assert!(matches!(
            stoker_metadata::authenticate(&pool, token).await.unwrap(),
            KeyCheck::Valid { .. }
        ));
    }
    let output = apikey(&url, &["rotate", "--name", "gw-1", "--grace", "0s"]);
    assert!(output.status.success(), "{}", text(&output.stderr));
    assert_eq!(
        stoker_metadata::authenticate(&pool, &new).await.unwrap(),
        KeyCheck::Expired
    );
    let output = apikey(&url, &["rotate", "--name", "nobody"]);
    assert_eq!(output.status.code(), Some(1), "{}", text(&output.stderr));

    let output = apikey(&url, &["list"]);
    assert!(output.status.success(), "{}", text(&output.stderr));
    let listed = text(&output.stdout);
    let row = listed
        .lines()
        .find(|line| line.starts_with("gw-1"))
        .unwrap();
    assert!(
        row.contains("boiler-house-1") && row.contains("write"),
        "{listed}"
    );
    assert!(!listed.contains(&old[17..]), "a secret is listed: {listed}");

    let output = apikey(&url, &["revoke", "gw-1"]);
    assert!(output.status.success(), "{}", text(&output.stderr));

    // Every change made from the command line is in the audit trail under
    // `cli`; the failed attempts left nothing.
    let by_cli = stoker_metadata::AuditFilter {
        actor: Some("cli".into()),
        ..Default::default()
    };
    let page = stoker_metadata::list_audit_page(&pool, &by_cli, 100, None)
        .await
        .unwrap();
    let actions: Vec<(&str, &str, &str, &str)> = page
        .items
        .iter()
        .rev()
        .map(|event| {
            (
                event.entity.as_str(),
                event.action.as_str(),
                event.entity_id.as_str(),
                event.actor_kind.as_str(),
            )
        })
        .collect();
    assert_eq!(
        actions,
        [
            ("api_key", "created", "gw-1", "cli"),
            ("api_key", "rotated", "gw-1", "cli"),
            ("api_key", "rotated", "gw-1", "cli"),
            ("api_key", "revoked", "gw-1", "cli"),
        ]
    );
    let trail = format!("{:?}", page.items);
    assert!(
        !trail.contains(&old[17..]) && !trail.contains(&new[17..]),
        "{trail}"
    );
}
