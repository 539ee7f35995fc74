//! `GET /api/v1/openapi.json`: the OpenAPI 3 document of every route this
//! server answers, built from [`ROUTES`]. A test walks the document and
//! checks that each operation is answered and that no other method is.

use serde_json::{Map, Value, json};
use stoker_analytics::store::{AlertState, StateFilter};
use stoker_domain::{
    EpochMillis, SensorKey, SensorKind, SensorType, SiteSlug, StateName, States, Unit,
};
use stoker_timeseries::Aggregate;

mod audit;
mod influx;
mod keys;
mod kpis;
mod links;
mod maintenance;
mod routes;

use links::{links, operation_id};
pub(crate) use routes::allowed_methods;
use routes::{ROUTES, Route};

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

/// A cursor (`page`: the hex of the last item's sort key) whose key is a
/// slug or sensor key.
const SLUG_CURSOR_PATTERN: &str =
    "^(3[0-9]|6[1-9a-f]|7[0-9a])(3[0-9]|6[1-9a-f]|7[0-9a]|2d|5f){0,62}$";
/// The hex of one lowercase hexadecimal digit.
const HEX_DIGIT: &str = "(3[0-9]|6[1-6])";

/// A cursor whose key is an id (a lowercase hyphenated UUID).
fn uuid_cursor() -> String {
    let group = |digits: usize| format!("{HEX_DIGIT}{{{digits}}}");
    [8, 4, 4, 4, 12].map(group).join("2d")
}

/// The cursor a route's pages take: the hex of its sort key, as
/// `next_cursor` gave it.
fn cursor_schema(path: &str) -> Value {
    let pattern = match path {
        "/api/v1/alert-rules" | "/api/v1/sites/{site}/gateways" | "/api/v1/maintenance-windows" => {
            format!("^{}$", uuid_cursor())
        }
        // The audit trail: an event's id, in decimal.
        "/api/v1/audit" => "^3[1-9](3[0-9]){0,17}$".to_owned(),
        // Alerts: the opening time in epoch microseconds, '_', the id.
        "/api/v1/alerts" => format!("^(2d)?(3[0-9]){{1,17}}5f{}$", uuid_cursor()),
        _ => SLUG_CURSOR_PATTERN.to_owned(),
    };
    json!({ "type": "string", "pattern": pattern })
}

/// A query parameter's schema, by its name (each name means one thing on
/// every route but `cursor`, whose key is the route's sort key).
fn query_schema(route: &Route, name: &str) -> Value {
    match name {
        "limit" => {
            json!({ "type": "integer", "minimum": 1, "maximum": stoker_metadata::MAX_PAGE_LIMIT })
        }
        "cursor" => cursor_schema(route.path),
        "site" | "sensor" => slug(),
        "rule" => json!({ "type": "string", "format": "uuid" }),
        "enabled" => json!({ "type": "string", "enum": ["true", "false"] }),
        "state" => json!({ "type": "string", "enum": StateFilter::NAMES }),
        "kind" => json!({ "type": "string", "enum": crate::alerts::KIND_NAMES }),
        "entity" => json!({ "type": "string", "enum": stoker_metadata::Entity::NAMES }),
        "actor" => audit::actor(),
        "agg" => json!({ "type": "string", "enum": Aggregate::ALL.map(Aggregate::as_str) }),
        "start" | "end" => time_input(),
        "every" => json!({ "type": "string", "pattern": "^[1-9][0-9]{0,3}(ms|s|m|h|d)$" }),
        "format" => json!({ "type": "string", "enum": crate::history::FORMATS }),
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
                "No key, or a malformed, unknown, revoked or expired one.",
                "WWW-Authenticate",
                "Bearer realm=\"stoker\"",
            ),
        );
        responses.insert(
            "403".into(),
            problem("The key lacks the route's scope (insufficient_scope), or is limited to other sites (forbidden_site)."),
        );
        responses.insert(
            "404".into(),
            problem("No such site, sensor, gateway, alert rule or alert."),
        );
        responses.insert(
            "429".into(),
            problem_with_header(
                "rate_limited: the key sent more requests than its budget (API_KEY_RATE, API_KEY_BURST).",
                "Retry-After",
                "Whole seconds to wait before the next request would pass (at least 1).",
            ),
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
            problem("invalid_transition: the alert's state does not allow this change; not_latched (reset): its condition still holds or its rule does not latch; not_shelved (unshelve)."),
        );
    }
    if route.path.ends_with("/shelve") {
        responses.insert(
            "422".into(),
            problem("Invalid fields (for: a duration of at least 1s; reason: required, at most 1000 characters), or shelve_too_long: longer than the rule's max_shelve."),
        );
    }
    if route.path == "/api/v1/alert-rules/preview" {
        responses.insert(
            "422".into(),
            problem("Invalid fields (a draft's named rule.<field>), or backtest_too_large: the backtest would read more than 5,000,000 buckets."),
        );
    }
    if route.path.ends_with("/register") {
        responses.insert(
            "422".into(),
            problem("Invalid fields: a sensors entry that is not an unregistered metric of the gateway, a state metric without its states, or states for a metric that is not one."),
        );
    }
    if route.path.starts_with("/api/v1/api-keys") && route.method == "post" {
        responses.insert(
            "404".into(),
            problem("No unrevoked key has this name, public id or UUID."),
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
    if route.path.ends_with("/history") {
        responses.insert(
            "406".into(),
            problem("Without format, an Accept header that allows neither application/json nor text/csv."),
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
        (Some(name), path) if path.ends_with("/history") => {
            ok["content"] = json!({
                "application/json": { "schema": schema(name) },
                "text/csv": { "schema": { "type": "string", "description": crate::history::CSV_DESCRIPTION } }
            });
            ok["headers"] = json!({ "Content-Disposition": { "required": false, "description": "With CSV: attachment; filename=\"{site}_{sensor}_{start}_{end}.csv\" (times in UTC, as 20261207T100000Z).", "schema": { "type": "string" } } });
        }
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
    let versioned = matches!(body, Some("Site" | "Sensor" | "Gateway" | "AlertRule"))
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
    if route.path.contains("{name}") {
        parameters.push(json!({ "name": "name", "in": "path", "required": true, "description": "An API key's name, public id or UUID (a key whose name has other characters is named by its public id).", "schema": { "type": "string", "minLength": 1, "maxLength": 100, "pattern": "^[A-Za-z0-9][A-Za-z0-9_~-]*$" } }));
    }
    for name in ["rule", "alert", "gateway", "window"] {
        if route.path.contains(&format!("{{{name}}}")) {
            parameters.push(json!({ "name": name, "in": "path", "required": true, "schema": { "type": "string", "format": "uuid" } }));
        }
    }
    for (name, description) in route.query {
        parameters.push(json!({ "name": name, "in": "query", "required": false, "description": description, "schema": query_schema(route, name) }));
    }
    // Keys have no version: revoking one takes no If-Match.
    // Neither have out-of-service and maintenance windows.
    if matches!(route.method, "patch" | "delete")
        && !route.path.starts_with("/api/v1/api-keys")
        && !route.path.starts_with("/api/v1/maintenance-windows")
        && !route.path.ends_with("/out-of-service")
    {
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

/// Postgres' timezone names, read once per process.
static TIMEZONES: tokio::sync::OnceCell<Vec<String>> = tokio::sync::OnceCell::const_new();

/// The document as served: with the timezone names Postgres knows, read
/// on the first request (and again on the next while Postgres cannot
/// answer, the document listing none meanwhile).
pub(crate) async fn served(pool: &stoker_postgres::Pool) -> Value {
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
        entry[route.method] = if influx::is_influx_write(route) {
            influx::operation(route)
        } else {
            operation(route)
        };
    }
    let slug = slug();
    let time = json!({ "type": "string", "format": "date-time" });
    let version = json!({ "type": "integer", "minimum": 1, "maximum": i64::MAX, "description": "The version read (or send it as If-Match), as a JSON integer (2, not 2.0)." });
    let timezone = match timezones {
        Some(names) => {
            json!({ "type": "string", "enum": names, "description": "An IANA name Postgres knows; default UTC." })
        }
        None => {
            json!({ "type": "string", "minLength": 1, "maxLength": stoker_metadata::TIMEZONE_MAX_LEN, "description": "An IANA name Postgres knows; default UTC." })
        }
    };
    let name = json!({ "type": "string", "minLength": 1, "maxLength": stoker_metadata::SITE_NAME_MAX_LEN, "pattern": "^[^\\u0000]*[^\\s\\u0000][^\\u0000]*$", "description": "Trimmed; 1 to 200 characters, no NUL." });
    let sensor_type = json!({ "type": "string", "minLength": 1, "maxLength": SensorType::MAX_LEN, "pattern": SensorType::PATTERN });
    let unit = json!({ "type": "string", "minLength": 1, "maxLength": Unit::MAX_LEN, "pattern": Unit::PATTERN });
    let key = json!({ "type": "string", "minLength": 1, "maxLength": SensorKey::MAX_LEN, "pattern": SensorKey::PATTERN });
    let number_or_null = json!({ "type": ["number", "null"] });
    let kind = json!({ "type": "string", "enum": SensorKind::ALL.map(SensorKind::as_str), "description": "What its readings are; default numeric. It never changes." });
    let states = json!({ "type": "array", "minItems": 1, "maxItems": States::MAX_COUNT, "uniqueItems": true,
        "items": { "type": "string", "minLength": 1, "maxLength": StateName::MAX_LEN, "pattern": StateName::PATTERN },
        "description": "A state sensor's states, in order (InfluxDB stores a reading's index in this list): required for kind state, refused for the others. A change may only add states at the end." });
    // A reading in its sensor's kind: 81.5, true or "firing".
    let reading_value = json!({ "type": ["number", "boolean", "string", "null"], "description": "In the sensor's kind: a number, true/false, or a state's name; null when it never reported." });
    // An alert's value or threshold: a number, or for a rule comparing a
    // boolean or state sensor (`==`, `!=`), true/false or a state's name.
    let alert_value = |what: &str| json!({ "type": ["number", "boolean", "string", "null"], "description": format!("{what}: a number; true/false or a state's name for a rule comparing a boolean or state sensor (op == or !=); null when there is none (no_data).") });
    // The rules between kind, states and range, as `NewSensor::check`
    // states them: only a state sensor has states (and needs them), only
    // a numeric sensor a range. A new sensor without a kind is numeric; a
    // change without one keeps the sensor's.
    let no_range =
        json!({ "properties": { "min": { "type": "null" }, "max": { "type": "null" } } });
    let new_sensor_rules = json!([
        { "if": { "required": ["kind"], "properties": { "kind": { "const": "state" } } },
          "then": { "required": ["states"], "properties": { "min": { "type": "null" }, "max": { "type": "null" } } },
          "else": { "not": { "required": ["states"] } } },
        { "if": { "required": ["kind"], "properties": { "kind": { "const": "boolean" } } }, "then": no_range }
    ]);
    let patch_rules = json!([
        { "if": { "required": ["kind"], "properties": { "kind": { "const": "state" } } }, "then": no_range },
        { "if": { "required": ["kind"], "properties": { "kind": { "const": "boolean" } } },
          "then": { "not": { "required": ["states"] }, "properties": { "min": { "type": "null" }, "max": { "type": "null" } } } },
        { "if": { "required": ["kind"], "properties": { "kind": { "const": "numeric" } } },
          "then": { "not": { "required": ["states"] } } }
    ]);
    let string_or_null = json!({ "type": ["string", "null"] });
    let time_or_null = json!({ "type": ["string", "null"], "format": "date-time" });
    let uuid = json!({ "type": "string", "format": "uuid" });
    let gateway_id = json!({ "type": "string", "minLength": 1, "maxLength": stoker_metadata::GATEWAY_ID_MAX_LEN, "pattern": stoker_metadata::GATEWAY_ID_PATTERN, "description": "A Sparkplug id: no +, #, / or control character." });
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
                    "errors": { "type": "array", "items": { "type": "object", "required": ["field", "message"], "properties": { "field": { "type": "string" }, "message": { "type": "string" } } } },
                    "rejected": { "type": "array", "items": schema("RejectedReading") }
                } },
                "Readiness": { "type": "object", "required": ["status"], "properties": { "status": { "type": "string" }, "checks": { "type": "object" } } },
                "Timezone": timezone,
                "NewSite": { "type": "object", "required": ["slug", "name"], "additionalProperties": false, "properties": { "slug": slug, "name": name, "timezone": { "anyOf": [schema("Timezone"), { "type": "null" }], "description": "Absent or null: UTC." } } },
                "SitePatch": { "type": "object", "description": "The slug may be sent only unchanged.", "required": ["version"], "additionalProperties": false, "properties": { "name": name, "timezone": schema("Timezone"), "version": version } },
                "Site": { "type": "object", "required": ["id", "slug", "name", "timezone", "version", "created_at", "updated_at"], "properties": { "id": { "type": "string", "format": "uuid" }, "slug": slug, "name": { "type": "string" }, "timezone": { "type": "string" }, "version": { "type": "integer" }, "created_at": time, "updated_at": time } },
                "SitePage": { "type": "object", "required": ["items", "next_cursor"], "properties": { "items": { "type": "array", "items": schema("Site") }, "next_cursor": { "type": ["string", "null"] } } },
                "NewSensor": { "type": "object", "description": "min must be below max when both are set. A state sensor needs states; only a numeric sensor has min and max, only a state sensor states.", "required": ["key", "type", "unit"], "additionalProperties": false, "properties": { "key": key, "type": sensor_type, "unit": unit, "min": number_or_null, "max": number_or_null, "kind": kind, "states": states }, "allOf": new_sensor_rules },
                "SensorPatch": { "type": "object", "description": "The key and the kind may be sent only unchanged (409 kind_unchangeable); states only grow at the end (409 states_only_grow); min must stay below max (null clears a bound), and only a numeric sensor has them (409 kind_conflict), only a state sensor states.", "required": ["version"], "additionalProperties": false, "properties": { "type": sensor_type, "unit": unit, "min": number_or_null, "max": number_or_null, "kind": kind, "states": states, "version": version }, "allOf": patch_rules },
                "Sensor": { "type": "object", "required": ["id", "site", "key", "type", "unit", "kind", "version", "created_at", "updated_at"], "properties": { "id": { "type": "string", "format": "uuid" }, "site": slug, "key": slug, "type": { "type": "string" }, "unit": { "type": "string" }, "kind": kind, "states": states, "min": number_or_null, "max": number_or_null, "out_of_service": crate::condition::out_of_service_schema(), "version": { "type": "integer" }, "created_at": time, "updated_at": time } },
                "SensorPage": { "type": "object", "required": ["items", "next_cursor"], "properties": { "items": { "type": "array", "items": schema("Sensor") }, "next_cursor": { "type": ["string", "null"] } } },
                "NewGateway": { "type": "object", "required": ["group", "edge_node"], "additionalProperties": false, "properties": { "group": gateway_id, "edge_node": gateway_id } },
                "GatewayMetric": { "type": "object", "required": ["device", "metric", "sensor", "datatype", "registered"], "properties": {
                    "device": { "type": ["string", "null"], "description": "The device whose DBIRTH announced it; null: a metric of the edge node itself." },
                    "metric": { "type": "string", "description": "The Sparkplug metric name." },
                    "sensor": { "anyOf": [slug, { "type": "null" }], "description": "Its sensor key ({metric} or {device}/{metric}, lowercased, every run outside [a-z0-9_-] one _, leading _ and - trimmed, cut to 63); null when it maps to none." },
                    "datatype": { "type": "string", "description": "The Sparkplug datatype name (Double, Boolean, String, …)." },
                    "registered": { "type": "boolean", "description": "Whether the site has a sensor with this key." } } },
                "UnregisteredMetric": { "type": "object", "required": ["device", "metric", "sensor", "datatype", "kind"], "properties": {
                    "device": { "type": ["string", "null"] }, "metric": { "type": "string" }, "sensor": slug, "datatype": { "type": "string" },
                    "kind": { "type": "string", "enum": SensorKind::ALL.map(SensorKind::as_str), "description": "The kind it would get: numeric types numeric, Boolean boolean, String and Text state." } } },
                "GatewayDevice": { "type": "object", "required": ["device", "online", "last_birth_at", "last_death_at"], "properties": {
                    "device": { "type": "string", "description": "The Sparkplug device id." },
                    "online": { "type": "boolean", "description": "Between its DBIRTH and its DDEATH or its edge node's NDEATH (or will). A new NBIRTH leaves it offline until its DBIRTH." },
                    "last_birth_at": { "type": ["string", "null"], "format": "date-time", "description": "When its last DBIRTH arrived; null if not recorded." },
                    "last_death_at": { "type": ["string", "null"], "format": "date-time", "description": "When its last DDEATH, or its edge node's death, arrived." } } },
                "Gateway": { "type": "object", "description": "A Sparkplug edge node bound to a site. online: between its NBIRTH and its NDEATH (or will). devices: every device it announced, with its own online state (a DDEATH concerns only that device; an NDEATH takes them all offline). unregistered: the announced metrics with a sensor key the site has no sensor for and a datatype Stoker stores (two metrics mapping to one key are left out: ingestion refuses both as ambiguous_metric).",
                    "required": ["id", "site", "group", "edge_node", "online", "bd_seq", "last_birth_at", "last_death_at", "metrics", "devices", "unregistered", "version", "created_at", "updated_at"], "properties": {
                    "id": uuid, "site": slug, "group": { "type": "string" }, "edge_node": { "type": "string" },
                    "online": { "type": "boolean" }, "bd_seq": { "type": ["integer", "null"] },
                    "last_birth_at": time_or_null, "last_death_at": time_or_null,
                    "metrics": { "type": "array", "items": schema("GatewayMetric") },
                    "devices": { "type": "array", "items": schema("GatewayDevice") },
                    "unregistered": { "type": "array", "items": schema("UnregisteredMetric") },
                    "version": { "type": "integer" }, "created_at": time, "updated_at": time } },
                "GatewayPage": { "type": "object", "required": ["items", "next_cursor"], "properties": { "items": { "type": "array", "items": schema("Gateway") }, "next_cursor": { "type": ["string", "null"] } } },
                "GatewayRegistration": { "type": "object", "additionalProperties": false, "description": "Which unregistered metrics become sensors, and how. A String or Text metric becomes a state sensor and needs its states here (a birth does not declare them).", "properties": {
                    "sensors": { "type": "array", "minItems": 1, "uniqueItems": true, "items": key, "description": "Sensor keys from the gateway's unregistered list; absent: every one." },
                    "type": { "allOf": [sensor_type], "description": "The sensors' type; default sparkplug." },
                    "unit": { "allOf": [unit], "description": "The sensors' unit; default -." },
                    "states": { "type": "object", "propertyNames": key, "additionalProperties": states, "description": "Each state sensor's states, by sensor key." } } },
                "GatewayRegistered": { "type": "object", "required": ["registered"], "properties": { "registered": { "type": "array", "items": schema("Sensor") } } },
                "Latest": { "type": "object", "required": ["site", "readings"], "properties": { "site": slug, "readings": { "type": "array", "items": { "type": "object", "required": ["sensor", "type", "unit", "value", "ts"], "properties": { "sensor": slug, "type": { "type": "string" }, "unit": { "type": "string" }, "value": reading_value, "ts": { "type": ["string", "null"], "format": "date-time" } } } } } },
                "History": { "type": "object", "required": ["site", "sensor", "unit", "agg", "every", "start", "end", "points"], "properties": { "site": slug, "sensor": slug, "unit": { "type": "string" }, "agg": { "type": "string" }, "every": { "type": "string" }, "start": time, "end": time, "points": { "type": "array", "items": { "type": "object", "properties": { "ts": time, "value": { "type": ["number", "boolean", "string"], "description": "A boolean or state sensor's last (or first, min, max) in its kind; a mean is a number (for a boolean, the share of time true)." } } } } } },
                "Telemetry": { "description": "{\"ts\": …, \"values\": {sensor: value}}, an array of those, or a flat {sensor: value} map (with an optional ts); ts is epoch ms or RFC 3339; a value is of its sensor's kind: a number, true/false, or a state's name.", "anyOf": [
                    schema("TelemetryMessage"),
                    { "type": "array", "minItems": 1, "items": schema("TelemetryMessage") },
                    { "type": "object", "minProperties": 1, "properties": { "ts": time_input() }, "propertyNames": { "minLength": 1, "not": { "const": "values" } }, "additionalProperties": { "type": ["number", "boolean", "string"] }, "not": { "required": ["ts"], "maxProperties": 1 } }
                ] },
                "TelemetryMessage": { "type": "object", "required": ["values"], "additionalProperties": false, "properties": {
                    "ts": time_input(),
                    "values": { "type": "object", "minProperties": 1, "propertyNames": { "minLength": 1 }, "additionalProperties": { "type": ["number", "boolean", "string"] } }
                } },
                "AlertRulePage": { "type": "object", "properties": { "items": { "type": "array", "items": schema("AlertRule") }, "next_cursor": { "type": ["string", "null"] } } },
                "Dashboard": { "type": "object", "properties": { "site": slug, "generated_at": time,
                    "counts": { "type": "object", "properties": { "ok": { "type": "integer" }, "stale": { "type": "integer" }, "out_of_range": { "type": "integer" }, "alerting": { "type": "integer" } } },
                    "sensors": { "type": "array", "items": { "type": "object", "properties": { "sensor": slug, "type": { "type": "string" }, "unit": { "type": "string" }, "value": reading_value, "ts": { "type": ["string", "null"], "format": "date-time" }, "min": number_or_null, "max": number_or_null, "status": { "enum": ["ok", "stale", "out_of_range", "alerting"] } } } },
                    "open_alerts": { "type": "array", "items": schema("Alert") } } },
                "Alert": { "type": "object", "description": "DESIGN.md's alert, with the rule's name and kind, the limit compared with, who acknowledged and resolved it (an API key's name, or analytics) and its version. Its state (ISA-18.2) names two facts, active and acknowledged: unacknowledged and acknowledged are active; cleared_unacknowledged returned to normal before anyone acknowledged it; closed is over. resolved_at and resolved_by say when and by whom its active life last ended (its condition cleared: analytics; a reset or a resolution by hand: the operator); null while active. A condition that returns while the alert is not closed reactivates it (activated_at). A gateway_offline alert (a Sparkplug gateway that died; cleared by analytics when it is born again) has no rule and no sensor (null) and names its gateway; a rule's alert has gateway null.", "properties": {
                    "id": uuid, "rule_id": { "type": ["string", "null"], "format": "uuid" }, "rule_name": string_or_null, "kind": { "type": "string", "enum": crate::alerts::KIND_NAMES },
                    "site": slug, "sensor": { "anyOf": [slug, { "type": "null" }] },
                    "gateway": { "anyOf": [{ "type": "object", "required": ["group", "edge_node"], "properties": { "group": { "type": "string" }, "edge_node": { "type": "string" } } }, { "type": "null" }] },
                    "severity": { "enum": ["info", "warning", "critical"] },
                    "state": { "enum": AlertState::ALL.map(AlertState::as_str) },
                    "active": { "type": "boolean", "description": "Whether its condition is active; a latched alert stays active until reset." },
                    "activated_at": { "type": "string", "format": "date-time", "description": "When it last fired or was reactivated." },
                    "latched_at": { "type": ["string", "null"], "format": "date-time", "description": "When the condition of its latching rule cleared: it stays active until POST …/reset." },
                    "shelved_until": { "type": ["string", "null"], "format": "date-time", "description": "Shelved until then: recorded, not announced." },
                    "shelved_by": string_or_null, "shelve_reason": string_or_null,
                    "cause": string_or_null, "consequence": string_or_null, "operator_action": string_or_null,
                    "response_time": { "type": ["string", "null"], "description": "Its rule's rationalization when it fired: how soon the operator must act, a duration such as 10m." },
                    "opened_at": time, "acknowledged_at": time_or_null, "resolved_at": time_or_null,
                    "value": alert_value("The value that fired it"), "threshold": alert_value("What the value was compared with"), "message": { "type": "string" },
                    "acknowledged_by": string_or_null, "resolved_by": string_or_null, "version": { "type": "integer" },
                    "suppressed": { "enum": [stoker_analytics::store::Suppression::NAMES[0], stoker_analytics::store::Suppression::NAMES[1], stoker_analytics::store::Suppression::NAMES[2], stoker_analytics::store::Suppression::NAMES[3], null], "description": "Why it is suppressed (recorded, not announced): its rule's suppress_when holds, its gateway is offline (no_data), its rule or sensor is out of service, or its site is in a maintenance window; null: announced." }
                } },
                "AlertEvent": { "type": "object", "properties": {
                    "id": { "type": "integer" }, "alert_id": uuid, "transition": { "enum": ["fired", "acknowledged", "resolved", "cleared", "reactivated", "closed", "latched", "reset", "shelved", "unshelved", "suppressed", "unsuppressed"], "description": "suppressed: the detail says why it is recorded and not announced; unsuppressed: announced from then on." },
                    "at": time, "actor": { "type": "string" }, "value": alert_value("The value seen"), "detail": { "type": "string" },
                    "explanation": { "type": "object", "description": "On fired and reactivated events: rule_id, rule_version, rule_name, kind, evaluated_at, aggregate (mean, min, max, last, rate_per_min, count, z), value, op, threshold, clear, window, for, held_for (and held_for_ms: how long the condition had held), bucket_ms, buckets (the newest 360 of the span: start, count and the statistics the rule reads, as stored: a boolean 0/1, a state its index), buckets_total; an anomaly's baseline." }
                } },
                "AlertShelve": { "type": "object", "required": ["for", "reason"], "additionalProperties": false, "properties": {
                    "for": { "type": "string", "pattern": "^\\s*([0-9]+\\s*(ms|s|m|h|d)\\s*)+$", "description": "How long, a duration such as 30m (at least 1s, at most the rule's max_shelve)." },
                    "reason": { "type": "string", "minLength": 1, "maxLength": stoker_analytics::store::MAX_SHELVE_REASON_CHARS, "pattern": "\\S", "description": "Why it is shelved." }
                } },
                "AlertWithEvents": { "allOf": [ schema("Alert"), { "type": "object", "properties": { "events": { "type": "array", "items": schema("AlertEvent") } } } ] },
                "AlertPage": { "type": "object", "properties": { "items": { "type": "array", "items": schema("Alert") }, "next_cursor": { "type": ["string", "null"] } } },
                "PreviewRequest": { "type": "object", "description": "Exactly one of rule_id and rule; start before end, at most 31 days apart.", "additionalProperties": false,
                    "oneOf": [ { "required": ["rule_id"], "not": { "required": ["rule"] } }, { "required": ["rule"], "not": { "required": ["rule_id"] } } ],
                    "properties": {
                    "rule_id": uuid, "rule": schema("AlertRuleDraft"),
                    "start": { "description": "Epoch milliseconds or RFC 3339; default (or null) end minus 24 h; at most 31 days before end.", "anyOf": [time_input()["anyOf"][0], time_input()["anyOf"][1], { "type": "null" }] },
                    "end": { "description": "Epoch milliseconds or RFC 3339; default (or null) now (a later end is taken as now).", "anyOf": [time_input()["anyOf"][0], time_input()["anyOf"][1], { "type": "null" }] },
                    "interval": { "type": ["string", "null"], "pattern": "^[1-9][0-9]{0,3}(s|m|h)$", "description": "Evaluation interval, whole seconds of at least 1s; default (or null) 10s." }
                } },
                "Preview": { "type": "object", "properties": {
                    "rule": { "type": "object", "description": "The saved rule, or the draft as validated (no id, version or times)." },
                    "start": time, "end": time, "interval": { "type": "string" },
                    "sensors": { "type": "integer", "description": "Sensors the rule selects." },
                    "alerts": { "type": "array", "items": { "type": "object", "properties": {
                        "site": slug, "sensor": slug,
                        "opened_at": { "type": "integer", "description": "Epoch milliseconds: the tick it fired at." },
                        "value": alert_value("The value that fired it"), "message": { "type": "string" },
                        "cleared_at": { "type": ["integer", "null"], "description": "Epoch milliseconds; null: still firing at end." },
                        "cleared_message": string_or_null
                    } } },
                    "kpis": schema("AlarmKpis")
                } },
                "RejectedReading": { "type": "object", "required": ["reason", "detail"], "properties": { "sensor": { "type": "string" }, "reason": { "type": "string", "enum": stoker_ingestion::Reason::ALL.map(stoker_ingestion::Reason::as_str) }, "detail": { "type": "string" } } },
                "TelemetryReceipt": { "type": "object", "required": ["accepted", "rejected"], "properties": { "accepted": { "type": "integer" }, "rejected": { "type": "array", "items": schema("RejectedReading") } } }
            }
        }
    });
    if let Some(schemas) = document["components"]["schemas"].as_object_mut() {
        schemas.extend(crate::rules::schemas());
        schemas.extend(keys::schemas());
        schemas.extend(audit::schemas());
        schemas.extend(maintenance::schemas());
        schemas.extend(kpis::schemas());
    }
    document
}
