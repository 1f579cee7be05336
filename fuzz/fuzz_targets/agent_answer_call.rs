//! Arbitrary bytes as the agent's answer to an UPDATE, through the driver's hyper client (and,
//! for SUBSCRIBE, its RecordIO decoder): never panics, always ends.
#![no_main]

#[path = "../checks.rs"]
mod checks;

libfuzzer_sys::fuzz_target!(|data: &[u8]| checks::call_answer(data));
