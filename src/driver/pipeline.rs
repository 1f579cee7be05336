//! Calls other than SUBSCRIBE, POSTed on one keep-alive HTTP/1.1 connection with
//! pipelining: up to [`WINDOW`] requests in flight, answered in order (the agent's
//! libprocess server answers pipelined requests strictly in order, reference §1.6).
//!
//! Order per task is the point, so the window opens only after the connection has had
//! a `202` (an agent still recovering answers 503, and a 503 followed by a 202 would
//! reorder updates); any retryable refusal closes it to one call at a time again.

use std::{
    collections::VecDeque,
    io,
    time::{Duration, Instant},
};

use bytes::{Buf, BufMut, Bytes, BytesMut};
use hyper::StatusCode;
use tokio::{
    io::{AsyncReadExt, AsyncWriteExt, ReadHalf, WriteHalf},
    sync::mpsc,
};

use super::{
    calls::{Outgoing, PendingSet, Refused},
    transport::{BoxIo, Endpoint, TransportError},
};

/// Requests in flight at most once the connection has proven itself.
pub(crate) const WINDOW: usize = 128;
/// Largest response to a call we buffer: the agent answers calls with empty or short
/// plain-text bodies, so anything near this is hostile or broken.
pub(crate) const MAX_ANSWER: usize = 1024 * 1024;
const FIRST_RETRY: Duration = Duration::from_millis(10);
const LAST_RETRY: Duration = Duration::from_millis(250);

/// One parsed response.
#[derive(Debug)]
pub(crate) struct Answer {
    pub status: StatusCode,
    pub body: Bytes,
}

struct Connection {
    writer: WriteHalf<BoxIo>,
    answers: mpsc::UnboundedReceiver<io::Result<Answer>>,
    reader: tokio::task::JoinHandle<()>,
}

impl Drop for Connection {
    fn drop(&mut self) {
        self.reader.abort();
    }
}

/// Sends queued calls in order, retrying what the agent cannot take yet.
pub(crate) async fn run(
    endpoint: Endpoint,
    mut queue_rx: mpsc::UnboundedReceiver<Outgoing>,
    refused: mpsc::UnboundedSender<Refused>,
    pending: PendingSet,
    metrics: crate::metrics::Metrics,
) {
    let mut queue: VecDeque<Outgoing> = VecDeque::new();
    let mut in_flight: VecDeque<Outgoing> = VecDeque::new();
    // Calls refused for now, in the order they were sent; resent before anything newer
    // once every earlier answer is in.
    let mut retry: VecDeque<Outgoing> = VecDeque::new();
    let mut connection: Option<Connection> = None;
    let mut proven = false;
    let mut delay = FIRST_RETRY;
    let mut not_before: Option<Instant> = None;
    let mut closed = false;
    loop {
        let acknowledged = |item: &Outgoing| {
            item.uuid.as_ref().is_some_and(|u| !pending.lock().map(|p| p.contains(u)).unwrap_or(true))
        };
        if in_flight.is_empty() {
            while let Some(item) = retry.pop_back() {
                queue.push_front(item);
            }
        }
        let ready = retry.is_empty() && not_before.is_none_or(|t| Instant::now() >= t);
        if ready && !queue.is_empty() {
            if connection.is_none() {
                match endpoint.connect_io().await {
                    Ok(io) => connection = Some(open(io)),
                    Err(error) => {
                        tracing::debug!(%error, "cannot connect for calls; retrying");
                        not_before = Some(Instant::now() + delay);
                        delay = (delay * 2).min(LAST_RETRY);
                    }
                }
            }
            if let Some(conn) = &mut connection {
                let window = if proven { WINDOW } else { 1 };
                let mut batch = BytesMut::new();
                while in_flight.len() < window {
                    let Some(item) = queue.pop_front() else { break };
                    if acknowledged(&item) {
                        continue;
                    }
                    endpoint.write_request(&mut batch, &item.body);
                    in_flight.push_back(item);
                }
                if !batch.is_empty() && conn.writer.write_all(&batch).await.is_err() {
                    connection = None;
                    requeue(&mut queue, &mut in_flight, &mut retry);
                    proven = false;
                    continue;
                }
            }
        }
        let wait = not_before.map(tokio::time::Instant::from_std);
        tokio::select! {
            item = queue_rx.recv(), if !closed => match item {
                Some(item) => queue.push_back(item),
                None => closed = true,
            },
            answer = async { match &mut connection { Some(c) => c.answers.recv().await, None => std::future::pending().await } } => {
                let Some(item) = in_flight.pop_front() else { continue };
                match answer {
                    Some(Ok(answer)) if answer.status == StatusCode::ACCEPTED => {
                        metrics.call(item.name, "accepted");
                        proven = true;
                        delay = FIRST_RETRY;
                        not_before = None;
                    }
                    Some(Ok(answer)) => {
                        let error = TransportError::Status {
                            call: item.name,
                            status: answer.status,
                            body: String::from_utf8_lossy(&answer.body).trim().to_owned(),
                        };
                        // 503 while the agent finishes recovery, 403 until it has caught
                        // up with our SUBSCRIBE: try again, one call at a time.
                        if error.is_retryable() || answer.status == StatusCode::FORBIDDEN {
                            tracing::debug!(call = item.name, %error, retry_in = ?delay, "call not accepted yet");
                            metrics.call(item.name, "retried");
                            proven = false;
                            retry.push_back(item);
                            not_before = Some(Instant::now() + delay);
                            delay = (delay * 2).min(LAST_RETRY);
                        } else {
                            metrics.call(item.name, "refused");
                            let _ = refused.send(Refused { name: item.name, uuid: item.uuid.clone(), error });
                        }
                    }
                    Some(Err(_)) | None => {
                        metrics.call(item.name, "connection_error");
                        in_flight.push_front(item);
                        connection = None;
                        proven = false;
                        requeue(&mut queue, &mut in_flight, &mut retry);
                        not_before = Some(Instant::now() + delay);
                        delay = (delay * 2).min(LAST_RETRY);
                    }
                }
            },
            _ = async { match wait { Some(t) => tokio::time::sleep_until(t).await, None => std::future::pending().await } } => {
                not_before = None;
            },
        }
        if closed && queue.is_empty() && in_flight.is_empty() && retry.is_empty() {
            return;
        }
    }
}

/// After a broken connection: every unanswered call back at the front of the queue,
/// the refused ones (sent earlier) first, in their order.
fn requeue(queue: &mut VecDeque<Outgoing>, in_flight: &mut VecDeque<Outgoing>, retry: &mut VecDeque<Outgoing>) {
    while let Some(item) = in_flight.pop_back() {
        queue.push_front(item);
    }
    while let Some(item) = retry.pop_back() {
        queue.push_front(item);
    }
}

fn open(io: BoxIo) -> Connection {
    let (read, writer) = tokio::io::split(io);
    let (tx, answers) = mpsc::unbounded_channel();
    let reader = tokio::spawn(read_answers(read, tx));
    Connection { writer, answers, reader }
}

async fn read_answers(mut read: ReadHalf<BoxIo>, tx: mpsc::UnboundedSender<io::Result<Answer>>) {
    let mut buf = BytesMut::with_capacity(4096);
    loop {
        match parse_answer(&mut buf) {
            Ok(Some(answer)) => {
                if tx.send(Ok(answer)).is_err() {
                    return;
                }
                continue;
            }
            Ok(None) => {}
            Err(e) => {
                let _ = tx.send(Err(e));
                return;
            }
        }
        match read.read_buf(&mut buf).await {
            Ok(0) => {
                let _ = tx.send(Err(io::Error::new(io::ErrorKind::UnexpectedEof, "the agent closed the connection")));
                return;
            }
            Ok(_) => {}
            Err(e) => {
                let _ = tx.send(Err(e));
                return;
            }
        }
    }
}

/// Parses one complete response (status line, headers, a `Content-Length` or chunked
/// body) from the front of `buf`, or `None` if it is not all there yet.
pub(crate) fn parse_answer(buf: &mut BytesMut) -> io::Result<Option<Answer>> {
    let invalid = |why: String| io::Error::new(io::ErrorKind::InvalidData, why);
    let mut headers = [httparse::EMPTY_HEADER; 32];
    let mut response = httparse::Response::new(&mut headers);
    let head_len = match response.parse(buf).map_err(|e| invalid(format!("malformed HTTP response: {e}")))? {
        httparse::Status::Complete(n) => n,
        httparse::Status::Partial if buf.len() > MAX_ANSWER => {
            return Err(invalid(format!("HTTP response head longer than {MAX_ANSWER} bytes")));
        }
        httparse::Status::Partial => return Ok(None),
    };
    let status = response
        .code
        .and_then(|c| StatusCode::from_u16(c).ok())
        .ok_or_else(|| invalid("HTTP response without a status".to_owned()))?;
    let header = |name: &str| response.headers.iter().find(|h| h.name.eq_ignore_ascii_case(name)).map(|h| h.value);
    let chunked = header("transfer-encoding").is_some_and(|v| v.eq_ignore_ascii_case(b"chunked"));
    let length = match header("content-length") {
        Some(v) => Some(
            std::str::from_utf8(v)
                .ok()
                .and_then(|s| s.trim().parse::<usize>().ok())
                .ok_or_else(|| invalid("bad Content-Length".to_owned()))?,
        ),
        None => None,
    };
    let no_body = status.is_informational() || status == StatusCode::NO_CONTENT || status == StatusCode::NOT_MODIFIED;
    if length.is_some_and(|l| l > MAX_ANSWER) || chunked && buf.len() > head_len + MAX_ANSWER {
        return Err(invalid(format!("HTTP response body longer than {MAX_ANSWER} bytes")));
    }
    if chunked {
        let Some((body, used)) = dechunk(&buf[head_len..])? else { return Ok(None) };
        buf.advance(head_len + used);
        return Ok(Some(Answer { status, body }));
    }
    let length = if no_body { 0 } else { length.ok_or_else(|| invalid("response without a length".to_owned()))? };
    if buf.len() < head_len + length {
        return Ok(None);
    }
    buf.advance(head_len);
    Ok(Some(Answer { status, body: buf.split_to(length).freeze() }))
}

/// A whole chunked body and the bytes it used, or `None` if incomplete.
fn dechunk(mut data: &[u8]) -> io::Result<Option<(Bytes, usize)>> {
    let start = data.len();
    let mut body = BytesMut::new();
    loop {
        let Some(line_end) = data.windows(2).position(|w| w == b"\r\n") else { return Ok(None) };
        let size_text = std::str::from_utf8(&data[..line_end]).unwrap_or("");
        let size = usize::from_str_radix(size_text.split(';').next().unwrap_or("").trim(), 16)
            .map_err(|_| io::Error::new(io::ErrorKind::InvalidData, "bad chunk size"))?;
        data = &data[line_end + 2..];
        if size == 0 {
            // Trailers are not used by the agent: expect the final CRLF.
            if data.len() < 2 {
                return Ok(None);
            }
            return Ok(Some((body.freeze(), start - data.len() + 2)));
        }
        if data.len() < size + 2 {
            return Ok(None);
        }
        body.put_slice(&data[..size]);
        data = &data[size + 2..];
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pipelined_answers_parse_in_order() {
        let mut buf = BytesMut::from(
            &b"HTTP/1.1 202 Accepted\r\nContent-Length: 0\r\n\r\nHTTP/1.1 503 Service Unavailable\r\nContent-Length: 31\r\n\r\nAgent has not finished recoveryHTTP/1.1 400 Bad Request\r\nTransfer-Encoding: chunked\r\n\r\n4\r\nbad \r\n3\r\nuui\r\n0\r\n\r\nHTTP/1.1 202"[..],
        );
        let a = parse_answer(&mut buf).unwrap().unwrap();
        assert_eq!((a.status, a.body.len()), (StatusCode::ACCEPTED, 0));
        let b = parse_answer(&mut buf).unwrap().unwrap();
        assert_eq!((b.status, &b.body[..]), (StatusCode::SERVICE_UNAVAILABLE, &b"Agent has not finished recovery"[..]));
        let c = parse_answer(&mut buf).unwrap().unwrap();
        assert_eq!((c.status, &c.body[..]), (StatusCode::BAD_REQUEST, &b"bad uui"[..]));
        assert!(parse_answer(&mut buf).unwrap().is_none(), "a partial response waits for more");
        buf.extend_from_slice(b" Accepted\r\ncontent-length: 2\r\n\r\nok");
        assert_eq!(&parse_answer(&mut buf).unwrap().unwrap().body[..], b"ok");
        assert!(buf.is_empty());
    }

    #[test]
    fn hostile_sizes_are_refused_before_buffering() {
        let mut huge = BytesMut::from(&b"HTTP/1.1 202 Accepted\r\nContent-Length: 10737418240\r\n\r\n"[..]);
        assert!(parse_answer(&mut huge).is_err(), "a 10 GB body is refused at once");
        let mut endless = BytesMut::from(&b"HTTP/1.1 202 Accepted\r\nX-Filler: "[..]);
        endless.extend(std::iter::repeat_n(b'a', MAX_ANSWER + 1));
        assert!(parse_answer(&mut endless).is_err(), "an endless head is refused");
        let mut chunks = BytesMut::from(&b"HTTP/1.1 400 Bad\r\nTransfer-Encoding: chunked\r\n\r\n"[..]);
        for _ in 0..(MAX_ANSWER / 8 + 2) {
            chunks.extend_from_slice(b"3\r\nabc\r\n");
        }
        assert!(parse_answer(&mut chunks).is_err(), "an endless chunked body is refused");
    }

    #[test]
    fn garbage_is_an_error() {
        let mut buf = BytesMut::from(&b"SSH-2.0-OpenSSH\r\n\r\n"[..]);
        assert!(parse_answer(&mut buf).is_err());
        let mut buf = BytesMut::from(&b"HTTP/1.1 202 Accepted\r\nContent-Length: x\r\n\r\n"[..]);
        assert!(parse_answer(&mut buf).is_err());
    }
}
