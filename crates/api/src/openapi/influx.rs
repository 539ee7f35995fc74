//! The InfluxDB-compatible writes in the document: line protocol in,
//! InfluxDB's own answers out (not problem+json), keys in InfluxDB's ways.

use serde_json::{Map, Value, json};
use stoker_timeseries::line::Precision;

use super::routes::Route;

/// Whether a route is one of the InfluxDB-compatible writes.
pub(super) fn is_influx_write(route: &Route) -> bool {
    matches!(route.path, "/api/v2/write" | "/write")
}

/// The operation of an InfluxDB-compatible write.
pub(super) fn operation(route: &Route) -> Value {
    let v2 = route.path == "/api/v2/write";
    let precisions: &[&str] = if v2 {
        &Precision::V2_NAMES
    } else {
        &Precision::V1_NAMES
    };
    let parameters: Vec<Value> = route
        .query
        .iter()
        .map(|(name, description)| {
            let required = matches!(*name, "bucket" | "db");
            let schema = match *name {
                "precision" => json!({ "type": "string", "enum": precisions }),
                "bucket" | "db" | "sensor_prefix_tag" => {
                    json!({ "type": "string", "minLength": 1 })
                }
                _ => json!({ "type": "string" }),
            };
            json!({ "name": name, "in": "query", "required": required, "description": description, "schema": schema })
        })
        .collect();
    let error = if v2 {
        json!({ "type": "object", "required": ["code", "message"], "properties": { "code": { "type": "string" }, "message": { "type": "string" } } })
    } else {
        json!({ "type": "object", "required": ["error"], "properties": { "error": { "type": "string" } } })
    };
    let answer = |description: &str| json!({ "description": description, "content": { "application/json": { "schema": error.clone() } } });
    let mut responses = Map::new();
    responses.insert(
        "204".into(),
        json!({ "description": "Every reading stored (durable)." }),
    );
    let mut bad = answer(
        "partial write: each refused line and reading named (line number, sensor, reason), the rest stored; or a bad parameter or body.",
    );
    // A query string that is not URL-encoding is refused before the route.
    bad["content"]["application/problem+json"] = json!({ "schema": super::schema("Problem") });
    responses.insert("400".into(), bad);
    let mut unauthorized = answer("No key, or a malformed, unknown or revoked one.");
    unauthorized["headers"] =
        json!({ "WWW-Authenticate": { "required": true, "schema": { "type": "string" } } });
    responses.insert("401".into(), unauthorized);
    responses.insert("403".into(), answer("The key lacks scope write, or every line is of a site the key may not write (forbidden_site)."));
    responses.insert(
        "408".into(),
        answer("The body did not arrive within HTTP_BODY_TIMEOUT."),
    );
    responses.insert(
        "413".into(),
        answer("The body is over 256 KiB, as sent or decompressed."),
    );
    let mut limited = answer(
        "The key sent more requests than its budget (API_KEY_RATE, API_KEY_BURST): retry after Retry-After seconds. 2.x code: too many requests.",
    );
    limited["headers"] =
        json!({ "Retry-After": { "required": true, "schema": { "type": "string" } } });
    responses.insert("429".into(), limited);
    let mut busy = answer(
        "Ingestion cannot take it now (InfluxDB down and the spool full, or a full queue): retry.",
    );
    busy["headers"] =
        json!({ "Retry-After": { "required": true, "schema": { "type": "string" } } });
    responses.insert("503".into(), busy);
    json!({
        "operationId": if v2 { "postApiV2Write" } else { "postWrite" },
        "summary": route.summary,
        "description": "Keys: Authorization: Token <key> (the InfluxDB clients' scheme), Bearer <key>, Basic (password = key), or the p parameter. Content-Encoding: gzip is taken. The site is each line's site tag, else the bucket/db; the sensor is the sensor tag with field value, else each field's key (with sensor_prefix_tag's value and _ before it). Floats, integers and unsigned integers are numeric readings, booleans boolean ones and strings state ones, each checked against its sensor's kind; an integer 1 or 0 for a boolean sensor is true or false (a Modbus coil), any other integer for it wrong_kind.",
        "security": [{ "apiKey": [] }],
        "x-scope": route.scope,
        "parameters": parameters,
        "requestBody": { "required": false, "content": { "text/plain": { "schema": { "type": "string", "description": "InfluxDB line protocol, at most 256 KiB; none (or only comments and blank lines) stores nothing." } } } },
        "responses": responses
    })
}
