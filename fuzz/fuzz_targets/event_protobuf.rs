//! Event decoding from protobuf: never panics; what decodes re-encodes and decodes to
//! the same event.
#![no_main]

use libfuzzer_sys::fuzz_target;
use mesos_executor::{ContentType, proto::v1::executor::Event, wire};

fuzz_target!(|data: &[u8]| {
    if let Ok(event) = wire::decode::<Event>(data, ContentType::Protobuf) {
        let bytes = wire::encode(&event, ContentType::Protobuf).unwrap();
        let again: Event = wire::decode(&bytes, ContentType::Protobuf).unwrap();
        assert_eq!(again, event);
    }
});
