//! Event decoding from the agent's JSON mapping: never panics; what decodes encodes to
//! JSON that decodes to the same event.
#![no_main]

#[path = "../checks.rs"]
mod checks;

libfuzzer_sys::fuzz_target!(|data: &[u8]| checks::event(data, mesos_executor::ContentType::Json));
