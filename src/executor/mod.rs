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
//! work to a thread or a tokio task (the driver's runtime is current when callbacks run,
//! so `tokio::spawn` works) and report back through the [`DriverHandle`], which is
//! `Clone + Send + Sync`:
//!
//! ```no_run
//! use mesos_executor::{DriverHandle, Executor, proto::v1::{TaskInfo, TaskState, TaskStatus, TaskId, KillPolicy}};
//!
//! struct Sleeper;
//!
//! impl Executor for Sleeper {
//!     fn launch_task(&mut self, driver: &DriverHandle, task: TaskInfo) {
//!         let driver = driver.clone();
//!         let update = |id: &TaskId, state: TaskState| TaskStatus {
//!             task_id: id.clone(),
//!             state: state as i32,
//!             ..Default::default()
//!         };
//!         let _ = driver.send_status_update(update(&task.task_id, TaskState::TaskRunning));
//!         // Long work elsewhere; the handle reports back from any thread.
//!         std::thread::spawn(move || {
//!             std::thread::sleep(std::time::Duration::from_secs(1));
//!             let _ = driver.send_status_update(update(&task.task_id, TaskState::TaskFinished));
//!         });
//!     }
//!     fn kill_task(&mut self, driver: &DriverHandle, task_id: TaskId, _policy: Option<KillPolicy>) {
//!         let _ = driver.send_status_update(TaskStatus { task_id, state: TaskState::TaskKilled as i32, ..Default::default() });
//!     }
//!     fn shutdown(&mut self, driver: &DriverHandle, _reason: mesos_executor::ShutdownReason) {
//!         driver.stop();
//!     }
//! }
//! ```

pub mod check;
pub mod events;
pub mod health;
pub mod kill;
pub mod launch;
pub mod probe;
pub mod process;

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
