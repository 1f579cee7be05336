//! RecordIO codec tests: plain cases first, then arbitrary records through arbitrary
//! chunkings.

use super::*;
use proptest::prelude::*;

fn decode_all(codec: &mut RecordIoCodec, input: &[u8]) -> Result<Vec<Bytes>, RecordIoError> {
    let mut buf = BytesMut::from(input);
    let mut out = Vec::new();
    while let Some(record) = codec.decode(&mut buf)? {
        out.push(record);
    }
    if let Some(record) = codec.decode_eof(&mut buf)? {
        out.push(record);
    }
    Ok(out)
}

#[test]
fn empty_stream_yields_nothing() {
    assert!(decode_all(&mut RecordIoCodec::default(), b"").unwrap().is_empty());
}

#[test]
fn one_record() {
    let records = decode_all(&mut RecordIoCodec::default(), b"20\n{\"type\":\"HEARTBEAT\"}").unwrap();
    assert_eq!(records, vec![Bytes::from_static(b"{\"type\":\"HEARTBEAT\"}")]);
}

#[test]
fn many_records_in_one_chunk_and_no_separator() {
    let input = b"20\n{\"type\":\"HEARTBEAT\"}19\n{\"type\":\"SHUTDOWN\"}2\n\x08\x09";
    let records = decode_all(&mut RecordIoCodec::default(), input).unwrap();
    assert_eq!(records.len(), 3);
    assert_eq!(&records[1][..], b"{\"type\":\"SHUTDOWN\"}");
    assert_eq!(&records[2][..], b"\x08\x09");
}

#[test]
fn zero_length_record_is_an_empty_record() {
    let records = decode_all(&mut RecordIoCodec::default(), b"0\n3\nabc").unwrap();
    assert_eq!(records, vec![Bytes::new(), Bytes::from_static(b"abc")]);
}

#[test]
fn reference_rechunked_example() {
    // Reference §2.1: two events re-chunked by a proxy into 14 + 31 bytes.
    let mut codec = RecordIoCodec::default();
    let mut buf = BytesMut::from(&b"20\n{\"type\":\"HE"[..]);
    assert_eq!(codec.decode(&mut buf).unwrap(), None);
    buf.extend_from_slice(b"ARTBEAT\"}19\n{\"type\":\"SHUTDOWN\"}");
    assert_eq!(&codec.decode(&mut buf).unwrap().unwrap()[..], b"{\"type\":\"HEARTBEAT\"}");
    assert_eq!(&codec.decode(&mut buf).unwrap().unwrap()[..], b"{\"type\":\"SHUTDOWN\"}");
    assert_eq!(codec.decode(&mut buf).unwrap(), None);
}

#[test]
fn non_digit_in_length_is_an_error_naming_the_byte() {
    for (input, bad) in [(&b"2x\nab"[..], b'x'), (b"\n", b'\n'), (b"20\r\n", b'\r'), (b"-1\n", b'-'), (b" 5\n", b' ')] {
        match decode_all(&mut RecordIoCodec::default(), input) {
            Err(RecordIoError::InvalidLength { byte, .. }) => assert_eq!(byte, bad, "{input:?}"),
            other => panic!("{input:?}: expected InvalidLength, got {other:?}"),
        }
    }
    // A bad byte is noticed before its line ends.
    let mut buf = BytesMut::from(&b"12a"[..]);
    assert!(matches!(RecordIoCodec::default().decode(&mut buf), Err(RecordIoError::InvalidLength { offset: 2, .. })));
}

#[test]
fn overlong_or_overflowing_length_is_an_error() {
    let err = decode_all(&mut RecordIoCodec::new(usize::MAX), b"99999999999999999999\n").unwrap_err();
    assert!(matches!(err, RecordIoError::LengthOverflow { .. }), "{err:?}");
    // 21 digits are refused without waiting for the newline.
    let mut buf = BytesMut::from(&b"000000000000000000001"[..]);
    assert!(matches!(RecordIoCodec::new(usize::MAX).decode(&mut buf), Err(RecordIoError::LengthOverflow { .. })));
}

#[test]
fn record_over_the_cap_is_refused_before_buffering() {
    let err = decode_all(&mut RecordIoCodec::new(10), b"11\nhello world").unwrap_err();
    assert!(matches!(err, RecordIoError::RecordTooLarge { len: 11, max: 10 }), "{err:?}");
    let records = decode_all(&mut RecordIoCodec::new(10), b"10\nhelloworld").unwrap();
    assert_eq!(records.len(), 1);
    let message = RecordIoCodec::default().decode(&mut BytesMut::from(&b"17179869184\n"[..])).unwrap_err().to_string();
    assert!(message.contains("17179869184") && message.contains("16777216"), "{message}");
}

#[test]
fn hostile_ten_gigabyte_length_allocates_nothing() {
    // Even with no cap, a declared length is never reserved up front.
    let mut codec = RecordIoCodec::new(usize::MAX);
    let mut buf = BytesMut::with_capacity(64);
    buf.extend_from_slice(b"10737418240\nabc");
    let before = buf.capacity();
    assert_eq!(codec.decode(&mut buf).unwrap(), None);
    assert!(buf.capacity() <= before, "decoder grew the buffer to {}", buf.capacity());
    assert!(matches!(
        codec.decode_eof(&mut buf),
        Err(RecordIoError::Truncated { expected: 10_737_418_240, got: 3, .. })
    ));
}

#[test]
fn bytes_left_at_eof_are_a_truncation() {
    assert!(matches!(
        decode_all(&mut RecordIoCodec::default(), b"5\nab"),
        Err(RecordIoError::Truncated { expected: 5, got: 2, header: 0 })
    ));
    assert!(matches!(
        decode_all(&mut RecordIoCodec::default(), b"3\nabc12"),
        Err(RecordIoError::Truncated { expected: 0, got: 0, header: 2 })
    ));
}

#[test]
fn encoder_writes_length_newline_payload() {
    let mut out = BytesMut::new();
    let mut codec = RecordIoCodec::default();
    codec.encode(&b"\x08\x09"[..], &mut out).unwrap();
    codec.encode(b"", &mut out).unwrap();
    assert_eq!(&out[..], b"2\n\x08\x090\n");
    assert_eq!(&frame(b"{\"type\":\"HEARTBEAT\"}")[..], b"20\n{\"type\":\"HEARTBEAT\"}");
}

#[tokio::test]
async fn framed_read_over_a_chunked_body() {
    use futures_util::StreamExt;
    use tokio_util::{codec::FramedRead, io::StreamReader};

    let chunks: Vec<Result<Bytes, std::io::Error>> = vec![
        Ok(Bytes::from_static(b"2")),
        Ok(Bytes::from_static(b"0\n{\"type\":\"HE")),
        Ok(Bytes::from_static(b"ARTBEAT\"}19\n{\"type\":\"SHUTDOWN\"}")),
    ];
    let reader = StreamReader::new(futures_util::stream::iter(chunks));
    let records: Vec<_> = FramedRead::new(reader, RecordIoCodec::default()).collect().await;
    let records: Vec<Bytes> = records.into_iter().map(Result::unwrap).collect();
    assert_eq!(records.len(), 2);
    assert_eq!(&records[1][..], b"{\"type\":\"SHUTDOWN\"}");
}

fn encode_all(records: &[Vec<u8>]) -> Vec<u8> {
    let mut out = BytesMut::new();
    let mut codec = RecordIoCodec::default();
    for record in records {
        codec.encode(record, &mut out).unwrap();
    }
    out.to_vec()
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    /// Any records, cut at any points, come back byte for byte.
    #[test]
    fn records_survive_any_chunking(
        records in proptest::collection::vec(proptest::collection::vec(any::<u8>(), 0..300), 0..20),
        cuts in proptest::collection::vec(any::<prop::sample::Index>(), 0..40),
    ) {
        let wire = encode_all(&records);
        let mut points: Vec<usize> = cuts.iter().map(|i| i.index(wire.len() + 1)).collect();
        points.push(0);
        points.push(wire.len());
        points.sort_unstable();
        points.dedup();

        let mut codec = RecordIoCodec::default();
        let mut buf = BytesMut::new();
        let mut decoded = Vec::new();
        for pair in points.windows(2) {
            buf.extend_from_slice(&wire[pair[0]..pair[1]]);
            while let Some(record) = codec.decode(&mut buf).unwrap() {
                decoded.push(record.to_vec());
            }
        }
        prop_assert_eq!(codec.decode_eof(&mut buf).unwrap(), None);
        prop_assert_eq!(decoded, records);
    }

    /// Cutting the stream anywhere inside a record is reported at EOF, never silently.
    #[test]
    fn truncation_anywhere_is_detected(
        records in proptest::collection::vec(proptest::collection::vec(any::<u8>(), 1..50), 1..5),
        cut in any::<prop::sample::Index>(),
    ) {
        let wire = encode_all(&records);
        let boundaries: Vec<usize> = records.iter().scan(0, |pos, r| {
            *pos += r.len().to_string().len() + 1 + r.len();
            Some(*pos)
        }).collect();
        let at = cut.index(wire.len());
        prop_assume!(at > 0 && !boundaries.contains(&at));
        let result = decode_all(&mut RecordIoCodec::default(), &wire[..at]);
        prop_assert!(matches!(result, Err(RecordIoError::Truncated { .. })), "{:?}", result);
    }

    /// Garbage never panics, and never yields a record longer than the cap.
    #[test]
    fn garbage_never_panics(input in proptest::collection::vec(any::<u8>(), 0..200)) {
        let mut codec = RecordIoCodec::new(64);
        if let Ok(records) = decode_all(&mut codec, &input) {
            prop_assert!(records.iter().all(|r| r.len() <= 64));
        }
    }
}
