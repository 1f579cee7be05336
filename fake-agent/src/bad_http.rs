//! Malformed HTTP on demand ([`Fault::BadHttp`](crate::Fault::BadHttp)): while such a
//! fault is armed, the first request of each new connection is read here (head by
//! httparse, body by its length). If it is the kind of call the fault targets, the
//! agent answers with the fault's bytes instead of HTTP; otherwise the connection goes
//! on to hyper as usual, with the bytes already read put back in front.

use std::{
    io,
    pin::Pin,
    task::{Context, Poll},
    time::Duration,
};

use mesos_executor::proto::v1::executor::call;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, ReadBuf};

use crate::{
    agent::{Agent, BadHttp, HttpTarget},
    validate::decode_call,
};

/// Longest request head read while looking for a fault's target.
const MAX_REQUEST_HEAD: usize = 64 * 1024;
/// Longest request body read likewise (a LAUNCH-sized call is far below this).
const MAX_REQUEST_BODY: usize = 16 * 1024 * 1024;

/// An IO with bytes already read put back in front of it.
pub struct Prefixed<T> {
    prefix: Vec<u8>,
    at: usize,
    inner: T,
}

impl<T: AsyncRead + Unpin> AsyncRead for Prefixed<T> {
    fn poll_read(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
        if self.at < self.prefix.len() {
            let n = buf.remaining().min(self.prefix.len() - self.at);
            let at = self.at;
            buf.put_slice(&self.prefix[at..at + n]);
            self.at += n;
            return Poll::Ready(Ok(()));
        }
        Pin::new(&mut self.inner).poll_read(cx, buf)
    }
}

impl<T: AsyncWrite + Unpin> AsyncWrite for Prefixed<T> {
    fn poll_write(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write(cx, buf)
    }
    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }
    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

/// What became of a connection.
pub enum Intercepted<T> {
    /// The fault was served (or the connection broke); nothing more to do.
    Served,
    /// Not a target: serve it as usual.
    Pass(Prefixed<T>),
}

/// Reads the first request of `io` and answers it with the armed fault if it targets it.
pub async fn intercept<T: AsyncRead + AsyncWrite + Unpin>(agent: &Agent, mut io: T) -> Intercepted<T> {
    let mut buf = Vec::with_capacity(4096);
    let Some((head_len, body_len, content_type)) = read_head(&mut io, &mut buf).await else {
        return Intercepted::Served;
    };
    while buf.len() < head_len + body_len {
        let mut chunk = [0u8; 8192];
        match io.read(&mut chunk).await {
            Ok(0) | Err(_) => return Intercepted::Served,
            Ok(n) => buf.extend_from_slice(&chunk[..n]),
        }
    }
    let body = &buf[head_len..head_len + body_len];
    let target = match decode_call(content_type.as_deref(), body) {
        Ok((call, _)) if call.r#type == Some(call::Type::Subscribe as i32) => Some(HttpTarget::Subscribe),
        Ok(_) => Some(HttpTarget::Call),
        Err(_) => None,
    };
    let reply = agent.with_state(|s| match (&mut s.bad_http, target) {
        (Some((reply, on, count)), Some(target)) if *on == target && *count > 0 => {
            *count -= 1;
            let reply = *reply;
            if *count == 0 {
                s.bad_http = None;
            }
            Some((reply, target))
        }
        _ => None,
    });
    let Some((reply, target)) = reply else { return Intercepted::Pass(Prefixed { prefix: buf, at: 0, inner: io }) };
    agent.note(format!("fault served: {reply:?} in answer to a {target:?} request"));
    if io.write_all(&reply.head(target)).await.is_err() {
        return Intercepted::Served;
    }
    match reply {
        BadHttp::NoAnswer => hold(&mut io).await,
        BadHttp::EndlessBody => {
            // One byte a chunk, ten a second, until the client gives up.
            while io.write_all(b"1\r\na\r\n").await.is_ok() {
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
        _ => hold(&mut io).await,
    }
    Intercepted::Served
}

/// Keeps the connection open, reading and dropping whatever comes, until the client closes it.
async fn hold<T: AsyncRead + Unpin>(io: &mut T) {
    let mut sink = [0u8; 4096];
    while matches!(io.read(&mut sink).await, Ok(n) if n > 0) {}
}

/// Reads a request head into `buf`: its length, the body length, and the content type.
async fn read_head<T: AsyncRead + Unpin>(io: &mut T, buf: &mut Vec<u8>) -> Option<(usize, usize, Option<String>)> {
    loop {
        let mut headers = [httparse::EMPTY_HEADER; 64];
        let mut request = httparse::Request::new(&mut headers);
        if let Ok(httparse::Status::Complete(head_len)) = request.parse(buf) {
            let header = |name: &str| {
                request
                    .headers
                    .iter()
                    .find(|h| h.name.eq_ignore_ascii_case(name))
                    .and_then(|h| std::str::from_utf8(h.value).ok())
                    .map(str::to_owned)
            };
            let body_len = header("content-length").and_then(|v| v.trim().parse::<usize>().ok()).unwrap_or(0);
            return (body_len <= MAX_REQUEST_BODY).then(|| (head_len, body_len, header("content-type")));
        }
        if buf.len() > MAX_REQUEST_HEAD {
            return None;
        }
        let mut chunk = [0u8; 4096];
        match tokio::time::timeout(Duration::from_secs(10), io.read(&mut chunk)).await {
            Ok(Ok(n)) if n > 0 => buf.extend_from_slice(&chunk[..n]),
            _ => return None,
        }
    }
}
