//! The optional metrics endpoint (`--metrics_address`): `GET /metrics` over plain HTTP/1.1
//! for a local scraper, on TCP or on a unix socket. The metrics file is the main output; this is a convenience, so it
//! must never cost the daemon or its tasks anything they need.
//!
//! Threat model: any local process can connect (the endpoint has no authentication; it
//! serves nothing secret). A client that connects and never asks, asks slowly, or never
//! reads holds a descriptor and a task; so at most [`MAX_CONNECTIONS`] are held at once,
//! each must send its request head within [`REQUEST_READ_TIMEOUT`], is answered once (no
//! keep-alive), and is closed after [`CONNECTION_DEADLINE`] whatever it does. At the cap,
//! a new connection takes the place of the oldest one that has not asked yet (so idle
//! connections cannot keep a scraper out, which asks as soon as it connects); when every
//! held connection has asked, the new one is closed at once. An accept that fails (out
//! of descriptors) pauses instead of spinning.

use std::{
    path::{Path, PathBuf},
    sync::{
        Arc, Weak,
        atomic::{AtomicBool, Ordering},
    },
    time::Duration,
};

use http_body_util::Full;
use hyper::{Response, StatusCode, body::Bytes, service::service_fn};
use mesos_executor::metrics::Metrics;
use tokio::{
    io::{AsyncRead, AsyncWrite},
    net::{TcpListener, UnixListener},
    sync::oneshot,
};
use tracing::{info, warn};

use crate::host_metrics::MetricsAddress;

/// Connections served at once; a scraper needs one.
pub const MAX_CONNECTIONS: usize = 4;

/// Longest wait for a request head (a scrape sends it at once).
pub const REQUEST_READ_TIMEOUT: Duration = Duration::from_secs(5);

/// Longest life of one connection, answer included.
pub const CONNECTION_DEADLINE: Duration = Duration::from_secs(10);

/// Pause after a failed accept.
const ACCEPT_RETRY: Duration = Duration::from_millis(100);

/// A held connection, as the accept loop sees it.
struct Held {
    /// Still waiting for its request head: may give its place to a newcomer.
    waiting: Arc<AtomicBool>,
    /// Ends the connection's task when sent or dropped.
    evict: oneshot::Sender<()>,
    /// Gone once the connection's task has ended.
    alive: Weak<()>,
}

/// A connection, over TCP or a unix socket.
trait Io: AsyncRead + AsyncWrite + Unpin + Send {}

impl<T: AsyncRead + AsyncWrite + Unpin + Send> Io for T {}

/// Where the endpoint accepts connections.
enum Listener {
    Tcp(TcpListener),
    Unix(UnixListener),
}

impl Listener {
    async fn accept(&self) -> std::io::Result<Box<dyn Io>> {
        Ok(match self {
            Listener::Tcp(listener) => Box::new(listener.accept().await?.0),
            Listener::Unix(listener) => Box::new(listener.accept().await?.0),
        })
    }
}

/// A socket bound before the runtime serves it: bound first, so that the daemon hands
/// its watchdog only a socket file it made itself.
pub enum Bound {
    Tcp(std::net::TcpListener),
    /// With the socket file, which this daemon made and removes.
    Unix(std::os::unix::net::UnixListener, PathBuf),
}

/// A bind that failed: the daemon runs on without the endpoint.
pub struct BindError {
    address: String,
    error: std::io::Error,
}

/// Binds `address` (before the runtime and the watchdog start). A unix socket path
/// already taken (by another executor with the same ids, or given the same path) fails
/// here and is never this daemon's to remove.
///
/// # Errors
/// The bind failed; [`report`] logs it.
pub fn bind(address: &MetricsAddress) -> Result<Bound, BindError> {
    match address {
        MetricsAddress::Tcp(address) => std::net::TcpListener::bind(address)
            .map(Bound::Tcp)
            .map_err(|error| BindError { address: address.to_string(), error }),
        MetricsAddress::Unix(path) => std::os::unix::net::UnixListener::bind(path)
            .map(|listener| Bound::Unix(listener, path.clone()))
            .map_err(|error| BindError { address: format!("unix:{}", path.display()), error }),
    }
}

/// Logs where the metrics are served (the port the system chose, for port 0), or why
/// they are not.
pub fn report(bound: &Result<Bound, BindError>) {
    match bound {
        Ok(Bound::Tcp(listener)) => match listener.local_addr() {
            Ok(address) => info!(%address, "serving metrics at /metrics"),
            Err(e) => info!(error = %e, "serving metrics at /metrics (address unknown)"),
        },
        Ok(Bound::Unix(_, path)) => {
            info!(address = %format!("unix:{}", path.display()), "serving metrics at /metrics");
        }
        Err(BindError { address, error }) => warn!(%address, error = %error, "cannot serve metrics"),
    }
}

impl Bound {
    /// The socket file this daemon made, if any.
    pub fn socket(&self) -> Option<&Path> {
        match self {
            Bound::Tcp(_) => None,
            Bound::Unix(_, path) => Some(path),
        }
    }

    /// The listener for the runtime (called within it).
    fn into_listener(self) -> std::io::Result<Listener> {
        Ok(match self {
            Bound::Tcp(listener) => {
                listener.set_nonblocking(true)?;
                Listener::Tcp(TcpListener::from_std(listener)?)
            }
            Bound::Unix(listener, _) => {
                listener.set_nonblocking(true)?;
                Listener::Unix(UnixListener::from_std(listener)?)
            }
        })
    }
}

/// Serves `bound` until the runtime ends (from within it).
pub async fn serve_bound(bound: Bound, metrics: Metrics) {
    match bound.into_listener() {
        Ok(listener) => serve(listener, metrics).await,
        Err(e) => warn!(error = %e, "cannot serve metrics"),
    }
}

/// Serves `listener` until the runtime ends.
async fn serve(listener: Listener, metrics: Metrics) {
    let mut held: Vec<Held> = Vec::new();
    let mut refused_before = false;
    loop {
        let stream = match listener.accept().await {
            Ok(stream) => stream,
            Err(e) => {
                // Out of descriptors (EMFILE) fails every accept at once: pause, not spin.
                warn!(error = %e, "cannot accept a metrics connection");
                tokio::time::sleep(ACCEPT_RETRY).await;
                continue;
            }
        };
        held.retain(|h| h.alive.strong_count() > 0);
        if held.len() >= MAX_CONNECTIONS {
            // Oldest first: the one that has been silent longest gives its place.
            match held.iter().position(|h| h.waiting.load(Ordering::Relaxed)) {
                Some(oldest) => drop(held.remove(oldest).evict),
                None => {
                    if !refused_before {
                        warn!(max = MAX_CONNECTIONS, "metrics endpoint at its connection cap; closing new connections");
                        refused_before = true;
                    }
                    drop(stream);
                    continue;
                }
            }
        }
        let (alive, waiting, (evict, evicted)) = (Arc::new(()), Arc::new(AtomicBool::new(true)), oneshot::channel());
        held.push(Held { waiting: Arc::clone(&waiting), evict, alive: Arc::downgrade(&alive) });
        let metrics = metrics.clone();
        tokio::spawn(async move {
            let _alive = alive;
            let service = service_fn(move |request: hyper::Request<hyper::body::Incoming>| {
                waiting.store(false, Ordering::Relaxed);
                let response = answer(request.uri().path(), &metrics);
                async move { Ok::<_, std::convert::Infallible>(response) }
            });
            let connection = hyper::server::conn::http1::Builder::new()
                .timer(hyper_util::rt::TokioTimer::new())
                .header_read_timeout(REQUEST_READ_TIMEOUT)
                .keep_alive(false)
                .max_buf_size(16 * 1024)
                .serve_connection(hyper_util::rt::TokioIo::new(stream), service);
            tokio::select! {
                _ = tokio::time::timeout(CONNECTION_DEADLINE, connection) => {}
                _ = evicted => {}
            }
        });
    }
}

fn answer(path: &str, metrics: &Metrics) -> Response<Full<Bytes>> {
    if path == "/metrics" {
        let mut ok = Response::new(Full::new(Bytes::from(metrics.encode())));
        ok.headers_mut().insert(
            hyper::header::CONTENT_TYPE,
            hyper::header::HeaderValue::from_static("text/plain; version=0.0.4; charset=utf-8"),
        );
        ok
    } else {
        let mut missing = Response::new(Full::new(Bytes::from_static(b"see /metrics\n")));
        *missing.status_mut() = StatusCode::NOT_FOUND;
        missing
    }
}
