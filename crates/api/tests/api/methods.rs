//! A method a path does not take: 405 with the `Allow` header RFC 9110
//! requires, listing the methods the document gives the path.

use reqwest::{Method, StatusCode};
use serde_json::Value;

use crate::helpers::spawn_app;

#[tokio::test]
async fn a_method_a_path_does_not_take_is_405_with_allow_naming_the_documented_ones() {
    let app = spawn_app().await;
    let document: Value = app
        .http
        .get(format!("{}/api/v1/openapi.json", app.base))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let nil = "00000000-0000-0000-0000-000000000000";
    let mut checked = 0;
    for (template, item) in document["paths"].as_object().unwrap() {
        let path = template
            .replace("{site}", "boiler-house-1")
            .replace("{sensor}", "b1_flue_temp")
            .replace("{rule}", nil)
            .replace("{alert}", nil)
            .replace("{window}", nil);
        let mut documented: Vec<String> = item
            .as_object()
            .unwrap()
            .keys()
            .map(|method| method.to_uppercase())
            .collect();
        documented.sort();
        // Two methods each path does not take (out-of-service takes PUT).
        let probes = [Method::PUT, Method::OPTIONS, Method::PATCH]
            .into_iter()
            .filter(|method| !documented.contains(&method.as_str().to_owned()))
            .take(2);
        for method in probes {
            let response = app
                .http
                .request(method.clone(), format!("{}{path}", app.base))
                .send()
                .await
                .unwrap();
            assert_eq!(
                response.status(),
                StatusCode::METHOD_NOT_ALLOWED,
                "{method} {template}"
            );
            let allow = response
                .headers()
                .get(reqwest::header::ALLOW)
                .unwrap_or_else(|| panic!("{method} {template}: 405 without Allow"))
                .to_str()
                .unwrap()
                .to_owned();
            let mut allowed: Vec<String> = allow.split(", ").map(str::to_owned).collect();
            allowed.sort();
            assert_eq!(allowed, documented, "{method} {template}: Allow: {allow}");
            let body: Value = response.json().await.unwrap();
            assert_eq!(body["code"], "method_not_allowed", "{method} {template}");
            checked += 1;
        }
    }
    assert!(checked >= 2 * 15, "{checked} requests");
}
