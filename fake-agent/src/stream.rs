//! The body of a SUBSCRIBE response: an endless chunked stream, one RecordIO record per
//! HTTP chunk as upstream writes it, fed through a channel by the agent. Dropping the
//! sender ends the stream with the terminating chunk; a reset aborts the connection.

use std::{
    pin::Pin,
    task::{Context, Poll},
};

use bytes::Bytes;
use http_body::{Body, Frame};
use tokio::sync::mpsc;

/// What the agent writes next on a stream.
#[derive(Debug)]
pub enum Chunk {
    /// One HTTP chunk (normally one whole RecordIO record).
    Data(Bytes),
    /// Abort the connection without the terminating chunk.
    Reset,
}

/// The response body; ends when every [`EventStream`] sender is gone.
#[derive(Debug)]
pub struct EventBody {
    rx: mpsc::UnboundedReceiver<Chunk>,
}

impl Body for EventBody {
    type Data = Bytes;
    type Error = std::io::Error;

    fn poll_frame(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Result<Frame<Bytes>, Self::Error>>> {
        match self.rx.poll_recv(cx) {
            Poll::Ready(Some(Chunk::Data(bytes))) => Poll::Ready(Some(Ok(Frame::data(bytes)))),
            Poll::Ready(Some(Chunk::Reset)) => {
                Poll::Ready(Some(Err(std::io::Error::other("fake agent reset the event stream"))))
            }
            Poll::Ready(None) => Poll::Ready(None),
            Poll::Pending => Poll::Pending,
        }
    }
}

/// The agent's end of one subscription's event stream.
#[derive(Debug)]
pub struct EventStream {
    /// Increasing id, so stale timers can tell they belong to an older stream.
    pub id: u64,
    /// Media type negotiated from the SUBSCRIBE's `Accept`.
    pub content_type: mesos_executor::ContentType,
    tx: mpsc::UnboundedSender<Chunk>,
}

impl EventStream {
    /// A new stream and the body to answer the SUBSCRIBE with.
    pub fn new(id: u64, content_type: mesos_executor::ContentType) -> (Self, EventBody) {
        let (tx, rx) = mpsc::unbounded_channel();
        (EventStream { id, content_type, tx }, EventBody { rx })
    }

    /// Writes one record (`<len>\n<payload>`) as one chunk. False if the client is gone.
    pub fn send_record(&self, payload: &[u8]) -> bool {
        let mut record = Vec::with_capacity(payload.len() + 12);
        record.extend_from_slice(payload.len().to_string().as_bytes());
        record.push(b'\n');
        record.extend_from_slice(payload);
        self.send_raw(Bytes::from(record))
    }

    /// Writes arbitrary bytes as one chunk (fault injection).
    pub fn send_raw(&self, bytes: Bytes) -> bool {
        self.tx.send(Chunk::Data(bytes)).is_ok()
    }

    /// Aborts the connection.
    pub fn reset(&self) {
        let _ = self.tx.send(Chunk::Reset);
    }

    /// Whether the client still holds the body.
    pub fn is_open(&self) -> bool {
        !self.tx.is_closed()
    }
}
