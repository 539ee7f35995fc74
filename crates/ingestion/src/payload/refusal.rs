//! What a parse yields ([`RawReading`]) and why it refuses
//! ([`Refusal`]), with the side slot the visitors leave a refusal in and
//! the words refusals are written with.

use std::borrow::Cow;
use std::cell::RefCell;
use std::fmt;

use serde::de;
use stoker_domain::EpochMillis;

use crate::Reason;

/// A reading as the payload states it, not yet checked against the registry.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct RawReading<'a> {
    /// The sensor key as written (validated later).
    pub sensor: Cow<'a, str>,
    /// The value, or why it is not one.
    pub value: Result<RawValue<'a>, Refusal>,
    /// The timestamp, when the payload gives one.
    pub timestamp: Option<EpochMillis>,
}

/// A reading's value as the payload states it, before the registry says
/// which kind it must be: a finite number, a line-protocol integer, a
/// boolean or a string (borrowed from the payload when it has no escapes,
/// so a number costs nothing).
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum RawValue<'a> {
    Number(f64),
    /// A line-protocol integer or unsigned field (`1i`, `1u`): a number
    /// for a numeric sensor, and for a boolean one `true` (1) or `false`
    /// (0), as Modbus coils arrive through Telegraf. JSON has no integers
    /// of its own: its numbers are [`RawValue::Number`].
    Integer(i128),
    Boolean(bool),
    Text(Cow<'a, str>),
}

impl RawValue<'_> {
    /// What the value is, in words: `81.5`, `true`, `the string "hot"`.
    pub(crate) fn describe(&self) -> String {
        match self {
            RawValue::Number(number) => number.to_string(),
            RawValue::Integer(integer) => format!("the integer {integer}"),
            RawValue::Boolean(flag) => Kind::Bool(*flag).to_string(),
            RawValue::Text(text) => Kind::String(text).to_string(),
        }
    }
}

/// Why a message or one reading of it is refused, with a precise detail.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Refusal {
    pub reason: Reason,
    pub detail: String,
}

impl Refusal {
    pub(crate) fn new(reason: Reason, detail: impl Into<String>) -> Self {
        Self {
            reason,
            detail: detail.into(),
        }
    }
}

/// Where a visitor leaves the precise refusal before aborting the parse.
#[derive(Debug, Default)]
pub(crate) struct Slot(RefCell<Option<Refusal>>);

impl Slot {
    /// Leaves `refusal` (unless one is there already) and returns the
    /// error that aborts the parse.
    pub(super) fn refuse<E: de::Error>(&self, refusal: Refusal) -> E {
        let message = refusal.detail.clone();
        self.0.borrow_mut().get_or_insert(refusal);
        E::custom(message)
    }

    /// The refusal a visitor left, if any.
    pub(super) fn into_refusal(self) -> Option<Refusal> {
        self.0.into_inner()
    }
}

/// What a JSON value is, for messages.
pub(super) enum Kind<'a> {
    Null,
    Bool(bool),
    Text(String),
    String(&'a str),
    Array,
}

impl fmt::Display for Kind<'_> {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Kind::Null => formatter.write_str("null"),
            Kind::Bool(flag) => write!(formatter, "{flag}"),
            Kind::Text(text) => formatter.write_str(text),
            Kind::String(text) => write!(formatter, "the string {}", excerpt(&format!("{text:?}"))),
            Kind::Array => formatter.write_str("an array"),
        }
    }
}

pub(super) fn shape(detail: String) -> Refusal {
    Refusal::new(Reason::MalformedJson, detail)
}

pub(super) fn excerpt(text: &str) -> String {
    if text.chars().count() <= 40 {
        text.to_owned()
    } else {
        format!("{}…", text.chars().take(40).collect::<String>())
    }
}
