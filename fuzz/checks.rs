//! The invariants the fuzz targets check, shared by `fuzz/fuzz_targets/` and by
//! `tests/fuzz_regressions.rs`, which replays saved findings through them. Each target
//! uses one of them.

#![allow(dead_code)]

use bytes::BytesMut;
use mesos_executor::{ContentType, driver::RecordIoCodec, proto::v1::executor::Event, wire};
use tokio_util::codec::{Decoder, Encoder};

/// The RecordIO decoder on `data` cut into chunks of the size its first byte says:
/// never panics, never yields a record over the cap, and what it yields re-encodes
/// to records that decode the same.
pub fn recordio(data: &[u8]) {
    let Some((&cut, data)) = data.split_first() else { return };
    let chunk = usize::from(cut % 16) + 1;
    let mut codec = RecordIoCodec::new(1024);
    let mut buf = BytesMut::new();
    let mut records = Vec::new();
    'feed: for piece in data.chunks(chunk) {
        buf.extend_from_slice(piece);
        loop {
            match codec.decode(&mut buf) {
                Ok(Some(record)) => {
                    assert!(record.len() <= 1024);
                    records.push(record);
                }
                Ok(None) => break,
                Err(_) => break 'feed,
            }
        }
    }
    let mut encoded = BytesMut::new();
    for record in &records {
        RecordIoCodec::default().encode(record, &mut encoded).expect("encoding into memory");
    }
    let mut again = RecordIoCodec::new(1024);
    let mut round = Vec::new();
    while let Ok(Some(record)) = again.decode(&mut encoded) {
        round.push(record);
    }
    assert_eq!(round, records);
}

/// Event decoding in `media`: never panics; what decodes encodes to bytes that decode
/// to the same event.
pub fn event(data: &[u8], media: ContentType) {
    if let Ok(event) = wire::decode::<Event>(data, media) {
        let bytes = wire::encode(&event, media).expect("our descriptors cover Event");
        assert_eq!(wire::decode::<Event>(&bytes, media).expect("our own encoding decodes"), event);
    }
}

/// `data` as the agent's whole answer to an UPDATE: never panics, always ends, and is
/// taken as accepted only when a 202 status line is in it (HTTP lets empty lines and 1xx
/// interim answers come first, and hyper skips them).
pub fn call_answer(data: &[u8]) {
    let Some(outcome) = mesos_executor::driver::fuzzing::call_answer(data) else { return };
    if outcome.is_ok() {
        assert!(has_status_line(data, b"202"), "accepted an answer without a 202");
    }
}

/// `data` as the agent's whole answer to SUBSCRIBE: never panics, always ends, yields
/// events only when a 200 status line is in it.
pub fn subscribe_answer(data: &[u8]) {
    let Some(outcome) = mesos_executor::driver::fuzzing::subscribe_answer(data) else { return };
    if let Ok(events) = outcome
        && !events.is_empty()
    {
        assert!(has_status_line(data, b"200"), "a stream without a 200");
    }
}

fn has_status_line(data: &[u8], code: &[u8]) -> bool {
    [&b"HTTP/1.1 "[..], b"HTTP/1.0 "].iter().any(|version| {
        let line: Vec<u8> = version.iter().chain(code).copied().collect();
        data.windows(line.len()).any(|w| w == line.as_slice())
    })
}
