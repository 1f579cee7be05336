//! The agent: one executor, its tasks, its event stream, its acknowledgements, and the
//! agent's own restarts and faults. A cheap `Clone` handle over one mutex-guarded
//! [`State`]; every change wakes whoever waits in [`Agent::wait_for`].

pub(crate) mod calls;
mod lifecycle;
pub mod state;

use std::{
    sync::{Arc, Mutex, MutexGuard},
    time::{Duration, Instant},
};

use bytes::Bytes;
use mesos_executor::{
    proto::v1::{
        AgentId, ExecutorId, KillPolicy, TaskGroupInfo, TaskId, TaskInfo, TaskState, TaskStatus,
        executor::{Event, event},
        task_status,
    },
    wire::encode,
};
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

pub use state::{ExecutorState, Phase, State, TaskRecord, UpdateOutcome};

use crate::{
    config::{AckPolicy, AgentConfig},
    process::Container,
    transcript::{Entry, Record},
};

/// Whether the listener is up; a new token per incarnation cancels its connections.
#[derive(Debug, Clone)]
pub struct NetState {
    /// Accept connections.
    pub up: bool,
    /// Cancelled when this incarnation goes down.
    pub token: CancellationToken,
}

/// A fault to inject into the event stream or the agent host.
#[derive(Debug, Clone, PartialEq, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Fault {
    /// A record whose length line is not a number (`12x\n`).
    BadLength,
    /// A record declaring a length far beyond any cap (about 10 GB).
    OversizeLength,
    /// A well-framed record whose body is not an Event.
    GarbageBody,
    /// Half a record, then the stream ends.
    CutMidRecord,
    /// Abort the stream's connection without the terminating chunk.
    ResetStream,
    /// An event of a type from a newer agent, with unknown fields.
    UnknownEvent,
    /// Hold every event back until [`Fault::Resume`].
    Stall,
    /// Write the held events and carry on.
    Resume,
    /// The host stops answering: requests hang, events vanish, nothing is closed.
    Blackhole,
    /// The host answers again.
    Unblackhole,
    /// Answer the next `count` requests with `status` (404, 403, 500, ...).
    Answer {
        /// HTTP status.
        status: u16,
        /// How many requests.
        count: u32,
    },
    /// Answer the first request of the next `count` connections whose first request is
    /// `on` with malformed HTTP instead of a real answer.
    BadHttp {
        /// What to send.
        reply: BadHttp,
        /// Which requests.
        on: HttpTarget,
        /// How many connections.
        #[serde(default = "one")]
        count: u32,
    },
}

fn one() -> u32 {
    1
}

/// Malformed HTTP an agent could send (see `server.rs` for the bytes).
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum BadHttp {
    /// A chunked body whose chunk size is `ffffffffffffffff`.
    HugeChunkSize,
    /// A chunked body whose chunk size is not hex.
    BadChunkSize,
    /// A status line that is not HTTP.
    GarbageStatusLine,
    /// A header block of 1.1 MiB.
    OversizeHead,
    /// The request is read and never answered; the connection stays open.
    NoAnswer,
    /// A head, then a chunked body that trickles on and never ends.
    EndlessBody,
}

/// Which requests a [`Fault::BadHttp`] answers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum HttpTarget {
    /// SUBSCRIBE.
    Subscribe,
    /// Any other call (UPDATE, MESSAGE, HEARTBEAT).
    Call,
}

/// A condition that did not come true in time.
#[derive(Debug, Clone, thiserror::Error)]
#[error("timed out after {waited:?} waiting for {what}; {seen}")]
pub struct WaitTimeout {
    /// What was awaited.
    pub what: String,
    /// How long.
    pub waited: Duration,
    /// What the agent saw instead.
    pub seen: String,
}

impl BadHttp {
    /// The bytes sent for this fault in answer to `target`, before any trickle.
    pub fn head(self, target: HttpTarget) -> Vec<u8> {
        let ok = match target {
            HttpTarget::Subscribe => "HTTP/1.1 200 OK\r\nContent-Type: application/x-protobuf\r\n",
            HttpTarget::Call => "HTTP/1.1 202 Accepted\r\n",
        };
        match self {
            BadHttp::HugeChunkSize => {
                format!("{ok}Transfer-Encoding: chunked\r\n\r\nffffffffffffffff\r\nab").into_bytes()
            }
            BadHttp::BadChunkSize => format!("{ok}Transfer-Encoding: chunked\r\n\r\nzz\r\nab\r\n").into_bytes(),
            BadHttp::GarbageStatusLine => b"SSH-2.0-OpenSSH_9.6 2x2 Whatever\r\n\r\n".to_vec(),
            BadHttp::OversizeHead => {
                let mut head = format!("{ok}X-Filler: ").into_bytes();
                head.resize(head.len() + 1_153_434, b'a');
                head.extend_from_slice(b"\r\nContent-Length: 0\r\n\r\n");
                head
            }
            BadHttp::NoAnswer => Vec::new(),
            BadHttp::EndlessBody => match target {
                // A SUBSCRIBE's 200 body is endless by design; a refusal's is not.
                HttpTarget::Subscribe => {
                    b"HTTP/1.1 503 Service Unavailable\r\nTransfer-Encoding: chunked\r\n\r\n".to_vec()
                }
                HttpTarget::Call => format!("{ok}Transfer-Encoding: chunked\r\n\r\n").into_bytes(),
            },
        }
    }
}

pub(crate) struct Inner {
    pub(crate) config: AgentConfig,
    started: Instant,
    state: Mutex<State>,
    changed: watch::Sender<u64>,
    pub(crate) net: watch::Sender<NetState>,
    pub(crate) port: Mutex<u16>,
    pub(crate) container: Mutex<Container>,
    pub(crate) executor_command: Mutex<String>,
}

/// A handle on the fake agent.
#[derive(Clone)]
pub struct Agent {
    pub(crate) inner: Arc<Inner>,
}

impl std::fmt::Debug for Agent {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Agent").field("config", &self.inner.config).finish_non_exhaustive()
    }
}

impl Agent {
    /// An agent with `config`, not yet listening.
    pub fn new(config: AgentConfig) -> Self {
        let seed = Instant::now().elapsed().as_nanos() as u64 ^ u64::from(std::process::id()) << 32;
        let state = State::new(config.ack_policy.clone(), seed);
        let (net, _) = watch::channel(NetState { up: true, token: CancellationToken::new() });
        Agent {
            inner: Arc::new(Inner {
                config,
                started: Instant::now(),
                state: Mutex::new(state),
                changed: watch::channel(0).0,
                net,
                port: Mutex::new(0),
                container: Mutex::new(Container::new(None)),
                executor_command: Mutex::new("mesos-executor".to_owned()),
            }),
        }
    }

    /// The configuration.
    pub fn config(&self) -> &AgentConfig {
        &self.inner.config
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        // A panic while holding the lock already failed the test; keep serving.
        self.inner.state.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Runs `f` on the state and wakes waiters.
    pub(crate) fn with_state<R>(&self, f: impl FnOnce(&mut State) -> R) -> R {
        let result = f(&mut self.lock());
        self.inner.changed.send_modify(|n| *n += 1);
        result
    }

    /// Reads the state.
    pub fn inspect<R>(&self, f: impl FnOnce(&State) -> R) -> R {
        f(&self.lock())
    }

    /// Waits until `done` holds, or fails after `timeout` with `seen` describing the state.
    ///
    /// # Errors
    /// [`WaitTimeout`] naming `what` and what was seen instead.
    pub async fn wait_for(
        &self,
        what: &str,
        timeout: Duration,
        done: impl Fn(&State) -> bool,
        seen: impl Fn(&State) -> String,
    ) -> Result<(), WaitTimeout> {
        let mut changed = self.inner.changed.subscribe();
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            if self.inspect(&done) {
                return Ok(());
            }
            if tokio::time::timeout_at(deadline, changed.changed()).await.is_err() {
                return Err(WaitTimeout { what: what.to_owned(), waited: timeout, seen: self.inspect(&seen) });
            }
        }
    }

    /// Time since the agent started.
    pub fn elapsed(&self) -> Duration {
        self.inner.started.elapsed()
    }

    pub(crate) fn record(&self, state: &mut State, record: Record) {
        state.transcript.push(Entry { at: self.elapsed(), record });
    }

    /// Adds a note to the transcript.
    pub fn note(&self, what: impl Into<String>) {
        self.with_state(|s| self.record(s, Record::Note { what: what.into() }));
    }

    /// A copy of the transcript.
    pub fn transcript(&self) -> Vec<Entry> {
        self.inspect(|s| s.transcript.clone())
    }

    /// Writes `event` to the live stream (or records it as lost).
    pub(crate) fn emit(&self, state: &mut State, event: Event) {
        let stream_id = match &state.stream {
            Some(stream) if !state.blackhole => {
                let payload = match encode(&event, stream.content_type) {
                    Ok(payload) => payload,
                    Err(e) => {
                        self.record(state, Record::Note { what: format!("cannot encode event: {e}") });
                        return;
                    }
                };
                let ack_uuid = event.acknowledged.as_ref().map(|a| a.uuid.clone());
                if let Some(held) = &mut state.stalled {
                    let mut record = format!("{}\n", payload.len()).into_bytes();
                    record.extend_from_slice(&payload);
                    held.push((ack_uuid, Bytes::from(record)));
                    Some(stream.id)
                } else if stream.send_record(&payload) {
                    if let Some(uuid) = ack_uuid {
                        state.unacked.remove(&uuid);
                    }
                    Some(stream.id)
                } else {
                    None
                }
            }
            _ => None,
        };
        self.record(state, Record::Event { event: Box::new(event), stream: stream_id });
    }

    /// Acknowledges an update according to the ack policy.
    pub(crate) fn acknowledge(&self, state: &mut State, task_id: &str, uuid: Bytes) {
        state.unacked.insert(uuid.clone(), task_id.to_owned());
        match state.ack_policy.clone() {
            AckPolicy::Immediate => self.emit(state, ack_event(task_id, uuid)),
            AckPolicy::Withhold => state.withheld.push((task_id.to_owned(), uuid)),
            AckPolicy::Drop(share) => {
                if state.random() < share {
                    self.record(state, Record::Note { what: format!("acknowledgement for {task_id} dropped") });
                } else {
                    self.emit(state, ack_event(task_id, uuid));
                }
            }
            AckPolicy::DelayMs(ms) => {
                let agent = self.clone();
                let task_id = task_id.to_owned();
                tokio::spawn(async move {
                    tokio::time::sleep(Duration::from_millis(ms)).await;
                    agent.with_state(|s| agent.emit(s, ack_event(&task_id, uuid)));
                });
            }
        }
    }

    /// Changes how updates are acknowledged from now on.
    pub fn set_ack_policy(&self, policy: AckPolicy) {
        self.with_state(|s| {
            self.record(s, Record::Note { what: format!("ack policy: {policy:?}") });
            s.ack_policy = policy;
        });
    }

    /// Sends every withheld acknowledgement now.
    pub fn release_withheld_acks(&self) {
        self.with_state(|s| {
            for (task_id, uuid) in std::mem::take(&mut s.withheld) {
                self.emit(s, ack_event(&task_id, uuid));
            }
        });
    }

    /// Launches a task: LAUNCH now if the executor is subscribed, else when it subscribes.
    pub fn launch(&self, task: TaskInfo) -> bool {
        self.with_state(|s| {
            if !s.add_task(task.clone(), None) {
                return false;
            }
            s.queued.push_back(state::Pending::Task(Box::new(task)));
            self.deliver_queued(s);
            true
        })
    }

    /// Sends a LAUNCH even if the task id is taken: what a faithful agent never does,
    /// for testing how an executor copes with a duplicate.
    pub fn with_unchecked_launch(&self, task: TaskInfo) {
        self.with_state(|s| {
            s.queued.push_back(state::Pending::Task(Box::new(task)));
            self.deliver_queued(s);
        });
    }

    /// Launches a task group: one LAUNCH_GROUP.
    pub fn launch_group(&self, group: TaskGroupInfo) -> bool {
        self.with_state(|s| {
            if group.tasks.iter().any(|t| s.task(&t.task_id.value).is_some()) {
                return false;
            }
            let index = s.groups;
            s.groups += 1;
            for task in &group.tasks {
                s.add_task(task.clone(), Some(index));
            }
            s.queued.push_back(state::Pending::Group(group));
            self.deliver_queued(s);
            true
        })
    }

    /// Sends the queued launches if the executor is subscribed (reference §10.2 step 7).
    pub(crate) fn deliver_queued(&self, s: &mut State) {
        if s.executor != ExecutorState::Running || s.stream.is_none() {
            return;
        }
        while let Some(pending) = s.queued.pop_front() {
            let event = match pending {
                state::Pending::Task(task) => {
                    if let Some(t) = s.task_mut(&task.task_id.value) {
                        t.delivered = true;
                    }
                    Event {
                        r#type: Some(event::Type::Launch as i32),
                        launch: Some(event::Launch { task: *task }),
                        ..Default::default()
                    }
                }
                state::Pending::Group(task_group) => {
                    for task in &task_group.tasks {
                        if let Some(t) = s.task_mut(&task.task_id.value) {
                            t.delivered = true;
                        }
                    }
                    Event {
                        r#type: Some(event::Type::LaunchGroup as i32),
                        launch_group: Some(event::LaunchGroup { task_group }),
                        ..Default::default()
                    }
                }
            };
            self.emit(s, event);
        }
    }

    /// Kills a task as the agent does (reference §10.3): a queued task is killed by the
    /// agent itself; a delivered one gets a KILL event.
    pub fn kill(&self, task_id: &str, kill_policy: Option<KillPolicy>) {
        self.with_state(|s| {
            let queued = s.queued.iter().position(|p| match p {
                state::Pending::Task(t) => t.task_id.value == task_id,
                state::Pending::Group(g) => g.tasks.iter().any(|t| t.task_id.value == task_id),
            });
            if let Some(position) = queued {
                let (ids, message) = match s.queued.remove(position) {
                    Some(state::Pending::Group(g)) => (
                        g.tasks.iter().map(|t| t.task_id.value.clone()).collect(),
                        "A task within the task group was killed before delivery to the executor",
                    ),
                    _ => (vec![task_id.to_owned()], "Killed before delivery to the executor"),
                };
                for id in ids {
                    self.agent_update(
                        s,
                        &id,
                        TaskState::TaskKilled,
                        task_status::Reason::TaskKilledDuringLaunch,
                        message,
                    );
                }
                return;
            }
            if matches!(s.executor, ExecutorState::Terminating | ExecutorState::Terminated) {
                return;
            }
            let event = Event {
                r#type: Some(event::Type::Kill as i32),
                kill: Some(event::Kill { task_id: TaskId { value: task_id.to_owned() }, kill_policy }),
                ..Default::default()
            };
            self.emit(s, event);
        });
    }

    /// Sends a framework message (dropped unless the executor is subscribed, as upstream).
    pub fn send_message(&self, data: impl Into<Bytes>) {
        let data = data.into();
        self.with_state(|s| {
            let event = Event {
                r#type: Some(event::Type::Message as i32),
                message: Some(event::Message { data }),
                ..Default::default()
            };
            if s.executor == ExecutorState::Running {
                self.emit(s, event);
            } else {
                self.record(s, Record::Note { what: "framework message dropped: executor not subscribed".into() });
            }
        });
    }

    /// Records an update the agent generates itself and applies it to the task.
    pub(crate) fn agent_update(
        &self,
        s: &mut State,
        task_id: &str,
        state: TaskState,
        reason: task_status::Reason,
        message: &str,
    ) {
        if let Some(task) = s.task_mut(task_id) {
            task.state = state;
        }
        let cfg = &self.inner.config;
        let status = TaskStatus {
            task_id: TaskId { value: task_id.to_owned() },
            state: state as i32,
            message: Some(message.to_owned()),
            source: Some(task_status::Source::Agent as i32),
            reason: Some(reason as i32),
            agent_id: Some(AgentId { value: cfg.agent_id.clone() }),
            executor_id: Some(ExecutorId { value: cfg.executor_id.clone() }),
            timestamp: Some(
                std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0.0, |d| d.as_secs_f64()),
            ),
            ..Default::default()
        };
        self.record(s, Record::AgentUpdate { status: Box::new(status) });
    }

    /// The lost-task state upstream uses: TASK_DROPPED/TASK_GONE only for partition-aware
    /// frameworks, else TASK_LOST.
    pub(crate) fn lost_state(&self, partition_aware_state: TaskState) -> TaskState {
        if self.inner.config.partition_aware() { partition_aware_state } else { TaskState::TaskLost }
    }

    /// The current state of a task, as the agent sees it.
    pub fn task_state(&self, task_id: &str) -> Option<TaskState> {
        self.inspect(|s| s.task(task_id).map(|t| t.state))
    }

    /// Pids of the processes in the executor's container.
    pub fn container_members(&self) -> std::collections::HashSet<u32> {
        self.inner.container.lock().map(|c| c.members()).unwrap_or_default()
    }

    /// The port the agent listens on.
    pub fn port(&self) -> u16 {
        *self.inner.port.lock().unwrap_or_else(|p| p.into_inner())
    }
}

fn ack_event(task_id: &str, uuid: Bytes) -> Event {
    Event {
        r#type: Some(event::Type::Acknowledged as i32),
        acknowledged: Some(event::Acknowledged { task_id: TaskId { value: task_id.to_owned() }, uuid }),
        ..Default::default()
    }
}
