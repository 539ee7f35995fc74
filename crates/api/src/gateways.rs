//! Sparkplug B gateways of a site: bind and unbind an edge node, see its
//! online state and what its births announced, and register the announced
//! metrics that have no sensor yet in one call.
//!
//! A gateway is named in paths by its id (a UUID), not by its group and
//! edge node ids: those are any UTF-8 without `+ # /`, so they may hold
//! `:`, spaces or `%`, and no separator joins them into one path segment
//! unambiguously; the id is also what stays when an edge node is bound
//! again elsewhere.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use serde::Serialize;
use serde_json::Value;
use stoker_domain::{SensorKey, SensorKind, SensorType, States, Unit, ValidRange};
use stoker_metadata::{Gateway, NewGateway, NewSensor, Scope};
use uuid::Uuid;
use warp::Filter;
use warp::Reply as _;
use warp::http::StatusCode;

use crate::auth::{Principal, require, require_key};
use crate::body::{Fields, if_match, json_object};
use crate::page::{self, PageBody};
use crate::problem::ApiError;
use crate::{State, boxed, site_from_path, uuid_from_path};

/// The sensor type a registered metric gets unless the request names one:
/// it says where the sensor came from; a PATCH gives it its real type.
pub(crate) const DEFAULT_SENSOR_TYPE: &str = "sparkplug";

/// The unit a registered metric gets unless the request names one: `-`,
/// as for the simulator's digital signals (Sparkplug births carry no unit
/// Stoker reads).
pub(crate) const DEFAULT_UNIT: &str = "-";

pub(crate) fn routes(
    state: State,
) -> impl Filter<Extract = (warp::reply::Response,), Error = warp::Rejection> + Clone {
    let read = require(Scope::Read, Arc::clone(&state));
    // Changes are recorded under the key's name.
    let admin = require_key(Scope::Admin, Arc::clone(&state));
    let with_state = warp::any().map(move || Arc::clone(&state));
    let list = warp::path!("sites" / String / "gateways")
        .and(warp::get())
        .and(read.clone())
        .and(warp::query::<HashMap<String, String>>())
        .and(with_state.clone())
        .and_then(list_gateways);
    let create = warp::path!("sites" / String / "gateways")
        .and(warp::post())
        .and(admin.clone())
        .and(with_state.clone())
        .and(json_object())
        .and_then(create_gateway);
    let get = warp::path!("sites" / String / "gateways" / String)
        .and(warp::get())
        .and(read)
        .and(with_state.clone())
        .and_then(get_gateway);
    let delete = warp::path!("sites" / String / "gateways" / String)
        .and(warp::delete())
        .and(admin.clone())
        .and(with_state.clone())
        .and(if_match())
        .and_then(delete_gateway);
    let register = warp::path!("sites" / String / "gateways" / String / "register")
        .and(warp::post())
        .and(admin)
        .and(with_state)
        .and(json_object())
        .and_then(register_metrics);
    boxed(list)
        .or(boxed(create))
        .unify()
        .or(boxed(get))
        .unify()
        .or(boxed(delete))
        .unify()
        .or(boxed(register))
        .unify()
}

/// A gateway as the API shows it: the stored gateway, and the announced
/// metrics that could be registered as sensors.
#[derive(Debug, Serialize)]
struct GatewayView {
    #[serde(flatten)]
    gateway: Gateway,
    unregistered: Vec<Unregistered>,
}

/// An announced metric without a sensor at the site, and the sensor it
/// would become.
#[derive(Debug, Clone, Serialize)]
struct Unregistered {
    device: Option<String>,
    metric: String,
    sensor: SensorKey,
    datatype: String,
    kind: SensorKind,
}

/// The sensor kind a Sparkplug datatype feeds, if Stoker stores it.
fn kind_of_datatype(datatype: &str) -> Option<SensorKind> {
    let number = stoker_sparkplug::datatype_by_name(datatype)?;
    Some(match stoker_sparkplug::kind_of(number).ok()? {
        stoker_sparkplug::Kind::Numeric => SensorKind::Numeric,
        stoker_sparkplug::Kind::Boolean => SensorKind::Boolean,
        stoker_sparkplug::Kind::State => SensorKind::State,
    })
}

/// The announced metrics that could be registered: with a sensor key no
/// sensor of the site has, a datatype Stoker stores, and a key no other
/// announced metric maps to (ingestion refuses both of such a pair as
/// `ambiguous_metric`).
fn unregistered(gateway: &Gateway) -> Vec<Unregistered> {
    let mut owners: HashMap<&SensorKey, usize> = HashMap::new();
    for sensor in gateway.metrics.iter().filter_map(|m| m.sensor.as_ref()) {
        *owners.entry(sensor).or_default() += 1;
    }
    gateway
        .metrics
        .iter()
        .filter(|metric| !metric.registered)
        .filter_map(|metric| {
            let sensor = metric.sensor.as_ref()?;
            if owners.get(sensor).copied().unwrap_or_default() > 1 {
                return None;
            }
            Some(Unregistered {
                device: metric.device.clone(),
                metric: metric.metric.clone(),
                sensor: sensor.clone(),
                datatype: metric.datatype.clone(),
                kind: kind_of_datatype(&metric.datatype)?,
            })
        })
        .collect()
}

fn view(gateway: Gateway) -> GatewayView {
    GatewayView {
        unregistered: unregistered(&gateway),
        gateway,
    }
}

async fn list_gateways(
    slug: String,
    query: HashMap<String, String>,
    state: State,
) -> Result<warp::reply::Json, warp::Rejection> {
    let slug = site_from_path(&slug)?;
    let page = page::parse(&query, &[])?;
    let after = match page.after.as_deref().map(Uuid::parse_str) {
        None => None,
        Some(Ok(id)) => Some(id),
        Some(Err(_)) => {
            return Err(ApiError::BadParameter {
                parameter: "cursor",
                detail: crate::problem::FOREIGN_CURSOR.into(),
            }
            .into());
        }
    };
    let page = stoker_metadata::list_gateways_page(&state.pool, &slug, page.limit, after)
        .await
        .map_err(ApiError::from)?;
    let page = stoker_metadata::Page {
        items: page.items.into_iter().map(view).collect(),
        next_after: page.next_after,
    };
    Ok(warp::reply::json(&PageBody::from(page)))
}

async fn create_gateway(
    slug: String,
    principal: Principal,
    state: State,
    mut fields: Fields,
) -> Result<warp::reply::Response, warp::Rejection> {
    let slug = site_from_path(&slug)?;
    let group = fields.required("group", Ok::<_, String>);
    let edge_node = fields.required("edge_node", Ok::<_, String>);
    let mut new = None;
    if let (Some(group), Some(edge_node)) = (group, edge_node) {
        match NewGateway::parse(&group, &edge_node) {
            Ok(gateway) => new = Some(gateway),
            Err((field, message)) => fields.invalid(field, message),
        }
    }
    fields.finish()?;
    let Some(new) = new else {
        return Err(ApiError::Internal("gateway fields validated without a gateway".into()).into());
    };
    let gateway = stoker_metadata::create_gateway(&state.pool, &principal.actor(), &slug, &new)
        .await
        .map_err(ApiError::from)?;
    Ok(
        warp::reply::with_status(warp::reply::json(&view(gateway)), StatusCode::CREATED)
            .into_response(),
    )
}

async fn get_gateway(
    slug: String,
    id: String,
    state: State,
) -> Result<warp::reply::Response, warp::Rejection> {
    let slug = site_from_path(&slug)?;
    let id = uuid_from_path("gateway", &id)?;
    let gateway = stoker_metadata::get_gateway(&state.pool, &slug, id)
        .await
        .map_err(ApiError::from)?;
    let version = gateway.version;
    let mut response = warp::reply::json(&view(gateway)).into_response();
    if let Ok(etag) = warp::http::HeaderValue::from_str(&format!("\"{version}\"")) {
        response
            .headers_mut()
            .insert(warp::http::header::ETAG, etag);
    }
    Ok(response)
}

async fn delete_gateway(
    slug: String,
    id: String,
    principal: Principal,
    state: State,
    if_match: Option<i64>,
) -> Result<warp::reply::Response, warp::Rejection> {
    let slug = site_from_path(&slug)?;
    let id = uuid_from_path("gateway", &id)?;
    stoker_metadata::delete_gateway(&state.pool, &principal.actor(), &slug, id, if_match)
        .await
        .map_err(ApiError::from)?;
    Ok(warp::reply::with_status(warp::reply(), StatusCode::NO_CONTENT).into_response())
}

/// What a registration answers.
#[derive(Debug, Serialize)]
struct Registered {
    registered: Vec<stoker_metadata::Sensor>,
}

/// `POST …/gateways/{gateway}/register`: every unregistered metric, or
/// those `sensors` names, becomes a sensor of the kind its datatype feeds,
/// with `type` and `unit` (defaults [`DEFAULT_SENSOR_TYPE`],
/// [`DEFAULT_UNIT`]); a state sensor takes its states from `states`
/// (`{"<sensor>": ["off", "on"]}`), since a birth does not declare them.
/// All of them in one transaction, or none.
async fn register_metrics(
    slug: String,
    id: String,
    principal: Principal,
    state: State,
    mut fields: Fields,
) -> Result<warp::reply::Response, warp::Rejection> {
    let slug = site_from_path(&slug)?;
    let id = uuid_from_path("gateway", &id)?;
    let gateway = stoker_metadata::get_gateway(&state.pool, &slug, id)
        .await
        .map_err(ApiError::from)?;
    let candidates = unregistered(&gateway);
    let chosen = fields.optional_strings("sensors");
    let sensor_type = fields
        .string_or("type", DEFAULT_SENSOR_TYPE)
        .and_then(|text| match SensorType::parse(text) {
            Ok(value) => Some(value),
            Err(error) => {
                fields.invalid("type", error.to_string());
                None
            }
        });
    let unit = fields
        .string_or("unit", DEFAULT_UNIT)
        .and_then(|text| match Unit::parse(text) {
            Ok(value) => Some(value),
            Err(error) => {
                fields.invalid("unit", error.to_string());
                None
            }
        });
    let states = fields.optional_object("states");
    let selected = select(&mut fields, &candidates, chosen);
    let states = states.map(|states| read_states(&mut fields, states.unwrap_or_default()));
    let mut sensors = Vec::new();
    if let (Some(selected), Some(mut states), Some(sensor_type), Some(unit)) =
        (selected, states, sensor_type, unit)
    {
        for candidate in &selected {
            let sensor_states = states.remove(&candidate.sensor);
            let sensor_states = match (candidate.kind, sensor_states) {
                (SensorKind::State, Some(states)) => states,
                (SensorKind::State, None) => {
                    fields.invalid(
                        "states",
                        format!(
                            "{} ({} {:?}) becomes a state sensor, which needs its states: send \"states\": {{\"{}\": [\"…\"]}}",
                            candidate.sensor, candidate.datatype, candidate.metric, candidate.sensor
                        ),
                    );
                    continue;
                }
                (kind, Some(_)) => {
                    fields.invalid(
                        "states",
                        format!(
                            "{} becomes a {kind} sensor: only a state sensor has states",
                            candidate.sensor
                        ),
                    );
                    continue;
                }
                (_, None) => States::default(),
            };
            sensors.push(NewSensor {
                key: candidate.sensor.clone(),
                sensor_type: sensor_type.clone(),
                unit: unit.clone(),
                kind: candidate.kind,
                states: sensor_states,
                range: ValidRange::default(),
            });
        }
        for (sensor, _) in states {
            fields.invalid(
                "states",
                format!("{sensor} is not a metric this request registers"),
            );
        }
    }
    fields.finish()?;
    let registered = stoker_metadata::register_gateway_sensors(
        &state.pool,
        &principal.actor(),
        &slug,
        id,
        &sensors,
    )
    .await
    .map_err(ApiError::from)?;
    state.catalog.invalidate(&slug);
    state.metadata_changed();
    Ok(warp::reply::json(&Registered { registered }).into_response())
}

/// The candidates a registration takes: those `chosen` names (each once,
/// each an unregistered metric of the gateway), or all of them when it
/// names none. `None` when the field is wrong (recorded in `fields`).
fn select<'a>(
    fields: &mut Fields,
    candidates: &'a [Unregistered],
    chosen: Option<Option<Vec<String>>>,
) -> Option<Vec<&'a Unregistered>> {
    let names = match chosen? {
        None => return Some(candidates.iter().collect()),
        Some(names) => names,
    };
    if names.is_empty() {
        fields.invalid(
            "sensors",
            "sensors must name at least one sensor key (leave it out to register every unregistered metric)",
        );
        return None;
    }
    let mut seen = HashSet::new();
    let mut selected = Vec::with_capacity(names.len());
    let mut ok = true;
    for name in &names {
        if !seen.insert(name.as_str()) {
            fields.invalid("sensors", format!("{name:?} is listed twice"));
            ok = false;
            continue;
        }
        match candidates.iter().find(|c| c.sensor.as_str() == name) {
            Some(candidate) => selected.push(candidate),
            None => {
                let shown: String = name.chars().take(64).collect();
                fields.invalid(
                    "sensors",
                    format!(
                        "{shown:?} is not an unregistered metric of this gateway (see its unregistered list)"
                    ),
                );
                ok = false;
            }
        }
    }
    ok.then_some(selected)
}

/// `states`: a state sensor's states by sensor key. Bad entries are
/// recorded in `fields` and left out.
fn read_states(
    fields: &mut Fields,
    states: serde_json::Map<String, Value>,
) -> HashMap<SensorKey, States> {
    let mut read = HashMap::new();
    for (sensor, names) in states {
        let shown: String = sensor.chars().take(64).collect();
        let Ok(key) = SensorKey::parse(sensor.as_str()) else {
            fields.invalid("states", format!("{shown:?} is not a sensor key"));
            continue;
        };
        let names = match names {
            Value::Array(items) => items
                .into_iter()
                .map(|item| match item {
                    Value::String(text) => Some(text),
                    _ => None,
                })
                .collect::<Option<Vec<_>>>(),
            _ => None,
        };
        let Some(names) = names else {
            fields.invalid(
                "states",
                format!("the states of {shown} must be a list of strings"),
            );
            continue;
        };
        match States::parse(names) {
            Ok(parsed) if !parsed.is_empty() => {
                read.insert(key, parsed);
            }
            Ok(_) => fields.invalid(
                "states",
                format!("the states of {shown} must name at least one state"),
            ),
            Err(error) => fields.invalid("states", format!("the states of {shown}: {error}")),
        }
    }
    read
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn datatypes_give_the_kinds_ingestion_stores() {
        assert_eq!(kind_of_datatype("Double"), Some(SensorKind::Numeric));
        assert_eq!(kind_of_datatype("UInt16"), Some(SensorKind::Numeric));
        assert_eq!(kind_of_datatype("Boolean"), Some(SensorKind::Boolean));
        assert_eq!(kind_of_datatype("String"), Some(SensorKind::State));
        assert_eq!(kind_of_datatype("Text"), Some(SensorKind::State));
        assert_eq!(kind_of_datatype("DateTime"), None);
        assert_eq!(kind_of_datatype("Bytes"), None);
        assert_eq!(kind_of_datatype("nonsense"), None);
        assert!(SensorType::parse(DEFAULT_SENSOR_TYPE).is_ok());
        assert!(Unit::parse(DEFAULT_UNIT).is_ok());
    }
}
