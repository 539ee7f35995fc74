//! `GET /api/v1/openapi.json`: the OpenAPI 3 document of every route this
//! server answers, built from [`ROUTES`]. A test walks the document and
//! checks that each operation is answered and that no other method is.

use serde_json::{Map, Value, json};
use stoker_analytics::store::StateFilter;
use stoker_domain::{EpochMillis, SensorKey, SensorType, SiteSlug, Unit};
use stoker_timeseries::Aggregate;

/// One operation.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Route {
    pub method: &'static str,
    /// OpenAPI path template (`/api/v1/sites/{site}`).
    pub path: &'static str,
    /// The scope its key needs; `None`: no key.
    pub scope: Option<&'static str>,
    pub summary: &'static str,
    /// Query parameters: (name, description).
    pub query: &'static [(&'static str, &'static str)],
    /// Request body schema (a component name), if any.
    pub body: Option<&'static str>,
    /// Success status and its schema (a component name), if any.
    pub ok: (u16, Option<&'static str>),
}

const PAGE: &[(&str, &str)] = &[
    ("limit", "Items per page, 1 to 1000 (default 50)."),
    ("cursor", "next_cursor of the previous page."),
];

/// Every operation the server answers.
pub(crate) const ROUTES: &[Route] = &[
    Route {
        method: "get",
        path: "/healthz",
        scope: None,
        summary: "Liveness: the process answers.",
        query: &[],
        body: None,
        ok: (200, None),
    },
    Route {
        method: "get",
        path: "/readyz",
        scope: None,
        summary: "Readiness: each store (Postgres, InfluxDB, Redis) and role, with what failed; 503 when not ready.",
        query: &[],
        body: None,
        ok: (200, None),
    },
    Route {
        method: "get",
        path: "/metrics",
        scope: None,
        summary: "Prometheus metrics (OpenMetrics text).",
        query: &[],
        body: None,
        ok: (200, None),
    },
    Route {
        method: "get",
        path: "/api/v1/openapi.json",
        scope: None,
        summary: "This document.",
        query: &[],
        body: None,
        ok: (200, None),
    },
    Route {
        method: "get",
        path: "/api/v1/sites",
        scope: Some("read"),
        summary: "Sites, by slug, in pages.",
        query: PAGE,
        body: None,
        ok: (200, Some("SitePage")),
    },
    Route {
        method: "post",
        path: "/api/v1/sites",
        scope: Some("admin"),
        summary: "Create a site.",
        query: &[],
        body: Some("NewSite"),
        ok: (201, Some("Site")),
    },
    Route {
        method: "get",
        path: "/api/v1/sites/{site}",
        scope: Some("read"),
        summary: "One site; its version is the ETag.",
        query: &[],
        body: None,
        ok: (200, Some("Site")),
    },
    Route {
        method: "patch",
        path: "/api/v1/sites/{site}",
        scope: Some("admin"),
        summary: "Change a site's name or timezone; needs the version read (body or If-Match); a stale one is 409.",
        query: &[],
        body: Some("SitePatch"),
        ok: (200, Some("Site")),
    },
    Route {
        method: "delete",
        path: "/api/v1/sites/{site}",
        scope: Some("admin"),
        summary: "Delete a site; refused (409 has_dependents) while it has sensors or alert rules.",
        query: &[],
        body: None,
        ok: (204, None),
    },
    Route {
        method: "get",
        path: "/api/v1/sites/{site}/sensors",
        scope: Some("read"),
        summary: "A site's sensors, by key, in pages.",
        query: PAGE,
        body: None,
        ok: (200, Some("SensorPage")),
    },
    Route {
        method: "post",
        path: "/api/v1/sites/{site}/sensors",
        scope: Some("admin"),
        summary: "Add a sensor to a site.",
        query: &[],
        body: Some("NewSensor"),
        ok: (201, Some("Sensor")),
    },
    Route {
        method: "get",
        path: "/api/v1/sites/{site}/sensors/{sensor}",
        scope: Some("read"),
        summary: "One sensor; its version is the ETag.",
        query: &[],
        body: None,
        ok: (200, Some("Sensor")),
    },
    Route {
        method: "patch",
        path: "/api/v1/sites/{site}/sensors/{sensor}",
        scope: Some("admin"),
        summary: "Change a sensor's type, unit or valid range (null clears a bound); needs the version read.",
        query: &[],
        body: Some("SensorPatch"),
        ok: (200, Some("Sensor")),
    },
    Route {
        method: "delete",
        path: "/api/v1/sites/{site}/sensors/{sensor}",
        scope: Some("admin"),
        summary: "Delete a sensor (If-Match optional).",
        query: &[],
        body: None,
        ok: (204, None),
    },
    Route {
        method: "get",
        path: "/api/v1/sites/{site}/latest",
        scope: Some("read"),
        summary: "Each sensor's latest value: Redis, or InfluxDB when Redis misses (which re-warms Redis).",
        query: &[],
        body: None,
        ok: (200, Some("Latest")),
    },
    Route {
        method: "get",
        path: "/api/v1/sites/{site}/sensors/{sensor}/history",
        scope: Some("read"),
        summary: "One sensor's readings per time bucket (at most 10,000 points).",
        query: &[
            (
                "start",
                "Epoch milliseconds or RFC 3339; default end minus 24 h.",
            ),
            ("end", "Epoch milliseconds or RFC 3339; default now."),
            (
                "every",
                "Bucket width such as 10s, 1m, 1h; default: about 1,000 points over the range.",
            ),
            ("agg", "mean (default), min, max or last."),
        ],
        body: None,
        ok: (200, Some("History")),
    },
    Route {
        method: "get",
        path: "/api/v1/alert-rules",
        scope: Some("read"),
        summary: "Alert rules, in creation order, in pages; filter by site (rules scoped to it) and enabled.",
        query: &[
            ("limit", "Items per page, 1 to 1000 (default 50)."),
            ("cursor", "next_cursor of the previous page."),
            ("site", "Only the rules scoped to this site."),
            ("enabled", "true or false."),
        ],
        body: None,
        ok: (200, Some("AlertRulePage")),
    },
    Route {
        method: "post",
        path: "/api/v1/alert-rules",
        scope: Some("admin"),
        summary: "Create an alert rule (threshold, rate_of_change, no_data or anomaly).",
        query: &[],
        body: Some("AlertRuleDraft"),
        ok: (201, Some("AlertRule")),
    },
    Route {
        method: "get",
        path: "/api/v1/alert-rules/{rule}",
        scope: Some("read"),
        summary: "One alert rule; its version is the ETag.",
        query: &[],
        body: None,
        ok: (200, Some("AlertRule")),
    },
    Route {
        method: "patch",
        path: "/api/v1/alert-rules/{rule}",
        scope: Some("admin"),
        summary: "Change a rule: the fields given are merged onto it (a new kind drops the old kind's values) and the result validated; needs the version read.",
        query: &[],
        body: Some("AlertRuleDraft"),
        ok: (200, Some("AlertRule")),
    },
    Route {
        method: "delete",
        path: "/api/v1/alert-rules/{rule}",
        scope: Some("admin"),
        summary: "Delete an alert rule (If-Match optional).",
        query: &[],
        body: None,
        ok: (204, None),
    },
    Route {
        method: "post",
        path: "/api/v1/alert-rules/preview",
        scope: Some("read"),
        summary: "The alerts a saved rule (rule_id) or a draft (rule) would have raised over a past range, by the evaluation loop's own steps; changes nothing, hence scope read. A range whose end is 10 minutes past is cached 30 min (x-cache: hit, miss, bypass).",
        query: &[],
        body: Some("PreviewRequest"),
        ok: (200, Some("Preview")),
    },
    Route {
        method: "get",
        path: "/api/v1/alerts",
        scope: Some("read"),
        summary: "Alerts, newest first, in pages; filter by state (open: firing or acknowledged), site, sensor and rule.",
        query: &[
            ("limit", "Items per page, 1 to 1000 (default 50)."),
            ("cursor", "next_cursor of the previous page."),
            ("state", "open, firing, acknowledged or resolved."),
            ("site", "Only this site's alerts."),
            ("sensor", "Only alerts of sensors with this key."),
            ("rule", "Only this alert rule's alerts (its id)."),
        ],
        body: None,
        ok: (200, Some("AlertPage")),
    },
    Route {
        method: "get",
        path: "/api/v1/alerts/{alert}",
        scope: Some("read"),
        summary: "One alert with its event trail (fired, acknowledged, resolved: when, by whom, why), oldest first.",
        query: &[],
        body: None,
        ok: (200, Some("AlertWithEvents")),
    },
    Route {
        method: "post",
        path: "/api/v1/alerts/{alert}/ack",
        scope: Some("write"),
        summary: "Acknowledge a firing alert, recorded under the API key's name; notifications are queued. Not firing: 409 invalid_transition.",
        query: &[],
        body: None,
        ok: (200, Some("Alert")),
    },
    Route {
        method: "post",
        path: "/api/v1/alerts/{alert}/resolve",
        scope: Some("write"),
        summary: "Resolve an open alert, recorded under the API key's name; notifications are queued. Already resolved: 409 invalid_transition.",
        query: &[],
        body: None,
        ok: (200, Some("Alert")),
    },
    Route {
        method: "get",
        path: "/api/v1/sites/{site}/dashboard",
        scope: Some("read"),
        summary: "Every sensor's latest value with its status (ok, stale, out_of_range, alerting) and the site's open alerts (a sensor with one is alerting); cached 60 s, dropped when the site's metadata or one of its alerts changes.",
        query: &[],
        body: None,
        ok: (200, Some("Dashboard")),
    },
    Route {
        method: "post",
        path: "/api/v1/sites/{site}/telemetry",
        scope: Some("write"),
        summary: "Readings over HTTP (the MQTT telemetry bodies); answered once durable, naming each refused reading.",
        query: &[],
        body: Some("Telemetry"),
        ok: (200, Some("TelemetryReceipt")),
    },
];

/// The methods the route table answers at `path` (a request's path), upper
/// case and comma-separated, for the `Allow` header of a 405; `None` when
/// no route has that path. A literal segment outranks a parameter, as in
/// the routes themselves: `/alert-rules/preview` is not a rule's id.
pub(crate) fn allowed_methods(path: &str) -> Option<String> {
    let segments: Vec<&str> = path.split('/').filter(|part| !part.is_empty()).collect();
    // Each route whose template matches, with its number of literal segments.
    let matching: Vec<(&Route, usize)> = ROUTES
        .iter()
        .filter_map(|route| {
            let template: Vec<&str> = route
                .path
                .split('/')
                .filter(|part| !part.is_empty())
                .collect();
            let matches = template.len() == segments.len()
                && template
                    .iter()
                    .zip(&segments)
                    .all(|(part, segment)| part.starts_with('{') || part == segment);
            matches.then(|| {
                (
                    route,
                    template
                        .iter()
                        .filter(|part| !part.starts_with('{'))
                        .count(),
                )
            })
        })
        .collect();
    let most_literal = matching.iter().map(|(_, literals)| *literals).max()?;
    let mut methods: Vec<String> = Vec::new();
    for (route, literals) in matching {
        let method = route.method.to_ascii_uppercase();
        if literals == most_literal && !methods.contains(&method) {
            methods.push(method);
        }
    }
    Some(methods.join(", "))
}

fn schema(name: &str) -> Value {
    json!({ "$ref": format!("#/components/schemas/{name}") })
}

fn problem(description: &str) -> Value {
    json!({
        "description": description,
        "content": { "application/problem+json": { "schema": schema("Problem") } }
    })
}

/// A problem answer with a header it always carries.
fn problem_with_header(description: &str, header: &str, about: &str) -> Value {
    let mut answer = problem(description);
    answer["headers"] = json!({ header: { "required": true, "description": about, "schema": { "type": "string" } } });
    answer
}

/// A slug or sensor key, as `SiteSlug::parse` checks it.
fn slug() -> Value {
    json!({ "type": "string", "minLength": 1, "maxLength": SiteSlug::MAX_LEN, "pattern": SiteSlug::PATTERN })
}

/// A time as history and previews read it: epoch milliseconds or RFC 3339
/// (the pattern is the part of RFC 3339 no calendar check can refuse).
fn time_input() -> Value {
    json!({ "anyOf": [
        { "type": "integer", "minimum": EpochMillis::MIN_MILLIS, "maximum": EpochMillis::MAX_MILLIS },
        { "type": "string", "pattern": EpochMillis::RFC3339_PATTERN }
    ] })
}

/// The If-Match header `body::if_match` reads: `"<version>"`, `W/"<version>"`
/// or the bare number, a version being a positive 64-bit integer.
const IF_MATCH_PATTERN: &str = "^(W/)?\"[1-9][0-9]{0,17}\"$|^[1-9][0-9]{0,17}$";

/// A query parameter's schema, by its name (each name means one thing on
/// every route).
fn query_schema(name: &str) -> Value {
    match name {
        "limit" => {
            json!({ "type": "integer", "minimum": 1, "maximum": stoker_metadata::MAX_PAGE_LIMIT })
        }
        "cursor" => {
            json!({ "type": "string", "minLength": 2, "maxLength": 512, "pattern": "^([0-9a-f]{2})+$" })
        }
        "site" | "sensor" => slug(),
        "rule" => json!({ "type": "string", "format": "uuid" }),
        "enabled" => json!({ "type": "string", "enum": ["true", "false"] }),
        "state" => json!({ "type": "string", "enum": StateFilter::NAMES }),
        "agg" => json!({ "type": "string", "enum": Aggregate::ALL.map(Aggregate::as_str) }),
        "start" | "end" => time_input(),
        "every" => json!({ "type": "string", "pattern": "^[1-9][0-9]{0,3}(ms|s|m|h)$" }),
        _ => json!({ "type": "string" }),
    }
}

/// The statuses a route may answer besides its success, with why.
fn errors(route: &Route) -> Map<String, Value> {
    let mut responses = Map::new();
    if route.scope.is_some() {
        responses.insert(
            "400".into(),
            problem("A bad query parameter or header, or a body cut short."),
        );
        responses.insert(
            "401".into(),
            problem_with_header(
                "No key, or a malformed, unknown or revoked one.",
                "WWW-Authenticate",
                "Bearer realm=\"stoker\"",
            ),
        );
        responses.insert("403".into(), problem("The key lacks the route's scope."));
        responses.insert(
            "404".into(),
            problem("No such site, sensor, alert rule or alert."),
        );
        responses.insert(
            "503".into(),
            problem_with_header(
                "A store the route needs is unavailable.",
                "Retry-After",
                "Seconds to wait before trying again.",
            ),
        );
    }
    if route.body.is_some() {
        responses.insert(
            "400".into(),
            problem("The body is not a JSON object, or a bad query parameter or header."),
        );
        responses.insert(
            "408".into(),
            problem("The body did not arrive within HTTP_BODY_TIMEOUT."),
        );
        responses.insert("411".into(), problem("No Content-Length."));
        responses.insert("413".into(), problem("The body is too large."));
        responses.insert("415".into(), problem("The body is not application/json."));
        responses.insert(
            "422".into(),
            problem("Invalid fields: one message per field in errors."),
        );
    }
    if route.path.starts_with("/api/v1/alerts/") && route.method == "post" {
        responses.insert(
            "409".into(),
            problem("invalid_transition: the alert's state does not allow this change."),
        );
    }
    if route.path == "/api/v1/alert-rules/preview" {
        responses.insert(
            "422".into(),
            problem("Invalid fields (a draft's named rule.<field>), or backtest_too_large: the backtest would read more than 5,000,000 buckets."),
        );
    }
    if route.path.ends_with("/telemetry") {
        responses.insert(
            "422".into(),
            problem("Every reading refused (all_readings_rejected), or the message refused for a reason of its own; rejected names each reading."),
        );
    }
    if matches!(route.method, "patch" | "delete" | "post") && route.scope == Some("admin") {
        responses.insert(
            "409".into(),
            problem("A version conflict, an existing resource, or dependents."),
        );
    }
    if route.path == "/readyz" {
        responses.insert(
            "503".into(),
            json!({ "description": "Not ready: what failed, per check.", "content": { "application/json": { "schema": schema("Readiness") } } }),
        );
    }
    responses
}

/// The success answer: its body, and the ETag of a versioned resource.
fn success(route: &Route) -> Value {
    let (status, body) = route.ok;
    let mut ok = json!({ "description": "Success." });
    match (body, route.path) {
        (Some(name), _) => {
            ok["content"] = json!({ "application/json": { "schema": schema(name) } });
        }
        (None, "/metrics") => {
            ok["content"] =
                json!({ "application/openmetrics-text": { "schema": { "type": "string" } } });
        }
        (None, "/healthz" | "/readyz") => {
            ok["content"] = json!({ "application/json": { "schema": schema("Readiness") } });
        }
        (None, "/api/v1/openapi.json") => {
            ok["content"] = json!({ "application/json": { "schema": { "type": "object" } } });
        }
        (None, _) => {}
    }
    let versioned = matches!(body, Some("Site" | "Sensor" | "AlertRule"))
        && (route.method != "post" || body == Some("AlertRule"));
    if versioned && status != 204 {
        ok["headers"] = json!({ "ETag": { "required": true, "description": "The version, for If-Match.", "schema": { "type": "string" } } });
    }
    ok
}

fn operation(route: &Route) -> Value {
    let mut parameters = Vec::new();
    for name in ["site", "sensor"] {
        if route.path.contains(&format!("{{{name}}}")) {
            parameters
                .push(json!({ "name": name, "in": "path", "required": true, "schema": slug() }));
        }
    }
    for name in ["rule", "alert"] {
        if route.path.contains(&format!("{{{name}}}")) {
            parameters.push(json!({ "name": name, "in": "path", "required": true, "schema": { "type": "string", "format": "uuid" } }));
        }
    }
    for (name, description) in route.query {
        parameters.push(json!({ "name": name, "in": "query", "required": false, "description": description, "schema": query_schema(name) }));
    }
    if matches!(route.method, "patch" | "delete") {
        parameters.push(json!({ "name": "If-Match", "in": "header", "required": false, "description": "The ETag (version) read; instead of version in the body.", "schema": { "type": "string", "pattern": IF_MATCH_PATTERN } }));
    }
    let mut responses = errors(route);
    responses.insert(route.ok.0.to_string(), success(route));
    let mut operation = json!({
        "operationId": operation_id(route),
        "summary": route.summary,
        "parameters": parameters,
        "responses": responses
    });
    match route.scope {
        Some(scope) => {
            operation["security"] = json!([{ "apiKey": [] }]);
            operation["x-scope"] = json!(scope);
        }
        None => operation["security"] = json!([]),
    }
    if let Some(name) = route.body {
        operation["requestBody"] = json!({ "required": true, "content": { "application/json": { "schema": schema(name) } } });
    }
    if let Some(links) = links(route) {
        operation["responses"][route.ok.0.to_string()]["links"] = links;
    }
    operation
}

/// `getSites`, `postSitesSiteSensors`: the method and the path's literal
/// and parameter names, for links.
fn operation_id(route: &Route) -> String {
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
/// the operations on it.
fn links(route: &Route) -> Option<Value> {
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
                "Dashboard": to("getSitesSiteDashboard", site)
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

/// Postgres' timezone names, read once per process.
static TIMEZONES: tokio::sync::OnceCell<Vec<String>> = tokio::sync::OnceCell::const_new();

/// The document as served: with the timezone names Postgres knows, read
/// on the first request (and again on the next while Postgres cannot
/// answer, the document listing none meanwhile).
pub(crate) async fn served(pool: &stoker_metadata::Pool) -> Value {
    let names = TIMEZONES
        .get_or_try_init(|| stoker_metadata::timezone_names(pool))
        .await;
    match names {
        Ok(names) => document(Some(names)),
        Err(error) => {
            tracing::warn!(%error, "cannot read Postgres' timezone names; the document lists none");
            document(None)
        }
    }
}

/// The OpenAPI 3 document. `timezones`: the names a site's timezone may
/// take (Postgres' list, which site writes check), when they could be read.
pub(crate) fn document(timezones: Option<&[String]>) -> Value {
    let mut paths = Map::new();
    for route in ROUTES {
        let entry = paths
            .entry(route.path.to_owned())
            .or_insert_with(|| Value::Object(Map::new()));
        entry[route.method] = operation(route);
    }
    let slug = slug();
    let time = json!({ "type": "string", "format": "date-time" });
    let version = json!({ "type": "integer", "minimum": 1, "maximum": i64::MAX, "description": "The version read (or send it as If-Match)." });
    let timezone = match timezones {
        Some(names) => {
            json!({ "type": "string", "enum": names, "description": "An IANA name Postgres knows; default UTC." })
        }
        None => {
            json!({ "type": "string", "minLength": 1, "maxLength": stoker_metadata::TIMEZONE_MAX_LEN, "description": "An IANA name Postgres knows; default UTC." })
        }
    };
    let name = json!({ "type": "string", "minLength": 1, "maxLength": stoker_metadata::SITE_NAME_MAX_LEN, "pattern": "\\S", "description": "Trimmed; 1 to 200 characters." });
    let sensor_type = json!({ "type": "string", "minLength": 1, "maxLength": SensorType::MAX_LEN, "pattern": SensorType::PATTERN });
    let unit = json!({ "type": "string", "minLength": 1, "maxLength": Unit::MAX_LEN, "pattern": Unit::PATTERN });
    let key = json!({ "type": "string", "minLength": 1, "maxLength": SensorKey::MAX_LEN, "pattern": SensorKey::PATTERN });
    let number_or_null = json!({ "type": ["number", "null"] });
    let string_or_null = json!({ "type": ["string", "null"] });
    let time_or_null = json!({ "type": ["string", "null"], "format": "date-time" });
    let uuid = json!({ "type": "string", "format": "uuid" });
    json!({
        "openapi": "3.1.0",
        "info": {
            "title": "Stoker API",
            "version": env!("CARGO_PKG_VERSION"),
            "description": "Telemetry of industrial boiler houses: sites, sensors, latest values, history, HTTP telemetry, alert rules with previews, and alerts. Every /api/v1 route but this document needs Authorization: Bearer <API key> (stoker apikey create); errors are application/problem+json with a stable code."
        },
        "paths": paths,
        "components": {
            "securitySchemes": { "apiKey": { "type": "http", "scheme": "bearer", "description": "stk_<id>_<secret>; scopes read, write, admin (admin includes the others)." } },
            "schemas": {
                "Problem": { "type": "object", "required": ["type", "title", "status", "code", "detail"], "properties": {
                    "type": { "type": "string" }, "title": { "type": "string" }, "status": { "type": "integer" },
                    "code": { "type": "string", "description": "Stable: clients may match on it." },
                    "detail": { "type": "string" },
                    "errors": { "type": "array", "items": { "type": "object", "required": ["field", "message"], "properties": { "field": { "type": "string" }, "message": { "type": "string" } } } },
                    "rejected": { "type": "array", "items": schema("RejectedReading") }
                } },
                "Readiness": { "type": "object", "required": ["status"], "properties": { "status": { "type": "string" }, "checks": { "type": "object" } } },
                "Timezone": timezone,
                "NewSite": { "type": "object", "required": ["slug", "name"], "additionalProperties": false, "properties": { "slug": slug, "name": name, "timezone": schema("Timezone") } },
                "SitePatch": { "type": "object", "description": "The slug may be sent only unchanged.", "required": ["version"], "additionalProperties": false, "properties": { "name": name, "timezone": schema("Timezone"), "version": version } },
                "Site": { "type": "object", "required": ["id", "slug", "name", "timezone", "version", "created_at", "updated_at"], "properties": { "id": { "type": "string", "format": "uuid" }, "slug": slug, "name": { "type": "string" }, "timezone": { "type": "string" }, "version": { "type": "integer" }, "created_at": time, "updated_at": time } },
                "SitePage": { "type": "object", "required": ["items", "next_cursor"], "properties": { "items": { "type": "array", "items": schema("Site") }, "next_cursor": { "type": ["string", "null"] } } },
                "NewSensor": { "type": "object", "description": "min must be below max when both are set.", "required": ["key", "type", "unit"], "additionalProperties": false, "properties": { "key": key, "type": sensor_type, "unit": unit, "min": number_or_null, "max": number_or_null } },
                "SensorPatch": { "type": "object", "description": "The key may be sent only unchanged; min must stay below max (null clears a bound).", "required": ["version"], "additionalProperties": false, "properties": { "type": sensor_type, "unit": unit, "min": number_or_null, "max": number_or_null, "version": version } },
                "Sensor": { "type": "object", "required": ["id", "site", "key", "type", "unit", "version", "created_at", "updated_at"], "properties": { "id": { "type": "string", "format": "uuid" }, "site": slug, "key": slug, "type": { "type": "string" }, "unit": { "type": "string" }, "min": number_or_null, "max": number_or_null, "version": { "type": "integer" }, "created_at": time, "updated_at": time } },
                "SensorPage": { "type": "object", "required": ["items", "next_cursor"], "properties": { "items": { "type": "array", "items": schema("Sensor") }, "next_cursor": { "type": ["string", "null"] } } },
                "Latest": { "type": "object", "required": ["site", "readings"], "properties": { "site": slug, "readings": { "type": "array", "items": { "type": "object", "required": ["sensor", "type", "unit", "value", "ts"], "properties": { "sensor": slug, "type": { "type": "string" }, "unit": { "type": "string" }, "value": number_or_null, "ts": { "type": ["string", "null"], "format": "date-time" } } } } } },
                "History": { "type": "object", "required": ["site", "sensor", "unit", "agg", "every", "start", "end", "points"], "properties": { "site": slug, "sensor": slug, "unit": { "type": "string" }, "agg": { "type": "string" }, "every": { "type": "string" }, "start": time, "end": time, "points": { "type": "array", "items": { "type": "object", "properties": { "ts": time, "value": { "type": "number" } } } } } },
                "Telemetry": { "description": "{\"ts\": …, \"values\": {sensor: value}}, an array of those, or a flat {sensor: value} map (with an optional ts); ts is epoch ms or RFC 3339.", "anyOf": [
                    schema("TelemetryMessage"),
                    { "type": "array", "minItems": 1, "items": schema("TelemetryMessage") },
                    { "type": "object", "minProperties": 1, "properties": { "ts": time_input() }, "propertyNames": { "minLength": 1, "not": { "const": "values" } }, "additionalProperties": { "type": "number" }, "not": { "required": ["ts"], "maxProperties": 1 } }
                ] },
                "TelemetryMessage": { "type": "object", "required": ["values"], "additionalProperties": false, "properties": {
                    "ts": time_input(),
                    "values": { "type": "object", "minProperties": 1, "propertyNames": { "minLength": 1 }, "additionalProperties": { "type": "number" } }
                } },
                "AlertRuleDraft": { "type": "object", "description": "By kind: threshold needs agg, op, threshold, clear_threshold, window (for optional); rate_of_change op, rate_per_min, clear_rate_per_min, window; no_data timeout; anomaly window, baseline, z, clear_z. At least one of site, sensor, sensor_type. Durations as 30s, 5m, 24h.", "properties": {
                    "name": { "type": "string" }, "kind": { "enum": ["threshold", "rate_of_change", "no_data", "anomaly"] },
                    "site": slug, "sensor": slug, "sensor_type": { "type": "string" },
                    "agg": { "enum": ["mean", "min", "max", "last"] }, "op": { "enum": [">", ">=", "<", "<="] },
                    "threshold": { "type": "number" }, "clear_threshold": { "type": "number" },
                    "window": { "type": "string" }, "for": { "type": "string" },
                    "rate_per_min": { "type": "number" }, "clear_rate_per_min": { "type": "number" },
                    "timeout": { "type": "string" }, "baseline": { "type": "string" },
                    "z": { "type": "number" }, "clear_z": { "type": "number" },
                    "severity": { "enum": ["info", "warning", "critical"] }, "enabled": { "type": "boolean" },
                    "version": { "type": "integer", "description": "PATCH: the version read." }
                } },
                "AlertRule": { "allOf": [ schema("AlertRuleDraft"), { "type": "object", "properties": { "id": { "type": "string", "format": "uuid" }, "created_at": time, "updated_at": time } } ] },
                "AlertRulePage": { "type": "object", "properties": { "items": { "type": "array", "items": schema("AlertRule") }, "next_cursor": { "type": ["string", "null"] } } },
                "Dashboard": { "type": "object", "properties": { "site": slug, "generated_at": time,
                    "counts": { "type": "object", "properties": { "ok": { "type": "integer" }, "stale": { "type": "integer" }, "out_of_range": { "type": "integer" }, "alerting": { "type": "integer" } } },
                    "sensors": { "type": "array", "items": { "type": "object", "properties": { "sensor": slug, "type": { "type": "string" }, "unit": { "type": "string" }, "value": number_or_null, "ts": { "type": ["string", "null"], "format": "date-time" }, "min": number_or_null, "max": number_or_null, "status": { "enum": ["ok", "stale", "out_of_range", "alerting"] } } } },
                    "open_alerts": { "type": "array", "items": schema("Alert") } } },
                "Alert": { "type": "object", "description": "DESIGN.md's alert, with the rule's name and kind, the limit compared with, who acknowledged and resolved it (an API key's name, or analytics) and its version.", "properties": {
                    "id": uuid, "rule_id": uuid, "rule_name": { "type": "string" }, "kind": { "type": "string" },
                    "site": slug, "sensor": slug, "severity": { "enum": ["info", "warning", "critical"] },
                    "state": { "enum": ["firing", "acknowledged", "resolved"] },
                    "opened_at": time, "acknowledged_at": time_or_null, "resolved_at": time_or_null,
                    "value": number_or_null, "threshold": number_or_null, "message": { "type": "string" },
                    "acknowledged_by": string_or_null, "resolved_by": string_or_null, "version": { "type": "integer" }
                } },
                "AlertEvent": { "type": "object", "properties": {
                    "id": { "type": "integer" }, "alert_id": uuid, "transition": { "enum": ["fired", "acknowledged", "resolved"] },
                    "at": time, "actor": { "type": "string" }, "value": number_or_null, "detail": { "type": "string" }
                } },
                "AlertWithEvents": { "allOf": [ schema("Alert"), { "type": "object", "properties": { "events": { "type": "array", "items": schema("AlertEvent") } } } ] },
                "AlertPage": { "type": "object", "properties": { "items": { "type": "array", "items": schema("Alert") }, "next_cursor": { "type": ["string", "null"] } } },
                "PreviewRequest": { "type": "object", "description": "Exactly one of rule_id and rule; start before end, at most 31 days apart.", "additionalProperties": false,
                    "oneOf": [ { "required": ["rule_id"], "not": { "required": ["rule"] } }, { "required": ["rule"], "not": { "required": ["rule_id"] } } ],
                    "properties": {
                    "rule_id": uuid, "rule": schema("AlertRuleDraft"),
                    "start": { "description": "Epoch milliseconds or RFC 3339; default end minus 24 h; at most 31 days before end.", "anyOf": time_input()["anyOf"] },
                    "end": { "description": "Epoch milliseconds or RFC 3339; default now (a later end is taken as now).", "anyOf": time_input()["anyOf"] },
                    "interval": { "type": "string", "pattern": "^[1-9][0-9]{0,3}(s|m|h)$", "description": "Evaluation interval, whole seconds of at least 1s; default 10s." }
                } },
                "Preview": { "type": "object", "properties": {
                    "rule": { "type": "object", "description": "The saved rule, or the draft as validated (no id, version or times)." },
                    "start": time, "end": time, "interval": { "type": "string" },
                    "sensors": { "type": "integer", "description": "Sensors the rule selects." },
                    "alerts": { "type": "array", "items": { "type": "object", "properties": {
                        "site": slug, "sensor": slug,
                        "opened_at": { "type": "integer", "description": "Epoch milliseconds: the tick it fired at." },
                        "value": number_or_null, "message": { "type": "string" },
                        "cleared_at": { "type": ["integer", "null"], "description": "Epoch milliseconds; null: still firing at end." },
                        "cleared_message": string_or_null
                    } } }
                } },
                "RejectedReading": { "type": "object", "required": ["reason", "detail"], "properties": { "sensor": { "type": "string" }, "reason": { "type": "string", "enum": stoker_ingestion::Reason::ALL.map(stoker_ingestion::Reason::as_str) }, "detail": { "type": "string" } } },
                "TelemetryReceipt": { "type": "object", "required": ["accepted", "rejected"], "properties": { "accepted": { "type": "integer" }, "rejected": { "type": "array", "items": schema("RejectedReading") } } }
            }
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn allow_lists_the_methods_of_the_path_and_literals_outrank_parameters() {
        assert_eq!(
            allowed_methods("/api/v1/sites").as_deref(),
            Some("GET, POST")
        );
        assert_eq!(
            allowed_methods("/api/v1/sites/boiler-house-1").as_deref(),
            Some("GET, PATCH, DELETE")
        );
        assert_eq!(
            allowed_methods("/api/v1/alert-rules/preview").as_deref(),
            Some("POST")
        );
        assert_eq!(
            allowed_methods("/api/v1/alert-rules/0190a1b2-0000-7000-8000-000000000000").as_deref(),
            Some("GET, PATCH, DELETE")
        );
        assert_eq!(allowed_methods("/healthz").as_deref(), Some("GET"));
        assert_eq!(allowed_methods("/api/v1/nothing"), None);
    }
}
