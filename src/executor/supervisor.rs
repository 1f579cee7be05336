//! The daemon's task supervisor: one task that owns every task process and decides
//! every status update, as the upstream command executor (one task) and default
//! executor (task groups) do. The [`super::command::CommandExecutor`] forwards events to
//! it; child exits, kill deadlines and health results come back to it as messages.

use std::{collections::HashMap, fs::OpenOptions, path::PathBuf, process::Stdio, time::Duration};

use nix::sys::signal::Signal;
use tokio::{sync::mpsc, task::JoinHandle, time::Instant};
use tracing::{info, warn};

use super::{
    health::{self, Tracker, Verdict},
    launch::{self, LaunchError},
    process::{self, Exit},
};
use crate::{
    DriverHandle,
    proto::v1::{CommandInfo, KillPolicy, TaskGroupInfo, TaskId, TaskInfo, TaskState, TaskStatus, task_status::Reason},
};

/// Upstream built-in executors' default kill grace period.
pub const DEFAULT_KILL_GRACE: Duration = Duration::from_secs(3);

/// How the daemon was deployed (see the README).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// Drop-in for the agent's command executor: one task, exit once it is acknowledged.
    Command,
    /// A framework's custom executor: many tasks and task groups, until SHUTDOWN.
    Custom,
}

/// What the supervisor needs to know.
#[derive(Debug, Clone)]
pub struct SupervisorConfig {
    /// Deployment mode.
    pub mode: Mode,
    /// The sandbox: every task's working directory.
    pub sandbox: PathBuf,
    /// `--task_command`: a CommandInfo that overrides the task's (drop-in mode).
    pub task_command: Option<CommandInfo>,
    /// `--user`: run tasks as this user when their CommandInfo names none.
    pub user: Option<String>,
    /// `MESOS_EXECUTOR_SHUTDOWN_GRACE_PERIOD`.
    pub shutdown_grace: Duration,
    /// Unique per executor run; prefix of every task marker.
    pub nonce: String,
    /// Where tasks by state are counted.
    pub metrics: crate::metrics::Metrics,
}

/// Why a task is being killed; decides its terminal state.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum KillReason {
    Kill,
    HealthCheck,
    Shutdown,
    GroupMember,
    MaxCompletion,
}

/// Messages to the supervisor.
#[derive(Debug)]
pub(crate) enum Msg {
    Registered { killing_state: bool },
    Launch(Box<TaskInfo>),
    LaunchGroup(TaskGroupInfo),
    Kill { task_id: String, policy: Option<KillPolicy> },
    Shutdown,
    Exited { task_id: String, exit: Result<Exit, String> },
    Escalate { task_id: String },
    MaxCompletion { task_id: String },
    Health { task_id: String, result: Result<(), String> },
    Check { task_id: String, status: crate::proto::v1::CheckStatusInfo },
}

struct Killing {
    since: Instant,
    deadline: Instant,
    reason: KillReason,
}

struct Task {
    info: TaskInfo,
    marker: String,
    group: Option<usize>,
    pid: Option<u32>,
    killing: Option<Killing>,
    healthy: Option<bool>,
    tracker: Option<Tracker>,
    /// Latest result of `TaskInfo.check`, sent with every update of the task.
    check_status: Option<crate::proto::v1::CheckStatusInfo>,
    timers: Vec<JoinHandle<()>>,
    done: bool,
}

impl Task {
    fn stop_timers(&mut self) {
        for timer in self.timers.drain(..) {
            timer.abort();
        }
    }
}

pub(crate) struct Supervisor {
    driver: DriverHandle,
    config: SupervisorConfig,
    tx: mpsc::UnboundedSender<Msg>,
    tasks: HashMap<String, Task>,
    groups: Vec<Vec<String>>,
    killing_state: bool,
    shutting_down: bool,
    launched: bool,
    stopped: bool,
    /// Latest state reported per task, for the tasks-by-state gauge.
    states: std::cell::RefCell<HashMap<String, TaskState>>,
}

impl Supervisor {
    pub fn new(driver: DriverHandle, config: SupervisorConfig, tx: mpsc::UnboundedSender<Msg>) -> Self {
        Supervisor {
            driver,
            config,
            tx,
            tasks: HashMap::new(),
            groups: Vec::new(),
            killing_state: false,
            shutting_down: false,
            launched: false,
            stopped: false,
            states: Default::default(),
        }
    }

    /// Handles messages until the channel closes.
    pub async fn run(mut self, mut rx: mpsc::UnboundedReceiver<Msg>) {
        let mut children = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::child()).ok();
        loop {
            tokio::select! {
                msg = rx.recv() => match msg {
                    Some(msg) => self.handle(msg),
                    None => return,
                },
                Some(()) = async { match &mut children { Some(s) => s.recv().await, None => std::future::pending().await } } => {
                    let reaped = process::reap_orphans_now();
                    if reaped > 0 {
                        info!(reaped, "reaped orphaned task descendants");
                    }
                }
            }
        }
    }

    fn handle(&mut self, msg: Msg) {
        match msg {
            Msg::Registered { killing_state } => self.killing_state = killing_state,
            Msg::Launch(task) => self.launch(*task),
            Msg::LaunchGroup(group) => self.launch_group(group),
            Msg::Kill { task_id, policy } => self.kill_requested(&task_id, policy),
            Msg::Shutdown => self.shutdown(),
            Msg::Exited { task_id, exit } => self.exited(&task_id, exit),
            Msg::Escalate { task_id } => self.escalate(&task_id),
            Msg::MaxCompletion { task_id } => self.kill(&task_id, Duration::ZERO, KillReason::MaxCompletion),
            Msg::Health { task_id, result } => self.health(&task_id, result),
            Msg::Check { task_id, status } => self.checked(&task_id, status),
        }
    }

    /// Reports a task's state; the driver fills in uuid, timestamp, source and ids.
    fn update(
        &self,
        task_id: &str,
        state: TaskState,
        message: Option<String>,
        reason: Option<Reason>,
        healthy: Option<bool>,
    ) {
        let check_status = self.tasks.get(task_id).and_then(|t| t.check_status);
        self.report(task_id, state, message, reason, healthy, check_status);
    }

    /// As `update`, with the check status given: TASK_STARTING goes out before the task
    /// is registered here, and carries the empty status of its check's type (upstream
    /// sends `check_status` on every update of a task with a check).
    fn report(
        &self,
        task_id: &str,
        state: TaskState,
        message: Option<String>,
        reason: Option<Reason>,
        healthy: Option<bool>,
        check_status: Option<crate::proto::v1::CheckStatusInfo>,
    ) {
        let status = TaskStatus {
            task_id: TaskId { value: task_id.to_owned() },
            state: state as i32,
            message,
            reason: reason.map(|r| r as i32),
            healthy,
            check_status,
            ..Default::default()
        };
        info!(task_id, state = state.as_str_name(), "status update");
        if let Err(e) = self.driver.send_status_update(status) {
            warn!(task_id, error = %e, "status update not sent");
            return;
        }
        let tasks = &self.config.metrics.tasks;
        if let Some(previous) = self.states.borrow_mut().insert(task_id.to_owned(), state) {
            tasks.with_label_values(&[previous.as_str_name()]).dec();
        }
        tasks.with_label_values(&[state.as_str_name()]).inc();
    }

    /// A task this executor will not run: logged, and reported with why.
    fn refuse(&self, task_id: &str, state: TaskState, reason: Reason, message: String) {
        warn!(task_id, %message, "task refused");
        self.update(task_id, state, Some(message), Some(reason), None);
    }

    /// LAUNCH: TASK_STARTING, spawn, TASK_RUNNING (upstream command executor order).
    fn launch(&mut self, task: TaskInfo) {
        let id = task.task_id.value.clone();
        if let Some(refusal) = self.refusal(&id) {
            return self.refuse(&id, TaskState::TaskFailed, Reason::TaskInvalid, refusal);
        }
        self.launched = true;
        let Some(prepared) = self.prepare(&task) else { return self.maybe_finish() };
        let check = task.check.as_ref().and_then(super::check::empty);
        self.report(&id, TaskState::TaskStarting, None, None, None, check);
        if self.start(task, prepared, None) {
            self.update(&id, TaskState::TaskRunning, None, None, None);
        }
    }

    /// LAUNCH_GROUP: refused or started as a whole, as the default executor does:
    /// every TASK_STARTING first, then each TASK_RUNNING.
    fn launch_group(&mut self, group: TaskGroupInfo) {
        if self.config.mode == Mode::Command {
            for task in &group.tasks {
                let message = "task groups need a custom executor, not the command executor".to_owned();
                self.refuse(&task.task_id.value, TaskState::TaskError, Reason::TaskGroupInvalid, message);
            }
            return;
        }
        let ids: Vec<String> = group.tasks.iter().map(|t| t.task_id.value.clone()).collect();
        let refusal = ids.iter().find_map(|id| self.refusal(id));
        let prepared: Vec<_> = group.tasks.iter().map(|t| self.prepare_quietly(t)).collect();
        let invalid = refusal.or_else(|| prepared.iter().find_map(|p| p.as_ref().err().map(ToString::to_string)));
        if let Some(why) = invalid {
            // The default executor refuses a group as a whole.
            for id in &ids {
                self.refuse(id, TaskState::TaskError, Reason::TaskGroupInvalid, format!("task group refused: {why}"));
            }
            return;
        }
        self.launched = true;
        let index = self.groups.len();
        self.groups.push(ids.clone());
        for task in &group.tasks {
            let check = task.check.as_ref().and_then(super::check::empty);
            self.report(&task.task_id.value, TaskState::TaskStarting, None, None, None, check);
        }
        let started: Vec<bool> = group
            .tasks
            .into_iter()
            .zip(prepared)
            .map(|(task, spec)| spec.is_ok_and(|spec| self.start(task, spec, Some(index))))
            .collect();
        for (id, ok) in ids.iter().zip(started) {
            if ok {
                self.update(id, TaskState::TaskRunning, None, None, None);
            }
        }
    }

    /// Why a task id cannot be launched now, if it cannot.
    fn refusal(&self, id: &str) -> Option<String> {
        if self.shutting_down {
            return Some("the executor is shutting down".to_owned());
        }
        if self.config.mode == Mode::Command && self.launched {
            return Some("Attempted to run multiple tasks using a \"command\" executor".to_owned());
        }
        if self.tasks.contains_key(id) {
            return Some(format!("task id {id:?} is already used by a task of this executor"));
        }
        None
    }

    /// Resolves, checks and builds the task's process, without reporting.
    fn prepare_quietly(&self, task: &TaskInfo) -> Result<launch::LaunchSpec, LaunchError> {
        let (command, _) = launch::resolve_command(task, self.config.task_command.as_ref())?;
        launch::check_supported(task, &command)?;
        let marker = format!("{}/{}", self.config.nonce, task.task_id.value);
        let mut spec = launch::build(task, &command, std::env::vars(), &marker)?;
        if spec.user.is_none() {
            spec.user.clone_from(&self.config.user);
        }
        Ok(spec)
    }

    /// As `prepare_quietly`, reporting TASK_ERROR on failure.
    fn prepare(&self, task: &TaskInfo) -> Option<launch::LaunchSpec> {
        match self.prepare_quietly(task) {
            Ok(spec) => Some(spec),
            Err(e) => {
                self.refuse(&task.task_id.value, TaskState::TaskError, Reason::TaskInvalid, e.to_string());
                None
            }
        }
    }

    /// Drop-in mode: the task shares the executor's own stdout and stderr (the agent's
    /// `stdout`/`stderr` files in the sandbox), as upstream's task inherits them. Custom
    /// mode: `tasks/<task id>/stdout` and `stderr` in the sandbox.
    fn output(&self, id: &str) -> std::io::Result<(Stdio, Stdio)> {
        if self.config.mode == Mode::Command {
            return Ok((Stdio::inherit(), Stdio::inherit()));
        }
        let safe: String = id.chars().map(|c| if c == '/' || c.is_control() { '_' } else { c }).collect();
        let dir = self.config.sandbox.join("tasks").join(safe);
        std::fs::create_dir_all(&dir)?;
        let mut open = OpenOptions::new();
        open.create(true).append(true);
        Ok((open.open(dir.join("stdout"))?.into(), open.open(dir.join("stderr"))?.into()))
    }

    /// Spawns the task; false (after TASK_FAILED) when it could not start.
    fn start(&mut self, task: TaskInfo, spec: launch::LaunchSpec, group: Option<usize>) -> bool {
        let id = task.task_id.value.clone();
        let spawned = self.output(&id).and_then(|(out, err)| process::spawn(&spec, &self.config.sandbox, out, err));
        let mut child = match spawned {
            Ok(child) => child,
            Err(e) => {
                let message = format!("Failed to launch {:?}: {e}", spec.program);
                warn!(task_id = %id, %message);
                self.update(&id, TaskState::TaskFailed, Some(message), Some(Reason::CommandExecutorFailed), None);
                return false;
            }
        };
        let pid = child.id();
        if let Some(pid) = pid {
            process::own_child(pid);
        }
        info!(task_id = %id, pid, "task started");
        // The waiter is detached: it must outlive kills and report the exit.
        let (tx, task_id) = (self.tx.clone(), id.clone());
        tokio::spawn(async move {
            let exit = child.wait().await.map(Exit::from_status).map_err(|e| e.to_string());
            if let Some(pid) = pid {
                process::forget_child(pid);
            }
            let _ = tx.send(Msg::Exited { task_id, exit });
        });
        let mut timers = Vec::new();
        if let Some(limit) =
            task.max_completion_time.as_ref().map(|d| Duration::from_nanos(d.nanoseconds.max(0) as u64))
        {
            if !limit.is_zero() {
                let (tx, task_id) = (self.tx.clone(), id.clone());
                timers.push(tokio::spawn(async move {
                    tokio::time::sleep(limit).await;
                    let _ = tx.send(Msg::MaxCompletion { task_id });
                }));
            }
        }
        let tracker = task.health_check.as_ref().map(|check| {
            timers.push(self.spawn_health(&id, check.clone(), spec.env.clone()));
            Tracker::new(check, Instant::now())
        });
        if let Some(check) = &task.check {
            timers.push(self.spawn_check(&id, check.clone(), spec.env.clone()));
        }
        let check_status = task.check.as_ref().and_then(super::check::empty);
        let marker = spec.env.get(launch::TASK_MARKER).cloned().unwrap_or_default();
        let task = Task {
            info: task,
            marker,
            group,
            pid,
            killing: None,
            healthy: None,
            tracker,
            check_status,
            timers,
            done: false,
        };
        self.tasks.insert(id, task);
        true
    }

    /// Runs `probe` first after `delay`, then every `interval`, sending each message it
    /// produces here (health checks and general checks share this schedule).
    fn spawn_periodic<F, Fut>(&self, delay: f64, interval: f64, mut probe: F) -> JoinHandle<()>
    where
        F: FnMut() -> Fut + Send + 'static,
        Fut: std::future::Future<Output = Option<Msg>> + Send,
    {
        let tx = self.tx.clone();
        tokio::spawn(async move {
            tokio::time::sleep(health::seconds(delay)).await;
            let interval = health::seconds(interval).max(Duration::from_millis(10));
            loop {
                if let Some(msg) = probe().await
                    && tx.send(msg).is_err()
                {
                    return;
                }
                tokio::time::sleep(interval).await;
            }
        })
    }

    /// Runs the task's health check on its schedule.
    fn spawn_health(
        &self,
        id: &str,
        check: crate::proto::v1::HealthCheck,
        env: std::collections::BTreeMap<String, String>,
    ) -> JoinHandle<()> {
        let (task_id, cwd) = (id.to_owned(), self.config.sandbox.clone());
        let (delay, interval) = (check.delay_seconds(), check.interval_seconds());
        let (check, env) = (std::sync::Arc::new(check), std::sync::Arc::new(env));
        self.spawn_periodic(delay, interval, move || {
            let (check, env, cwd, task_id) = (check.clone(), env.clone(), cwd.clone(), task_id.clone());
            async move { Some(Msg::Health { result: health::probe(&check, &env, &cwd).await, task_id }) }
        })
    }

    /// Runs the task's general check on its schedule.
    fn spawn_check(
        &self,
        id: &str,
        check: crate::proto::v1::CheckInfo,
        env: std::collections::BTreeMap<String, String>,
    ) -> JoinHandle<()> {
        let (task_id, cwd) = (id.to_owned(), self.config.sandbox.clone());
        let (delay, interval) = (check.delay_seconds(), check.interval_seconds());
        let (check, env) = (std::sync::Arc::new(check), std::sync::Arc::new(env));
        self.spawn_periodic(delay, interval, move || {
            let (check, env, cwd, task_id) = (check.clone(), env.clone(), cwd.clone(), task_id.clone());
            async move { super::check::run(&check, &env, &cwd).await.map(|status| Msg::Check { task_id, status }) }
        })
    }

    /// A general check result: reported only when it changes (upstream); checks never
    /// kill a task.
    fn checked(&mut self, id: &str, status: crate::proto::v1::CheckStatusInfo) {
        let Some(task) = self.tasks.get_mut(id) else { return };
        if task.done || task.killing.is_some() || task.check_status.as_ref() == Some(&status) {
            return;
        }
        task.check_status = Some(status);
        let state = self.states.borrow().get(id).copied().unwrap_or(TaskState::TaskRunning);
        let healthy = self.tasks.get(id).and_then(|t| t.healthy);
        self.update(id, state, None, Some(Reason::TaskCheckStatusUpdated), healthy);
    }

    /// A health check result: report `healthy` changes, kill at the failure limit.
    fn health(&mut self, id: &str, result: Result<(), String>) {
        let Some(task) = self.tasks.get_mut(id) else { return };
        if task.done || task.killing.is_some() {
            return;
        }
        let Some(tracker) = &mut task.tracker else { return };
        if let Err(why) = &result {
            info!(task_id = id, %why, "health check failed");
        }
        match tracker.observe(result.is_ok(), Instant::now()) {
            Verdict::Quiet => {}
            Verdict::Report(healthy) => {
                task.healthy = Some(healthy);
                let message = result.err();
                self.update(
                    id,
                    TaskState::TaskRunning,
                    message,
                    Some(Reason::TaskHealthCheckStatusUpdated),
                    Some(healthy),
                );
            }
            Verdict::Kill => {
                task.healthy = Some(false);
                warn!(task_id = id, "health check failed too many times; killing the task");
                let grace = self.grace(id, None);
                self.kill(id, grace, KillReason::HealthCheck);
            }
        }
    }

    /// The KILL's grace period, else the task's, else the upstream default of 3 s.
    fn grace(&self, id: &str, policy: Option<&KillPolicy>) -> Duration {
        let from = |p: &KillPolicy| p.grace_period.as_ref().map(|d| Duration::from_nanos(d.nanoseconds.max(0) as u64));
        policy
            .and_then(from)
            .or_else(|| self.tasks.get(id).and_then(|t| t.info.kill_policy.as_ref()).and_then(from))
            .unwrap_or(DEFAULT_KILL_GRACE)
    }

    /// A KILL event from the agent.
    fn kill_requested(&mut self, id: &str, policy: Option<KillPolicy>) {
        if self.shutting_down {
            return;
        }
        match self.tasks.get(id) {
            None => {
                // A KILL for a task we never got (a lost LAUNCH): answer with a terminal
                // update so it does not stay live on the agent (reference §10.3).
                self.update(id, TaskState::TaskKilled, Some("Task is not known to this executor".into()), None, None);
            }
            Some(task) if task.done => {}
            Some(_) => {
                let grace = self.grace(id, policy.as_ref());
                self.kill(id, grace, KillReason::Kill);
            }
        }
    }

    /// SIGTERM to the task's group now, SIGKILL at the end of `grace`. A repeated kill
    /// can only shorten the remaining time, as in upstream's command executor.
    fn kill(&mut self, id: &str, grace: Duration, reason: KillReason) {
        let killing_state = self.killing_state;
        let Some(task) = self.tasks.get_mut(id) else { return };
        if task.done {
            return;
        }
        let now = Instant::now();
        if let Some(killing) = &mut task.killing {
            let deadline = killing.since + grace;
            if deadline < killing.deadline {
                killing.deadline = deadline;
                self.arm_escalation(id, deadline);
            }
            return;
        }
        task.stop_timers();
        task.killing = Some(Killing { since: now, deadline: now + grace, reason });
        let healthy = task.healthy;
        let (pid, marker) = (task.pid, task.marker.clone());
        if killing_state && reason != KillReason::MaxCompletion {
            self.update(id, TaskState::TaskKilling, None, None, healthy);
        }
        info!(task_id = id, ?reason, ?grace, "killing task");
        if grace.is_zero() {
            process::signal_task(pid, &marker, Signal::SIGKILL);
        } else {
            process::signal_task(pid, &marker, Signal::SIGTERM);
            self.arm_escalation(id, now + grace);
        }
    }

    /// Schedules the SIGKILL check for `deadline`.
    fn arm_escalation(&mut self, id: &str, deadline: Instant) {
        let (tx, task_id) = (self.tx.clone(), id.to_owned());
        let timer = tokio::spawn(async move {
            tokio::time::sleep_until(deadline).await;
            let _ = tx.send(Msg::Escalate { task_id });
        });
        if let Some(task) = self.tasks.get_mut(id) {
            task.timers.push(timer);
        }
    }

    /// The grace period is over: SIGKILL unless the task is gone or the deadline moved.
    fn escalate(&mut self, id: &str) {
        let Some(task) = self.tasks.get(id) else { return };
        let due = task.killing.as_ref().is_some_and(|k| Instant::now() >= k.deadline);
        if task.done || !due {
            return;
        }
        warn!(task_id = id, "grace period over; SIGKILL");
        process::signal_task(task.pid, &task.marker, Signal::SIGKILL);
    }

    /// A task's process ended: its terminal update, its leftovers killed, and the
    /// default executor's group rule.
    fn exited(&mut self, id: &str, exit: Result<Exit, String>) {
        let Some(task) = self.tasks.get_mut(id) else { return };
        task.stop_timers();
        task.done = true;
        // No process of the task outlives it: its group now, then (after the update)
        // whatever left the group and was reparented to this subreaper.
        process::kill_group(task.pid);
        let marker = task.marker.clone();
        let reason = task.killing.as_ref().map(|k| k.reason);
        let (group, healthy) = (task.group, task.healthy);
        let (state, message, why) = match (&exit, reason) {
            (Err(e), _) => (TaskState::TaskFailed, format!("Failed to get exit status for Command: {e}"), None),
            (Ok(exit), Some(KillReason::MaxCompletion)) => {
                (TaskState::TaskFailed, exit.message(), Some(Reason::MaxCompletionTimeReached))
            }
            (Ok(exit), Some(_)) => (TaskState::TaskKilled, exit.message(), None),
            (Ok(Exit::Code(0)), None) => (TaskState::TaskFinished, Exit::Code(0).message(), None),
            (Ok(exit), None) => (TaskState::TaskFailed, exit.message(), Some(Reason::CommandExecutorFailed)),
        };
        let healthy = if reason == Some(KillReason::HealthCheck) { Some(false) } else { healthy };
        self.update(id, state, Some(message), why, healthy);
        let task_id = id.to_owned();
        tokio::spawn(async move {
            let mut killed = 0;
            for _ in 0..20 {
                let n = process::kill_escaped(&marker);
                if n == 0 {
                    break;
                }
                killed += n;
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
            if killed > 0 {
                info!(task_id, killed, "killed processes the task left behind");
            }
        });
        // Default executor: a failed or killed member takes its group down with it.
        if let Some(index) = group
            && matches!(state, TaskState::TaskFailed | TaskState::TaskKilled)
            && !self.shutting_down
        {
            let others: Vec<String> = self.groups[index].iter().filter(|o| o.as_str() != id).cloned().collect();
            for other in others {
                let grace = self.grace(&other, None);
                self.kill(&other, grace, KillReason::GroupMember);
            }
        }
        self.maybe_finish();
    }

    /// SHUTDOWN, a signal, or the agent lost: kill every task within the shutdown
    /// grace period.
    fn shutdown(&mut self) {
        if self.shutting_down {
            return;
        }
        self.shutting_down = true;
        // Upstream's command executor leaves 2 s of the agent's grace period for itself;
        // with short grace periods we keep half of it for SIGTERM.
        let grace =
            self.config.shutdown_grace.saturating_sub(Duration::from_secs(2)).max(self.config.shutdown_grace / 2);
        let live: Vec<String> = self.tasks.iter().filter(|(_, t)| !t.done).map(|(id, _)| id.clone()).collect();
        info!(tasks = live.len(), ?grace, "shutting down");
        for id in live {
            self.kill(&id, grace, KillReason::Shutdown);
        }
        self.maybe_finish();
    }

    /// Stops the driver once there is nothing left to do: the command executor's one
    /// task ended, or every task ended after a shutdown. The driver then waits for the
    /// terminal updates to be acknowledged.
    fn maybe_finish(&mut self) {
        if self.stopped {
            return;
        }
        let all_done = self.tasks.values().all(|t| t.done);
        let finished = match self.config.mode {
            Mode::Command => all_done && (self.launched || self.shutting_down),
            Mode::Custom => self.shutting_down && all_done,
        };
        if finished {
            self.stopped = true;
            info!("all tasks ended; stopping once their updates are acknowledged");
            self.driver.stop();
        }
    }
}
