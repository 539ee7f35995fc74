//! The Grafana dashboards under `grafana/dashboards`, checked against the
//! real stores: every panel query, templating variable query and
//! annotation query is rendered as Grafana would send it (variables,
//! built-ins and SQL macros substituted, nothing left over) and run against
//! a test InfluxDB and Postgres database seeded with a small simulated
//! fleet. Each must run without error and return at least one row.
//!
//! SQL runs in a read-only transaction with the default `search_path`, so
//! a dashboard can neither write nor rely on a schema being on the path.

mod dashboards;
mod render;
mod seed;

use serde_json::Value;
use stoker_domain::EpochMillis;
use stoker_postgres::Pool;
use stoker_testkit::{TestInflux, TestPostgres};

use crate::dashboards::{Dashboard, Language, Query};
use crate::render::{Binding, Bindings, Context, TimeRange, render};

/// `$__interval` when the panel sets no larger minimum: what Grafana picks
/// for a two-hour range on a wide panel.
const BASE_INTERVAL_MS: i64 = 10_000;

/// The dashboards the project ships, by uid.
const EXPECTED_UIDS: [&str; 6] = [
    "stoker-alarm-performance",
    "stoker-alerts-timeline",
    "stoker-fleet-overview",
    "stoker-ingestion-health",
    "stoker-sensor-drilldown",
    "stoker-site-detail",
];

/// Every dashboard, or a panic listing what is malformed.
fn dashboards() -> Vec<Dashboard> {
    dashboards::load_all(&dashboards::directory())
        .unwrap_or_else(|errors| panic!("malformed dashboards:\n  {}", errors.join("\n  ")))
}

#[test]
fn the_dashboards_are_well_formed_with_stable_uids() {
    let dashboards = dashboards();
    let mut uids: Vec<&str> = dashboards.iter().map(|board| board.uid.as_str()).collect();
    uids.sort_unstable();
    assert_eq!(uids, EXPECTED_UIDS, "one dashboard per uid, none missing");
    for dashboard in &dashboards {
        assert!(
            !dashboard.queries.is_empty(),
            "{} has no queries",
            dashboard.file
        );
    }
}

/// An answer to a query: how many rows, and the values a variable takes
/// from it (InfluxDB's `value` column, else the first; SQL's first column
/// when it is text).
#[derive(Debug)]
struct Answer {
    rows: usize,
    values: Vec<String>,
}

/// The test's databases, queried as Grafana's data sources query them.
#[derive(Debug)]
struct DataSources {
    http: reqwest::Client,
    influx_url: String,
    influx_database: String,
    pool: Pool,
}

impl DataSources {
    async fn query(&self, language: Language, query: &str) -> Result<Answer, String> {
        match language {
            Language::InfluxQl => self.influxql(query).await,
            Language::Sql => self.sql(query).await,
        }
    }

    /// `GET /query` as the InfluxDB data source sends it (`httpMode: GET`).
    async fn influxql(&self, query: &str) -> Result<Answer, String> {
        let response = self
            .http
            .get(format!("{}/query", self.influx_url))
            .query(&[
                ("db", self.influx_database.as_str()),
                ("q", query),
                ("epoch", "ms"),
            ])
            .send()
            .await
            .map_err(|error| format!("InfluxDB unreachable: {error}"))?;
        let status = response.status();
        let body: Value = response
            .json()
            .await
            .map_err(|error| format!("InfluxDB answered {status} without JSON: {error}"))?;
        if let Some(error) = body.get("error").and_then(Value::as_str) {
            return Err(format!("InfluxDB: {error}"));
        }
        if !status.is_success() {
            return Err(format!("InfluxDB answered {status}: {body}"));
        }
        let mut answer = Answer {
            rows: 0,
            values: Vec::new(),
        };
        for result in body["results"].as_array().into_iter().flatten() {
            if let Some(error) = result.get("error").and_then(Value::as_str) {
                return Err(format!("InfluxDB: {error}"));
            }
            for series in result["series"].as_array().into_iter().flatten() {
                let columns = series["columns"].as_array().map_or(&[][..], Vec::as_slice);
                let column = columns.iter().position(|name| name == "value").unwrap_or(0);
                for row in series["values"].as_array().into_iter().flatten() {
                    answer.rows += 1;
                    match &row[column] {
                        Value::String(text) => answer.values.push(text.clone()),
                        Value::Null => {}
                        other => answer.values.push(other.to_string()),
                    }
                }
            }
        }
        Ok(answer)
    }

    /// The query in a read-only transaction, rolled back.
    async fn sql(&self, query: &str) -> Result<Answer, String> {
        let mut client = self
            .pool
            .get()
            .await
            .map_err(|error| format!("Postgres unavailable: {error}"))?;
        let transaction = client
            .transaction()
            .await
            .map_err(|error| error.to_string())?;
        transaction
            .batch_execute("SET TRANSACTION READ ONLY")
            .await
            .map_err(|error| error.to_string())?;
        let rows =
            transaction
                .query(query, &[])
                .await
                .map_err(|error| match error.as_db_error() {
                    Some(database) => format!("Postgres: {database}"),
                    None => format!("Postgres: {error}"),
                })?;
        transaction
            .rollback()
            .await
            .map_err(|error| error.to_string())?;
        Ok(Answer {
            rows: rows.len(),
            values: rows
                .iter()
                .filter_map(|row| row.try_get::<_, String>(0).ok())
                .collect(),
        })
    }
}

/// Checks one dashboard: resolves its variables in order (each from its
/// query, as Grafana does: the first value, or all of them for a
/// multi-value variable, i.e. "All"), then runs every query, once per
/// value of the variable its panel repeats over. Returns how many queries
/// ran; pushes one message per failure.
async fn check(
    sources: &DataSources,
    range: TimeRange,
    dashboard: &Dashboard,
    failures: &mut Vec<String>,
) -> usize {
    let mut ran = 0;
    let mut variables = Bindings::new();
    for variable in &dashboard.variables {
        let context = Context {
            language: variable.language,
            range,
            interval_ms: BASE_INTERVAL_MS,
            variables: &variables,
        };
        let label = format!(
            "{} ({}), variable ${}",
            dashboard.title, dashboard.file, variable.name
        );
        ran += 1;
        let rendered = match render(&variable.query, &context) {
            Ok(rendered) => rendered,
            Err(error) => {
                let query = &variable.query;
                failures.push(format!("{label}: {error}\n    query as written: {query}"));
                continue;
            }
        };
        match sources.query(variable.language, &rendered).await {
            Ok(answer) if !answer.values.is_empty() => {
                let values = if variable.multi {
                    answer.values
                } else {
                    answer.values.into_iter().take(1).collect()
                };
                let binding = Binding {
                    values,
                    multi: variable.multi,
                };
                variables.insert(variable.name.clone(), binding);
            }
            Ok(_) => failures.push(format!("{label}: no values\n    query: {rendered}")),
            Err(error) => failures.push(format!("{label}: {error}\n    query: {rendered}")),
        }
    }
    for query in &dashboard.queries {
        for scope in scopes(query, &variables) {
            ran += 1;
            if let Err(failure) = run(sources, range, query, &scope).await {
                failures.push(format!(
                    "{} ({}), panel {:?} ({}): {failure}",
                    dashboard.title, dashboard.file, query.panel, query.ref_id
                ));
            }
        }
    }
    ran
}

/// The variables a query runs with: the dashboard's, or for a repeated
/// panel one set per value of the repeat variable (bound to that value
/// alone, as Grafana binds it in each copy of the panel).
fn scopes(query: &Query, variables: &Bindings) -> Vec<Bindings> {
    let repeated = query
        .repeat
        .as_ref()
        .and_then(|name| Some((name, variables.get(name)?)));
    let Some((name, binding)) = repeated else {
        return vec![variables.clone()];
    };
    binding
        .values
        .iter()
        .map(|value| {
            let mut scope = variables.clone();
            scope.insert(
                name.clone(),
                Binding {
                    values: vec![value.clone()],
                    multi: binding.multi,
                },
            );
            scope
        })
        .collect()
}

/// Renders and runs one query; the error names the substituted query.
async fn run(
    sources: &DataSources,
    range: TimeRange,
    query: &Query,
    variables: &Bindings,
) -> Result<(), String> {
    let context = Context {
        language: query.language,
        range,
        interval_ms: query.min_interval_ms.unwrap_or(0).max(BASE_INTERVAL_MS),
        variables,
    };
    let rendered = render(&query.text, &context)
        .map_err(|error| format!("{error}\n    query as written: {}", query.text))?;
    match sources.query(query.language, &rendered).await {
        Ok(answer) if answer.rows > 0 => Ok(()),
        Ok(_) => Err(format!("no rows\n    query: {rendered}")),
        Err(error) => Err(format!("{error}\n    query: {rendered}")),
    }
}

#[tokio::test]
async fn every_dashboard_query_runs_on_the_real_stores_and_returns_rows() {
    let dashboards = dashboards();

    let postgres = TestPostgres::create().await;
    let pool = postgres.migrated_pool().await;
    stoker_analytics::migrate(&pool)
        .await
        .expect("migrate analytics");
    stoker_ingestion::migrate(&pool)
        .await
        .expect("migrate ingestion");
    let influx = TestInflux::create().await;
    seed::seed(&pool, &influx).await;

    // The range ends after seeding, so that the acknowledgements and
    // resolutions just recorded (at Postgres' now()) fall inside it.
    let to_ms = EpochMillis::now().as_millis();
    let range = TimeRange {
        from_ms: to_ms - seed::HISTORY_MS,
        to_ms,
    };
    let sources = DataSources {
        http: reqwest::Client::new(),
        influx_url: stoker_testkit::influx_options().url,
        influx_database: influx.influx().database().to_owned(),
        pool,
    };

    let mut failures = Vec::new();
    let mut ran = 0;
    for dashboard in &dashboards {
        ran += check(&sources, range, dashboard, &mut failures).await;
    }
    assert!(
        failures.is_empty(),
        "{} of {ran} dashboard queries failed:\n\n{}",
        failures.len(),
        failures.join("\n\n")
    );
    assert!(ran > 0, "no dashboard queries were found");
}
