//! The metrics a birth announces: names, aliases, datatypes and sensor
//! keys (one table per edge node and per device), and the keys two
//! metrics of one edge node share.

use std::collections::HashMap;
use std::sync::Arc;

use stoker_domain::SensorKey;

use crate::key::{KeyError, is_protocol_metric, sensor_key};
use crate::proto::payload::Metric;
use crate::refusal::{Refusal, RefusalReason};
use crate::value::datatype_name;

/// A metric a birth announced, as [`crate::Event`]s report it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Announced {
    /// The metric's Sparkplug name.
    pub metric: Arc<str>,
    /// Its Sparkplug datatype number ([`crate::datatype_name`] names it).
    pub datatype: u32,
    /// Its sensor key, or why it has none.
    pub sensor: Result<SensorKey, KeyError>,
}

/// One metric of a birth.
#[derive(Debug)]
pub(crate) struct MetricDef {
    pub(crate) name: Arc<str>,
    pub(crate) datatype: u32,
    /// `None` for the protocol's own metrics (`bdSeq`, `Node Control/*` …).
    /// Shared with every reading of the metric, so that a reading costs
    /// no copy of its key.
    pub(crate) sensor: Option<Result<Arc<SensorKey>, KeyError>>,
}

/// The metrics of one birth, by alias and by name.
#[derive(Debug, Default)]
pub(crate) struct Table {
    pub(crate) defs: Vec<MetricDef>,
    by_alias: HashMap<u64, usize>,
    by_name: HashMap<Arc<str>, usize>,
    /// Aliases the birth gave to two metrics, with the words saying so.
    duplicate_aliases: HashMap<u64, String>,
}

/// Where a data message's metric leads.
pub(crate) enum Lookup<'a> {
    Found(&'a MetricDef),
    /// An alias the birth gave to two metrics.
    Duplicate(&'a str),
    Unknown,
}

impl Table {
    /// The table of a birth's metrics, and the refusals of the metrics it
    /// cannot take (no name). `device` names the device in details.
    pub(crate) fn from_birth(metrics: &[Metric], device: Option<&str>) -> (Table, Vec<Refusal>) {
        let mut table = Table::default();
        let mut refusals = Vec::new();
        for (index, metric) in metrics.iter().enumerate() {
            let Some(name) = metric.name.as_deref() else {
                refusals.push(Refusal::message(
                    RefusalReason::MalformedPayload,
                    format!("birth metric #{index} has no name (a birth must name every metric)"),
                ));
                continue;
            };
            let name: Arc<str> = Arc::from(name);
            let sensor =
                (!is_protocol_metric(&name)).then(|| sensor_key(device, &name).map(Arc::new));
            let position = table.defs.len();
            if let Some(alias) = metric.alias {
                if let Some(&other) = table.by_alias.get(&alias) {
                    let detail = format!(
                        "the birth gives alias {alias} to both {:?} and {name:?}",
                        table.defs[other].name
                    );
                    table.duplicate_aliases.insert(alias, detail);
                } else {
                    table.by_alias.insert(alias, position);
                }
            }
            table.by_name.insert(Arc::clone(&name), position);
            table.defs.push(MetricDef {
                name,
                datatype: metric.datatype.unwrap_or(0),
                sensor,
            });
        }
        (table, refusals)
    }

    /// The definition a data message's metric refers to: by alias when it
    /// has one, else by name.
    pub(crate) fn lookup(&self, metric: &Metric) -> Lookup<'_> {
        if let Some(alias) = metric.alias {
            if let Some(detail) = self.duplicate_aliases.get(&alias) {
                return Lookup::Duplicate(detail);
            }
            if let Some(&index) = self.by_alias.get(&alias) {
                return Lookup::Found(&self.defs[index]);
            }
            return Lookup::Unknown;
        }
        match metric
            .name
            .as_deref()
            .and_then(|name| self.by_name.get(name))
        {
            Some(&index) => Lookup::Found(&self.defs[index]),
            None => Lookup::Unknown,
        }
    }

    /// What this table announces, protocol metrics left out.
    pub(crate) fn announced(&self) -> Vec<Announced> {
        self.defs
            .iter()
            .filter_map(|def| {
                def.sensor.as_ref().map(|sensor| Announced {
                    metric: Arc::clone(&def.name),
                    datatype: def.datatype,
                    sensor: sensor
                        .as_ref()
                        .map(|key| (**key).clone())
                        .map_err(Clone::clone),
                })
            })
            .collect()
    }
}

/// The sensor keys that two metrics of one edge node (its own and its
/// devices', as their last births named them) map to, with the words
/// naming both.
pub(crate) fn ambiguous_keys<'a>(
    tables: impl Iterator<Item = (Option<&'a str>, &'a Table)>,
) -> HashMap<SensorKey, String> {
    let mut owners: HashMap<&Arc<SensorKey>, (Option<&str>, &str)> = HashMap::new();
    let mut ambiguous = HashMap::new();
    for (device, table) in tables {
        for def in &table.defs {
            let Some(Ok(key)) = &def.sensor else { continue };
            match owners.get(key) {
                Some(&(other_device, other_name)) => {
                    let same = other_device == device && other_name == &*def.name;
                    let detail = if same {
                        format!(
                            "{} is announced twice; both would be sensor {key}",
                            describe(device, &def.name)
                        )
                    } else {
                        format!(
                            "{} and {} both map to sensor {key}",
                            describe(other_device, other_name),
                            describe(device, &def.name)
                        )
                    };
                    ambiguous.entry((**key).clone()).or_insert(detail);
                }
                None => {
                    owners.insert(key, (device, &def.name));
                }
            }
        }
    }
    ambiguous
}

/// `metric "Flue Temp"` or `metric "Temp" of device "B1"`.
pub(crate) fn describe(device: Option<&str>, metric: &str) -> String {
    match device {
        Some(device) => format!("metric {metric:?} of device {device:?}"),
        None => format!("metric {metric:?}"),
    }
}

/// `Double (10)`.
pub(crate) fn describe_datatype(datatype: u32) -> String {
    format!("{} ({datatype})", datatype_name(datatype))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn metric(name: Option<&str>, alias: Option<u64>, datatype: u32) -> Metric {
        Metric {
            name: name.map(str::to_owned),
            alias,
            datatype: Some(datatype),
            ..Metric::default()
        }
    }

    #[test]
    fn lookup_by_alias_then_by_name() {
        let (table, refusals) = Table::from_birth(
            &[
                metric(Some("bdSeq"), None, 8),
                metric(Some("Flue Temp"), Some(1), 10),
                metric(Some("Burner On"), Some(2), 11),
            ],
            None,
        );
        assert!(refusals.is_empty());
        let by_alias = metric(None, Some(2), 11);
        assert!(matches!(table.lookup(&by_alias), Lookup::Found(def) if &*def.name == "Burner On"));
        let by_name = metric(Some("Flue Temp"), None, 10);
        assert!(matches!(table.lookup(&by_name), Lookup::Found(def) if &*def.name == "Flue Temp"));
        assert!(matches!(
            table.lookup(&metric(None, Some(9), 10)),
            Lookup::Unknown
        ));
        assert!(matches!(
            table.lookup(&metric(Some("Nope"), None, 10)),
            Lookup::Unknown
        ));
        // An alias wins over a name; an unknown alias is unknown whatever the name.
        assert!(matches!(
            table.lookup(&metric(Some("Flue Temp"), Some(9), 10)),
            Lookup::Unknown
        ));
        // Protocol metrics are in the table but announce no sensor.
        let announced: Vec<_> = table
            .announced()
            .iter()
            .map(|a| a.metric.to_string())
            .collect();
        assert_eq!(announced, ["Flue Temp", "Burner On"]);
    }

    #[test]
    fn unnamed_birth_metrics_are_refused() {
        let (table, refusals) = Table::from_birth(&[metric(None, Some(1), 10)], Some("d"));
        assert!(table.defs.is_empty());
        assert_eq!(refusals[0].reason, RefusalReason::MalformedPayload);
        assert!(refusals[0].detail.contains("#0 has no name"));
    }

    #[test]
    fn an_alias_given_twice_names_both_metrics() {
        let (table, _) = Table::from_birth(
            &[
                metric(Some("A"), Some(1), 10),
                metric(Some("B"), Some(1), 10),
            ],
            None,
        );
        match table.lookup(&metric(None, Some(1), 10)) {
            Lookup::Duplicate(detail) => {
                assert_eq!(detail, "the birth gives alias 1 to both \"A\" and \"B\"")
            }
            _ => panic!("expected a duplicate"),
        }
    }

    #[test]
    fn keys_shared_across_node_and_devices_are_ambiguous() {
        let (node, _) = Table::from_birth(
            &[
                metric(Some("B1/Temp"), Some(1), 10),
                metric(Some("Level"), Some(2), 10),
            ],
            None,
        );
        let (device, _) = Table::from_birth(
            &[
                metric(Some("Temp"), Some(3), 10),
                metric(Some("Flow"), Some(4), 10),
            ],
            Some("b1"),
        );
        let ambiguous = ambiguous_keys([(None, &node), (Some("b1"), &device)].into_iter());
        assert_eq!(ambiguous.len(), 1);
        assert_eq!(
            ambiguous[&SensorKey::parse("b1_temp").unwrap()],
            "metric \"B1/Temp\" and metric \"Temp\" of device \"b1\" both map to sensor b1_temp"
        );
        let (twice, _) = Table::from_birth(
            &[
                metric(Some("Flue Temp"), Some(1), 10),
                metric(Some("flue temp"), Some(2), 10),
            ],
            None,
        );
        let ambiguous = ambiguous_keys([(None, &twice)].into_iter());
        assert!(
            ambiguous[&SensorKey::parse("flue_temp").unwrap()]
                .contains("both map to sensor flue_temp")
        );
    }
}
