//! The driver's life as a pure state machine: which phase it is in, what every input
//! does to it at a given `now`, and what the session task must do about it. Nothing
//! here touches a socket, a clock or the executor, so every interleaving is a unit
//! test.
//!
//! # Phases
//! - [`Phase::Connecting`]: no attempt in flight; the next SUBSCRIBE goes out at `at`.
//! - [`Phase::Subscribing`]: a SUBSCRIBE is in flight (name resolution, connect, TLS,
//!   the response head); it is abandoned at its deadline.
//! - [`Phase::Subscribed`]: the event stream is live.
//! - [`Phase::Offline`]: we gave up on the agent; no more attempts. The executor is
//!   shutting down and the driver waits for its stop or the grace period.
//! - [`Phase::Ended`]: the driver is over; the outcome says how.
//!
//! While connecting or subscribing the driver may also be *recovering*: a deadline
//! (`MESOS_RECOVERY_TIMEOUT`) past which it gives up. Two orthogonal timers can run
//! in any phase: the shutdown grace period (started when the executor is told to shut
//! down) and the stop timeout (started when it stops with updates unacknowledged).
//!
//! # Rules (reference §7.3, upstream `src/executor/executor.cpp`)
//! - Without checkpointing there is no retry: a failed first attempt or a lost stream
//!   shuts the executor down, as upstream.
//! - With checkpointing, a lost stream starts the recovery deadline and attempts follow
//!   the [`RetryBackoff`]; a successful SUBSCRIBE ends the recovery. Upstream gives up
//!   when the very first connection fails even with checkpointing; we retry within the
//!   recovery timeout from the start instead, so an executor started during an agent
//!   restart is not lost.
//! - Every attempt has a deadline: `attempt_timeout`, and never past the recovery
//!   deadline. An attempt that hangs is abandoned at it, so the recovery timeout holds
//!   against an agent that accepts connections and never answers.
//! - An answer a retry cannot change (401, 403, 400, ...) is reported to the executor
//!   as an error and shuts it down at once; it is never retried.
//! - The executor is told to shut down once per life, with the first reason; a later
//!   SHUTDOWN or request neither repeats it nor extends the grace period. If the grace
//!   period passes before the executor stops the driver, the driver ends itself
//!   (aborted), as upstream's self-termination.
//! - A stop ends the driver once every update is acknowledged, at the stop timeout, or
//!   at once when nothing can be delivered any more (no updates pending, or offline).

use std::time::{Duration, Instant};

use super::{
    DriverStatus,
    backoff::RetryBackoff,
    outcome::{DriverOutcome, ShutdownReason},
};

/// The fixed parameters of the rules.
#[derive(Debug, Clone)]
pub(crate) struct Rules {
    /// `MESOS_CHECKPOINT`: whether to retry at all.
    pub checkpoint: bool,
    /// `MESOS_RECOVERY_TIMEOUT`.
    pub recovery_timeout: Duration,
    /// Longest one SUBSCRIBE attempt may take, from name resolution to the response head.
    pub attempt_timeout: Duration,
    /// `MESOS_EXECUTOR_SHUTDOWN_GRACE_PERIOD`.
    pub shutdown_grace: Duration,
    /// How long a stop waits for acknowledgements.
    pub stop_timeout: Duration,
    /// How long a stop waits for them once the executor was told to shut down.
    pub shutdown_ack_timeout: Duration,
}

/// Where the driver is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Phase {
    /// Not started yet.
    Idle,
    /// The next SUBSCRIBE goes out at `at`.
    Connecting { at: Instant },
    /// A SUBSCRIBE is in flight, abandoned at `deadline`.
    Subscribing { deadline: Instant },
    /// The event stream is live.
    Subscribed,
    /// Gave up on the agent; waiting for the executor to stop.
    Offline,
    /// Over.
    Ended(DriverOutcome),
}

/// What happened.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Input {
    /// The driver starts.
    Start,
    /// Time passed (a deadline may be due).
    Tick,
    /// The SUBSCRIBE in flight was answered 200: the stream is live.
    Subscribed,
    /// The SUBSCRIBE in flight failed.
    AttemptFailed { retryable: bool, error: String },
    /// The live stream ended or broke.
    Disconnected { why: String },
    /// The agent sent SHUTDOWN.
    AgentShutdown,
    /// Our own process asked for a shutdown (a signal in the daemon).
    ShutdownRequested,
    /// The executor stopped the driver; `unacked` updates are still pending.
    Stop { unacked: usize },
    /// An acknowledgement arrived; `unacked` updates are still pending.
    Acknowledged { unacked: usize },
    /// End at once.
    Abort,
}

/// What the session must do, in order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Action {
    /// Send SUBSCRIBE (the phase holds its deadline).
    Subscribe,
    /// Drop the SUBSCRIBE in flight: its deadline passed.
    CancelAttempt,
    /// Call `Executor::disconnected`.
    NotifyDisconnected,
    /// Call `Executor::error` (an answer no retry can change).
    NotifyError(String),
    /// Log that we gave up on the agent, and why.
    GaveUp { reason: ShutdownReason, why: String },
    /// Call `Executor::shutdown` with the reason.
    NotifyShutdown(ShutdownReason),
    /// The driver is over: drop the stream and calls, return the outcome.
    End(DriverOutcome),
}

/// The state machine.
#[derive(Debug)]
pub(crate) struct Lifecycle {
    rules: Rules,
    backoff: RetryBackoff,
    phase: Phase,
    /// Give up when still not subscribed at this time.
    recovery_deadline: Option<Instant>,
    ever_subscribed: bool,
    /// Why the executor was told to shut down, or why we gave up; the first one counts.
    reason: Option<ShutdownReason>,
    /// End (aborted) at this time unless stopped: the shutdown grace period.
    grace_deadline: Option<Instant>,
    /// End (stopped) at this time even with updates unacknowledged.
    stop_deadline: Option<Instant>,
    /// Updates unacknowledged, as of the stop and each acknowledgement after it.
    unacked: usize,
}

impl Lifecycle {
    pub fn new(rules: Rules, backoff: RetryBackoff) -> Self {
        Lifecycle {
            rules,
            backoff,
            phase: Phase::Idle,
            recovery_deadline: None,
            ever_subscribed: false,
            reason: None,
            grace_deadline: None,
            stop_deadline: None,
            unacked: 0,
        }
    }

    #[cfg(test)]
    pub fn phase(&self) -> &Phase {
        &self.phase
    }

    /// Whether a SUBSCRIBE succeeded before (the next one is a resubscription).
    pub fn ever_subscribed(&self) -> bool {
        self.ever_subscribed
    }

    /// The earliest time at which a [`Input::Tick`] can change anything.
    pub fn next_wakeup(&self) -> Option<Instant> {
        let phase = match self.phase {
            Phase::Ended(_) => return None,
            Phase::Connecting { at } => Some(at),
            Phase::Subscribing { deadline } => Some(deadline),
            _ => None,
        };
        [phase, self.grace_deadline, self.stop_deadline].into_iter().flatten().min()
    }

    /// Applies `input` at `now` and returns what to do.
    pub fn step(&mut self, input: Input, now: Instant) -> Vec<Action> {
        let mut actions = Vec::new();
        if matches!(self.phase, Phase::Ended(_)) {
            return actions;
        }
        match input {
            Input::Start => {
                if self.phase == Phase::Idle {
                    self.phase = Phase::Connecting { at: now };
                    if self.rules.checkpoint {
                        self.recovery_deadline = Some(now + self.rules.recovery_timeout);
                    }
                }
            }
            Input::Tick => {}
            Input::Subscribed => {
                if matches!(self.phase, Phase::Subscribing { .. }) {
                    self.phase = Phase::Subscribed;
                    self.recovery_deadline = None;
                    self.ever_subscribed = true;
                    self.backoff.reset();
                }
            }
            Input::AttemptFailed { retryable, error } => {
                if matches!(self.phase, Phase::Subscribing { .. }) {
                    self.attempt_failed(now, retryable, error, &mut actions);
                }
            }
            Input::Disconnected { why } => {
                if self.phase == Phase::Subscribed {
                    actions.push(Action::NotifyDisconnected);
                    if self.rules.checkpoint {
                        self.recovery_deadline = Some(now + self.rules.recovery_timeout);
                        self.phase = Phase::Connecting { at: self.backoff.next_attempt(now) };
                    } else {
                        let why = format!("{why}, and the framework does not checkpoint");
                        self.give_up(now, ShutdownReason::AgentLost, why, &mut actions);
                    }
                }
            }
            Input::AgentShutdown => self.shut_down(now, ShutdownReason::AgentShutdown, &mut actions),
            Input::ShutdownRequested => self.shut_down(now, ShutdownReason::Requested, &mut actions),
            Input::Stop { unacked } => {
                self.unacked = unacked;
                if unacked == 0 || self.phase == Phase::Offline || self.phase == Phase::Idle {
                    self.end(DriverStatus::Stopped, &mut actions);
                } else if self.stop_deadline.is_none() {
                    // Upstream's command executor: 60 s for the terminal update's
                    // acknowledgement on its own; about a second after SHUTDOWN, whose
                    // agent may be tearing the framework down and acknowledge nothing.
                    let wait = match self.reason {
                        Some(_) => self.rules.shutdown_ack_timeout.min(self.rules.stop_timeout),
                        None => self.rules.stop_timeout,
                    };
                    self.stop_deadline = Some(now + wait);
                }
            }
            Input::Acknowledged { unacked } => {
                self.unacked = unacked;
                if unacked == 0 && self.stop_deadline.is_some() {
                    self.end(DriverStatus::Stopped, &mut actions);
                }
            }
            Input::Abort => self.end(DriverStatus::Aborted, &mut actions),
        }
        self.advance(now, &mut actions);
        actions
    }

    /// Fires whatever is due at `now`.
    fn advance(&mut self, now: Instant, actions: &mut Vec<Action>) {
        loop {
            if matches!(self.phase, Phase::Ended(_)) {
                return;
            }
            if self.grace_deadline.is_some_and(|d| now >= d) {
                return self.end(DriverStatus::Aborted, actions);
            }
            if self.stop_deadline.is_some_and(|d| now >= d) {
                return self.end(DriverStatus::Stopped, actions);
            }
            match self.phase {
                Phase::Subscribing { deadline } if now >= deadline => {
                    actions.push(Action::CancelAttempt);
                    let error = "the agent did not answer SUBSCRIBE in time".to_owned();
                    self.attempt_failed(now, true, error, actions);
                }
                Phase::Connecting { .. } if self.recovery_deadline.is_some_and(|d| now >= d) => {
                    let why = "the agent did not come back within the recovery timeout".to_owned();
                    self.give_up(now, self.lost(), why, actions);
                }
                Phase::Connecting { at } if now >= at => {
                    let mut deadline = now + self.rules.attempt_timeout;
                    if let Some(recovery) = self.recovery_deadline {
                        deadline = deadline.min(recovery);
                    }
                    self.backoff.attempted(now);
                    self.phase = Phase::Subscribing { deadline };
                    actions.push(Action::Subscribe);
                }
                _ => return,
            }
        }
    }

    fn attempt_failed(&mut self, now: Instant, retryable: bool, error: String, actions: &mut Vec<Action>) {
        if !retryable {
            actions.push(Action::NotifyError(error.clone()));
            return self.give_up(now, ShutdownReason::Refused, error, actions);
        }
        if !self.rules.checkpoint {
            let why = format!("{error}, and the framework does not checkpoint");
            return self.give_up(now, self.lost(), why, actions);
        }
        let recovery = self.recovery_deadline.unwrap_or(now);
        if now >= recovery {
            let why = format!("{error}, and the recovery timeout has passed");
            return self.give_up(now, self.lost(), why, actions);
        }
        self.phase = Phase::Connecting { at: self.backoff.next_attempt(now).min(recovery) };
    }

    /// Lost after a subscription, or never reached.
    fn lost(&self) -> ShutdownReason {
        if self.ever_subscribed { ShutdownReason::AgentLost } else { ShutdownReason::AgentUnreachable }
    }

    fn give_up(&mut self, now: Instant, reason: ShutdownReason, why: String, actions: &mut Vec<Action>) {
        self.phase = Phase::Offline;
        actions.push(Action::GaveUp { reason, why });
        if self.stop_deadline.is_some() {
            // Stopping already, and nothing can be delivered any more.
            self.reason.get_or_insert(reason);
            return self.end(DriverStatus::Stopped, actions);
        }
        self.shut_down(now, reason, actions);
    }

    fn shut_down(&mut self, now: Instant, reason: ShutdownReason, actions: &mut Vec<Action>) {
        if self.grace_deadline.is_some() {
            return;
        }
        self.reason.get_or_insert(reason);
        self.grace_deadline = Some(now + self.rules.shutdown_grace);
        actions.push(Action::NotifyShutdown(reason));
    }

    fn end(&mut self, status: DriverStatus, actions: &mut Vec<Action>) {
        let outcome = DriverOutcome { status, reason: self.reason, unacknowledged: self.unacked };
        self.phase = Phase::Ended(outcome);
        actions.push(Action::End(outcome));
    }
}

#[cfg(test)]
mod tests;
