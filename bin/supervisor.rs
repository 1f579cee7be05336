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
use crate::{
    book::{Effect, Input, Report, Signal, TaskBook},
    group::{self, GroupFile},
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
}

/// Messages to the supervisor.
#[derive(Debug)]
pub(crate) enum Msg {
    /// SUBSCRIBED: the framework's capability, and the agent host (for group addresses).
    Registered { killing_state: bool, hostname: String },
    /// ACKNOWLEDGED, for the state file.
    Acked { task_id: String, uuid: Vec<u8> },
    /// Time to write the state file's waiting changes.
    FlushState,
    /// The executor ends: write the state file now, then answer.
    Finish(tokio::sync::oneshot::Sender<()>),
    /// LAUNCH: to be prepared, then given to the book.
    Launch(Box<TaskInfo>),
    /// LAUNCH_GROUP: likewise.
    LaunchGroup(TaskGroupInfo),
    /// The URIs of a start were fetched (or one could not be): the rest of the start.
    Fetched { members: Vec<(String, Box<LaunchSpec>)>, file: Option<GroupFile>, failed: Option<(String, String)> },
    /// Anything else, straight to the book.
    Book(Input),
}

/// A task's output pipe.
type Pipe = Box<dyn tokio::io::AsyncRead + Unpin + Send>;

/// What the shell holds for a task: what the book must not (processes and tasks).
#[derive(Default)]
struct Proc {
    pid: Option<u32>,
    marker: String,
    /// The task's environment, for COMMAND probes: kept only until the book has said
    /// whether the task has any (a thousand tasks' environments are megabytes).
    env: Option<Arc<BTreeMap<String, String>>>,
    /// The task's user, whom its COMMAND probes run as (None: the executor's own).
    user: Option<Arc<str>>,
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
    /// The agent's host name, for group addresses.
    hostname: String,
    state: StateFile,
    /// A state file write is scheduled.
    flush_scheduled: bool,
    /// Each task's `CommandInfo.uris`, from its preparation to its start.
    uris: HashMap<String, Vec<mesos_executor::proto::v1::command_info::Uri>>,
    /// Each task's own directory (custom mode), from its start to its clean-up.
    sandboxes: HashMap<String, TaskSandbox>,
}

/// How long a task's exit waits for its logs to be written out (a background process
/// may hold the task's pipes open forever).
const LOG_DRAIN_DEADLINE: Duration = Duration::from_secs(3);

impl Supervisor {
    pub fn new(driver: DriverHandle, config: SupervisorConfig, tx: mpsc::UnboundedSender<Msg>) -> Self {
        let book = TaskBook::new(config.mode, config.shutdown_grace, config.max_tasks);
        let state = StateFile::new(config.state_file.clone(), config.executor_id.clone(), config.framework_id.clone());
        Supervisor {
            driver,
            config,
            tx,
            book,
            procs: HashMap::new(),
            states: HashMap::new(),
            hostname: "localhost".to_owned(),
            state,
            flush_scheduled: false,
            uris: HashMap::new(),
            sandboxes: HashMap::new(),
        }
    }

    /// A sender of messages to this supervisor.
    pub fn sender(&self) -> mpsc::UnboundedSender<Msg> {
        self.tx.clone()
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
            Msg::Registered { killing_state, hostname } => {
                self.hostname = hostname;
                Input::Registered { killing_state }
            }
            Msg::Acked { task_id, uuid } => {
                self.state.acknowledged(&task_id, &uuid);
                self.flush_state();
                return;
            }
            Msg::FlushState => {
                self.flush_scheduled = false;
                self.state.flush();
                return;
            }
            Msg::Finish(done) => {
                self.state.flush();
                let _ = done.send(());
                return;
            }
            Msg::Launch(task) => {
                let spec = self.prepare(&task);
                Input::Launch { task, spec }
            }
            Msg::LaunchGroup(group) => self.prepare_group(group.tasks),
            Msg::Fetched { members, file, failed: Some((member, error)) } => {
                let task_ids: Vec<String> = members.into_iter().map(|(id, _)| id).collect();
                for id in &task_ids {
                    self.sandboxes.remove(id);
                }
                drop(file);
                Input::NotStarted { task_ids, member, error }
            }
            Msg::Fetched { members, file, failed: None } => {
                for input in self.start_fetched(members, file) {
                    self.apply(input);
                }
                self.flush_state();
                return;
            }
            Msg::Book(input) => {
                if let Input::Exited { task_id, exit } = &input {
                    self.state.exited(task_id, exit);
                }
                input
            }
        };
        self.apply(input);
        self.flush_state();
    }

    /// Writes the state file, or schedules the write when the last one was too recent.
    fn flush_state(&mut self) {
        if self.state.flush_if_due() || self.flush_scheduled {
            return;
        }
        self.flush_scheduled = true;
        let tx = self.tx.clone();
        tokio::spawn(async move {
            tokio::time::sleep(crate::state_file::MIN_INTERVAL).await;
            let _ = tx.send(Msg::FlushState);
        });
    }

    /// Prepares every member of a group, and, when all are valid, tells each of them
    /// about the whole group (`group.rs`) in its environment and in the group file.
    fn prepare_group(&mut self, tasks: Vec<TaskInfo>) -> Input {
        let mut members: Vec<(TaskInfo, Result<LaunchSpec, LaunchError>)> = tasks
            .into_iter()
            .map(|t| {
                let spec = self.prepare(&t);
                (t, spec)
            })
            .collect();
        if members.iter().any(|(_, s)| s.is_err()) {
            return Input::LaunchGroup { members, file: None };
        }
        let infos: Vec<TaskInfo> = members.iter().map(|(t, _)| t.clone()).collect();
        let description = group::describe(&infos, &self.hostname);
        let file = group::file(&description, &self.config.sandbox);
        let vars = group::env(&description, &file.path);
        for (_, spec) in &mut members {
            if let Ok(spec) = spec {
                spec.env.extend(vars.iter().cloned());
            }
        }
        Input::LaunchGroup { members, file: Some(file) }
    }

    /// Steps the book with `input`, performs its effects, and does the same for any
    /// input an effect produces (a start's results) before returning.
    fn apply(&mut self, input: Input) {
        let mut inputs = VecDeque::from([input]);
        while let Some(input) = inputs.pop_front() {
            let spawned = match &input {
                Input::Spawned { task_id, result: Ok(()) } => Some(task_id.clone()),
                _ => None,
            };
            for effect in self.book.step(input, Instant::now()) {
                self.perform(effect, &mut inputs);
            }
            // The book has answered the spawn: a task with probes took its environment.
            if let Some(proc) = spawned.and_then(|id| self.procs.get_mut(&id)) {
                proc.env = None;
            }
        }
    }

    /// Resolves, checks and builds the task's process.
    fn prepare(&mut self, task: &TaskInfo) -> Result<LaunchSpec, LaunchError> {
        if let Some(refusal) = &self.config.task_flags.refusal {
            return Err(LaunchError::Unsupported(refusal.clone()));
        }
        let (command, _) = launch::resolve_command(task, self.config.task_command.as_ref())?;
        launch::check_supported(task, &command)?;
        let marker = format!("{}/{}", self.config.nonce, task.task_id.value);
        // Upstream's order: the executor's environment, then `--task_environment`, then
        // the task's CommandInfo (launch::build puts that last).
        let base = self.config.base_env.iter().chain(&self.config.task_flags.environment).cloned();
        let mut spec = launch::build(task, &command, base, &marker)?;
        if !command.uris.is_empty() {
            self.uris.insert(task.task_id.value.clone(), command.uris.clone());
        }
        if spec.user.is_none() {
            spec.user.clone_from(&self.config.user);
        }
        Ok(spec)
    }

    fn perform(&mut self, effect: Effect, inputs: &mut VecDeque<Input>) {
        match effect {
            Effect::Report(report) => self.report(report),
            Effect::Start { members, file } => inputs.extend(self.start(members, file)),
            Effect::Probe { task_id, health, check } => self.probe(&task_id, health.map(|h| *h), check.map(|c| *c)),
            Effect::Quiet { task_id } => {
                if let Some(proc) = self.procs.get_mut(&task_id) {
                    proc.stop_timers();
                }
            }
            Effect::Signal { task_id, signal } => {
                let Some(proc) = self.procs.get(&task_id) else { return };
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
        if let Some(previous) = self.states.insert(task_id, state) {
            gauge.with_label_values(&[previous.as_str_name()]).dec();
        }
        gauge.with_label_values(&[state.as_str_name()]).inc();
    }

    /// Drop-in mode: the task shares the executor's own stdout and stderr (the agent's
    /// `stdout`/`stderr` files in the sandbox), as upstream's task inherits them. Custom
    /// mode: `stdout` and `stderr` in the task's own directory, opened beneath it.
    fn output(&self, id: &str) -> std::io::Result<(Stdio, Stdio)> {
        if let Some(tty) = &self.config.task_flags.tty {
            let tty = open_tty(tty)?;
            return Ok((tty.try_clone()?.into(), tty.into()));
        }
        if self.config.mode == Mode::Command {
            return Ok((Stdio::inherit(), Stdio::inherit()));
        }
        if self.config.log_rotation.is_some() {
            // The supervisor writes them, rotating (see logrotate.rs).
            return Ok((Stdio::piped(), Stdio::piped()));
        }
        let sandbox = self.sandboxes.get(id).ok_or_else(|| std::io::Error::other("the task has no sandbox"))?;
        let open = |name| crate::sandbox::open_log(&sandbox.dir, name, sandbox.owner);
        Ok((open("stdout")?.into(), open("stderr")?.into()))
    }

    /// Where the task and its probes run: `--working_directory` if given, else its own
    /// directory (custom mode) or the executor's sandbox (drop-in mode).
    fn cwd(&self, id: &str) -> PathBuf {
        let own = self.sandboxes.get(id).map(|s| &s.path);
        self.config.working_directory.as_ref().or(own).unwrap_or(&self.config.sandbox).clone()
    }

    /// Custom mode: each member's own directory, made before anything is fetched into
    /// it (as the member's user), and its `MESOS_SANDBOX`. Upstream's default executor
    /// gives each task its container's sandbox the same way.
    fn make_sandboxes(&mut self, members: &mut [(String, Box<LaunchSpec>)]) -> Result<(), (String, String)> {
        if self.config.mode != Mode::Custom {
            return Ok(());
        }
        for (id, spec) in members.iter_mut() {
            let made = crate::sandbox::owner_of(spec.user.as_deref())
                .and_then(|owner| TaskSandbox::create(&self.config.sandbox, id, owner));
            match made {
                Ok(sandbox) => {
                    info!(task_id = id, sandbox = %sandbox.path.display(), link = %sandbox.link.display(), "task sandbox made");
                    spec.env.insert("MESOS_SANDBOX".to_owned(), sandbox.path.display().to_string());
                    self.sandboxes.insert(id.clone(), sandbox);
                }
                Err(e) => return Err((id.clone(), format!("cannot make the task's sandbox: {e}"))),
            }
        }
        Ok(())
    }

    /// The start barrier: prepares every member (its output files, its user and program,
    /// the group file) and starts them only if all are prepared; otherwise none runs.
    fn start(&mut self, mut members: Vec<(String, Box<LaunchSpec>)>, file: Option<GroupFile>) -> Vec<Input> {
        if let Err((member, error)) = self.make_sandboxes(&mut members) {
            let task_ids: Vec<String> = members.into_iter().map(|(id, _)| id).collect();
            for id in &task_ids {
                self.uris.remove(id);
                self.sandboxes.remove(id);
            }
            return vec![Input::NotStarted { task_ids, member, error }];
        }
        let fetches: Vec<_> = members
            .iter()
            .filter_map(|(id, spec)| {
                let uris = self.uris.remove(id)?;
                // Into the task's own directory (custom mode), else the sandbox.
                let dir = self.sandboxes.get(id).map_or_else(|| self.config.sandbox.clone(), |s| s.path.clone());
                Some((id.clone(), uris, spec.user.clone(), dir))
            })
            .collect();
        if fetches.is_empty() {
            return self.start_fetched(members, file);
        }
        // Fetching takes its time: off this task, and the start resumes when it is done.
        let (fetcher, tx) = (self.config.fetcher.clone(), self.tx.clone());
        tokio::spawn(async move {
            let mut failed = None;
            for (id, uris, user, dir) in fetches {
                if let Err(e) = fetcher.fetch_all(&uris, &dir, user.as_deref()).await {
                    failed = Some((id, e));
                    break;
                }
            }
            let _ = tx.send(Msg::Fetched { members, file, failed });
        });
        Vec::new()
    }

    /// The rest of a start, once its URIs are fetched.
    fn start_fetched(&mut self, members: Vec<(String, Box<LaunchSpec>)>, file: Option<GroupFile>) -> Vec<Input> {
        let ids: Vec<String> = members.iter().map(|(id, _)| id.clone()).collect();
        let mut prepared = Vec::new();
        for (task_id, spec) in members {
            let program = spec.program.clone();
            let user = spec.user.clone();
            let ready = process::preflight(&spec)
                .and_then(|()| self.through_helper(*spec))
                .and_then(|spec| Ok((spec, self.output(&task_id)?)));
            match ready {
                Ok((spec, output)) => prepared.push((task_id, spec, output, user)),
                Err(e) => {
                    let error = format!("cannot start {program:?}: {e}");
                    for id in &ids {
                        self.sandboxes.remove(id);
                    }
                    return vec![Input::NotStarted { task_ids: ids, member: task_id, error }];
                }
            }
        }
        if let Some(file) = file {
            let written = file
                .path
                .parent()
                .map_or(Ok(()), std::fs::create_dir_all)
                .and_then(|()| mesos_executor::metrics::write_atomically(&file.path, &file.contents));
            if let Err(e) = written {
                let error = format!("cannot write the group file {}: {e}", file.path.display());
                let member = ids.first().cloned().unwrap_or_default();
                for id in &ids {
                    self.sandboxes.remove(id);
                }
                return vec![Input::NotStarted { task_ids: ids, member, error }];
            }
        }
        prepared.into_iter().map(|(task_id, spec, output, user)| self.spawn(task_id, spec, output, user)).collect()
    }

    /// With capabilities asked (`--effective_capabilities`, `--bounding_capabilities`),
    /// the task starts as this program's exec helper, which switches to the task's user
    /// with its groups, applies them, and becomes the task.
    fn through_helper(&self, spec: LaunchSpec) -> std::io::Result<LaunchSpec> {
        let flags = &self.config.task_flags;
        if !flags.needs_helper() {
            return Ok(spec);
        }
        if !nix::unistd::getuid().is_root() {
            return Err(std::io::Error::new(
                std::io::ErrorKind::PermissionDenied,
                "the capability flags need the executor to run as root",
            ));
        }
        // As a spawn would: no switch to the executor's own user, and a user's groups
        // from the group database (read here, in the daemon) with the flag's.
        let identity = match &spec.user {
            Some(name) => {
                let user = nix::unistd::User::from_name(name).map_err(std::io::Error::from)?.ok_or_else(|| {
                    std::io::Error::new(std::io::ErrorKind::NotFound, format!("no such user {name:?}"))
                })?;
                let switch = user.uid != nix::unistd::getuid();
                switch.then(|| process::identity_of(&user, &flags.groups)).transpose()?
            }
            None => None,
        };
        let helper = crate::exec_helper::HelperSpec {
            program: spec.program.clone(),
            argv: spec.argv.clone(),
            uid: identity.as_ref().map(|i| i.uid.as_raw()),
            gid: identity.as_ref().map(|i| i.gid.as_raw()),
            groups: identity.iter().flat_map(|i| &i.groups).map(|g| g.as_raw()).collect(),
            effective: flags.effective.clone(),
            bounding: flags.bounding.clone(),
        };
        let json = serde_json::to_string(&helper).map_err(std::io::Error::other)?;
        // The helper runs as root until its switch: never with the task's environment
        // (the loader would honour its LD_* variables as root); see exec_helper.rs.
        let marker = spec.env.get(launch::TASK_MARKER).cloned().unwrap_or_default();
        let task_env = serde_json::to_string(&spec.env).map_err(std::io::Error::other)?;
        let env =
            [(launch::TASK_MARKER.to_owned(), marker), (crate::exec_helper::TASK_ENVIRONMENT.to_owned(), task_env)];
        Ok(LaunchSpec {
            program: self.config.helper.display().to_string(),
            argv: vec!["mesos-executor".to_owned(), format!("{}{json}", crate::exec_helper::FLAG)],
            env: env.into_iter().collect(),
            user: None,
        })
    }

    /// The task's stdin and how it starts: the terminal as its controlling one, and
    /// the supplementary groups for a task that switches user.
    fn start_options(&self) -> std::io::Result<(Stdio, process::StartOptions)> {
        let flags = &self.config.task_flags;
        let stdin = match &flags.tty {
            Some(tty) => open_tty(tty)?.into(),
            None => Stdio::null(),
        };
        Ok((stdin, process::StartOptions { extra_groups: flags.groups.clone(), controlling_tty: flags.tty.is_some() }))
    }

    /// Spawns the task's process and a waiter that reports its exit.
    fn spawn(&mut self, task_id: String, spec: LaunchSpec, (out, err): (Stdio, Stdio), user: Option<String>) -> Input {
        let cwd = self.cwd(&task_id);
        let spawned = self
            .start_options()
            .and_then(|(stdin, options)| process::spawn_with(&spec, &cwd, stdin, out, err, &options));
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
        let mut pumps = Vec::new();
        if let (Some(rotation), Some(sandbox)) = (self.config.log_rotation, self.sandboxes.get(&task_id)) {
            let pipes = [
                (child.stdout.take().map(|p| Box::new(p) as Pipe), "stdout"),
                (child.stderr.take().map(|p| Box::new(p) as Pipe), "stderr"),
            ];
            for (pipe, name) in pipes {
                let Some(pipe) = pipe else { continue };
                let target = crate::logrotate::Target {
                    dir: Arc::clone(&sandbox.dir),
                    name,
                    task_id: task_id.clone(),
                    owner: sandbox.owner,
                };
                pumps.push(tokio::spawn(crate::logrotate::pump(pipe, target, rotation)));
            }
        }
        self.state.started(&task_id, pid);
        let marker = spec.env.get(launch::TASK_MARKER).cloned().unwrap_or_default();
        // Through the exec helper, the task's own environment is the helper's payload.
        let env = match spec.env.get(crate::exec_helper::TASK_ENVIRONMENT) {
            Some(json) => serde_json::from_str(json).unwrap_or_default(),
            None => spec.env,
        };
        let proc = Proc { pid, marker, env: Some(Arc::new(env)), user: user.map(Arc::from), timers: Vec::new() };
        self.procs.insert(task_id.clone(), proc);
        // The waiter is detached: it must outlive kills and report the exit, once the
        // task's logs are on disk (or their deadline passed), so that the terminal update
        // never goes out, and the executor never ends, ahead of the task's last words.
        let (tx, id) = (self.tx.clone(), task_id.clone());
        tokio::spawn(async move {
            let exit = child.wait().await.map(Exit::from_status).map_err(|e| e.to_string());
            if let Some(pid) = pid {
                process::forget_child(pid);
            }
            let deadline = Instant::now() + LOG_DRAIN_DEADLINE;
            for pump in pumps {
                if tokio::time::timeout_at(deadline, pump).await.is_err() {
                    warn!(
                        task_id = id,
                        deadline = ?LOG_DRAIN_DEADLINE,
                        "the task's output is still open after it exited (a process it left holds it); reporting the exit without waiting for the rest of its log"
                    );
                    break;
                }
            }
            let _ = tx.send(Msg::Book(Input::Exited { task_id: id, exit }));
        });
        Input::Spawned { task_id, result: Ok(()) }
    }

    /// Starts the task's health and general checks on their schedules.
    fn probe(&mut self, task_id: &str, health_check: Option<HealthCheck>, check: Option<CheckInfo>) {
        let Some((env, user)) = self.procs.get_mut(task_id).and_then(|p| Some((p.env.take()?, p.user.clone()))) else {
            return;
        };
        let cwd = Arc::new(self.cwd(task_id));
        let mut timers = Vec::new();
        if let Some(hc) = health_check {
            let (delay, interval) = (hc.delay_seconds(), hc.interval_seconds());
            let (hc, env, cwd, user, id) =
                (Arc::new(hc), Arc::clone(&env), Arc::clone(&cwd), user.clone(), task_id.to_owned());
            timers.push(
                self.periodic(delay, interval, move || {
                    let (hc, env, cwd, user, task_id) =
                        (Arc::clone(&hc), Arc::clone(&env), Arc::clone(&cwd), user.clone(), id.clone());
                    async move {
                        Some(Input::Health { result: health::probe(&hc, &env, &cwd, user.as_deref()).await, task_id })
                    }
                }),
            );
        }
        if let Some(ck) = check {
            let (delay, interval) = (ck.delay_seconds(), ck.interval_seconds());
            let (ck, id) = (Arc::new(ck), task_id.to_owned());
            timers.push(self.periodic(delay, interval, move || {
                let (ck, env, cwd, user, task_id) =
                    (Arc::clone(&ck), Arc::clone(&env), Arc::clone(&cwd), user.clone(), id.clone());
                async move {
                    check::run(&ck, &env, &cwd, user.as_deref()).await.map(|status| Input::Check { task_id, status })
                }
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
        self.sandboxes.remove(task_id);
        let Some(mut proc) = self.procs.remove(task_id) else { return };
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

/// Opens `--tty_slave_path` for a task, with `O_NOCTTY`: the terminal must become the
/// task's controlling terminal, never the executor's (a session leader, as the agent
/// starts it), which a hang-up would kill and whose task would stop on SIGTTOU.
fn open_tty(path: &std::path::Path) -> std::io::Result<std::fs::File> {
    use std::os::unix::fs::OpenOptionsExt;
    OpenOptions::new()
        .read(true)
        .write(true)
        .custom_flags(nix::libc::O_NOCTTY)
        .open(path)
        .map_err(|e| std::io::Error::new(e.kind(), format!("--tty_slave_path {}: {e}", path.display())))
}
