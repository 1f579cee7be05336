//! HTTP/1.1 to the agent, all of it through hyper. The SUBSCRIBE stream gets a
//! connection of its own (a call queued behind it on the same connection would never
//! be answered, reference §1.6); other calls share a keep-alive connection (`CallConnection`).
//! TCP, the agent's unix socket, or TLS. Response heads are capped at
//! [`MAX_HEAD`] and call bodies at [`MAX_ANSWER`]; hyper parses status lines, headers
//! and chunk sizes with overflow checks. Status codes become typed errors that know
//! whether a retry can help. Deadlines are the caller's: the lifecycle abandons a
//! SUBSCRIBE at its deadline, the outbox bounds each call.

use std::{io, path::PathBuf, sync::Arc, time::Duration};

use bytes::Bytes;
use futures_util::TryStreamExt;
use http_body_util::{BodyExt, Full, Limited};
use hyper::{Request, StatusCode, client::conn::http1::SendRequest, header};

use hyper_util::rt::TokioIo;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio_util::{codec::FramedRead, io::StreamReader};

use super::recordio::RecordIoCodec;
use crate::{ContentType, env::ExecutorEnv};

/// A failure to talk to the agent.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum TransportError {
    /// The connection could not be made (refused, unreachable, no such socket).
    #[error("cannot connect to the agent at {target}: {source}")]
    Connect {
        /// Where we tried.
        target: String,
        /// The OS error.
        #[source]
        source: io::Error,
    },
    /// The environment describes an endpoint no request can be made to (a token or
    /// address that is not a valid header value).
    #[error("the agent endpoint {target} cannot be used: {reason}")]
    Config {
        /// The endpoint.
        target: String,
        /// What is wrong with it.
        reason: String,
    },
    /// The TLS configuration or handshake failed.
    #[error("TLS with the agent at {target} failed: {reason}")]
    Tls {
        /// Where we tried.
        target: String,
        /// Why (an unknown CA, a name mismatch, ...).
        reason: String,
    },
    /// The HTTP exchange broke (connection reset, closed mid-response) or the answer was
    /// not HTTP we accept (a garbage status line, a head over `MAX_HEAD`, a bad chunk
    /// size): the source (hyper's error, opaque: hyper is not part of our API) says which.
    #[error("HTTP exchange with the agent failed: {}", error_chain(.0.as_ref()))]
    Http(#[source] Box<dyn std::error::Error + Send + Sync + 'static>),
    /// A call's answer body was longer than `MAX_ANSWER` or broke off.
    #[error("the agent's answer to {call} is unusable: {reason}")]
    Answer {
        /// The call type.
        call: &'static str,
        /// What was wrong.
        reason: String,
    },
    /// No answer within the deadline.
    #[error("the agent did not answer {call} within {}", crate::env::format_duration(*.after))]
    Timeout {
        /// The call type.
        call: &'static str,
        /// The deadline.
        after: Duration,
    },
    /// The agent answered with an unexpected status.
    #[error("the agent answered '{}' to {call}: {body}", status_text(*.status))]
    Status {
        /// The call type.
        call: &'static str,
        /// The HTTP status code.
        status: u16,
        /// The agent's plain-text explanation.
        body: String,
    },
}

/// `401 Unauthorized`: the code and its reason phrase, as hyper shows a status.
fn status_text(code: u16) -> String {
    StatusCode::from_u16(code).map_or_else(|_| code.to_string(), |status| status.to_string())
}

impl TransportError {
    /// Whether trying again later can succeed: transport failures, 503 (agent still
    /// recovering), 404 (routes not installed yet), other 5xx. Not: TLS errors, 400,
    /// 401, 403, 406, 415 (reference §7.2).
    pub fn is_retryable(&self) -> bool {
        match self {
            TransportError::Connect { .. }
            | TransportError::Http(_)
            | TransportError::Answer { .. }
            | TransportError::Timeout { .. } => true,
            TransportError::Tls { .. } | TransportError::Config { .. } => false,
            TransportError::Status { status, .. } => (500..600).contains(status) || *status == 404,
        }
    }

    /// The HTTP status code, when the agent answered.
    pub fn status(&self) -> Option<u16> {
        match self {
            TransportError::Status { status, .. } => Some(*status),
            _ => None,
        }
    }
}

/// Largest response head accepted (hyper's read buffer; its minimum is 8 KiB). The
/// agent's heads are a few hundred bytes.
pub const MAX_HEAD: usize = 64 * 1024;
/// Largest call answer body accepted: the agent answers calls with empty or short
/// plain-text bodies, so anything near this is hostile or broken.
pub const MAX_ANSWER: usize = 64 * 1024;
/// Most headers accepted in a response head.
const MAX_HEADERS: usize = 64;

pub(crate) trait Io: AsyncRead + AsyncWrite + Send + Unpin {}
impl<T: AsyncRead + AsyncWrite + Send + Unpin> Io for T {}

/// A connected stream to the agent: TCP, TLS over TCP, or the unix socket.
pub(crate) type BoxIo = Box<dyn Io>;

#[derive(Debug, Clone)]
enum Target {
    Tcp { host: String, port: u16 },
    Unix(PathBuf),
}

/// Where and how to reach the agent's executor API.
#[derive(Clone)]
pub(crate) struct Endpoint {
    target: Target,
    tls: Option<(tokio_rustls::TlsConnector, rustls_pki_types::ServerName<'static>)>,
    authority: String,
    path: String,
    /// Made once: every call carries the same request line and headers.
    uri: hyper::Uri,
    host: header::HeaderValue,
    authorization: Option<header::HeaderValue>,
    keepalive: socket2::TcpKeepalive,
    user_timeout: Duration,
    pub media: ContentType,
}

impl std::fmt::Debug for Endpoint {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Endpoint").field("target", &self.target).field("path", &self.path).finish_non_exhaustive()
    }
}

impl Endpoint {
    /// The endpoint described by `env`: the unix socket when `MESOS_DOMAIN_SOCKET` is
    /// set, else TCP to `MESOS_SLAVE_PID`'s address; TLS when libprocess SSL is on.
    pub fn new(env: &ExecutorEnv, media: ContentType, keepalive_idle: Duration) -> Result<Self, TransportError> {
        let (target, authority) = match &env.domain_socket {
            Some(path) => (Target::Unix(path.clone()), "localhost".to_owned()),
            None => (Target::Tcp { host: env.agent.host.clone(), port: env.agent.port }, env.agent.authority()),
        };
        let describe = || format!("{}{}", env.agent.authority(), env.agent.path());
        let tls = if env.tls.enabled {
            let config = super::tls::client_config(&env.tls)
                .map_err(|e| TransportError::Tls { target: describe(), reason: e.to_string() })?;
            let name = super::tls::server_name(&env.agent.host)
                .map_err(|e| TransportError::Tls { target: describe(), reason: e.to_string() })?;
            Some((tokio_rustls::TlsConnector::from(Arc::new(config)), name))
        } else {
            None
        };
        let authorization = match &env.auth_token {
            Some(token) => {
                let mut value = header::HeaderValue::from_str(&format!("Bearer {}", token.expose())).map_err(|_| {
                    TransportError::Config {
                        target: describe(),
                        reason: "the authentication token is not a valid header value".into(),
                    }
                })?;
                value.set_sensitive(true);
                Some(value)
            }
            None => None,
        };
        let keepalive = socket2::TcpKeepalive::new()
            .with_time(keepalive_idle)
            .with_interval((keepalive_idle / 2).max(Duration::from_secs(1)))
            .with_retries(3);
        // Keepalive gives up after idle + 3 probes at idle/2: about 2.5 times idle.
        let user_timeout = keepalive_idle * 5 / 2;
        let path = env.agent.path();
        let uri = path.parse().map_err(|_| TransportError::Config {
            target: describe(),
            reason: format!("the agent's path {path:?} is not a valid request path"),
        })?;
        let host = header::HeaderValue::from_str(&authority).map_err(|_| TransportError::Config {
            target: describe(),
            reason: format!("the agent's address {authority:?} is not a valid Host header"),
        })?;
        Ok(Endpoint { target, tls, authority, path, uri, host, authorization, keepalive, user_timeout, media })
    }

    fn describe(&self) -> String {
        match &self.target {
            Target::Tcp { .. } => format!("{}{}", self.authority, self.path),
            Target::Unix(path) => format!("unix:{}{}", path.display(), self.path),
        }
    }

    pub async fn connect_io(&self) -> Result<BoxIo, TransportError> {
        let connect_error = |source| TransportError::Connect { target: self.describe(), source };
        let io: Box<dyn Io> = match &self.target {
            Target::Tcp { host, port } => {
                let stream = tokio::net::TcpStream::connect((host.as_str(), *port)).await.map_err(connect_error)?;
                let _ = stream.set_nodelay(true);
                // TCP keepalive notices an agent host that vanished without closing the
                // connection; the stream itself must have no short read timeout, since
                // agents send HEARTBEAT only every 30 minutes.
                let socket = socket2::SockRef::from(&stream);
                let _ = socket.set_tcp_keepalive(&self.keepalive);
                // Data the agent never acknowledges (a host that vanished while we were
                // sending) is bounded the same way, not by the 15-minute retransmission
                // default.
                let _ = socket.set_tcp_user_timeout(Some(self.user_timeout));
                if let Some((connector, name)) = &self.tls {
                    let tls = connector
                        .connect(name.clone(), stream)
                        .await
                        .map_err(|e| TransportError::Tls { target: self.describe(), reason: e.to_string() })?;
                    Box::new(tls)
                } else {
                    Box::new(stream)
                }
            }
            Target::Unix(path) => Box::new(tokio::net::UnixStream::connect(path).await.map_err(connect_error)?),
        };
        Ok(io)
    }

    /// A hyper error, as a TLS error when a TLS alert lies beneath (the agent refused
    /// our certificate after a TLS 1.3 handshake): retrying would not help.
    fn classify(&self, error: hyper::Error) -> TransportError {
        let mut source: Option<&(dyn std::error::Error + 'static)> = std::error::Error::source(&error);
        while let Some(cause) = source {
            // io::Error::source() skips the error it wraps, so look inside it too.
            let wrapped = cause.downcast_ref::<io::Error>().and_then(io::Error::get_ref);
            if cause.downcast_ref::<rustls::Error>().is_some()
                || wrapped.is_some_and(|e| e.downcast_ref::<rustls::Error>().is_some())
            {
                return TransportError::Tls { target: self.describe(), reason: error_chain(&error) };
            }
            source = cause.source();
        }
        TransportError::Http(Box::new(error))
    }

    /// A new HTTP/1.1 connection; its driver task ends when the connection does.
    async fn connect(&self) -> Result<(SendRequest<Full<Bytes>>, tokio::task::JoinHandle<()>), TransportError> {
        let io = self.connect_io().await?;
        self.handshake(io).await
    }

    /// HTTP/1.1 over a connected `io`, with the caps on response heads.
    async fn handshake(
        &self,
        io: BoxIo,
    ) -> Result<(SendRequest<Full<Bytes>>, tokio::task::JoinHandle<()>), TransportError> {
        let (sender, connection) = hyper::client::conn::http1::Builder::new()
            .max_buf_size(MAX_HEAD)
            .max_headers(MAX_HEADERS)
            .handshake(TokioIo::new(io))
            .await
            .map_err(|e| self.classify(e))?;
        let task = tokio::spawn(async move {
            let _ = connection.await;
        });
        Ok((sender, task))
    }

    /// A keep-alive connection for calls other than SUBSCRIBE.
    ///
    /// # Errors
    /// The connection or TLS handshake failed.
    ///
    /// # Cancel safety
    /// Dropping the future drops the half-made connection.
    pub async fn open_calls(&self) -> Result<CallConnection, TransportError> {
        let (sender, task) = self.connect().await?;
        Ok(CallConnection { sender, task })
    }

    /// A call connection over a connected `io`.
    pub(crate) async fn calls_on(&self, io: BoxIo) -> Result<CallConnection, TransportError> {
        let (sender, task) = self.handshake(io).await?;
        Ok(CallConnection { sender, task })
    }

    /// POSTs one call on `connection` and reads its whole answer (at most
    /// [`MAX_ANSWER`] bytes of body). `Ok` for `202 Accepted`.
    ///
    /// # Errors
    /// A transport failure, a malformed or oversize answer, or another status.
    ///
    /// # Cancel safety
    /// Not cancel-safe: the call may or may not have reached the agent. Drop the
    /// connection after a cancelled post (an answer may still be on its way).
    pub async fn post(
        &self,
        connection: &mut CallConnection,
        call: &'static str,
        body: Bytes,
    ) -> Result<(), TransportError> {
        connection.sender.ready().await.map_err(|e| self.classify(e))?;
        let response = connection.sender.send_request(self.request(body)).await.map_err(|e| self.classify(e))?;
        let status = response.status();
        // Read the body to its end even for a 202, so the connection can carry the next call.
        let body = match Limited::new(response.into_body(), MAX_ANSWER).collect().await {
            Ok(collected) => collected.to_bytes(),
            Err(e) => return Err(TransportError::Answer { call, reason: error_chain(&*e) }),
        };
        if status == StatusCode::ACCEPTED {
            return Ok(());
        }
        let body = String::from_utf8_lossy(&body).trim().to_owned();
        Err(TransportError::Status { call, status: status.as_u16(), body })
    }

    fn request(&self, body: Bytes) -> Request<Full<Bytes>> {
        let mut request = Request::new(Full::new(body));
        *request.method_mut() = hyper::Method::POST;
        *request.uri_mut() = self.uri.clone();
        let headers = request.headers_mut();
        headers.insert(header::HOST, self.host.clone());
        headers.insert(header::CONTENT_TYPE, header::HeaderValue::from_static(self.media.as_str()));
        headers.insert(header::ACCEPT, header::HeaderValue::from_static(self.media.as_str()));
        if let Some(auth) = &self.authorization {
            headers.insert(header::AUTHORIZATION, auth.clone());
        }
        request
    }

    /// POSTs a SUBSCRIBE on a connection of its own and returns the decoded stream.
    ///
    /// # Errors
    /// A transport failure, or a status other than 200.
    pub async fn subscribe(&self, body: Bytes, max_record_len: usize) -> Result<EventStream, TransportError> {
        let io = self.connect_io().await?;
        self.subscribe_on(io, body, max_record_len).await
    }

    /// [`Endpoint::subscribe`] over a connected `io`.
    pub(crate) async fn subscribe_on(
        &self,
        io: BoxIo,
        body: Bytes,
        max_record_len: usize,
    ) -> Result<EventStream, TransportError> {
        let (mut sender, connection) = self.handshake(io).await?;
        let response = sender.send_request(self.request(body)).await.map_err(|e| self.classify(e))?;
        if response.status() != StatusCode::OK {
            let status = response.status();
            let body = read_text(response.into_body()).await;
            connection.abort();
            return Err(TransportError::Status { call: "SUBSCRIBE", status: status.as_u16(), body });
        }
        let media = response
            .headers()
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .and_then(ContentType::from_exact)
            .unwrap_or(self.media);
        let data = response.into_body().into_data_stream().map_err(|e| io::Error::other(error_chain(&e)));
        let frames =
            FramedRead::new(StreamReader::new(Box::pin(data) as DataStream), RecordIoCodec::new(max_record_len));
        Ok(EventStream { frames, media, connection })
    }
}

/// An error and its causes, `outer: inner: ...`, so that logs say why (hyper's display
/// of a body error omits the OS error beneath, such as a keepalive timeout).
pub(crate) fn error_chain(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}

type DataStream = std::pin::Pin<Box<dyn futures_util::Stream<Item = Result<Bytes, io::Error>> + Send>>;

/// A keep-alive HTTP/1.1 connection for calls. Dropping it closes the connection.
pub(crate) struct CallConnection {
    sender: SendRequest<Full<Bytes>>,
    task: tokio::task::JoinHandle<()>,
}

impl CallConnection {
    /// Whether the agent closed it (the next call needs a new one).
    pub fn is_closed(&self) -> bool {
        self.sender.is_closed()
    }
}

impl Drop for CallConnection {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// The decoded event stream of one subscription. Dropping it closes the connection.
pub(crate) struct EventStream {
    /// RecordIO records as they arrive.
    pub frames: FramedRead<StreamReader<DataStream, Bytes>, RecordIoCodec>,
    /// The media type the agent chose for the events.
    pub media: ContentType,
    connection: tokio::task::JoinHandle<()>,
}

impl Drop for EventStream {
    fn drop(&mut self) {
        self.connection.abort();
    }
}

async fn read_text(body: hyper::body::Incoming) -> String {
    match Limited::new(body, MAX_ANSWER).collect().await {
        Ok(collected) => String::from_utf8_lossy(&collected.to_bytes()).trim().to_owned(),
        Err(e) => format!("<unreadable body: {e}>"),
    }
}
