//! The task process: what [`spawn`](super::process::spawn) returns. It keeps what a task
//! needs for its whole life, saved at spawn (tokio's `Child::id()` is `None` once the
//! child has been waited for): the process group it leads and the marker its processes
//! carry. [`TaskProcess::wait`] waits for the leader and then kills whatever the task
//! left behind; [`TaskProcess::terminate`] (in [`kill`](super::kill)) kills it with a
//! grace period. [`TaskTree`] is the part that signals, cheap to clone, for whoever
//! signals a task while another part of the program waits for it.
//!
//! Upstream, nothing of a task outlives it either: when a container's process ends, the
//! agent destroys the container, and the POSIX launcher kills the container's whole
//! process tree, groups and sessions included (`PosixLauncher::destroy`,
//! `src/slave/containerizer/mesos/launcher.cpp`).

use std::{
    io,
    sync::{
        Arc,
        atomic::{AtomicBool, Ordering},
    },
    time::Duration,
};

use nix::{
    sys::signal::{Signal as NixSignal, killpg},
    unistd::Pid,
};
use tokio::process::{Child, ChildStderr, ChildStdin, ChildStdout};

use super::process::{self, Exit, OwnChild};

/// A signal to send to a task: the crate's own type, so that callers need no `nix`.
///
/// ```
/// use mesos_executor::executor::process::Signal;
/// assert_eq!(Signal::TERM.as_raw(), 15);
/// assert_eq!(Signal::from_raw(9), Some(Signal::KILL));
/// assert_eq!(Signal::from_raw(0), None);
/// assert_eq!(Signal::KILL.to_string(), "SIGKILL");
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Signal(NixSignal);

impl Signal {
    /// SIGTERM: the polite request to end.
    pub const TERM: Signal = Signal(NixSignal::SIGTERM);
    /// SIGKILL: the end.
    pub const KILL: Signal = Signal(NixSignal::SIGKILL);
    /// SIGINT.
    pub const INT: Signal = Signal(NixSignal::SIGINT);
    /// SIGHUP.
    pub const HUP: Signal = Signal(NixSignal::SIGHUP);
    /// SIGQUIT.
    pub const QUIT: Signal = Signal(NixSignal::SIGQUIT);
    /// SIGUSR1.
    pub const USR1: Signal = Signal(NixSignal::SIGUSR1);
    /// SIGUSR2.
    pub const USR2: Signal = Signal(NixSignal::SIGUSR2);

    /// The signal numbered `number` on this platform, if there is one.
    pub fn from_raw(number: i32) -> Option<Signal> {
        NixSignal::try_from(number).ok().map(Signal)
    }

    /// Its number on this platform.
    pub fn as_raw(self) -> i32 {
        self.0 as i32
    }

    pub(crate) fn nix(self) -> NixSignal {
        self.0
    }
}

impl std::fmt::Display for Signal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.0.as_str())
    }
}

/// What a signal to a task reaches: the process group its process leads, and every
/// process that carries its marker outside that group. Cheap to clone; from
/// [`TaskProcess::tree`], or [`TaskTree::new`] for a task started otherwise.
///
/// Once the task's [`TaskProcess::wait`] has cleaned up, the tree no longer signals the
/// group: its id may by then name another process's group.
#[derive(Debug, Clone)]
pub struct TaskTree {
    pgid: Option<u32>,
    marker: Option<Arc<str>>,
    ended: Arc<AtomicBool>,
}

impl TaskTree {
    /// The tree of the group `pgid` (none: no group) and the processes marked `marker`
    /// (empty: none; see [`launch::TASK_MARKER`](super::launch::TASK_MARKER)).
    pub fn new(pgid: Option<u32>, marker: &str) -> Self {
        let marker = (!marker.is_empty()).then(|| Arc::from(marker));
        TaskTree { pgid, marker, ended: Arc::new(AtomicBool::new(false)) }
    }

    /// The process group: the leader's pid, saved at spawn.
    pub fn pgid(&self) -> Option<u32> {
        self.pgid.filter(|_| !self.ended.load(Ordering::Acquire))
    }

    /// The task's marker.
    pub fn marker(&self) -> Option<&str> {
        self.marker.as_deref()
    }

    /// Sends `signal` once to every process of the task: its group, and the marked
    /// processes outside it ([`process::signal_task`]). Returns how many processes were
    /// signalled: the group's live members (counted just before) and the marked ones
    /// outside it.
    pub fn signal(&self, signal: Signal) -> usize {
        let group = self.pgid();
        let in_group = group.map_or(0, process::group_members);
        let outside = match &self.marker {
            Some(marker) => process::signal_task(group, marker, signal),
            None => {
                if let Some(pgid) = group {
                    let _ = killpg(Pid::from_raw(pgid as i32), signal.nix());
                }
                0
            }
        };
        in_group.saturating_add(outside)
    }

    /// SIGKILLs whatever is left of the task: its group, then the marked processes
    /// outside it, again until a round finds none and everything killed has exited
    /// (a process hands its children to their new parent only as it exits, so a search
    /// made while a killed parent is still dying would miss what it left), for at most
    /// [`CLEAN_UP_DEADLINE`], 5 ms between rounds. As a child subreaper
    /// ([`process::become_subreaper`]), the marked processes are looked for among this
    /// process's own children, where orphans land, which is cheap; otherwise in all of
    /// `/proc`. Returns how many marked processes outside the group it killed.
    ///
    /// What it cannot find: a process that has dropped the task's marker from its
    /// environment (`env -i`) and left the group (`setsid`), as upstream's POSIX
    /// launcher's `os::killtree` cannot; cgroups would.
    pub async fn clean_up(&self) -> usize {
        let group = self.pgid();
        if let Some(pgid) = group {
            let _ = killpg(Pid::from_raw(pgid as i32), NixSignal::SIGKILL);
        }
        let Some(marker) = &self.marker else { return 0 };
        let subreaper = nix::sys::prctl::get_child_subreaper().unwrap_or(false);
        let deadline = tokio::time::Instant::now() + CLEAN_UP_DEADLINE;
        let mut killed = 0usize;
        let mut dying: Vec<u32> = Vec::new();
        loop {
            // Settled before the search: everything killed had exited (and handed its
            // children on) before the search began, so the search saw them all.
            dying.retain(|pid| !process::exited(*pid));
            let group_alive = group.is_some_and(process::group_alive);
            let settled = dying.is_empty() && !group_alive;
            let found = if subreaper { process::kill_escaped(marker) } else { process::kill_marked_live(marker) };
            if found.is_empty() && settled {
                break;
            }
            killed = killed.saturating_add(found.len());
            dying.extend(found);
            if tokio::time::Instant::now() >= deadline {
                tracing::warn!(marker = &**marker, "task processes still running at the end of the clean-up");
                break;
            }
            if let Some(pgid) = group.filter(|_| group_alive) {
                // Forked in the group since the last SIGKILL.
                let _ = killpg(Pid::from_raw(pgid as i32), NixSignal::SIGKILL);
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        killed
    }

    /// No more signals to the group: its leader has been waited for and the group killed.
    fn end(&self) {
        self.ended.store(true, Ordering::Release);
    }
}

/// Longest [`TaskTree::clean_up`]: it ends earlier, as soon as nothing of the task is
/// left; a chain of daemonized processes loses one generation a round (5 ms).
pub const CLEAN_UP_DEADLINE: Duration = Duration::from_secs(2);

/// A task's process, started by [`spawn`](super::process::spawn) in a process group of
/// its own with its marker: wait for it with [`wait`](Self::wait), kill it with
/// [`terminate`](Self::terminate). Until it has been waited for, the orphan reaper
/// ([`process::reap_orphans_now`]) leaves it alone.
///
/// Dropping it neither kills nor waits for the process.
///
/// ```
/// # #[tokio::main(flavor = "current_thread")] async fn main() -> std::io::Result<()> {
/// use mesos_executor::executor::{launch::{LaunchSpec, TASK_MARKER}, process::{self, Exit}};
///
/// // A task that leaves a process behind and exits 0.
/// let pid_file = std::env::temp_dir().join(format!("doc-leftover-{}", std::process::id()));
/// let mut spec = LaunchSpec::new("/bin/sh", ["sh", "-c", r#"sleep 30 & echo $! > "$1""#, "sh", pid_file.to_str().unwrap()]);
/// spec.env.insert(TASK_MARKER.to_owned(), format!("doc/leftover-{}", std::process::id()));
/// let mut task = process::spawn(&spec, std::path::Path::new("/"), std::process::Stdio::null(), std::process::Stdio::null())?;
/// assert_eq!(task.wait().await?, Exit::Code(0));
/// // The leftover `sleep` is dead by now (at most a zombie until its parent reaps it).
/// let pid = std::fs::read_to_string(&pid_file)?;
/// std::fs::remove_file(&pid_file)?;
/// let stat = std::fs::read_to_string(format!("/proc/{}/stat", pid.trim())).unwrap_or_default();
/// assert!(stat.is_empty() || stat.contains(") Z"), "{stat}");
/// # Ok(()) }
/// ```
#[derive(Debug)]
pub struct TaskProcess {
    child: Child,
    pid: Option<u32>,
    tree: TaskTree,
    /// Registered as our own child until it has been waited for.
    own: Option<OwnChild>,
    exit: Option<Exit>,
}

impl TaskProcess {
    /// Wraps a child just spawned as the leader of its own process group, whose
    /// processes carry `marker`.
    pub(crate) fn new(child: Child, marker: &str) -> Self {
        let pid = child.id();
        let own = pid.map(OwnChild::register);
        TaskProcess { child, pid, tree: TaskTree::new(pid, marker), own, exit: None }
    }

    /// The leader's pid, which is also the task's process group id; saved at spawn, so
    /// it stays known after the process has been waited for.
    pub fn id(&self) -> Option<u32> {
        self.pid
    }

    /// Signals the task ([`TaskTree::signal`]).
    pub fn signal(&self, signal: Signal) -> usize {
        self.tree.signal(signal)
    }

    /// The task's [`TaskTree`], to signal it from elsewhere while this waits.
    pub fn tree(&self) -> TaskTree {
        self.tree.clone()
    }

    /// Takes the task's stdin, if it was piped.
    pub fn take_stdin(&mut self) -> Option<ChildStdin> {
        self.child.stdin.take()
    }

    /// Takes the task's stdout, if it was piped.
    pub fn take_stdout(&mut self) -> Option<ChildStdout> {
        self.child.stdout.take()
    }

    /// Takes the task's stderr, if it was piped.
    pub fn take_stderr(&mut self) -> Option<ChildStderr> {
        self.child.stderr.take()
    }

    /// Waits for the task's process to exit, then kills what it left behind
    /// ([`TaskTree::clean_up`]: its group, and its marked processes that left the group),
    /// and returns how the process ended. When it returns, nothing of the task runs that
    /// carries its marker or stayed in its group (see [`TaskTree::clean_up`] for what escapes).
    /// Called again, it returns the same exit.
    ///
    /// # Errors
    /// The process could not be waited for.
    ///
    /// # Cancel safety
    /// Cancel-safe while waiting for the leader; dropped during the clean-up, some
    /// leftovers may survive (call it again, or [`TaskTree::clean_up`]).
    pub async fn wait(&mut self) -> io::Result<Exit> {
        if let Some(exit) = self.exit {
            return Ok(exit);
        }
        let status = self.child.wait().await?;
        self.ended(Exit::from_status(status)).await
    }

    /// The leader has ended with `exit`: clean up, and remember it.
    pub(crate) async fn ended(&mut self, exit: Exit) -> io::Result<Exit> {
        self.own = None;
        let killed = self.tree.clean_up().await;
        if killed > 0 {
            tracing::info!(killed, pid = self.pid, "killed processes the task left outside its group");
        }
        self.tree.end();
        self.exit = Some(exit);
        Ok(exit)
    }

    /// Waits for the leader with a deadline: `None` if it still runs after `timeout`.
    pub(crate) async fn wait_leader(&mut self, timeout: Duration) -> io::Result<Option<std::process::ExitStatus>> {
        match tokio::time::timeout(timeout, self.child.wait()).await {
            Ok(status) => status.map(Some),
            Err(_) => Ok(None),
        }
    }

    /// Waits for the leader, without a deadline.
    pub(crate) async fn wait_leader_forever(&mut self) -> io::Result<std::process::ExitStatus> {
        self.child.wait().await
    }

    /// How the process ended, if [`wait`](Self::wait) or [`terminate`](Self::terminate)
    /// has returned.
    pub fn exit(&self) -> Option<Exit> {
        self.exit
    }
}

#[cfg(test)]
mod tests {
    use std::{path::Path, process::Stdio};

    use super::*;
    use crate::executor::{
        launch::{LaunchSpec, TASK_MARKER},
        process::spawn,
    };

    /// Live (not zombie) processes whose command line holds `needle`.
    fn running(needle: &str) -> Vec<u32> {
        let Ok(dir) = std::fs::read_dir("/proc") else { return Vec::new() };
        dir.flatten()
            .filter_map(|e| e.file_name().to_str().and_then(|n| n.parse::<u32>().ok()))
            .filter(|pid| {
                let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
                let zombie = stat.rfind(')').is_some_and(|i| stat[i + 1..].trim_start().starts_with('Z'));
                let cmdline = std::fs::read(format!("/proc/{pid}/cmdline")).unwrap_or_default();
                !zombie && String::from_utf8_lossy(&cmdline).replace('\0', " ").contains(needle)
            })
            .collect()
    }

    fn task(script: &str, marker: &str) -> LaunchSpec {
        LaunchSpec {
            program: "/bin/sh".into(),
            argv: vec!["sh".into(), "-c".into(), script.into()],
            env: [(TASK_MARKER.to_owned(), marker.to_owned()), ("PATH".to_owned(), "/usr/bin:/bin".to_owned())].into(),
            user: None,
        }
    }

    /// Seconds no other test sleeps, to find a test's own processes by.
    fn unique(n: u32) -> String {
        let nanos = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.subsec_nanos());
        format!("{}.{nanos:09}", 800 + n)
    }

    /// Issue 21 item 1: a task that exits 0 after starting a background process in its
    /// group and a daemon out of it (a session of its own, with a child) leaves nothing
    /// running once `wait` returns.
    #[tokio::test]
    async fn wait_kills_what_a_finished_task_left() {
        let (in_group, escaped, grandchild) = (unique(1), unique(2), unique(3));
        let script =
            format!("sleep {in_group} & setsid sh -c 'sleep {grandchild} & sleep {escaped}' & sleep 0.2; exit 0");
        let mut process =
            spawn(&task(&script, "unit-test/leftovers"), Path::new("/"), Stdio::null(), Stdio::null()).unwrap();
        let pid = process.id();
        assert_eq!(process.wait().await.unwrap(), Exit::Code(0));
        let left: Vec<_> = [&in_group, &escaped, &grandchild].into_iter().flat_map(|m| running(m)).collect();
        // Nothing of the test's must outlive it, even when it fails.
        crate::executor::process::kill_marked_with_prefix("unit-test/leftovers");
        assert!(left.is_empty(), "left running: {left:?}");
        assert_eq!(process.id(), pid, "the pid is kept after the wait");
        assert_eq!(process.tree().pgid(), None, "no signal to a group that may be another's now");
        assert_eq!(process.wait().await.unwrap(), Exit::Code(0), "a second wait has the same exit");
    }

    /// `terminate` kills the group and the escapees, with one SIGTERM each: a process
    /// that counts its SIGTERMs exits with their number.
    #[tokio::test]
    async fn terminate_signals_once_and_kills_escapees() {
        let escaped = unique(4);
        let script =
            format!("setsid sleep {escaped} & n=0; trap 'n=$((n+1))' TERM; sleep 0.3 & wait; sleep 0.1; exit $n");
        let mut process =
            spawn(&task(&script, "unit-test/terminate"), Path::new("/"), Stdio::null(), Stdio::null()).unwrap();
        tokio::time::sleep(Duration::from_millis(100)).await;
        let exit = process.terminate(Duration::from_secs(2)).await.unwrap();
        let left = running(&escaped);
        crate::executor::process::kill_marked_with_prefix("unit-test/terminate");
        assert_eq!(exit, Exit::Code(1), "one SIGTERM");
        assert!(left.is_empty(), "left running: {left:?}");
    }

    #[tokio::test]
    async fn signal_counts_the_group_and_the_marked_processes_outside_it() {
        let marker = format!("unit-test/count-{}", std::process::id());
        let script = "sleep 30 & setsid sleep 31 & wait";
        let mut task = spawn(&task(script, &marker), Path::new("/"), Stdio::null(), Stdio::null()).unwrap();
        // The shell, its sleep in the group, and the one that left it.
        for _ in 0..100 {
            if process::group_members(task.id().unwrap()) == 2 && running("sleep 31").len() == 1 {
                break;
            }
            tokio::time::sleep(std::time::Duration::from_millis(10)).await;
        }
        assert_eq!(task.signal(Signal::KILL), 3);
        task.wait().await.unwrap();
    }

    #[test]
    fn a_tree_without_group_or_marker_signals_nothing() {
        let tree = TaskTree::new(None, "");
        assert_eq!(tree.signal(Signal::TERM), 0);
        assert_eq!(tree.marker(), None);
    }
}
