//! Task processes: started in a process group of their own (or, with a terminal, a
//! session of their own) with the task's marker in their environment, as their user
//! with that user's groups; described on exit as upstream does (`Command exited with status
//! 3`, `Command terminated with signal Killed`); killed by group and by marker, so
//! descendants that left the group die too. The daemon is a child subreaper, so orphaned
//! descendants become its children and are reaped here.

use std::{
    collections::{HashMap, HashSet},
    io,
    os::unix::process::ExitStatusExt,
    path::Path,
    process::{ExitStatus, Stdio},
};

use nix::{
    sys::{
        signal::{Signal as NixSignal, kill, killpg},
        wait::{WaitPidFlag, waitpid},
    },
    unistd::{Pid, User, getuid},
};

use super::launch::LaunchSpec;
pub use super::{
    pre_exec::Identity,
    task_process::{CLEAN_UP_DEADLINE, Signal, TaskProcess, TaskTree},
};

/// How a task's process starts, beyond its [`LaunchSpec`].
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct StartOptions {
    /// Groups added to those the task's user has in the group database, when the task
    /// switches user (`--task_supplementary_groups`). Like upstream's launcher
    /// (`src/slave/containerizer/mesos/launch.cpp`), a task that runs as the executor's
    /// own user keeps the executor's groups and gets none of these.
    pub extra_groups: Vec<u32>,
    /// The task's stdin, stdout and stderr are a terminal, to become its controlling
    /// terminal in a session of its own (`--tty_slave_path`); the session is the task's
    /// process group, so [`TaskTree::signal`] and [`signal_task`] reach it as usual.
    pub controlling_tty: bool,
}

impl StartOptions {
    /// With `groups` added to the task user's own (see [`StartOptions::extra_groups`]).
    ///
    /// ```
    /// use mesos_executor::executor::process::StartOptions;
    /// let options = StartOptions::default().with_extra_groups(vec![4242]).with_controlling_tty(false);
    /// assert_eq!(options.extra_groups, [4242]);
    /// ```
    ///
    /// A struct literal is refused (`#[non_exhaustive]`), so that a field added later
    /// breaks no one:
    ///
    /// ```compile_fail,E0639
    /// let options = mesos_executor::executor::process::StartOptions { extra_groups: vec![], controlling_tty: true };
    /// ```
    pub fn with_extra_groups(mut self, groups: Vec<u32>) -> Self {
        self.extra_groups = groups;
        self
    }

    /// With the task's stdin, stdout and stderr as its controlling terminal (see
    /// [`StartOptions::controlling_tty`]).
    pub fn with_controlling_tty(mut self, tty: bool) -> Self {
        self.controlling_tty = tty;
        self
    }
}

/// Starts `spec` in `cwd`, in a new process group, with the given output and no
/// input; as `spec.user` when set (which needs root), with that user's groups. The
/// [`TaskProcess`] keeps the group and the task's marker (`spec.env`'s
/// [`TASK_MARKER`](super::launch::TASK_MARKER)): its [`wait`](TaskProcess::wait) kills
/// what the task leaves behind, its [`terminate`](TaskProcess::terminate) kills it.
///
/// ```
/// # #[tokio::main(flavor = "current_thread")] async fn main() -> std::io::Result<()> {
/// use std::process::Stdio;
/// use mesos_executor::executor::{launch::LaunchSpec, process::{spawn, Exit}};
///
/// let spec = LaunchSpec::new("/bin/sh", ["sh", "-c", "exit 3"]);
/// let mut task = spawn(&spec, std::path::Path::new("/"), Stdio::null(), Stdio::null())?;
/// let exit = task.wait().await?;
/// assert_eq!(exit.message(), "Command exited with status 3");
/// # Ok(()) }
/// ```
///
/// # Errors
/// The OS error of fork/exec (no such program, permission denied, ...), or a user that
/// does not exist or cannot be switched to.
pub fn spawn(
    spec: &LaunchSpec,
    cwd: &Path,
    stdout: impl Into<Stdio>,
    stderr: impl Into<Stdio>,
) -> io::Result<TaskProcess> {
    spawn_with(spec, cwd, Stdio::null(), stdout, stderr, &StartOptions::default())
}

/// [`spawn`] with the task's stdin and [`StartOptions`]. A task that switches user gets
/// the user's groups from the group database (`getgrouplist`, read before the fork)
/// and `options.extra_groups`, as upstream's launcher gives them. A task that switches
/// no user and asks for no terminal costs what a plain spawn does (no hook in the child).
///
/// # Errors
/// As [`spawn`]; also a user whose groups cannot be read, and a terminal that cannot be
/// the task's (`setsid` or `TIOCSCTTY` refused: not a terminal, or already the
/// controlling terminal of another session).
pub fn spawn_with(
    spec: &LaunchSpec,
    cwd: &Path,
    stdin: impl Into<Stdio>,
    stdout: impl Into<Stdio>,
    stderr: impl Into<Stdio>,
    options: &StartOptions,
) -> io::Result<TaskProcess> {
    let mut command = command_for(spec, cwd, options)?;
    command.stdin(stdin).stdout(stdout).stderr(stderr);
    let marker = spec.env.get(super::launch::TASK_MARKER).map_or("", String::as_str);
    Ok(TaskProcess::new(command.spawn()?, marker))
}

/// The command [`spawn_with`] spawns, before its standard streams are set: its program,
/// argv, environment alone, directory, process group or session, and user.
pub(crate) fn command_for(
    spec: &LaunchSpec,
    cwd: &Path,
    options: &StartOptions,
) -> io::Result<tokio::process::Command> {
    let mut command = tokio::process::Command::new(&spec.program);
    command
        .arg0(spec.argv.first().map_or(spec.program.as_str(), String::as_str))
        .args(spec.argv.iter().skip(1))
        .env_clear()
        .envs(&spec.env)
        .current_dir(cwd);
    if !options.controlling_tty {
        // With a terminal the child starts a session instead, which a group leader
        // cannot: the session's process group is the child's pid all the same.
        command.process_group(0);
    }
    let identity = identity_for(spec, &options.extra_groups)?;
    if identity.is_some() || options.controlling_tty {
        super::pre_exec::install(&mut command, identity, options.controlling_tty);
    }
    Ok(command)
}

/// Whom a process started from `spec` becomes, if it switches user (`None`: it runs as
/// this process's user, whose groups it keeps): the user's ids, and its groups from the
/// group database with `extra` added (upstream: `os::getgrouplist` and the launch info's
/// `supplementary_groups`, in `src/slave/containerizer/mesos/launch.cpp`).
///
/// ```
/// use mesos_executor::executor::{launch::LaunchSpec, process::identity_for};
/// let spec = |user: &str| {
///     let mut spec = LaunchSpec::new("/bin/true", ["true"]);
///     spec.user = Some(user.into());
///     spec
/// };
/// if nix::unistd::getuid().is_root() {
///     let nobody = identity_for(&spec("nobody"), &[4242]).unwrap().expect("root switches to nobody");
///     assert!(nobody.uid != 0 && nobody.groups.contains(&nobody.gid) && nobody.groups.contains(&4242));
///     assert_eq!(identity_for(&spec("root"), &[4242]).unwrap(), None, "our own user: no switch");
/// }
/// assert!(identity_for(&spec("no-such-user-here"), &[]).is_err());
/// ```
///
/// # Errors
/// No such user, a switch without root, the group database cannot be read, or the name
/// holds a NUL byte; naming the user.
pub fn identity_for(spec: &LaunchSpec, extra: &[u32]) -> io::Result<Option<Identity>> {
    let Some(user) = switch_to(spec)? else { return Ok(None) };
    let name = std::ffi::CString::new(user.name.as_str())
        .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, format!("user name {:?} holds a NUL", user.name)))?;
    let mut groups: Vec<u32> = nix::unistd::getgrouplist(&name, user.gid)
        .map_err(|e| io::Error::new(io::Error::from(e).kind(), format!("groups of user {:?}: {e}", user.name)))?
        .into_iter()
        .map(|g| g.as_raw())
        .collect();
    for gid in extra {
        if !groups.contains(gid) {
            groups.push(*gid);
        }
    }
    Ok(Some(Identity { uid: user.uid.as_raw(), gid: user.gid.as_raw(), groups }))
}

/// The user to switch to for `spec`, if another than ours (upstream's launcher, too,
/// changes nothing for the executor's own user).
fn switch_to(spec: &LaunchSpec) -> io::Result<Option<User>> {
    let Some(name) = &spec.user else { return Ok(None) };
    let user = User::from_name(name)
        .map_err(io::Error::from)?
        .ok_or_else(|| io::Error::new(io::ErrorKind::NotFound, format!("no such user {name:?}")))?;
    if user.uid == getuid() {
        return Ok(None);
    }
    if !getuid().is_root() {
        return Err(io::Error::new(
            io::ErrorKind::PermissionDenied,
            format!("cannot run as {name:?}: the executor is not running as root"),
        ));
    }
    Ok(Some(user))
}

/// Checks, without starting anything, what would make [`spawn`] fail: a user that does
/// not exist or cannot be switched to, a program that is not there or not executable
/// (looked up in the spec's `PATH` when it has no `/`). For starting several processes
/// all or none (a task group's start barrier).
///
/// ```
/// use mesos_executor::executor::{launch::LaunchSpec, process::preflight};
///
/// let spec = |program: &str, user: Option<&str>| {
///     let mut spec = LaunchSpec::new(program, [program]);
///     spec.env.insert("PATH".to_owned(), "/usr/bin:/bin".to_owned());
///     spec.user = user.map(Into::into);
///     spec
/// };
/// assert!(preflight(&spec("sh", None)).is_ok(), "found in PATH");
/// assert!(preflight(&spec("/no/such/program", None)).unwrap_err().to_string().contains("/no/such/program"));
/// assert!(preflight(&spec("no-such-program-anywhere", None)).is_err());
/// assert!(preflight(&spec("sh", Some("no-such-user-here"))).unwrap_err().to_string().contains("no such user"));
/// ```
///
/// # Errors
/// What is wrong, naming the user or the program.
pub fn preflight(spec: &LaunchSpec) -> io::Result<()> {
    switch_to(spec)?;
    let executable = |path: &Path| {
        use std::os::unix::fs::PermissionsExt;
        std::fs::metadata(path).is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
    };
    if spec.program.contains('/') {
        let metadata = std::fs::metadata(&spec.program)
            .map_err(|e| io::Error::new(e.kind(), format!("{:?}: {e}", spec.program)))?;
        if executable(Path::new(&spec.program)) {
            return Ok(());
        }
        let what = if metadata.is_file() { "is not executable" } else { "is not a file" };
        return Err(io::Error::new(io::ErrorKind::PermissionDenied, format!("{:?} {what}", spec.program)));
    }
    let path = spec.env.get("PATH").map_or("/usr/local/bin:/usr/bin:/bin", String::as_str);
    if path.split(':').any(|dir| executable(&Path::new(dir).join(&spec.program))) {
        return Ok(());
    }
    Err(io::Error::new(io::ErrorKind::NotFound, format!("{:?} is not in PATH ({path})", spec.program)))
}

/// How a task process ended.
///
/// ```
/// use mesos_executor::executor::process::Exit;
/// assert_eq!(Exit::Code(0).message(), "Command exited with status 0");
/// assert_eq!(Exit::Signal(9, false).message(), "Command terminated with signal Killed");
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Exit {
    /// Exited with this status.
    Code(i32),
    /// Killed by this signal, with or without a core dump.
    Signal(i32, bool),
}

impl Exit {
    /// From the OS status.
    pub fn from_status(status: ExitStatus) -> Self {
        match (status.code(), status.signal()) {
            (Some(code), _) => Exit::Code(code),
            (None, Some(signal)) => Exit::Signal(signal, status.core_dumped()),
            _ => Exit::Code(-1),
        }
    }

    /// Upstream's message: `Command exited with status N` or `Command terminated with
    /// signal <strsignal>` (reference §9.1).
    pub fn message(self) -> String {
        match self {
            Exit::Code(code) => format!("Command exited with status {code}"),
            Exit::Signal(signal, core) => {
                let core = if core { " (core dumped)" } else { "" };
                format!("Command terminated with signal {}{core}", signal_text(signal))
            }
        }
    }
}

/// The text `strsignal` gives for the common signals.
///
/// ```
/// assert_eq!(mesos_executor::executor::process::signal_text(15), "Terminated");
/// ```
pub fn signal_text(signal: i32) -> String {
    let text = match NixSignal::try_from(signal) {
        Ok(NixSignal::SIGHUP) => "Hangup",
        Ok(NixSignal::SIGINT) => "Interrupt",
        Ok(NixSignal::SIGQUIT) => "Quit",
        Ok(NixSignal::SIGILL) => "Illegal instruction",
        Ok(NixSignal::SIGTRAP) => "Trace/breakpoint trap",
        Ok(NixSignal::SIGABRT) => "Aborted",
        Ok(NixSignal::SIGBUS) => "Bus error",
        Ok(NixSignal::SIGFPE) => "Floating point exception",
        Ok(NixSignal::SIGKILL) => "Killed",
        Ok(NixSignal::SIGUSR1) => "User defined signal 1",
        Ok(NixSignal::SIGSEGV) => "Segmentation fault",
        Ok(NixSignal::SIGUSR2) => "User defined signal 2",
        Ok(NixSignal::SIGPIPE) => "Broken pipe",
        Ok(NixSignal::SIGALRM) => "Alarm clock",
        Ok(NixSignal::SIGTERM) => "Terminated",
        Ok(NixSignal::SIGXCPU) => "CPU time limit exceeded",
        Ok(NixSignal::SIGXFSZ) => "File size limit exceeded",
        _ => return format!("Unknown signal {signal}"),
    };
    text.to_owned()
}

/// Sends `signal` to a task once per process: its process group, and every process
/// carrying its marker that is outside that group (those that moved to another group
/// or session). A process in the group is not signalled again through its marker: a
/// second SIGTERM makes many programs (Go services, shell traps) skip their graceful
/// shutdown. Returns how many processes were signalled by marker.
///
/// ```
/// use mesos_executor::executor::process::{Signal, signal_task};
///
/// // No group, and no process carries this marker: nothing is signalled.
/// assert_eq!(signal_task(None, "no-such-run/no-such-task", Signal::TERM), 0);
/// ```
pub fn signal_task(pgid: Option<u32>, marker: &str, signal: Signal) -> usize {
    let signal = signal.nix();
    if let Some(pgid) = pgid {
        let _ = killpg(Pid::from_raw(pgid as i32), signal);
    }
    let wanted = format!("{}={marker}", super::launch::TASK_MARKER);
    let group = pgid.map(|g| Pid::from_raw(g as i32));
    let outside: Vec<u32> = processes_with_env(|kv| kv == wanted.as_bytes())
        .into_iter()
        .filter(|pid| group.is_none() || nix::unistd::getpgid(Some(Pid::from_raw(*pid as i32))).ok() != group)
        .collect();
    let marked = |kv: &[u8]| kv == wanted.as_bytes();
    outside.into_iter().filter(|pid| signal_if_marked(*pid, &marked, signal)).count()
}

/// Sends `signal` to `pid` if, and only if, it carries an environment entry for which
/// `marked` holds. The process is pinned first (a pidfd), then its environment read,
/// then the signal sent through the pidfd: a marked process that exits after the read,
/// its pid taken by an unrelated process, is never confused with it (a plain `kill`
/// after the read would signal the newcomer, as root). On a kernel without pidfds
/// (before 5.3): the read, then `kill`.
fn signal_if_marked(pid: u32, marked: &dyn Fn(&[u8]) -> bool, signal: NixSignal) -> bool {
    let Some(target) = i32::try_from(pid).ok().and_then(rustix::process::Pid::from_raw) else { return false };
    let pinned = match rustix::process::pidfd_open(target, rustix::process::PidfdFlags::empty()) {
        Ok(fd) => Some(fd),
        Err(rustix::io::Errno::NOSYS) => None,
        // Gone already (or not ours to see).
        Err(_) => return false,
    };
    let carries = std::fs::read(format!("/proc/{pid}/environ")).is_ok_and(|env| env.split(|b| *b == 0).any(marked));
    if !carries {
        return false;
    }
    match (pinned, rustix::process::Signal::from_named_raw(signal as i32)) {
        (Some(fd), Some(sig)) => rustix::process::pidfd_send_signal(&fd, sig).is_ok(),
        _ => kill(Pid::from_raw(target.as_raw_nonzero().get()), signal).is_ok(),
    }
}

/// Pids (not this process) whose environment has an entry for which `matches` holds.
///
/// ```
/// let pids = mesos_executor::executor::process::processes_with_env(|kv| kv == b"NO_SUCH_VARIABLE=1");
/// assert!(pids.is_empty());
/// ```
pub fn processes_with_env(matches: impl Fn(&[u8]) -> bool) -> Vec<u32> {
    let me = std::process::id();
    let Ok(dir) = std::fs::read_dir("/proc") else { return Vec::new() };
    dir.flatten()
        .filter_map(|e| e.file_name().to_str().and_then(|n| n.parse::<u32>().ok()))
        .filter(|pid| *pid != me)
        .filter(|pid| {
            std::fs::read(format!("/proc/{pid}/environ")).is_ok_and(|env| env.split(|b| *b == 0).any(&matches))
        })
        .collect()
}

/// Pids of children spawned through tokio (tasks, command health checks): tokio waits
/// for them, so the orphan reaper must leave them alone. Private: [`OwnChild`] is the
/// way in.
static OWN_CHILDREN: std::sync::LazyLock<std::sync::Mutex<HashSet<u32>>> = std::sync::LazyLock::new(Default::default);

/// A child that this process waits for itself (through tokio), registered so that
/// [`reap_orphans_now`] leaves it alone until the guard is dropped (once it has been
/// waited for). A [`TaskProcess`] holds one; register a child you spawn otherwise.
///
/// ```
/// use mesos_executor::executor::process::OwnChild;
/// let guard = OwnChild::register(4242);
/// // ... tokio waits for it ...
/// drop(guard);
/// ```
#[derive(Debug)]
pub struct OwnChild(u32);

impl OwnChild {
    /// Registers `pid`.
    pub fn register(pid: u32) -> Self {
        if let Ok(mut set) = OWN_CHILDREN.lock() {
            set.insert(pid);
        }
        OwnChild(pid)
    }
}

impl Drop for OwnChild {
    fn drop(&mut self) {
        if let Ok(mut set) = OWN_CHILDREN.lock() {
            set.remove(&self.0);
        }
    }
}

/// Reaps exited orphans that were reparented to this subreaper (call it on SIGCHLD);
/// returns how many.
///
/// ```
/// mesos_executor::executor::process::become_subreaper()?;
/// let _reaped = mesos_executor::executor::process::reap_orphans_now();
/// # Ok::<(), std::io::Error>(())
/// ```
pub fn reap_orphans_now() -> usize {
    let ours = OWN_CHILDREN.lock().map(|s| s.clone()).unwrap_or_default();
    reap_orphans(&ours)
}

/// SIGKILLs the process group `pgid`, if any.
pub(crate) fn kill_group(pgid: Option<u32>) {
    if let Some(pgid) = pgid {
        let _ = killpg(Pid::from_raw(pgid as i32), NixSignal::SIGKILL);
    }
}

/// SIGKILLs our direct children (not spawned through tokio) that carry `marker`:
/// processes of a task that left its group and whose parents died, so that they were
/// reparented to this subreaper. Cheap: reads only our children, not all of `/proc`.
/// Their own children are reparented to us as each exits, so callers repeat until a
/// search finds none after everything killed has exited ([`TaskTree::clean_up`]).
/// Returns the pids killed.
pub(crate) fn kill_escaped(marker: &str) -> Vec<u32> {
    let wanted = format!("{}={marker}", super::launch::TASK_MARKER);
    let ours = OWN_CHILDREN.lock().map(|s| s.clone()).unwrap_or_default();
    let mut killed = Vec::new();
    for pid in children() {
        if ours.contains(&pid) || is_zombie(pid) {
            continue;
        }
        if signal_if_marked(pid, &|kv| kv == wanted.as_bytes(), NixSignal::SIGKILL) {
            killed.push(pid);
        }
    }
    killed
}

/// SIGKILLs every live process (not a zombie) that carries `marker`, found in all of
/// `/proc`; returns their pids. [`kill_escaped`] for a process that is not a subreaper.
pub(crate) fn kill_marked_live(marker: &str) -> Vec<u32> {
    let wanted = format!("{}={marker}", super::launch::TASK_MARKER);
    let mut killed = Vec::new();
    let marked = |kv: &[u8]| kv == wanted.as_bytes();
    for pid in processes_with_env(marked) {
        if !is_zombie(pid) && signal_if_marked(pid, &marked, NixSignal::SIGKILL) {
            killed.push(pid);
        }
    }
    killed
}

/// Whether `pid` has exited (gone, or a zombie): its children have been handed to
/// their new parent by then.
pub(crate) fn exited(pid: u32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .map(|stat| {
            stat.rfind(')').is_some_and(|i| matches!(stat[i + 1..].trim_start().as_bytes().first(), Some(b'Z' | b'X')))
        })
        .unwrap_or(true)
}

/// Whether the process group `pgid` has a member that has not exited (a zombie has).
pub(crate) fn group_alive(pgid: u32) -> bool {
    killpg(Pid::from_raw(pgid as i32), None).is_ok() && group_members(pgid) > 0
}

/// How many members of the process group `pgid` have not exited (zombies have), from
/// `/proc/<pid>/stat`.
pub(crate) fn group_members(pgid: u32) -> usize {
    let Ok(dir) = std::fs::read_dir("/proc") else { return 0 };
    dir.flatten()
        .filter_map(|e| e.file_name().to_str().and_then(|n| n.parse::<u32>().ok()))
        .filter(|pid| {
            std::fs::read_to_string(format!("/proc/{pid}/stat")).is_ok_and(|stat| {
                // After the command name: state, ppid, pgrp.
                let mut fields = stat.rfind(')').map(|i| stat[i + 1..].split_whitespace()).into_iter().flatten();
                let live = fields.next().is_some_and(|state| state != "Z" && state != "X");
                live && fields.nth(1).and_then(|g| g.parse::<u32>().ok()) == Some(pgid)
            })
        })
        .count()
}

/// Direct children of this process (of every thread), from `/proc/self/task/*/children`;
/// a scan of `/proc` where the kernel lacks that file.
fn children() -> Vec<u32> {
    let mut out = Vec::new();
    let mut found = false;
    if let Ok(tasks) = std::fs::read_dir("/proc/self/task") {
        for task in tasks.flatten() {
            if let Ok(list) = std::fs::read_to_string(task.path().join("children")) {
                found = true;
                out.extend(list.split_whitespace().filter_map(|p| p.parse::<u32>().ok()));
            }
        }
    }
    if !found {
        let me = std::process::id();
        out = proc_table().into_iter().filter(|(_, (ppid, _))| *ppid == me).map(|(pid, _)| pid).collect();
    }
    out
}

fn is_zombie(pid: u32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .map(|stat| stat.rfind(')').is_some_and(|i| stat[i + 1..].trim_start().starts_with('Z')))
        .unwrap_or(false)
}

/// SIGKILLs every process whose task marker starts with `prefix` (all of this
/// executor's tasks when `prefix` is its nonce followed by `/`): the last word of an
/// executor that ends, and of its watchdog when it is killed.
///
/// ```
/// assert_eq!(mesos_executor::executor::process::kill_marked_with_prefix("no-such-run/"), 0);
/// ```
pub fn kill_marked_with_prefix(prefix: &str) -> usize {
    let wanted = format!("{}={prefix}", super::launch::TASK_MARKER);
    let marked = |kv: &[u8]| kv.starts_with(wanted.as_bytes());
    let pids: Vec<u32> = processes_with_env(marked)
        .into_iter()
        .filter(|pid| signal_if_marked(*pid, &marked, NixSignal::SIGKILL))
        .collect();
    pids.len()
}

/// Makes this process the reaper of its orphaned descendants (`PR_SET_CHILD_SUBREAPER`),
/// so that a task's daemonized processes stay within reach; see [`reap_orphans_now`].
///
/// # Errors
/// The kernel refused.
pub fn become_subreaper() -> io::Result<()> {
    nix::sys::prctl::set_child_subreaper(true).map_err(io::Error::from)
}

/// Reaps children that exited and that no one waits for: orphans that were reparented
/// to us. `ours` are pids spawned through tokio, which reaps them itself.
///
fn reap_orphans(ours: &HashSet<u32>) -> usize {
    // Our children only (`/proc/self/task/*/children`), not all of /proc: a burst of a
    // thousand exits must not be a thousand scans of every process on the host.
    let mut reaped = 0;
    for pid in children() {
        if !ours.contains(&pid)
            && is_zombie(pid)
            && waitpid(Pid::from_raw(pid as i32), Some(WaitPidFlag::WNOHANG)).is_ok()
        {
            reaped += 1;
        }
    }
    reaped
}

/// pid to (parent pid, is a zombie).
fn proc_table() -> HashMap<u32, (u32, bool)> {
    let mut table = HashMap::new();
    let Ok(dir) = std::fs::read_dir("/proc") else { return table };
    for entry in dir.flatten() {
        let Some(pid) = entry.file_name().to_str().and_then(|n| n.parse::<u32>().ok()) else { continue };
        let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else { continue };
        let Some(rest) = stat.rfind(')').map(|i| &stat[i + 1..]) else { continue };
        let mut fields = rest.split_whitespace();
        let zombie = fields.next() == Some("Z");
        if let Some(ppid) = fields.next().and_then(|p| p.parse().ok()) {
            table.insert(pid, (ppid, zombie));
        }
    }
    table
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_a_marked_process_is_signalled_through_its_pidfd() {
        let spawn = |marker: &str| {
            std::process::Command::new("sleep").arg("30").env("SIGNAL_IF_MARKED_TEST", marker).spawn().unwrap()
        };
        let wanted = format!("SIGNAL_IF_MARKED_TEST=yes-{}", std::process::id());
        let marked = |kv: &[u8]| kv == wanted.as_bytes();
        let mut other = spawn("no");
        let mut ours = spawn(&format!("yes-{}", std::process::id()));
        // The environment is there once the child has exec'd.
        std::thread::sleep(std::time::Duration::from_millis(100));
        assert!(!signal_if_marked(other.id(), &marked, NixSignal::SIGKILL), "unmarked");
        assert!(signal_if_marked(ours.id(), &marked, NixSignal::SIGKILL), "marked");
        assert_eq!(ours.wait().unwrap().signal(), Some(9));
        assert!(other.try_wait().unwrap().is_none(), "the unmarked one runs on");
        other.kill().unwrap();
        other.wait().unwrap();
        // Gone (reaped): nothing to pin, nothing signalled.
        assert!(!signal_if_marked(ours.id(), &marked, NixSignal::SIGKILL));
    }

    #[test]
    fn exit_messages_follow_upstream() {
        assert_eq!(Exit::Code(0).message(), "Command exited with status 0");
        assert_eq!(Exit::Code(3).message(), "Command exited with status 3");
        assert_eq!(Exit::Signal(15, false).message(), "Command terminated with signal Terminated");
        assert_eq!(Exit::Signal(9, false).message(), "Command terminated with signal Killed");
        assert_eq!(Exit::Signal(11, true).message(), "Command terminated with signal Segmentation fault (core dumped)");
        assert_eq!(signal_text(64), "Unknown signal 64");
    }

    #[tokio::test]
    async fn spawned_process_has_its_own_group_and_marker() {
        let dir = tempfile::tempdir().unwrap();
        let spec = LaunchSpec {
            program: "/bin/sh".into(),
            argv: vec!["sh".into(), "-c".into(), "echo out; echo err >&2; sleep 30".into()],
            env: [(super::super::launch::TASK_MARKER.to_owned(), "unit-test/t1".to_owned())].into_iter().collect(),
            user: None,
        };
        let stdout = std::fs::File::create(dir.path().join("stdout")).unwrap();
        let stderr = std::fs::File::create(dir.path().join("stderr")).unwrap();
        let mut task = spawn(&spec, dir.path(), stdout, stderr).unwrap();
        let pid = task.id().unwrap();
        let pgid = nix::unistd::getpgid(Some(Pid::from_raw(pid as i32))).unwrap();
        assert_eq!(pgid.as_raw() as u32, pid, "the task leads its own process group");
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        assert!(processes_with_env(|kv| kv == b"MESOS_EXECUTOR_TASK=unit-test/t1").contains(&pid));
        signal_task(Some(pid), "unit-test/t1", Signal::KILL);
        assert_eq!(task.wait().await.unwrap(), Exit::Signal(9, false));
        assert_eq!(std::fs::read_to_string(dir.path().join("stdout")).unwrap(), "out\n");
        assert_eq!(std::fs::read_to_string(dir.path().join("stderr")).unwrap(), "err\n");
    }

    #[tokio::test]
    async fn a_missing_program_is_an_os_error() {
        let dir = tempfile::tempdir().unwrap();
        let spec = LaunchSpec {
            program: "/nonexistent/prog".into(),
            argv: vec!["prog".into()],
            env: Default::default(),
            user: None,
        };
        let err = spawn(&spec, dir.path(), Stdio::null(), Stdio::null()).unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::NotFound);
    }

    #[tokio::test]
    async fn a_terminal_that_is_none_fails_the_spawn() {
        let spec =
            LaunchSpec { program: "/bin/true".into(), argv: vec!["true".into()], env: Default::default(), user: None };
        let options = StartOptions { controlling_tty: true, ..StartOptions::default() };
        let err = spawn_with(&spec, Path::new("/"), Stdio::null(), Stdio::null(), Stdio::null(), &options).unwrap_err();
        assert_eq!(err.raw_os_error(), Some(nix::libc::ENOTTY), "{err}");
    }

    #[tokio::test]
    #[ignore = "needs root: switches user"]
    async fn a_user_task_has_the_users_groups_and_the_extra_ones() {
        let spec = LaunchSpec {
            program: "/bin/sh".into(),
            argv: vec!["sh".into(), "-c".into(), "grep ^Groups: /proc/self/status".into()],
            env: Default::default(),
            user: Some("nobody".into()),
        };
        let nobody = User::from_name("nobody").unwrap().unwrap();
        let name = std::ffi::CString::new("nobody").unwrap();
        let own = nix::unistd::getgrouplist(&name, nobody.gid).unwrap();
        let options = StartOptions { extra_groups: vec![4242], ..StartOptions::default() };
        let mut task =
            spawn_with(&spec, Path::new("/"), Stdio::null(), Stdio::piped(), Stdio::null(), &options).unwrap();
        let mut stdout = task.take_stdout().unwrap();
        let mut line = String::new();
        tokio::io::AsyncReadExt::read_to_string(&mut stdout, &mut line).await.unwrap();
        task.wait().await.unwrap();
        let groups: Vec<u32> = line.split_whitespace().skip(1).map(|g| g.parse().unwrap()).collect();
        for gid in own.iter().map(|g| g.as_raw()).chain([4242]) {
            assert!(groups.contains(&gid), "{gid} missing from {line:?}");
        }
        assert!(!groups.contains(&0), "{line:?}");
    }
}
