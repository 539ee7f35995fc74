//! Creates the fleet's sites and sensors through Stoker's HTTP API, so that
//! ingestion knows them before the first message arrives (it rejects
//! readings of unknown sites and sensors).

use std::time::Duration;

use reqwest::{StatusCode, Url};
use serde::Serialize;

use crate::error::{Error, Result};
use crate::fleet::SiteSpec;

/// A seeding request that takes longer than this is treated as failed
/// rather than left to hang the run.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);
/// How much of an error answer's body goes into the error.
const MAX_ERROR_BODY: usize = 2048;

/// The create-site body of the API.
#[derive(Serialize)]
struct NewSite<'a> {
    slug: &'a str,
    name: &'a str,
    timezone: &'a str,
}

/// Creates every site and sensor of `fleet` under `base_url`; those that
/// exist already (409 Conflict) are left as they are.
pub(crate) async fn seed_fleet(
    base_url: &str,
    api_key: Option<&str>,
    fleet: &[SiteSpec],
) -> Result<()> {
    let sites_url = api_url(base_url, &["api", "v1", "sites"])?;
    let client = reqwest::Client::builder()
        .timeout(REQUEST_TIMEOUT)
        .build()
        .map_err(|source| Error::SeedRequest {
            url: sites_url.to_string(),
            source,
        })?;
    let mut created = 0_usize;
    let mut existing = 0_usize;
    for site in fleet {
        let body = NewSite {
            slug: &site.slug,
            name: &site.name,
            timezone: &site.timezone,
        };
        if post(&client, api_key, sites_url.clone(), &body).await? {
            created += 1;
        } else {
            existing += 1;
        }
        let sensors_url = api_url(base_url, &["api", "v1", "sites", &site.slug, "sensors"])?;
        for sensor in &site.sensors {
            if post(&client, api_key, sensors_url.clone(), sensor).await? {
                created += 1;
            } else {
                existing += 1;
            }
        }
        // The digital signals, with their kinds (and a sequencer's states).
        for signal in &site.signals {
            if post(&client, api_key, sensors_url.clone(), signal).await? {
                created += 1;
            } else {
                existing += 1;
            }
        }
    }
    tracing::info!(
        base_url,
        sites = fleet.len(),
        created,
        existing,
        "seeded the fleet through the API"
    );
    Ok(())
}

/// `base_url` with `segments` appended as path segments (escaped), keeping
/// any path the base already has (e.g. behind a reverse proxy).
fn api_url(base_url: &str, segments: &[&str]) -> Result<Url> {
    let invalid = |reason: String| Error::InvalidSeedApiUrl {
        url: base_url.to_owned(),
        reason,
    };
    let mut url = Url::parse(base_url).map_err(|error| invalid(error.to_string()))?;
    if !matches!(url.scheme(), "http" | "https") {
        return Err(invalid(format!(
            "scheme `{}` is not http or https",
            url.scheme()
        )));
    }
    url.path_segments_mut()
        .map_err(|()| invalid("it cannot be a base URL".to_owned()))?
        .pop_if_empty()
        .extend(segments);
    Ok(url)
}

/// Posts `body` as JSON: `true` if created, `false` if it already existed.
async fn post(
    client: &reqwest::Client,
    api_key: Option<&str>,
    url: Url,
    body: &impl Serialize,
) -> Result<bool> {
    let mut request = client.post(url.clone()).json(body);
    if let Some(api_key) = api_key {
        request = request.bearer_auth(api_key);
    }
    let request_error = |source| Error::SeedRequest {
        url: url.to_string(),
        source,
    };
    let response = request.send().await.map_err(request_error)?;
    let status = response.status();
    if status.is_success() {
        return Ok(true);
    }
    if status == StatusCode::CONFLICT {
        return Ok(false);
    }
    let mut body = response.text().await.map_err(request_error)?;
    if body.len() > MAX_ERROR_BODY {
        let mut end = MAX_ERROR_BODY;
        while !body.is_char_boundary(end) {
            end -= 1;
        }
        body.truncate(end);
        body.push('…');
    }
    Err(Error::SeedRejected {
        url: url.to_string(),
        status: status.as_u16(),
        body,
    })
}

#[cfg(test)]
mod tests {
    use std::sync::{Arc, Mutex};

    use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
    use tokio::net::TcpListener;

    use super::*;
    use crate::args::SimulateArgs;
    use crate::fleet::fleet;

    /// A request the fake API received: path, Authorization header, body.
    type Received = Arc<Mutex<Vec<(String, Option<String>, serde_json::Value)>>>;

    /// A minimal HTTP/1.1 server on port 0 that answers every request with
    /// `answer(path)` and records what it got. Returns its base URL.
    async fn fake_api(answer: fn(&str) -> (u16, &'static str)) -> (String, Received) {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let base_url = format!("http://{}", listener.local_addr().unwrap());
        let received = Received::default();
        let recorder = Arc::clone(&received);
        tokio::spawn(async move {
            loop {
                let (stream, _) = listener.accept().await.unwrap();
                let recorder = Arc::clone(&recorder);
                tokio::spawn(async move {
                    let mut stream = BufReader::new(stream);
                    // One connection carries several requests (keep-alive).
                    loop {
                        let mut request_line = String::new();
                        if stream.read_line(&mut request_line).await.unwrap_or(0) == 0 {
                            return;
                        }
                        let path = request_line.split(' ').nth(1).unwrap().to_owned();
                        let mut content_length = 0;
                        let mut authorization = None;
                        loop {
                            let mut header = String::new();
                            stream.read_line(&mut header).await.unwrap();
                            let header = header.trim_end();
                            if header.is_empty() {
                                break;
                            }
                            let (name, value) = header.split_once(':').unwrap();
                            match name.to_ascii_lowercase().as_str() {
                                "content-length" => content_length = value.trim().parse().unwrap(),
                                "authorization" => authorization = Some(value.trim().to_owned()),
                                _ => {}
                            }
                        }
                        let mut body = vec![0; content_length];
                        stream.read_exact(&mut body).await.unwrap();
                        let (status, answer_body) = answer(&path);
                        recorder.lock().unwrap().push((
                            path,
                            authorization,
                            serde_json::from_slice(&body).unwrap(),
                        ));
                        let response = format!(
                            "HTTP/1.1 {status} Answer\r\ncontent-type: application/json\r\ncontent-length: {}\r\n\r\n{answer_body}",
                            answer_body.len()
                        );
                        stream
                            .get_mut()
                            .write_all(response.as_bytes())
                            .await
                            .unwrap();
                    }
                });
            }
        });
        (base_url, received)
    }

    #[tokio::test]
    async fn seeding_creates_sites_then_their_sensors_and_accepts_conflicts() {
        // Site 1 exists already; everything else is created.
        let (base_url, received) = fake_api(|path| match path {
            "/api/v1/sites" => (409, r#"{"code":"conflict"}"#),
            _ => (201, "{}"),
        })
        .await;
        let fleet = fleet(&SimulateArgs {
            sites: 2,
            sensors: 3,
            ..SimulateArgs::default()
        });
        seed_fleet(&base_url, Some("key-1"), &fleet).await.unwrap();

        let received = received.lock().unwrap();
        let paths: Vec<&str> = received.iter().map(|(path, _, _)| path.as_str()).collect();
        assert_eq!(
            paths,
            [
                "/api/v1/sites",
                "/api/v1/sites/boiler-house-1/sensors",
                "/api/v1/sites/boiler-house-1/sensors",
                "/api/v1/sites/boiler-house-1/sensors",
                "/api/v1/sites",
                "/api/v1/sites/boiler-house-2/sensors",
                "/api/v1/sites/boiler-house-2/sensors",
                "/api/v1/sites/boiler-house-2/sensors",
            ]
        );
        assert!(
            received
                .iter()
                .all(|(_, authorization, _)| authorization.as_deref() == Some("Bearer key-1"))
        );
        assert_eq!(
            received[0].2,
            serde_json::json!({"slug": "boiler-house-1", "name": "Boiler house 1", "timezone": "Europe/Berlin"})
        );
        assert_eq!(
            received[3].2,
            serde_json::json!({"key": "b1_water_temp", "type": "temperature", "unit": "°C", "min": 0.0, "max": 200.0})
        );
    }

    #[tokio::test]
    async fn seeding_reports_a_refusal_with_status_and_body() {
        let (base_url, _) = fake_api(|path| match path {
            "/api/v1/sites" => (201, "{}"),
            _ => (422, r#"{"code":"invalid_range"}"#),
        })
        .await;
        let fleet = fleet(&SimulateArgs::default());
        let error = seed_fleet(&base_url, None, &fleet).await.unwrap_err();
        match error {
            Error::SeedRejected { url, status, body } => {
                assert_eq!(
                    url,
                    format!("{base_url}/api/v1/sites/boiler-house-1/sensors")
                );
                assert_eq!(status, 422);
                assert_eq!(body, r#"{"code":"invalid_range"}"#);
            }
            other => panic!("unexpected {other:?}"),
        }
    }

    #[tokio::test]
    async fn seeding_reports_an_unreachable_api() {
        // Bind and drop, so the port is (almost certainly) closed.
        let port = TcpListener::bind("127.0.0.1:0")
            .await
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let fleet = fleet(&SimulateArgs::default());
        let error = seed_fleet(&format!("http://127.0.0.1:{port}"), None, &fleet)
            .await
            .unwrap_err();
        assert!(matches!(error, Error::SeedRequest { .. }), "{error:?}");
    }

    #[test]
    fn api_urls_append_escaped_segments_to_the_base() {
        let url = |base: &str| {
            api_url(base, &["api", "v1", "sites", "boiler-house-1", "sensors"])
                .map(|url| url.to_string())
        };
        let expected = "http://127.0.0.1:8080/api/v1/sites/boiler-house-1/sensors";
        assert_eq!(url("http://127.0.0.1:8080").unwrap(), expected);
        assert_eq!(url("http://127.0.0.1:8080/").unwrap(), expected);
        assert_eq!(
            url("https://plant.example/stoker/").unwrap(),
            "https://plant.example/stoker/api/v1/sites/boiler-house-1/sensors"
        );
        assert!(matches!(
            url("127.0.0.1:8080"),
            Err(Error::InvalidSeedApiUrl { .. })
        ));
        assert!(matches!(
            url("ftp://host/"),
            Err(Error::InvalidSeedApiUrl { .. })
        ));
        assert!(matches!(
            url("not a url"),
            Err(Error::InvalidSeedApiUrl { .. })
        ));
    }
}
