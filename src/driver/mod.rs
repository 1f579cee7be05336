//! The executor driver: one task owns the connection to the agent, the subscription
//! state and the unacknowledged updates, and calls the [`Executor`] one event at a time;
//! cheap [`DriverHandle`]s send it status updates and messages over a channel.
//!
//! Lifecycle as upstream: [`ExecutorDriver::start`], [`stop`](ExecutorDriver::stop),
//! [`abort`](ExecutorDriver::abort), [`join`](ExecutorDriver::join),
//! [`run`](ExecutorDriver::run). The rules for connecting, recovering and ending are a
//! pure state machine in `lifecycle.rs` (see its docs); `session.rs` performs what it
//! decides; `outbox.rs` POSTs calls; `transport.rs` is the HTTP underneath.

mod acks;
mod backoff;
mod calls;
pub mod events;
#[doc(hidden)]
pub mod fuzzing;
mod lifecycle;
mod outbox;
mod outcome;
pub mod recordio;
mod session;
pub(crate) mod tls;
mod transport;

use std::{
    sync::{
        Arc,
        atomic::{AtomicBool, AtomicU8, Ordering},
    },
    time::{Duration, SystemTime, UNIX_EPOCH},
};

use bytes::Bytes;
use tokio::sync::mpsc;

pub use self::{
    outcome::{DriverOutcome, ShutdownReason},
    recordio::{RecordIoCodec, RecordIoError},
    tls::TlsError,
    transport::TransportError,
};
use crate::{
    ContentType, EnvError, ExecutorEnv,
    executor::Executor,
    metrics::Metrics,
    proto::v1::{ExecutorId, TaskState, TaskStatus, task_status},
};

/// Where the driver is in its life (upstream `Status`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum DriverStatus {
    /// Built, not started.
    NotStarted = 1,
    /// Started: connecting, subscribed, or recovering.
    Running = 2,
    /// Ended by [`ExecutorDriver::abort`], or by itself after a SHUTDOWN whose grace
    /// period passed without [`DriverHandle::stop`], or after a fatal refusal.
    Aborted = 3,
    /// Ended by [`DriverHandle::stop`].
    Stopped = 4,
}

impl DriverStatus {
    fn from_u8(v: u8) -> Self {
        match v {
            2 => DriverStatus::Running,
            3 => DriverStatus::Aborted,
            4 => DriverStatus::Stopped,
            _ => DriverStatus::NotStarted,
        }
    }
}

/// Errors of the driver and its handle.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum DriverError {
    /// The driver is not running, so nothing can be sent.
    #[error("the executor driver is not running (status {0:?})")]
    NotRunning(DriverStatus),
    /// The update can never be accepted by an agent.
    #[error("invalid status update for task {task_id:?}: {reason}")]
    InvalidUpdate {
        /// The task.
        task_id: String,
        /// Why.
        reason: &'static str,
    },
    /// [`ExecutorDriver::start`] was called twice.
    #[error("the executor driver was already started")]
    AlreadyStarted,
    /// The environment is incomplete or malformed.
    #[error(transparent)]
    Env(#[from] EnvError),
    /// The endpoint cannot be set up (TLS settings, token).
    #[error(transparent)]
    Transport(#[from] TransportError),
    /// The driver thread or its runtime could not be created.
    #[error("cannot start the driver thread: {0}")]
    Spawn(#[source] std::io::Error),
    /// [`ExecutorDriver::events`] was called outside a tokio runtime.
    #[error("the executor driver needs a tokio runtime to run on: call this from inside one")]
    NoRuntime,
    /// The driver's task ended without an outcome (it panicked or was cancelled).
    #[error("the executor driver ended without an outcome: {0}")]
    Ended(String),
}

/// How the driver behaves; [`DriverConfig::new`] gives upstream-compatible defaults.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct DriverConfig {
    /// Identity and agent, usually [`ExecutorEnv::from_process`].
    pub env: ExecutorEnv,
    /// Encoding of calls and events (protobuf by default, as upstream).
    pub content_type: ContentType,
    /// Longest delay between subscription attempts (default 450 ms); the effective cap
    /// is also at most `MESOS_SUBSCRIPTION_BACKOFF_MAX`, but never below the 334 ms
    /// spacing that keeps attempts at 4 a second or fewer (`src/driver/backoff.rs`). Short, so
    /// the executor is back within moments of the agent's return, well inside its
    /// re-registration window.
    pub retry_interval_cap: Duration,
    /// Longest one SUBSCRIBE attempt may take, from name resolution to the response
    /// head (default 10 s); with checkpointing never past the recovery deadline. Without
    /// checkpointing this is the connect timeout of the one attempt upstream makes.
    pub attempt_timeout: Duration,
    /// Longest one call (UPDATE, MESSAGE) may take, connection and whole answer
    /// included (default 10 s); then it is sent again on a new connection.
    pub call_timeout: Duration,
    /// How long [`DriverHandle::stop`] waits for outstanding acknowledgements when the
    /// executor stops of its own accord (upstream's command executor waits 60 s for its
    /// terminal update's, then exits 1: [`DriverOutcome::unacknowledged`]).
    pub stop_timeout: Duration,
    /// How long a stop after SHUTDOWN (or [`DriverHandle::request_shutdown`]) waits for
    /// acknowledgements (default 1 s): an agent tearing a framework down does not
    /// acknowledge its updates, and kills an executor still there after its shutdown
    /// grace period; upstream's command executor is gone about a second after SHUTDOWN.
    pub shutdown_ack_timeout: Duration,
    /// Resend an update POSTed this long ago and still unacknowledged on a live stream
    /// (the agent acknowledges duplicates; upstream only resends on resubscription).
    pub resend_after: Duration,
    /// Period of HEARTBEAT calls while subscribed (upstream: 30 minutes).
    pub heartbeat_interval: Duration,
    /// Largest event accepted.
    pub max_record_len: usize,
    /// Idle time before TCP keepalive probes start on agent connections; a vanished
    /// agent host is noticed after about twice this.
    pub keepalive_idle: Duration,
    /// The figures the driver keeps (shared with whoever else reports, like the daemon).
    pub metrics: Metrics,
    /// Where the metrics file goes: `MESOS_EXECUTOR_METRICS_FILE`, else
    /// `mesos-executor.prom` in the sandbox; `None` writes no file.
    pub metrics_file: Option<std::path::PathBuf>,
    /// Interval between metrics file writes.
    pub metrics_interval: Duration,
}

impl DriverConfig {
    /// Defaults for `env`.
    pub fn new(env: ExecutorEnv) -> Self {
        DriverConfig {
            content_type: ContentType::Protobuf,
            retry_interval_cap: Duration::from_millis(450),
            attempt_timeout: Duration::from_secs(10),
            call_timeout: Duration::from_secs(10),
            stop_timeout: Duration::from_secs(60),
            shutdown_ack_timeout: Duration::from_secs(1),
            resend_after: Duration::from_secs(10),
            heartbeat_interval: Duration::from_secs(30 * 60),
            max_record_len: recordio::DEFAULT_MAX_RECORD_LEN,
            keepalive_idle: Duration::from_secs(10),
            metrics: Metrics::new(),
            metrics_file: env
                .metrics_file
                .clone()
                .or_else(|| env.sandbox.as_ref().map(|s| s.join(crate::metrics::DEFAULT_FILE_NAME))),
            metrics_interval: crate::metrics::DEFAULT_INTERVAL,
            env,
        }
    }

    /// Defaults for the process environment.
    ///
    /// # Errors
    /// A missing or malformed `MESOS_*` variable.
    pub fn from_process_env() -> Result<Self, EnvError> {
        Ok(Self::new(ExecutorEnv::from_process()?))
    }
}

pub(crate) enum Command {
    Update(Box<TaskStatus>),
    Message(Bytes),
    Stop,
    Shutdown,
    Abort,
}

/// A cheap, cloneable handle to a running driver, usable from any thread or task.
#[derive(Clone, Debug)]
pub struct DriverHandle {
    commands: mpsc::UnboundedSender<Command>,
    status: Arc<AtomicU8>,
    executor_id: Arc<str>,
    /// The framework's `TASK_KILLING_STATE`, from SUBSCRIBED.
    task_killing: Arc<AtomicBool>,
    /// What the agent told the executor in its environment.
    env: Arc<ExecutorEnv>,
}

impl DriverHandle {
    /// Sends a status update. The driver fills in a fresh uuid, the timestamp, source
    /// `SOURCE_EXECUTOR`, the executor id and the agent id, and keeps the update until
    /// the agent acknowledges it, across reconnections. Returns the uuid.
    ///
    /// ```
    /// use mesos_executor::{DriverConfig, DriverError, ExecutorDriver, ExecutorEnv, proto::v1::TaskStatus};
    /// # use mesos_executor::{DriverHandle, Executor, ShutdownReason, proto::v1::{KillPolicy, TaskId, TaskInfo}};
    /// # struct Nothing;
    /// # impl Executor for Nothing {
    /// #     fn launch_task(&mut self, _: &DriverHandle, _: TaskInfo) {}
    /// #     fn kill_task(&mut self, _: &DriverHandle, _: TaskId, _: Option<KillPolicy>) {}
    /// #     fn shutdown(&mut self, d: &DriverHandle, _: ShutdownReason) { d.stop(); }
    /// # }
    /// let env = ExecutorEnv::from_lookup(&[
    ///     ("MESOS_FRAMEWORK_ID", "f"), ("MESOS_EXECUTOR_ID", "e"), ("MESOS_SLAVE_PID", "slave(1)@127.0.0.1:5051"),
    /// ].into_iter().collect::<std::collections::BTreeMap<_, _>>()).unwrap();
    /// let driver = ExecutorDriver::new(Nothing, DriverConfig::new(env));
    /// // Not started yet: the handle fails fast rather than queueing.
    /// let refused = driver.handle().send_status_update(TaskStatus::running("t"));
    /// assert!(matches!(refused, Err(DriverError::NotRunning(_))));
    /// ```
    ///
    /// # Errors
    /// [`DriverError::NotRunning`], or [`DriverError::InvalidUpdate`] for a state the
    /// agent always refuses (`TASK_STAGING`) or an empty task id.
    pub fn send_status_update(&self, mut status: TaskStatus) -> Result<[u8; 16], DriverError> {
        self.ensure_running()?;
        let invalid = |reason| DriverError::InvalidUpdate { task_id: status.task_id.value.clone(), reason };
        if status.task_id.value.is_empty() {
            return Err(invalid("empty task id"));
        }
        if status.state == TaskState::TaskStaging as i32 {
            return Err(invalid("executors may not send TASK_STAGING"));
        }
        let uuid = *uuid::Uuid::new_v4().as_bytes();
        status.uuid = Some(Bytes::copy_from_slice(&uuid));
        status.source = Some(task_status::Source::Executor as i32);
        status.executor_id = Some(ExecutorId { value: self.executor_id.to_string() });
        if status.timestamp.is_none() {
            status.timestamp = Some(SystemTime::now().duration_since(UNIX_EPOCH).map_or(0.0, |d| d.as_secs_f64()));
        }
        self.send(Command::Update(Box::new(status)))?;
        Ok(uuid)
    }

    /// Sends a framework message to the scheduler (dropped, as upstream, while
    /// disconnected).
    ///
    /// # Errors
    /// [`DriverError::NotRunning`].
    pub fn send_framework_message(&self, data: impl Into<Bytes>) -> Result<(), DriverError> {
        self.ensure_running()?;
        self.send(Command::Message(data.into()))
    }

    /// Stops the driver gracefully: it ends once every update is acknowledged, or after
    /// the stop timeout. Returns the status at the time of the request.
    pub fn stop(&self) -> DriverStatus {
        let status = self.status();
        let _ = self.commands.send(Command::Stop);
        status
    }

    /// Asks for the executor to be shut down, as a SHUTDOWN from the agent would: the
    /// driver calls [`Executor::shutdown`] with [`ShutdownReason::Requested`] (once in a
    /// driver's life, whoever asks first) and ends itself if the executor has not stopped
    /// it within `MESOS_EXECUTOR_SHUTDOWN_GRACE_PERIOD`. For signal handlers.
    pub fn request_shutdown(&self) {
        let _ = self.commands.send(Command::Shutdown);
    }

    /// Ends the driver at once, without waiting for acknowledgements.
    pub fn abort(&self) -> DriverStatus {
        let status = self.status();
        let _ = self.commands.send(Command::Abort);
        status
    }

    /// What the agent told the executor in its environment: the sandbox, the ids, the
    /// shutdown grace period (the agent kills the executor that long after SHUTDOWN, so
    /// every task's kill must end within it), ... Available on either API (the trait's
    /// callbacks and [`ExecutorDriver::events`] both hand out the handle).
    ///
    /// ```
    /// use mesos_executor::{DriverConfig, ExecutorDriver, ExecutorEnv};
    /// # use mesos_executor::{DriverHandle, Executor, ShutdownReason, proto::v1::{KillPolicy, TaskId, TaskInfo}};
    /// # struct Nothing;
    /// # impl Executor for Nothing {
    /// #     fn launch_task(&mut self, _: &DriverHandle, _: TaskInfo) {}
    /// #     fn kill_task(&mut self, _: &DriverHandle, _: TaskId, _: Option<KillPolicy>) {}
    /// #     fn shutdown(&mut self, _: &DriverHandle, _: ShutdownReason) {}
    /// # }
    /// # let env = ExecutorEnv::from_lookup(&std::collections::HashMap::from([
    /// #     ("MESOS_FRAMEWORK_ID", "f"), ("MESOS_EXECUTOR_ID", "e"), ("MESOS_SLAVE_PID", "slave(1)@127.0.0.1:5051"),
    /// #     ("MESOS_DIRECTORY", "/tmp/sandbox"), ("MESOS_EXECUTOR_SHUTDOWN_GRACE_PERIOD", "3secs"),
    /// # ]))?;
    /// let handle = ExecutorDriver::new(Nothing, DriverConfig::new(env)).handle();
    /// assert_eq!(handle.env().sandbox.as_deref(), Some(std::path::Path::new("/tmp/sandbox")));
    /// // Each task's kill on SHUTDOWN must end within this, less a margin for the updates.
    /// assert_eq!(handle.env().shutdown_grace_period, std::time::Duration::from_secs(3));
    /// # Ok::<(), mesos_executor::env::EnvError>(())
    /// ```
    pub fn env(&self) -> &ExecutorEnv {
        &self.env
    }

    /// Whether the framework accepts TASK_KILLING (it has the `TASK_KILLING_STATE`
    /// capability in the `FrameworkInfo` of SUBSCRIBED): an executor that kills a task
    /// sends TASK_KILLING first only then, as upstream's executors do. False until the
    /// driver is subscribed.
    ///
    /// ```
    /// use mesos_executor::{DriverConfig, ExecutorDriver, ExecutorEnv};
    /// # use mesos_executor::{DriverHandle, Executor, ShutdownReason, proto::v1::{KillPolicy, TaskId, TaskInfo}};
    /// # struct Nothing;
    /// # impl Executor for Nothing {
    /// #     fn launch_task(&mut self, _: &DriverHandle, _: TaskInfo) {}
    /// #     fn kill_task(&mut self, _: &DriverHandle, _: TaskId, _: Option<KillPolicy>) {}
    /// #     fn shutdown(&mut self, _: &DriverHandle, _: ShutdownReason) {}
    /// # }
    /// # let env = ExecutorEnv::from_lookup(&std::collections::HashMap::from([
    /// #     ("MESOS_FRAMEWORK_ID", "f"), ("MESOS_EXECUTOR_ID", "e"), ("MESOS_SLAVE_PID", "slave(1)@127.0.0.1:5051"),
    /// #     ("MESOS_DIRECTORY", "/tmp"),
    /// # ]))?;
    /// let driver = ExecutorDriver::new(Nothing, DriverConfig::new(env));
    /// assert!(!driver.handle().task_killing_state(), "not subscribed yet");
    /// # Ok::<(), mesos_executor::env::EnvError>(())
    /// ```
    pub fn task_killing_state(&self) -> bool {
        self.task_killing.load(Ordering::Acquire)
    }

    pub(crate) fn set_task_killing_state(&self, framework: &crate::proto::v1::FrameworkInfo) {
        use crate::proto::v1::framework_info::capability::Type;
        let has = framework.capabilities.iter().any(|c| c.r#type() == Type::TaskKillingState);
        self.task_killing.store(has, Ordering::Release);
    }

    /// The driver's status.
    pub fn status(&self) -> DriverStatus {
        DriverStatus::from_u8(self.status.load(Ordering::Acquire))
    }

    fn ensure_running(&self) -> Result<(), DriverError> {
        match self.status() {
            DriverStatus::Running => Ok(()),
            other => Err(DriverError::NotRunning(other)),
        }
    }

    fn send(&self, command: Command) -> Result<(), DriverError> {
        self.commands.send(command).map_err(|_| DriverError::NotRunning(self.status()))
    }

    fn set_status(&self, status: DriverStatus) {
        self.status.store(status as u8, Ordering::Release);
    }
}

/// Runs an [`Executor`] against the agent.
///
/// A whole life against the fake agent (our test double of a Mesos agent): subscribe,
/// a launch reported RUNNING then FINISHED, SHUTDOWN, and the outcome.
///
/// ```
/// # #[tokio::main] async fn main() {
/// use std::time::Duration;
/// use mesos_executor::{
///     DriverConfig, DriverHandle, DriverStatus, Executor, ExecutorDriver, ExecutorEnv, ShutdownReason,
///     proto::v1::{KillPolicy, TaskId, TaskInfo, TaskState, TaskStatus},
/// };
///
/// struct Quick;
/// impl Executor for Quick {
///     fn launch_task(&mut self, driver: &DriverHandle, task: TaskInfo) {
///         let _ = driver.send_status_update(TaskStatus::running(&task.task_id));
///         let _ = driver.send_status_update(TaskStatus::finished(&task.task_id));
///     }
///     fn kill_task(&mut self, driver: &DriverHandle, task_id: TaskId, _: Option<KillPolicy>) {
///         let _ = driver.send_status_update(TaskStatus::killed(task_id));
///     }
///     fn shutdown(&mut self, driver: &DriverHandle, reason: ShutdownReason) {
///         assert_eq!(reason, ShutdownReason::AgentShutdown);
///         driver.stop();
///     }
/// }
///
/// let agent = fake_agent::FakeAgent::new(Default::default()).start().await.unwrap();
/// let sandbox = tempfile::tempdir().unwrap();
/// agent.expect_executor(sandbox.path());
/// let env = ExecutorEnv::from_lookup(&agent.executor_env(sandbox.path())).unwrap();
/// let mut driver = ExecutorDriver::new(Quick, DriverConfig::new(env));
/// driver.start().unwrap(); // on a thread of its own
///
/// let task = TaskInfo { name: "t".into(), task_id: TaskId::from("t"), ..Default::default() };
/// agent.agent.launch(task);
/// let finished = |s: &fake_agent::agent::State| s.task("t").is_some_and(|t| t.state == TaskState::TaskFinished);
/// agent.agent.wait_for("t finished", Duration::from_secs(5), finished, |_| String::new()).await.unwrap();
/// agent.agent.shutdown();
/// let outcome = tokio::task::spawn_blocking(move || driver.join()).await.unwrap();
/// assert_eq!(outcome.status, DriverStatus::Stopped);
/// assert!(outcome.is_success());
/// # }
/// ```
pub struct ExecutorDriver<E: Executor> {
    executor: Option<E>,
    config: DriverConfig,
    handle: DriverHandle,
    commands: Option<mpsc::UnboundedReceiver<Command>>,
    thread: Option<std::thread::JoinHandle<DriverOutcome>>,
}

impl<E: Executor> ExecutorDriver<E> {
    /// A driver for `executor` with `config`.
    pub fn new(executor: E, config: DriverConfig) -> Self {
        Self::with_handle(config, |_| executor)
    }

    /// A driver whose executor is built from the driver's own handle, for executors
    /// that hand the handle to their own tasks.
    pub fn with_handle(config: DriverConfig, build: impl FnOnce(DriverHandle) -> E) -> Self {
        let (tx, rx) = mpsc::unbounded_channel();
        let handle = DriverHandle {
            commands: tx,
            status: Arc::new(AtomicU8::new(DriverStatus::NotStarted as u8)),
            executor_id: Arc::from(config.env.executor_id.as_str()),
            task_killing: Arc::new(AtomicBool::new(false)),
            env: Arc::new(config.env.clone()),
        };
        let executor = build(handle.clone());
        ExecutorDriver { executor: Some(executor), config, handle, commands: Some(rx), thread: None }
    }

    /// A driver configured from the process environment.
    ///
    /// # Errors
    /// A missing or malformed `MESOS_*` variable.
    pub fn from_env(executor: E) -> Result<Self, DriverError> {
        Ok(Self::new(executor, DriverConfig::from_process_env()?))
    }

    /// A handle for sending updates and messages, and for stopping.
    pub fn handle(&self) -> DriverHandle {
        self.handle.clone()
    }

    /// The driver's status.
    pub fn status(&self) -> DriverStatus {
        self.handle.status()
    }

    fn prepare(&mut self) -> Result<session::Session<E>, DriverError> {
        let (Some(executor), Some(commands)) = (self.executor.take(), self.commands.take()) else {
            return Err(DriverError::AlreadyStarted);
        };
        let session = session::Session::new(executor, self.config.clone(), self.handle.clone(), commands)?;
        self.handle.set_status(DriverStatus::Running);
        Ok(session)
    }

    /// Starts the driver on a thread of its own (a single-threaded tokio runtime).
    ///
    /// # Errors
    /// Already started, bad TLS settings, or the thread cannot be created.
    pub fn start(&mut self) -> Result<DriverStatus, DriverError> {
        let session = self.prepare()?;
        let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().map_err(DriverError::Spawn)?;
        let handle = self.handle.clone();
        let thread = std::thread::Builder::new()
            .name("mesos-executor-driver".to_owned())
            .spawn(move || {
                let outcome = runtime.block_on(session.run());
                handle.set_status(outcome.status);
                // A name lookup abandoned at its deadline may still be running on a
                // blocking thread: do not wait for it.
                runtime.shutdown_background();
                outcome
            })
            .map_err(DriverError::Spawn)?;
        self.thread = Some(thread);
        Ok(DriverStatus::Running)
    }

    /// Runs the driver on the current tokio runtime until it ends. Callbacks run on
    /// this task.
    ///
    /// # Errors
    /// Already started, or bad TLS settings.
    pub async fn run_async(mut self) -> Result<DriverOutcome, DriverError> {
        let session = self.prepare()?;
        let outcome = session.run().await;
        self.handle.set_status(outcome.status);
        Ok(outcome)
    }

    /// Asks the driver to stop gracefully (see [`DriverHandle::stop`]).
    pub fn stop(&self) -> DriverStatus {
        self.handle.stop()
    }

    /// Ends the driver at once.
    pub fn abort(&self) -> DriverStatus {
        self.handle.abort()
    }

    /// Waits for the driver thread to end and returns how it ended.
    pub fn join(&mut self) -> DriverOutcome {
        match self.thread.take() {
            Some(thread) => thread.join().unwrap_or(DriverOutcome {
                status: DriverStatus::Aborted,
                reason: None,
                unacknowledged: 0,
            }),
            None => DriverOutcome { status: self.status(), reason: None, unacknowledged: 0 },
        }
    }

    /// Starts the driver and waits for it to end.
    ///
    /// # Errors
    /// As [`ExecutorDriver::start`].
    pub fn run(mut self) -> Result<DriverOutcome, DriverError> {
        self.start()?;
        Ok(self.join())
    }
}
