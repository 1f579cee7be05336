//! The executor behind the `mesos-executor` daemon: runs commands and task groups as
//! the upstream command and default executors do. Callbacks only forward events to the
//! supervisor's inbox (`inbox.rs`); the supervisor (`supervisor.rs`) owns the processes.

use bytes::Bytes;
use tracing::{info, warn};

use mesos_executor::{
    DriverHandle, Executor, ShutdownReason,
    proto::v1::{
        AgentInfo, ExecutorInfo, FrameworkInfo, KillPolicy, TaskGroupInfo, TaskId, TaskInfo, framework_info::capability,
    },
};

use crate::{
    inbox::{self, Msg},
    supervisor::{Supervisor, SupervisorConfig},
};

/// The daemon's [`Executor`]: a thin front for the supervisor. Dropping it (the driver
/// has ended) closes the inbox, and the supervisor ends.
pub struct CommandExecutor {
    inbox: inbox::Sender,
}

impl CommandExecutor {
    /// An executor and its supervisor with the inbox it reads, reporting through
    /// `driver`.
    pub fn new(config: SupervisorConfig, driver: DriverHandle) -> (Self, Supervisor, inbox::Receiver) {
        let (tx, rx) = inbox::channel();
        (CommandExecutor { inbox: tx }, Supervisor::new(driver, config), rx)
    }

    fn send(&self, msg: Msg) {
        if self.inbox.send(msg).is_err() {
            warn!("the task supervisor is gone; event dropped");
        }
    }
}

impl Executor for CommandExecutor {
    fn registered(&mut self, _: &DriverHandle, _: &ExecutorInfo, framework: &FrameworkInfo, agent: &AgentInfo) {
        let killing_state = framework.capabilities.iter().any(|c| c.r#type() == capability::Type::TaskKillingState);
        // The ids are on the `starting` line (logging.rs).
        info!(framework = %framework.name, agent = %agent.hostname, killing_state, "registered");
        self.send(Msg::Registered { killing_state, hostname: agent.hostname.clone() });
    }

    fn reregistered(&mut self, _: &DriverHandle, agent: &AgentInfo) {
        info!(agent = %agent.hostname, "subscribed again");
        self.send(Msg::Reconnected);
    }

    fn disconnected(&mut self, _: &DriverHandle) {
        self.send(Msg::Disconnected);
    }

    fn launch_task(&mut self, _: &DriverHandle, task: TaskInfo) {
        self.send(Msg::Launch(Box::new(task)));
    }

    fn launch_task_group(&mut self, _: &DriverHandle, group: TaskGroupInfo) {
        self.send(Msg::LaunchGroup(group));
    }

    fn kill_task(&mut self, _: &DriverHandle, task_id: TaskId, kill_policy: Option<KillPolicy>) {
        self.send(Msg::Kill { task_id: task_id.value, policy: kill_policy });
    }

    fn acknowledged(&mut self, _: &DriverHandle, task_id: &TaskId, uuid: &[u8]) {
        self.send(Msg::Acked { task_id: task_id.value.clone(), uuid: uuid.to_vec() });
    }

    fn framework_message(&mut self, _: &DriverHandle, data: Bytes) {
        info!(bytes = data.len(), "framework message (ignored, as upstream's command executor does)");
    }

    fn shutdown(&mut self, _: &DriverHandle, reason: ShutdownReason) {
        info!(%reason, "shutdown");
        // A framework must be able to tell a signal to the executor from a kill it asked
        // for: those tasks end with their own message and reason.
        self.send(if reason == ShutdownReason::Requested { Msg::StopRequested } else { Msg::Shutdown });
    }

    fn error(&mut self, _: &DriverHandle, message: &str) {
        warn!(%message, "error reported by the driver");
    }
}
