//! The OpenAPI document: every route it lists is answered, nothing else.

use crate::helpers::*;
use reqwest::StatusCode;
use serde_json::Value;

#[tokio::test]
async fn the_openapi_document_lists_every_route_answered_and_nothing_else() {
    use reqwest::Method;
    let app = spawn_seeded_app().await;
    let (status, _, rule) = app.post_rule(threshold_rule()).await;
    assert_eq!(status, StatusCode::CREATED, "{rule}");
    let rule_id = rule["id"].as_str().unwrap().to_owned();
    let bare = reqwest::Client::new();
    let document: Value = bare
        .get(format!("{}/api/v1/openapi.json", app.base))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert!(document["openapi"].as_str().unwrap().starts_with("3."));
    let paths = document["paths"].as_object().unwrap();
    assert!(paths.len() >= 10, "{}", paths.len());
    let methods = [
        Method::GET,
        Method::POST,
        Method::PUT,
        Method::PATCH,
        Method::DELETE,
    ];
    let mut operations = 0;
    for (template, item) in paths {
        let path = template
            .replace("{site}", "boiler-house-1")
            .replace("{sensor}", "b1_flue_temp")
            .replace("{rule}", &rule_id)
            .replace("{alert}", "00000000-0000-0000-0000-000000000000")
            .replace("{name}", "no-such-key");
        for method in &methods {
            let documented = item.get(method.as_str().to_lowercase()).is_some();
            // No body: a documented route may refuse it (415, 422), but it
            // must not be "no such route" or "wrong method". Deletes go
            // to a path that does not exist, so nothing is lost.
            let target = if *method == Method::DELETE {
                path.replace("boiler-house-1", "gone")
                    .replace("b1_flue_temp", "gone")
                    .replace(&rule_id, "00000000-0000-0000-0000-000000000000")
            } else {
                path.clone()
            };
            let (status, _, body) = app.send(method.clone(), &target, None, &[]).await;
            let code = body["code"].as_str().unwrap_or("");
            if documented {
                operations += 1;
                assert!(
                    code != "route_not_found" && code != "method_not_allowed",
                    "{method} {template} is documented but answered {status} {code}"
                );
                let security = &item[method.as_str().to_lowercase()]["security"];
                let open = security.as_array().is_some_and(Vec::is_empty);
                let status_without_key = bare
                    .request(method.clone(), format!("{}{target}", app.base))
                    .send()
                    .await
                    .unwrap()
                    .status();
                assert_eq!(
                    status_without_key == StatusCode::UNAUTHORIZED,
                    !open,
                    "{method} {template}: security in the document vs 401 without a key"
                );
            } else {
                assert!(
                    status == StatusCode::METHOD_NOT_ALLOWED || status == StatusCode::NOT_FOUND,
                    "{method} {template} is not documented but answered {status} {body}"
                );
            }
        }
    }
    assert!(operations >= 27, "{operations} operations");
    // Paths outside the document are not answered.
    for path in [
        "/api/v1/nothing",
        "/api/v1/sites/boiler-house-1/other",
        "/api/v2/sites",
        "/admin",
    ] {
        let (status, _, body) = app.get_with_headers(path).await;
        assert_eq!(status, StatusCode::NOT_FOUND, "{path}: {body}");
    }
}
