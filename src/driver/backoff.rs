//! Delays between resubscription attempts: the first retry is immediate, then
//! exponential with jitter (the `backoff` crate), capped, and reset after a success.
//!
//! Upstream draws every delay uniformly from `[0, MESOS_SUBSCRIPTION_BACKOFF_MAX]`
//! (reference §7.3), which can leave an executor idle for most of the agent's 2 s
//! re-registration window. Short early retries bring it back within milliseconds of the
//! agent's return, and never more than the cap apart.

use std::time::Duration;

use backoff::backoff::Backoff as _;

/// A backoff whose bounds do not make sense.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid retry backoff: initial {initial:?} must be positive and at most the cap {cap:?}")]
pub struct BackoffError {
    /// The first non-zero delay.
    pub initial: Duration,
    /// The largest delay.
    pub cap: Duration,
}

/// Delays between subscription attempts.
#[derive(Debug)]
pub struct RetryBackoff {
    inner: backoff::ExponentialBackoff,
    cap: Duration,
    fresh: bool,
}

impl RetryBackoff {
    /// Exponential from `initial` (doubling, ±50 % jitter) up to `cap`.
    ///
    /// # Errors
    /// `initial` is zero or larger than `cap`.
    pub fn new(initial: Duration, cap: Duration) -> Result<Self, BackoffError> {
        if initial.is_zero() || initial > cap {
            return Err(BackoffError { initial, cap });
        }
        let inner = backoff::ExponentialBackoff {
            current_interval: initial,
            initial_interval: initial,
            randomization_factor: 0.5,
            multiplier: 2.0,
            max_interval: cap,
            max_elapsed_time: None,
            ..backoff::ExponentialBackoff::default()
        };
        Ok(RetryBackoff { inner, cap, fresh: true })
    }

    /// The delay before the next attempt: zero right after a reset.
    pub fn next_delay(&mut self) -> Duration {
        if std::mem::take(&mut self.fresh) {
            return Duration::ZERO;
        }
        self.inner.next_backoff().unwrap_or(self.cap).min(self.cap)
    }

    /// Back to an immediate first retry (after a successful subscription).
    pub fn reset(&mut self) {
        self.inner.reset();
        self.fresh = true;
    }

    /// The largest delay.
    pub fn cap(&self) -> Duration {
        self.cap
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn invalid_bounds_are_refused() {
        assert!(RetryBackoff::new(Duration::ZERO, Duration::from_secs(1)).is_err());
        assert!(RetryBackoff::new(Duration::from_secs(2), Duration::from_secs(1)).is_err());
        assert!(RetryBackoff::new(Duration::from_millis(2), Duration::from_millis(2)).is_ok());
    }

    #[test]
    fn first_retry_is_immediate_and_growth_reaches_the_cap() {
        let mut b = RetryBackoff::new(Duration::from_millis(2), Duration::from_millis(30)).unwrap();
        assert_eq!(b.next_delay(), Duration::ZERO);
        let delays: Vec<Duration> = (0..12).map(|_| b.next_delay()).collect();
        assert!(delays[0] <= Duration::from_millis(3), "{delays:?}");
        assert!(delays[8..].iter().all(|d| *d >= Duration::from_millis(15)), "grows: {delays:?}");
        b.reset();
        assert_eq!(b.next_delay(), Duration::ZERO);
    }

    proptest! {
        #[test]
        fn delays_never_exceed_the_cap(initial_ms in 1u64..500, extra_ms in 0u64..5000, n in 1usize..60) {
            let cap = Duration::from_millis(initial_ms + extra_ms);
            let mut b = RetryBackoff::new(Duration::from_millis(initial_ms), cap).unwrap();
            let delays: Vec<Duration> = (0..n).map(|_| b.next_delay()).collect();
            prop_assert_eq!(delays[0], Duration::ZERO);
            prop_assert!(delays.iter().all(|d| *d <= cap));
            // Jitter is ±50 %, so a delay is never below half the initial interval.
            prop_assert!(delays[1..].iter().all(|d| *d >= Duration::from_millis(initial_ms) / 2));
        }
    }
}
