//! Each key's request-rate budget (API_KEY_RATE) and the connection cap
//! (HTTP_MAX_CONNECTIONS), against the real server with small limits.

use std::time::{Duration, Instant};

use super::*;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// An app whose keys may send `rate` requests a second (burst as many).
async fn app_with_rate(rate: u32) -> TestApp {
    spawn_app_with(AppOptions {
        http: Some(stoker_api::HttpOptions {
            key_rate: stoker_api::RequestRate::per_second(rate).unwrap(),
            ..stoker_api::HttpOptions::default()
        }),
        ..AppOptions::default()
    })
    .await
}

/// Sends `count` requests at once with `token`; their answers.
async fn flood(
    app: &TestApp,
    method: Method,
    path: &str,
    token: &str,
    count: usize,
) -> Vec<Answer> {
    let client = reqwest::Client::new();
    let url = format!("{}{path}", app.base);
    let mut requests = tokio::task::JoinSet::new();
    for _ in 0..count {
        let (client, url, method) = (client.clone(), url.clone(), method.clone());
        let authorization = bearer(token);
        requests.spawn(
            async move { send(&client, method, &url, Some(authorization), None, &[]).await },
        );
    }
    requests.join_all().await
}

/// The `Retry-After` of a 429, in seconds (at least 1).
fn retry_after(answer: &Answer) -> u64 {
    let seconds: u64 = answer.headers["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!(seconds >= 1, "Retry-After {seconds}");
    seconds
}

/// The value of an unlabelled counter in `/metrics`.
async fn counter(app: &TestApp, name: &str) -> u64 {
    let text = reqwest::get(format!("{}/metrics", app.base))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    text.lines()
        .find_map(|line| line.strip_prefix(&format!("{name} ")))
        .unwrap_or_else(|| panic!("{name} is not in /metrics:\n{text}"))
        .parse()
        .unwrap()
}

#[tokio::test]
async fn a_key_past_its_budget_gets_429_while_another_keys_requests_all_pass() {
    let rate = 50;
    let app = app_with_rate(rate).await;
    let greedy = key(&app, "greedy", &[Scope::Read]).await;
    let modest = key(&app, "modest", &[Scope::Read]).await;

    let started = Instant::now();
    let (greedy_answers, modest_answers) = tokio::join!(
        flood(&app, Method::GET, "/api/v1/sites", &greedy, 150),
        flood(&app, Method::GET, "/api/v1/sites", &modest, rate as usize),
    );
    let elapsed = started.elapsed();

    // The other key's requests, as many as its budget, all pass.
    for answer in &modest_answers {
        assert_eq!(answer.status, StatusCode::OK, "{}", answer.body);
    }
    // The greedy key gets its burst, what refilled meanwhile, and 429s.
    let passed = greedy_answers
        .iter()
        .filter(|answer| answer.status == StatusCode::OK)
        .count();
    let refilled = (elapsed.as_secs_f64() * f64::from(rate)).ceil() as usize;
    assert!(
        passed >= rate as usize && passed <= rate as usize + refilled + 1,
        "{passed} passed in {elapsed:?}"
    );
    let limited: Vec<&Answer> = greedy_answers
        .iter()
        .filter(|answer| answer.status != StatusCode::OK)
        .collect();
    assert_eq!(limited.len(), 150 - passed);
    assert!(!limited.is_empty());
    let mut longest = 0;
    for answer in &limited {
        assert_eq!(answer.status, StatusCode::TOO_MANY_REQUESTS);
        answer.assert_precise_client_error("past the budget");
        assert_eq!(answer.code(), "rate_limited");
        assert!(
            answer.body["detail"]
                .as_str()
                .unwrap()
                .contains("50/s with a burst of 50"),
            "{}",
            answer.body
        );
        longest = longest.max(retry_after(answer));
    }
    assert!(longest <= 2, "Retry-After {longest} at 50/s");
    assert_eq!(
        counter(&app, "stoker_api_rate_limited_requests_total").await,
        limited.len() as u64
    );

    // The bucket refills: after Retry-After the key is let in again, and
    // after a whole second it has its burst back.
    tokio::time::sleep(Duration::from_secs(longest)).await;
    let answers = flood(&app, Method::GET, "/api/v1/sites", &greedy, 1).await;
    assert_eq!(answers[0].status, StatusCode::OK, "{}", answers[0].body);
    tokio::time::sleep(Duration::from_millis(1100)).await;
    let answers = flood(&app, Method::GET, "/api/v1/sites", &greedy, rate as usize).await;
    for answer in &answers {
        assert_eq!(answer.status, StatusCode::OK, "{}", answer.body);
    }
}

#[tokio::test]
async fn only_the_keys_own_requests_spend_its_budget_refused_ones_too() {
    let app = app_with_rate(5).await;
    let reader = key(&app, "reader", &[Scope::Read]).await;
    // Requests with the key's public id and a wrong secret spend nothing.
    let (key_id, secret) = reader
        .strip_prefix("stk_")
        .unwrap()
        .split_once('_')
        .unwrap();
    let forged = format!("stk_{key_id}_{}", "x".repeat(secret.len()));
    assert_ne!(forged, reader);
    for answer in flood(&app, Method::GET, "/api/v1/sites", &forged, 20).await {
        assert_eq!(answer.status, StatusCode::UNAUTHORIZED);
    }
    // A request the key may not make (403) spends its budget all the same.
    let answers = flood(&app, Method::GET, "/api/v1/api-keys", &reader, 5).await;
    for answer in &answers {
        assert_eq!(answer.status, StatusCode::FORBIDDEN, "{}", answer.body);
    }
    let answers = flood(&app, Method::GET, "/api/v1/sites", &reader, 1).await;
    assert_eq!(answers[0].status, StatusCode::TOO_MANY_REQUESTS);
}

#[tokio::test]
async fn influxdb_writes_past_the_budget_get_influxdbs_429() {
    let app = app_with_rate(10).await;
    let writer = key(&app, "telegraf", &[Scope::Write]).await;
    for (path, v2) in [
        ("/api/v2/write?bucket=boiler-house-1", true),
        ("/write?db=boiler-house-1", false),
    ] {
        // No body: the write stores nothing and answers 204 while in budget.
        let answers = flood(&app, Method::POST, path, &writer, 30).await;
        let passed = answers
            .iter()
            .filter(|answer| answer.status == StatusCode::NO_CONTENT)
            .count();
        assert!((10..30).contains(&passed), "{path}: {passed} passed");
        for answer in answers
            .iter()
            .filter(|answer| answer.status != StatusCode::NO_CONTENT)
        {
            assert_eq!(answer.status, StatusCode::TOO_MANY_REQUESTS, "{path}");
            assert!(!answer.is_problem(), "{path}: {:?}", answer.headers);
            answer.assert_influx_client_error(path);
            if v2 {
                assert_eq!(answer.body["code"], "too many requests", "{}", answer.body);
            } else {
                assert!(answer.body["error"].is_string(), "{}", answer.body);
            }
            retry_after(answer);
        }
        // The next path starts with a full bucket.
        tokio::time::sleep(Duration::from_millis(1100)).await;
    }
}

/// Opens a connection and sends `GET /healthz` on it, keeping it open.
async fn connect_and_ask(address: &str) -> tokio::net::TcpStream {
    let mut stream = tokio::net::TcpStream::connect(address).await.unwrap();
    stream
        .write_all(b"GET /healthz HTTP/1.1\r\nHost: stoker\r\n\r\n")
        .await
        .unwrap();
    stream
}

/// Reads one answer to `GET /healthz` (its head and small body), or
/// nothing if none comes within `limit`.
async fn answer_within(stream: &mut tokio::net::TcpStream, limit: Duration) -> Option<String> {
    let mut received = Vec::new();
    let mut buffer = [0_u8; 1024];
    let deadline = tokio::time::Instant::now() + limit;
    loop {
        match tokio::time::timeout_at(deadline, stream.read(&mut buffer)).await {
            Err(_) => return None,
            Ok(Ok(0) | Err(_)) => panic!("closed: {}", String::from_utf8_lossy(&received)),
            Ok(Ok(read)) => received.extend_from_slice(&buffer[..read]),
        }
        let text = String::from_utf8_lossy(&received);
        if text.contains("\r\n\r\n") && text.ends_with('}') {
            return Some(text.into_owned());
        }
    }
}

#[tokio::test]
async fn past_the_connection_cap_new_connections_wait_until_one_closes() {
    let app = spawn_app_with(AppOptions {
        http: Some(stoker_api::HttpOptions {
            connections: stoker_api::ConnectionOptions { max_connections: 2 },
            ..stoker_api::HttpOptions::default()
        }),
        ..AppOptions::default()
    })
    .await;
    let address = app.base.trim_start_matches("http://").to_owned();
    let mut first = connect_and_ask(&address).await;
    let mut second = connect_and_ask(&address).await;
    for stream in [&mut first, &mut second] {
        let answer = answer_within(stream, Duration::from_secs(5)).await;
        assert!(answer.unwrap().starts_with("HTTP/1.1 200"));
    }
    // Both kept alive: a third connection is not served, nor a fourth.
    let mut third = connect_and_ask(&address).await;
    let mut fourth = connect_and_ask(&address).await;
    assert_eq!(
        answer_within(&mut third, Duration::from_secs(1)).await,
        None
    );
    // One closes: the third is served (the oldest waiting), at once.
    drop(first);
    let started = Instant::now();
    let answer = answer_within(&mut third, Duration::from_secs(5)).await;
    assert!(answer.unwrap().starts_with("HTTP/1.1 200"));
    assert!(started.elapsed() < Duration::from_secs(2));
    assert_eq!(
        answer_within(&mut fourth, Duration::from_millis(500)).await,
        None
    );
    // A kept-alive connection still answers its next request.
    second
        .write_all(b"GET /healthz HTTP/1.1\r\nHost: stoker\r\n\r\n")
        .await
        .unwrap();
    let answer = answer_within(&mut second, Duration::from_secs(5)).await;
    assert!(answer.unwrap().starts_with("HTTP/1.1 200"));
    drop(second);
    let answer = answer_within(&mut fourth, Duration::from_secs(5)).await;
    assert!(answer.unwrap().starts_with("HTTP/1.1 200"));
}
