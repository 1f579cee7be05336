//! The RecordIO decoder on arbitrary bytes cut into arbitrary chunks: never panics,
//! never yields a record over the cap, and what it yields re-encodes to the input prefix.
#![no_main]

#[path = "../checks.rs"]
mod checks;

libfuzzer_sys::fuzz_target!(|data: &[u8]| checks::recordio(data));
