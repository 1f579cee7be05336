//! Killing a task as upstream's built-in executors do: SIGTERM to the task (its process
//! group, and every process that carries its marker), then SIGKILL when the grace
//! period is over. The grace period comes from the KILL's policy, else the task's own,
//! else 3 s. [`TaskProcess::terminate`] is that kill; whatever the task started, in its
//! group or out of it, is killed with it.
//!
//! ```
//! # #[tokio::main(flavor = "current_thread")] async fn main() -> std::io::Result<()> {
//! use std::time::Duration;
//! use mesos_executor::executor::{launch::LaunchSpec, process::{self, Exit}};
//!
//! // A task that ignores SIGTERM: it gets SIGKILL when its 100 ms are up.
//! let mut spec = LaunchSpec::new("/bin/sh", ["sh", "-c", "trap '' TERM; sleep 30"]);
//! spec.env.insert("MESOS_EXECUTOR_TASK".to_owned(), "doc/stubborn".to_owned());
//! let mut task = process::spawn(&spec, std::path::Path::new("/tmp"), std::process::Stdio::null(), std::process::Stdio::null())?;
//! # tokio::time::sleep(Duration::from_millis(50)).await;
//! let exit = task.terminate(Duration::from_millis(100)).await?;
//! assert_eq!(exit, Exit::Signal(9, false));
//! assert_eq!(exit.message(), "Command terminated with signal Killed");
//! # Ok(()) }
//! ```

use std::{io, time::Duration};

use super::process::{Exit, Signal, TaskProcess};
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

impl TaskProcess {
    /// Kills the task: SIGTERM now to its group and its marked processes outside it
    /// ([`TaskTree::signal`](super::process::TaskTree::signal), once per process),
    /// SIGKILL if its process is still running after `grace` (at once for a zero grace),
    /// then waits for it, kills whatever it left ([`TaskProcess::wait`]) and returns how
    /// it ended. Upstream's command executor: `CommandExecutor::kill` then `escalated`
    /// (`src/launcher/executor.cpp`), with the group and escapees as its launcher kills
    /// them.
    ///
    /// # Errors
    /// The process could not be waited for.
    ///
    /// # Cancel safety
    /// Dropping the future leaves the task signalled with SIGTERM but not waited for;
    /// wait for it, or terminate it again.
    pub async fn terminate(&mut self, grace: Duration) -> io::Result<Exit> {
        if let Some(exit) = self.exit() {
            return Ok(exit);
        }
        let status = if grace.is_zero() {
            self.signal(Signal::KILL);
            self.wait_leader_forever().await?
        } else {
            self.signal(Signal::TERM);
            match self.wait_leader(grace).await? {
                Some(status) => status,
                None => {
                    self.signal(Signal::KILL);
                    self.wait_leader_forever().await?
                }
            }
        };
        self.ended(Exit::from_status(status)).await
    }
}
