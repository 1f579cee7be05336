//! The listener: binds a loopback port (0 picks a free one), serves HTTP/1.1
//! connections, and when the agent "restarts" drops every connection and the listener
//! itself, then binds the same port again.

use std::{collections::BTreeMap, io, net::SocketAddr, path::Path, time::Duration};

use hyper::{server::conn::http1, service::service_fn};
use hyper_util::rt::TokioIo;
use tokio::net::{TcpListener, TcpStream};
use tokio_util::sync::CancellationToken;

use crate::{
    agent::Agent,
    config::AgentConfig,
    http::handle,
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
        tokio::spawn(serve(agent.clone(), listener, shutdown.clone()));
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
        process::executor_env(self.agent.config(), self.addr.port(), sandbox)
    }

    /// The executor API URL.
    pub fn url(&self) -> String {
        format!("http://{}/slave(1)/api/v1/executor", self.addr)
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

async fn serve(agent: Agent, listener: TcpListener, shutdown: CancellationToken) {
    let Ok(addr) = listener.local_addr() else { return };
    let mut listener = Some(listener);
    let mut net = agent.inner.net.subscribe();
    loop {
        let state = net.borrow_and_update().clone();
        if !state.up {
            listener = None;
            tokio::select! {
                _ = shutdown.cancelled() => return,
                changed = net.changed() => if changed.is_err() { return },
            }
            continue;
        }
        let current = match listener.take() {
            Some(l) => l,
            None => match bind_again(addr).await {
                Ok(l) => l,
                Err(e) => {
                    agent.note(format!("cannot listen on {addr} again: {e}"));
                    return;
                }
            },
        };
        loop {
            tokio::select! {
                _ = shutdown.cancelled() => return,
                _ = state.token.cancelled() => break,
                accepted = current.accept() => match accepted {
                    Ok((stream, _)) => {
                        tokio::spawn(connection(agent.clone(), stream, state.token.clone(), shutdown.clone()));
                    }
                    Err(_) => tokio::time::sleep(Duration::from_millis(10)).await,
                },
            }
        }
    }
}

async fn bind_again(addr: SocketAddr) -> io::Result<TcpListener> {
    let mut last = None;
    for _ in 0..100 {
        match TcpListener::bind(addr).await {
            Ok(listener) => return Ok(listener),
            Err(e) => last = Some(e),
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    Err(last.unwrap_or_else(|| io::Error::other("bind failed")))
}

async fn connection(agent: Agent, stream: TcpStream, incarnation: CancellationToken, shutdown: CancellationToken) {
    let _ = stream.set_nodelay(true);
    let service = service_fn(move |request| handle(agent.clone(), request));
    let conn = http1::Builder::new().keep_alive(true).serve_connection(TokioIo::new(stream), service);
    tokio::select! {
        _ = conn => {}
        _ = incarnation.cancelled() => {}
        _ = shutdown.cancelled() => {}
    }
}
