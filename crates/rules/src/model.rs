//! The alert rule: the table its types are generated from (see `define`),
//! what a rule watches, and its validation.
//!
//! To add a field a kind reads: a line under `fields`, its name under the
//! kinds that read it, a check in [`RuleKind::validate`] if it has bounds,
//! and its column (`<name>`, or `<name>_ms` for a duration) with the kind's
//! CHECK. A setting every rule has: a line under `settings` and its column.
//! A kind: its entry under `kinds`, its arm in `validate` and in the
//! engine, and its CHECK.

use std::collections::BTreeMap;
use std::time::Duration;

use chrono::{DateTime, Utc};
use serde::de::{IgnoredAny, MapAccess, Visitor};
use serde::ser::SerializeMap as _;
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use stoker_domain::{SensorKey, SensorType, SiteSlug};
use uuid::Uuid;

use crate::SuppressWhen;
use crate::define::rule_model;
use crate::field::{Field, FieldError, FieldSpec, Value, millis, names, one_of};
use crate::threshold::{
    Agg, Op, Threshold, finite, hysteresis, ordered_threshold, typed_threshold,
};

/// The longest rule name, in characters.
pub const MAX_NAME_CHARS: usize = 200;

/// The longest `cause`, `consequence` or `operator_action`, in characters.
pub const MAX_RATIONALE_CHARS: usize = 2000;

/// A rule's rationalization text.
pub type Rationale = crate::field::Text<MAX_RATIONALE_CHARS>;

/// How long an alert may be shelved when its rule does not say
/// (ISA-18.2 shelving is bounded; one shift).
pub const DEFAULT_MAX_SHELVE: Duration = Duration::from_secs(8 * 3600);

/// The longest `max_shelve` a rule may set.
pub const MAX_SHELVE_LIMIT: Duration = Duration::from_secs(7 * 24 * 3600);

names! {
    /// How urgent an alert of a rule is.
    pub enum Severity as "severity": PartialOrd, Ord {
        /// For the record.
        Info = "info",
        /// Needs attention.
        Warning = "warning",
        /// Needs attention now.
        Critical = "critical",
    }
}

rule_model! {
    settings {
        /// How urgent its alerts are.
        severity: Severity,
        /// Whether it is evaluated (default true).
        enabled: bool = true,
        /// While this condition on another sensor of the watched sensor's
        /// site holds, the rule's alarms are recorded as suppressed, never
        /// announced (default none).
        suppress_when: Option<SuppressWhen> = None,
    }
    options {
        /// Whether its alert stays active once the condition clears, until
        /// an operator resets it (`POST /alerts/{id}/reset`; default false).
        latching: bool = false,
        /// The longest an operator may shelve its alert (default 8h, at
        /// most [`MAX_SHELVE_LIMIT`]).
        max_shelve: Duration = DEFAULT_MAX_SHELVE,
        /// Rationalization: what makes the condition happen.
        cause: Option<Rationale> = None,
        /// Rationalization: what follows if nobody acts.
        consequence: Option<Rationale> = None,
        /// Rationalization: what the operator should do.
        operator_action: Option<Rationale> = None,
        /// Rationalization: how soon the operator must act (a duration).
        response_time: Option<Duration> = None,
        /// How long an alert may stay unacknowledged before it is
        /// escalated, and again after each such period until it is
        /// acknowledged or closed (> 0; none by default: never escalated).
        escalate_after: Option<Duration> = None,
    }
    fields {
        /// Threshold: how the window's readings are reduced (required for
        /// `>`, `>=`, `<`, `<=`; `last` by default for `==`, `!=`).
        agg: Option<Agg> = None,
        /// Threshold and rate of change: the comparison.
        op: Op,
        /// Threshold: the trigger value, a number, or for `==`/`!=` a
        /// boolean or a state name.
        threshold: Threshold,
        /// Threshold: the clear value (required for `>`, `>=`, `<`, `<=`;
        /// none for `==`, `!=`).
        clear_threshold: Option<f64> = None,
        /// Threshold, rate of change, anomaly: the window (> 0).
        window: Duration,
        /// Threshold: how long the condition must hold before the alert
        /// fires (`for` in JSON; default 0s).
        for_ as "for": Duration = Duration::ZERO,
        /// Rate of change: the trigger rate, in the sensor's unit per minute.
        rate_per_min: f64,
        /// Rate of change: the clear rate per minute.
        clear_rate_per_min: f64,
        /// No data: the silence that fires the alert (> 0).
        timeout: Duration,
        /// Anomaly: the history the window is compared with (longer than
        /// the window).
        baseline: Duration,
        /// Anomaly: the trigger distance in standard deviations (> 0).
        z: f64,
        /// Anomaly: the clear distance (0 < `clear_z` <= `z`).
        clear_z: f64,
    }
    kinds {
        /// Fires when `agg` of the readings over `window` compared with
        /// `threshold` by `op` has held for `for_`; clears once the same
        /// aggregate no longer passes `clear_threshold` (for `==`/`!=`,
        /// once the comparison no longer holds).
        Threshold = "threshold" {
            /// How the window's readings are reduced.
            agg,
            /// The comparison.
            op,
            /// The trigger value: a number for `>`, `>=`, `<`, `<=`; a
            /// boolean or a state name for `==`, `!=`.
            threshold,
            /// The clear value: at or below `threshold` for `>`/`>=`, at
            /// or above it for `<`/`<=`; none for `==`/`!=`.
            clear_threshold,
            /// The window the aggregate covers (> 0).
            window,
            /// How long the condition must hold before the alert fires (>= 0).
            for_,
        }
        /// Fires when the rate of change per minute over `window` compared
        /// with `rate_per_min` by `op` holds; clears once it no longer
        /// passes `clear_rate_per_min`.
        RateOfChange = "rate_of_change" {
            /// The comparison.
            op,
            /// The trigger rate, in the sensor's unit per minute.
            rate_per_min,
            /// The clear rate: at or below `rate_per_min` for `>`/`>=`, at
            /// or above it for `<`/`<=`.
            clear_rate_per_min,
            /// The window the rate is measured over (> 0).
            window,
        }
        /// Fires when a sensor has sent nothing for `timeout`; clears with
        /// its next reading.
        NoData = "no_data" {
            /// The silence that fires the alert (> 0).
            timeout,
        }
        /// Fires when the mean over `window` is more than `z` standard
        /// deviations away from the mean of the `baseline` before it;
        /// clears once it is within `clear_z`.
        Anomaly = "anomaly" {
            /// The recent window (> 0).
            window,
            /// The history the window is compared with (longer than `window`).
            baseline,
            /// The trigger distance in standard deviations (> 0).
            z,
            /// The clear distance: 0 < `clear_z` <= `z`.
            clear_z,
        }
    }
}

impl RuleKind {
    /// The kind with the defaults that depend on other fields filled in:
    /// a threshold compared by `==`/`!=` without `agg` takes `last`.
    pub fn with_defaults(mut self) -> Self {
        if let RuleKind::Threshold { agg, op, .. } = &mut self
            && !op.orders_numbers()
            && agg.is_none()
        {
            *agg = Some(Agg::Last);
        }
        self
    }

    /// Checks the kind's values (finite numbers, hysteresis in the right
    /// direction, a threshold of the type its `op` compares, windows > 0,
    /// baseline longer than window, durations in whole milliseconds); the
    /// error names the field as it reads in JSON.
    pub fn validate(&self) -> Result<(), FieldError> {
        match *self {
            RuleKind::Threshold {
                agg,
                op,
                ref threshold,
                clear_threshold,
                window,
                for_,
            } => {
                if op.orders_numbers() {
                    ordered_threshold(agg, op, threshold, clear_threshold)?;
                } else {
                    typed_threshold(agg, op, threshold, clear_threshold)?;
                }
                positive_millis("window", window)?;
                millis("for", for_)?;
            }
            RuleKind::RateOfChange {
                op,
                rate_per_min,
                clear_rate_per_min,
                window,
            } => {
                if !op.orders_numbers() {
                    return Err((
                        "op",
                        format!(
                            "op {} compares a boolean or a state: rate_of_change takes >, >=, < or <=",
                            op.as_str()
                        ),
                    ));
                }
                finite("rate_per_min", rate_per_min)?;
                finite("clear_rate_per_min", clear_rate_per_min)?;
                hysteresis(
                    op,
                    "rate_per_min",
                    rate_per_min,
                    "clear_rate_per_min",
                    clear_rate_per_min,
                )?;
                positive_millis("window", window)?;
            }
            RuleKind::NoData { timeout } => {
                positive_millis("timeout", timeout)?;
            }
            RuleKind::Anomaly {
                window,
                baseline,
                z,
                clear_z,
            } => {
                positive_millis("window", window)?;
                positive_millis("baseline", baseline)?;
                if baseline <= window {
                    return Err((
                        "baseline",
                        format!(
                            "baseline ({}) must be longer than window ({})",
                            humantime::format_duration(baseline),
                            humantime::format_duration(window)
                        ),
                    ));
                }
                finite("z", z)?;
                if z <= 0.0 {
                    return Err(("z", format!("z ({z}) must be above 0")));
                }
                finite("clear_z", clear_z)?;
                if clear_z <= 0.0 || clear_z > z {
                    return Err((
                        "clear_z",
                        format!("clear_z ({clear_z}) must be above 0 and at most z ({z})"),
                    ));
                }
            }
        }
        Ok(())
    }
}

impl NewAlertRule {
    /// Checks the settings with bounds: `max_shelve` above 0 and at most
    /// [`MAX_SHELVE_LIMIT`], `response_time` above 0.
    fn check_settings(&self) -> Result<(), FieldError> {
        positive_millis("max_shelve", self.max_shelve)?;
        if self.max_shelve > MAX_SHELVE_LIMIT {
            return Err((
                "max_shelve",
                format!(
                    "max_shelve must be at most {}",
                    humantime::format_duration(MAX_SHELVE_LIMIT)
                ),
            ));
        }
        if let Some(response_time) = self.response_time {
            positive_millis("response_time", response_time)?;
        }
        if let Some(escalate_after) = self.escalate_after {
            positive_millis("escalate_after", escalate_after)?;
        }
        Ok(())
    }
}

fn positive_millis(field: &'static str, duration: Duration) -> Result<i64, FieldError> {
    let value = millis(field, duration)?;
    if value == 0 {
        return Err((field, format!("{field} must be longer than 0")));
    }
    Ok(value)
}

fn checked_name(name: &str) -> Result<&str, FieldError> {
    let name = name.trim();
    if name.is_empty() || name.chars().count() > MAX_NAME_CHARS {
        return Err((
            "name",
            format!("name must be 1 to {MAX_NAME_CHARS} characters"),
        ));
    }
    Ok(name)
}

fn required<'a>(field: &'static str, value: Option<&'a str>) -> Result<&'a str, FieldError> {
    value.ok_or_else(|| (field, format!("{field} is required")))
}

/// A field of a draft: its value, else its default, else the error that
/// it is missing.
fn drafted<T: Field>(
    field: &'static str,
    kind: &str,
    draft: Option<&T::Draft>,
    default: Option<T>,
) -> Result<T, FieldError> {
    match (draft, default) {
        (Some(draft), _) => T::from_draft(field, draft),
        (None, Some(value)) => Ok(value),
        (None, None) => Err(T::missing(field, kind)),
    }
}

/// A field of a stored rule.
fn stored<T: Field>(field: &'static str, values: &Values) -> Result<T, FieldError> {
    T::from_value(field, values.get(field).cloned())
}

/// Stored values of a rule's fields, by name in JSON.
pub type Values = BTreeMap<&'static str, Value>;

/// What storing a rule gives it besides its definition.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Record {
    /// Immutable id.
    pub id: Uuid,
    /// Incremented by every change.
    pub version: i64,
    /// When it was created.
    pub created_at: DateTime<Utc>,
    /// When it last changed.
    pub updated_at: DateTime<Utc>,
}

/// What a rule watches: every sensor that matches all the parts that are
/// set. At least one part is set. A `sensor` without a `site` means the
/// sensors with that key at every site.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct RuleSelector {
    /// Only sensors of this site.
    #[serde(default)]
    pub site: Option<SiteSlug>,
    /// Only sensors with this key.
    #[serde(default)]
    pub sensor: Option<SensorKey>,
    /// Only sensors of this type.
    #[serde(default)]
    pub sensor_type: Option<SensorType>,
}

impl RuleSelector {
    /// The selector's parts, as named in JSON.
    pub const FIELDS: [&'static str; 3] = ["site", "sensor", "sensor_type"];

    /// Whether no part is set (such a selector is refused).
    pub fn is_empty(&self) -> bool {
        self.site.is_none() && self.sensor.is_none() && self.sensor_type.is_none()
    }

    /// Whether the sensor `sensor` of type `sensor_type` at `site` is watched.
    pub fn matches(&self, site: &SiteSlug, sensor: &SensorKey, sensor_type: &SensorType) -> bool {
        self.site.as_ref().is_none_or(|wanted| wanted == site)
            && self.sensor.as_ref().is_none_or(|wanted| wanted == sensor)
            && self
                .sensor_type
                .as_ref()
                .is_none_or(|wanted| wanted == sensor_type)
    }

    fn check(&self) -> Result<(), FieldError> {
        if self.is_empty() {
            return Err((
                "selector",
                format!(
                    "a rule must select what it watches: set at least one of {}",
                    Self::FIELDS.join(", ")
                ),
            ));
        }
        Ok(())
    }

    /// The parts a draft sets, each parsed; the error names the part.
    fn parse(draft: &RuleDraft) -> Result<Self, FieldError> {
        Ok(Self {
            site: draft
                .site
                .as_deref()
                .map(SiteSlug::parse)
                .transpose()
                .map_err(|error| ("site", error.to_string()))?,
            sensor: draft
                .sensor
                .as_deref()
                .map(SensorKey::parse)
                .transpose()
                .map_err(|error| ("sensor", error.to_string()))?,
            sensor_type: draft
                .sensor_type
                .as_deref()
                .map(SensorType::parse)
                .transpose()
                .map_err(|error| ("sensor_type", error.to_string()))?,
        })
    }
}

impl RuleDraft {
    fn refuse_other_fields(&self, kind: &str, allowed: &[&str]) -> Result<(), FieldError> {
        match self
            .kind_fields_set()
            .find(|field| !allowed.contains(field))
        {
            Some(field) => Err((
                field,
                format!(
                    "{field} does not apply to kind {kind}, which reads {}",
                    allowed.join(", ")
                ),
            )),
            None => Ok(()),
        }
    }
}

impl<'de> Deserialize<'de> for RuleDraft {
    /// A JSON object of rule fields; fields a rule does not have are
    /// skipped.
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct DraftVisitor;

        impl<'de> Visitor<'de> for DraftVisitor {
            type Value = RuleDraft;

            fn expecting(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                formatter.write_str("an alert rule")
            }

            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<RuleDraft, A::Error> {
                let mut draft = RuleDraft::default();
                while let Some(field) = map.next_key::<String>()? {
                    map.next_value_seed(FieldSeed {
                        draft: &mut draft,
                        field: &field,
                    })?;
                }
                Ok(draft)
            }
        }

        /// One value, set into the draft by its field's name.
        struct FieldSeed<'a> {
            draft: &'a mut RuleDraft,
            field: &'a str,
        }

        impl<'de> serde::de::DeserializeSeed<'de> for FieldSeed<'_> {
            type Value = ();

            fn deserialize<D: Deserializer<'de>>(self, value: D) -> Result<(), D::Error> {
                if RuleDraft::FIELDS.contains(&self.field) {
                    self.draft.set(self.field, value)?;
                } else {
                    IgnoredAny::deserialize(value)?;
                }
                Ok(())
            }
        }

        deserializer.deserialize_map(DraftVisitor)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn threshold(op: Op, threshold: f64, clear_threshold: f64) -> RuleKind {
        RuleKind::Threshold {
            agg: Some(Agg::Mean),
            op,
            threshold: Threshold::Number(threshold),
            clear_threshold: Some(clear_threshold),
            window: Duration::from_secs(60),
            for_: Duration::from_secs(30),
        }
    }

    fn compare(agg: Option<Agg>, op: Op, threshold: Threshold) -> RuleKind {
        RuleKind::Threshold {
            agg,
            op,
            threshold,
            clear_threshold: None,
            window: Duration::from_secs(60),
            for_: Duration::ZERO,
        }
    }

    fn state(name: &str) -> Threshold {
        Threshold::State(stoker_domain::StateName::parse(name).unwrap())
    }

    fn selector() -> RuleSelector {
        RuleSelector {
            sensor_type: Some(SensorType::parse("pressure").unwrap()),
            ..RuleSelector::default()
        }
    }

    fn field_of(kind: RuleKind) -> &'static str {
        kind.validate().unwrap_err().0
    }

    #[test]
    fn names_round_trip() {
        for agg in Agg::ALL {
            assert_eq!(Agg::parse(agg.as_str()), Ok(agg));
        }
        for op in Op::ALL {
            assert_eq!(Op::parse(op.as_str()), Ok(op));
        }
        for severity in Severity::ALL {
            assert_eq!(Severity::parse(severity.as_str()), Ok(severity));
        }
        assert_eq!(Op::parse("=>").unwrap_err().0, "op");
        assert_eq!(Agg::parse("median").unwrap_err().0, "agg");
        assert_eq!(Severity::parse("fatal").unwrap_err().0, "severity");
    }

    #[test]
    fn hysteresis_runs_the_right_way() {
        assert!(threshold(Op::Gt, 12.5, 12.0).validate().is_ok());
        assert!(threshold(Op::Ge, 12.5, 12.5).validate().is_ok());
        assert_eq!(field_of(threshold(Op::Gt, 12.5, 13.0)), "clear_threshold");
        assert!(threshold(Op::Lt, 2.0, 2.5).validate().is_ok());
        assert_eq!(field_of(threshold(Op::Le, 2.0, 1.5)), "clear_threshold");
        assert_eq!(field_of(threshold(Op::Gt, f64::NAN, 1.0)), "threshold");
        assert_eq!(
            field_of(RuleKind::RateOfChange {
                op: Op::Gt,
                rate_per_min: 1.0,
                clear_rate_per_min: 2.0,
                window: Duration::from_secs(60),
            }),
            "clear_rate_per_min"
        );
    }

    #[test]
    fn durations_and_anomaly_bounds_are_checked() {
        let anomaly = |window: u64, baseline: u64, z: f64, clear_z: f64| RuleKind::Anomaly {
            window: Duration::from_secs(window),
            baseline: Duration::from_secs(baseline),
            z,
            clear_z,
        };
        assert!(anomaly(60, 3600, 3.0, 2.0).validate().is_ok());
        assert_eq!(field_of(anomaly(60, 60, 3.0, 2.0)), "baseline");
        assert_eq!(field_of(anomaly(0, 60, 3.0, 2.0)), "window");
        assert_eq!(field_of(anomaly(60, 3600, 3.0, 3.5)), "clear_z");
        assert_eq!(field_of(anomaly(60, 3600, 3.0, 0.0)), "clear_z");
        assert_eq!(field_of(anomaly(60, 3600, -1.0, -2.0)), "z");
        assert_eq!(
            field_of(RuleKind::NoData {
                timeout: Duration::from_micros(1500)
            }),
            "timeout"
        );
        assert_eq!(
            field_of(RuleKind::NoData {
                timeout: Duration::ZERO
            }),
            "timeout"
        );
        let mut kind = threshold(Op::Gt, 1.0, 0.5);
        if let RuleKind::Threshold { for_, .. } = &mut kind {
            *for_ = Duration::ZERO;
        }
        assert!(kind.validate().is_ok(), "for may be 0");
    }

    #[test]
    fn a_rule_needs_a_name_and_a_selector() {
        let kind = threshold(Op::Gt, 1.0, 0.5);
        let error = NewAlertRule::new(
            "x",
            RuleSelector::default(),
            kind.clone(),
            Severity::Info,
            true,
            None,
        )
        .unwrap_err();
        assert_eq!(error.0, "selector");
        let error = NewAlertRule::new("  ", selector(), kind.clone(), Severity::Info, true, None)
            .unwrap_err();
        assert_eq!(error.0, "name");
        let rule =
            NewAlertRule::new(" High ", selector(), kind, Severity::Info, true, None).unwrap();
        assert_eq!(rule.name(), "High");
    }

    #[test]
    fn escalate_after_is_an_optional_period() {
        let draft: RuleDraft = serde_json::from_value(serde_json::json!({
            "name": "High pressure", "kind": "no_data", "site": "boiler-house-1",
            "timeout": "2m", "severity": "critical", "escalate_after": "15m"
        }))
        .unwrap();
        let rule = NewAlertRule::parse(&draft).unwrap();
        assert_eq!(rule.escalate_after(), Some(Duration::from_secs(900)));
        assert!(
            rule.setting_values()
                .contains(&("escalate_after", Value::Duration(Duration::from_secs(900))))
        );
        let mut none = draft.clone();
        none.escalate_after = None;
        assert_eq!(NewAlertRule::parse(&none).unwrap().escalate_after(), None);
        for bad in ["0s", "1500us", "soon"] {
            let mut bad_draft = draft.clone();
            bad_draft.escalate_after = Some(bad.into());
            assert_eq!(
                NewAlertRule::parse(&bad_draft).unwrap_err().0,
                "escalate_after",
                "{bad}"
            );
        }
    }

    #[test]
    fn drafts_name_the_missing_or_foreign_field() {
        let draft: RuleDraft = serde_json::from_value(serde_json::json!({
            "name": "High pressure", "kind": "threshold", "site": "boiler-house-1",
            "sensor_type": "pressure", "agg": "mean", "op": ">", "threshold": 12.5,
            "clear_threshold": 12.0, "window": "60s", "for": "30s", "severity": "warning"
        }))
        .unwrap();
        let rule = NewAlertRule::parse(&draft).unwrap();
        assert!(rule.enabled());
        assert_eq!(
            rule.kind(),
            &RuleKind::Threshold {
                agg: Some(Agg::Mean),
                op: Op::Gt,
                threshold: Threshold::Number(12.5),
                clear_threshold: Some(12.0),
                window: Duration::from_secs(60),
                for_: Duration::from_secs(30),
            }
        );

        let mut missing = draft.clone();
        missing.clear_threshold = None;
        assert_eq!(
            NewAlertRule::parse(&missing).unwrap_err().0,
            "clear_threshold"
        );

        let mut foreign = draft.clone();
        foreign.timeout = Some("2m".into());
        assert_eq!(NewAlertRule::parse(&foreign).unwrap_err().0, "timeout");

        let mut bad_window = draft.clone();
        bad_window.window = Some("soon".into());
        assert_eq!(NewAlertRule::parse(&bad_window).unwrap_err().0, "window");

        let mut no_data = draft.clone();
        no_data.kind = Some("no_data".into());
        no_data.clear_kind_fields();
        no_data.timeout = Some("120s".into());
        let rule = NewAlertRule::parse(&no_data).unwrap();
        assert_eq!(
            rule.kind(),
            &RuleKind::NoData {
                timeout: Duration::from_secs(120)
            }
        );

        let mut numbers_only = draft;
        numbers_only.agg = None;
        assert_eq!(
            NewAlertRule::parse(&numbers_only).unwrap_err(),
            ("agg", "agg is required for op >".to_owned())
        );
    }

    #[test]
    fn equality_compares_booleans_and_states_without_a_clear_value() {
        for (agg, threshold) in [
            (Agg::Last, Threshold::Boolean(true)),
            (Agg::Min, Threshold::Boolean(true)),
            (Agg::Max, Threshold::Boolean(false)),
            (Agg::Last, state("lockout")),
        ] {
            for op in [Op::Eq, Op::Ne] {
                let kind = compare(Some(agg), op, threshold.clone());
                assert_eq!(kind.validate(), Ok(()), "{kind:?}");
            }
        }
        let refused = |kind: RuleKind| kind.validate().unwrap_err();
        assert_eq!(
            refused(compare(Some(Agg::Last), Op::Eq, Threshold::Number(1.0))),
            (
                "threshold",
                "with op == the threshold is a boolean (true, false) or a state name, not the \
                 number 1: compare numbers with >, >=, < or <="
                    .to_owned()
            )
        );
        assert_eq!(
            refused(compare(Some(Agg::Mean), Op::Eq, Threshold::Boolean(true))).0,
            "agg"
        );
        assert_eq!(
            refused(compare(Some(Agg::Max), Op::Ne, state("lockout"))),
            (
                "agg",
                "agg max of a state sensor's readings is no state: a state threshold takes agg last"
                    .to_owned()
            )
        );
        let mut with_clear = compare(Some(Agg::Last), Op::Eq, state("lockout"));
        if let RuleKind::Threshold {
            clear_threshold, ..
        } = &mut with_clear
        {
            *clear_threshold = Some(1.0);
        }
        assert_eq!(refused(with_clear).0, "clear_threshold");
        let mut typed_ordered = threshold(Op::Gt, 1.0, 0.5);
        if let RuleKind::Threshold { threshold, .. } = &mut typed_ordered {
            *threshold = state("lockout");
        }
        assert_eq!(
            refused(typed_ordered),
            (
                "threshold",
                "with op > the threshold is a number; \"lockout\" is a value of a state sensor, \
                 compared with == or !="
                    .to_owned()
            )
        );
        assert_eq!(
            refused(RuleKind::RateOfChange {
                op: Op::Eq,
                rate_per_min: 1.0,
                clear_rate_per_min: 1.0,
                window: Duration::from_secs(60),
            })
            .0,
            "op"
        );
    }

    #[test]
    fn an_equality_rule_reads_and_writes_typed_json() {
        let draft: RuleDraft = serde_json::from_value(serde_json::json!({
            "name": "Lockout", "kind": "threshold", "site": "boiler-house-1",
            "sensor": "b1_sequencer", "op": "==", "threshold": "lockout",
            "window": "30s", "severity": "critical"
        }))
        .unwrap();
        let rule = NewAlertRule::parse(&draft).unwrap();
        assert_eq!(
            rule.kind(),
            &RuleKind::Threshold {
                agg: Some(Agg::Last),
                op: Op::Eq,
                threshold: state("lockout"),
                clear_threshold: None,
                window: Duration::from_secs(30),
                for_: Duration::ZERO,
            },
            "agg defaults to last"
        );
        let values: Values = rule.kind().values().into_iter().collect();
        assert_eq!(
            values.get("threshold"),
            Some(&Value::State(
                stoker_domain::StateName::parse("lockout").unwrap()
            ))
        );
        assert!(!values.contains_key("clear_threshold"));
        let stored = AlertRule::from_stored(
            Record {
                id: Uuid::nil(),
                version: 1,
                created_at: DateTime::UNIX_EPOCH,
                updated_at: DateTime::UNIX_EPOCH,
            },
            rule.name().to_owned(),
            rule.selector().clone(),
            rule.kind().name(),
            &values
                .into_iter()
                .chain(rule.setting_values())
                .collect::<Values>(),
        )
        .unwrap();
        let json = serde_json::to_value(&stored).unwrap();
        assert_eq!(json["threshold"], "lockout");
        assert_eq!(json["op"], "==");
        assert_eq!(json["agg"], "last");
        assert!(json.get("clear_threshold").is_none(), "{json}");
        let back = NewAlertRule::parse(&RuleDraft::from(&stored)).unwrap();
        assert_eq!(back.kind(), rule.kind());
        let read: AlertRule = serde_json::from_value(json).unwrap();
        assert_eq!(read, stored);

        let mut boolean = draft;
        boolean.threshold = Some(Threshold::Boolean(true));
        boolean.agg = Some("max".into());
        let rule = NewAlertRule::parse(&boolean).unwrap();
        assert!(matches!(
            rule.kind(),
            RuleKind::Threshold {
                agg: Some(Agg::Max),
                threshold: Threshold::Boolean(true),
                ..
            }
        ));
    }
}
