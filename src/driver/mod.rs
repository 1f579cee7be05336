//! The connection to the agent: RecordIO framing of the event stream.

pub mod recordio;

pub use recordio::{RecordIoCodec, RecordIoError};
