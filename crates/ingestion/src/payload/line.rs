//! Line protocol as readings (DESIGN.md, "InfluxDB-compatible writes"):
//! each line parsed by `stoker_timeseries::line::parse` (InfluxDB
//! 1.x/2.x's rules) and mapped to the readings of one site.
//!
//! - The site is the line's `site` tag, else the write's bucket (2.x) or
//!   database (1.x).
//! - With a `sensor` tag (Stoker's own layout), the line is one reading of
//!   that sensor: its field `value` (other fields, such as the `state`
//!   string Stoker writes beside a state's index, are not readings).
//! - Without one, every field is a reading of the sensor of the same key,
//!   prefixed by the value of the tag the write names as
//!   `sensor_prefix_tag` (`name=b1`: `b1_steam_pressure`). The measurement
//!   and other tags are not used.
//! - The timestamp is in the write's precision; none: the receive time.
//!
//! A line that does not parse, names no reading or has a timestamp outside
//! what InfluxDB stores is refused whole; a field becomes a
//! reading of its type ([`reading_value`]; an integer stays one, so that
//! `1i`/`0i` can be a boolean sensor's reading), checked against its
//! sensor's kind like every reading.

use std::borrow::Cow;

use stoker_domain::EpochMillis;
use stoker_timeseries::line::{self, FieldValue};

use super::{RawReading, RawValue, Refusal};
use crate::Reason;
use crate::envelope::LineWrite;

/// What became of one line.
#[derive(Debug)]
pub(crate) enum LineOutcome<'a> {
    /// Its readings, all of one site (not yet checked against the
    /// registry).
    Readings {
        /// The line's number in the body, from 1.
        line: usize,
        site: Cow<'a, str>,
        readings: Vec<RawReading<'a>>,
    },
    /// The line is refused whole (the detail names it).
    Refused { refusal: Refusal },
}

/// Each line of `body` (blank lines and comments skipped) as readings, or
/// refused with a detail that names its line.
pub(crate) fn read_lines<'a>(
    body: &'a [u8],
    write: &'a LineWrite,
) -> impl Iterator<Item = LineOutcome<'a>> {
    line::parse(body).map(move |outcome| match outcome {
        Ok(parsed) => {
            map_line(parsed, write).unwrap_or_else(|refusal| LineOutcome::Refused { refusal })
        }
        Err(error) => LineOutcome::Refused {
            refusal: Refusal::new(Reason::MalformedLine, error.to_string()),
        },
    })
}

fn map_line<'a>(
    mut parsed: line::Line<'a>,
    write: &'a LineWrite,
) -> Result<LineOutcome<'a>, Refusal> {
    let number = parsed.number;
    let timestamp = match parsed.timestamp {
        None => None,
        Some(raw) => Some(
            write
                .precision
                .to_millis(raw)
                .and_then(|millis| EpochMillis::from_millis(millis).ok())
                .ok_or_else(|| {
                    Refusal::new(
                        Reason::InvalidTimestamp,
                        format!(
                            "line {number}: timestamp {raw} (precision {}) is outside the times InfluxDB stores",
                            write.precision.as_str()
                        ),
                    )
                })?,
        ),
    };
    let site = take_tag(&mut parsed.tags, "site").unwrap_or(Cow::Borrowed(write.site.as_str()));
    if let Some(sites) = &write.sites
        && !sites.iter().any(|allowed| *allowed == site)
    {
        return Err(Refusal::new(
            Reason::ForbiddenSite,
            format!(
                "line {number}: site {:?} is not one this API key may write",
                excerpt(&site)
            ),
        ));
    }
    let readings = if let Some(sensor) = take_tag(&mut parsed.tags, "sensor") {
        let value = parsed
            .fields
            .into_iter()
            .find(|(key, _)| key == "value")
            .map(|(_, value)| value)
            .ok_or_else(|| {
                Refusal::new(
                    Reason::MalformedLine,
                    format!(
                        "line {number}: tag sensor={} but no field \"value\" (a line with a sensor tag is one reading, its field value)",
                        excerpt(&sensor)
                    ),
                )
            })?;
        let value = Ok(reading_value(value));
        vec![RawReading {
            sensor,
            value,
            timestamp,
        }]
    } else {
        let prefix = match &write.sensor_prefix_tag {
            None => None,
            Some(tag) => Some(parsed.tag(tag).map(str::to_owned).ok_or_else(|| {
                Refusal::new(
                    Reason::MalformedLine,
                    format!(
                        "line {number}: no tag {:?}, whose value sensor_prefix_tag makes the prefix of its sensors",
                        excerpt(tag)
                    ),
                )
            })?),
        };
        parsed
            .fields
            .into_iter()
            .map(|(key, value)| {
                let sensor = match &prefix {
                    Some(prefix) => Cow::Owned(format!("{prefix}_{key}")),
                    None => key,
                };
                let value = Ok(reading_value(value));
                RawReading {
                    sensor,
                    value,
                    timestamp,
                }
            })
            .collect()
    };
    Ok(LineOutcome::Readings {
        line: number,
        site,
        readings,
    })
}

/// Removes tag `key` from the line's tags and gives its value.
fn take_tag<'a>(tags: &mut Vec<(Cow<'a, str>, Cow<'a, str>)>, key: &str) -> Option<Cow<'a, str>> {
    let index = tags.iter().position(|(name, _)| name == key)?;
    Some(tags.swap_remove(index).1)
}

/// A field as a reading's value: floats are numeric readings, integers
/// and unsigned integers numeric ones too, but for a boolean sensor 1 and
/// 0 are `true` and `false` (a Modbus coil as Telegraf sends it), booleans
/// boolean readings and strings state ones; the registry then checks the
/// value against the sensor's kind, as on every path.
fn reading_value(value: FieldValue<'_>) -> RawValue<'_> {
    match value {
        FieldValue::Float(float) => RawValue::Number(float),
        FieldValue::Integer(integer) => RawValue::Integer(integer.into()),
        FieldValue::Unsigned(unsigned) => RawValue::Integer(unsigned.into()),
        FieldValue::Boolean(flag) => RawValue::Boolean(flag),
        FieldValue::String(text) => RawValue::Text(text),
    }
}

fn excerpt(text: &str) -> String {
    super::refusal::excerpt(text)
}

#[cfg(test)]
mod tests {
    use stoker_timeseries::line::Precision;

    use super::*;

    fn line_write(site: &str, precision: Precision, prefix: Option<&str>) -> LineWrite {
        LineWrite {
            route: "/api/v2/write",
            site: site.into(),
            precision,
            sensor_prefix_tag: prefix.map(str::to_owned),
            sites: None,
        }
    }

    #[test]
    fn a_line_of_a_site_the_key_may_not_write_is_refused() {
        let mut write = line_write("a", Precision::Milliseconds, None);
        write.sites = Some(vec!["a".into()]);
        let body = b"m value=1 1\nm,site=b value=2 1\nm,site=a value=3 1\n";
        let outcomes: Vec<_> = read_lines(body, &write).collect();
        assert!(matches!(&outcomes[0], LineOutcome::Readings { site, .. } if site == "a"));
        let LineOutcome::Refused { refusal } = &outcomes[1] else {
            panic!("{:?}", outcomes[1]);
        };
        assert_eq!(refusal.reason, Reason::ForbiddenSite);
        assert!(
            refusal.detail.starts_with("line 2: site \"b\""),
            "{}",
            refusal.detail
        );
        assert!(matches!(&outcomes[2], LineOutcome::Readings { site, .. } if site == "a"));
    }

    fn millis(value: i64) -> Option<EpochMillis> {
        Some(EpochMillis::from_millis(value).unwrap())
    }

    fn readings<'a>(outcome: &'a LineOutcome<'a>) -> (&'a str, &'a [RawReading<'a>]) {
        match outcome {
            LineOutcome::Readings { site, readings, .. } => (site.as_ref(), readings.as_slice()),
            LineOutcome::Refused { refusal, .. } => panic!("refused: {refusal:?}"),
        }
    }

    /// The refusal, and the line its detail names.
    fn refusal<'a>(outcome: &'a LineOutcome<'a>) -> (usize, &'a Refusal) {
        match outcome {
            LineOutcome::Refused { refusal } => {
                let line = refusal.detail["line ".len()..]
                    .split([':', ' '])
                    .next()
                    .and_then(|number| number.parse().ok())
                    .unwrap_or_else(|| panic!("no line in {:?}", refusal.detail));
                (line, refusal)
            }
            LineOutcome::Readings { .. } => panic!("not refused: {outcome:?}"),
        }
    }

    #[test]
    fn telegrafs_modbus_line_is_one_reading_per_field() {
        let write = line_write("boiler-house-1", Precision::Nanoseconds, None);
        let body =
            b"modbus,name=b1,slave_id=1 steam_pressure=10.4,flue_temp=181i 1733565600123456789\n";
        let outcomes: Vec<_> = read_lines(body, &write).collect();
        let (site, found) = readings(&outcomes[0]);
        assert_eq!(site, "boiler-house-1");
        assert_eq!(
            found,
            [
                RawReading {
                    sensor: "steam_pressure".into(),
                    value: Ok(RawValue::Number(10.4)),
                    timestamp: millis(1_733_565_600_123)
                },
                RawReading {
                    sensor: "flue_temp".into(),
                    value: Ok(RawValue::Integer(181)),
                    timestamp: millis(1_733_565_600_123)
                }
            ]
        );
        let prefixed = line_write("boiler-house-1", Precision::Seconds, Some("name"));
        let outcomes: Vec<_> =
            read_lines(b"modbus,name=b1 steam_pressure=10u 1733565600", &prefixed).collect();
        let (_, found) = readings(&outcomes[0]);
        assert_eq!(found[0].sensor, "b1_steam_pressure");
        assert_eq!(found[0].value, Ok(RawValue::Integer(10)));
        assert_eq!(found[0].timestamp, millis(1_733_565_600_000));
        let outcomes: Vec<_> = read_lines(b"modbus,slave=1 p=1", &prefixed).collect();
        let (line, refused) = refusal(&outcomes[0]);
        assert_eq!((line, refused.reason), (1, Reason::MalformedLine));
        assert!(
            refused.detail.contains("no tag \"name\""),
            "{}",
            refused.detail
        );
    }

    #[test]
    fn stokers_own_layout_and_a_site_tag() {
        let write = line_write("bucket", Precision::Milliseconds, Some("name"));
        let body = b"readings,site=boiler-house-2,sensor=b1_flue_temp,type=temperature value=181.2,state=\"x\" 1732269600000\nreadings,sensor=s other=1\n";
        let outcomes: Vec<_> = read_lines(body, &write).collect();
        let (site, found) = readings(&outcomes[0]);
        assert_eq!(site, "boiler-house-2");
        assert_eq!(
            found,
            [RawReading {
                sensor: "b1_flue_temp".into(),
                value: Ok(RawValue::Number(181.2)),
                timestamp: millis(1_732_269_600_000)
            }]
        );
        let (line, refused) = refusal(&outcomes[1]);
        assert_eq!((line, refused.reason), (2, Reason::MalformedLine));
        assert_eq!(
            refused.detail,
            "line 2: tag sensor=s but no field \"value\" (a line with a sensor tag is one reading, its field value)"
        );
    }

    #[test]
    fn booleans_and_strings_are_boolean_and_state_readings() {
        let write = line_write("b", Precision::Nanoseconds, None);
        let outcomes: Vec<_> =
            read_lines(b"m burner_on=true,state=\"firing\",p=1.5", &write).collect();
        let (_, found) = readings(&outcomes[0]);
        assert_eq!(found.len(), 3);
        assert_eq!(found[0].value, Ok(RawValue::Boolean(true)));
        assert_eq!(found[1].value, Ok(RawValue::Text("firing".into())));
        assert_eq!(found[2].value, Ok(RawValue::Number(1.5)));
    }

    #[test]
    fn bad_lines_are_refused_with_their_number_and_the_rest_read() {
        let write = line_write("b", Precision::Hours, None);
        let body = b"m a=1 1\nm a=oops\n\nm a=2 999999999999999\nm a=3\n";
        let outcomes: Vec<_> = read_lines(body, &write).collect();
        assert_eq!(outcomes.len(), 4);
        assert_eq!(readings(&outcomes[0]).1[0].timestamp, millis(3_600_000));
        let (line, refused) = refusal(&outcomes[1]);
        assert_eq!((line, refused.reason), (2, Reason::MalformedLine));
        assert_eq!(
            refused.detail,
            "line 2: unable to parse 'm a=oops': invalid boolean \"oops\" (field \"a\")"
        );
        let (line, refused) = refusal(&outcomes[2]);
        assert_eq!((line, refused.reason), (4, Reason::InvalidTimestamp));
        assert!(refused.detail.contains("precision h"), "{}", refused.detail);
        assert_eq!(readings(&outcomes[3]).1[0].timestamp, None);
    }
}
