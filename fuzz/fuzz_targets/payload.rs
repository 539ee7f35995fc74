//! Any bytes as a `sites/{site}/telemetry` body and as a
//! `sites/{site}/sensors/{sensor}` body: never a panic, and the parsers'
//! invariants hold (`stoker_ingestion::fuzzing::check_payload`).
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    stoker_ingestion::fuzzing::check_payload(data);
});
