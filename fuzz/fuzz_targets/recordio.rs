//! The RecordIO decoder on arbitrary bytes cut into arbitrary chunks: never panics,
//! never yields a record over the cap, and what it yields re-encodes to the input prefix.
#![no_main]

use bytes::BytesMut;
use libfuzzer_sys::fuzz_target;
use mesos_executor::driver::RecordIoCodec;
use tokio_util::codec::{Decoder, Encoder};

fuzz_target!(|data: &[u8]| {
    let Some((&cut, data)) = data.split_first() else { return };
    let chunk = usize::from(cut % 16) + 1;
    let mut codec = RecordIoCodec::new(1024);
    let mut buf = BytesMut::new();
    let mut records = Vec::new();
    for piece in data.chunks(chunk) {
        buf.extend_from_slice(piece);
        loop {
            match codec.decode(&mut buf) {
                Ok(Some(record)) => {
                    assert!(record.len() <= 1024);
                    records.push(record);
                }
                Ok(None) => break,
                Err(_) => return,
            }
        }
    }
    let mut encoded = BytesMut::new();
    for record in &records {
        RecordIoCodec::default().encode(record, &mut encoded).unwrap();
    }
    // Leading zeros in a length are accepted, so compare decoded content, not bytes.
    let mut again = RecordIoCodec::new(1024);
    let mut round = Vec::new();
    while let Ok(Some(record)) = again.decode(&mut encoded) {
        round.push(record);
    }
    assert_eq!(round, records);
});
