//! Webhook requests: a signed JSON POST per attempt.

use std::time::Duration;

use reqwest::header::CONTENT_TYPE;
use stoker_domain::Secret;

use super::outbox::Claimed;
use super::{Error, Result, signature};

/// Characters of a refusing receiver's answer kept in `last_error`.
const EXCERPT_CHARS: usize = 200;

/// The HTTP client of every webhook request: `timeout` bounds each whole
/// request, and redirects are not followed (a signed notification goes
/// where it was configured to go, or fails). With `roots` (INFLUX_CA_FILE),
/// https:// receivers are checked against them instead of the system's.
pub(super) fn client(
    timeout: Duration,
    roots: Option<Vec<reqwest::Certificate>>,
) -> Result<reqwest::Client> {
    let builder = match roots {
        Some(roots) => reqwest::Client::builder().tls_certs_only(roots),
        None => reqwest::Client::builder(),
    };
    builder
        .timeout(timeout)
        .connect_timeout(timeout)
        .redirect(reqwest::redirect::Policy::none())
        .user_agent(concat!("stoker/", env!("CARGO_PKG_VERSION")))
        .build()
        .map_err(Error::HttpClient)
}

/// POSTs the notification, signed; `Ok` on a 2xx answer. The error says
/// what went wrong precisely (status and the start of the answer, or the
/// connection's error), never with the URL, which may hold a token.
pub(super) async fn post(
    client: &reqwest::Client,
    secret: Option<&Secret>,
    timeout: Duration,
    notification: &Claimed,
) -> Result<(), String> {
    let Some(secret) = secret.filter(|secret| !secret.is_empty()) else {
        return Err("ALERT_WEBHOOK_SECRET is not set: the request cannot be signed".into());
    };
    let timestamp = chrono::Utc::now().timestamp();
    let mut request = client
        .post(&notification.target)
        .header(CONTENT_TYPE, "application/json");
    if let Some(event) = notification.event_id {
        request = request.header("X-Stoker-Event-Id", event.to_string());
    }
    if let Some(digest) = notification.digest_id {
        request = request.header("X-Stoker-Digest-Id", digest.to_string());
    }
    let response = request
        .header("X-Stoker-Delivery", notification.id.to_string())
        .header("X-Stoker-Timestamp", timestamp.to_string())
        .header(
            "X-Stoker-Signature",
            signature(secret.expose().as_bytes(), timestamp, &notification.body),
        )
        .body(notification.body.clone())
        .send()
        .await
        .map_err(|error| describe(error, timeout))?;
    let status = response.status();
    if status.is_success() {
        return Ok(());
    }
    let excerpt = excerpt(response).await;
    if excerpt.is_empty() {
        Err(format!("HTTP {status}"))
    } else {
        Err(format!("HTTP {status}: {excerpt}"))
    }
}

/// A request error in words, with its causes and without the URL.
fn describe(error: reqwest::Error, timeout: Duration) -> String {
    if error.is_timeout() {
        return format!("no answer within {timeout:?}");
    }
    stoker_domain::error_chain(&error.without_url())
}

/// The start of an answer's body, on one line.
async fn excerpt(mut response: reqwest::Response) -> String {
    let mut bytes = Vec::new();
    // Read no more than needed: the answer may be large or endless.
    while bytes.len() < EXCERPT_CHARS * 4 {
        match response.chunk().await {
            Ok(Some(chunk)) => bytes.extend_from_slice(&chunk),
            Ok(None) | Err(_) => break,
        }
    }
    one_line(&String::from_utf8_lossy(&bytes), EXCERPT_CHARS)
}

/// `text` with runs of whitespace and control characters as one space, cut
/// to `limit` characters (an ellipsis marks the cut).
pub(super) fn one_line(text: &str, limit: usize) -> String {
    let mut line = String::new();
    let mut count = 0;
    for word in text
        .split(|c: char| c.is_whitespace() || c.is_control())
        .filter(|word| !word.is_empty())
    {
        for c in (!line.is_empty())
            .then_some(' ')
            .into_iter()
            .chain(word.chars())
        {
            if count == limit {
                line.push('…');
                return line;
            }
            line.push(c);
            count += 1;
        }
    }
    line
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn answers_are_cut_to_one_short_line() {
        assert_eq!(one_line("  upstream\r\n\tdown  ", 200), "upstream down");
        assert_eq!(one_line("abcdef", 3), "abc…");
        assert_eq!(one_line("ab cd", 5), "ab cd");
        assert_eq!(one_line("äöü", 2), "äö…");
        assert_eq!(one_line("", 10), "");
    }
}
