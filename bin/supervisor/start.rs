//! Starting a task, as the book asks: preparing its process spec from the LAUNCH (and a
//! group's addresses), making its sandbox and fetching its URIs into it (a job the book
//! may cancel), and the spawn barrier that prepares every member of a unit (output
//! files, user, program, the group file) and starts them only if all are prepared.

use std::{fs::OpenOptions, path::PathBuf, process::Stdio, sync::Arc};

use mesos_executor::{
    executor::{
        launch::{self, LaunchError, LaunchSpec},
        process,
    },
    proto::v1::{TaskInfo, command_info::Uri},
};
use tokio::{task::JoinSet, time::Instant};
use tracing::{info, warn};

use super::{LOG_DRAIN_DEADLINE, Mode, Supervisor};
use crate::{
    book::{Input, Prepared},
    group::{self, GroupFile},
    sandbox::TaskSandbox,
};

/// A task's output pipe.
type Pipe = Box<dyn tokio::io::AsyncRead + Unpin + Send>;

impl Supervisor {
    /// Resolves, checks and builds the task's process, with the URIs to fetch for it.
    pub(super) fn prepare(&self, task: &TaskInfo) -> Result<Prepared, LaunchError> {
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
        if spec.user.is_none() {
            spec.user.clone_from(&self.config.user);
        }
        // Drop-in: the agent's fetcher has put every CommandInfo URI in the sandbox
        // before it started us (upstream `Slave::getExecutorInfo` copies them into the
        // command executor's CommandInfo); fetching them again doubles the downloads
        // and fails URIs only the agent's fetcher knows (hdfs://, s3://, ...).
        // Default mode fetches its members' URIs itself: upstream's default executor
        // has the agent launch each member as a nested container, whose URIs the agent's
        // fetcher puts in that member's sandbox (`LAUNCH_CONTAINER` with the member's
        // CommandInfo); the agent fetches nothing for a task group's executor.
        let uris = if self.config.mode == Mode::Command { Vec::new() } else { command.uris };
        Ok(Prepared { spec, uris })
    }

    /// Prepares every member of a group, and, when all are valid, tells each of them
    /// about the whole group (`group.rs`) in its environment and in the group file.
    pub(super) fn prepare_group(&mut self, tasks: Vec<TaskInfo>) -> Input {
        let mut members: Vec<(TaskInfo, Result<Prepared, LaunchError>)> = tasks
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
        let mut vars = group::env(&description, &file.path);
        if let Some(ip) = &self.config.container_ip {
            vars.push((group::CONTAINER_IP.to_owned(), ip.clone()));
        }
        for (_, spec) in &mut members {
            if let Ok(prepared) = spec {
                prepared.spec.env.extend(vars.iter().cloned());
            }
        }
        Input::LaunchGroup { members, file: Some(file) }
    }

    /// Makes the task's sandbox and starts fetching its URIs into it; answers at once
    /// when there is nothing to fetch or the sandbox cannot be made.
    pub(super) fn fetch(&mut self, task_id: String, prepared: Prepared) -> Option<Input> {
        let Prepared { mut spec, uris } = prepared;
        let sandbox = match self.make_sandbox(&task_id, &mut spec) {
            Ok(sandbox) => sandbox,
            Err(error) => return Some(Input::Fetched { task_id, result: Err(error) }),
        };
        // Into the task's own directory (custom mode), else the sandbox.
        let dir = sandbox.as_ref().map_or_else(|| self.config.sandbox.clone(), |s| s.path.clone());
        let user = spec.user.clone();
        let record = self.tasks.entry(task_id.clone()).or_default();
        record.spec = Some(spec);
        record.sandbox = sandbox;
        if uris.is_empty() {
            return Some(Input::Fetched { task_id, result: Ok(()) });
        }
        let fetcher = self.config.fetcher.clone();
        let id = task_id.clone();
        // Fetching takes its time: a job, which the book may cancel (dropping the fetch
        // stops it).
        let job = self.jobs.spawn(async move {
            let result = fetch(&fetcher, &uris, dir, user, &id).await;
            Some(Input::Fetched { task_id: id, result })
        });
        record.fetch = Some(job);
        None
    }

    /// Custom and default modes: the task's own directory, made before anything is
    /// fetched into it (as the task's user), and its `MESOS_SANDBOX`. Upstream's default
    /// executor gives each task its container's sandbox the same way.
    fn make_sandbox(&self, id: &str, spec: &mut LaunchSpec) -> Result<Option<TaskSandbox>, String> {
        if self.config.mode == Mode::Command {
            return Ok(None);
        }
        let sandbox = crate::sandbox::owner_of(spec.user.as_deref())
            .and_then(|owner| TaskSandbox::create(&self.config.sandbox, id, owner))
            .map_err(|e| format!("cannot make the task's sandbox: {e}"))?;
        // Beneath the executor's sandbox, whose path holds the executor's ids.
        let within = |p: &std::path::Path| p.strip_prefix(&self.config.sandbox).unwrap_or(p).display().to_string();
        info!(task_id = id, sandbox = %within(&sandbox.path), link = %within(&sandbox.link), "task sandbox made");
        spec.env.insert("MESOS_SANDBOX".to_owned(), sandbox.path.display().to_string());
        Ok(Some(sandbox))
    }

    /// The spawn barrier: prepares every member (its output files, its user and
    /// program, the group file) and starts them only if all are prepared; otherwise none
    /// runs.
    pub(super) fn spawn_all(&mut self, ids: Vec<String>, file: Option<GroupFile>) -> Vec<Input> {
        let mut prepared = Vec::new();
        for task_id in &ids {
            let ready = self
                .tasks
                .get_mut(task_id)
                .and_then(|r| r.spec.take())
                .ok_or_else(|| "the task has no prepared process".to_owned())
                .and_then(|spec| {
                    let program = spec.program.clone();
                    let user = spec.user.clone();
                    process::preflight(&spec)
                        .and_then(|()| self.through_helper(spec))
                        .and_then(|spec| Ok((spec, self.output(task_id)?, user)))
                        .map_err(|e| format!("cannot start {program:?}: {e}"))
                });
            match ready {
                Ok((spec, output, user)) => {
                    if let Some(record) = self.tasks.get_mut(task_id) {
                        record.user = user.map(Arc::from);
                    }
                    prepared.push((task_id.clone(), spec, output));
                }
                Err(error) => return vec![Input::NotStarted { task_ids: ids.clone(), member: task_id.clone(), error }],
            }
        }
        if let Some(file) = file {
            let written = file
                .path
                .parent()
                .map_or(Ok(()), std::fs::create_dir_all)
                .and_then(|()| crate::state_file::write_atomically(&file.path, &file.contents));
            if let Err(e) = written {
                let error = format!("cannot write the group file {}: {e}", file.path.display());
                let member = ids.first().cloned().unwrap_or_default();
                return vec![Input::NotStarted { task_ids: ids, member, error }];
            }
        }
        prepared.into_iter().map(|(task_id, spec, output)| self.spawn(task_id, spec, output)).collect()
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
        let identity = process::identity_for(&spec, &flags.groups)?;
        let helper = crate::exec_helper::HelperSpec {
            program: spec.program.clone(),
            argv: spec.argv.clone(),
            uid: identity.as_ref().map(|i| i.uid),
            gid: identity.as_ref().map(|i| i.gid),
            groups: identity.iter().flat_map(|i| i.groups.iter().copied()).collect(),
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
        let mut exec = LaunchSpec::new(
            self.config.helper.display().to_string(),
            ["mesos-executor".to_owned(), format!("{}{json}", crate::exec_helper::FLAG)],
        );
        exec.env = env.into_iter().collect();
        Ok(exec)
    }

    /// The task's stdin and how it starts: the terminal as its controlling one, and
    /// the supplementary groups for a task that switches user.
    fn start_options(&self) -> std::io::Result<(Stdio, process::StartOptions)> {
        let flags = &self.config.task_flags;
        let stdin = match &flags.tty {
            Some(tty) => open_tty(tty)?.into(),
            None => Stdio::null(),
        };
        let options = process::StartOptions::default()
            .with_extra_groups(flags.groups.clone())
            .with_controlling_tty(flags.tty.is_some());
        Ok((stdin, options))
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
        let sandbox = self.tasks.get(id).and_then(|r| r.sandbox.as_ref());
        let sandbox = sandbox.ok_or_else(|| std::io::Error::other("the task has no sandbox"))?;
        let open = |name| crate::sandbox::open_log(&sandbox.dir, name, sandbox.owner);
        Ok((open("stdout")?.into(), open("stderr")?.into()))
    }

    /// Where the task and its probes run: `--working_directory` if given, else its own
    /// directory (custom mode) or the executor's sandbox (drop-in mode).
    pub(super) fn cwd(&self, id: &str) -> PathBuf {
        let own = self.tasks.get(id).and_then(|r| r.sandbox.as_ref()).map(|s| &s.path);
        self.config.working_directory.as_ref().or(own).unwrap_or(&self.config.sandbox).clone()
    }

    /// Spawns the task's process and a waiter job that reports its exit.
    fn spawn(&mut self, task_id: String, spec: LaunchSpec, (out, err): (Stdio, Stdio)) -> Input {
        let cwd = self.cwd(&task_id);
        let spawned = self
            .start_options()
            .and_then(|(stdin, options)| process::spawn_with(&spec, &cwd, stdin, out, err, &options));
        let mut child = match spawned {
            Ok(task) => task,
            Err(e) => {
                let result = Err(format!("Failed to launch {:?}: {e}", spec.program));
                return Input::Spawned { task_id, result };
            }
        };
        let pid = child.id();
        info!(task_id, pid, "task started");
        let mut pumps = JoinSet::new();
        let sandbox = self.tasks.get(&task_id).and_then(|r| r.sandbox.as_ref()).map(|s| (Arc::clone(&s.dir), s.owner));
        if let (Some(rotation), Some((dir, owner))) = (self.config.log_rotation, sandbox) {
            let pipes = [
                (child.take_stdout().map(|p| Box::new(p) as Pipe), "stdout"),
                (child.take_stderr().map(|p| Box::new(p) as Pipe), "stderr"),
            ];
            for (pipe, name) in pipes {
                let Some(pipe) = pipe else { continue };
                let target = crate::logrotate::Target { dir: Arc::clone(&dir), name, task_id: task_id.clone(), owner };
                pumps.spawn(crate::logrotate::pump(pipe, target, rotation));
            }
        }
        self.state.started(&task_id, pid);
        let record = self.tasks.entry(task_id.clone()).or_default();
        record.tree = Some(child.tree());
        // Through the exec helper, the task's own environment is the helper's payload.
        let env = match spec.env.get(crate::exec_helper::TASK_ENVIRONMENT) {
            Some(json) => serde_json::from_str(json).unwrap_or_default(),
            None => spec.env,
        };
        record.env = Some(Arc::new(env));
        // The waiter must outlive kills and report the exit, once whatever the task left
        // is dead (`TaskProcess::wait`) and its logs are on disk (or their deadline
        // passed), so that the terminal update never goes out, and the executor never
        // ends, ahead of the task's last words or with a process of it still running.
        let id = task_id.clone();
        self.jobs.spawn(async move {
            let exit = child.wait().await.map_err(|e| e.to_string());
            let drained = tokio::time::timeout_at(Instant::now() + LOG_DRAIN_DEADLINE, async {
                while pumps.join_next().await.is_some() {}
            });
            if drained.await.is_err() {
                // What a leftover process still writes is logged until its clean-up.
                pumps.detach_all();
                warn!(
                    task_id = id,
                    deadline = ?LOG_DRAIN_DEADLINE,
                    "the task's output is still open after it exited (a process it left holds it); reporting the exit without waiting for the rest of its log"
                );
            }
            Some(Input::Exited { task_id: id, exit })
        });
        Input::Spawned { task_id, result: Ok(()) }
    }
}

/// Fetches `uris` into `dir` as `user` (`crate::fetch`).
///
/// # Cancel safety
/// Dropping the future stops the fetch (it kills the fetch helper).
async fn fetch(
    fetcher: &crate::fetch::Fetcher,
    uris: &[Uri],
    dir: PathBuf,
    user: Option<String>,
    task_id: &str,
) -> Result<(), String> {
    for f in fetcher.fetch_all(uris, &dir, user.as_deref()).await? {
        info!(task_id, uri = %f.uri, bytes = f.bytes, ms = f.millis, cached = f.cached, "fetched");
    }
    Ok(())
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
