//! The supervisor: the thin async shell around the [`TaskBook`]. It prepares launches
//! (resolving each task's command into a process spec), feeds the book its inputs, and
//! performs the effects the book returns: it reports updates through the driver, spawns
//! and signals processes, runs probes and timers, cleans up what a task leaves behind,
//! and stops the driver. Child exits, timers and probe results come back to it as
//! messages on its channel, so everything the book sees happens on this one task.

use std::{
    collections::{BTreeMap, HashMap, VecDeque},
    fs::OpenOptions,
    path::PathBuf,
    process::Stdio,
    sync::Arc,
    time::Duration,
};

use mesos_executor::{
    DriverHandle,
    executor::{
        check, health,
        launch::{self, LaunchError, LaunchSpec},
        process::{self, Exit},
    },
    metrics::prometheus::IntGaugeVec,
    proto::v1::{CheckInfo, CommandInfo, HealthCheck, TaskGroupInfo, TaskId, TaskInfo, TaskState, TaskStatus},
};
use nix::sys::signal::Signal as Sig;
use tokio::{sync::mpsc, task::JoinHandle, time::Instant};
use tracing::{info, warn};

pub use crate::book::Mode;
use crate::book::{Effect, Input, Report, Signal, TaskBook};

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
    /// The executor's own environment, read once at start: the base of every task's.
    pub base_env: Vec<(String, String)>,
    /// Tasks by latest state (`mesos_executor_tasks{state}`), registered with the
    /// driver's metrics.
    pub tasks_gauge: IntGaugeVec,
}

/// Messages to the supervisor.
#[derive(Debug)]
pub(crate) enum Msg {
    /// LAUNCH: to be prepared, then given to the book.
    Launch(Box<TaskInfo>),
    /// LAUNCH_GROUP: likewise.
    LaunchGroup(TaskGroupInfo),
    /// Anything else, straight to the book.
    Book(Input),
}

/// What the shell holds for a task: what the book must not (processes and tasks).
#[derive(Default)]
struct Proc {
    pid: Option<u32>,
    marker: String,
    /// The task's environment, for COMMAND probes.
    env: Arc<BTreeMap<String, String>>,
    /// Probes and timers; aborted when the book quiets the task.
    timers: Vec<JoinHandle<()>>,
}

impl Proc {
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
    book: TaskBook,
    procs: HashMap<String, Proc>,
    /// Latest state reported per task, for the gauge.
    states: HashMap<String, TaskState>,
}

impl Supervisor {
    pub fn new(driver: DriverHandle, config: SupervisorConfig, tx: mpsc::UnboundedSender<Msg>) -> Self {
        let book = TaskBook::new(config.mode, config.shutdown_grace);
        Supervisor { driver, config, tx, book, procs: HashMap::new(), states: HashMap::new() }
    }

    /// Handles messages until the channel closes; reaps orphans as a subreaper.
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
        let input = match msg {
            Msg::Launch(task) => {
                let spec = self.prepare(&task);
                Input::Launch { task, spec }
            }
            Msg::LaunchGroup(group) => {
                let members = group.tasks.into_iter().map(|t| (self.prepare(&t), t)).map(|(s, t)| (t, s)).collect();
                Input::LaunchGroup { members }
            }
            Msg::Book(input) => input,
        };
        self.apply(input);
    }

    /// Steps the book with `input`, performs its effects, and does the same for any
    /// input an effect produces (a spawn's result) before returning.
    fn apply(&mut self, input: Input) {
        let mut inputs = VecDeque::from([input]);
        while let Some(input) = inputs.pop_front() {
            for effect in self.book.step(input, Instant::now()) {
                if let Some(next) = self.perform(effect) {
                    inputs.push_back(next);
                }
            }
        }
    }

    /// Resolves, checks and builds the task's process.
    fn prepare(&self, task: &TaskInfo) -> Result<LaunchSpec, LaunchError> {
        let (command, _) = launch::resolve_command(task, self.config.task_command.as_ref())?;
        launch::check_supported(task, &command)?;
        let marker = format!("{}/{}", self.config.nonce, task.task_id.value);
        let mut spec = launch::build(task, &command, self.config.base_env.iter().cloned(), &marker)?;
        if spec.user.is_none() {
            spec.user.clone_from(&self.config.user);
        }
        Ok(spec)
    }

    fn perform(&mut self, effect: Effect) -> Option<Input> {
        match effect {
            Effect::Report(report) => self.report(report),
            Effect::Spawn { task_id, spec } => return Some(self.spawn(task_id, *spec)),
            Effect::Probe { task_id, health, check } => self.probe(&task_id, health.map(|h| *h), check.map(|c| *c)),
            Effect::Quiet { task_id } => {
                if let Some(proc) = self.procs.get_mut(&task_id) {
                    proc.stop_timers();
                }
            }
            Effect::Signal { task_id, signal } => {
                let proc = self.procs.get(&task_id)?;
                let signal = match signal {
                    Signal::Term => Sig::SIGTERM,
                    Signal::Kill => Sig::SIGKILL,
                };
                info!(task_id, ?signal, "signalling task");
                process::signal_task(proc.pid, &proc.marker, signal);
            }
            Effect::Arm { task_id, timer, at } => {
                let tx = self.tx.clone();
                let id = task_id.clone();
                let handle = tokio::spawn(async move {
                    tokio::time::sleep_until(at).await;
                    let _ = tx.send(Msg::Book(Input::Timer { task_id: id, timer }));
                });
                if let Some(proc) = self.procs.get_mut(&task_id) {
                    proc.timers.push(handle);
                }
            }
            Effect::CleanUp { task_id } => self.clean_up(&task_id),
            Effect::StopDriver => {
                info!("all tasks ended; stopping once their updates are acknowledged");
                self.driver.stop();
            }
        }
        None
    }

    /// Sends an update; the driver fills in uuid, timestamp, source and ids.
    fn report(&mut self, report: Report) {
        let Report { task_id, state, message, reason, healthy, check_status } = report;
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
        if let Err(e) = self.driver.send_status_update(status) {
            warn!(task_id, error = %e, "status update not sent");
            return;
        }
        let gauge = &self.config.tasks_gauge;
        if let Some(previous) = self.states.insert(task_id, state) {
            gauge.with_label_values(&[previous.as_str_name()]).dec();
        }
        gauge.with_label_values(&[state.as_str_name()]).inc();
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

    /// Spawns the task's process and a waiter that reports its exit.
    fn spawn(&mut self, task_id: String, spec: LaunchSpec) -> Input {
        let spawned =
            self.output(&task_id).and_then(|(out, err)| process::spawn(&spec, &self.config.sandbox, out, err));
        let mut child = match spawned {
            Ok(child) => child,
            Err(e) => {
                let result = Err(format!("Failed to launch {:?}: {e}", spec.program));
                return Input::Spawned { task_id, result };
            }
        };
        let pid = child.id();
        if let Some(pid) = pid {
            process::own_child(pid);
        }
        info!(task_id, pid, "task started");
        let marker = spec.env.get(launch::TASK_MARKER).cloned().unwrap_or_default();
        self.procs.insert(task_id.clone(), Proc { pid, marker, env: Arc::new(spec.env), timers: Vec::new() });
        // The waiter is detached: it must outlive kills and report the exit.
        let (tx, id) = (self.tx.clone(), task_id.clone());
        tokio::spawn(async move {
            let exit = child.wait().await.map(Exit::from_status).map_err(|e| e.to_string());
            if let Some(pid) = pid {
                process::forget_child(pid);
            }
            let _ = tx.send(Msg::Book(Input::Exited { task_id: id, exit }));
        });
        Input::Spawned { task_id, result: Ok(()) }
    }

    /// Starts the task's health and general checks on their schedules.
    fn probe(&mut self, task_id: &str, health_check: Option<HealthCheck>, check: Option<CheckInfo>) {
        let Some(proc) = self.procs.get(task_id) else { return };
        let (env, cwd) = (Arc::clone(&proc.env), Arc::new(self.config.sandbox.clone()));
        let mut timers = Vec::new();
        if let Some(hc) = health_check {
            let (delay, interval) = (hc.delay_seconds(), hc.interval_seconds());
            let (hc, env, cwd, id) = (Arc::new(hc), Arc::clone(&env), Arc::clone(&cwd), task_id.to_owned());
            timers.push(self.periodic(delay, interval, move || {
                let (hc, env, cwd, task_id) = (Arc::clone(&hc), Arc::clone(&env), Arc::clone(&cwd), id.clone());
                async move { Some(Input::Health { result: health::probe(&hc, &env, &cwd).await, task_id }) }
            }));
        }
        if let Some(ck) = check {
            let (delay, interval) = (ck.delay_seconds(), ck.interval_seconds());
            let (ck, id) = (Arc::new(ck), task_id.to_owned());
            timers.push(self.periodic(delay, interval, move || {
                let (ck, env, cwd, task_id) = (Arc::clone(&ck), Arc::clone(&env), Arc::clone(&cwd), id.clone());
                async move { check::run(&ck, &env, &cwd).await.map(|status| Input::Check { task_id, status }) }
            }));
        }
        if let Some(proc) = self.procs.get_mut(task_id) {
            proc.timers.extend(timers);
        }
    }

    /// Runs `probe` first after `delay` seconds, then every `interval`, sending each
    /// result here (health checks and general checks share this schedule).
    fn periodic<F, Fut>(&self, delay: f64, interval: f64, mut probe: F) -> JoinHandle<()>
    where
        F: FnMut() -> Fut + Send + 'static,
        Fut: std::future::Future<Output = Option<Input>> + Send,
    {
        let tx = self.tx.clone();
        tokio::spawn(async move {
            tokio::time::sleep(health::seconds(delay)).await;
            let interval = health::seconds(interval).max(Duration::from_millis(10));
            loop {
                if let Some(input) = probe().await
                    && tx.send(Msg::Book(input)).is_err()
                {
                    return;
                }
                tokio::time::sleep(interval).await;
            }
        })
    }

    /// No process of an ended task outlives it: its group now, then whatever left the
    /// group (found by its marker) for a few more moments.
    fn clean_up(&mut self, task_id: &str) {
        let Some(proc) = self.procs.get_mut(task_id) else { return };
        proc.stop_timers();
        process::kill_group(proc.pid);
        let (marker, task_id) = (proc.marker.clone(), task_id.to_owned());
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
    }
}
