//! The dashboards as Grafana reads them: every panel query (the panels of
//! rows included), every templating variable query and every annotation
//! query, with the data source each one runs on.

use std::collections::HashSet;
use std::path::{Path, PathBuf};

use serde_json::Value;

use crate::render::parse_interval;

/// The uid of the InfluxDB data source (provisioning/datasources/stoker.yml).
pub(crate) const INFLUX_UID: &str = "stoker-influxdb";
/// The uid of the Postgres data source.
pub(crate) const POSTGRES_UID: &str = "stoker-postgres";

/// Which data source runs a query.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Language {
    /// InfluxDB, InfluxQL.
    InfluxQl,
    /// Postgres, SQL.
    Sql,
}

impl Language {
    /// The language of a data source reference, which must name one of
    /// Stoker's data sources by uid (with the matching type).
    fn of(datasource: Option<&Value>) -> Result<Self, String> {
        let Some(datasource) = datasource else {
            return Err("no data source (reference one by uid)".into());
        };
        let uid = datasource.get("uid").and_then(Value::as_str);
        let kind = datasource.get("type").and_then(Value::as_str);
        match (uid, kind) {
            (Some(INFLUX_UID), Some("influxdb")) => Ok(Language::InfluxQl),
            (Some(POSTGRES_UID), Some("grafana-postgresql-datasource")) => Ok(Language::Sql),
            _ => Err(format!(
                "data source {datasource} is not {INFLUX_UID} (influxdb) or {POSTGRES_UID} \
                 (grafana-postgresql-datasource)"
            )),
        }
    }
}

/// A dashboard file.
#[derive(Debug)]
pub(crate) struct Dashboard {
    /// The file's name.
    pub file: String,
    /// Its uid.
    pub uid: String,
    /// Its title.
    pub title: String,
    /// Its templating variables, in order (later ones may use earlier ones).
    pub variables: Vec<Variable>,
    /// Every query of its panels and annotations.
    pub queries: Vec<Query>,
}

/// A templating variable defined by a query.
#[derive(Debug)]
pub(crate) struct Variable {
    /// Its name (`site` for `$site`).
    pub name: String,
    /// Where its query runs.
    pub language: Language,
    /// The query.
    pub query: String,
    /// Multi-value or with "All".
    pub multi: bool,
}

/// One query of a panel (or of an annotation).
#[derive(Debug)]
pub(crate) struct Query {
    /// The panel's title (or `annotation <name>`).
    pub panel: String,
    /// The query's `refId`.
    pub ref_id: String,
    /// Where it runs.
    pub language: Language,
    /// The query as written in the dashboard.
    pub text: String,
    /// The variable the panel (or its row) repeats over, if any.
    pub repeat: Option<String>,
    /// The panel's minimum interval (`interval`), in milliseconds.
    pub min_interval_ms: Option<i64>,
}

/// The repository's `grafana/dashboards` directory.
pub(crate) fn directory() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../grafana/dashboards")
}

/// Reads every `*.json` under `directory`, in name order; the errors say
/// what is malformed, by file and panel.
pub(crate) fn load_all(directory: &Path) -> Result<Vec<Dashboard>, Vec<String>> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(directory)
        .unwrap_or_else(|error| panic!("read {}: {error}", directory.display()))
        .map(|entry| entry.expect("a directory entry").path())
        .filter(|path| {
            path.extension()
                .is_some_and(|extension| extension == "json")
        })
        .collect();
    files.sort();
    let mut dashboards = Vec::new();
    let mut errors = Vec::new();
    for path in files {
        let file = path
            .file_name()
            .map(|name| name.to_string_lossy().into_owned())
            .unwrap_or_default();
        let text = std::fs::read_to_string(&path)
            .unwrap_or_else(|error| panic!("read {}: {error}", path.display()));
        match serde_json::from_str::<Value>(&text) {
            Ok(json) => {
                let mut loader = Loader {
                    file,
                    errors: Vec::new(),
                };
                let dashboard = loader.dashboard(&json);
                errors.append(&mut loader.errors);
                dashboards.push(dashboard);
            }
            Err(error) => errors.push(format!("{file}: not JSON: {error}")),
        }
    }
    if errors.is_empty() {
        Ok(dashboards)
    } else {
        Err(errors)
    }
}

/// Walks one dashboard, collecting its queries and what is wrong with it.
struct Loader {
    file: String,
    errors: Vec<String>,
}

impl Loader {
    fn error(&mut self, what: impl std::fmt::Display) {
        self.errors.push(format!("{}: {what}", self.file));
    }

    fn text(&mut self, json: &Value, key: &str) -> String {
        match json.get(key).and_then(Value::as_str) {
            Some(text) if !text.trim().is_empty() => text.to_owned(),
            _ => {
                self.error(format_args!("{key:?} is missing or empty"));
                String::new()
            }
        }
    }

    fn dashboard(&mut self, json: &Value) -> Dashboard {
        let uid = self.text(json, "uid");
        let title = self.text(json, "title");
        if json
            .get("schemaVersion")
            .and_then(Value::as_i64)
            .unwrap_or(0)
            < 39
        {
            self.error("schemaVersion must be 39 or later (Grafana 11)");
        }
        let mut dashboard = Dashboard {
            file: self.file.clone(),
            uid,
            title,
            variables: Vec::new(),
            queries: Vec::new(),
        };
        for variable in list(json.pointer("/templating/list")) {
            if let Some(variable) = self.variable(variable) {
                dashboard.variables.push(variable);
            }
        }
        for annotation in list(json.pointer("/annotations/list")) {
            self.annotation(annotation, &mut dashboard.queries);
        }
        let mut ids = HashSet::new();
        self.panels(
            list(json.get("panels")),
            None,
            &mut ids,
            &mut dashboard.queries,
        );
        dashboard
    }

    fn variable(&mut self, json: &Value) -> Option<Variable> {
        let name = self.text(json, "name");
        let kind = json.get("type").and_then(Value::as_str).unwrap_or_default();
        if kind != "query" {
            self.error(format_args!(
                "variable {name}: type {kind:?} is not supported by the test (use a query variable)"
            ));
            return None;
        }
        let language = Language::of(json.get("datasource"))
            .map_err(|error| self.error(format_args!("variable {name}: {error}")))
            .ok()?;
        // Grafana stores a variable query as text, or as an object whose
        // `query` (InfluxDB) or `rawSql` (SQL) holds the text.
        let query = match json.get("query") {
            Some(Value::String(text)) => Some(text.clone()),
            Some(object) => object
                .get("rawSql")
                .or_else(|| object.get("query"))
                .and_then(Value::as_str)
                .map(str::to_owned),
            None => None,
        };
        let Some(query) = query.filter(|query| !query.trim().is_empty()) else {
            self.error(format_args!("variable {name}: no query"));
            return None;
        };
        let flag = |key: &str| json.get(key).and_then(Value::as_bool).unwrap_or(false);
        Some(Variable {
            name,
            language,
            query,
            multi: flag("multi") || flag("includeAll"),
        })
    }

    fn annotation(&mut self, json: &Value, queries: &mut Vec<Query>) {
        let built_in = json.get("builtIn").and_then(Value::as_i64) == Some(1);
        let grafana = json.pointer("/datasource/type").and_then(Value::as_str) == Some("grafana");
        if built_in || grafana {
            return;
        }
        let name = self.text(json, "name");
        let panel = format!("annotation {name}");
        let Some(target) = json.get("target") else {
            self.error(format_args!("{panel}: no target"));
            return;
        };
        self.target(&panel, target, json.get("datasource"), None, None, queries);
    }

    /// Collects the queries of `panels`, recursing into rows.
    fn panels(
        &mut self,
        panels: &[Value],
        row_repeat: Option<&str>,
        ids: &mut HashSet<i64>,
        queries: &mut Vec<Query>,
    ) {
        for panel in panels {
            let title = self.text(panel, "title");
            match panel.get("id").and_then(Value::as_i64) {
                Some(id) if !ids.insert(id) => self.error(format_args!("panel id {id} repeats")),
                Some(_) => {}
                None => self.error(format_args!("panel {title:?} has no id")),
            }
            let repeat = panel
                .get("repeat")
                .and_then(Value::as_str)
                .filter(|name| !name.is_empty())
                .or(row_repeat);
            if panel.get("type").and_then(Value::as_str) == Some("row") {
                self.panels(list(panel.get("panels")), repeat, ids, queries);
                continue;
            }
            let min_interval_ms = match panel.get("interval").and_then(Value::as_str) {
                Some(interval) => parse_interval(interval)
                    .map_err(|error| self.error(format_args!("panel {title:?}: {error}")))
                    .ok(),
                None => None,
            };
            for target in list(panel.get("targets")) {
                // A target's own data source wins over the panel's (which is
                // "-- Mixed --" when the targets use different ones).
                let datasource = target.get("datasource").or_else(|| panel.get("datasource"));
                self.target(&title, target, datasource, repeat, min_interval_ms, queries);
            }
        }
    }

    fn target(
        &mut self,
        panel: &str,
        target: &Value,
        datasource: Option<&Value>,
        repeat: Option<&str>,
        min_interval_ms: Option<i64>,
        queries: &mut Vec<Query>,
    ) {
        let ref_id = self.text(target, "refId");
        let language = match Language::of(datasource) {
            Ok(language) => language,
            Err(error) => {
                self.error(format_args!("panel {panel:?} ({ref_id}): {error}"));
                return;
            }
        };
        // InfluxQL targets must be raw queries: the query builder's fields
        // would be sent instead of `query` otherwise.
        let key = match language {
            Language::InfluxQl => {
                if target.get("rawQuery").and_then(Value::as_bool) != Some(true) {
                    self.error(format_args!(
                        "panel {panel:?} ({ref_id}): InfluxQL targets must set \"rawQuery\": true"
                    ));
                }
                "query"
            }
            Language::Sql => "rawSql",
        };
        let text = self.text(target, key);
        queries.push(Query {
            panel: panel.to_owned(),
            ref_id,
            language,
            text,
            repeat: repeat.map(str::to_owned),
            min_interval_ms,
        });
    }
}

/// The elements of a JSON array, or none.
fn list(json: Option<&Value>) -> &[Value] {
    json.and_then(Value::as_array).map_or(&[], Vec::as_slice)
}
