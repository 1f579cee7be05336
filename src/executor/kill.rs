//! Killing a task as upstream's built-in executors do: SIGTERM to the task (its process
//! group, and every process that carries its marker), then SIGKILL when the grace
//! period is over. The grace period comes from the KILL's policy, else the task's own,
//! else 3 s.
//!
//! ```
//! # #[tokio::main(flavor = "current_thread")] async fn main() -> std::io::Result<()> {
//! use std::time::Duration;
//! use mesos_executor::executor::{kill, launch::LaunchSpec, process::{self, Exit}};
//!
//! // A task that ignores SIGTERM: it gets SIGKILL when its 100 ms are up.
//! let spec = LaunchSpec {
//!     program: "/bin/sh".into(),
//!     argv: vec!["sh".into(), "-c".into(), "trap '' TERM; sleep 30".into()],
//!     env: [("MESOS_EXECUTOR_TASK".to_owned(), "doc/stubborn".to_owned())].into(),
//!     user: None,
//! };
//! let mut child = process::spawn(&spec, std::path::Path::new("/tmp"), std::process::Stdio::null(), std::process::Stdio::null())?;
//! # tokio::time::sleep(Duration::from_millis(50)).await;
//! let exit = kill::terminate(&mut child, "doc/stubborn", Duration::from_millis(100)).await?;
//! assert_eq!(exit, Exit::Signal(9, false));
//! assert_eq!(exit.message(), "Command terminated with signal Killed");
//! # Ok(()) }
//! ```

use std::{io, time::Duration};

use nix::sys::signal::Signal;

use super::process::{self, Exit};
use crate::proto::v1::{DurationInfo, KillPolicy};

/// Upstream built-in executors' default kill grace period.
pub const DEFAULT_KILL_GRACE: Duration = Duration::from_secs(3);

/// A duration from the wire (a grace period, `max_completion_time`); a negative one
/// reads as zero.
pub fn duration_of(d: &DurationInfo) -> Duration {
    Duration::from_nanos(u64::try_from(d.nanoseconds).unwrap_or(0))
}

/// A policy's grace period; a negative one (from the wire) reads as zero.
pub fn policy_grace(policy: &KillPolicy) -> Option<Duration> {
    policy.grace_period.as_ref().map(duration_of)
}

/// The grace period of a kill: the KILL event's policy, else the task's
/// (`TaskInfo.kill_policy`), else [`DEFAULT_KILL_GRACE`].
///
/// ```
/// use std::time::Duration;
/// use mesos_executor::{executor::kill::grace_period, proto::v1::{DurationInfo, KillPolicy}};
///
/// let policy = |ms: i64| KillPolicy { grace_period: Some(DurationInfo { nanoseconds: ms * 1_000_000 }) };
/// assert_eq!(grace_period(Some(&policy(500)), Some(&policy(2000))), Duration::from_millis(500));
/// assert_eq!(grace_period(None, Some(&policy(2000))), Duration::from_secs(2));
/// assert_eq!(grace_period(None, None), Duration::from_secs(3));
/// assert_eq!(grace_period(Some(&policy(-1)), None), Duration::ZERO);
/// ```
pub fn grace_period(kill: Option<&KillPolicy>, task: Option<&KillPolicy>) -> Duration {
    kill.and_then(policy_grace).or_else(|| task.and_then(policy_grace)).unwrap_or(DEFAULT_KILL_GRACE)
}

/// Kills the task whose process is `child` (started with [`process::spawn`], so the
/// leader of its own process group) and whose marker is `marker`: SIGTERM now, SIGKILL
/// if it is still running after `grace`, then waits for it and returns how it ended.
/// Whatever it left in its group is SIGKILLed at the end.
///
/// # Errors
/// The child could not be waited for.
///
/// # Cancel safety
/// Dropping the future leaves the child signalled with SIGTERM but not waited for; wait
/// for it, or kill it, yourself.
pub async fn terminate(child: &mut tokio::process::Child, marker: &str, grace: Duration) -> io::Result<Exit> {
    let pid = child.id();
    if grace.is_zero() {
        process::signal_task(pid, marker, Signal::SIGKILL);
    } else {
        process::signal_task(pid, marker, Signal::SIGTERM);
    }
    let status = match tokio::time::timeout(grace, child.wait()).await {
        Ok(status) => status?,
        Err(_) => {
            process::signal_task(pid, marker, Signal::SIGKILL);
            child.wait().await?
        }
    };
    process::kill_group(pid);
    Ok(Exit::from_status(status))
}
