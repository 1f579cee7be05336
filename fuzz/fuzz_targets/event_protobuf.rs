//! Event decoding from protobuf: never panics; what decodes re-encodes and decodes to
//! the same event.
#![no_main]

#[path = "../checks.rs"]
mod checks;

libfuzzer_sys::fuzz_target!(|data: &[u8]| checks::event(data, mesos_executor::ContentType::Protobuf));
