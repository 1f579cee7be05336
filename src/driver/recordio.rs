//! RecordIO framing of the executor event stream: `<decimal length>\n<bytes>`,
//! repeated (reference §2, upstream `stout/recordio.hpp`). The decoder keeps its state
//! across reads, so records split at any byte or packed many to a chunk both work.

use bytes::{Buf, BufMut, Bytes, BytesMut};
/// The codec traits [`RecordIoCodec`] implements, re-exported so that using it needs no
/// `tokio-util` of your own.
pub use tokio_util::codec::{Decoder, Encoder};

/// Default cap on one record: far above any event an agent sends, small enough that
/// a corrupt length cannot make us buffer without bound.
pub const DEFAULT_MAX_RECORD_LEN: usize = 16 * 1024 * 1024;

/// `u64::MAX` has 20 decimal digits; a longer length line is corrupt.
const MAX_HEADER_DIGITS: usize = 20;

/// A stream that is not valid RecordIO.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum RecordIoError {
    /// A byte other than an ASCII digit in a length line (upstream fails the same way,
    /// including on an empty line or a `\r`).
    #[error("invalid RecordIO length prefix {prefix:?}: byte {byte:#04x} at offset {offset} is not a decimal digit")]
    InvalidLength {
        /// The length line read so far, lossily decoded for the message.
        prefix: String,
        /// The offending byte.
        byte: u8,
        /// Its offset within the line.
        offset: usize,
    },
    /// A length line of more than 20 digits, or one that overflows `u64`.
    #[error("RecordIO length prefix {prefix:?} is too long or overflows 64 bits")]
    LengthOverflow {
        /// The length line read so far.
        prefix: String,
    },
    /// A record longer than the configured cap; nothing was allocated for it.
    #[error("RecordIO record of {len} bytes exceeds the limit of {max} bytes")]
    RecordTooLarge {
        /// Declared length.
        len: u64,
        /// Configured cap.
        max: usize,
    },
    /// The stream ended inside a record.
    #[error("RecordIO stream ended mid-record: {got} of {expected} bytes of data, {header} bytes of length line")]
    Truncated {
        /// Declared length of the unfinished record, 0 if its length line was unfinished.
        expected: u64,
        /// Bytes of data received.
        got: usize,
        /// Bytes of an unfinished length line.
        header: usize,
    },
    /// The transport failed.
    #[error("I/O error while reading the RecordIO stream: {0}")]
    Io(#[from] std::io::Error),
}

/// Decoder and encoder for RecordIO.
#[derive(Debug, Clone)]
pub struct RecordIoCodec {
    max_record_len: usize,
    state: State,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    /// Reading the decimal length; `scanned` bytes of the buffer are known digits.
    Head { scanned: usize },
    /// The length line is consumed; waiting for this many bytes of data.
    Data(usize),
}

impl Default for RecordIoCodec {
    fn default() -> Self {
        Self::new(DEFAULT_MAX_RECORD_LEN)
    }
}

impl RecordIoCodec {
    /// A codec that refuses records longer than `max_record_len` bytes.
    pub fn new(max_record_len: usize) -> Self {
        RecordIoCodec { max_record_len, state: State::Head { scanned: 0 } }
    }

    /// The configured cap.
    pub fn max_record_len(&self) -> usize {
        self.max_record_len
    }

    /// Parses the length line at the start of `src`, if it is complete. Digits are
    /// checked as they arrive, so a bad byte is reported before its line ends.
    fn decode_head(&mut self, src: &mut BytesMut, scanned: usize) -> Result<Option<usize>, RecordIoError> {
        let prefix = |src: &BytesMut, end: usize| String::from_utf8_lossy(&src[..end]).into_owned();
        for offset in scanned..src.len() {
            let byte = src[offset];
            if byte == b'\n' {
                if offset == 0 {
                    return Err(RecordIoError::InvalidLength { prefix: String::new(), byte, offset });
                }
                let mut len: u64 = 0;
                for &digit in &src[..offset] {
                    len = len
                        .checked_mul(10)
                        .and_then(|n| n.checked_add(u64::from(digit - b'0')))
                        .ok_or_else(|| RecordIoError::LengthOverflow { prefix: prefix(src, offset) })?;
                }
                // The cap is checked before a single byte of the record is buffered
                // beyond what the transport already delivered: no reservation is made.
                let len_usize = usize::try_from(len).ok().filter(|l| *l <= self.max_record_len);
                let Some(len) = len_usize else {
                    return Err(RecordIoError::RecordTooLarge { len, max: self.max_record_len });
                };
                src.advance(offset + 1);
                return Ok(Some(len));
            }
            if !byte.is_ascii_digit() {
                return Err(RecordIoError::InvalidLength { prefix: prefix(src, offset), byte, offset });
            }
            if offset >= MAX_HEADER_DIGITS {
                return Err(RecordIoError::LengthOverflow { prefix: prefix(src, offset + 1) });
            }
        }
        self.state = State::Head { scanned: src.len() };
        Ok(None)
    }
}

impl Decoder for RecordIoCodec {
    type Item = Bytes;
    type Error = RecordIoError;

    fn decode(&mut self, src: &mut BytesMut) -> Result<Option<Bytes>, RecordIoError> {
        loop {
            match self.state {
                State::Head { scanned } => match self.decode_head(src, scanned)? {
                    Some(len) => self.state = State::Data(len),
                    None => return Ok(None),
                },
                State::Data(len) => {
                    if src.len() < len {
                        return Ok(None);
                    }
                    self.state = State::Head { scanned: 0 };
                    return Ok(Some(src.split_to(len).freeze()));
                }
            }
        }
    }

    fn decode_eof(&mut self, src: &mut BytesMut) -> Result<Option<Bytes>, RecordIoError> {
        match self.decode(src)? {
            Some(record) => Ok(Some(record)),
            None => match self.state {
                State::Head { .. } if src.is_empty() => Ok(None),
                State::Head { .. } => Err(RecordIoError::Truncated { expected: 0, got: 0, header: src.len() }),
                State::Data(len) => Err(RecordIoError::Truncated { expected: len as u64, got: src.len(), header: 0 }),
            },
        }
    }
}

impl<T: AsRef<[u8]>> Encoder<T> for RecordIoCodec {
    type Error = RecordIoError;

    fn encode(&mut self, record: T, dst: &mut BytesMut) -> Result<(), RecordIoError> {
        let record = record.as_ref();
        let digits = record.len().to_string();
        dst.reserve(digits.len() + 1 + record.len());
        dst.put_slice(digits.as_bytes());
        dst.put_u8(b'\n');
        dst.put_slice(record);
        Ok(())
    }
}

/// Frames one record into a new buffer: `<len>\n<record>`.
pub fn frame(record: &[u8]) -> Bytes {
    let mut out = BytesMut::new();
    // Encoding into memory cannot fail.
    let _ = RecordIoCodec::default().encode(record, &mut out);
    out.freeze()
}

#[cfg(test)]
mod tests;
