//! What alarm suppression adds to rules and sensors as the API shows
//! them: a rule's `suppress_when` checked against the sensors of the
//! sites it watches, and the `out_of_service` schema.

use serde_json::{Value, json};
use stoker_domain::SiteSlug;
use stoker_rules::NewAlertRule;

use crate::problem::{ApiError, FieldError};

/// At most this many sites a `suppress_when` does not fit are named.
const MAX_NAMED: usize = 20;

/// Refuses (422 on `suppress_when`) a condition whose sensor is missing,
/// or of a kind (or states) its value does not fit, at a site the rule
/// watches: its own site, or the sites of the sensors it selects now.
pub(crate) fn check_suppress_when(
    rule: &NewAlertRule,
    condition: &stoker_rules::SuppressWhen,
    registry: &[stoker_metadata::RegistryEntry],
) -> Result<(), ApiError> {
    let mut sites: Vec<&SiteSlug> = match &rule.selector().site {
        Some(site) => vec![site],
        None => registry
            .iter()
            .filter(|entry| {
                rule.selector()
                    .matches(&entry.site, &entry.key, &entry.sensor_type)
            })
            .map(|entry| &entry.site)
            .collect(),
    };
    sites.sort();
    sites.dedup();
    let mut errors = Vec::new();
    for site in sites {
        let found = registry
            .iter()
            .find(|entry| &entry.site == site && entry.key == condition.sensor);
        let message = match found {
            None => Some(format!(
                "suppress_when names sensor {}, which does not exist at site {site}",
                condition.sensor
            )),
            Some(entry) => condition
                .stored_for(entry.kind, &entry.states)
                .err()
                .map(|reason| {
                    format!(
                        "suppress_when cannot compare sensor {} of site {site}: {reason}",
                        condition.sensor
                    )
                }),
        };
        if let Some(message) = message {
            errors.push(FieldError {
                field: "suppress_when".to_owned(),
                message,
            });
        }
        if errors.len() >= MAX_NAMED {
            break;
        }
    }
    if errors.is_empty() {
        Ok(())
    } else {
        Err(ApiError::Validation(errors))
    }
}

/// A sensor's or rule's time out of service, as answered: null (in
/// service) or since when, until when, why and by whom.
pub(crate) fn out_of_service_schema() -> Value {
    json!({
        "anyOf": [
            { "type": "object", "required": ["until", "reason", "by", "since"], "properties": {
                "until": { "type": "string", "format": "date-time" },
                "reason": { "type": "string" },
                "by": { "type": "string" },
                "since": { "type": "string", "format": "date-time" } } },
            { "type": "null" }
        ],
        "description": "Out of service (its alarms recorded as suppressed, not announced) until then; null: in service.",
    })
}
