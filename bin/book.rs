//! The task book: every decision the daemon makes about its tasks, as a pure state
//! machine. It owns the tasks and their latest states, and takes inputs (a launch with
//! its prepared process, a spawn's result, a kill, an exit, a timer, a probe result, a
//! shutdown) at an explicit `now`, returning effects (report this update, spawn this
//! process, signal this task, arm this timer, stop the driver). The supervisor
//! (`supervisor.rs`) performs them; nothing here touches a process, a clock or a socket.
//!
//! # Rules (upstream's command executor and default executor, reference §9)
//! - Launch: refused with TASK_FAILED when the executor is shutting down, when the id
//!   is taken, or for a second task of the drop-in command executor; TASK_ERROR when
//!   the task cannot be prepared (no command, an image, a secret reference); TASK_FAILED
//!   with REASON_CONTAINER_LIMITATION when it would exceed `--max_tasks` running at once.
//!   Else TASK_STARTING, the start, then TASK_RUNNING, or TASK_FAILED if it could not
//!   start.
//! - A task group is refused or started as a whole: every TASK_STARTING, then one start
//!   of all members behind a barrier (the supervisor prepares every member, and starts
//!   none unless all are prepared), then each TASK_RUNNING. A group that would cross
//!   `--max_tasks` is refused whole. The command executor refuses groups (TASK_ERROR).
//! - Kill: TASK_KILLING (with the framework's capability), SIGTERM, and SIGKILL when
//!   the grace period ends: the KILL's policy, else the task's, else 3 s. A repeated
//!   kill can only shorten the time left. A KILL for a task never seen gets TASK_KILLED.
//! - Exit: code 0 is TASK_FINISHED; another code or a signal TASK_FAILED with
//!   REASON_COMMAND_EXECUTOR_FAILED; a killed task TASK_KILLED; past
//!   `max_completion_time` TASK_FAILED with REASON_MAX_COMPLETION_TIME_REACHED. A task
//!   killed for its health check ends with `healthy: false`.
//! - Group rule: a member that ends FAILED or KILLED (or fails to spawn) takes the
//!   other members down, each with its own terminal update.
//! - Health checks: `healthy` reported on change and on every counted failure; the
//!   limit kills the task. General checks: every update carries the latest result, and a
//!   change is reported with REASON_TASK_CHECK_STATUS_UPDATED; checks never kill.
//! - Shutdown: every live task killed within the shutdown grace period (less 2 s for
//!   the executor itself, as upstream, but at least half of it).
//! - Finish: the driver is stopped once there is nothing left to do: in drop-in mode
//!   when the one task has ended, in custom mode when every task has ended after a
//!   shutdown.

use std::{collections::BTreeMap, time::Duration};

use mesos_executor::{
    executor::{
        health::{Tracker, Verdict},
        kill::{self, policy_grace},
        launch::{LaunchError, LaunchSpec},
        process::Exit,
    },
    proto::v1::{CheckInfo, CheckStatusInfo, HealthCheck, KillPolicy, TaskInfo, TaskState, task_status::Reason},
};
use tokio::time::Instant;

use crate::group::GroupFile;

/// How the daemon was deployed (see the README).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// Drop-in for the agent's command executor: one task, exit once it is acknowledged.
    Command,
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
    /// Another member of its group failed or was killed.
    GroupMember,
    /// It ran past `max_completion_time`.
    MaxCompletion,
}

/// A timer the book asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Timer {
    /// The kill grace period may be over: SIGKILL if it is.
    Escalate,
    /// `max_completion_time` has passed.
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

/// What happened.
#[derive(Debug)]
pub enum Input {
    /// SUBSCRIBED: whether the framework understands TASK_KILLING.
    Registered { killing_state: bool },
    /// LAUNCH, with the task's process as prepared (or why it could not be).
    Launch { task: Box<TaskInfo>, spec: Result<LaunchSpec, LaunchError> },
    /// LAUNCH_GROUP, each member with its prepared process, and the group's file.
    LaunchGroup { members: Vec<(TaskInfo, Result<LaunchSpec, LaunchError>)>, file: Option<GroupFile> },
    /// A member's process asked for by [`Effect::Start`] started or failed to.
    Spawned { task_id: String, result: Result<(), String> },
    /// The start asked for by [`Effect::Start`] did not happen: `member` could not be
    /// prepared, so none of `task_ids` started.
    NotStarted { task_ids: Vec<String>, member: String, error: String },
    /// KILL from the agent.
    Kill { task_id: String, policy: Option<KillPolicy> },
    /// The executor must shut down.
    Shutdown,
    /// A task's process ended.
    Exited { task_id: String, exit: Result<Exit, String> },
    /// A timer armed by [`Effect::Arm`] fired.
    Timer { task_id: String, timer: Timer },
    /// A health check result.
    Health { task_id: String, result: Result<(), String> },
    /// A general check result.
    Check { task_id: String, status: CheckStatusInfo },
}

/// What the supervisor must do, in order.
#[derive(Debug, Clone, PartialEq)]
pub enum Effect {
    /// Send a status update.
    Report(Report),
    /// Prepare every member (output files, user, program, the group file), then, only if
    /// all are prepared, start them; answer with [`Input::Spawned`] for each, or one
    /// [`Input::NotStarted`].
    Start { members: Vec<(String, Box<LaunchSpec>)>, file: Option<GroupFile> },
    /// Start the task's health and general checks.
    Probe { task_id: String, health: Option<Box<HealthCheck>>, check: Option<Box<CheckInfo>> },
    /// Stop the task's probes and timers.
    Quiet { task_id: String },
    /// Signal the task's process group and marked processes.
    Signal { task_id: String, signal: Signal },
    /// Fire [`Input::Timer`] at `at`.
    Arm { task_id: String, timer: Timer, at: Instant },
    /// The task has ended: kill whatever it left running.
    CleanUp { task_id: String },
    /// Nothing left to do: stop the driver (it waits for the acknowledgements).
    StopDriver,
}

#[derive(Debug)]
struct Killing {
    since: Instant,
    deadline: Instant,
    reason: KillReason,
}

#[derive(Debug)]
struct Task {
    /// The task's own kill grace period (`TaskInfo.kill_policy`).
    grace: Option<Duration>,
    max_completion: Option<Duration>,
    health: Option<HealthCheck>,
    check: Option<CheckInfo>,
    group: Option<usize>,
    /// Latest state reported.
    state: TaskState,
    /// The process is running (spawned, not exited).
    running: bool,
    killing: Option<Killing>,
    healthy: Option<bool>,
    tracker: Option<Tracker>,
    /// Latest general check result, sent with every update of the task.
    check_status: Option<CheckStatusInfo>,
    done: bool,
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
    groups: Vec<Vec<String>>,
    launched: bool,
    shutting_down: bool,
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
            groups: Vec::new(),
            launched: false,
            shutting_down: false,
            stopped: false,
        }
    }

    /// Applies `input` at `now`.
    pub fn step(&mut self, input: Input, now: Instant) -> Vec<Effect> {
        let mut out = Vec::new();
        match input {
            Input::Registered { killing_state } => self.killing_state = killing_state,
            Input::Launch { task, spec } => self.launch(*task, spec, &mut out),
            Input::LaunchGroup { members, file } => self.launch_group(members, file, &mut out),
            Input::Spawned { task_id, result } => self.spawned(&task_id, result, now, &mut out),
            Input::NotStarted { task_ids, member, error } => self.not_started(&task_ids, &member, &error, &mut out),
            Input::Kill { task_id, policy } => self.kill_requested(&task_id, policy.as_ref(), now, &mut out),
            Input::Shutdown => self.shutdown(now, &mut out),
            Input::Exited { task_id, exit } => self.exited(&task_id, exit, now, &mut out),
            Input::Timer { task_id, timer: Timer::Escalate } => self.escalate(&task_id, now, &mut out),
            Input::Timer { task_id, timer: Timer::MaxCompletion } => {
                self.kill(&task_id, Duration::ZERO, KillReason::MaxCompletion, now, &mut out)
            }
            Input::Health { task_id, result } => self.health(&task_id, result, now, &mut out),
            Input::Check { task_id, status } => self.checked(&task_id, status, &mut out),
        }
        self.maybe_finish(&mut out);
        out
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
                (task.healthy, task.check_status)
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

    /// Why a task id cannot be launched now, if it cannot.
    fn refusal(&self, id: &str) -> Option<String> {
        if self.shutting_down {
            return Some("the executor is shutting down".to_owned());
        }
        if self.mode == Mode::Command && self.launched {
            return Some("Attempted to run multiple tasks using a \"command\" executor".to_owned());
        }
        if self.tasks.contains_key(id) {
            return Some(format!("task id {id:?} is already used by a task of this executor"));
        }
        None
    }

    /// Why `more` tasks cannot be admitted now, if the cap says so.
    fn over_cap(&self, more: usize) -> Option<String> {
        let cap = self.max_tasks?;
        let live = self.tasks.values().filter(|t| !t.done).count();
        (live.saturating_add(more) > cap).then(|| {
            format!(
                "the executor runs at most {cap} tasks at once (--max_tasks); {live} are running, {more} more asked"
            )
        })
    }

    fn enter(&mut self, task: &TaskInfo, group: Option<usize>) {
        let check_status = task.check.as_ref().and_then(mesos_executor::executor::check::empty);
        self.tasks.insert(
            task.task_id.value.clone(),
            Task {
                grace: task.kill_policy.as_ref().and_then(policy_grace),
                max_completion: task.max_completion_time.as_ref().map(kill::duration_of).filter(|d| !d.is_zero()),
                health: task.health_check.clone(),
                check: task.check.clone(),
                group,
                state: TaskState::TaskStaging,
                running: false,
                killing: None,
                healthy: None,
                tracker: None,
                check_status,
                done: false,
            },
        );
    }

    fn launch(&mut self, task: TaskInfo, spec: Result<LaunchSpec, LaunchError>, out: &mut Vec<Effect>) {
        let id = task.task_id.value.clone();
        if let Some(refusal) = self.refusal(&id) {
            return Self::refuse(out, &id, TaskState::TaskFailed, Reason::TaskInvalid, refusal);
        }
        self.launched = true;
        let spec = match spec {
            Ok(spec) => spec,
            Err(e) => return Self::refuse(out, &id, TaskState::TaskError, Reason::TaskInvalid, e.to_string()),
        };
        if let Some(why) = self.over_cap(1) {
            return Self::refuse(out, &id, TaskState::TaskFailed, Reason::ContainerLimitation, why);
        }
        self.enter(&task, None);
        self.report(out, &id, TaskState::TaskStarting, None, None);
        out.push(Effect::Start { members: vec![(id, Box::new(spec))], file: None });
    }

    fn launch_group(
        &mut self,
        members: Vec<(TaskInfo, Result<LaunchSpec, LaunchError>)>,
        file: Option<GroupFile>,
        out: &mut Vec<Effect>,
    ) {
        if self.mode == Mode::Command {
            for (task, _) in &members {
                let message = "task groups need a custom executor, not the command executor".to_owned();
                Self::refuse(out, &task.task_id.value, TaskState::TaskError, Reason::TaskGroupInvalid, message);
            }
            return;
        }
        let ids: Vec<String> = members.iter().map(|(t, _)| t.task_id.value.clone()).collect();
        let mut seen = std::collections::HashSet::new();
        let duplicate =
            ids.iter().find(|id| !seen.insert(id.as_str())).map(|id| format!("task id {id:?} appears twice"));
        let refusal = ids.iter().find_map(|id| self.refusal(id)).or(duplicate);
        let invalid = refusal.or_else(|| {
            members.iter().find_map(|(t, s)| s.as_ref().err().map(|e| format!("task {:?}: {e}", t.task_id.value)))
        });
        if let Some(why) = invalid {
            // The default executor refuses a group as a whole.
            for id in &ids {
                let message = format!("task group refused: {why}");
                Self::refuse(out, id, TaskState::TaskError, Reason::TaskGroupInvalid, message);
            }
            return;
        }
        if let Some(why) = self.over_cap(ids.len()) {
            // Never half a group.
            for id in &ids {
                let message = format!("task group refused: {why}");
                Self::refuse(out, id, TaskState::TaskFailed, Reason::ContainerLimitation, message);
            }
            return;
        }
        self.launched = true;
        let index = self.groups.len();
        self.groups.push(ids.clone());
        for (task, _) in &members {
            self.enter(task, Some(index));
            self.report(out, &task.task_id.value, TaskState::TaskStarting, None, None);
        }
        let start = members.into_iter().filter_map(|(t, s)| s.ok().map(|s| (t.task_id.value, Box::new(s)))).collect();
        out.push(Effect::Start { members: start, file });
    }

    /// A start that did not happen: every task of it fails, naming the member.
    fn not_started(&mut self, ids: &[String], member: &str, error: &str, out: &mut Vec<Effect>) {
        for id in ids {
            let Some(task) = self.tasks.get_mut(id) else { continue };
            if task.done {
                continue;
            }
            task.done = true;
            let message = if ids.len() > 1 {
                format!("task group not started: member {member:?} could not be prepared: {error}")
            } else {
                format!("task not started: {error}")
            };
            self.report(out, id, TaskState::TaskFailed, Some(message), Some(Reason::ContainerLaunchFailed));
        }
    }

    fn spawned(&mut self, id: &str, result: Result<(), String>, now: Instant, out: &mut Vec<Effect>) {
        let Some(task) = self.tasks.get_mut(id) else { return };
        match result {
            Ok(()) => {
                task.running = true;
                task.tracker = task.health.as_ref().map(|h| Tracker::new(h, now));
                let (health, check) = (task.health.clone().map(Box::new), task.check.clone().map(Box::new));
                let limit = task.max_completion;
                // A member killed before its spawn was performed (its group fell): the
                // kill it missed, now.
                if let Some(killing) = &task.killing {
                    let deadline = killing.deadline;
                    if deadline <= now {
                        out.push(Effect::Signal { task_id: id.to_owned(), signal: Signal::Kill });
                    } else {
                        out.push(Effect::Signal { task_id: id.to_owned(), signal: Signal::Term });
                        out.push(Effect::Arm { task_id: id.to_owned(), timer: Timer::Escalate, at: deadline });
                    }
                    return;
                }
                self.report(out, id, TaskState::TaskRunning, None, None);
                if health.is_some() || check.is_some() {
                    out.push(Effect::Probe { task_id: id.to_owned(), health, check });
                }
                if let Some(limit) = limit {
                    out.push(Effect::Arm { task_id: id.to_owned(), timer: Timer::MaxCompletion, at: now + limit });
                }
            }
            Err(message) => {
                task.done = true;
                let group = task.group;
                self.report(out, id, TaskState::TaskFailed, Some(message), Some(Reason::CommandExecutorFailed));
                self.group_rule(id, group, TaskState::TaskFailed, now, out);
            }
        }
    }

    /// The KILL's grace period, else the task's, else the upstream default of 3 s.
    fn grace(&self, id: &str, policy: Option<&KillPolicy>) -> Duration {
        policy
            .and_then(policy_grace)
            .or_else(|| self.tasks.get(id).and_then(|t| t.grace))
            .unwrap_or(kill::DEFAULT_KILL_GRACE)
    }

    fn kill_requested(&mut self, id: &str, policy: Option<&KillPolicy>, now: Instant, out: &mut Vec<Effect>) {
        if self.shutting_down {
            return;
        }
        match self.tasks.get(id) {
            // A KILL for a task we never got (a lost LAUNCH): answer with a terminal
            // update so it does not stay live on the agent (reference §10.3).
            None => {
                let report = Report {
                    task_id: id.to_owned(),
                    state: TaskState::TaskKilled,
                    message: Some("Task is not known to this executor".into()),
                    reason: None,
                    healthy: None,
                    check_status: None,
                };
                out.push(Effect::Report(report));
            }
            Some(task) if task.done => {}
            Some(_) => {
                let grace = self.grace(id, policy);
                self.kill(id, grace, KillReason::Kill, now, out);
            }
        }
    }

    /// SIGTERM now and SIGKILL at the end of `grace`; a repeated kill can only shorten
    /// the time left, as in upstream's command executor.
    fn kill(&mut self, id: &str, grace: Duration, reason: KillReason, now: Instant, out: &mut Vec<Effect>) {
        let killing_state = self.killing_state;
        let Some(task) = self.tasks.get_mut(id) else { return };
        if task.done {
            return;
        }
        if let Some(killing) = &mut task.killing {
            let deadline = killing.since + grace;
            if deadline < killing.deadline {
                killing.deadline = deadline;
                if deadline <= now {
                    out.push(Effect::Signal { task_id: id.to_owned(), signal: Signal::Kill });
                } else {
                    out.push(Effect::Arm { task_id: id.to_owned(), timer: Timer::Escalate, at: deadline });
                }
            }
            return;
        }
        task.killing = Some(Killing { since: now, deadline: now + grace, reason });
        let running = task.running;
        out.push(Effect::Quiet { task_id: id.to_owned() });
        if killing_state && reason != KillReason::MaxCompletion {
            self.report(out, id, TaskState::TaskKilling, None, None);
        }
        if !running {
            // Not spawned yet: the signal goes out when the spawn is reported.
            return;
        }
        if grace.is_zero() {
            out.push(Effect::Signal { task_id: id.to_owned(), signal: Signal::Kill });
        } else {
            out.push(Effect::Signal { task_id: id.to_owned(), signal: Signal::Term });
            out.push(Effect::Arm { task_id: id.to_owned(), timer: Timer::Escalate, at: now + grace });
        }
    }

    /// A grace period may be over: SIGKILL unless the task is gone or the deadline moved.
    fn escalate(&mut self, id: &str, now: Instant, out: &mut Vec<Effect>) {
        let Some(task) = self.tasks.get(id) else { return };
        let due = task.killing.as_ref().is_some_and(|k| now >= k.deadline);
        if !task.done && task.running && due {
            out.push(Effect::Signal { task_id: id.to_owned(), signal: Signal::Kill });
        }
    }

    fn exited(&mut self, id: &str, exit: Result<Exit, String>, now: Instant, out: &mut Vec<Effect>) {
        let Some(task) = self.tasks.get_mut(id) else { return };
        if task.done {
            return;
        }
        task.done = true;
        task.running = false;
        // What an ended task no longer needs (a long-lived executor runs many).
        task.health = None;
        task.check = None;
        task.tracker = None;
        let reason = task.killing.as_ref().map(|k| k.reason);
        if reason == Some(KillReason::HealthCheck) {
            task.healthy = Some(false);
        }
        let group = task.group;
        let (state, message, why) = match (&exit, reason) {
            (Err(e), _) => (TaskState::TaskFailed, format!("Failed to get exit status for Command: {e}"), None),
            (Ok(exit), Some(KillReason::MaxCompletion)) => {
                (TaskState::TaskFailed, exit.message(), Some(Reason::MaxCompletionTimeReached))
            }
            (Ok(exit), Some(_)) => (TaskState::TaskKilled, exit.message(), None),
            (Ok(Exit::Code(0)), None) => (TaskState::TaskFinished, Exit::Code(0).message(), None),
            (Ok(exit), None) => (TaskState::TaskFailed, exit.message(), Some(Reason::CommandExecutorFailed)),
        };
        out.push(Effect::Quiet { task_id: id.to_owned() });
        // Its leftovers go before the update says it ended.
        out.push(Effect::CleanUp { task_id: id.to_owned() });
        self.report(out, id, state, Some(message), why);
        self.group_rule(id, group, state, now, out);
    }

    /// Default executor: a failed or killed member takes its group down with it.
    fn group_rule(&mut self, id: &str, group: Option<usize>, state: TaskState, now: Instant, out: &mut Vec<Effect>) {
        let Some(index) = group else { return };
        if !matches!(state, TaskState::TaskFailed | TaskState::TaskKilled) || self.shutting_down {
            return;
        }
        let others: Vec<String> = self.groups[index].iter().filter(|o| o.as_str() != id).cloned().collect();
        for other in others {
            let grace = self.grace(&other, None);
            self.kill(&other, grace, KillReason::GroupMember, now, out);
        }
    }

    fn health(&mut self, id: &str, result: Result<(), String>, now: Instant, out: &mut Vec<Effect>) {
        let Some(task) = self.tasks.get_mut(id) else { return };
        if task.done || task.killing.is_some() {
            return;
        }
        let Some(tracker) = &mut task.tracker else { return };
        match tracker.observe(result.is_ok(), now) {
            Verdict::Quiet => {}
            Verdict::Report(healthy) => {
                task.healthy = Some(healthy);
                let reason = Some(Reason::TaskHealthCheckStatusUpdated);
                self.report(out, id, TaskState::TaskRunning, result.err(), reason);
            }
            Verdict::Kill => {
                // Upstream's command executor reports the failure that reaches the limit
                // too (RUNNING, healthy false), then kills.
                task.healthy = Some(false);
                let reason = Some(Reason::TaskHealthCheckStatusUpdated);
                self.report(out, id, TaskState::TaskRunning, result.err(), reason);
                let grace = self.grace(id, None);
                self.kill(id, grace, KillReason::HealthCheck, now, out);
            }
        }
    }

    /// A general check result: reported only when it changes (upstream).
    fn checked(&mut self, id: &str, status: CheckStatusInfo, out: &mut Vec<Effect>) {
        let Some(task) = self.tasks.get_mut(id) else { return };
        if task.done || task.killing.is_some() || task.check_status.as_ref() == Some(&status) {
            return;
        }
        task.check_status = Some(status);
        let state = task.state;
        self.report(out, id, state, None, Some(Reason::TaskCheckStatusUpdated));
    }

    fn shutdown(&mut self, now: Instant, out: &mut Vec<Effect>) {
        if self.shutting_down {
            return;
        }
        self.shutting_down = true;
        // Upstream's command executor leaves 2 s of the agent's grace period for itself;
        // with short grace periods we keep half of it for SIGTERM.
        let grace = self.shutdown_grace.saturating_sub(Duration::from_secs(2)).max(self.shutdown_grace / 2);
        let live: Vec<String> = self.tasks.iter().filter(|(_, t)| !t.done).map(|(id, _)| id.clone()).collect();
        for id in live {
            self.kill(&id, grace, KillReason::Shutdown, now, out);
        }
    }

    fn maybe_finish(&mut self, out: &mut Vec<Effect>) {
        if self.stopped {
            return;
        }
        let all_done = self.tasks.values().all(|t| t.done);
        let finished = match self.mode {
            Mode::Command => all_done && (self.launched || self.shutting_down),
            Mode::Custom => self.shutting_down && all_done,
        };
        if finished {
            self.stopped = true;
            out.push(Effect::StopDriver);
        }
    }
}

#[cfg(test)]
mod tests;
