//! The task book: every decision the daemon makes about its tasks, as a pure state
//! machine. It owns the tasks, their start stages and their latest states, and takes
//! inputs (a launch with its prepared process, a fetch's result, a spawn's result, a
//! kill, an exit, a probe result, the agent going and coming back, a shutdown, the clock
//! reaching [`TaskBook::next_wakeup`]) at an explicit `now`, returning effects (report
//! this update, fetch or stop fetching this task's URIs, spawn these members, signal this
//! task, run this probe, stop the driver). The supervisor (`supervisor.rs`) performs
//! them; nothing here touches a process, a clock or a socket.
//!
//! # A task's life
//! ```text
//! queued ──> fetching ──> ready ──(every member ready)──> spawning ──> running ──> done
//!    └──────────┴────────────┴── KILL / SHUTDOWN / a member fell: TASK_KILLED ──────┘
//! ```
//! A lone task is a start unit of one; a task group is one unit. At most
//! [`FETCHES_PER_UNIT`] members of a unit fetch at once; the unit is spawned only when
//! every member is ready (the all-or-nothing start), and a member that cannot be fetched
//! or prepared fails the whole unit, none of it started.
//!
//! # Time
//! The book owns every deadline: a kill's grace period, `max_completion_time`, and
//! each probe's next run. [`TaskBook::next_wakeup`] says when the earliest falls due, and
//! the shell steps [`Input::Tick`] then; there are no timers to arm or cancel, so a
//! shortened grace period simply moves the deadline.
//!
//! # Rules (upstream's command executor and default executor, reference §9)
//! - Launch: a LAUNCH reusing the id of a task of the book is dropped unanswered (an
//!   update would be read as that task's). Refused with TASK_FAILED when the executor is
//!   shutting down, or for a second task of the drop-in command executor; TASK_ERROR when
//!   the task cannot be prepared (no command, an image, a secret reference); TASK_FAILED
//!   with REASON_CONTAINER_LIMITATION when it would exceed `--max_tasks` running at once.
//!   Else TASK_STARTING, the fetch, the spawn, then TASK_RUNNING, or TASK_FAILED if it
//!   could not start.
//! - A task group is refused or started as a whole: every TASK_STARTING, the members'
//!   fetches, then one spawn of all members behind a barrier (the supervisor prepares
//!   every member, and starts none unless all are prepared), then each TASK_RUNNING. A
//!   group that would cross `--max_tasks` is refused whole. The command executor refuses
//!   groups (TASK_ERROR).
//! - Kill: TASK_KILLING (with the framework's capability), SIGTERM, and SIGKILL when
//!   the grace period ends: the KILL's policy, else the task's, else 3 s. A repeated
//!   kill can only shorten the time left. A KILL for a task never seen gets TASK_KILLED.
//!   A task killed before it was spawned (while fetching) has its fetch cancelled,
//!   never starts, and is TASK_KILLED at once; a fetch that fails after the kill changes
//!   nothing.
//! - Exit: code 0 is TASK_FINISHED; another code or a signal TASK_FAILED with
//!   REASON_COMMAND_EXECUTOR_FAILED; a killed task TASK_KILLED; past
//!   `max_completion_time` TASK_FAILED with REASON_MAX_COMPLETION_TIME_REACHED. A task
//!   killed for its health check ends with `healthy: false`.
//! - Group rule: a member that ends FAILED or KILLED (or fails to spawn) takes the
//!   other members down, each with its own terminal update.
//! - Health checks: `healthy` reported on change and on every counted failure; the
//!   limit kills the task. General checks: every update carries the latest result, and a
//!   change is reported with REASON_TASK_CHECK_STATUS_UPDATED; checks never kill. Both
//!   run first after their delay, then an interval after each result. In custom mode
//!   they pause while the agent is away (a result that comes in meanwhile is dropped)
//!   and run again at once on SUBSCRIBED, as upstream's default executor does
//!   (`src/launcher/default_executor.cpp`, `src/checks/checker_process.cpp`).
//! - Shutdown: every live task killed within the shutdown grace period (less 2 s for
//!   the executor itself, as upstream, but at least half of it).
//! - Finish: the driver is stopped once there is nothing left to do: in drop-in mode
//!   when the one task has ended, in default mode when every task of the groups it was
//!   given has ended (upstream `src/launcher/default_executor.cpp`, `waited`: the
//!   executor shuts down once no container is left), in custom mode when every task has
//!   ended after a shutdown.
//! - Default mode: a LAUNCH (a lone task) shuts the executor down, without an update
//!   for it, as upstream's default executor does (`received`, `Event::LAUNCH`); a member
//!   killed for the group rule gets the default 3 s grace, not its own kill policy
//!   (`waited` calls `kill(container)` with no grace period).

mod checks;
mod end;
mod start;

use std::{
    collections::{BTreeMap, BTreeSet},
    time::Duration,
};

use mesos_executor::{
    executor::{
        health::Tracker,
        launch::{LaunchError, LaunchSpec},
        process::Exit,
    },
    proto::v1::{
        CheckInfo, CheckStatusInfo, HealthCheck, KillPolicy, TaskInfo, TaskState, command_info::Uri,
        task_status::Reason,
    },
};
use tokio::time::Instant;

use crate::group::GroupFile;

pub use checks::Probe;

/// How many members of one start unit (a task group) fetch their URIs at once.
pub const FETCHES_PER_UNIT: usize = 4;

/// Farther than any deadline means anything (as tokio's own far future).
const FAR_FUTURE: Duration = Duration::from_secs(86_400 * 365 * 30);

/// `now` plus `duration`, which may come from the wire (a health check's delay of 1e300
/// seconds): never past [`FAR_FUTURE`], so it cannot overflow the clock.
fn after(now: Instant, duration: Duration) -> Instant {
    now + duration.min(FAR_FUTURE)
}

/// How the daemon was deployed (see the README).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// Drop-in for the agent's command executor: one task, exit once it is acknowledged.
    Command,
    /// Drop-in for the agent's default executor (`mesos-default-executor`): task groups,
    /// exit once every task has ended and its updates are acknowledged.
    Default,
    /// A framework's custom executor: many tasks and task groups, until SHUTDOWN.
    Custom,
}

/// Why a task is being killed; decides its terminal state.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KillReason {
    /// A KILL from the agent.
    Kill,
    /// Its health check failed too often.
    HealthCheck,
    /// The executor is shutting down.
    Shutdown,
    /// The executor's own process was asked to stop (SIGTERM, SIGINT).
    Stopped,
    /// Another member of its group failed or was killed.
    GroupMember,
    /// It ran past `max_completion_time`.
    MaxCompletion,
}

/// Which signal to send to a task's process group and marked processes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Signal {
    /// SIGTERM: please end.
    Term,
    /// SIGKILL.
    Kill,
}

/// A status update to report.
#[derive(Debug, Clone, PartialEq)]
pub struct Report {
    pub task_id: String,
    pub state: TaskState,
    pub message: Option<String>,
    pub reason: Option<Reason>,
    pub healthy: Option<bool>,
    pub check_status: Option<CheckStatusInfo>,
}

/// A task's process as prepared from its LAUNCH, and the URIs to fetch before it
/// starts: they travel together, through the book, to the task's fetch.
#[derive(Debug, Clone, PartialEq)]
pub struct Prepared {
    pub spec: LaunchSpec,
    pub uris: Vec<Uri>,
}

/// What happened.
#[derive(Debug)]
pub enum Input {
    /// SUBSCRIBED: whether the framework understands TASK_KILLING.
    Registered { killing_state: bool },
    /// The connection to the agent is lost (checks pause in custom mode).
    Disconnected,
    /// SUBSCRIBED again after a disconnection (checks resume).
    Reconnected,
    /// LAUNCH, with the task's process as prepared (or why it could not be).
    Launch { task: Box<TaskInfo>, spec: Result<Prepared, LaunchError> },
    /// LAUNCH_GROUP, each member with its prepared process, and the group's file.
    LaunchGroup { members: Vec<(TaskInfo, Result<Prepared, LaunchError>)>, file: Option<GroupFile> },
    /// The fetch asked for by [`Effect::Fetch`] ended: the task's sandbox is made and
    /// its URIs are in it, or why not.
    Fetched { task_id: String, result: Result<(), String> },
    /// A member's process asked for by [`Effect::Spawn`] started or failed to.
    Spawned { task_id: String, result: Result<(), String> },
    /// The spawn asked for by [`Effect::Spawn`] did not happen: `member` could not be
    /// prepared, so none of `task_ids` started.
    NotStarted { task_ids: Vec<String>, member: String, error: String },
    /// KILL from the agent.
    Kill { task_id: String, policy: Option<KillPolicy> },
    /// The executor must shut down.
    Shutdown,
    /// The executor's own process was asked to stop (a signal): as [`Input::Shutdown`],
    /// and the tasks' terminal updates say so.
    StopRequested,
    /// A task's process ended.
    Exited { task_id: String, exit: Result<Exit, String> },
    /// The clock reached [`TaskBook::next_wakeup`] (or passed it).
    Tick,
    /// A health check result.
    Health { task_id: String, result: Result<(), String> },
    /// A general check result (`None`: the check could not say).
    Check { task_id: String, status: Option<CheckStatusInfo> },
}

/// What the supervisor must do, in order.
#[derive(Debug, Clone, PartialEq)]
pub enum Effect {
    /// Send a status update.
    Report(Report),
    /// Make the task's sandbox, keep its process spec, and fetch its URIs into the
    /// sandbox; answer with [`Input::Fetched`].
    Fetch { task_id: String, prepared: Box<Prepared> },
    /// Stop the task's fetch (it was killed while fetching); no answer is wanted.
    CancelFetch { task_id: String },
    /// Prepare every member (output files, user, program, the group file), then, only if
    /// all are prepared, start them; answer with [`Input::Spawned`] for each, or one
    /// [`Input::NotStarted`].
    Spawn { task_ids: Vec<String>, file: Option<GroupFile> },
    /// Run one health check or general check; answer with [`Input::Health`] or
    /// [`Input::Check`].
    RunProbe { task_id: String, probe: Probe },
    /// Stop the task's probes that are running (it is being killed or has ended).
    Quiet { task_id: String },
    /// Signal the task's process group and marked processes. `grace` is the kill's grace
    /// period (SIGTERM to SIGKILL) and `why` its reason, for the log.
    Signal { task_id: String, signal: Signal, grace: Duration, why: KillReason },
    /// The task has ended: kill whatever it left running, forget its sandbox.
    CleanUp { task_id: String },
    /// Nothing left to do: stop the driver (it waits for the acknowledgements).
    StopDriver,
}

/// Where a task is between LAUNCH and its terminal update.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Stage {
    /// Waiting for a fetch slot of its unit; the book holds its spec.
    Queued,
    /// Its sandbox is being made and its URIs fetched.
    Fetching,
    /// Fetched; waiting for the rest of its unit.
    Ready,
    /// Asked to be spawned; the answer has not come.
    Spawning,
    /// Its process runs.
    Running,
    /// Its terminal update is out.
    Done,
}

#[derive(Debug)]
struct Killing {
    since: Instant,
    deadline: Instant,
    reason: KillReason,
    /// SIGKILL has been sent.
    escalated: bool,
}

impl Killing {
    /// The effect that sends `signal` to task `id` for this kill.
    fn signal(&self, id: &str, signal: Signal) -> Effect {
        let grace = self.deadline.saturating_duration_since(self.since);
        Effect::Signal { task_id: id.to_owned(), signal, grace, why: self.reason }
    }
}

#[derive(Debug)]
struct Task {
    /// The task's own kill grace period (`TaskInfo.kill_policy`).
    grace: Option<Duration>,
    max_completion: Option<Duration>,
    /// When `max_completion_time` is up (set at the spawn).
    complete_by: Option<Instant>,
    health: Option<HealthCheck>,
    check: Option<CheckInfo>,
    /// The task group whose rule it is under (custom mode).
    group: Option<usize>,
    /// Its start unit (itself alone, or its group).
    unit: usize,
    /// Its spec while it waits for a fetch slot.
    spec: Option<Box<Prepared>>,
    stage: Stage,
    /// Latest state reported.
    state: TaskState,
    killing: Option<Killing>,
    healthy: Option<bool>,
    tracker: Option<Tracker>,
    /// Latest general check result, sent with every update of the task.
    check_status: Option<CheckStatusInfo>,
    /// When the health check and the general check run next.
    health_due: checks::Schedule,
    check_due: checks::Schedule,
}

impl Task {
    fn done(&self) -> bool {
        self.stage == Stage::Done
    }
}

impl TaskBook {
    /// Task `id` has ended (its terminal update is next): it keeps only what its id and
    /// its last update need (a long-lived executor runs many tasks), and leaves the
    /// live count. Returns it, unless it had already ended.
    fn finish(&mut self, id: &str) -> Option<&mut Task> {
        let task = self.tasks.get_mut(id).filter(|t| !t.done())?;
        task.stage = Stage::Done;
        task.spec = None;
        task.health = None;
        task.check = None;
        task.tracker = None;
        task.health_due = Default::default();
        task.check_due = Default::default();
        task.complete_by = None;
        self.running.remove(id);
        self.live = self.live.saturating_sub(1);
        // A group whose members have all ended has no rule left to apply: forgotten, as
        // upstream's default executor erases a container at its end (`waited`).
        if let Some(group) = task.group
            && let Some(members) = self.groups.get(&group)
            && members.iter().all(|m| self.tasks.get(m).is_none_or(Task::done))
        {
            self.groups.remove(&group);
        }
        self.tasks.get_mut(id)
    }
}

/// Tasks that start together: one task, or a task group.
#[derive(Debug)]
struct Unit {
    ids: Vec<String>,
    /// The group file, written at the spawn.
    file: Option<GroupFile>,
}

/// The task book.
#[derive(Debug)]
pub struct TaskBook {
    mode: Mode,
    shutdown_grace: Duration,
    /// `--max_tasks`: most tasks running (not ended) at once.
    max_tasks: Option<usize>,
    killing_state: bool,
    tasks: BTreeMap<String, Task>,
    /// How many tasks of the book have not ended (for `--max_tasks` and the finish,
    /// without a walk over every task ever launched).
    live: usize,
    /// The tasks whose process runs: the only ones with deadlines (the book keeps ended
    /// tasks, so that their ids stay taken).
    running: BTreeSet<String>,
    /// Task groups with a member not yet ended, by number, for the group rule.
    groups: BTreeMap<usize, Vec<String>>,
    next_group: usize,
    /// Start units not yet spawned (or failed), by number.
    units: BTreeMap<usize, Unit>,
    next_unit: usize,
    launched: bool,
    shutting_down: bool,
    /// The agent is away: checks are paused (custom mode).
    paused: bool,
    stopped: bool,
}

impl TaskBook {
    /// An empty book for `mode`, with `MESOS_EXECUTOR_SHUTDOWN_GRACE_PERIOD` and at most
    /// `max_tasks` tasks running at once.
    pub fn new(mode: Mode, shutdown_grace: Duration, max_tasks: Option<usize>) -> Self {
        TaskBook {
            mode,
            shutdown_grace,
            max_tasks,
            killing_state: false,
            tasks: BTreeMap::new(),
            live: 0,
            running: BTreeSet::new(),
            groups: BTreeMap::new(),
            next_group: 0,
            units: BTreeMap::new(),
            next_unit: 0,
            launched: false,
            shutting_down: false,
            paused: false,
            stopped: false,
        }
    }

    /// Applies `input` at `now`.
    pub fn step(&mut self, input: Input, now: Instant) -> Vec<Effect> {
        let mut out = Vec::new();
        match input {
            Input::Registered { killing_state } => {
                self.killing_state = killing_state;
                self.resume(now, &mut out);
            }
            Input::Disconnected => self.pause(),
            Input::Reconnected => self.resume(now, &mut out),
            // Upstream's default executor: "LAUNCH event is not supported", and it shuts
            // down (`DefaultExecutor::received`).
            Input::Launch { .. } if self.mode == Mode::Default => self.shutdown(KillReason::Shutdown, now, &mut out),
            Input::Launch { task, spec } => self.launch(*task, spec, &mut out),
            Input::LaunchGroup { members, file } => self.launch_group(members, file, &mut out),
            Input::Fetched { task_id, result } => self.fetched(&task_id, result, now, &mut out),
            Input::Spawned { task_id, result } => self.spawned(&task_id, result, now, &mut out),
            Input::NotStarted { task_ids, member, error } => self.not_started(&task_ids, &member, &error, &mut out),
            Input::Kill { task_id, policy } => self.kill_requested(&task_id, policy.as_ref(), now, &mut out),
            Input::Shutdown => self.shutdown(KillReason::Shutdown, now, &mut out),
            Input::StopRequested => self.shutdown(KillReason::Stopped, now, &mut out),
            Input::Exited { task_id, exit } => self.exited(&task_id, exit, now, &mut out),
            Input::Tick => self.tick(now, &mut out),
            Input::Health { task_id, result } => self.health(&task_id, result, now, &mut out),
            Input::Check { task_id, status } => self.checked(&task_id, status, now, &mut out),
        }
        self.maybe_finish(&mut out);
        out
    }

    /// When the book next has something to do on its own: the earliest kill deadline,
    /// `max_completion_time` or probe run; `None` when nothing is scheduled.
    pub fn next_wakeup(&self) -> Option<Instant> {
        self.running.iter().filter_map(|id| self.tasks.get(id)).filter_map(|t| self.wakeup_of(t)).min()
    }

    fn wakeup_of(&self, task: &Task) -> Option<Instant> {
        match &task.killing {
            Some(k) if !k.escalated => Some(k.deadline),
            Some(_) => None,
            None => {
                let probes = [task.health_due.due(), task.check_due.due()].into_iter().flatten().min();
                let probes = if self.paused { None } else { probes };
                [task.complete_by, probes].into_iter().flatten().min()
            }
        }
    }

    /// Whatever is due at `now`: SIGKILL at the end of a grace period, the kill at
    /// `max_completion_time`, the probes.
    fn tick(&mut self, now: Instant, out: &mut Vec<Effect>) {
        let due: Vec<String> = self
            .running
            .iter()
            .filter(|id| self.tasks.get(*id).and_then(|t| self.wakeup_of(t)).is_some_and(|at| at <= now))
            .cloned()
            .collect();
        for id in due {
            let Some(task) = self.tasks.get_mut(&id) else { continue };
            if let Some(killing) = &mut task.killing {
                if !killing.escalated && killing.deadline <= now {
                    killing.escalated = true;
                    out.push(killing.signal(&id, Signal::Kill));
                }
                continue;
            }
            if task.complete_by.is_some_and(|at| at <= now) {
                self.kill(&id, Duration::ZERO, KillReason::MaxCompletion, now, out);
                continue;
            }
            self.run_due_probes(&id, now, out);
        }
    }

    fn report(
        &mut self,
        out: &mut Vec<Effect>,
        task_id: &str,
        state: TaskState,
        message: Option<String>,
        reason: Option<Reason>,
    ) {
        let (healthy, check_status) = match self.tasks.get_mut(task_id) {
            Some(task) => {
                task.state = state;
                // As upstream's command executor: `healthy` rides on the health check's
                // own updates, and on the terminal update of a task its health check
                // killed; never on TASK_KILLING, nor on the end of a task killed
                // otherwise (the real-agent tests compare them update by update).
                let by_health = task.killing.as_ref().is_some_and(|k| k.reason == KillReason::HealthCheck);
                let healthy = match reason {
                    Some(Reason::TaskHealthCheckStatusUpdated) => task.healthy,
                    _ if state.is_terminal() && by_health => Some(false),
                    _ => None,
                };
                (healthy, task.check_status)
            }
            None => (None, None),
        };
        out.push(Effect::Report(Report { task_id: task_id.to_owned(), state, message, reason, healthy, check_status }));
    }

    /// Reports a task this executor will not run (it is not in the book).
    fn refuse(out: &mut Vec<Effect>, task_id: &str, state: TaskState, reason: Reason, message: String) {
        let report = Report {
            task_id: task_id.to_owned(),
            state,
            message: Some(message),
            reason: Some(reason),
            healthy: None,
            check_status: None,
        };
        out.push(Effect::Report(report));
    }

    fn shutdown(&mut self, why: KillReason, now: Instant, out: &mut Vec<Effect>) {
        if self.shutting_down {
            return;
        }
        self.shutting_down = true;
        // Upstream's command executor leaves 2 s of the agent's grace period for itself;
        // with short grace periods we keep half of it for SIGTERM.
        let grace = self.shutdown_grace.saturating_sub(Duration::from_secs(2)).max(self.shutdown_grace / 2);
        let live: Vec<String> = self.tasks.iter().filter(|(_, t)| !t.done()).map(|(id, _)| id.clone()).collect();
        for id in live {
            self.kill(&id, grace, why, now, out);
        }
    }

    fn maybe_finish(&mut self, out: &mut Vec<Effect>) {
        if self.stopped {
            return;
        }
        // Only when it can be the end: the book keeps every task it ever had.
        let can_end = match self.mode {
            Mode::Command | Mode::Default => self.launched || self.shutting_down,
            Mode::Custom => self.shutting_down,
        };
        let finished = can_end && self.live == 0;
        if finished {
            self.stopped = true;
            out.push(Effect::StopDriver);
        }
    }
}

#[cfg(test)]
mod tests;
