//! One agent, many executors: what an agent's restart looks like to the hundreds of
//! executors it runs. The herd agent accepts SUBSCRIBE from any executor of the
//! framework (each gets its own event stream and SUBSCRIBED), answers other calls 202,
//! and restarts as a real agent does (reference §10.6): connections dropped and
//! refused while it is down, every request answered 503 while it recovers, then
//! SUBSCRIBE accepted. It counts requests per executor and notes when each one's
//! SUBSCRIBED went out, so a test or benchmark can say how quickly the herd came back
//! and how hard it knocked meanwhile. It keeps no tasks: [`crate::FakeAgent`] is the
//! faithful single-executor agent; this is its crowd.

use std::{
    collections::HashMap,
    convert::Infallible,
    io,
    net::SocketAddr,
    sync::{Arc, Mutex, MutexGuard},
    time::{Duration, Instant},
};

use bytes::Bytes;
use http_body_util::{BodyExt, Either, Full, Limited};
use hyper::{Request, Response, StatusCode, body::Incoming, header, server::conn::http1, service::service_fn};
use hyper_util::rt::TokioIo;
use mesos_executor::{
    proto::v1::executor::{Event, call, event},
    wire::encode,
};
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

use crate::{
    config::AgentConfig,
    stream::{EventBody, EventStream},
    validate::decode_call,
};

/// Where the herd agent is in its restart.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HerdPhase {
    /// Serving.
    Up,
    /// Not listening.
    Down,
    /// Listening, answering 503 to everything.
    Recovering,
}

/// What the herd agent saw of one executor.
#[derive(Debug, Clone, Default)]
pub struct Seen {
    /// Requests received (any call, any answer).
    pub requests: u64,
    /// Requests answered 503 while recovering.
    pub refused: u64,
    /// When its latest SUBSCRIBED went out.
    pub subscribed_at: Option<Instant>,
}

#[derive(Debug)]
struct State {
    phase: HerdPhase,
    executors: HashMap<String, Seen>,
    streams: HashMap<String, EventStream>,
    next_stream: u64,
    /// When SUBSCRIBE was last accepted again after a restart.
    accepting_since: Option<Instant>,
    /// Connections tried while down (each reset at once), over all executors.
    down_connects: u64,
}

/// A running herd agent; dropping it stops it.
pub struct HerdAgent {
    /// Where it listens.
    pub addr: SocketAddr,
    config: AgentConfig,
    state: Arc<Mutex<State>>,
    /// Cancelled to drop the listener and every connection (the agent goes down).
    incarnation: Mutex<CancellationToken>,
    shutdown: CancellationToken,
}

impl HerdAgent {
    /// Binds `127.0.0.1:0` and serves executors of `config`'s framework.
    ///
    /// # Errors
    /// The port cannot be bound.
    pub async fn start(config: AgentConfig) -> io::Result<HerdAgent> {
        let listener = TcpListener::bind("127.0.0.1:0").await?;
        let addr = listener.local_addr()?;
        let state = Arc::new(Mutex::new(State {
            phase: HerdPhase::Up,
            executors: HashMap::new(),
            streams: HashMap::new(),
            next_stream: 0,
            accepting_since: None,
            down_connects: 0,
        }));
        let herd = HerdAgent {
            addr,
            config,
            state,
            incarnation: Mutex::new(CancellationToken::new()),
            shutdown: CancellationToken::new(),
        };
        herd.serve(listener);
        Ok(herd)
    }

    /// The environment of executor `executor_id` (a real agent's, see
    /// [`crate::process::executor_env`]).
    pub fn executor_env(
        &self,
        executor_id: &str,
        sandbox: &std::path::Path,
    ) -> std::collections::BTreeMap<String, String> {
        let config = AgentConfig { executor_id: executor_id.to_owned(), ..self.config.clone() };
        crate::process::executor_env(&config, self.addr, sandbox)
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// What the agent saw of each executor.
    pub fn seen(&self) -> HashMap<String, Seen> {
        self.lock().executors.clone()
    }

    /// When SUBSCRIBE was accepted again after the last restart.
    pub fn accepting_since(&self) -> Option<Instant> {
        self.lock().accepting_since
    }

    /// Connection attempts while it was down (each was reset, as a closed port refuses
    /// them), counted for every executor together.
    pub fn down_connects(&self) -> u64 {
        self.lock().down_connects
    }

    /// The phase now.
    pub fn phase(&self) -> HerdPhase {
        self.lock().phase
    }

    /// Restarts: down (connections dropped, connects refused) for `down_for`, then 503
    /// to every request for `recovering_for`, then SUBSCRIBE accepted. Returns when it is.
    pub async fn restart(&self, down_for: Duration, recovering_for: Duration) {
        {
            let mut state = self.lock();
            state.phase = HerdPhase::Down;
            state.streams.clear();
            state.accepting_since = None;
        }
        let old = std::mem::take(&mut *self.incarnation.lock().unwrap_or_else(|p| p.into_inner()));
        old.cancel();
        // Down: every connection is counted and reset at once, which an executor sees as
        // a failed connection, as with a closed port, and which can be counted.
        let counting = CancellationToken::new();
        match bind(self.addr).await {
            Ok(listener) => {
                let (state, stop) = (Arc::clone(&self.state), counting.clone());
                tokio::spawn(async move {
                    loop {
                        tokio::select! {
                            _ = stop.cancelled() => return,
                            accepted = listener.accept() => if let Ok((stream, _)) = accepted {
                                state.lock().unwrap_or_else(|p| p.into_inner()).down_connects += 1;
                                let _ = stream.set_zero_linger();
                            },
                        }
                    }
                });
            }
            Err(e) => tracing::error!(error = %e, "herd agent cannot count connections while down"),
        }
        tokio::time::sleep(down_for).await;
        counting.cancel();
        self.lock().phase = HerdPhase::Recovering;
        match bind(self.addr).await {
            Ok(listener) => self.serve(listener),
            Err(e) => tracing::error!(error = %e, "herd agent cannot listen again"),
        }
        tokio::time::sleep(recovering_for).await;
        let mut state = self.lock();
        state.phase = HerdPhase::Up;
        state.accepting_since = Some(Instant::now());
    }

    fn serve(&self, listener: TcpListener) {
        let token = self.incarnation.lock().unwrap_or_else(|p| p.into_inner()).clone();
        let (state, config, shutdown, port) =
            (Arc::clone(&self.state), self.config.clone(), self.shutdown.clone(), self.addr.port());
        tokio::spawn(async move {
            loop {
                let (stream, _) = tokio::select! {
                    _ = token.cancelled() => return,
                    _ = shutdown.cancelled() => return,
                    accepted = listener.accept() => match accepted {
                        Ok(accepted) => accepted,
                        Err(_) => continue,
                    },
                };
                let (state, config, token, shutdown) =
                    (Arc::clone(&state), config.clone(), token.clone(), shutdown.clone());
                tokio::spawn(async move {
                    let service = service_fn(move |request| answer(Arc::clone(&state), config.clone(), port, request));
                    let conn = http1::Builder::new().serve_connection(TokioIo::new(stream), service);
                    tokio::select! {
                        _ = conn => {}
                        _ = token.cancelled() => {}
                        _ = shutdown.cancelled() => {}
                    }
                });
            }
        });
    }
}

impl Drop for HerdAgent {
    fn drop(&mut self) {
        self.shutdown.cancel();
    }
}

/// Binds `addr` again, retrying briefly while the old socket lingers.
async fn bind(addr: SocketAddr) -> io::Result<TcpListener> {
    let mut last = io::Error::other("bind failed");
    for _ in 0..100 {
        match TcpListener::bind(addr).await {
            Ok(listener) => return Ok(listener),
            Err(e) => last = e,
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    Err(last)
}

type Body = Either<EventBody, Full<Bytes>>;

fn text(status: StatusCode, message: &str) -> Response<Body> {
    let mut response = Response::new(Either::Right(Full::new(Bytes::from(message.to_owned()))));
    *response.status_mut() = status;
    response
}

async fn answer(
    state: Arc<Mutex<State>>,
    config: AgentConfig,
    port: u16,
    request: Request<Incoming>,
) -> Result<Response<Body>, Infallible> {
    let content_type = request.headers().get(header::CONTENT_TYPE).and_then(|v| v.to_str().ok()).map(str::to_owned);
    let Ok(body) = Limited::new(request.into_body(), 1024 * 1024).collect().await.map(|b| b.to_bytes()) else {
        return Ok(text(StatusCode::BAD_REQUEST, "unreadable body"));
    };
    let (call, media) = match decode_call(content_type.as_deref(), &body) {
        Ok(decoded) => decoded,
        Err(rejection) => return Ok(text(rejection.status, &rejection.message)),
    };
    let executor_id = call.executor_id.value.clone();
    let mut state = state.lock().unwrap_or_else(|p| p.into_inner());
    let phase = state.phase;
    let seen = state.executors.entry(executor_id.clone()).or_default();
    seen.requests += 1;
    if phase != HerdPhase::Up {
        seen.refused += 1;
        return Ok(text(StatusCode::SERVICE_UNAVAILABLE, "Agent has not finished recovery"));
    }
    if call.r#type != Some(call::Type::Subscribe as i32) {
        return Ok(text(StatusCode::ACCEPTED, ""));
    }
    seen.subscribed_at = Some(Instant::now());
    let id = state.next_stream;
    state.next_stream += 1;
    let (stream, body) = EventStream::new(id, media);
    let info = AgentConfig { executor_id: executor_id.clone(), ..config };
    let subscribed = Event {
        r#type: Some(event::Type::Subscribed as i32),
        subscribed: Some(event::Subscribed {
            executor_info: info.executor_info(""),
            framework_info: info.framework_info(),
            agent_info: info.agent_info(port),
            container_id: None,
        }),
        ..Default::default()
    };
    if let Ok(payload) = encode(&subscribed, media) {
        stream.send_record(&payload);
    }
    state.streams.insert(executor_id, stream);
    let mut response = Response::new(Either::Left(body));
    response.headers_mut().insert(header::CONTENT_TYPE, header::HeaderValue::from_static(media.as_str()));
    Ok(response)
}
