//! The driver as a stream of events, for executors that live in tokio: the same driver
//! as the [`Executor`] trait (it is built on it), so the same guarantees hold: events
//! arrive one at a time in the agent's order, every update is kept until acknowledged
//! and resent on resubscription, and the recovery rules are upstream's.
//!
//! ```no_run
//! use mesos_executor::{DriverConfig, ExecutorDriver, driver::events::ExecutorEvent, proto::v1::TaskStatus};
//!
//! #[tokio::main(flavor = "current_thread")]
//! async fn main() -> std::process::ExitCode {
//!     let config = DriverConfig::from_process_env().expect("a MESOS_* environment");
//!     let (driver, mut events) = ExecutorDriver::events(config).expect("inside a tokio runtime");
//!     while let Some(event) = events.next().await {
//!         match event {
//!             ExecutorEvent::Launch(task) => {
//!                 let _ = driver.send_status_update(TaskStatus::finished(&task.task_id));
//!             }
//!             ExecutorEvent::Shutdown(_) => {
//!                 driver.stop();
//!             }
//!             _ => {}
//!         }
//!     }
//!     events.outcome().await.map_or(std::process::ExitCode::from(70), |o| o.exit_code())
//! }
//! ```
//!
//! # Concurrency
//! The driver runs as a task of its own on the current runtime. On a multi-threaded
//! runtime it runs beside the code that consumes the events; events wait in an
//! unbounded queue until taken, so a slow consumer delays nothing in the driver (it keeps
//! acknowledging, resubscribing and resending).

use std::{
    pin::Pin,
    task::{Context, Poll},
};

use bytes::Bytes;
use tokio::sync::mpsc;

use crate::executor::Executor;
use crate::{
    DriverConfig, DriverError, DriverHandle, DriverOutcome, ExecutorDriver, ShutdownReason,
    proto::v1::{AgentInfo, ExecutorInfo, FrameworkInfo, KillPolicy, TaskGroupInfo, TaskId, TaskInfo},
};

/// One event for the executor: the [`Executor`] callbacks as values.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub enum ExecutorEvent {
    /// The first SUBSCRIBED ([`Executor::registered`]).
    Registered {
        /// Who we are.
        executor_info: Box<ExecutorInfo>,
        /// For which framework.
        framework_info: Box<FrameworkInfo>,
        /// On which agent.
        agent_info: Box<AgentInfo>,
    },
    /// A later SUBSCRIBED, after an agent restart ([`Executor::reregistered`]).
    Reregistered(Box<AgentInfo>),
    /// The connection to the agent was lost ([`Executor::disconnected`]).
    Disconnected,
    /// LAUNCH: start the task.
    Launch(Box<TaskInfo>),
    /// LAUNCH_GROUP: start the tasks together.
    LaunchGroup(TaskGroupInfo),
    /// KILL: kill the task; the policy overrides the task's own when present.
    Kill {
        /// The task.
        task_id: TaskId,
        /// The KILL's policy.
        kill_policy: Option<KillPolicy>,
    },
    /// MESSAGE from the framework's scheduler.
    Message(Bytes),
    /// The agent acknowledged an update ([`Executor::acknowledged`]).
    Acknowledged {
        /// The task.
        task_id: TaskId,
        /// The update's uuid, as `send_status_update` returned it.
        uuid: Bytes,
    },
    /// Time to go: kill every task, report it, then call [`DriverHandle::stop`]. The
    /// agent kills the executor [`shutdown_grace_period`](crate::ExecutorEnv::shutdown_grace_period)
    /// (from [`DriverHandle::env`]) after SHUTDOWN: bound each task's kill (its SIGTERM
    /// to SIGKILL escalation) to that period less a margin, whatever its own kill policy
    /// says, so that its terminal update still goes out.
    Shutdown(ShutdownReason),
    /// An error ([`Executor::error`]).
    Error(String),
}

/// The [`Executor`] behind [`ExecutorDriver::events`]: it turns each callback into an
/// [`ExecutorEvent`]. Not used directly.
#[derive(Debug)]
pub struct EventForwarder {
    tx: mpsc::UnboundedSender<ExecutorEvent>,
}

impl EventForwarder {
    fn send(&self, event: ExecutorEvent) {
        if self.tx.send(event).is_err() {
            tracing::warn!("executor event dropped: nobody takes events any more");
        }
    }
}

impl Executor for EventForwarder {
    fn registered(&mut self, _: &DriverHandle, executor: &ExecutorInfo, framework: &FrameworkInfo, agent: &AgentInfo) {
        self.send(ExecutorEvent::Registered {
            executor_info: Box::new(executor.clone()),
            framework_info: Box::new(framework.clone()),
            agent_info: Box::new(agent.clone()),
        });
    }
    fn reregistered(&mut self, _: &DriverHandle, agent: &AgentInfo) {
        self.send(ExecutorEvent::Reregistered(Box::new(agent.clone())));
    }
    fn disconnected(&mut self, _: &DriverHandle) {
        self.send(ExecutorEvent::Disconnected);
    }
    fn launch_task(&mut self, _: &DriverHandle, task: TaskInfo) {
        self.send(ExecutorEvent::Launch(Box::new(task)));
    }
    fn launch_task_group(&mut self, _: &DriverHandle, group: TaskGroupInfo) {
        self.send(ExecutorEvent::LaunchGroup(group));
    }
    fn kill_task(&mut self, _: &DriverHandle, task_id: TaskId, kill_policy: Option<KillPolicy>) {
        self.send(ExecutorEvent::Kill { task_id, kill_policy });
    }
    fn framework_message(&mut self, _: &DriverHandle, data: Bytes) {
        self.send(ExecutorEvent::Message(data));
    }
    fn acknowledged(&mut self, _: &DriverHandle, task_id: &TaskId, uuid: &[u8]) {
        self.send(ExecutorEvent::Acknowledged { task_id: task_id.clone(), uuid: Bytes::copy_from_slice(uuid) });
    }
    fn shutdown(&mut self, _: &DriverHandle, reason: ShutdownReason) {
        self.send(ExecutorEvent::Shutdown(reason));
    }
    fn error(&mut self, _: &DriverHandle, message: &str) {
        self.send(ExecutorEvent::Error(message.to_owned()));
    }
}

/// The events of a driver started by [`ExecutorDriver::events`]. Also a
/// [`Stream`](futures_util::Stream). Dropping it aborts the driver.
#[derive(Debug)]
pub struct Events {
    rx: mpsc::UnboundedReceiver<ExecutorEvent>,
    driver: Option<tokio::task::JoinHandle<Result<DriverOutcome, DriverError>>>,
}

impl Events {
    /// The next event, in the agent's order; `None` once the driver has ended and every
    /// event was taken.
    ///
    /// # Cancel safety
    /// Cancel-safe: an event is never lost to a dropped `next()`.
    pub async fn next(&mut self) -> Option<ExecutorEvent> {
        self.rx.recv().await
    }

    /// Waits for the driver to end and returns how it ended.
    ///
    /// # Errors
    /// The driver could not start (TLS settings), or its task panicked or was cancelled
    /// ([`DriverError::Ended`]).
    pub async fn outcome(mut self) -> Result<DriverOutcome, DriverError> {
        match self.driver.take() {
            Some(driver) => driver.await.map_err(|e| DriverError::Ended(e.to_string()))?,
            None => Err(DriverError::Ended("the outcome was taken already".to_owned())),
        }
    }
}

impl futures_util::Stream for Events {
    type Item = ExecutorEvent;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<ExecutorEvent>> {
        self.rx.poll_recv(cx)
    }
}

impl Drop for Events {
    fn drop(&mut self) {
        if let Some(driver) = &self.driver {
            driver.abort();
        }
    }
}

impl ExecutorDriver<EventForwarder> {
    /// Starts a driver with `config` on the current tokio runtime and returns its
    /// handle and its events. See the [module docs](self) for an example.
    ///
    /// # Errors
    /// [`DriverError::NoRuntime`] outside a tokio runtime.
    pub fn events(config: DriverConfig) -> Result<(DriverHandle, Events), DriverError> {
        let runtime = tokio::runtime::Handle::try_current().map_err(|_| DriverError::NoRuntime)?;
        let (tx, rx) = mpsc::unbounded_channel();
        let driver = ExecutorDriver::new(EventForwarder { tx }, config);
        let handle = driver.handle();
        let task = runtime.spawn(driver.run_async());
        Ok((handle, Events { rx, driver: Some(task) }))
    }
}
