//! Why an executor shuts down, and how a driver ended: what [`Executor::shutdown`]
//! learns and what [`ExecutorDriver::run`] returns, so that a `main` can turn it into
//! an exit code without guessing.
//!
//! [`Executor::shutdown`]: crate::Executor::shutdown
//! [`ExecutorDriver::run`]: crate::ExecutorDriver::run

use std::{fmt, process::ExitCode};

use super::DriverStatus;

/// Why the executor is asked to shut down.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum ShutdownReason {
    /// The agent sent SHUTDOWN (the framework or an operator is done with us).
    AgentShutdown,
    /// The agent was lost after we had subscribed: the framework does not checkpoint,
    /// or the agent did not come back within `MESOS_RECOVERY_TIMEOUT`.
    AgentLost,
    /// The agent was never reached: the first subscription did not succeed in time
    /// (refused or unanswered connections, a name that does not resolve, 503 throughout).
    AgentUnreachable,
    /// The agent refused the subscription with an answer a retry cannot change (401,
    /// 403, 400, ...).
    Refused,
    /// The executor's own process asked for it with [`DriverHandle::request_shutdown`]
    /// (the daemon does on SIGTERM or SIGINT).
    ///
    /// [`DriverHandle::request_shutdown`]: crate::DriverHandle::request_shutdown
    Requested,
}

impl ShutdownReason {
    /// Whether an executor ending for this reason ended normally: the agent or our own
    /// process wanted it, rather than the agent being lost or refusing us.
    pub fn is_normal(self) -> bool {
        matches!(self, ShutdownReason::AgentShutdown | ShutdownReason::Requested)
    }
}

impl fmt::Display for ShutdownReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            ShutdownReason::AgentShutdown => "the agent sent SHUTDOWN",
            ShutdownReason::AgentLost => "the agent was lost",
            ShutdownReason::AgentUnreachable => "the agent was never reached",
            ShutdownReason::Refused => "the agent refused the subscription",
            ShutdownReason::Requested => "shutdown was requested by the executor's process",
        })
    }
}

/// How a driver ended: its final status and, if the executor was asked to shut down,
/// why.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[must_use = "an outcome says whether the executor succeeded"]
#[non_exhaustive]
pub struct DriverOutcome {
    /// [`DriverStatus::Stopped`] after [`DriverHandle::stop`](crate::DriverHandle::stop);
    /// [`DriverStatus::Aborted`] after an abort, or when the shutdown grace period
    /// passed without a stop.
    pub status: DriverStatus,
    /// Why the executor was asked to shut down; `None` when it stopped of its own
    /// accord (a command executor whose task is done).
    pub reason: Option<ShutdownReason>,
    /// Updates still unacknowledged when the driver ended. An executor that stopped of
    /// its own accord with some (the agent never acknowledged its terminal update within
    /// the stop timeout) did not succeed, as upstream's command executor exits 1 then;
    /// after SHUTDOWN they do not count (a framework being torn down is not
    /// acknowledged).
    pub unacknowledged: usize,
}

impl DriverOutcome {
    /// An outcome, as the driver makes one: for an executor's tests of what it does
    /// with each (its exit code, say).
    ///
    /// ```
    /// use mesos_executor::{DriverOutcome, DriverStatus, ShutdownReason};
    /// assert!(DriverOutcome::new(DriverStatus::Stopped, None, 0).is_success());
    /// assert!(!DriverOutcome::new(DriverStatus::Stopped, Some(ShutdownReason::AgentLost), 0).is_success());
    /// ```
    pub fn new(status: DriverStatus, reason: Option<ShutdownReason>, unacknowledged: usize) -> Self {
        DriverOutcome { status, reason, unacknowledged }
    }

    /// A normal end: stopped, not because the agent was lost or refused us, and, when
    /// the executor stopped of its own accord, with every update acknowledged.
    pub fn is_success(&self) -> bool {
        let acknowledged = self.reason.is_some() || self.unacknowledged == 0;
        self.status == DriverStatus::Stopped && self.reason.is_none_or(ShutdownReason::is_normal) && acknowledged
    }

    /// 0 for success, 1 otherwise (the agent lost, never reached or refusing us, or the
    /// driver aborted), as the daemon exits.
    pub fn exit_code(&self) -> ExitCode {
        if self.is_success() { ExitCode::SUCCESS } else { ExitCode::FAILURE }
    }
}

impl fmt::Display for DriverOutcome {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.reason {
            Some(reason) => write!(f, "{:?} ({reason})", self.status),
            None => write!(f, "{:?}", self.status),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn success_needs_a_stop_and_a_normal_reason() {
        let outcome = |status, reason| DriverOutcome { status, reason, unacknowledged: 0 };
        assert!(outcome(DriverStatus::Stopped, None).is_success());
        assert!(outcome(DriverStatus::Stopped, Some(ShutdownReason::AgentShutdown)).is_success());
        assert!(outcome(DriverStatus::Stopped, Some(ShutdownReason::Requested)).is_success());
        for bad in [ShutdownReason::AgentLost, ShutdownReason::AgentUnreachable, ShutdownReason::Refused] {
            assert!(!outcome(DriverStatus::Stopped, Some(bad)).is_success(), "{bad:?}");
        }
        assert!(!outcome(DriverStatus::Aborted, Some(ShutdownReason::AgentShutdown)).is_success());
        assert!(!outcome(DriverStatus::Aborted, None).is_success());
        let unacked = |reason| DriverOutcome { status: DriverStatus::Stopped, reason, unacknowledged: 1 };
        assert!(!unacked(None).is_success(), "stopped on its own with its terminal update unacknowledged");
        assert!(unacked(Some(ShutdownReason::AgentShutdown)).is_success(), "a torn-down framework acks nothing");
    }
}
