//! The alert rule model: what a rule watches, how it fires and clears, its
//! validation, and its JSON shape (DESIGN.md).

use std::time::Duration;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use stoker_domain::{SensorKey, SensorType, SiteSlug, parse_duration};
use uuid::Uuid;

/// A validation error: the field at fault and what is wrong with it.
type FieldError = (&'static str, String);

/// The longest window, baseline, `for` or timeout a rule may have: ten
/// years keeps every derived instant well inside what nanosecond
/// timestamps hold.
const MAX_DURATION: Duration = Duration::from_secs(3650 * 24 * 3600);

/// The longest rule name, in characters.
const MAX_NAME_CHARS: usize = 200;

/// How readings within a window are reduced to the value a threshold rule
/// compares.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Agg {
    /// The mean of the window.
    Mean,
    /// The lowest reading of the window.
    Min,
    /// The highest reading of the window.
    Max,
    /// The newest reading of the window.
    Last,
}

impl Agg {
    /// Every aggregate, in documentation order.
    pub const ALL: [Agg; 4] = [Agg::Mean, Agg::Min, Agg::Max, Agg::Last];

    /// The name used in JSON and in the database: `mean`, `min`, `max`, `last`.
    pub fn as_str(self) -> &'static str {
        match self {
            Agg::Mean => "mean",
            Agg::Min => "min",
            Agg::Max => "max",
            Agg::Last => "last",
        }
    }

    /// Parses a name written by [`Agg::as_str`]; the error names the field `agg`.
    pub fn parse(text: &str) -> Result<Self, (&'static str, String)> {
        Self::ALL
            .into_iter()
            .find(|agg| agg.as_str() == text)
            .ok_or_else(|| {
                (
                    "agg",
                    format!("agg {text:?} is unknown: use mean, min, max or last"),
                )
            })
    }
}

/// How a rule compares the observed value with its trigger value.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum Op {
    /// Fires above the trigger value.
    #[serde(rename = ">")]
    Gt,
    /// Fires at or above the trigger value.
    #[serde(rename = ">=")]
    Ge,
    /// Fires below the trigger value.
    #[serde(rename = "<")]
    Lt,
    /// Fires at or below the trigger value.
    #[serde(rename = "<=")]
    Le,
}

impl Op {
    /// Every operator.
    pub const ALL: [Op; 4] = [Op::Gt, Op::Ge, Op::Lt, Op::Le];

    /// The operator as written in JSON and in the database: `>`, `>=`, `<`, `<=`.
    pub fn as_str(self) -> &'static str {
        match self {
            Op::Gt => ">",
            Op::Ge => ">=",
            Op::Lt => "<",
            Op::Le => "<=",
        }
    }

    /// Parses an operator written by [`Op::as_str`]; the error names the field `op`.
    pub fn parse(text: &str) -> Result<Self, (&'static str, String)> {
        Self::ALL
            .into_iter()
            .find(|op| op.as_str() == text)
            .ok_or_else(|| ("op", format!("op {text:?} is unknown: use >, >=, < or <=")))
    }

    /// Whether the rule fires on high values (`>`, `>=`): its clear value
    /// must then be at or below its trigger value, and at or above it
    /// otherwise.
    pub fn fires_high(self) -> bool {
        matches!(self, Op::Gt | Op::Ge)
    }

    /// Whether `value` compared with `limit` by this operator holds.
    pub fn holds(self, value: f64, limit: f64) -> bool {
        match self {
            Op::Gt => value > limit,
            Op::Ge => value >= limit,
            Op::Lt => value < limit,
            Op::Le => value <= limit,
        }
    }
}

/// How urgent an alert of a rule is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    /// For the record.
    Info,
    /// Needs attention.
    Warning,
    /// Needs attention now.
    Critical,
}

impl Severity {
    /// Every severity, least urgent first.
    pub const ALL: [Severity; 3] = [Severity::Info, Severity::Warning, Severity::Critical];

    /// The name used in JSON and in the database: `info`, `warning`, `critical`.
    pub fn as_str(self) -> &'static str {
        match self {
            Severity::Info => "info",
            Severity::Warning => "warning",
            Severity::Critical => "critical",
        }
    }

    /// Parses a name written by [`Severity::as_str`]; the error names the
    /// field `severity`.
    pub fn parse(text: &str) -> Result<Self, (&'static str, String)> {
        Self::ALL
            .into_iter()
            .find(|severity| severity.as_str() == text)
            .ok_or_else(|| {
                (
                    "severity",
                    format!("severity {text:?} is unknown: use info, warning or critical"),
                )
            })
    }
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
}

/// How a rule fires and clears. Every kind has hysteresis or a timeout, so
/// a value hovering at the trigger does not make the alert flap.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum RuleKind {
    /// Fires when `agg` of the readings over `window` compared with
    /// `threshold` by `op` has held for `for_`; clears once the same
    /// aggregate no longer passes `clear_threshold`.
    Threshold {
        /// How the window's readings are reduced.
        agg: Agg,
        /// The comparison.
        op: Op,
        /// The trigger value.
        threshold: f64,
        /// The clear value: at or below `threshold` for `>`/`>=`, at or
        /// above it for `<`/`<=`.
        clear_threshold: f64,
        /// The window the aggregate covers (> 0).
        #[serde(with = "duration_text")]
        window: Duration,
        /// How long the condition must hold before the alert fires (>= 0).
        #[serde(rename = "for", with = "duration_text")]
        for_: Duration,
    },
    /// Fires when the rate of change per minute over `window` compared with
    /// `rate_per_min` by `op` holds; clears once it no longer passes
    /// `clear_rate_per_min`.
    RateOfChange {
        /// The comparison.
        op: Op,
        /// The trigger rate, in the sensor's unit per minute.
        rate_per_min: f64,
        /// The clear rate: at or below `rate_per_min` for `>`/`>=`, at or
        /// above it for `<`/`<=`.
        clear_rate_per_min: f64,
        /// The window the rate is measured over (> 0).
        #[serde(with = "duration_text")]
        window: Duration,
    },
    /// Fires when a sensor has sent nothing for `timeout`; clears with its
    /// next reading.
    NoData {
        /// The silence that fires the alert (> 0).
        #[serde(with = "duration_text")]
        timeout: Duration,
    },
    /// Fires when the mean over `window` is more than `z` standard
    /// deviations away from the mean of the `baseline` before it; clears
    /// once it is within `clear_z`.
    Anomaly {
        /// The recent window (> 0).
        #[serde(with = "duration_text")]
        window: Duration,
        /// The history the window is compared with (longer than `window`).
        #[serde(with = "duration_text")]
        baseline: Duration,
        /// The trigger distance in standard deviations (> 0).
        z: f64,
        /// The clear distance: 0 < `clear_z` <= `z`.
        clear_z: f64,
    },
}

impl RuleKind {
    /// Every kind's name, as `kind` reads in JSON and in the database.
    pub const NAMES: [&'static str; 4] = ["threshold", "rate_of_change", "no_data", "anomaly"];

    /// The kind's name: `threshold`, `rate_of_change`, `no_data` or `anomaly`.
    pub fn name(&self) -> &'static str {
        match self {
            RuleKind::Threshold { .. } => "threshold",
            RuleKind::RateOfChange { .. } => "rate_of_change",
            RuleKind::NoData { .. } => "no_data",
            RuleKind::Anomaly { .. } => "anomaly",
        }
    }

    /// Checks the kind's values (finite numbers, hysteresis in the right
    /// direction, windows > 0, baseline longer than window, durations in
    /// whole milliseconds); the error names the field as it reads in JSON.
    pub fn validate(&self) -> Result<(), FieldError> {
        match *self {
            RuleKind::Threshold {
                agg: _,
                op,
                threshold,
                clear_threshold,
                window,
                for_,
            } => {
                finite("threshold", threshold)?;
                finite("clear_threshold", clear_threshold)?;
                hysteresis(
                    op,
                    "threshold",
                    threshold,
                    "clear_threshold",
                    clear_threshold,
                )?;
                positive_millis("window", window)?;
                millis("for", for_)?;
            }
            RuleKind::RateOfChange {
                op,
                rate_per_min,
                clear_rate_per_min,
                window,
            } => {
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

fn finite(field: &'static str, value: f64) -> Result<(), FieldError> {
    if value.is_finite() {
        Ok(())
    } else {
        Err((field, format!("{field} must be a finite number")))
    }
}

fn hysteresis(
    op: Op,
    trigger_field: &'static str,
    trigger: f64,
    clear_field: &'static str,
    clear: f64,
) -> Result<(), FieldError> {
    if op.fires_high() && clear > trigger {
        Err((
            clear_field,
            format!(
                "with op {} the alert clears at or below where it fires: \
                 {clear_field} ({clear}) must be at most {trigger_field} ({trigger})",
                op.as_str()
            ),
        ))
    } else if !op.fires_high() && clear < trigger {
        Err((
            clear_field,
            format!(
                "with op {} the alert clears at or above where it fires: \
                 {clear_field} ({clear}) must be at least {trigger_field} ({trigger})",
                op.as_str()
            ),
        ))
    } else {
        Ok(())
    }
}

/// A duration as whole milliseconds (how the database stores it).
pub(crate) fn millis(field: &'static str, duration: Duration) -> Result<i64, FieldError> {
    if !duration.subsec_nanos().is_multiple_of(1_000_000) {
        return Err((
            field,
            format!("{field} must be a whole number of milliseconds"),
        ));
    }
    if duration > MAX_DURATION {
        return Err((
            field,
            format!(
                "{field} must be at most {}",
                humantime::format_duration(MAX_DURATION)
            ),
        ));
    }
    i64::try_from(duration.as_millis()).map_err(|_| (field, format!("{field} is too long")))
}

fn positive_millis(field: &'static str, duration: Duration) -> Result<i64, FieldError> {
    let value = millis(field, duration)?;
    if value == 0 {
        return Err((field, format!("{field} must be longer than 0")));
    }
    Ok(value)
}

/// An alert rule as stored.
///
/// Serializes to the flat JSON of DESIGN.md: `id`, `name`, `site`,
/// `sensor`, `sensor_type` (null when not set), `kind` and the kind's own
/// fields (durations as humantime text such as `1m 30s`), `severity`,
/// `enabled`, `version`, `created_at`, `updated_at`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AlertRule {
    /// Immutable id; UUIDv7, so ids sort by creation.
    pub id: Uuid,
    /// Display name.
    pub name: String,
    /// What it watches.
    #[serde(flatten)]
    pub selector: RuleSelector,
    /// How it fires and clears.
    #[serde(flatten)]
    pub kind: RuleKind,
    /// How urgent its alerts are.
    pub severity: Severity,
    /// Whether it is evaluated.
    pub enabled: bool,
    /// Incremented by every change (optimistic locking).
    pub version: i64,
    /// When it was created.
    pub created_at: DateTime<Utc>,
    /// When it last changed.
    pub updated_at: DateTime<Utc>,
}

/// A rule definition to create, or to replace a rule's definition with;
/// only obtained through a validating constructor, so it always holds.
#[derive(Debug, Clone, PartialEq)]
pub struct NewAlertRule {
    name: String,
    selector: RuleSelector,
    kind: RuleKind,
    severity: Severity,
    enabled: bool,
}

impl NewAlertRule {
    /// Validates a rule: a name of 1 to 200 characters (trimmed), a
    /// selector with at least one part (field `selector`), and the kind's
    /// values ([`RuleKind::validate`]). The error names the field.
    pub fn new(
        name: &str,
        selector: RuleSelector,
        kind: RuleKind,
        severity: Severity,
        enabled: bool,
    ) -> Result<Self, FieldError> {
        let name = name.trim();
        if name.is_empty() || name.chars().count() > MAX_NAME_CHARS {
            return Err((
                "name",
                format!("name must be 1 to {MAX_NAME_CHARS} characters"),
            ));
        }
        if selector.is_empty() {
            return Err((
                "selector",
                "a rule must select what it watches: set at least one of site, sensor, \
                 sensor_type"
                    .into(),
            ));
        }
        kind.validate()?;
        Ok(Self {
            name: name.to_owned(),
            selector,
            kind,
            severity,
            enabled,
        })
    }

    /// Validates a rule written as in JSON (see [`RuleDraft`]): every field
    /// its kind needs is required (`for` defaults to `0s`, `enabled` to
    /// true), every field of another kind is refused. The error names the
    /// field as it reads in JSON.
    pub fn parse(draft: &RuleDraft) -> Result<Self, FieldError> {
        let name = required("name", draft.name.as_deref())?;
        let kind_name = draft.kind.as_deref().ok_or((
            "kind",
            "kind is required: threshold, rate_of_change, no_data or anomaly".to_owned(),
        ))?;
        let selector = RuleSelector {
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
        };
        let kind = match kind_name {
            "threshold" => {
                draft.refuse_other_fields(kind_name, &THRESHOLD_FIELDS)?;
                RuleKind::Threshold {
                    agg: Agg::parse(required("agg", draft.agg.as_deref())?)?,
                    op: Op::parse(required("op", draft.op.as_deref())?)?,
                    threshold: required_number("threshold", kind_name, draft.threshold)?,
                    clear_threshold: required_number(
                        "clear_threshold",
                        kind_name,
                        draft.clear_threshold,
                    )?,
                    window: required_duration("window", draft.window.as_deref())?,
                    for_: draft
                        .for_
                        .as_deref()
                        .map(|text| duration("for", text))
                        .transpose()?
                        .unwrap_or(Duration::ZERO),
                }
            }
            "rate_of_change" => {
                draft.refuse_other_fields(kind_name, &RATE_OF_CHANGE_FIELDS)?;
                RuleKind::RateOfChange {
                    op: Op::parse(required("op", draft.op.as_deref())?)?,
                    rate_per_min: required_number("rate_per_min", kind_name, draft.rate_per_min)?,
                    clear_rate_per_min: required_number(
                        "clear_rate_per_min",
                        kind_name,
                        draft.clear_rate_per_min,
                    )?,
                    window: required_duration("window", draft.window.as_deref())?,
                }
            }
            "no_data" => {
                draft.refuse_other_fields(kind_name, &NO_DATA_FIELDS)?;
                RuleKind::NoData {
                    timeout: required_duration("timeout", draft.timeout.as_deref())?,
                }
            }
            "anomaly" => {
                draft.refuse_other_fields(kind_name, &ANOMALY_FIELDS)?;
                RuleKind::Anomaly {
                    window: required_duration("window", draft.window.as_deref())?,
                    baseline: required_duration("baseline", draft.baseline.as_deref())?,
                    z: required_number("z", kind_name, draft.z)?,
                    clear_z: required_number("clear_z", kind_name, draft.clear_z)?,
                }
            }
            other => {
                return Err((
                    "kind",
                    format!(
                        "kind {other:?} is unknown: use threshold, rate_of_change, no_data or \
                         anomaly"
                    ),
                ));
            }
        };
        let severity = Severity::parse(required("severity", draft.severity.as_deref())?)?;
        Self::new(
            name,
            selector,
            kind,
            severity,
            draft.enabled.unwrap_or(true),
        )
    }

    /// The display name (trimmed).
    pub fn name(&self) -> &str {
        &self.name
    }

    /// What the rule watches.
    pub fn selector(&self) -> &RuleSelector {
        &self.selector
    }

    /// How it fires and clears.
    pub fn kind(&self) -> &RuleKind {
        &self.kind
    }

    /// How urgent its alerts are.
    pub fn severity(&self) -> Severity {
        self.severity
    }

    /// Whether it is evaluated.
    pub fn enabled(&self) -> bool {
        self.enabled
    }
}

fn required<'a>(field: &'static str, value: Option<&'a str>) -> Result<&'a str, FieldError> {
    value.ok_or_else(|| (field, format!("{field} is required")))
}

fn required_number(field: &'static str, kind: &str, value: Option<f64>) -> Result<f64, FieldError> {
    value.ok_or_else(|| (field, format!("{field} is required for kind {kind}")))
}

fn duration(field: &'static str, text: &str) -> Result<Duration, FieldError> {
    parse_duration(text).map_err(|error| (field, error.to_string()))
}

fn required_duration(field: &'static str, text: Option<&str>) -> Result<Duration, FieldError> {
    duration(field, required(field, text)?)
}

/// The fields each kind reads, as named in JSON.
const THRESHOLD_FIELDS: [&str; 6] = ["agg", "op", "threshold", "clear_threshold", "window", "for"];
const RATE_OF_CHANGE_FIELDS: [&str; 4] = ["op", "rate_per_min", "clear_rate_per_min", "window"];
const NO_DATA_FIELDS: [&str; 1] = ["timeout"];
const ANOMALY_FIELDS: [&str; 4] = ["window", "baseline", "z", "clear_z"];

/// A rule as written in JSON, every field optional and not yet validated:
/// what an API body or a PATCH merged onto a stored rule
/// (`RuleDraft::from(&rule)`) gives, for [`NewAlertRule::parse`].
/// Durations are humantime text (`30s`, `5m`, `24h`).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct RuleDraft {
    /// Display name.
    #[serde(default)]
    pub name: Option<String>,
    /// `threshold`, `rate_of_change`, `no_data` or `anomaly`.
    #[serde(default)]
    pub kind: Option<String>,
    /// Site slug of the selector.
    #[serde(default)]
    pub site: Option<String>,
    /// Sensor key of the selector.
    #[serde(default)]
    pub sensor: Option<String>,
    /// Sensor type of the selector.
    #[serde(default)]
    pub sensor_type: Option<String>,
    /// Threshold: `mean`, `min`, `max` or `last`.
    #[serde(default)]
    pub agg: Option<String>,
    /// Threshold and rate of change: `>`, `>=`, `<` or `<=`.
    #[serde(default)]
    pub op: Option<String>,
    /// Threshold: trigger value.
    #[serde(default)]
    pub threshold: Option<f64>,
    /// Threshold: clear value.
    #[serde(default)]
    pub clear_threshold: Option<f64>,
    /// Threshold, rate of change, anomaly: window.
    #[serde(default)]
    pub window: Option<String>,
    /// Threshold: how long the condition must hold (`for` in JSON).
    #[serde(default, rename = "for")]
    pub for_: Option<String>,
    /// Rate of change: trigger rate per minute.
    #[serde(default)]
    pub rate_per_min: Option<f64>,
    /// Rate of change: clear rate per minute.
    #[serde(default)]
    pub clear_rate_per_min: Option<f64>,
    /// No data: the silence that fires.
    #[serde(default)]
    pub timeout: Option<String>,
    /// Anomaly: the baseline.
    #[serde(default)]
    pub baseline: Option<String>,
    /// Anomaly: trigger distance in standard deviations.
    #[serde(default)]
    pub z: Option<f64>,
    /// Anomaly: clear distance in standard deviations.
    #[serde(default)]
    pub clear_z: Option<f64>,
    /// `info`, `warning` or `critical`.
    #[serde(default)]
    pub severity: Option<String>,
    /// Whether the rule is evaluated (default true).
    #[serde(default)]
    pub enabled: Option<bool>,
}

impl RuleDraft {
    /// Empties every kind-specific field (`agg` … `clear_z`): for a PATCH
    /// that changes a rule's kind, before the new kind's fields are set.
    pub fn clear_kind_fields(&mut self) {
        self.agg = None;
        self.op = None;
        self.threshold = None;
        self.clear_threshold = None;
        self.window = None;
        self.for_ = None;
        self.rate_per_min = None;
        self.clear_rate_per_min = None;
        self.timeout = None;
        self.baseline = None;
        self.z = None;
        self.clear_z = None;
    }

    /// The kind-specific fields that are set, as named in JSON.
    fn kind_fields_set(&self) -> impl Iterator<Item = &'static str> {
        [
            ("agg", self.agg.is_some()),
            ("op", self.op.is_some()),
            ("threshold", self.threshold.is_some()),
            ("clear_threshold", self.clear_threshold.is_some()),
            ("window", self.window.is_some()),
            ("for", self.for_.is_some()),
            ("rate_per_min", self.rate_per_min.is_some()),
            ("clear_rate_per_min", self.clear_rate_per_min.is_some()),
            ("timeout", self.timeout.is_some()),
            ("baseline", self.baseline.is_some()),
            ("z", self.z.is_some()),
            ("clear_z", self.clear_z.is_some()),
        ]
        .into_iter()
        .filter_map(|(field, set)| set.then_some(field))
    }

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

impl From<&AlertRule> for RuleDraft {
    /// The stored rule as a draft, to merge a PATCH onto.
    fn from(rule: &AlertRule) -> Self {
        let text = |duration: Duration| Some(humantime::format_duration(duration).to_string());
        let mut draft = RuleDraft {
            name: Some(rule.name.clone()),
            kind: Some(rule.kind.name().to_owned()),
            site: rule.selector.site.as_ref().map(ToString::to_string),
            sensor: rule.selector.sensor.as_ref().map(ToString::to_string),
            sensor_type: rule.selector.sensor_type.as_ref().map(ToString::to_string),
            severity: Some(rule.severity.as_str().to_owned()),
            enabled: Some(rule.enabled),
            ..RuleDraft::default()
        };
        match rule.kind {
            RuleKind::Threshold {
                agg,
                op,
                threshold,
                clear_threshold,
                window,
                for_,
            } => {
                draft.agg = Some(agg.as_str().to_owned());
                draft.op = Some(op.as_str().to_owned());
                draft.threshold = Some(threshold);
                draft.clear_threshold = Some(clear_threshold);
                draft.window = text(window);
                draft.for_ = text(for_);
            }
            RuleKind::RateOfChange {
                op,
                rate_per_min,
                clear_rate_per_min,
                window,
            } => {
                draft.op = Some(op.as_str().to_owned());
                draft.rate_per_min = Some(rate_per_min);
                draft.clear_rate_per_min = Some(clear_rate_per_min);
                draft.window = text(window);
            }
            RuleKind::NoData { timeout } => draft.timeout = text(timeout),
            RuleKind::Anomaly {
                window,
                baseline,
                z,
                clear_z,
            } => {
                draft.window = text(window);
                draft.baseline = text(baseline);
                draft.z = Some(z);
                draft.clear_z = Some(clear_z);
            }
        }
        draft
    }
}

/// Durations as humantime text in JSON: `"1m 30s"` out, anything
/// [`parse_duration`] reads in.
mod duration_text {
    use super::*;

    pub(super) fn serialize<S: Serializer>(
        duration: &Duration,
        serializer: S,
    ) -> Result<S::Ok, S::Error> {
        serializer.collect_str(&humantime::format_duration(*duration))
    }

    pub(super) fn deserialize<'de, D: Deserializer<'de>>(
        deserializer: D,
    ) -> Result<Duration, D::Error> {
        let text = String::deserialize(deserializer)?;
        parse_duration(&text).map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn threshold(op: Op, threshold: f64, clear_threshold: f64) -> RuleKind {
        RuleKind::Threshold {
            agg: Agg::Mean,
            op,
            threshold,
            clear_threshold,
            window: Duration::from_secs(60),
            for_: Duration::from_secs(30),
        }
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
        let error = NewAlertRule::new("x", RuleSelector::default(), kind, Severity::Info, true)
            .unwrap_err();
        assert_eq!(error.0, "selector");
        let error = NewAlertRule::new("  ", selector(), kind, Severity::Info, true).unwrap_err();
        assert_eq!(error.0, "name");
        let rule = NewAlertRule::new(" High ", selector(), kind, Severity::Info, true).unwrap();
        assert_eq!(rule.name(), "High");
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
                agg: Agg::Mean,
                op: Op::Gt,
                threshold: 12.5,
                clear_threshold: 12.0,
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

        let mut no_data = draft;
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
    }
}
