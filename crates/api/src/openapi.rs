//! `GET /api/v1/openapi.json`: the OpenAPI 3 document of every route this
//! server answers, built from [`ROUTES`]. A test walks the document and
//! checks that each operation is answered and that no other method is.

use serde_json::{Map, Value, json};

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
        body: Some("AlertRulePatch"),
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

fn schema(name: &str) -> Value {
    json!({ "$ref": format!("#/components/schemas/{name}") })
}

fn problem(description: &str) -> Value {
    json!({
        "description": description,
        "content": { "application/problem+json": { "schema": schema("Problem") } }
    })
}

fn operation(route: &Route) -> Value {
    let mut parameters = Vec::new();
    for name in ["site", "sensor"] {
        if route.path.contains(&format!("{{{name}}}")) {
            parameters.push(json!({
                "name": name, "in": "path", "required": true,
                "schema": { "type": "string", "pattern": "^[a-z0-9][a-z0-9_-]{0,62}$" }
            }));
        }
    }
    for name in ["rule", "alert"] {
        if route.path.contains(&format!("{{{name}}}")) {
            parameters.push(json!({ "name": name, "in": "path", "required": true, "schema": { "type": "string", "format": "uuid" } }));
        }
    }
    for (name, description) in route.query {
        parameters.push(json!({ "name": name, "in": "query", "required": false, "description": description, "schema": { "type": "string" } }));
    }
    if matches!(route.method, "patch" | "delete") {
        parameters.push(json!({ "name": "If-Match", "in": "header", "required": false, "description": "The ETag (version) read; instead of version in the body.", "schema": { "type": "string" } }));
    }
    let mut responses = Map::new();
    let (status, body) = route.ok;
    let ok = match body {
        Some(name) => {
            json!({ "description": "Success.", "content": { "application/json": { "schema": schema(name) } } })
        }
        None => json!({ "description": "Success." }),
    };
    responses.insert(status.to_string(), ok);
    if route.scope.is_some() {
        responses.insert(
            "401".into(),
            problem("No key, or a malformed, unknown or revoked one."),
        );
        responses.insert("403".into(), problem("The key lacks the route's scope."));
        responses.insert(
            "404".into(),
            problem("No such site, sensor, alert rule or alert."),
        );
        responses.insert("400".into(), problem("A bad query parameter or header."));
        responses.insert(
            "503".into(),
            problem("A store the route needs is unavailable (Retry-After)."),
        );
    }
    if route.body.is_some() {
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
    if matches!(route.method, "patch" | "delete" | "post") && route.scope == Some("admin") {
        responses.insert(
            "409".into(),
            problem("A version conflict, an existing resource, or dependents."),
        );
    }
    let mut operation =
        json!({ "summary": route.summary, "parameters": parameters, "responses": responses });
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
    operation
}

/// The OpenAPI 3 document.
pub(crate) fn document() -> Value {
    let mut paths = Map::new();
    for route in ROUTES {
        let entry = paths
            .entry(route.path.to_owned())
            .or_insert_with(|| Value::Object(Map::new()));
        entry[route.method] = operation(route);
    }
    let slug = json!({ "type": "string", "pattern": "^[a-z0-9][a-z0-9_-]{0,62}$" });
    let time = json!({ "type": "string", "format": "date-time" });
    let number_or_null = json!({ "type": ["number", "null"] });
    let string_or_null = json!({ "type": ["string", "null"] });
    let time_or_null = json!({ "type": ["string", "null"], "format": "date-time" });
    let uuid = json!({ "type": "string", "format": "uuid" });
    let mut document = json!({
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
                    "errors": { "type": "array", "items": { "type": "object", "properties": { "field": { "type": "string" }, "message": { "type": "string" } } } },
                    "rejected": { "type": "array", "items": schema("RejectedReading") }
                } },
                "NewSite": { "type": "object", "required": ["slug", "name"], "properties": { "slug": slug, "name": { "type": "string", "maxLength": 200 }, "timezone": { "type": "string", "description": "IANA name; default UTC." } } },
                "SitePatch": { "type": "object", "properties": { "name": { "type": "string" }, "timezone": { "type": "string" }, "version": { "type": "integer" } } },
                "Site": { "type": "object", "properties": { "id": { "type": "string", "format": "uuid" }, "slug": slug, "name": { "type": "string" }, "timezone": { "type": "string" }, "version": { "type": "integer" }, "created_at": time, "updated_at": time } },
                "SitePage": { "type": "object", "properties": { "items": { "type": "array", "items": schema("Site") }, "next_cursor": { "type": ["string", "null"] } } },
                "NewSensor": { "type": "object", "required": ["key", "type", "unit"], "properties": { "key": slug, "type": { "type": "string" }, "unit": { "type": "string" }, "min": number_or_null, "max": number_or_null } },
                "SensorPatch": { "type": "object", "properties": { "type": { "type": "string" }, "unit": { "type": "string" }, "min": number_or_null, "max": number_or_null, "version": { "type": "integer" } } },
                "Sensor": { "type": "object", "properties": { "id": { "type": "string", "format": "uuid" }, "site": slug, "key": slug, "type": { "type": "string" }, "unit": { "type": "string" }, "min": number_or_null, "max": number_or_null, "version": { "type": "integer" }, "created_at": time, "updated_at": time } },
                "SensorPage": { "type": "object", "properties": { "items": { "type": "array", "items": schema("Sensor") }, "next_cursor": { "type": ["string", "null"] } } },
                "Latest": { "type": "object", "properties": { "site": slug, "readings": { "type": "array", "items": { "type": "object", "properties": { "sensor": slug, "type": { "type": "string" }, "unit": { "type": "string" }, "value": number_or_null, "ts": { "type": ["string", "null"], "format": "date-time" } } } } } },
                "History": { "type": "object", "properties": { "site": slug, "sensor": slug, "unit": { "type": "string" }, "agg": { "type": "string" }, "every": { "type": "string" }, "start": time, "end": time, "points": { "type": "array", "items": { "type": "object", "properties": { "ts": time, "value": { "type": "number" } } } } } },
                "Telemetry": { "description": "{\"ts\": …, \"values\": {sensor: value}}, an array of those, or a flat {sensor: value} map; ts is epoch ms or RFC 3339.", "oneOf": [ { "type": "object" }, { "type": "array", "items": { "type": "object" } } ] },
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
                "PreviewRequest": { "type": "object", "description": "Exactly one of rule_id and rule.", "properties": {
                    "rule_id": uuid, "rule": schema("AlertRuleDraft"),
                    "start": { "type": ["string", "integer"], "description": "Epoch milliseconds or RFC 3339; default end minus 24 h; at most 31 days before end." },
                    "end": { "type": ["string", "integer"], "description": "Epoch milliseconds or RFC 3339; default now (a later end is taken as now)." },
                    "interval": { "type": "string", "description": "Evaluation interval, whole seconds of at least 1s; default 10s." }
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
                "RejectedReading": { "type": "object", "properties": { "sensor": { "type": "string" }, "reason": { "type": "string" }, "detail": { "type": "string" } } },
                "TelemetryReceipt": { "type": "object", "properties": { "accepted": { "type": "integer" }, "rejected": { "type": "array", "items": schema("RejectedReading") } } }
            }
        }
    });
    if let Some(schemas) = document["components"]["schemas"].as_object_mut() {
        schemas.extend(crate::rules::schemas());
    }
    document
}
