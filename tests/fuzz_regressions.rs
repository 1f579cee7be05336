//! Replays every input kept under `tests/fuzz_regressions/<target>/` (crashes found by
//! `scripts/fuzz.sh`, and seeds) through the invariants of the fuzz targets in
//! `fuzz/fuzz_targets/`, so that a fixed finding stays fixed.

use std::path::Path;

use bytes::BytesMut;
use mesos_executor::{ContentType, driver::RecordIoCodec, proto::v1::executor::Event, wire};
use tokio_util::codec::{Decoder, Encoder};

fn inputs(target: &str) -> Vec<(String, Vec<u8>)> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fuzz_regressions").join(target);
    let mut out: Vec<_> = std::fs::read_dir(&dir)
        .unwrap()
        .flatten()
        .map(|e| (e.file_name().to_string_lossy().into_owned(), std::fs::read(e.path()).unwrap()))
        .collect();
    out.sort();
    assert!(!out.is_empty(), "no inputs in {}", dir.display());
    out
}

#[test]
fn recordio_inputs() {
    for (name, data) in inputs("recordio") {
        let Some((&cut, data)) = data.split_first() else { continue };
        let chunk = usize::from(cut % 16) + 1;
        let mut codec = RecordIoCodec::new(1024);
        let mut buf = BytesMut::new();
        let mut records = Vec::new();
        'feed: for piece in data.chunks(chunk) {
            buf.extend_from_slice(piece);
            loop {
                match codec.decode(&mut buf) {
                    Ok(Some(record)) => {
                        assert!(record.len() <= 1024, "{name}");
                        records.push(record);
                    }
                    Ok(None) => break,
                    Err(_) => break 'feed,
                }
            }
        }
        let mut encoded = BytesMut::new();
        for record in &records {
            RecordIoCodec::default().encode(record, &mut encoded).unwrap();
        }
        let mut again = RecordIoCodec::new(1024);
        let mut round = Vec::new();
        while let Ok(Some(record)) = again.decode(&mut encoded) {
            round.push(record);
        }
        assert_eq!(round, records, "{name}");
    }
}

#[test]
fn event_protobuf_inputs() {
    for (name, data) in inputs("event_protobuf") {
        if let Ok(event) = wire::decode::<Event>(&data, ContentType::Protobuf) {
            let bytes = wire::encode(&event, ContentType::Protobuf).unwrap();
            assert_eq!(wire::decode::<Event>(&bytes, ContentType::Protobuf).unwrap(), event, "{name}");
        }
    }
}

#[test]
fn event_json_inputs() {
    for (name, data) in inputs("event_json") {
        if let Ok(event) = wire::decode::<Event>(&data, ContentType::Json) {
            let json = wire::encode(&event, ContentType::Json).unwrap();
            assert_eq!(wire::decode::<Event>(&json, ContentType::Json).unwrap(), event, "{name}");
        }
    }
}
