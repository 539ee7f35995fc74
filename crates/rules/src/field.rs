//! What every rule field is made of: its value in storage-neutral form
//! ([`Value`]), its shape for documentation ([`Shape`]), and how it is read
//! from a draft and written back ([`Field`]).

use std::time::Duration;

use serde::de::DeserializeOwned;
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use stoker_domain::{StateName, parse_duration};

/// A validation error: the field at fault (as named in JSON) and what is
/// wrong with it.
pub type FieldError = (&'static str, String);

/// The longest window, baseline, `for` or timeout a rule may have: ten
/// years keeps every derived instant well inside what nanosecond
/// timestamps hold.
pub const MAX_DURATION: Duration = Duration::from_secs(3650 * 24 * 3600);

/// One field's value, as storage holds it.
#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    /// One of a fixed set of names (`mean`, `>`, `warning`).
    Name(String),
    /// A finite number.
    Number(f64),
    /// A span of whole milliseconds.
    Duration(Duration),
    /// Yes or no.
    Flag(bool),
    /// A state's name (a threshold compared with a state sensor).
    State(StateName),
    /// Free text for people (a rule's rationalization).
    Text(String),
    /// A condition on another sensor (`suppress_when`).
    Condition(crate::SuppressWhen),
}

impl Serialize for Value {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        match self {
            Value::Name(name) => serializer.serialize_str(name),
            Value::Number(number) => serializer.serialize_f64(*number),
            Value::Duration(duration) => {
                serializer.collect_str(&humantime::format_duration(*duration))
            }
            Value::Flag(flag) => serializer.serialize_bool(*flag),
            Value::State(name) => serializer.serialize_str(name.as_str()),
            Value::Text(text) => serializer.serialize_str(text),
            Value::Condition(condition) => condition.serialize(serializer),
        }
    }
}

/// What kind of value a field holds, for documentation and storage.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Shape {
    /// One of these names.
    Choice(&'static [&'static str]),
    /// A finite number.
    Number,
    /// A duration as humantime text (`30s`, `5m`, `1h 30m`), at most
    /// [`MAX_DURATION`], in whole milliseconds.
    Duration,
    /// `true` or `false`.
    Flag,
    /// What a threshold rule compares with ([`Threshold`]): a finite
    /// number, `true`/`false`, or a state's name.
    Threshold,
    /// Text for people of 1 to this many characters once trimmed, without
    /// control characters other than line breaks and tabs ([`Text`]).
    Text(usize),
    /// A condition on another sensor of the site ([`crate::SuppressWhen`]):
    /// `{"sensor", "op", "value"}`.
    Condition,
}

/// A field of a rule as the model describes it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FieldSpec {
    /// Its name in JSON (and, for storage, its column's stem).
    pub name: &'static str,
    /// What it holds.
    pub shape: Shape,
    /// Whether a draft may leave it out (it then takes its default).
    pub optional: bool,
    /// Whether a rule of a kind that reads it may still hold no value
    /// (`clear_threshold` of an `==` rule): such a field may be missing
    /// from a stored rule's JSON and its column may be NULL.
    pub absent: bool,
}

/// A type a rule field can hold: how a draft (the JSON as sent) holds it,
/// and how it converts to and from a [`Value`].
pub trait Field: Clone + Sized {
    /// The value in a draft, before validation (a name or a duration is
    /// text there).
    type Draft: Clone + std::fmt::Debug + PartialEq + DeserializeOwned;
    /// What kind of value it is.
    const SHAPE: Shape;
    /// Whether it may hold no value (an `Option`): see [`FieldSpec::absent`].
    const ABSENT: bool = false;

    /// As storage holds it; `None` for no value.
    fn to_value(&self) -> Option<Value>;
    /// From storage (`None`: the field has no stored value); the error
    /// names `field`.
    fn from_value(field: &'static str, value: Option<Value>) -> Result<Self, FieldError>;
    /// As a draft holds it; `None` for no value.
    fn to_draft(&self) -> Option<Self::Draft>;
    /// From a draft; the error names `field`.
    fn from_draft(field: &'static str, draft: &Self::Draft) -> Result<Self, FieldError>;
    /// The error for a draft without it, for a rule of kind `kind`.
    fn missing(field: &'static str, _kind: &str) -> FieldError {
        (field, format!("{field} is required"))
    }
    /// Checks a setting's value (kinds check their fields in
    /// [`crate::RuleKind::validate`]): a duration setting is a period,
    /// longer than zero, in whole milliseconds.
    fn check_setting(&self, _field: &'static str) -> Result<(), FieldError> {
        Ok(())
    }
}

/// A field that may hold no value: a draft leaves it out (or sends
/// `null`), storage holds NULL. Whether it must be set is the kind's
/// validation ([`crate::RuleKind::validate`]).
impl<T: Field> Field for Option<T> {
    type Draft = T::Draft;
    const SHAPE: Shape = T::SHAPE;
    const ABSENT: bool = true;

    fn to_value(&self) -> Option<Value> {
        self.as_ref().and_then(Field::to_value)
    }
    fn from_value(field: &'static str, value: Option<Value>) -> Result<Self, FieldError> {
        match value {
            None => Ok(None),
            Some(value) => T::from_value(field, Some(value)).map(Some),
        }
    }
    fn to_draft(&self) -> Option<T::Draft> {
        self.as_ref().and_then(Field::to_draft)
    }
    fn from_draft(field: &'static str, draft: &T::Draft) -> Result<Self, FieldError> {
        T::from_draft(field, draft).map(Some)
    }
    fn check_setting(&self, field: &'static str) -> Result<(), FieldError> {
        self.as_ref()
            .map_or(Ok(()), |value| value.check_setting(field))
    }
}

fn wrong_type(field: &'static str, value: Option<Value>) -> FieldError {
    match value {
        None => (field, format!("{field} is missing")),
        Some(_) => (field, format!("{field} holds a value of another type")),
    }
}

impl Field for f64 {
    type Draft = f64;
    const SHAPE: Shape = Shape::Number;

    fn to_value(&self) -> Option<Value> {
        Some(Value::Number(*self))
    }
    fn from_value(field: &'static str, value: Option<Value>) -> Result<Self, FieldError> {
        match value {
            Some(Value::Number(number)) => Ok(number),
            other => Err(wrong_type(field, other)),
        }
    }
    fn to_draft(&self) -> Option<f64> {
        Some(*self)
    }
    fn from_draft(_field: &'static str, draft: &f64) -> Result<Self, FieldError> {
        Ok(*draft)
    }
    fn missing(field: &'static str, kind: &str) -> FieldError {
        (field, format!("{field} is required for kind {kind}"))
    }
}

impl Field for bool {
    type Draft = bool;
    const SHAPE: Shape = Shape::Flag;

    fn to_value(&self) -> Option<Value> {
        Some(Value::Flag(*self))
    }
    fn from_value(field: &'static str, value: Option<Value>) -> Result<Self, FieldError> {
        match value {
            Some(Value::Flag(flag)) => Ok(flag),
            other => Err(wrong_type(field, other)),
        }
    }
    fn to_draft(&self) -> Option<bool> {
        Some(*self)
    }
    fn from_draft(_field: &'static str, draft: &bool) -> Result<Self, FieldError> {
        Ok(*draft)
    }
}

impl Field for Duration {
    type Draft = String;
    const SHAPE: Shape = Shape::Duration;

    fn to_value(&self) -> Option<Value> {
        Some(Value::Duration(*self))
    }
    fn from_value(field: &'static str, value: Option<Value>) -> Result<Self, FieldError> {
        match value {
            Some(Value::Duration(duration)) => Ok(duration),
            other => Err(wrong_type(field, other)),
        }
    }
    fn to_draft(&self) -> Option<String> {
        Some(humantime::format_duration(*self).to_string())
    }
    fn from_draft(field: &'static str, draft: &String) -> Result<Self, FieldError> {
        parse_duration(draft).map_err(|error| (field, error.to_string()))
    }
    fn check_setting(&self, field: &'static str) -> Result<(), FieldError> {
        if millis(field, *self)? == 0 {
            return Err((field, format!("{field} must be longer than 0")));
        }
        Ok(())
    }
}

/// Text for people of 1 to `MAX` characters once trimmed (a rule's
/// `cause`, `consequence`, `operator_action`): no control characters but
/// line breaks and tabs.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Text<const MAX: usize>(String);

impl<const MAX: usize> Text<MAX> {
    /// Checks `text` (trimmed); the error names `field`.
    pub fn parse(field: &'static str, text: &str) -> Result<Self, FieldError> {
        let text = text.trim();
        if text.is_empty() {
            return Err((
                field,
                format!("{field} must not be empty: leave it out or send null for none"),
            ));
        }
        let chars = text.chars().count();
        if chars > MAX {
            return Err((
                field,
                format!("{field} must be at most {MAX} characters, not {chars}"),
            ));
        }
        if text
            .chars()
            .any(|c| c.is_control() && c != '\n' && c != '\r' && c != '\t')
        {
            return Err((
                field,
                format!("{field} must not hold control characters other than line breaks and tabs"),
            ));
        }
        Ok(Self(text.to_owned()))
    }

    /// The text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl<const MAX: usize> Field for Text<MAX> {
    type Draft = String;
    const SHAPE: Shape = Shape::Text(MAX);

    fn to_value(&self) -> Option<Value> {
        Some(Value::Text(self.0.clone()))
    }
    fn from_value(field: &'static str, value: Option<Value>) -> Result<Self, FieldError> {
        match value {
            Some(Value::Text(text)) => Ok(Self(text)),
            other => Err(wrong_type(field, other)),
        }
    }
    fn to_draft(&self) -> Option<String> {
        Some(self.0.clone())
    }
    fn from_draft(field: &'static str, draft: &String) -> Result<Self, FieldError> {
        Self::parse(field, draft)
    }
}

/// A duration as whole milliseconds (how storage holds it), at most
/// [`MAX_DURATION`]; the error names `field`.
pub fn millis(field: &'static str, duration: Duration) -> Result<i64, FieldError> {
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

/// `a, b or c`: the names a choice accepts, for messages.
pub(crate) fn one_of(names: &[&str]) -> String {
    match names {
        [] => String::new(),
        [only] => (*only).to_owned(),
        [init @ .., last] => format!("{} or {last}", init.join(", ")),
    }
}

/// Serde for a rule setting of any [`Field`] type: written as its
/// [`Value`], read as its draft.
pub(crate) mod wire {
    use super::*;

    pub(crate) fn serialize<T: Field, S: Serializer>(
        value: &T,
        serializer: S,
    ) -> Result<S::Ok, S::Error> {
        value.to_value().serialize(serializer)
    }

    /// `null` is no value: an optional setting's none.
    pub(crate) fn deserialize<'de, T: Field, D: Deserializer<'de>>(
        deserializer: D,
    ) -> Result<T, D::Error> {
        match Option::<T::Draft>::deserialize(deserializer)? {
            Some(draft) => T::from_draft("value", &draft),
            None => T::from_value("value", None),
        }
        .map_err(|(_, message)| serde::de::Error::custom(message))
    }
}

/// Defines an enum of names written once: the variants with their names,
/// `ALL`, `NAMES`, `as_str`, `parse` (its error names the field `$field`
/// and lists the names), serde as the name, and [`Field`].
macro_rules! names {
    (
        $(#[$meta:meta])*
        pub enum $name:ident as $field:literal $(: $($derive:ident),+)? {
            $( $(#[$vmeta:meta])* $variant:ident = $text:literal, )+
        }
    ) => {
        $(#[$meta])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash $($(, $derive)+)?)]
        pub enum $name {
            $( $(#[$vmeta])* $variant, )+
        }

        impl $name {
            /// Every value, in documentation order.
            pub const ALL: [$name; <[&str]>::len(&[$($text),+])] = [$($name::$variant),+];
            /// Every name, in documentation order.
            pub const NAMES: [&'static str; <[&str]>::len(&[$($text),+])] = [$($text),+];

            /// The name used in JSON and in the database.
            pub fn as_str(self) -> &'static str {
                match self {
                    $( $name::$variant => $text, )+
                }
            }

            /// Parses a name written by `as_str`; the error names the field.
            pub fn parse(text: &str) -> Result<Self, $crate::FieldError> {
                Self::ALL
                    .into_iter()
                    .find(|value| value.as_str() == text)
                    .ok_or_else(|| {
                        (
                            $field,
                            format!(
                                "{} {text:?} is unknown: use {}",
                                $field,
                                $crate::field::one_of(&Self::NAMES)
                            ),
                        )
                    })
            }
        }

        impl serde::Serialize for $name {
            fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
                serializer.serialize_str(self.as_str())
            }
        }

        impl<'de> serde::Deserialize<'de> for $name {
            fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
                let text = <String as serde::Deserialize>::deserialize(deserializer)?;
                Self::parse(&text)
                    .map_err(|_| serde::de::Error::unknown_variant(&text, &Self::NAMES))
            }
        }

        impl $crate::Field for $name {
            type Draft = String;
            const SHAPE: $crate::Shape = $crate::Shape::Choice(&Self::NAMES);

            fn to_value(&self) -> Option<$crate::Value> {
                Some($crate::Value::Name(self.as_str().to_owned()))
            }
            fn from_value(
                field: &'static str,
                value: Option<$crate::Value>,
            ) -> Result<Self, $crate::FieldError> {
                match value {
                    Some($crate::Value::Name(text)) => Self::parse(&text),
                    None => Err((field, format!("{field} is missing"))),
                    Some(_) => Err((field, format!("{field} must be a name"))),
                }
            }
            fn to_draft(&self) -> Option<String> {
                Some(self.as_str().to_owned())
            }
            fn from_draft(_field: &'static str, draft: &String) -> Result<Self, $crate::FieldError> {
                Self::parse(draft)
            }
        }
    };
}

pub(crate) use names;
