//! The authorization matrix over every route of the OpenAPI document (so
//! a new route is covered without touching this file).

use super::*;
use reqwest::header::HeaderValue;
use reqwest::{Method, StatusCode};
use stoker_metadata::Actor;
use stoker_metadata::Scope;

#[tokio::test]
async fn every_route_answers_each_kind_of_key_with_the_right_status_and_code() {
    let app = spawn_app().await;
    let seeded = seed(&app).await;
    let operations = operations(&app).await;
    let admin = key(&app, "matrix-admin", &[Scope::Admin]).await;
    let reader = key(&app, "matrix-read", &[Scope::Read]).await;
    let writer = key(&app, "matrix-write", &[Scope::Write]).await;
    let read_write = key(&app, "matrix-read-write", &[Scope::Read, Scope::Write]).await;
    let revoked = key(&app, "matrix-revoked", &[Scope::Admin]).await;
    stoker_metadata::revoke_api_key(&app.pool, &Actor::Cli, "matrix-revoked")
        .await
        .unwrap();
    // The right secret of a real key id, one character changed.
    let mut wrong_secret = admin.clone();
    let last = wrong_secret.pop().unwrap();
    wrong_secret.push(if last == 'a' { 'b' } else { 'a' });

    // (case, Authorization, status, code) for a route that needs a key,
    // whatever its scope.
    let refused: Vec<(&str, Option<HeaderValue>, StatusCode, &str)> = vec![
        ("no key", None, StatusCode::UNAUTHORIZED, "missing_api_key"),
        (
            "Bearer alone",
            Some(HeaderValue::from_static("Bearer")),
            StatusCode::UNAUTHORIZED,
            "malformed_api_key",
        ),
        (
            "Bearer x",
            Some(HeaderValue::from_static("Bearer x")),
            StatusCode::UNAUTHORIZED,
            "malformed_api_key",
        ),
        (
            "Basic",
            Some(HeaderValue::from_static("Basic dXNlcjpwYXNzd29yZA==")),
            StatusCode::UNAUTHORIZED,
            "malformed_api_key",
        ),
        (
            "the key without Bearer",
            Some(HeaderValue::from_str(&admin).unwrap()),
            StatusCode::UNAUTHORIZED,
            "malformed_api_key",
        ),
        (
            "garbage",
            Some(HeaderValue::from_static("%%% ' OR 1=1 -- \" ;")),
            StatusCode::UNAUTHORIZED,
            "malformed_api_key",
        ),
        (
            "very long (8 KiB)",
            Some(bearer(&format!("stk_{}", "a".repeat(8 * 1024)))),
            StatusCode::UNAUTHORIZED,
            "malformed_api_key",
        ),
        (
            "a character too many",
            Some(bearer(&format!("{admin}x"))),
            StatusCode::UNAUTHORIZED,
            "malformed_api_key",
        ),
        (
            "not ASCII",
            Some(HeaderValue::from_bytes(b"Bearer stk_\xff\xfe\xc3\xa9").unwrap()),
            StatusCode::UNAUTHORIZED,
            "malformed_api_key",
        ),
        (
            "unknown key id",
            Some(bearer("stk_zzzzzzzzzzzz_0123456789abcdefABCDEF0123456789")),
            StatusCode::UNAUTHORIZED,
            "invalid_api_key",
        ),
        (
            "wrong secret",
            Some(bearer(&wrong_secret)),
            StatusCode::UNAUTHORIZED,
            "invalid_api_key",
        ),
        (
            "revoked",
            Some(bearer(&revoked)),
            StatusCode::UNAUTHORIZED,
            "revoked_api_key",
        ),
    ];

    let client = reqwest::Client::new();
    let mut keyed = 0;
    let mut open = 0;
    let mut requests = 0;
    // Every case is checked, and every failure shown, before failing.
    let mut failures = 0;
    for operation in &operations {
        let url = format!("{}{}", app.base, operation.path(&seeded, None));
        let headers: &[(&str, &str)] =
            if operation.method == Method::PATCH || operation.method == Method::DELETE {
                &[("if-match", STALE)]
            } else {
                &[]
            };
        let Some(scope) = operation.scope.as_deref() else {
            // Open: any Authorization, or none, is ignored.
            open += 1;
            for (case, authorization, _, _) in &refused {
                let answer = send(
                    &client,
                    operation.method.clone(),
                    &url,
                    authorization.clone(),
                    operation.body(),
                    headers,
                )
                .await;
                requests += 1;
                assert!(
                    answer.status.is_success(),
                    "{} with {case}: {} {}",
                    operation.name(),
                    answer.status,
                    answer.body
                );
            }
            continue;
        };
        keyed += 1;
        let (right, wrong) = match scope {
            "read" => (&reader, &writer),
            "write" => (&writer, &reader),
            "admin" => (&admin, &read_write),
            other => panic!("{}: unknown scope {other}", operation.name()),
        };
        let cases = refused.iter().cloned().chain([(
            "wrong scope",
            Some(bearer(wrong)),
            StatusCode::FORBIDDEN,
            "insufficient_scope",
        )]);
        for (case, authorization, status, code) in cases {
            let answer = send(
                &client,
                operation.method.clone(),
                &url,
                authorization,
                operation.body(),
                headers,
            )
            .await;
            requests += 1;
            let name = format!("{} with {case}", operation.name());
            if operation.is_influx_compatible() {
                // InfluxDB's routes answer as InfluxDB does (their own
                // test checks the shapes): the same status, InfluxDB's body.
                failures += checked(|| {
                    assert_eq!(answer.status, status, "{name}: {}", answer.body);
                    let said = answer.body["message"]
                        .as_str()
                        .or(answer.body["error"].as_str())
                        .unwrap_or("");
                    assert!(!said.is_empty(), "{name}: {}", answer.body);
                });
                continue;
            }
            failures += checked(|| {
                assert_eq!(
                    (answer.status, answer.code()),
                    (status, code),
                    "{name}: {}",
                    answer.body
                );
                answer.assert_precise_client_error(&name);
                assert_eq!(
                    answer.headers.contains_key("www-authenticate"),
                    status == StatusCode::UNAUTHORIZED,
                    "{name}: WWW-Authenticate"
                );
            });
        }
        // The right scope reaches the handler: whatever it answers, it is
        // not about the key, not about the route, and not a failure.
        let answer = send(
            &client,
            operation.method.clone(),
            &url,
            Some(bearer(right)),
            operation.body(),
            headers,
        )
        .await;
        requests += 1;
        let name = format!("{} with the right scope", operation.name());
        assert!(
            answer.status != StatusCode::UNAUTHORIZED
                && answer.status != StatusCode::FORBIDDEN
                && !answer.status.is_server_error()
                && !matches!(answer.code(), "route_not_found" | "method_not_allowed"),
            "{name}: {} {}",
            answer.status,
            answer.body
        );
        // Admin includes every scope.
        let answer = send(
            &client,
            operation.method.clone(),
            &url,
            Some(bearer(&admin)),
            operation.body(),
            headers,
        )
        .await;
        requests += 1;
        assert!(
            answer.status != StatusCode::UNAUTHORIZED && answer.status != StatusCode::FORBIDDEN,
            "{} with admin: {} {}",
            operation.name(),
            answer.status,
            answer.body
        );
    }
    assert_eq!(failures, 0, "{failures} cases of the matrix failed (above)");
    assert_eq!(open, 4, "healthz, readyz, metrics, openapi.json");
    assert!(keyed >= 24, "{keyed} keyed operations");
    eprintln!(
        "authorization matrix: {keyed} keyed operations x {} cases + {open} open operations x {} cases = {requests} requests",
        refused.len() + 3,
        refused.len()
    );
}
