//! The supervisor: the thin async shell around the [`TaskBook`]. One loop feeds the book
//! its inputs (messages from the inbox, results of the jobs it started, the clock
//! reaching the book's [`TaskBook::next_wakeup`]) and performs the effects the book
//! returns. The performers live beside it: starting a task (prepare, fetch, spawn) in
//! `supervisor/start.rs`, probes in `supervisor/probes.rs`; reporting, signalling and
//! cleaning up here. Every job it starts (a fetch, a process's waiter, a probe, a
//! clean-up) is in its [`JoinSet`] and comes back to the loop as an input; none outlives
//! the supervisor, which ends when the inbox closes (the driver has ended).

mod probes;
mod start;

use std::{
    collections::{BTreeMap, HashMap, VecDeque},
    path::PathBuf,
    sync::Arc,
    time::Duration,
};

use mesos_executor::{
    DriverHandle,
    executor::{
        launch::LaunchSpec,
        process::{self, TaskTree},
    },
    metrics::prometheus::IntGaugeVec,
    proto::v1::{CommandInfo, TaskId, TaskState, TaskStatus},
};
use tokio::{
    task::{AbortHandle, JoinSet},
    time::Instant,
};
use tracing::{debug, info, warn};

pub use crate::book::Mode;
use crate::{
    book::{Effect, Input, Report, Signal, TaskBook},
    inbox::{self, Msg},
    sandbox::TaskSandbox,
    state_file::StateFile,
};

/// What the supervisor needs to know.
#[derive(Debug, Clone)]
pub struct SupervisorConfig {
    /// Deployment mode.
    pub mode: Mode,
    /// The executor's sandbox. Drop-in mode: the task's. Custom mode: each task gets a
    /// directory of its own beneath it (`sandbox.rs`).
    pub sandbox: PathBuf,
    /// `--working_directory` (or `--task_launch_info`'s): every task's working
    /// directory instead of its sandbox.
    pub working_directory: Option<PathBuf>,
    /// `--task_command`: a CommandInfo that overrides the task's (drop-in mode).
    pub task_command: Option<CommandInfo>,
    /// `--user`: run tasks as this user when their CommandInfo names none.
    pub user: Option<String>,
    /// `MESOS_EXECUTOR_SHUTDOWN_GRACE_PERIOD`.
    pub shutdown_grace: Duration,
    /// Unique per executor run; prefix of every task marker.
    pub nonce: String,
    /// The executor's own environment, read once at start: the base of every task's.
    pub base_env: Vec<(String, String)>,
    /// Tasks by latest state (`mesos_executor_tasks{state}`), registered with the
    /// driver's metrics.
    pub tasks_gauge: IntGaugeVec,
    /// `--max_tasks`: most tasks running at once.
    pub max_tasks: Option<usize>,
    /// Where the state file goes.
    pub state_file: PathBuf,
    /// For the state file.
    pub executor_id: String,
    /// For the state file.
    pub framework_id: String,
    /// What the upstream task flags ask of every task.
    pub task_flags: crate::task_flags::TaskFlags,
    /// This program, for the exec helper.
    pub helper: PathBuf,
    /// `--task_log_max_size`: rotate each task's stdout and stderr (custom mode).
    pub log_rotation: Option<crate::logrotate::Rotation>,
    /// Fetches the tasks' `CommandInfo.uris`.
    pub fetcher: crate::fetch::Fetcher,
    /// `MESOS_CONTAINER_IP` for group members (`group::container_ip`).
    pub container_ip: Option<String>,
}

/// Everything the shell holds for one task, from its fetch to its clean-up: what the
/// book must not hold (processes, jobs, directories).
#[derive(Default)]
struct TaskRecord {
    /// The process to start, from the fetch to the spawn.
    spec: Option<LaunchSpec>,
    /// Its own directory (custom mode).
    sandbox: Option<TaskSandbox>,
    /// Its fetch, while it runs.
    fetch: Option<AbortHandle>,
    /// Its processes, once spawned: what its signals reach.
    tree: Option<TaskTree>,
    /// The task's environment, for COMMAND probes: kept only for a task with probes (a
    /// thousand tasks' environments are megabytes).
    env: Option<Arc<BTreeMap<String, String>>>,
    /// The task's user, whom its COMMAND probes run as (None: the executor's own).
    user: Option<Arc<str>>,
    /// Its probes that are running.
    probes: Vec<AbortHandle>,
}

/// The shell.
pub struct Supervisor {
    driver: DriverHandle,
    config: SupervisorConfig,
    book: TaskBook,
    /// One record per task the book has asked to fetch, until its clean-up.
    tasks: HashMap<String, TaskRecord>,
    /// Every job started: fetches, waiters, probes, clean-ups. Each ends with the input
    /// it has for the book, if any.
    jobs: JoinSet<Option<Input>>,
    /// Latest state reported per live task, for the gauge (ended tasks leave it).
    states: HashMap<String, TaskState>,
    /// The agent's host name, for group addresses.
    hostname: String,
    state: StateFile,
    /// When the state file's waiting changes are written.
    flush_at: Option<Instant>,
    /// The state file's write while it runs, on the blocking pool: on a busy disk a
    /// create and rename wait milliseconds for the file system's journal (strace of the
    /// launch bench: p90 4 ms, up to 23 ms), which on this loop held up every update
    /// behind it, TASK_STARTING and TASK_RUNNING included. One write at a time, so the
    /// file never goes back to older contents.
    writing: Option<tokio::task::JoinHandle<std::io::Result<()>>>,
}

/// How long a task's exit waits for its logs to be written out (a background process
/// may hold the task's pipes open forever).
const LOG_DRAIN_DEADLINE: Duration = Duration::from_secs(3);

impl Supervisor {
    pub fn new(driver: DriverHandle, config: SupervisorConfig) -> Self {
        let book = TaskBook::new(config.mode, config.shutdown_grace, config.max_tasks);
        let state = StateFile::new(config.state_file.clone(), config.executor_id.clone(), config.framework_id.clone());
        Supervisor {
            driver,
            config,
            book,
            tasks: HashMap::new(),
            jobs: JoinSet::new(),
            states: HashMap::new(),
            hostname: "localhost".to_owned(),
            state,
            flush_at: None,
            writing: None,
        }
    }

    /// Feeds the book until the inbox closes; reaps orphans as a subreaper. Then writes
    /// the state file's last changes; the jobs still running (waiters of tasks the
    /// driver left behind, probes) are aborted as the supervisor is dropped.
    ///
    /// # Cancel safety
    /// Dropping the future drops the supervisor and aborts its jobs; the state file may
    /// then miss its last changes.
    pub async fn run(mut self, mut inbox: inbox::Receiver) {
        let mut children = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::child()).ok();
        loop {
            let wakeup = self.book.next_wakeup();
            let deadline = [wakeup, self.flush_at].into_iter().flatten().min();
            tokio::select! {
                msg = inbox.recv() => match msg {
                    Some(msg) => self.handle(msg),
                    None => break,
                },
                Some(done) = self.jobs.join_next() => match done {
                    Ok(Some(input)) => self.feed(input),
                    Ok(None) => {}
                    Err(e) if e.is_cancelled() => {}
                    Err(e) => warn!(error = %e, "a supervisor job failed"),
                },
                () = sleep_until(deadline) => {
                    let now = Instant::now();
                    if wakeup.is_some_and(|at| at <= now) {
                        self.feed(Input::Tick);
                    }
                    if self.flush_at.is_some_and(|at| at <= now) {
                        self.flush_at = None;
                        self.write_state();
                    }
                }
                Some(written) = async { match &mut self.writing { Some(w) => Some(w.await), None => std::future::pending().await } } => {
                    self.writing = None;
                    self.state.written(written.unwrap_or_else(|e| Err(std::io::Error::other(e))));
                    self.flush_state();
                }
                Some(()) = async { match &mut children { Some(s) => s.recv().await, None => std::future::pending().await } } => {
                    let reaped = process::reap_orphans_now();
                    if reaped > 0 {
                        info!(reaped, "reaped orphaned task descendants");
                    }
                }
            }
        }
        // The last changes, after the write under way (never overtaken by it).
        if let Some(writing) = self.writing.take() {
            self.state.written(writing.await.unwrap_or_else(|e| Err(std::io::Error::other(e))));
        }
        self.state.flush();
    }

    fn handle(&mut self, msg: Msg) {
        let input = match msg {
            Msg::Registered { killing_state, hostname } => {
                self.hostname = hostname;
                Input::Registered { killing_state }
            }
            Msg::Disconnected => Input::Disconnected,
            Msg::Reconnected => Input::Reconnected,
            Msg::Acked { task_id, uuid } => {
                self.state.acknowledged(&task_id, &uuid);
                self.flush_state();
                return;
            }
            Msg::Launch(task) => {
                let spec = self.prepare(&task);
                Input::Launch { task, spec }
            }
            Msg::LaunchGroup(group) => self.prepare_group(group.tasks),
            Msg::Kill { task_id, policy } => Input::Kill { task_id, policy },
            Msg::Shutdown => Input::Shutdown,
            Msg::StopRequested => Input::StopRequested,
        };
        self.feed(input);
    }

    /// Steps the book with `input` and performs its effects, and does the same for any
    /// input an effect produces at once (a fetch with nothing to fetch, a spawn's
    /// results) before returning; then writes the state file if it is due.
    fn feed(&mut self, input: Input) {
        if let Input::Exited { task_id, exit } = &input {
            self.state.exited(task_id, exit);
        }
        let mut inputs = VecDeque::from([input]);
        while let Some(input) = inputs.pop_front() {
            let spawned = match &input {
                Input::Spawned { task_id, result: Ok(()) } => Some(task_id.clone()),
                _ => None,
            };
            let probed = match &input {
                Input::Health { task_id, result } => {
                    Some((task_id.clone(), result.clone().err(), self.book.health_of(task_id)))
                }
                _ => None,
            };
            for effect in self.book.step(input, Instant::now()) {
                self.perform(effect, &mut inputs);
            }
            if let Some((id, error, before)) = probed {
                self.log_health(&id, error, before);
            }
            // A task without probes needs no environment.
            if let Some(id) = spawned
                && !self.book.probed(&id)
                && let Some(record) = self.tasks.get_mut(&id)
            {
                record.env = None;
            }
        }
        self.flush_state();
    }

    /// Starts writing the state file's changes, or schedules the write when the last one
    /// was too recent; a write under way writes the rest when it ends.
    fn flush_state(&mut self) {
        if !self.state.dirty() || self.flush_at.is_some() || self.writing.is_some() {
            return;
        }
        if self.state.too_soon() {
            self.flush_at = Some(Instant::now() + crate::state_file::MIN_INTERVAL);
            return;
        }
        self.write_state();
    }

    /// Writes the state file's changes on the blocking pool, unless a write is under way.
    fn write_state(&mut self) {
        if self.writing.is_some() {
            return;
        }
        if let Some(snapshot) = self.state.take() {
            self.writing = Some(tokio::task::spawn_blocking(move || snapshot.write()));
        }
    }

    fn perform(&mut self, effect: Effect, inputs: &mut VecDeque<Input>) {
        match effect {
            Effect::Report(report) => self.report(report),
            Effect::Fetch { task_id, prepared } => inputs.extend(self.fetch(task_id, *prepared)),
            Effect::CancelFetch { task_id } => {
                if let Some(fetch) = self.tasks.get_mut(&task_id).and_then(|r| r.fetch.take()) {
                    info!(task_id, "fetch cancelled");
                    fetch.abort();
                }
            }
            Effect::Spawn { task_ids, file } => inputs.extend(self.spawn_all(task_ids, file)),
            Effect::RunProbe { task_id, probe } => self.run_probe(&task_id, probe),
            Effect::Quiet { task_id } => {
                if let Some(record) = self.tasks.get_mut(&task_id) {
                    record.probes.drain(..).for_each(|p| p.abort());
                }
            }
            Effect::Signal { task_id, signal, grace, why } => {
                let Some(tree) = self.tasks.get(&task_id).and_then(|r| r.tree.as_ref()) else { return };
                let sig = match signal {
                    Signal::Term => process::Signal::TERM,
                    Signal::Kill => process::Signal::KILL,
                };
                let processes = tree.signal(sig);
                let (no_grace, grace) = (grace.is_zero(), mesos_executor::env::format_duration(grace));
                match signal {
                    Signal::Term => {
                        info!(task_id, ?why, %grace, processes, "SIGTERM sent; SIGKILL when the grace ends")
                    }
                    Signal::Kill if no_grace => info!(task_id, ?why, processes, "SIGKILL sent (no grace period)"),
                    Signal::Kill => {
                        warn!(task_id, ?why, %grace, processes, "still running at the end of its grace: SIGKILL sent")
                    }
                }
            }
            Effect::CleanUp { task_id } => self.clean_up(&task_id),
            Effect::StopDriver => {
                // The driver logs the stop, with what it waits for.
                debug!("all tasks ended; stopping the driver");
                self.driver.stop();
            }
        }
    }

    /// Logs a health check's result as upstream's checker does
    /// (`src/checks/health_checker.cpp`): each failure, with how many in a row, and the
    /// first success after failures (or the first at all). `before` is the task's health
    /// before the book took the result.
    fn log_health(&self, task_id: &str, error: Option<String>, before: (u32, Option<bool>)) {
        let (failures, healthy) = self.book.health_of(task_id);
        match error {
            Some(error) if failures > before.0 => {
                warn!(task_id, consecutive_failures = failures, %error, "health check failed")
            }
            Some(error) => {
                info!(task_id, %error, "health check failed; not counted (grace period, or the task is ending)")
            }
            None if healthy == Some(true) && before.1 != Some(true) => {
                info!(task_id, after_failures = before.0, "health check passed")
            }
            None => {}
        }
    }

    /// Sends an update; the driver fills in uuid, timestamp, source and ids.
    fn report(&mut self, report: Report) {
        let Report { task_id, state, message, reason, healthy, check_status } = report.clone();
        match (&message, state) {
            (Some(message), TaskState::TaskError | TaskState::TaskFailed) => {
                warn!(task_id, state = state.as_str_name(), %message, "status update")
            }
            _ => info!(task_id, state = state.as_str_name(), "status update"),
        }
        let status = TaskStatus {
            task_id: TaskId { value: task_id.clone() },
            state: state as i32,
            message,
            reason: reason.map(|r| r as i32),
            healthy,
            check_status,
            ..Default::default()
        };
        let uuid = match self.driver.send_status_update(status) {
            Ok(uuid) => uuid,
            Err(e) => {
                warn!(task_id, error = %e, "status update not sent");
                return;
            }
        };
        self.state.reported(&report, uuid);
        let gauge = &self.config.tasks_gauge;
        let previous =
            if state.is_terminal() { self.states.remove(&task_id) } else { self.states.insert(task_id, state) };
        if let Some(previous) = previous {
            gauge.with_label_values(&[previous.as_str_name()]).dec();
        }
        // A terminal state is the task's last: it stays counted, and the map forgets it.
        gauge.with_label_values(&[state.as_str_name()]).inc();
    }

    /// No process of an ended task outlives it: its process's waiter has killed what it
    /// left when it exited (`TaskProcess::wait`); this kills, again, whatever a task
    /// that ended otherwise (killed before its exit was seen) may have left, its group
    /// and then its escapees. Its record goes.
    fn clean_up(&mut self, task_id: &str) {
        let Some(mut record) = self.tasks.remove(task_id) else { return };
        record.probes.drain(..).for_each(|p| p.abort());
        if let Some(fetch) = record.fetch.take() {
            fetch.abort();
        }
        let Some(tree) = record.tree else { return };
        let task_id = task_id.to_owned();
        self.jobs.spawn(async move {
            let killed = tree.clean_up().await;
            if killed > 0 {
                info!(task_id, killed, "killed processes the task left behind");
            }
            None
        });
    }
}

/// Sleeps until `deadline`, or forever without one.
async fn sleep_until(deadline: Option<Instant>) {
    match deadline {
        Some(at) => tokio::time::sleep_until(at).await,
        None => std::future::pending().await,
    }
}
