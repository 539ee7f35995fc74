//! The alert rule model, the one place that knows what a rule is: its
//! kinds and their fields, its settings, its validation, its JSON shape
//! (DESIGN.md) and its draft (every field optional, as an API body sends
//! it). No I/O: storage maps the model to columns through [`Value`]s, the
//! API merges bodies into a [`RuleDraft`], the engine judges a
//! [`RuleKind`], and the OpenAPI schema is built from [`KIND_FIELDS`],
//! [`SETTINGS`] and [`RuleKind::fields_of`].
//!
//! Layout: `field` (the [`Field`] trait, [`Value`], [`Shape`], the
//! `names!` enums' macro), `threshold` (how rules compare: [`Agg`], [`Op`],
//! a threshold rule's typed trigger value [`Threshold`], and the checks of
//! trigger and clear values), `define` (`rule_model!`, the generator of the
//! rule's types from one table) and `model` (that table, the selector and
//! the validation).

#![warn(missing_docs)]

mod define;
mod field;
mod model;
mod suppress;
mod threshold;

pub use field::{Field, FieldError, FieldSpec, MAX_DURATION, Shape, Text, Value, millis};
pub use model::{
    AlertRule, DEFAULT_MAX_SHELVE, KIND_FIELDS, MAX_NAME_CHARS, MAX_RATIONALE_CHARS,
    MAX_SHELVE_LIMIT, NewAlertRule, Rationale, Record, RuleDraft, RuleKind, RuleSelector, SETTINGS,
    Severity, Values,
};
pub use suppress::SuppressWhen;
pub use threshold::{Agg, Op, Threshold};

/// The spec of a kind's field or of a setting, by its name in JSON.
pub fn field_spec(name: &str) -> Option<&'static FieldSpec> {
    KIND_FIELDS
        .iter()
        .chain(SETTINGS)
        .find(|spec| spec.name == name)
}
