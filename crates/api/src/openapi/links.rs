//! The operations' ids and the links from a created resource to the
//! operations on it.

use serde_json::{Value, json};

use super::routes::Route;

/// `getSites`, `postSitesSiteSensors`: the method and the path's literal
/// and parameter names, for links.
pub(super) fn operation_id(route: &Route) -> String {
    let mut id = route.method.to_owned();
    for part in route.path.split('/').filter(|part| !part.is_empty()) {
        if matches!(part, "api" | "v1") {
            continue;
        }
        for word in part
            .trim_matches(|c| c == '{' || c == '}')
            .split(['-', '.', '_'])
        {
            let mut chars = word.chars();
            if let Some(first) = chars.next() {
                id.push(first.to_ascii_uppercase());
                id.extend(chars);
            }
        }
    }
    id
}

/// Where a created resource leads: its slug or key, or its id, handed to
/// the operations on it. A site is named by its slug in every path (its
/// `id` names it nowhere): the links say so, so that a client following
/// them (and schemathesis, which would otherwise guess `{site}` from the
/// `id`) posts telemetry to the new site by its slug (the site has no
/// sensor yet: its readings are refused one by one, 422).
pub(super) fn links(route: &Route) -> Option<Value> {
    let to = |operation: &str, parameters: Value| json!({ "operationId": operation, "parameters": parameters });
    match (route.method, route.path) {
        ("post", "/api/v1/sites") => {
            let site = json!({ "site": "$response.body#/slug" });
            Some(json!({
                "GetSite": to("getSitesSite", site.clone()),
                "PatchSite": to("patchSitesSite", site.clone()),
                "DeleteSite": to("deleteSitesSite", site.clone()),
                "ListSensors": to("getSitesSiteSensors", site.clone()),
                "AddSensor": to("postSitesSiteSensors", site.clone()),
                "Latest": to("getSitesSiteLatest", site.clone()),
                "Dashboard": to("getSitesSiteDashboard", site.clone()),
                "ListGateways": to("getSitesSiteGateways", site.clone()),
                "Telemetry": to("postSitesSiteTelemetry", site.clone()),
                "BindGateway": to("postSitesSiteGateways", site)
            }))
        }
        ("post", "/api/v1/sites/{site}/sensors") => {
            let sensor = json!({ "site": "$response.body#/site", "sensor": "$response.body#/key" });
            Some(json!({
                "GetSensor": to("getSitesSiteSensorsSensor", sensor.clone()),
                "PatchSensor": to("patchSitesSiteSensorsSensor", sensor.clone()),
                "DeleteSensor": to("deleteSitesSiteSensorsSensor", sensor.clone()),
                "History": to("getSitesSiteSensorsSensorHistory", sensor)
            }))
        }
        ("post", "/api/v1/sites/{site}/gateways") => {
            let gateway =
                json!({ "site": "$response.body#/site", "gateway": "$response.body#/id" });
            Some(json!({
                "GetGateway": to("getSitesSiteGatewaysGateway", gateway.clone()),
                "DeleteGateway": to("deleteSitesSiteGatewaysGateway", gateway.clone()),
                "RegisterMetrics": to("postSitesSiteGatewaysGatewayRegister", gateway)
            }))
        }
        ("post", "/api/v1/alert-rules") => {
            let rule = json!({ "rule": "$response.body#/id" });
            Some(json!({
                "GetRule": to("getAlertRulesRule", rule.clone()),
                "PatchRule": to("patchAlertRulesRule", rule.clone()),
                "DeleteRule": to("deleteAlertRulesRule", rule)
            }))
        }
        _ => None,
    }
}
