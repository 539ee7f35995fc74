//! Oversized bodies and headers, and slow clients, cut off precisely.

use std::time::{Duration, Instant};

use super::*;
use reqwest::StatusCode;
use serde_json::{Value, json};
use stoker_metadata::Scope;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// Sends raw bytes on a new connection and reads until the server closes
/// it or `limit` passes. What came back, and whether the server closed the
/// connection (EOF or reset) within `limit`.
async fn raw_exchange(app: &TestApp, request: Vec<u8>, limit: Duration) -> (String, bool) {
    let address = app.base.trim_start_matches("http://");
    let stream = tokio::net::TcpStream::connect(address).await.unwrap();
    let (mut reader, mut writer) = stream.into_split();
    let writing = tokio::spawn(async move {
        // The server may close before reading everything: not an error here.
        let _ = writer.write_all(&request).await;
        writer
    });
    let mut received = Vec::new();
    let mut buffer = [0_u8; 4096];
    let deadline = tokio::time::Instant::now() + limit;
    let closed = loop {
        match tokio::time::timeout_at(deadline, reader.read(&mut buffer)).await {
            Err(_) => break false,
            Ok(Ok(0)) | Ok(Err(_)) => break true,
            Ok(Ok(read)) => received.extend_from_slice(&buffer[..read]),
        }
    };
    writing.abort();
    (String::from_utf8_lossy(&received).into_owned(), closed)
}

/// The status of a raw response, if there is one.
fn raw_status(response: &str) -> Option<u16> {
    response
        .strip_prefix("HTTP/1.1 ")
        .and_then(|rest| rest.get(..3))
        .and_then(|code| code.parse().ok())
}

async fn assert_still_serving(app: &TestApp) {
    let (status, _) = app.get("/healthz").await;
    assert_eq!(status, StatusCode::OK);
    let (status, _) = app.get("/api/v1/sites").await;
    assert_eq!(status, StatusCode::OK);
}

#[tokio::test]
async fn oversized_bodies_are_refused_413_and_chunked_ones_411() {
    let app = spawn_app().await;
    let seeded = seed(&app).await;
    let admin = key(&app, "oversized-admin", &[Scope::Admin]).await;
    let client = reqwest::Client::new();
    let mut checked = 0;
    for operation in operations(&app).await.iter().filter(|o| o.has_body) {
        let mut url = format!("{}{}", app.base, operation.path(&seeded, None));
        if operation.influx {
            // The write's site, so that the body is what is judged.
            url.push_str(&format!("?bucket={SITE}&db={SITE}"));
        }
        for (size, oversized) in [
            (operation.body_limit() + 1, true),
            (4 * 1024 * 1024, true),
            (operation.body_limit(), false),
        ] {
            // A JSON object of exactly `size` bytes.
            let padding = size - r#"{"x":""}"#.len();
            let body = format!(r#"{{"x":"{}"}}"#, "a".repeat(padding));
            assert_eq!(body.len(), size);
            let response = client
                .request(operation.method.clone(), &url)
                .bearer_auth(&admin)
                .header("content-type", "application/json")
                .header("if-match", STALE)
                .body(body)
                .send()
                .await;
            let case = format!("{} with {size} bytes", operation.name());
            let response = match response {
                Ok(response) => response,
                // The server answered before reading the whole body and
                // closed: reqwest may report the write's failure instead.
                Err(error) if oversized => {
                    eprintln!("{case}: {error}");
                    continue;
                }
                Err(error) => panic!("{case}: {error}"),
            };
            let status = response.status();
            let headers = response.headers().clone();
            let body: Value = response.json().await.unwrap_or(Value::Null);
            let answer = Answer {
                status,
                headers,
                body,
            };
            if oversized {
                assert_eq!(
                    answer.status,
                    StatusCode::PAYLOAD_TOO_LARGE,
                    "{case}: {}",
                    answer.body
                );
                if operation.influx {
                    answer.assert_precise_influx_error(&case);
                    assert_eq!(
                        answer.code(),
                        operation.influx_code(answer.status),
                        "{case}"
                    );
                } else {
                    answer.assert_precise_client_error(&case);
                    assert!(
                        matches!(answer.code(), "payload_too_large" | "too_large"),
                        "{case}: {}",
                        answer.body
                    );
                }
            } else {
                assert_ne!(answer.status, StatusCode::PAYLOAD_TOO_LARGE, "{case}");
                assert!(!answer.status.is_server_error(), "{case}: {}", answer.body);
            }
            checked += 1;
        }
    }
    assert!(checked >= 8, "{checked}");

    // No Content-Length (chunked): 411, so no body is read unbounded.
    let request = format!(
        "POST /api/v1/sites HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {admin}\r\n\
         Content-Type: application/json\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n\
         2\r\n{{}}\r\n0\r\n\r\n"
    );
    let (response, _) = raw_exchange(&app, request.into_bytes(), Duration::from_secs(5)).await;
    assert_eq!(raw_status(&response), Some(411), "{response}");
    assert!(response.contains("application/problem+json"), "{response}");
    assert!(response.contains("length_required"), "{response}");
    assert_still_serving(&app).await;
}

#[tokio::test]
async fn oversized_header_sections_and_too_many_headers_are_refused_431() {
    let app = spawn_seeded_app().await;
    let admin = key(&app, "headers-admin", &[Scope::Admin]).await;
    let big = "a".repeat(20 * 1024);
    let many: String = (0..150)
        .map(|at| format!("X-Header-{at}: {at}\r\n"))
        .collect();
    for (case, request) in [
        (
            "one 20 KiB header",
            format!(
                "GET /api/v1/sites HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {admin}\r\nX-Big: {big}\r\n\r\n"
            ),
        ),
        (
            "a 20 KiB Authorization",
            format!("GET /api/v1/sites HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {big}\r\n\r\n"),
        ),
        (
            "150 headers",
            format!(
                "GET /api/v1/sites HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {admin}\r\n{many}\r\n"
            ),
        ),
        (
            "a 20 KiB path",
            format!(
                "GET /api/v1/sites/{big} HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {admin}\r\n\r\n"
            ),
        ),
    ] {
        let (response, closed) =
            raw_exchange(&app, request.into_bytes(), Duration::from_secs(5)).await;
        // 431, or (when the reset overtakes the answer) a closed connection.
        assert!(closed, "{case}: the connection stays open");
        match raw_status(&response) {
            Some(431) => {}
            None if response.is_empty() => eprintln!("{case}: closed without an answer"),
            other => panic!("{case}: {other:?} {response}"),
        }
    }
    // Under the limit: answered.
    let request = format!(
        "GET /api/v1/sites HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {admin}\r\nX-Big: {}\r\nConnection: close\r\n\r\n",
        "a".repeat(8 * 1024)
    );
    let (response, _) = raw_exchange(&app, request.into_bytes(), Duration::from_secs(5)).await;
    assert_eq!(raw_status(&response), Some(200), "{response}");
    assert_still_serving(&app).await;
}

#[tokio::test]
async fn clients_that_send_headers_slowly_or_not_at_all_are_cut_off() {
    // The default header timeout (10 s) applies.
    let app = spawn_app().await;
    let limit = stoker_api::HttpOptions::default().header_timeout;
    let address = app.base.trim_start_matches("http://").to_owned();
    let slowloris = |request_line: &'static [u8]| {
        let address = address.clone();
        async move {
            let stream = tokio::net::TcpStream::connect(&address).await.unwrap();
            let (mut reader, mut writer) = stream.into_split();
            let started = Instant::now();
            let dripping = tokio::spawn(async move {
                if writer.write_all(request_line).await.is_err() {
                    return;
                }
                // One byte of a header a second, for ever.
                loop {
                    tokio::time::sleep(Duration::from_secs(1)).await;
                    if writer.write_all(b"a").await.is_err() {
                        return;
                    }
                }
            });
            let mut buffer = [0_u8; 1024];
            let mut received = Vec::new();
            let outcome = tokio::time::timeout(limit * 3, async {
                loop {
                    match reader.read(&mut buffer).await {
                        Ok(0) | Err(_) => break,
                        Ok(read) => received.extend_from_slice(&buffer[..read]),
                    }
                }
            })
            .await;
            dripping.abort();
            (outcome.is_ok(), started.elapsed(), received)
        }
    };
    let (headers, silent, request_line) = tokio::join!(
        slowloris(b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Slow: "),
        slowloris(b""),
        slowloris(b"GET /api/v1/sites?limit="),
    );
    for (case, (closed, elapsed, received)) in [
        ("headers a byte a second", headers),
        ("nothing sent", silent),
        ("request line a byte a second", request_line),
    ] {
        assert!(closed, "{case}: still open after {elapsed:?}");
        assert!(
            elapsed >= limit - Duration::from_secs(1) && elapsed <= limit + Duration::from_secs(3),
            "{case}: closed after {elapsed:?}, the limit is {limit:?}"
        );
        // Never a request answered from a partial head.
        let received = String::from_utf8_lossy(&received);
        assert!(!received.starts_with("HTTP/1.1 2"), "{case}: {received}");
    }
    assert_still_serving(&app).await;
}

#[tokio::test]
async fn a_body_that_arrives_too_slowly_is_answered_408() {
    let body_timeout = Duration::from_secs(2);
    let app = spawn_app_with(AppOptions {
        http: Some(stoker_api::HttpOptions {
            body_timeout,
            ..stoker_api::HttpOptions::default()
        }),
        ..AppOptions::default()
    })
    .await;
    app.seed().await;
    let admin = key(&app, "slow-body-admin", &[Scope::Admin]).await;
    let address = app.base.trim_start_matches("http://").to_owned();
    for path in ["/api/v1/sites/boiler-house-1/telemetry", "/api/v1/sites"] {
        let stream = tokio::net::TcpStream::connect(&address).await.unwrap();
        let (mut reader, mut writer) = stream.into_split();
        let head = format!(
            "POST {path} HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {admin}\r\n\
             Content-Type: application/json\r\nContent-Length: 1000\r\n\r\n{{"
        );
        writer.write_all(head.as_bytes()).await.unwrap();
        let started = Instant::now();
        let dripping = tokio::spawn(async move {
            loop {
                tokio::time::sleep(Duration::from_millis(500)).await;
                if writer.write_all(b" ").await.is_err() {
                    return;
                }
            }
        });
        let mut received = Vec::new();
        let mut buffer = [0_u8; 4096];
        let _ = tokio::time::timeout(Duration::from_secs(15), async {
            loop {
                match reader.read(&mut buffer).await {
                    Ok(0) | Err(_) => break,
                    Ok(read) => {
                        received.extend_from_slice(&buffer[..read]);
                        if received.windows(4).any(|w| w == b"\r\n\r\n") && received.ends_with(b"}")
                        {
                            break;
                        }
                    }
                }
            }
        })
        .await;
        let elapsed = started.elapsed();
        dripping.abort();
        let response = String::from_utf8_lossy(&received);
        assert_eq!(raw_status(&response), Some(408), "{path}: {response}");
        assert!(response.contains("application/problem+json"), "{response}");
        assert!(response.contains("\"code\":\"body_timeout\""), "{response}");
        assert!(
            elapsed >= body_timeout - Duration::from_millis(500)
                && elapsed <= body_timeout + Duration::from_secs(3),
            "{path}: answered after {elapsed:?}"
        );
    }
    // A body sent briskly is not affected.
    let (status, _) = app.get("/api/v1/sites").await;
    assert_eq!(status, StatusCode::OK);
    let (status, _) = app
        .post_telemetry("boiler-house-1", json!({"b1_steam_pressure": 10.1}))
        .await;
    assert_eq!(status, StatusCode::OK);
}

#[tokio::test]
async fn a_body_cut_short_is_a_precise_400_not_a_500() {
    let app = spawn_seeded_app().await;
    let admin = key(&app, "short-body-admin", &[Scope::Admin]).await;
    let address = app.base.trim_start_matches("http://").to_owned();
    for path in ["/api/v1/sites/boiler-house-1/telemetry", "/api/v1/sites"] {
        let stream = tokio::net::TcpStream::connect(&address).await.unwrap();
        let (mut reader, mut writer) = stream.into_split();
        let head = format!(
            "POST {path} HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {admin}\r\n\
             Content-Type: application/json\r\nContent-Length: 1000\r\n\r\n{{\"slug\":"
        );
        writer.write_all(head.as_bytes()).await.unwrap();
        // Half-close: the body ends 990 bytes early.
        writer.shutdown().await.unwrap();
        let mut received = Vec::new();
        let _ =
            tokio::time::timeout(Duration::from_secs(10), reader.read_to_end(&mut received)).await;
        let response = String::from_utf8_lossy(&received);
        // The server may close without an answer (the client is gone);
        // when it answers, it is the client's fault, said precisely.
        if let Some(status) = raw_status(&response) {
            assert_eq!(status, 400, "{path}: {response}");
            assert!(
                response.contains("\"code\":\"body_incomplete\""),
                "{path}: {response}"
            );
        } else {
            eprintln!("{path}: closed without an answer");
        }
    }
    assert_still_serving(&app).await;
}
