//! What to do when the connection to the agent fails: the recovery rules of the
//! upstream library (reference §7.3), as a small state machine without sockets.
//!
//! # Recovery
//! - Without checkpointing the first disconnection is final: `disconnected`, then
//!   `shutdown` (upstream).
//! - With checkpointing a disconnection starts the recovery timer
//!   (`MESOS_RECOVERY_TIMEOUT`) and attempts follow the [`RetryBackoff`]; the timer stops
//!   when a SUBSCRIBE succeeds. Past the deadline we give up: `shutdown`.
//! - Retryable failures (connection refused or reset, 503 from a recovering agent, 404
//!   before the agent installed its routes) keep trying; an error that will not fix
//!   itself (401, 403, 400, ...) gives up at once.
//! - Upstream also gives up when the very first connection fails, even with
//!   checkpointing; we retry within the recovery timeout instead, so an executor started
//!   during an agent restart is not lost.

use std::time::{Duration, Instant};

use super::backoff::RetryBackoff;

/// The decision after a failure.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Next {
    /// Try again after this delay.
    RetryIn(Duration),
    /// Stop trying; the reason is logged and reported.
    GiveUp(String),
}

/// Recovery state: whether we ever subscribed and the current deadline.
#[derive(Debug)]
pub(crate) struct Recovery {
    checkpoint: bool,
    recovery_timeout: Duration,
    backoff: RetryBackoff,
    deadline: Option<Instant>,
    ever_subscribed: bool,
}

impl Recovery {
    pub fn new(checkpoint: bool, recovery_timeout: Duration, backoff: RetryBackoff) -> Self {
        Recovery { checkpoint, recovery_timeout, backoff, deadline: None, ever_subscribed: false }
    }

    /// A SUBSCRIBE succeeded: the recovery timer stops and backoff resets.
    pub fn subscribed(&mut self) {
        self.ever_subscribed = true;
        self.deadline = None;
        self.backoff.reset();
    }

    /// Whether a subscription ever succeeded (the next one is a resubscription).
    #[cfg(test)]
    pub fn ever_subscribed(&self) -> bool {
        self.ever_subscribed
    }

    /// The deadline of the current recovery, if one runs.
    #[cfg(test)]
    pub fn deadline(&self) -> Option<Instant> {
        self.deadline
    }

    /// A subscribed session was lost.
    pub fn disconnected(&mut self, now: Instant) -> Next {
        if !self.checkpoint {
            return Next::GiveUp("disconnected from the agent and the framework does not checkpoint".to_owned());
        }
        self.failed(now, true)
    }

    /// A subscription attempt failed.
    pub fn failed(&mut self, now: Instant, retryable: bool) -> Next {
        if !retryable {
            return Next::GiveUp("the agent refused the subscription".to_owned());
        }
        if !self.checkpoint && self.ever_subscribed {
            return Next::GiveUp("disconnected from the agent and the framework does not checkpoint".to_owned());
        }
        if !self.checkpoint {
            // Upstream gives up when the first connection fails without checkpointing.
            return Next::GiveUp("cannot reach the agent and the framework does not checkpoint".to_owned());
        }
        let deadline = *self.deadline.get_or_insert(now + self.recovery_timeout);
        if now >= deadline {
            return Next::GiveUp(format!(
                "the agent did not come back within the recovery timeout of {}",
                crate::env::format_duration(self.recovery_timeout)
            ));
        }
        Next::RetryIn(self.backoff.next_delay().min(deadline - now))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn recovery(checkpoint: bool) -> Recovery {
        let backoff = RetryBackoff::new(Duration::from_millis(2), Duration::from_millis(30)).unwrap();
        Recovery::new(checkpoint, Duration::from_secs(10), backoff)
    }

    #[test]
    fn without_checkpointing_a_disconnection_is_final() {
        let mut r = recovery(false);
        r.subscribed();
        assert!(matches!(r.disconnected(Instant::now()), Next::GiveUp(m) if m.contains("checkpoint")));
        assert!(matches!(recovery(false).failed(Instant::now(), true), Next::GiveUp(_)));
    }

    #[test]
    fn with_checkpointing_retries_until_the_recovery_timeout() {
        let start = Instant::now();
        let mut r = recovery(true);
        r.subscribed();
        assert_eq!(r.disconnected(start), Next::RetryIn(Duration::ZERO), "first retry is immediate");
        assert_eq!(r.deadline(), Some(start + Duration::from_secs(10)));
        let Next::RetryIn(d) = r.failed(start + Duration::from_secs(1), true) else { panic!() };
        assert!(d <= Duration::from_millis(30));
        // The deadline does not move while the episode lasts.
        r.failed(start + Duration::from_secs(5), true);
        assert_eq!(r.deadline(), Some(start + Duration::from_secs(10)));
        let Next::RetryIn(d) = r.failed(start + Duration::from_millis(9_990), true) else { panic!() };
        assert!(d <= Duration::from_millis(10), "never sleeps past the deadline: {d:?}");
        assert!(matches!(r.failed(start + Duration::from_secs(10), true), Next::GiveUp(m) if m.contains("10secs")));
    }

    #[test]
    fn success_stops_the_timer_and_resets_backoff() {
        let start = Instant::now();
        let mut r = recovery(true);
        r.subscribed();
        r.disconnected(start);
        for i in 1..10 {
            r.failed(start + Duration::from_millis(i), true);
        }
        r.subscribed();
        assert_eq!(r.deadline(), None);
        assert_eq!(r.disconnected(start + Duration::from_secs(60)), Next::RetryIn(Duration::ZERO));
        assert_eq!(r.deadline(), Some(start + Duration::from_secs(70)), "a new episode, a new deadline");
    }

    #[test]
    fn refusals_that_will_not_fix_themselves_give_up() {
        let mut r = recovery(true);
        assert!(matches!(r.failed(Instant::now(), false), Next::GiveUp(_)));
        assert!(!r.ever_subscribed());
    }
}
