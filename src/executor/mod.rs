//! The [`Executor`] trait that framework authors implement: the upstream executor
//! callbacks, called one at a time, in event order, on the driver's thread. The
//! submodules are a toolkit for executors that run commands (the `mesos-executor`
//! daemon is built on it): [`launch`] turns a `CommandInfo` into a process spec with the
//! environment merge, [`process`] spawns it in its own process group and cleans up its
//! process tree, [`kill`] kills it with SIGTERM then SIGKILL under a kill policy,
//! [`health`] and [`check`] probe it with upstream's counting rules.
//!
//! # Callbacks must not block
//! They run on the thread that also reads the event stream and sends calls. Hand long
//! work to a thread or a tokio task and report back through the [`DriverHandle`], which
//! is `Clone + Send + Sync`. With [`ExecutorDriver::start`](crate::ExecutorDriver::start) and
//! [`run`](crate::ExecutorDriver::run)
//! the driver has a thread and a single-threaded tokio runtime of its own: callbacks
//! never run concurrently with each other or with the driver's work, and a task
//! spawned with `tokio::spawn` from a callback runs on that runtime between callbacks.
//! With [`run_async`](crate::ExecutorDriver::run_async) or [`events`](crate::ExecutorDriver::events) on a multi-threaded
//! runtime, your own tasks can run at the same time as a callback.
//!
//! A kill must really stop the work (nothing may be reported for a task after its
//! terminal update), and shutdown must end and report every task before it stops the
//! driver:
//!
//! ```
//! use std::{collections::HashMap, sync::mpsc, thread, time::Duration};
//! use mesos_executor::{DriverHandle, Executor, ShutdownReason, proto::v1::{KillPolicy, TaskId, TaskInfo, TaskStatus}};
//!
//! #[derive(Default)]
//! struct Sleeper {
//!     tasks: HashMap<String, (mpsc::Sender<()>, thread::JoinHandle<()>)>,
//! }
//!
//! impl Executor for Sleeper {
//!     fn launch_task(&mut self, driver: &DriverHandle, task: TaskInfo) {
//!         let (driver, id) = (driver.clone(), task.task_id.clone());
//!         let _ = driver.send_status_update(TaskStatus::running(&id));
//!         let (stop, stopped) = mpsc::channel();
//!         // Long work elsewhere; the handle reports back from any thread.
//!         let work = thread::spawn(move || {
//!             let end = match stopped.recv_timeout(Duration::from_secs(1)) {
//!                 Err(mpsc::RecvTimeoutError::Timeout) => TaskStatus::finished(&id),
//!                 _ => TaskStatus::killed(&id),
//!             };
//!             let _ = driver.send_status_update(end);
//!         });
//!         self.tasks.insert(task.task_id.value, (stop, work));
//!     }
//!     fn kill_task(&mut self, driver: &DriverHandle, task_id: TaskId, _policy: Option<KillPolicy>) {
//!         match self.tasks.remove(&task_id.value) {
//!             // The work stops and reports TASK_KILLED itself.
//!             Some((stop, work)) => { let _ = stop.send(()); let _ = work.join(); }
//!             None => { let _ = driver.send_status_update(TaskStatus::killed(task_id)); }
//!         }
//!     }
//!     fn shutdown(&mut self, driver: &DriverHandle, _reason: ShutdownReason) {
//!         for (_, (stop, work)) in self.tasks.drain() {
//!             let _ = stop.send(());
//!             let _ = work.join();
//!         }
//!         driver.stop(); // The driver ends once the agent has acknowledged every update.
//!     }
//! }
//! # let _ = Sleeper::default();
//! ```

pub mod check;
pub mod health;
pub mod kill;
pub mod launch;
mod pre_exec;
pub mod probe;
pub mod process;
mod task_process;

use bytes::Bytes;

use crate::{
    driver::{DriverHandle, ShutdownReason},
    proto::v1::{
        AgentInfo, ExecutorInfo, FrameworkInfo, KillPolicy, TaskGroupInfo, TaskId, TaskInfo, TaskState, TaskStatus,
        task_status,
    },
};

/// An executor: what to do with each event from the agent.
///
/// Callbacks run one at a time on the driver's thread, never concurrently, so an
/// implementation needs no locks; the trait needs `Send` only because the executor is
/// moved onto that thread.
pub trait Executor: Send + 'static {
    /// The first SUBSCRIBED: who we are, for which framework, on which agent.
    fn registered(
        &mut self,
        driver: &DriverHandle,
        executor_info: &ExecutorInfo,
        framework_info: &FrameworkInfo,
        agent_info: &AgentInfo,
    ) {
        let _ = (driver, executor_info, framework_info, agent_info);
    }

    /// A later SUBSCRIBED, after a disconnection (an agent restart).
    fn reregistered(&mut self, driver: &DriverHandle, agent_info: &AgentInfo) {
        let _ = (driver, agent_info);
    }

    /// The connection to the agent was lost. With checkpointing the driver resubscribes
    /// (then [`Executor::reregistered`]) or gives up at the recovery timeout (then
    /// [`Executor::shutdown`]); without, [`Executor::shutdown`] follows at once.
    fn disconnected(&mut self, driver: &DriverHandle) {
        let _ = driver;
    }

    /// LAUNCH: start `task` and report its states.
    fn launch_task(&mut self, driver: &DriverHandle, task: TaskInfo);

    /// LAUNCH_GROUP: start the tasks of `group` together. By default every task gets
    /// TASK_ERROR, since an executor must opt in to task groups.
    fn launch_task_group(&mut self, driver: &DriverHandle, group: TaskGroupInfo) {
        for task in group.tasks {
            let _ = driver.send_status_update(TaskStatus {
                task_id: task.task_id,
                state: TaskState::TaskError as i32,
                reason: Some(task_status::Reason::TaskGroupInvalid as i32),
                message: Some("this executor does not run task groups".to_owned()),
                ..Default::default()
            });
        }
    }

    /// KILL: kill the task; `kill_policy` overrides the task's own when present.
    fn kill_task(&mut self, driver: &DriverHandle, task_id: TaskId, kill_policy: Option<KillPolicy>);

    /// ACKNOWLEDGED: the agent has the update with `uuid` (as
    /// [`DriverHandle::send_status_update`] returned it) of `task_id`; the driver has
    /// forgotten it. Upstream's executors are not told; this is for executors that show
    /// it (the daemon's state file). An acknowledgement for an update the driver does not
    /// know (a duplicate) is not passed on.
    fn acknowledged(&mut self, driver: &DriverHandle, task_id: &TaskId, uuid: &[u8]) {
        let _ = (driver, task_id, uuid);
    }

    /// MESSAGE from the framework's scheduler.
    fn framework_message(&mut self, driver: &DriverHandle, data: Bytes) {
        let _ = (driver, data);
    }

    /// Time to go: kill every task, report it, then call [`DriverHandle::stop`]. `reason`
    /// says why: SHUTDOWN from the agent, the agent lost past the recovery timeout or
    /// never reached, the agent refusing us, or our own process asking
    /// ([`DriverHandle::request_shutdown`]). Called once in a driver's life. If the
    /// executor has not stopped the driver within `MESOS_EXECUTOR_SHUTDOWN_GRACE_PERIOD`,
    /// the driver ends itself.
    fn shutdown(&mut self, driver: &DriverHandle, reason: ShutdownReason);

    /// An error: an event that could not be handled, or a call the agent refused.
    fn error(&mut self, driver: &DriverHandle, message: &str) {
        let _ = driver;
        tracing::error!(%message, "executor error");
    }
}
