//! The agent's view of its one executor and that executor's tasks, and how it applies
//! status updates (upstream `Slave::statusUpdate` and the status update manager).

use std::collections::{HashMap, HashSet, VecDeque};

use bytes::Bytes;
use mesos_executor::proto::v1::{TaskGroupInfo, TaskInfo, TaskState, TaskStatus};

use crate::{config::AckPolicy, stream::EventStream, transcript::Entry};

/// Where the agent is in its own life (reference §10.6).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Phase {
    /// Serving normally.
    Running,
    /// Crashed or restarting: connections refused.
    Down,
    /// Containerizer recovery: every request gets 503.
    Recovering,
    /// SUBSCRIBE accepted, other calls 503, until the re-registration timeout.
    Reregistering,
}

/// The agent's executor state machine (reference §10.1).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ExecutorState {
    /// Launched (or recovered after a restart) and not yet subscribed.
    Registering,
    /// Subscribed.
    Running,
    /// SHUTDOWN sent.
    Terminating,
    /// Process gone or container destroyed.
    Terminated,
    /// Forgotten: the framework does not checkpoint and the agent restarted.
    Unknown,
}

/// A task the agent was asked to launch.
#[derive(Debug, Clone)]
pub struct TaskRecord {
    /// As given to the executor.
    pub info: TaskInfo,
    /// Index of its LAUNCH_GROUP, if it came in one.
    pub group: Option<usize>,
    /// Latest state the agent accepted: `TASK_STAGING` until the executor reports.
    pub state: TaskState,
    /// Sent to the executor in a LAUNCH or LAUNCH_GROUP.
    pub delivered: bool,
    /// Status updates applied.
    pub updates: u32,
}

impl TaskRecord {
    /// Whether the task has reached a terminal state.
    pub fn is_terminal(&self) -> bool {
        self.state.is_terminal()
    }
}

/// A launch waiting for the executor to (re)subscribe.
#[derive(Debug, Clone)]
pub enum Pending {
    /// A single task: one LAUNCH.
    Task(Box<TaskInfo>),
    /// A task group: one LAUNCH_GROUP.
    Group(TaskGroupInfo),
}

/// What the agent did with an UPDATE it answered 202.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UpdateOutcome {
    /// Recorded as the task's new state; acknowledged.
    Applied,
    /// Same uuid as an update already received; acknowledged again.
    Duplicate,
    /// The task was already terminal; dropped but acknowledged so the executor stops.
    IgnoredTerminal,
    /// No such task: silently dropped, no acknowledgement.
    UnknownTask,
    /// `agent_id` set to another agent's id: silently dropped, no acknowledgement.
    AgentIdMismatch,
}

impl UpdateOutcome {
    /// Whether the agent acknowledges it.
    pub fn is_acknowledged(self) -> bool {
        matches!(self, UpdateOutcome::Applied | UpdateOutcome::Duplicate | UpdateOutcome::IgnoredTerminal)
    }

    /// Name used in the transcript.
    pub fn as_str(self) -> &'static str {
        match self {
            UpdateOutcome::Applied => "applied",
            UpdateOutcome::Duplicate => "duplicate",
            UpdateOutcome::IgnoredTerminal => "ignored: task already terminal",
            UpdateOutcome::UnknownTask => "dropped: unknown task",
            UpdateOutcome::AgentIdMismatch => "dropped: agent_id mismatch",
        }
    }
}

/// Everything the agent knows; guarded by one mutex in [`crate::Agent`].
#[derive(Debug)]
pub struct State {
    /// The agent's phase.
    pub phase: Phase,
    /// Bumped by every restart, so timers of an older incarnation stand down.
    pub incarnation: u64,
    /// The executor's state.
    pub executor: ExecutorState,
    /// The live event stream, if any.
    pub stream: Option<EventStream>,
    /// Streams opened so far (ids of [`EventStream`]).
    pub streams_opened: u64,
    /// SUBSCRIBE calls answered 200.
    pub subscriptions: u64,
    /// Tasks in launch order.
    pub tasks: Vec<TaskRecord>,
    index: HashMap<String, usize>,
    /// Launches waiting for a subscribed executor.
    pub queued: VecDeque<Pending>,
    /// Groups launched so far.
    pub groups: usize,
    /// Uuids of updates received.
    seen: HashSet<Bytes>,
    /// How acknowledgements are sent.
    pub ack_policy: AckPolicy,
    /// Acknowledgements held back by [`AckPolicy::Withhold`].
    pub withheld: Vec<(String, Bytes)>,
    /// Events not written while the stream stalls (with the uuid of an ACKNOWLEDGED);
    /// flushed when it resumes.
    pub stalled: Option<Vec<(Option<Bytes>, Bytes)>>,
    /// Updates the agent acknowledged whose ACKNOWLEDGED never reached a live stream:
    /// uuid to task id. A resubscription must carry every one of them.
    pub unacked: HashMap<Bytes, String>,
    /// Resubscriptions that lacked some of [`State::unacked`].
    pub resubscribe_gaps: u64,
    /// The host stopped answering (requests hang, events vanish).
    pub blackhole: bool,
    /// The next requests get this status: (status, how many more).
    pub forced_answer: Option<(u16, u32)>,
    /// Malformed HTTP for the first request of the next connections of a kind.
    pub bad_http: Option<(super::BadHttp, super::HttpTarget, u32)>,
    /// Cancelled to close the connections that carry calls (not event streams).
    pub calls_reset: tokio_util::sync::CancellationToken,
    /// The transcript so far.
    pub transcript: Vec<Entry>,
    /// How the executor process ended, once it has.
    pub executor_exit: Option<String>,
    rng: u64,
}

impl State {
    /// A fresh agent with a launched (registering) executor.
    pub fn new(ack_policy: AckPolicy, seed: u64) -> Self {
        State {
            phase: Phase::Running,
            incarnation: 0,
            executor: ExecutorState::Registering,
            stream: None,
            streams_opened: 0,
            subscriptions: 0,
            tasks: Vec::new(),
            index: HashMap::new(),
            queued: VecDeque::new(),
            groups: 0,
            seen: HashSet::new(),
            ack_policy,
            withheld: Vec::new(),
            stalled: None,
            unacked: HashMap::new(),
            resubscribe_gaps: 0,
            blackhole: false,
            forced_answer: None,
            bad_http: None,
            calls_reset: tokio_util::sync::CancellationToken::new(),
            transcript: Vec::new(),
            executor_exit: None,
            rng: seed | 1,
        }
    }

    /// Adds a task the agent will deliver; false if its id is taken (upstream masters
    /// reject duplicates, so a faithful agent never sends one).
    pub fn add_task(&mut self, info: TaskInfo, group: Option<usize>) -> bool {
        let id = info.task_id.value.clone();
        if self.index.contains_key(&id) {
            return false;
        }
        self.index.insert(id, self.tasks.len());
        self.tasks.push(TaskRecord { info, group, state: TaskState::TaskStaging, delivered: false, updates: 0 });
        true
    }

    /// The task with this id.
    pub fn task(&self, id: &str) -> Option<&TaskRecord> {
        self.index.get(id).map(|&i| &self.tasks[i])
    }

    /// The task with this id, mutably.
    pub fn task_mut(&mut self, id: &str) -> Option<&mut TaskRecord> {
        self.index.get(id).map(|&i| &mut self.tasks[i])
    }

    /// Applies an executor's update as the agent does, given the agent's own id.
    pub fn apply_update(&mut self, status: &TaskStatus, agent_id: &str) -> UpdateOutcome {
        if status.agent_id.as_ref().is_some_and(|a| a.value != agent_id) {
            return UpdateOutcome::AgentIdMismatch;
        }
        let Some(&index) = self.index.get(&status.task_id.value) else {
            return UpdateOutcome::UnknownTask;
        };
        let uuid = status.uuid.clone().unwrap_or_default();
        if !self.seen.insert(uuid) {
            return UpdateOutcome::Duplicate;
        }
        let task = &mut self.tasks[index];
        if task.is_terminal() {
            return UpdateOutcome::IgnoredTerminal;
        }
        if let Ok(state) = TaskState::try_from(status.state) {
            task.state = state;
        }
        task.updates += 1;
        UpdateOutcome::Applied
    }

    /// A number in [0, 1) from a xorshift generator (ack dropping needs no more).
    pub fn random(&mut self) -> f64 {
        self.rng ^= self.rng << 13;
        self.rng ^= self.rng >> 7;
        self.rng ^= self.rng << 17;
        (self.rng >> 11) as f64 / (1u64 << 53) as f64
    }

    /// Ids of tasks that are not terminal.
    pub fn live_task_ids(&self) -> Vec<String> {
        self.tasks.iter().filter(|t| !t.is_terminal()).map(|t| t.info.task_id.value.clone()).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use mesos_executor::proto::v1::{AgentId, TaskId};

    fn task(id: &str) -> TaskInfo {
        TaskInfo { name: id.into(), task_id: TaskId { value: id.into() }, ..Default::default() }
    }

    fn status(id: &str, state: TaskState, uuid: u8) -> TaskStatus {
        let mut bytes = [uuid; 16];
        bytes[6] = 0x40;
        TaskStatus {
            task_id: TaskId { value: id.into() },
            state: state as i32,
            uuid: Some(Bytes::copy_from_slice(&bytes)),
            ..Default::default()
        }
    }

    #[test]
    fn updates_apply_once_and_terminal_is_final() {
        let mut s = State::new(AckPolicy::Immediate, 7);
        assert!(s.add_task(task("t1"), None));
        assert!(!s.add_task(task("t1"), None), "duplicate ids are refused");
        assert_eq!(s.apply_update(&status("t1", TaskState::TaskRunning, 1), "a"), UpdateOutcome::Applied);
        assert_eq!(s.apply_update(&status("t1", TaskState::TaskRunning, 1), "a"), UpdateOutcome::Duplicate);
        assert_eq!(s.apply_update(&status("t1", TaskState::TaskFinished, 2), "a"), UpdateOutcome::Applied);
        assert_eq!(s.task("t1").unwrap().state, TaskState::TaskFinished);
        assert_eq!(s.apply_update(&status("t1", TaskState::TaskFailed, 3), "a"), UpdateOutcome::IgnoredTerminal);
        assert_eq!(s.task("t1").unwrap().state, TaskState::TaskFinished);
        assert_eq!(s.apply_update(&status("nope", TaskState::TaskRunning, 4), "a"), UpdateOutcome::UnknownTask);
        let mut wrong_agent = status("t1", TaskState::TaskRunning, 5);
        wrong_agent.agent_id = Some(AgentId { value: "other".into() });
        assert_eq!(s.apply_update(&wrong_agent, "a"), UpdateOutcome::AgentIdMismatch);
        assert!(!UpdateOutcome::UnknownTask.is_acknowledged());
        assert!(UpdateOutcome::IgnoredTerminal.is_acknowledged());
    }

    #[test]
    fn random_is_in_unit_interval() {
        let mut s = State::new(AckPolicy::Immediate, 42);
        let draws: Vec<f64> = (0..1000).map(|_| s.random()).collect();
        assert!(draws.iter().all(|x| (0.0..1.0).contains(x)));
        let mean = draws.iter().sum::<f64>() / 1000.0;
        assert!((0.4..0.6).contains(&mean), "mean {mean}");
    }
}
