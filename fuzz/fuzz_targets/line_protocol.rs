//! A point with arbitrary tag values, value and timestamp: encoded by
//! `stoker_timeseries::encode_point`, read back by Stoker's reference readers
//! (`stoker_timeseries::line::fuzzing`) and by InfluxData's own parser
//! (`influxdb-line-protocol`), which must give back exactly the same
//! measurement, tags, field and timestamp; or refused for a reason that holds.
#![no_main]

use influxdb_line_protocol::{FieldValue, parse_lines};
use libfuzzer_sys::fuzz_target;
use stoker_timeseries::line::fuzzing::check_line_protocol;

fuzz_target!(|data: &[u8]| {
    let Some(expected) = check_line_protocol(data) else {
        return;
    };
    let line = &expected.line;
    let mut lines = parse_lines(line);
    let parsed = match lines.next() {
        Some(Ok(parsed)) => parsed,
        Some(Err(error)) => panic!("InfluxData's parser refused {line:?}: {error}"),
        None => panic!("InfluxData's parser found no line in {line:?}"),
    };
    assert_eq!(
        parsed.series.measurement.as_str(),
        expected.measurement,
        "{line:?}"
    );
    let tags: Vec<(String, String)> = parsed
        .series
        .tag_set
        .iter()
        .flatten()
        .map(|(key, value)| (key.to_string(), value.to_string()))
        .collect();
    assert_eq!(tags, expected.tags, "tags of {line:?}");
    assert_eq!(parsed.field_set.len(), 1, "{line:?}");
    let (field, value) = &parsed.field_set[0];
    assert_eq!(field.as_str(), expected.field, "{line:?}");
    match value {
        FieldValue::F64(value) => {
            assert_eq!(
                value.to_bits(),
                expected.value.to_bits(),
                "value of {line:?}"
            )
        }
        other => panic!("{line:?}: the value read back as {other:?}, not a float"),
    }
    assert_eq!(
        parsed.timestamp,
        Some(expected.timestamp),
        "timestamp of {line:?}"
    );
    assert!(lines.next().is_none(), "more than one line in {line:?}");
});
