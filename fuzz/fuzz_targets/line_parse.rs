//! Any bytes as the body of an InfluxDB-compatible write: read by
//! `stoker_timeseries::line::parse`, which must never panic, number its
//! lines within the body, accept only lines that hold InfluxDB's rules, and
//! read each line it accepts, written out again with every escape, back to
//! the same line (`stoker_timeseries::line::parse_fuzzing::check_parse`).
#![no_main]

use libfuzzer_sys::fuzz_target;
use stoker_timeseries::line::parse_fuzzing::check_parse;

fuzz_target!(|data: &[u8]| {
    check_parse(data);
});
