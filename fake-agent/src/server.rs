//! The listener: binds a loopback port (0 picks a free one), serves HTTP/1.1
//! connections, and when the agent "restarts" drops every connection and the listener
//! itself, then binds the same port again.

use std::{
    collections::BTreeMap,
    io,
    net::SocketAddr,
    path::Path,
    sync::{
        Arc,
        atomic::{AtomicBool, Ordering},
    },
    time::Duration,
};

use hyper::{server::conn::http1, service::service_fn};
use hyper_util::rt::TokioIo;
use tokio::{
    io::{AsyncRead, AsyncWrite},
    net::{TcpListener, UnixListener},
};
use tokio_util::sync::CancellationToken;

use crate::{
    agent::Agent,
    config::AgentConfig,
    http::{Via, handle},
    process::{self, Container, Output},
};

/// A fake agent to start.
#[derive(Debug, Clone, Default)]
pub struct FakeAgent {
    config: AgentConfig,
}

impl FakeAgent {
    /// An agent with `config`.
    pub fn new(config: AgentConfig) -> Self {
        FakeAgent { config }
    }

    /// Binds `127.0.0.1:0` and starts serving.
    ///
    /// # Errors
    /// The port cannot be bound.
    pub async fn start(self) -> io::Result<Listening> {
        self.start_on("127.0.0.1:0".parse().map_err(io::Error::other)?).await
    }

    /// Binds `addr` and starts serving.
    ///
    /// # Errors
    /// The port cannot be bound.
    pub async fn start_on(self, addr: SocketAddr) -> io::Result<Listening> {
        let listener = TcpListener::bind(addr).await?;
        let addr = listener.local_addr()?;
        let agent = Agent::new(self.config);
        *agent.inner.port.lock().unwrap_or_else(|p| p.into_inner()) = addr.port();
        let shutdown = CancellationToken::new();
        let tls = match &agent.config().tls {
            Some(tls) => Some(acceptor(tls)?),
            None => None,
        };
        tokio::spawn(serve(agent.clone(), Bound::Tcp(listener), Spec::Tcp(addr), tls, shutdown.clone()));
        if let Some(path) = agent.config().domain_socket.clone() {
            let listener = bind_unix(&path)?;
            tokio::spawn(serve(agent.clone(), Bound::Unix(listener), Spec::Unix(path), None, shutdown.clone()));
        }
        Ok(Listening { addr, agent, shutdown, sandbox: None })
    }
}

/// A running fake agent. Dropping it stops the server and destroys the executor's
/// container, so a failing test leaves no process behind.
#[derive(Debug)]
pub struct Listening {
    /// Where it listens.
    pub addr: SocketAddr,
    /// The agent, to drive and inspect.
    pub agent: Agent,
    shutdown: CancellationToken,
    sandbox: Option<tempfile::TempDir>,
}

impl Listening {
    /// The environment a real agent would give an executor using `sandbox`.
    pub fn executor_env(&self, sandbox: &Path) -> BTreeMap<String, String> {
        process::executor_env(self.agent.config(), self.addr, sandbox)
    }

    /// The executor API URL.
    pub fn url(&self) -> String {
        let scheme = if self.agent.config().tls.is_some() { "https" } else { "http" };
        format!("{scheme}://{}/slave(1)/api/v1/executor", self.addr)
    }

    /// Marks the executor as started by hand in `sandbox` (or in-process): its container
    /// is recognised by the sandbox marker, and the registration timeout runs.
    pub fn expect_executor(&self, sandbox: &Path) {
        self.set_container(Container::new(Some(sandbox)));
        self.agent.arm_registration_timeout();
    }

    fn set_container(&self, container: Container) {
        *self.agent.inner.container.lock().unwrap_or_else(|p| p.into_inner()) = container;
    }

    /// Starts `command` as the executor in a fresh sandbox with the agent's environment,
    /// and watches it: when it exits, live tasks are failed as upstream does.
    ///
    /// # Errors
    /// The sandbox cannot be created or the command cannot be started.
    pub fn launch_executor(&mut self, command: &[String], output: Output) -> io::Result<std::path::PathBuf> {
        let sandbox = process::new_sandbox()?;
        let path = sandbox.path().to_path_buf();
        *self.agent.inner.executor_command.lock().unwrap_or_else(|p| p.into_inner()) = command.join(" ");
        let mut container = Container::new(Some(&path));
        let mut child = process::spawn_executor(command, &self.executor_env(&path), &path, output)?;
        container.pid = child.id();
        self.agent.note(format!("executor started: {} (pid {})", command.join(" "), container.pid.unwrap_or(0)));
        self.set_container(container);
        self.agent.arm_registration_timeout();
        let agent = self.agent.clone();
        tokio::spawn(async move {
            let how = match child.wait().await {
                Ok(status) => process::describe_exit(status),
                Err(e) => format!("could not be waited for: {e}"),
            };
            agent.executor_exited(&how);
        });
        self.sandbox = Some(sandbox);
        Ok(path)
    }

    /// Keeps the sandbox on disk after the agent stops; returns its path.
    pub fn keep_sandbox(&mut self) -> Option<std::path::PathBuf> {
        self.sandbox.take().map(|dir| dir.keep())
    }

    /// Stops serving and destroys the executor's container.
    pub fn stop(&self) {
        self.shutdown.cancel();
        self.agent.destroy_container("fake agent stopped");
    }
}

impl Drop for Listening {
    fn drop(&mut self) {
        self.stop();
    }
}

fn acceptor(tls: &crate::config::AgentTls) -> io::Result<tokio_rustls::TlsAcceptor> {
    use rustls_pki_types::{CertificateDer, PrivateKeyDer, pem::PemObject};
    let chain: Vec<CertificateDer<'static>> =
        CertificateDer::pem_slice_iter(tls.cert_pem.as_bytes()).collect::<Result<_, _>>().map_err(io::Error::other)?;
    let key = PrivateKeyDer::from_pem_slice(tls.key_pem.as_bytes()).map_err(io::Error::other)?;
    let provider = std::sync::Arc::new(tokio_rustls::rustls::crypto::ring::default_provider());
    let builder = tokio_rustls::rustls::ServerConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .map_err(io::Error::other)?;
    let builder = match &tls.client_ca_pem {
        Some(pem) => {
            let mut roots = tokio_rustls::rustls::RootCertStore::empty();
            for cert in CertificateDer::pem_slice_iter(pem.as_bytes()) {
                roots.add(cert.map_err(io::Error::other)?).map_err(io::Error::other)?;
            }
            let verifier =
                tokio_rustls::rustls::server::WebPkiClientVerifier::builder_with_provider(roots.into(), provider)
                    .build()
                    .map_err(io::Error::other)?;
            builder.with_client_cert_verifier(verifier)
        }
        None => builder.with_no_client_auth(),
    };
    let config = builder.with_single_cert(chain, key).map_err(io::Error::other)?;
    Ok(tokio_rustls::TlsAcceptor::from(std::sync::Arc::new(config)))
}

fn bind_unix(path: &Path) -> io::Result<UnixListener> {
    let _ = std::fs::remove_file(path);
    UnixListener::bind(path)
}

/// What to bind again after a restart.
#[derive(Clone)]
enum Spec {
    Tcp(SocketAddr),
    Unix(std::path::PathBuf),
}

enum Bound {
    Tcp(TcpListener),
    Unix(UnixListener),
}

trait Io: AsyncRead + AsyncWrite + Send + Unpin + 'static {}
impl<T: AsyncRead + AsyncWrite + Send + Unpin + 'static> Io for T {}

impl Bound {
    async fn accept(&self) -> io::Result<(Box<dyn Io>, Via)> {
        match self {
            Bound::Tcp(listener) => {
                let (stream, _) = listener.accept().await?;
                let _ = stream.set_nodelay(true);
                Ok((Box::new(stream), Via::Tcp))
            }
            Bound::Unix(listener) => Ok((Box::new(listener.accept().await?.0), Via::UnixSocket)),
        }
    }
}

async fn serve(
    agent: Agent,
    bound: Bound,
    spec: Spec,
    tls: Option<tokio_rustls::TlsAcceptor>,
    shutdown: CancellationToken,
) {
    let mut listener = Some(bound);
    let mut net = agent.inner.net.subscribe();
    loop {
        let state = net.borrow_and_update().clone();
        if !state.up {
            if listener.take().is_some()
                && let Spec::Unix(path) = &spec
            {
                let _ = std::fs::remove_file(path);
            }
            tokio::select! {
                _ = shutdown.cancelled() => return,
                changed = net.changed() => if changed.is_err() { return },
            }
            continue;
        }
        let current = match listener.take() {
            Some(l) => l,
            None => match bind_again(&spec).await {
                Ok(l) => l,
                Err(e) => {
                    agent.note(format!("cannot listen again: {e}"));
                    return;
                }
            },
        };
        loop {
            tokio::select! {
                _ = shutdown.cancelled() => return,
                _ = state.token.cancelled() => break,
                accepted = current.accept() => match accepted {
                    Ok((io, via)) => {
                        let agent = agent.clone();
                        let (token, shutdown, tls) = (state.token.clone(), shutdown.clone(), tls.clone());
                        tokio::spawn(async move {
                            match tls {
                                Some(acceptor) => match acceptor.accept(io).await {
                                    Ok(stream) => connection(agent, Box::new(stream), via, token, shutdown).await,
                                    Err(e) => agent.note(format!("TLS handshake failed: {e}")),
                                },
                                None => connection(agent, io, via, token, shutdown).await,
                            }
                        });
                    }
                    Err(_) => tokio::time::sleep(Duration::from_millis(10)).await,
                },
            }
        }
        if let Spec::Unix(path) = &spec {
            let _ = std::fs::remove_file(path);
        }
    }
}

async fn bind_again(spec: &Spec) -> io::Result<Bound> {
    let mut last = None;
    for _ in 0..100 {
        let result = match spec {
            Spec::Tcp(addr) => TcpListener::bind(addr).await.map(Bound::Tcp),
            Spec::Unix(path) => bind_unix(path).map(Bound::Unix),
        };
        match result {
            Ok(listener) => return Ok(listener),
            Err(e) => last = Some(e),
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    Err(last.unwrap_or_else(|| io::Error::other("bind failed")))
}

async fn connection(
    agent: Agent,
    io: Box<dyn Io>,
    via: Via,
    incarnation: CancellationToken,
    shutdown: CancellationToken,
) {
    let io: Box<dyn Io> = if agent.inspect(|s| s.bad_http.is_some()) {
        let intercepted = tokio::select! {
            intercepted = crate::bad_http::intercept(&agent, io) => intercepted,
            _ = incarnation.cancelled() => return,
            _ = shutdown.cancelled() => return,
        };
        match intercepted {
            crate::bad_http::Intercepted::Served => return,
            crate::bad_http::Intercepted::Pass(io) => Box::new(io),
        }
    } else {
        io
    };
    // Arming a malformed-HTTP fault for calls closes the keep-alive connections that
    // carry calls (not the event stream), so that the next call comes on a new one.
    let calls_reset = agent.inspect(|s| s.calls_reset.clone());
    let streams = Arc::new(AtomicBool::new(false));
    let marker = Arc::clone(&streams);
    let service = service_fn(move |request| {
        let (agent, marker) = (agent.clone(), Arc::clone(&marker));
        async move {
            let response = handle(agent, request, via).await;
            if let Ok(r) = &response
                && matches!(r.body(), http_body_util::Either::Left(_))
            {
                marker.store(true, Ordering::Relaxed);
            }
            response
        }
    });
    let conn = http1::Builder::new().keep_alive(true).serve_connection(TokioIo::new(io), service);
    tokio::pin!(conn);
    let mut reset_seen = false;
    loop {
        tokio::select! {
            _ = &mut conn => return,
            _ = incarnation.cancelled() => return,
            _ = shutdown.cancelled() => return,
            _ = calls_reset.cancelled(), if !reset_seen => {
                if !streams.load(Ordering::Relaxed) {
                    return;
                }
                reset_seen = true;
            }
        }
    }
}
