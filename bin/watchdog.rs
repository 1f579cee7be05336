//! The watchdog: a second, tiny process of the daemon that outlives it only to clean
//! up. It asks the kernel for SIGTERM when the daemon dies (`PR_SET_PDEATHSIG`), and
//! then SIGKILLs every process carrying this daemon's task marker, so that even a
//! SIGKILL of the daemon leaves no task process behind; and removes the files the daemon
//! would have removed at exit (its metrics file in a shared directory, its socket).

use std::time::Duration;

use nix::{
    sys::signal::{SigSet, Signal},
    unistd::{Pid, getppid},
};

/// The watchdog's `argv[0]`, as `ps` shows it.
pub const NAME: &str = "mesos-executor-watchdog";

/// Its `comm` (15 bytes at most).
const COMM: &std::ffi::CStr = c"mesos-watchdog";

/// Runs the watchdog for the daemon `parent`, whose task markers start with `prefix`,
/// and whose files `remove` go with it.
pub fn run(parent: u32, prefix: &str, remove: &[std::path::PathBuf]) -> std::process::ExitCode {
    // Best effort: a watchdog with its default name still works.
    let _ = nix::sys::prctl::set_name(COMM);
    let mut signals = SigSet::empty();
    for signal in [Signal::SIGTERM, Signal::SIGINT, Signal::SIGHUP] {
        signals.add(signal);
    }
    // Block them first, then ask for the parent-death signal, then check the parent:
    // no death can slip between the three steps.
    if signals.thread_block().is_err() || nix::sys::prctl::set_pdeathsig(Signal::SIGTERM).is_err() {
        return std::process::ExitCode::from(70);
    }
    let parent = Pid::from_raw(parent as i32);
    while getppid() == parent {
        // A signal while the daemon lives (say, to the whole process group) is ignored:
        // the daemon does its own cleanup then.
        let _ = signals.wait();
    }
    // The daemon is gone: its tasks go too. Forks racing the scan are caught by a few
    // more rounds.
    for _ in 0..10 {
        if mesos_executor::executor::process::kill_marked_with_prefix(prefix) == 0 {
            break;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    for path in remove {
        crate::host_metrics::remove(path);
    }
    std::process::ExitCode::SUCCESS
}
