//! Event decoding from the agent's JSON mapping: never panics; what decodes encodes to
//! JSON that decodes to the same event.
#![no_main]

use libfuzzer_sys::fuzz_target;
use mesos_executor::{ContentType, proto::v1::executor::Event, wire};

fuzz_target!(|data: &[u8]| {
    if let Ok(event) = wire::decode::<Event>(data, ContentType::Json) {
        let json = wire::encode(&event, ContentType::Json).unwrap();
        let again: Event = wire::decode(&json, ContentType::Json).unwrap();
        assert_eq!(again, event);
    }
});
