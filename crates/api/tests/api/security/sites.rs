//! Site scoping over every route of the OpenAPI document: a key limited
//! to the seeded site reaches every route on it, and a key limited to
//! another site is refused (403 `forbidden_site`) wherever the seeded
//! site's resources are named, and sees none of them in lists. A route
//! this file does not classify fails the test, so that a new route is
//! decided on.

use super::*;
use reqwest::{Method, StatusCode};
use stoker_metadata::Scope;

const OTHER: &str = "b-2";

/// What a key limited to another site gets from an operation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Elsewhere {
    /// 403 `forbidden_site` (InfluxDB's 403 for the writes).
    Forbidden,
    /// A list: 200, without an item of the seeded site.
    Filtered,
    /// Figures (alarm KPIs): 200, with none of the seeded site's alarms
    /// among its bad actors.
    Measured,
}

/// How the matrix treats an operation: its body, and what a key of the
/// seeded site and one of another site get.
struct Case {
    body: Option<Value>,
    /// What a key of the seeded site gets: `None`: anything but 401, 403
    /// or a server error; `Some`: exactly this status and code.
    own: Option<(StatusCode, &'static str)>,
    elsewhere: Elsewhere,
}

fn case(operation: &Operation, seeded: &Seeded) -> Case {
    let template = operation.template.as_str();
    let method = &operation.method;
    let every_site = Some((StatusCode::FORBIDDEN, "forbidden_site"));
    let default = Case {
        body: operation.body(),
        own: None,
        elsewhere: Elsewhere::Forbidden,
    };
    if template.contains("{site}") {
        return default;
    }
    match (method.as_str(), template) {
        (
            "GET",
            "/api/v1/sites"
            | "/api/v1/alert-rules"
            | "/api/v1/alerts"
            | "/api/v1/audit"
            | "/api/v1/maintenance-windows",
        ) => Case {
            elsewhere: Elsewhere::Filtered,
            ..default
        },
        // A site among the key's own may be created (this one exists: 409).
        ("GET", "/api/v1/alarm-kpis") => Case {
            elsewhere: Elsewhere::Measured,
            ..default
        },
        ("POST", "/api/v1/sites") => Case {
            body: Some(json!({"slug": SITE, "name": "Boiler house 1"})),
            own: Some((StatusCode::CONFLICT, "conflict")),
            ..default
        },
        ("POST", "/api/v1/alert-rules") => Case {
            body: Some(threshold_rule()),
            ..default
        },
        ("POST", "/api/v1/alert-rules/preview") => Case {
            body: Some(json!({"rule_id": seeded.rule})),
            ..default
        },
        // A window of the seeded site: the other key may not create it.
        ("POST", "/api/v1/maintenance-windows") => Case {
            body: Some(json!({"site": SITE, "starts_at": "2030-01-01T00:00:00Z",
                              "ends_at": "2030-01-01T02:00:00Z", "reason": "overhaul"})),
            ..default
        },
        (_, "/api/v1/alert-rules/{rule}")
        | (_, "/api/v1/alert-rules/{rule}/out-of-service")
        | (_, "/api/v1/maintenance-windows/{window}")
        | (_, "/api/v1/alerts/{alert}")
        | (_, "/api/v1/alerts/{alert}/ack")
        | (_, "/api/v1/alerts/{alert}/resolve")
        | (_, "/api/v1/alerts/{alert}/reset")
        | (_, "/api/v1/alerts/{alert}/shelve")
        | (_, "/api/v1/alerts/{alert}/unshelve") => default,
        // Keys span every site: no key limited to sites manages them.
        (_, path) if path.starts_with("/api/v1/api-keys") => Case {
            own: every_site,
            ..default
        },
        ("POST", "/api/v2/write" | "/write") => default,
        _ => panic!("{}: not classified for site scoping", operation.name()),
    }
}

/// The URL of an operation on the seeded site (the InfluxDB-compatible
/// writes name it as their bucket or database).
fn url(app: &TestApp, operation: &Operation, seeded: &Seeded) -> String {
    // The own key's DELETE deletes (a window has no version): another
    // window, so that the seeded one stays for the other operations.
    let spare = (operation.method == Method::DELETE
        && operation.template == "/api/v1/maintenance-windows/{window}")
        .then_some(("window", seeded.spare_window.as_str()));
    let path = operation.path(seeded, spare);
    match operation.template.as_str() {
        "/api/v2/write" => format!("{}{path}?org=o&bucket={SITE}&precision=ms", app.base),
        "/write" => format!("{}{path}?db={SITE}&precision=ms", app.base),
        _ => format!("{}{path}", app.base),
    }
}

async fn send_case(
    client: &reqwest::Client,
    operation: &Operation,
    url: &str,
    token: &str,
    body: Option<Value>,
) -> Answer {
    if operation.is_influx_compatible() {
        let at = stoker_domain::EpochMillis::now().as_millis();
        let response = client
            .post(url)
            .header("authorization", format!("Token {token}"))
            .body(format!("m,sensor={SENSOR} value=10.7 {at}\n"))
            .send()
            .await
            .unwrap();
        let status = response.status();
        let headers = response.headers().clone();
        let body = response.json().await.unwrap_or(Value::Null);
        return Answer {
            status,
            headers,
            body,
        };
    }
    let headers: &[(&str, &str)] =
        if operation.method == Method::PATCH || operation.method == Method::DELETE {
            &[("if-match", STALE)]
        } else {
            &[]
        };
    send(
        client,
        operation.method.clone(),
        url,
        Some(bearer(token)),
        body,
        headers,
    )
    .await
}

/// Whether a listed item belongs to the seeded site.
fn of_seeded_site(item: &Value) -> bool {
    item["slug"] == SITE || item["site"] == SITE
}

#[tokio::test]
async fn every_route_scopes_a_site_limited_key_to_its_sites() {
    let app = spawn_app().await;
    let seeded = seed(&app).await;
    app.seed_second_site().await;
    // A rule without a site concerns every site: hidden from both keys.
    app.create_rule(silent_flue_rule()).await;
    let operations = operations(&app).await;
    let own = site_key(&app, "own-site", &[Scope::Admin], &[SITE]).await;
    let elsewhere = site_key(&app, "other-site", &[Scope::Admin], &[OTHER]).await;
    let client = reqwest::Client::new();
    let mut failures = 0;
    let mut checked_operations = 0;
    for operation in &operations {
        if operation.scope.is_none() {
            continue;
        }
        checked_operations += 1;
        let case = case(operation, &seeded);
        let url = url(&app, operation, &seeded);
        let name = operation.name();

        // Another site first, so that nothing the own key changes (an
        // alert acknowledged, a key rotated) decides the answer.
        let answer = send_case(&client, operation, &url, &elsewhere, case.body.clone()).await;
        failures += checked(|| match case.elsewhere {
            Elsewhere::Forbidden if operation.is_influx_compatible() => {
                assert_eq!(
                    answer.status,
                    StatusCode::FORBIDDEN,
                    "{name}: {}",
                    answer.body
                );
                let said = answer.body["message"]
                    .as_str()
                    .or(answer.body["error"].as_str())
                    .unwrap_or("");
                assert!(said.contains("forbidden_site"), "{name}: {}", answer.body);
            }
            Elsewhere::Forbidden => {
                assert_eq!(
                    (answer.status, answer.code()),
                    (StatusCode::FORBIDDEN, "forbidden_site"),
                    "{name} with a key of another site: {}",
                    answer.body
                );
                answer.assert_precise_client_error(&name);
            }
            Elsewhere::Measured => {
                assert_eq!(answer.status, StatusCode::OK, "{name}: {}", answer.body);
                let top = answer.body["top"].as_array().unwrap();
                assert!(
                    !top.iter().any(of_seeded_site),
                    "{name} with a key of another site counts the seeded site's: {}",
                    answer.body
                );
            }
            Elsewhere::Filtered => {
                assert_eq!(answer.status, StatusCode::OK, "{name}: {}", answer.body);
                let items = answer.body["items"].as_array().unwrap();
                assert!(
                    !items.iter().any(of_seeded_site),
                    "{name} with a key of another site shows the seeded site's: {}",
                    answer.body
                );
            }
        });

        let answer = send_case(&client, operation, &url, &own, case.body.clone()).await;
        failures += checked(|| match case.own {
            Some((status, code)) => assert_eq!(
                (answer.status, answer.code()),
                (status, code),
                "{name} with a key of its site: {}",
                answer.body
            ),
            None => {
                assert!(
                    answer.status != StatusCode::UNAUTHORIZED
                        && answer.status != StatusCode::FORBIDDEN
                        && !answer.status.is_server_error(),
                    "{name} with a key of its site: {} {}",
                    answer.status,
                    answer.body
                );
                if case.elsewhere == Elsewhere::Filtered {
                    let items = answer.body["items"].as_array().unwrap();
                    assert!(
                        !items.is_empty() && items.iter().all(of_seeded_site),
                        "{name} with a key of its site: {}",
                        answer.body
                    );
                }
            }
        });
    }
    assert_eq!(
        failures, 0,
        "{failures} cases of the site matrix failed (above)"
    );
    assert!(
        checked_operations >= 28,
        "{checked_operations} keyed operations"
    );
}
