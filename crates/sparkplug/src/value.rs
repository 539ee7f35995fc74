//! Metric datatypes (specification "Data Types") and what a metric's value
//! becomes: every numeric type a number, Boolean a boolean, String and Text
//! a state name; the other datatypes are refused.

use std::fmt;

use crate::proto::payload::metric::Value;

/// A reading's value, typed by its metric's datatype.
#[derive(Debug, Clone, PartialEq)]
pub enum MetricValue {
    /// Int8 … UInt64, Float, Double.
    Number(f64),
    /// Boolean.
    Boolean(bool),
    /// String or Text: a state's name.
    State(String),
}

impl fmt::Display for MetricValue {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            MetricValue::Number(number) => write!(formatter, "{number}"),
            MetricValue::Boolean(flag) => write!(formatter, "{flag}"),
            MetricValue::State(name) => write!(formatter, "{name:?}"),
        }
    }
}

/// The Sparkplug datatype numbers Stoker reads.
pub mod datatype {
    /// Signed 8-bit integer, in `int_value`.
    pub const INT8: u32 = 1;
    /// Signed 16-bit integer, in `int_value`.
    pub const INT16: u32 = 2;
    /// Signed 32-bit integer, in `int_value`.
    pub const INT32: u32 = 3;
    /// Signed 64-bit integer, in `long_value`.
    pub const INT64: u32 = 4;
    /// Unsigned 8-bit integer, in `int_value`.
    pub const UINT8: u32 = 5;
    /// Unsigned 16-bit integer, in `int_value`.
    pub const UINT16: u32 = 6;
    /// Unsigned 32-bit integer, in `int_value`.
    pub const UINT32: u32 = 7;
    /// Unsigned 64-bit integer, in `long_value`.
    pub const UINT64: u32 = 8;
    /// 32-bit float, in `float_value`.
    pub const FLOAT: u32 = 9;
    /// 64-bit float, in `double_value`.
    pub const DOUBLE: u32 = 10;
    /// Boolean, in `boolean_value`.
    pub const BOOLEAN: u32 = 11;
    /// UTF-8 string, in `string_value`.
    pub const STRING: u32 = 12;
    /// Epoch milliseconds, in `long_value`.
    pub const DATETIME: u32 = 13;
    /// UTF-8 text, in `string_value`.
    pub const TEXT: u32 = 14;
}

const NAMES: [&str; 35] = [
    "Unknown",
    "Int8",
    "Int16",
    "Int32",
    "Int64",
    "UInt8",
    "UInt16",
    "UInt32",
    "UInt64",
    "Float",
    "Double",
    "Boolean",
    "String",
    "DateTime",
    "Text",
    "UUID",
    "DataSet",
    "Bytes",
    "File",
    "Template",
    "PropertySet",
    "PropertySetList",
    "Int8Array",
    "Int16Array",
    "Int32Array",
    "Int64Array",
    "UInt8Array",
    "UInt16Array",
    "UInt32Array",
    "UInt64Array",
    "FloatArray",
    "DoubleArray",
    "BooleanArray",
    "StringArray",
    "DateTimeArray",
];

/// The specification's name of a datatype number (`"Double"`), or
/// `"undefined"` for a number it does not define.
pub fn datatype_name(datatype: u32) -> &'static str {
    usize::try_from(datatype)
        .ok()
        .and_then(|index| NAMES.get(index))
        .copied()
        .unwrap_or("undefined")
}

/// The datatype number of a specification name (`"Double"` → 10), the
/// inverse of [`datatype_name`]; `None` for a name it does not define.
pub fn datatype_by_name(name: &str) -> Option<u32> {
    NAMES
        .iter()
        .position(|known| *known == name)
        .and_then(|index| u32::try_from(index).ok())
}

/// What Stoker makes of a datatype.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// Stored as a number.
    Numeric,
    /// Stored as a boolean.
    Boolean,
    /// Stored as a state name.
    State,
}

/// The kind of sensor a datatype feeds, or why Stoker does not store it.
pub fn kind_of(datatype: u32) -> Result<Kind, String> {
    use datatype::*;
    match datatype {
        INT8 | INT16 | INT32 | INT64 | UINT8 | UINT16 | UINT32 | UINT64 | FLOAT | DOUBLE => {
            Ok(Kind::Numeric)
        }
        BOOLEAN => Ok(Kind::Boolean),
        STRING | TEXT => Ok(Kind::State),
        DATETIME => Err("datatype DateTime (13) is a point in time, not a reading; Stoker stores numeric types, Boolean, String and Text".into()),
        0 => Err("datatype Unknown (0) says nothing of the value; Stoker stores numeric types, Boolean, String and Text".into()),
        other => Err(format!(
            "datatype {} ({other}) is not stored; Stoker stores numeric types, Boolean, String and Text",
            datatype_name(other)
        )),
    }
}

/// Why a value is refused: the words for an `invalid_value` refusal.
pub(crate) type ValueError = String;

fn value_field(value: &Value) -> &'static str {
    match value {
        Value::IntValue(_) => "int_value",
        Value::LongValue(_) => "long_value",
        Value::FloatValue(_) => "float_value",
        Value::DoubleValue(_) => "double_value",
        Value::BooleanValue(_) => "boolean_value",
        Value::StringValue(_) => "string_value",
        Value::BytesValue(_) => "bytes_value",
        Value::DatasetValue(_) => "dataset_value",
        Value::TemplateValue(_) => "template_value",
        Value::ExtensionValue(_) => "extension_value",
    }
}

/// A signed integer of `bits` bits, as the value fields carry it: either
/// the plain two's complement of that width (`0xFF` for an Int8 of -1, as
/// Tahu's Python client writes) or sign-extended to the field's width
/// (`0xFFFF_FFFF`, as its Java client writes). Anything else does not fit.
fn signed(raw: u64, field_bits: u32, bits: u32) -> Option<i64> {
    let width_mask = if bits == 64 {
        u64::MAX
    } else {
        (1u64 << bits) - 1
    };
    if raw <= width_mask {
        // Two's complement of `bits` bits.
        let shift = 64 - bits;
        return Some(((raw << shift) as i64) >> shift);
    }
    // Sign-extended to the field: the bits above `bits - 1` are all ones.
    let field_mask = if field_bits == 64 {
        u64::MAX
    } else {
        (1u64 << field_bits) - 1
    };
    let high = field_mask & !(width_mask >> 1);
    (raw & high == high && raw <= field_mask).then(|| {
        let shift = 64 - field_bits;
        ((raw << shift) as i64) >> shift
    })
}

/// The integer a value field carries, with the field's width in bits.
fn integer(value: &Value) -> Option<(u64, u32)> {
    match value {
        Value::IntValue(int) => Some((u64::from(*int), 32)),
        Value::LongValue(long) => Some((*long, 64)),
        _ => None,
    }
}

/// The value of a metric of `datatype`.
pub(crate) fn metric_value(
    datatype: u32,
    value: Option<&Value>,
) -> Result<MetricValue, ValueError> {
    use datatype::*;
    let name = datatype_name(datatype);
    let Some(value) = value else {
        return Err(format!("the {name} metric carries no value"));
    };
    let mismatch = || {
        format!(
            "a {name} metric carries its value in {}, which does not hold a {name}",
            value_field(value)
        )
    };
    match datatype {
        INT8 | INT16 | INT32 | INT64 => {
            let bits = match datatype {
                INT8 => 8,
                INT16 => 16,
                INT32 => 32,
                _ => 64,
            };
            let (raw, field_bits) = integer(value).ok_or_else(mismatch)?;
            let number = signed(raw, field_bits, bits)
                .ok_or_else(|| format!("{raw} in {} does not fit a {name}", value_field(value)))?;
            Ok(MetricValue::Number(number as f64))
        }
        UINT8 | UINT16 | UINT32 | UINT64 => {
            let max = match datatype {
                UINT8 => u64::from(u8::MAX),
                UINT16 => u64::from(u16::MAX),
                UINT32 => u64::from(u32::MAX),
                _ => u64::MAX,
            };
            let (raw, _) = integer(value).ok_or_else(mismatch)?;
            if raw > max {
                return Err(format!(
                    "{raw} in {} does not fit a {name}",
                    value_field(value)
                ));
            }
            Ok(MetricValue::Number(raw as f64))
        }
        FLOAT | DOUBLE => match value {
            Value::FloatValue(float) => Ok(MetricValue::Number(f64::from(*float))),
            Value::DoubleValue(double) => Ok(MetricValue::Number(*double)),
            _ => Err(mismatch()),
        },
        BOOLEAN => match value {
            Value::BooleanValue(flag) => Ok(MetricValue::Boolean(*flag)),
            _ => Err(mismatch()),
        },
        STRING | TEXT => match value {
            Value::StringValue(text) => Ok(MetricValue::State(text.clone())),
            _ => Err(mismatch()),
        },
        _ => Err(format!("datatype {name} ({datatype}) is not stored")),
    }
}

#[cfg(test)]
mod tests {
    use super::datatype::*;
    use super::*;

    #[test]
    fn datatype_names_read_back_to_their_numbers() {
        for number in 0..35 {
            assert_eq!(datatype_by_name(datatype_name(number)), Some(number));
        }
        assert_eq!(datatype_by_name("Double"), Some(DOUBLE));
        assert_eq!(datatype_by_name("double"), None);
        assert_eq!(datatype_by_name("undefined"), None);
    }

    fn number(datatype: u32, value: Value) -> f64 {
        match metric_value(datatype, Some(&value)) {
            Ok(MetricValue::Number(number)) => number,
            other => panic!("{other:?}"),
        }
    }

    fn refused(datatype: u32, value: Value) -> String {
        metric_value(datatype, Some(&value)).unwrap_err()
    }

    #[test]
    fn signed_integers_in_either_encoding() {
        assert_eq!(number(INT8, Value::IntValue(5)), 5.0);
        assert_eq!(number(INT8, Value::IntValue(0xFF)), -1.0);
        assert_eq!(number(INT8, Value::IntValue(0xFFFF_FFFF)), -1.0);
        assert_eq!(number(INT8, Value::IntValue(0x80)), -128.0);
        assert_eq!(number(INT8, Value::IntValue(0xFFFF_FF80)), -128.0);
        assert_eq!(number(INT16, Value::IntValue(0xFFFF)), -1.0);
        assert_eq!(number(INT16, Value::IntValue(0xFFFF_8000)), -32768.0);
        assert_eq!(number(INT32, Value::IntValue(0xFFFF_FFFE)), -2.0);
        assert_eq!(
            number(INT32, Value::IntValue(2_147_483_647)),
            2_147_483_647.0
        );
        assert_eq!(number(INT64, Value::LongValue(u64::MAX)), -1.0);
        assert_eq!(number(INT64, Value::LongValue(42)), 42.0);
        // A long field sign-extended to 64 bits is fine for a narrower type too.
        assert_eq!(number(INT16, Value::LongValue(u64::MAX - 1)), -2.0);
        assert_eq!(number(INT32, Value::LongValue(7)), 7.0);
    }

    #[test]
    fn signed_integers_that_do_not_fit_are_refused() {
        assert!(refused(INT8, Value::IntValue(0x100)).contains("does not fit a Int8"));
        assert!(refused(INT8, Value::IntValue(0xFFFF_FF7F)).contains("does not fit"));
        assert!(refused(INT16, Value::IntValue(70_000)).contains("does not fit a Int16"));
        assert!(refused(INT32, Value::LongValue(1 << 40)).contains("does not fit a Int32"));
    }

    #[test]
    fn unsigned_integers() {
        assert_eq!(number(UINT8, Value::IntValue(255)), 255.0);
        assert_eq!(number(UINT16, Value::IntValue(65_535)), 65_535.0);
        assert_eq!(number(UINT32, Value::IntValue(u32::MAX)), 4_294_967_295.0);
        assert_eq!(number(UINT32, Value::LongValue(12)), 12.0);
        assert_eq!(
            number(UINT64, Value::LongValue(1 << 53)),
            9_007_199_254_740_992.0
        );
        assert!(
            refused(UINT8, Value::IntValue(256)).contains("256 in int_value does not fit a UInt8")
        );
        assert!(refused(UINT32, Value::LongValue(1 << 32)).contains("does not fit a UInt32"));
    }

    #[test]
    fn floats_booleans_and_strings() {
        assert_eq!(number(FLOAT, Value::FloatValue(1.5)), 1.5);
        assert_eq!(number(DOUBLE, Value::DoubleValue(181.2)), 181.2);
        assert_eq!(number(DOUBLE, Value::FloatValue(0.25)), 0.25);
        assert_eq!(
            metric_value(BOOLEAN, Some(&Value::BooleanValue(true))),
            Ok(MetricValue::Boolean(true))
        );
        for datatype in [STRING, TEXT] {
            assert_eq!(
                metric_value(datatype, Some(&Value::StringValue("firing".into()))),
                Ok(MetricValue::State("firing".into()))
            );
        }
    }

    #[test]
    fn value_in_the_wrong_field_is_refused_with_its_field() {
        assert_eq!(
            refused(BOOLEAN, Value::StringValue("true".into())),
            "a Boolean metric carries its value in string_value, which does not hold a Boolean"
        );
        assert!(refused(DOUBLE, Value::IntValue(1)).contains("int_value"));
        assert!(refused(INT32, Value::DoubleValue(1.0)).contains("double_value"));
        assert!(refused(STRING, Value::BooleanValue(true)).contains("boolean_value"));
        assert_eq!(
            metric_value(DOUBLE, None).unwrap_err(),
            "the Double metric carries no value"
        );
    }

    #[test]
    fn kinds_of_every_datatype() {
        for datatype in [
            INT8, INT16, INT32, INT64, UINT8, UINT16, UINT32, UINT64, FLOAT, DOUBLE,
        ] {
            assert_eq!(
                kind_of(datatype),
                Ok(Kind::Numeric),
                "{}",
                datatype_name(datatype)
            );
        }
        assert_eq!(kind_of(BOOLEAN), Ok(Kind::Boolean));
        assert_eq!(kind_of(STRING), Ok(Kind::State));
        assert_eq!(kind_of(TEXT), Ok(Kind::State));
        assert!(kind_of(DATETIME).unwrap_err().contains("DateTime (13)"));
        assert!(kind_of(0).unwrap_err().contains("Unknown (0)"));
        for (datatype, name) in [
            (15, "UUID"),
            (16, "DataSet"),
            (17, "Bytes"),
            (18, "File"),
            (19, "Template"),
            (31, "DoubleArray"),
            (34, "DateTimeArray"),
        ] {
            assert!(
                kind_of(datatype)
                    .unwrap_err()
                    .contains(&format!("{name} ({datatype})"))
            );
        }
        assert!(kind_of(99).unwrap_err().contains("undefined (99)"));
    }
}
