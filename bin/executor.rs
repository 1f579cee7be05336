//! The executor behind the `mesos-executor` daemon: runs commands and task groups as
//! the upstream command and default executors do. Callbacks only forward events to the
//! supervisor task (`supervisor.rs`), which owns the processes.

use bytes::Bytes;
use tokio::sync::mpsc;
use tracing::{info, warn};

use mesos_executor::{
    DriverHandle, Executor, ShutdownReason,
    proto::v1::{
        AgentInfo, ExecutorInfo, FrameworkInfo, KillPolicy, TaskGroupInfo, TaskId, TaskInfo, framework_info::capability,
    },
};

use crate::{
    book::Input,
    supervisor::{Msg, Supervisor, SupervisorConfig},
};

/// The daemon's [`Executor`]: a thin front for the supervisor task.
pub struct CommandExecutor {
    tx: mpsc::UnboundedSender<Msg>,
}

/// The supervisor to run beside the driver.
pub struct SupervisorTask {
    supervisor: Supervisor,
    rx: mpsc::UnboundedReceiver<Msg>,
}

impl SupervisorTask {
    /// A way to tell the supervisor the executor ends: it writes what the state file
    /// still waits for, then answers.
    pub fn finisher(&self) -> impl Fn() -> tokio::sync::oneshot::Receiver<()> + use<> {
        let tx = self.supervisor.sender();
        move || {
            let (done, wait) = tokio::sync::oneshot::channel();
            let _ = tx.send(Msg::Finish(done));
            wait
        }
    }

    /// Runs the supervisor until the executor is dropped.
    pub async fn run(self) {
        self.supervisor.run(self.rx).await;
    }
}

impl CommandExecutor {
    /// An executor and its supervisor, reporting through `driver`.
    pub fn new(config: SupervisorConfig, driver: DriverHandle) -> (Self, SupervisorTask) {
        let (tx, rx) = mpsc::unbounded_channel();
        let supervisor = Supervisor::new(driver, config, tx.clone());
        (CommandExecutor { tx }, SupervisorTask { supervisor, rx })
    }

    fn send(&self, msg: Msg) {
        if self.tx.send(msg).is_err() {
            warn!("the task supervisor is gone; event dropped");
        }
    }
}

impl Executor for CommandExecutor {
    fn registered(&mut self, _: &DriverHandle, executor: &ExecutorInfo, framework: &FrameworkInfo, agent: &AgentInfo) {
        let killing_state = framework.capabilities.iter().any(|c| c.r#type() == capability::Type::TaskKillingState);
        info!(executor_id = %executor.executor_id.value, framework = %framework.name, agent = %agent.hostname, killing_state, "registered");
        self.send(Msg::Registered { killing_state, hostname: agent.hostname.clone() });
    }

    fn launch_task(&mut self, _: &DriverHandle, task: TaskInfo) {
        self.send(Msg::Launch(Box::new(task)));
    }

    fn launch_task_group(&mut self, _: &DriverHandle, group: TaskGroupInfo) {
        self.send(Msg::LaunchGroup(group));
    }

    fn kill_task(&mut self, _: &DriverHandle, task_id: TaskId, kill_policy: Option<KillPolicy>) {
        self.send(Msg::Book(Input::Kill { task_id: task_id.value, policy: kill_policy }));
    }

    fn acknowledged(&mut self, _: &DriverHandle, task_id: &TaskId, uuid: &[u8]) {
        self.send(Msg::Acked { task_id: task_id.value.clone(), uuid: uuid.to_vec() });
    }

    fn framework_message(&mut self, _: &DriverHandle, data: Bytes) {
        info!(bytes = data.len(), "framework message (ignored, as upstream's command executor does)");
    }

    fn shutdown(&mut self, _: &DriverHandle, reason: ShutdownReason) {
        info!(%reason, "shutdown");
        self.send(Msg::Book(Input::Shutdown));
    }

    fn error(&mut self, _: &DriverHandle, message: &str) {
        warn!(%message, "error reported by the driver");
    }
}
