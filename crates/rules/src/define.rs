//! `rule_model!`: the rule's types generated from one table of its fields
//! and kinds (invoked once, in `model.rs`). From it come [`RuleKind`] (one
//! struct variant per kind), [`RuleDraft`] (every field optional, as sent),
//! [`NewAlertRule`] and [`AlertRule`] (the settings every rule has), their
//! JSON, the field lists and the conversions to and from storage's
//! [`Value`]s; so a new field or kind is one line of the table (and its
//! column).
//!
//! [`RuleKind`]: crate::RuleKind
//! [`RuleDraft`]: crate::RuleDraft
//! [`NewAlertRule`]: crate::NewAlertRule
//! [`AlertRule`]: crate::AlertRule
//! [`Value`]: crate::Value

macro_rules! rule_model {
    (@json $field:ident $json:literal) => { $json };
    (@json $field:ident) => { stringify!($field) };
    (@default $default:expr) => { Some($default) };
    (@default) => { None };
    (@optional $default:expr) => { true };
    (@optional) => { false };
    (
        settings {
            $( $(#[$smeta:meta])* $setting:ident: $sty:ty $(= $sdefault:expr)?, )*
        }
        fields {
            $( $(#[$fmeta:meta])* $field:ident $(as $fjson:literal)?: $fty:ty $(= $fdefault:expr)?, )*
        }
        kinds {
            $(
                $(#[$kmeta:meta])*
                $kind:ident = $kname:literal {
                    $( $(#[$kfmeta:meta])* $kfield:ident, )*
                }
            )*
        }
    ) => {
        /// Each field's type, by the field's name.
        #[allow(non_camel_case_types)]
        mod field_type {
            use super::*;
            $( pub(crate) type $setting = $sty; )*
            $( pub(crate) type $field = $fty; )*
        }

        /// Each field's name in JSON.
        #[allow(non_upper_case_globals)]
        mod json {
            $( pub(crate) const $setting: &str = $crate::define::rule_model!(@json $setting); )*
            $( pub(crate) const $field: &str = $crate::define::rule_model!(@json $field $($fjson)?); )*
        }

        /// Each field's value when a draft leaves it out, if it may.
        mod default {
            use super::*;
            $(
                pub(crate) fn $setting() -> Option<field_type::$setting> {
                    $crate::define::rule_model!(@default $($sdefault)?)
                }
            )*
            $(
                pub(crate) fn $field() -> Option<field_type::$field> {
                    $crate::define::rule_model!(@default $($fdefault)?)
                }
            )*
        }

        /// The settings every rule has, besides its name, selector and kind.
        pub const SETTINGS: &[FieldSpec] = &[
            $( FieldSpec {
                name: json::$setting,
                shape: <$sty as Field>::SHAPE,
                optional: $crate::define::rule_model!(@optional $($sdefault)?),
                absent: <$sty as Field>::ABSENT,
            }, )*
        ];

        /// Every kind's fields (each once, whichever kinds read it).
        pub const KIND_FIELDS: &[FieldSpec] = &[
            $( FieldSpec {
                name: json::$field,
                shape: <$fty as Field>::SHAPE,
                optional: $crate::define::rule_model!(@optional $($fdefault)?),
                absent: <$fty as Field>::ABSENT,
            }, )*
        ];

        /// How a rule fires and clears. Every kind has hysteresis or a
        /// timeout, so a value hovering at the trigger does not make the
        /// alert flap.
        #[derive(Debug, Clone, PartialEq)]
        pub enum RuleKind {
            $(
                $(#[$kmeta])*
                $kind {
                    $( $(#[$kfmeta])* $kfield: field_type::$kfield, )*
                },
            )*
        }

        impl RuleKind {
            /// Every kind's name, as `kind` reads in JSON and in the database.
            pub const NAMES: [&'static str; <[&str]>::len(&[$($kname),*])] = [$($kname),*];

            /// The kind's name.
            pub fn name(&self) -> &'static str {
                match self {
                    $( RuleKind::$kind { .. } => $kname, )*
                }
            }

            /// The fields a kind reads, as named in JSON; `None` for an
            /// unknown kind.
            pub fn fields_of(name: &str) -> Option<&'static [&'static str]> {
                match name {
                    $( $kname => Some(&[$(json::$kfield),*]), )*
                    _ => None,
                }
            }

            /// The kind's values, by field name (for storage); a field
            /// without a value ([`FieldSpec::absent`]) is left out.
            pub fn values(&self) -> Vec<(&'static str, Value)> {
                let values = match self {
                    $(
                        RuleKind::$kind { $($kfield),* } => {
                            vec![$( (json::$kfield, Field::to_value($kfield)) ),*]
                        }
                    )*
                };
                values
                    .into_iter()
                    .filter_map(|(field, value)| value.map(|value| (field, value)))
                    .collect()
            }

            /// A kind from stored values by field name (not validated: what
            /// was stored was); the error names the field.
            pub fn from_values(name: &str, values: &Values) -> Result<Self, FieldError> {
                match name {
                    $(
                        $kname => Ok(RuleKind::$kind {
                            $( $kfield: stored(json::$kfield, values)?, )*
                        }),
                    )*
                    other => Err(("kind", format!("kind {other:?} is unknown"))),
                }
            }

            /// A kind from a draft: fields of other kinds are refused, each
            /// of its own is required unless it has a default.
            fn from_draft(name: &str, draft: &RuleDraft) -> Result<Self, FieldError> {
                match name {
                    $(
                        $kname => {
                            draft.refuse_other_fields(name, &[$(json::$kfield),*])?;
                            Ok(RuleKind::$kind {
                                $( $kfield: drafted(
                                    json::$kfield,
                                    name,
                                    draft.$kfield.as_ref(),
                                    default::$kfield(),
                                )?, )*
                            })
                        }
                    )*
                    other => Err((
                        "kind",
                        format!("kind {other:?} is unknown: use {}", one_of(&Self::NAMES)),
                    )),
                }
            }

            /// Writes the kind's fields into `draft`.
            fn fill(&self, draft: &mut RuleDraft) {
                match self {
                    $(
                        RuleKind::$kind { $($kfield),* } => {
                            $( draft.$kfield = Field::to_draft($kfield); )*
                        }
                    )*
                }
            }
        }

        impl Serialize for RuleKind {
            /// `kind` and the kind's own fields, as flat JSON.
            fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
                let mut map = serializer.serialize_map(None)?;
                map.serialize_entry("kind", self.name())?;
                for (field, value) in self.values() {
                    map.serialize_entry(field, &value)?;
                }
                map.end()
            }
        }

        impl<'de> Deserialize<'de> for RuleKind {
            fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
                let draft = RuleDraft::deserialize(deserializer)?;
                let name = draft
                    .kind
                    .as_deref()
                    .ok_or_else(|| serde::de::Error::missing_field("kind"))?;
                RuleKind::from_draft(name, &draft)
                    .map_err(|(_, message)| serde::de::Error::custom(message))
            }
        }

        /// A rule as written in JSON, every field optional and not yet
        /// validated: what an API body, or a PATCH merged onto a stored
        /// rule (`RuleDraft::from(&rule)`), gives for
        /// [`NewAlertRule::parse`]. Durations are humantime text (`30s`,
        /// `5m`, `24h`).
        #[derive(Debug, Clone, Default, PartialEq)]
        pub struct RuleDraft {
            /// Display name.
            pub name: Option<String>,
            /// The kind's name ([`RuleKind::NAMES`]).
            pub kind: Option<String>,
            /// Site slug of the selector.
            pub site: Option<String>,
            /// Sensor key of the selector.
            pub sensor: Option<String>,
            /// Sensor type of the selector.
            pub sensor_type: Option<String>,
            $( $(#[$fmeta])* pub $field: Option<<$fty as Field>::Draft>, )*
            $( $(#[$smeta])* pub $setting: Option<<$sty as Field>::Draft>, )*
        }

        impl RuleDraft {
            /// Every field a draft may hold, as named in JSON.
            pub const FIELDS: &[&str] = &[
                "name", "kind", "site", "sensor", "sensor_type",
                $( json::$field, )*
                $( json::$setting, )*
            ];

            /// Sets the field named `field` from `value` (JSON `null`
            /// empties it); `Ok(false)` for a field a rule does not have.
            /// A value of the wrong type is the deserializer's error.
            pub fn set<'de, D: Deserializer<'de>>(
                &mut self,
                field: &str,
                value: D,
            ) -> Result<bool, D::Error> {
                match field {
                    "name" => self.name = Deserialize::deserialize(value)?,
                    "kind" => self.kind = Deserialize::deserialize(value)?,
                    "site" => self.site = Deserialize::deserialize(value)?,
                    "sensor" => self.sensor = Deserialize::deserialize(value)?,
                    "sensor_type" => self.sensor_type = Deserialize::deserialize(value)?,
                    $( json::$field => self.$field = Deserialize::deserialize(value)?, )*
                    $( json::$setting => self.$setting = Deserialize::deserialize(value)?, )*
                    _ => return Ok(false),
                }
                Ok(true)
            }

            /// Empties every kind-specific field: for a PATCH that changes
            /// a rule's kind, before the new kind's fields are set.
            pub fn clear_kind_fields(&mut self) {
                $( self.$field = None; )*
            }

            /// The kind-specific fields that are set, as named in JSON.
            fn kind_fields_set(&self) -> impl Iterator<Item = &'static str> {
                [$( (json::$field, self.$field.is_some()) ),*]
                    .into_iter()
                    .filter_map(|(field, set)| set.then_some(field))
            }
        }

        impl From<&AlertRule> for RuleDraft {
            /// The stored rule as a draft, to merge a PATCH onto.
            fn from(rule: &AlertRule) -> Self {
                let mut draft = RuleDraft {
                    name: Some(rule.name.clone()),
                    kind: Some(rule.kind.name().to_owned()),
                    site: rule.selector.site.as_ref().map(ToString::to_string),
                    sensor: rule.selector.sensor.as_ref().map(ToString::to_string),
                    sensor_type: rule.selector.sensor_type.as_ref().map(ToString::to_string),
                    $( $setting: Field::to_draft(&rule.$setting), )*
                    ..RuleDraft::default()
                };
                rule.kind.fill(&mut draft);
                draft
            }
        }

        /// An alert rule as stored.
        ///
        /// Serializes to the flat JSON of DESIGN.md: `id`, `name`, `site`,
        /// `sensor`, `sensor_type` (null when not set), `kind` and the
        /// kind's own fields (durations as humantime text such as `1m
        /// 30s`), the settings (`severity`, `enabled`), `version`,
        /// `created_at`, `updated_at`.
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
            $(
                $(#[$smeta])*
                #[serde(with = "crate::field::wire")]
                pub $setting: $sty,
            )*
            /// Incremented by every change (optimistic locking).
            pub version: i64,
            /// When it was created.
            pub created_at: DateTime<Utc>,
            /// When it last changed.
            pub updated_at: DateTime<Utc>,
        }

        impl AlertRule {
            /// A rule as storage holds it: its record, name and selector,
            /// its kind's name, and the values of its kind's fields and of
            /// its settings by name. Not validated (what was stored was);
            /// the error names the field.
            pub fn from_stored(
                record: Record,
                name: String,
                selector: RuleSelector,
                kind: &str,
                values: &Values,
            ) -> Result<Self, FieldError> {
                Ok(Self {
                    id: record.id,
                    name,
                    selector,
                    kind: RuleKind::from_values(kind, values)?,
                    $( $setting: stored(json::$setting, values)?, )*
                    version: record.version,
                    created_at: record.created_at,
                    updated_at: record.updated_at,
                })
            }
        }

        /// A rule definition to create, or to replace a rule's definition
        /// with; only obtained through a validating constructor, so it
        /// always holds.
        #[derive(Debug, Clone, PartialEq)]
        pub struct NewAlertRule {
            name: String,
            selector: RuleSelector,
            kind: RuleKind,
            $( $setting: $sty, )*
        }

        impl NewAlertRule {
            /// Validates a rule: a name of 1 to 200 characters (trimmed), a
            /// selector with at least one part (field `selector`), and the
            /// kind's values ([`RuleKind::validate`]). The error names the
            /// field.
            pub fn new(
                name: &str,
                selector: RuleSelector,
                kind: RuleKind,
                $( $setting: $sty, )*
            ) -> Result<Self, FieldError> {
                let name = checked_name(name)?;
                selector.check()?;
                let kind = kind.with_defaults();
                kind.validate()?;
                $( Field::check_setting(&$setting, json::$setting)?; )*
                Ok(Self {
                    name: name.to_owned(),
                    selector,
                    kind,
                    $( $setting, )*
                })
            }

            /// Validates a rule written as in JSON (see [`RuleDraft`]):
            /// every field its kind needs is required (`for` defaults to
            /// `0s`, `enabled` to true), every field of another kind is
            /// refused. The error names the field as it reads in JSON.
            pub fn parse(draft: &RuleDraft) -> Result<Self, FieldError> {
                let name = required("name", draft.name.as_deref())?;
                let kind_name = draft.kind.as_deref().ok_or_else(|| {
                    (
                        "kind",
                        format!("kind is required: {}", one_of(&RuleKind::NAMES)),
                    )
                })?;
                let selector = RuleSelector::parse(draft)?;
                let kind = RuleKind::from_draft(kind_name, draft)?;
                $(
                    let $setting = drafted(
                        json::$setting,
                        kind_name,
                        draft.$setting.as_ref(),
                        default::$setting(),
                    )?;
                )*
                Self::new(name, selector, kind, $($setting),*)
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

            $(
                $(#[$smeta])*
                pub fn $setting(&self) -> $sty {
                    self.$setting
                }
            )*

            /// The settings' values, by field name (for storage).
            pub fn setting_values(&self) -> Vec<(&'static str, Value)> {
                [$( (json::$setting, Field::to_value(&self.$setting)) ),*]
                    .into_iter()
                    .filter_map(|(field, value)| value.map(|value| (field, value)))
                    .collect()
            }

            /// The rule as stored under `record`.
            pub fn into_rule(self, record: Record) -> AlertRule {
                AlertRule {
                    id: record.id,
                    name: self.name,
                    selector: self.selector,
                    kind: self.kind,
                    $( $setting: self.$setting, )*
                    version: record.version,
                    created_at: record.created_at,
                    updated_at: record.updated_at,
                }
            }
        }
    };
}

pub(crate) use rule_model;
