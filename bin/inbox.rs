//! The supervisor's inbox: what the executor's callbacks (`executor.rs`) tell the
//! supervisor, in the order the driver delivered it. The inbox closes when the executor
//! is dropped (the driver has ended), and the supervisor then ends.

use mesos_executor::proto::v1::{KillPolicy, TaskGroupInfo, TaskInfo};
use tokio::sync::mpsc;

/// A message from the executor to the supervisor.
#[derive(Debug)]
pub enum Msg {
    /// The first SUBSCRIBED: the framework's capability, and the agent host (for group
    /// addresses).
    Registered { killing_state: bool, hostname: String },
    /// The connection to the agent is lost.
    Disconnected,
    /// SUBSCRIBED again after a disconnection.
    Reconnected,
    /// ACKNOWLEDGED, for the state file.
    Acked { task_id: String, uuid: Vec<u8> },
    /// LAUNCH: to be prepared, then given to the book.
    Launch(Box<TaskInfo>),
    /// LAUNCH_GROUP: likewise.
    LaunchGroup(TaskGroupInfo),
    /// KILL.
    Kill { task_id: String, policy: Option<KillPolicy> },
    /// SHUTDOWN (or the agent lost for good).
    Shutdown,
    /// The executor's own process was asked to stop (SIGTERM, SIGINT).
    StopRequested,
}

/// The executor's end of the inbox.
pub type Sender = mpsc::UnboundedSender<Msg>;

/// The supervisor's end of the inbox.
pub type Receiver = mpsc::UnboundedReceiver<Msg>;

/// A new inbox.
pub fn channel() -> (Sender, Receiver) {
    mpsc::unbounded_channel()
}
