//! Length: one table entry per operation the server answers (every route
//! in one place is what the document, the 405s and the tests read).
//!
//! The table of every operation the server answers, and the methods a
//! path takes (a 405's `Allow`), read from it.

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
        summary: "Delete a site; refused (409 has_dependents) while it has sensors, alert rules or gateways.",
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
        method: "put",
        path: "/api/v1/sites/{site}/sensors/{sensor}/out-of-service",
        scope: Some("admin"),
        summary: "Take a sensor out of service until a time, with a reason: its alarms are recorded as suppressed (out_of_service), not announced. Audited; the sensor's version stays.",
        query: &[],
        body: Some("OutOfServiceRequest"),
        ok: (200, Some("Sensor")),
    },
    Route {
        method: "delete",
        path: "/api/v1/sites/{site}/sensors/{sensor}/out-of-service",
        scope: Some("admin"),
        summary: "Put a sensor back into service (a sensor in service stays so). Audited.",
        query: &[],
        body: None,
        ok: (200, Some("Sensor")),
    },
    Route {
        method: "get",
        path: "/api/v1/sites/{site}/gateways",
        scope: Some("read"),
        summary: "A site's Sparkplug gateways, in creation order, in pages: each with its online state, last birth and death, the metrics its last births announced and which of them have no sensor yet.",
        query: PAGE,
        body: None,
        ok: (200, Some("GatewayPage")),
    },
    Route {
        method: "post",
        path: "/api/v1/sites/{site}/gateways",
        scope: Some("admin"),
        summary: "Bind a Sparkplug edge node (group and edge node ids) to a site; an edge node feeds one site (409 when it is bound already).",
        query: &[],
        body: Some("NewGateway"),
        ok: (201, Some("Gateway")),
    },
    Route {
        method: "get",
        path: "/api/v1/sites/{site}/gateways/{gateway}",
        scope: Some("read"),
        summary: "One gateway, by id; its version is the ETag (births and deaths leave it).",
        query: &[],
        body: None,
        ok: (200, Some("Gateway")),
    },
    Route {
        method: "delete",
        path: "/api/v1/sites/{site}/gateways/{gateway}",
        scope: Some("admin"),
        summary: "Unbind a gateway (If-Match optional); the site's sensors stay.",
        query: &[],
        body: None,
        ok: (204, None),
    },
    Route {
        method: "post",
        path: "/api/v1/sites/{site}/gateways/{gateway}/register",
        scope: Some("admin"),
        summary: "Register the gateway's unregistered metrics (all, or those sensors names) as sensors of the kind their datatype feeds, all or none; {} registers every one.",
        query: &[],
        body: Some("GatewayRegistration"),
        ok: (200, Some("GatewayRegistered")),
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
        summary: "One sensor's readings per time bucket: JSON (at most 10,000 points), or CSV (at most 1,000,000 rows, streamed) with ?format=csv or Accept: text/csv.",
        query: &[
            (
                "start",
                "Epoch milliseconds or RFC 3339; default end minus 24 h.",
            ),
            ("end", "Epoch milliseconds or RFC 3339; default now."),
            (
                "every",
                "Bucket width such as 10s, 1m, 1h or 1d; default: about 1,000 points over the range. Buckets of whole days (1d, 7d) begin at the site's local midnight (its timezone; 23 or 25 hours long across a daylight-saving change); shorter ones are aligned to the epoch.",
            ),
            (
                "agg",
                "mean (default for a numeric sensor), min, max or last (default for a boolean or state sensor; a state sensor takes only last).",
            ),
            (
                "format",
                "json or csv; wins over Accept. Without it, Accept chooses (application/json, the default, or text/csv; 406 when it allows neither).",
            ),
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
        method: "put",
        path: "/api/v1/alert-rules/{rule}/out-of-service",
        scope: Some("admin"),
        summary: "Take an alert rule out of service until a time, with a reason: it is still evaluated and its alarms recorded as suppressed (out_of_service), not announced. Audited; the rule's version stays.",
        query: &[],
        body: Some("OutOfServiceRequest"),
        ok: (200, Some("AlertRule")),
    },
    Route {
        method: "delete",
        path: "/api/v1/alert-rules/{rule}/out-of-service",
        scope: Some("admin"),
        summary: "Put an alert rule back into service. Audited.",
        query: &[],
        body: None,
        ok: (200, Some("AlertRule")),
    },
    Route {
        method: "get",
        path: "/api/v1/maintenance-windows",
        scope: Some("read"),
        summary: "Maintenance windows, in creation order, in pages; filter by site. A site's alarms raised inside one are recorded as suppressed (maintenance), not announced.",
        query: &[
            ("limit", "Items per page, 1 to 1000 (default 50)."),
            ("cursor", "next_cursor of the previous page."),
            ("site", "Only this site's windows."),
        ],
        body: None,
        ok: (200, Some("MaintenanceWindowPage")),
    },
    Route {
        method: "post",
        path: "/api/v1/maintenance-windows",
        scope: Some("admin"),
        summary: "Create a maintenance window: one-off (starts_at, ends_at) or weekly on the site's wall clock (weekly: days, from, to), with a reason. Audited.",
        query: &[],
        body: Some("NewMaintenanceWindow"),
        ok: (201, Some("MaintenanceWindow")),
    },
    Route {
        method: "get",
        path: "/api/v1/maintenance-windows/{window}",
        scope: Some("read"),
        summary: "One maintenance window.",
        query: &[],
        body: None,
        ok: (200, Some("MaintenanceWindow")),
    },
    Route {
        method: "delete",
        path: "/api/v1/maintenance-windows/{window}",
        scope: Some("admin"),
        summary: "Delete a maintenance window. Audited.",
        query: &[],
        body: None,
        ok: (204, None),
    },
    Route {
        method: "post",
        path: "/api/v1/alert-rules/preview",
        scope: Some("read"),
        summary: "The alerts a saved rule (rule_id) or a draft (rule) would have raised over a past range, by the evaluation loop's own steps, with their alarm KPIs (as GET /alarm-kpis measures them); changes nothing, hence scope read. A range whose end is 10 minutes past is cached 30 min (x-cache: hit, miss, bypass).",
        query: &[],
        body: Some("PreviewRequest"),
        ok: (200, Some("Preview")),
    },
    Route {
        method: "get",
        path: "/api/v1/alerts",
        scope: Some("read"),
        summary: "Alerts, newest first, in pages; filter by state, site, sensor, rule and kind (gateway_offline: a Sparkplug gateway's, with no rule and no sensor). An alert's state (ISA-18.2) names two facts, whether its condition is active and whether it was acknowledged: unacknowledged, acknowledged, cleared_unacknowledged (back to normal before anyone acknowledged it: listed until acknowledged) and closed.",
        query: &[
            ("limit", "Items per page, 1 to 1000 (default 50)."),
            ("cursor", "next_cursor of the previous page."),
            (
                "state",
                "unacknowledged, acknowledged, cleared_unacknowledged or closed; active (unacknowledged or acknowledged); open (not closed); and the names before ISA-18.2 states: firing (= unacknowledged: active, not acknowledged) and resolved (= closed).",
            ),
            ("site", "Only this site's alerts."),
            ("sensor", "Only alerts of sensors with this key."),
            ("rule", "Only this alert rule's alerts (its id)."),
            (
                "kind",
                "Only alerts of this kind: a rule kind, or gateway_offline.",
            ),
        ],
        body: None,
        ok: (200, Some("AlertPage")),
    },
    Route {
        method: "get",
        path: "/api/v1/alerts/{alert}",
        scope: Some("read"),
        summary: "One alert with its event trail, oldest first: fired (with its explanation: the rule's version, the aggregate, the bucket values, the trigger and clear values, how long the condition had held), cleared, closed, reactivated, latched, acknowledged, reset, resolved, shelved, unshelved: when, by whom, why.",
        query: &[],
        body: None,
        ok: (200, Some("AlertWithEvents")),
    },
    Route {
        method: "post",
        path: "/api/v1/alerts/{alert}/ack",
        scope: Some("write"),
        summary: "Acknowledge an alert, recorded under the API key's name in its trail and the audit; notifications are queued. unacknowledged becomes acknowledged, cleared_unacknowledged becomes closed; otherwise 409 invalid_transition.",
        query: &[],
        body: None,
        ok: (200, Some("Alert")),
    },
    Route {
        method: "post",
        path: "/api/v1/alerts/{alert}/resolve",
        scope: Some("write"),
        summary: "Close an alert by hand, whatever its state, recorded under the API key's name in its trail and the audit; notifications are queued. The rule does not fire again for that sensor until its condition has cleared and returned. Already closed: 409 invalid_transition.",
        query: &[],
        body: None,
        ok: (200, Some("Alert")),
    },
    Route {
        method: "post",
        path: "/api/v1/alerts/{alert}/reset",
        scope: Some("write"),
        summary: "Reset a latched alert: a latching rule's alert stays active after its condition cleared (latched_at set) until an operator resets it; it then becomes closed if acknowledged, else cleared_unacknowledged. Only once the condition no longer holds: an alert whose condition still holds, or whose rule does not latch, is 409 not_latched; one not active, 409 invalid_transition. Recorded in its trail and the audit.",
        query: &[],
        body: None,
        ok: (200, Some("Alert")),
    },
    Route {
        method: "post",
        path: "/api/v1/alerts/{alert}/shelve",
        scope: Some("write"),
        summary: "Shelve an alert that is not closed for a while, with a reason: shelved_until, shelved_by and shelve_reason are set, and its transitions are recorded but not announced until the shelf expires (the evaluation loop then unshelves it and announces it again if its condition is still active) or an operator unshelves it. At most the rule's max_shelve (8h by default): longer is 422 shelve_too_long. Shelving a shelved alert replaces its shelf. Recorded in its trail and the audit.",
        query: &[],
        body: Some("AlertShelve"),
        ok: (200, Some("Alert")),
    },
    Route {
        method: "post",
        path: "/api/v1/alerts/{alert}/unshelve",
        scope: Some("write"),
        summary: "Take an alert off its shelf; announced again if its condition is active. Not shelved: 409 not_shelved. Recorded in its trail and the audit.",
        query: &[],
        body: None,
        ok: (200, Some("Alert")),
    },
    Route {
        method: "get",
        path: "/api/v1/alarm-kpis",
        scope: Some("read"),
        summary: "Measured alarm performance (ISA-18.2) of the alarms that began in [start, end): alarms per hour, the most at one site within 10 minutes, the share of the range some site was in flood (more than 10 alarms within 10 minutes), rule-and-sensor pairs that chattered (3 or more activations within a minute; a pair counts once), alarms active more than 24 h as known at end, the ten most frequent rule-and-sensor pairs, seconds to acknowledge (median, p90); suppressed alarms are counted apart and left out of the rest. Without site: every site the key may see.",
        query: &[
            ("site", "Only this site's alarms."),
            (
                "start",
                "Alarms that began at or after this time: epoch milliseconds or RFC 3339; default end minus 24 h, at most 366 days before end.",
            ),
            (
                "end",
                "Alarms that began before this time: epoch milliseconds or RFC 3339; default now (a later end is taken as now).",
            ),
        ],
        body: None,
        ok: (200, Some("AlarmKpis")),
    },
    Route {
        method: "get",
        path: "/api/v1/sites/{site}/dashboard",
        scope: Some("read"),
        summary: "Every sensor's latest value with its status (ok, stale, out_of_range, alerting) and the site's open alerts (not closed; a sensor with an active one is alerting); cached 60 s, dropped when the site's metadata or one of its alerts changes.",
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
    Route {
        method: "get",
        path: "/api/v1/api-keys",
        scope: Some("admin"),
        summary: "Every API key, oldest first, revoked and expired ones included; never a secret or hash. Needs a key of every site.",
        query: &[],
        body: None,
        ok: (200, Some("ApiKeyList")),
    },
    Route {
        method: "post",
        path: "/api/v1/api-keys",
        scope: Some("admin"),
        summary: "Create a key, optionally limited to sites and with an expiry; the answer holds its token, shown this once. Needs a key of every site.",
        query: &[],
        body: Some("NewApiKey"),
        ok: (201, Some("ApiKeyWithToken")),
    },
    Route {
        method: "delete",
        path: "/api/v1/api-keys/{name}",
        scope: Some("admin"),
        summary: "Revoke a key by its name (or public id, or UUID); effective at once. Needs a key of every site.",
        query: &[],
        body: None,
        ok: (200, Some("ApiKey")),
    },
    Route {
        method: "post",
        path: "/api/v1/api-keys/{name}/rotate",
        scope: Some("admin"),
        summary: "Give an unrevoked key a new secret (its token in the answer, shown this once); the old one stays valid for the grace period. Needs a key of every site.",
        query: &[],
        body: Some("ApiKeyRotation"),
        ok: (200, Some("ApiKeyWithToken")),
    },
    Route {
        method: "get",
        path: "/api/v1/audit",
        scope: Some("admin"),
        summary: "The audit trail: every change of configuration (sites, sensors, gateways, alert rules, API keys) and every operator action on alerts (acknowledge, resolve, reset, shelve, unshelve), who made it (an API key's name, or cli), when, on what, and the entity's JSON before and after (never a secret or hash); newest first, in pages. A key limited to sites sees only its sites' events.",
        query: &[
            ("limit", "Items per page, 1 to 1000 (default 50)."),
            ("cursor", "next_cursor of the previous page."),
            ("site", "Only this site's events."),
            ("entity", "Only events of this entity."),
            (
                "actor",
                "Only this actor's events: an API key's name, or cli.",
            ),
            (
                "start",
                "Events at or after this time: epoch milliseconds or RFC 3339.",
            ),
            (
                "end",
                "Events before this time: epoch milliseconds or RFC 3339, not before start.",
            ),
        ],
        body: None,
        ok: (200, Some("AuditPage")),
    },
    Route {
        method: "post",
        path: "/api/v2/write",
        scope: Some("write"),
        summary: "Line protocol as InfluxDB 2.x takes it (Telegraf, the InfluxDB clients): each line's readings validated like telemetry; answered once durable, in InfluxDB's shapes.",
        query: &[
            (
                "org",
                "Accepted and not used (InfluxDB 2.x clients send it).",
            ),
            (
                "bucket",
                "The site of every line without a site tag (a site's slug).",
            ),
            (
                "precision",
                "Unit of the timestamps: ns (default), us, ms or s.",
            ),
            (
                "sensor_prefix_tag",
                "A tag whose value prefixes each field's sensor: name=b1 makes steam_pressure b1_steam_pressure.",
            ),
        ],
        body: Some("LineProtocol"),
        ok: (204, None),
    },
    Route {
        method: "post",
        path: "/write",
        scope: Some("write"),
        summary: "Line protocol as InfluxDB 1.x takes it: each line's readings validated like telemetry; answered once durable, in InfluxDB's shapes.",
        query: &[
            (
                "db",
                "The site of every line without a site tag (a site's slug).",
            ),
            (
                "precision",
                "Unit of the timestamps: n (default), u, ms, s, m or h (ns and us too).",
            ),
            ("rp", "Accepted and not used."),
            ("u", "Accepted and not used (the user of InfluxDB 1.x)."),
            ("p", "The API key, when no Authorization header is sent."),
            (
                "sensor_prefix_tag",
                "A tag whose value prefixes each field's sensor: name=b1 makes steam_pressure b1_steam_pressure.",
            ),
        ],
        body: Some("LineProtocol"),
        ok: (204, None),
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
        assert_eq!(
            allowed_methods("/api/v1/sites/a/gateways/0190a1b2-0000-7000-8000-000000000000")
                .as_deref(),
            Some("GET, DELETE")
        );
        assert_eq!(allowed_methods("/healthz").as_deref(), Some("GET"));
        assert_eq!(allowed_methods("/api/v2/write").as_deref(), Some("POST"));
        assert_eq!(allowed_methods("/write").as_deref(), Some("POST"));
        assert_eq!(allowed_methods("/api/v1/nothing"), None);
    }
}
