//! API keys: every case of a key gets the right status and code.

use crate::helpers::*;
use reqwest::StatusCode;
use serde_json::{Value, json};
use stoker_metadata::Actor;
use stoker_metadata::Scope;

#[tokio::test]
async fn every_key_case_gets_the_right_status_and_code() {
    let app = spawn_seeded_app().await;
    let (_, reader) =
        stoker_metadata::create_api_key(&app.pool, &Actor::Cli, "dashboard", &[Scope::Read])
            .await
            .unwrap();
    let (_, gateway) =
        stoker_metadata::create_api_key(&app.pool, &Actor::Cli, "gateway", &[Scope::Write])
            .await
            .unwrap();
    let (revoked, revoked_token) =
        stoker_metadata::create_api_key(&app.pool, &Actor::Cli, "old", &[Scope::Read])
            .await
            .unwrap();
    stoker_metadata::revoke_api_key(&app.pool, &Actor::Cli, &revoked.name)
        .await
        .unwrap();
    let bare = reqwest::Client::new();
    let latest = format!("{}/api/v1/sites/boiler-house-1/latest", app.base);
    let send = |authorization: Option<String>| {
        let mut request = bare.get(&latest);
        if let Some(value) = authorization {
            request = request.header("authorization", value);
        }
        async move {
            let response = request.send().await.unwrap();
            let status = response.status();
            let challenge = response.headers().contains_key("www-authenticate");
            let body: Value = response.json().await.unwrap_or(Value::Null);
            (
                status,
                body["code"].as_str().unwrap_or("").to_owned(),
                challenge,
            )
        }
    };
    let bearer = |token: &str| Some(format!("Bearer {token}"));
    // The right secret of a real key id, with one character changed.
    let mut wrong = reader.expose().to_owned();
    let last = wrong.pop().unwrap();
    wrong.push(if last == 'a' { 'b' } else { 'a' });

    for (case, authorization, status, code) in [
        ("no key", None, StatusCode::UNAUTHORIZED, "missing_api_key"),
        (
            "not bearer",
            Some(format!("Basic {}", reader.expose())),
            StatusCode::UNAUTHORIZED,
            "malformed_api_key",
        ),
        (
            "malformed",
            bearer("letmein"),
            StatusCode::UNAUTHORIZED,
            "malformed_api_key",
        ),
        (
            "wrong secret",
            bearer(&wrong),
            StatusCode::UNAUTHORIZED,
            "invalid_api_key",
        ),
        (
            "unknown id",
            bearer("stk_zzzzzzzzzzzz_0123456789abcdefABCDEF0123456789"),
            StatusCode::UNAUTHORIZED,
            "invalid_api_key",
        ),
        (
            "revoked",
            bearer(revoked_token.expose()),
            StatusCode::UNAUTHORIZED,
            "revoked_api_key",
        ),
        (
            "wrong scope",
            bearer(gateway.expose()),
            StatusCode::FORBIDDEN,
            "insufficient_scope",
        ),
        ("right scope", bearer(reader.expose()), StatusCode::OK, ""),
    ] {
        let (got, got_code, challenge) = send(authorization).await;
        assert_eq!((got, got_code.as_str()), (status, code), "{case}");
        assert_eq!(
            challenge,
            status == StatusCode::UNAUTHORIZED,
            "{case}: WWW-Authenticate"
        );
    }

    // The write-only key may send telemetry but not create sites; the
    // read key may not send telemetry.
    let telemetry = format!("{}/api/v1/sites/boiler-house-1/telemetry", app.base);
    let body = json!({"b1_steam_pressure": 10.0});
    let status = bare
        .post(&telemetry)
        .bearer_auth(gateway.expose())
        .json(&body)
        .send()
        .await
        .unwrap()
        .status();
    assert_eq!(status, StatusCode::OK);
    let status = bare
        .post(&telemetry)
        .bearer_auth(reader.expose())
        .json(&body)
        .send()
        .await
        .unwrap()
        .status();
    assert_eq!(status, StatusCode::FORBIDDEN);
    let status = bare
        .post(format!("{}/api/v1/sites", app.base))
        .bearer_auth(gateway.expose())
        .json(&json!({"slug": "b-2", "name": "B 2"}))
        .send()
        .await
        .unwrap()
        .status();
    assert_eq!(status, StatusCode::FORBIDDEN);

    // Revoking takes effect at once (the change is announced).
    stoker_metadata::revoke_api_key(&app.pool, &Actor::Cli, "dashboard")
        .await
        .unwrap();
    let mut status = StatusCode::OK;
    for _ in 0..100 {
        status = send(bearer(reader.expose())).await.0;
        if status == StatusCode::UNAUTHORIZED {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    assert_eq!(status, StatusCode::UNAUTHORIZED);

    // The ops routes need no key.
    for path in ["/healthz", "/readyz", "/metrics"] {
        let status = bare
            .get(format!("{}{path}", app.base))
            .send()
            .await
            .unwrap()
            .status();
        assert_eq!(status, StatusCode::OK, "{path}");
    }
}
