//! When the next SUBSCRIBE goes out after a failure: quick for a blip, polite to an
//! agent that is restarting, and never later than the agent's re-registration rules
//! allow.
//!
//! # The policy
//! - The first retry after a success is immediate: a connection that broke while the
//!   agent stayed up is back at once.
//! - Then jittered exponential growth from `initial`, capped at `cap`. The driver sets
//!   the cap at or below `MESOS_SUBSCRIPTION_BACKOFF_MAX`, so there is at least one
//!   attempt per that interval: upstream's rule, which makes an executor reach the
//!   agent inside its re-registration window (reference §10.6).
//! - No two attempts are closer than `spacing`, counting the immediate one, so an agent
//!   that accepts and drops us at once gets at most `1 / spacing` attempts a second
//!   too. With the default spacing of 334 ms, any stretch of `T >= 1` seconds sees at
//!   most `1 + 3T <= 4T` attempts. Where a tiny `MESOS_SUBSCRIPTION_BACKOFF_MAX` and the
//!   spacing disagree, the spacing wins: hundreds of executors retrying every few
//!   milliseconds would keep a recovering agent from recovering.
//!
//! Upstream draws each delay uniformly from `[0, MESOS_SUBSCRIPTION_BACKOFF_MAX]`
//! (reference §7.3), which allows bursts of attempts a few milliseconds apart.

use std::{
    hash::{BuildHasher, Hasher},
    time::{Duration, Instant},
};

/// Closest two attempts may be by default: at most 4 attempts in any second-long
/// stretch, the immediate retry included.
pub const DEFAULT_SPACING: Duration = Duration::from_millis(334);

/// Backoff bounds that do not make sense.
// The validated constructor serves the tests; the driver's own schedule
// ([`RetryBackoff::for_agent`]) is valid by construction.
#[cfg_attr(not(test), allow(dead_code))]
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid retry backoff: need 0 < spacing ({spacing:?}) <= initial ({initial:?}) <= cap ({cap:?})")]
#[non_exhaustive]
pub struct BackoffError {
    /// The smallest gap between attempts.
    pub spacing: Duration,
    /// The first delay of the exponential growth.
    pub initial: Duration,
    /// The largest delay.
    pub cap: Duration,
}

/// The schedule of subscription attempts.
#[derive(Debug, Clone)]
pub struct RetryBackoff {
    spacing: Duration,
    initial: Duration,
    cap: Duration,
    /// Failures since the last success; 0 means the next retry is immediate.
    failures: u32,
    last_attempt: Option<Instant>,
    rng: u64,
}

impl RetryBackoff {
    /// Attempts at least `spacing` apart; after the immediate retry, delays grow from
    /// `initial` by doubling up to `cap`, each drawn from the upper quarter below its
    /// nominal value (so herds of executors spread out), never below `spacing`.
    ///
    /// # Errors
    /// Unless `0 < spacing <= initial <= cap`.
    #[cfg_attr(not(test), allow(dead_code))]
    pub fn new(spacing: Duration, initial: Duration, cap: Duration) -> Result<Self, BackoffError> {
        if spacing.is_zero() || spacing > initial || initial > cap {
            return Err(BackoffError { spacing, initial, cap });
        }
        Ok(RetryBackoff { spacing, initial, cap, failures: 0, last_attempt: None, rng: seed() })
    }

    /// The driver's schedule for a `MESOS_SUBSCRIPTION_BACKOFF_MAX` of `backoff_max` and
    /// a preferred largest delay `preferred_cap`: the cap is the smaller of the two, but
    /// never below [`DEFAULT_SPACING`] (the rate wins over a tiny maximum).
    pub fn for_agent(backoff_max: Duration, preferred_cap: Duration) -> Self {
        let cap = backoff_max.min(preferred_cap).max(DEFAULT_SPACING);
        let initial = DEFAULT_SPACING.max(cap / 2);
        RetryBackoff { spacing: DEFAULT_SPACING, initial, cap, failures: 0, last_attempt: None, rng: seed() }
    }

    /// Notes that an attempt started at `at`.
    pub fn attempted(&mut self, at: Instant) {
        self.last_attempt = Some(at);
    }

    /// When the next attempt may start, after a failure or disconnection noticed at `now`.
    pub fn next_attempt(&mut self, now: Instant) -> Instant {
        let delay = if self.failures == 0 {
            Duration::ZERO
        } else {
            let nominal = self.initial.saturating_mul(1 << (self.failures - 1).min(16)).min(self.cap);
            // Uniform in [3/4, 1] of the nominal delay.
            let quarter = nominal / 4;
            let jitter = quarter.mul_f64(self.random());
            (nominal - quarter + jitter).max(self.spacing)
        };
        self.failures = self.failures.saturating_add(1);
        let earliest = self.last_attempt.map_or(now, |last| last + self.spacing);
        (now + delay).max(earliest)
    }

    /// A subscription succeeded: the next retry is immediate again (still at least
    /// `spacing` after the last attempt).
    pub fn reset(&mut self) {
        self.failures = 0;
    }

    /// The largest delay between attempts.
    #[cfg_attr(not(test), allow(dead_code))]
    pub fn cap(&self) -> Duration {
        self.cap
    }

    /// A number in [0, 1) from xorshift64*: jitter needs spread, not secrecy.
    fn random(&mut self) -> f64 {
        self.rng ^= self.rng >> 12;
        self.rng ^= self.rng << 25;
        self.rng ^= self.rng >> 27;
        (self.rng.wrapping_mul(0x2545_f491_4f6c_dd1d) >> 11) as f64 / (1u64 << 53) as f64
    }
}

/// A per-process random seed (std's hasher keys come from the OS), never zero.
fn seed() -> u64 {
    std::collections::hash_map::RandomState::new().build_hasher().finish() | 1
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const MS: Duration = Duration::from_millis(1);

    #[test]
    fn invalid_bounds_are_refused() {
        assert!(RetryBackoff::new(Duration::ZERO, MS, MS).is_err());
        assert!(RetryBackoff::new(2 * MS, MS, 3 * MS).is_err());
        assert!(RetryBackoff::new(MS, 3 * MS, 2 * MS).is_err());
        assert!(RetryBackoff::new(MS, MS, MS).is_ok());
    }

    #[test]
    fn first_retry_is_immediate_then_growth_reaches_the_cap() {
        let start = Instant::now();
        let mut b = RetryBackoff::new(100 * MS, 100 * MS, 1000 * MS).unwrap();
        assert_eq!(b.next_attempt(start), start, "the first retry is immediate");
        let delays: Vec<Duration> = (0..8).map(|_| b.next_attempt(start) - start).collect();
        assert!((75 * MS..=100 * MS).contains(&delays[0]), "{delays:?}");
        assert!((150 * MS..=200 * MS).contains(&delays[1]), "{delays:?}");
        assert!(delays[5..].iter().all(|d| (750 * MS..=1000 * MS).contains(d)), "{delays:?}");
        b.reset();
        assert_eq!(b.next_attempt(start), start, "immediate again after a success");
    }

    #[test]
    fn the_immediate_retry_still_keeps_the_spacing() {
        let start = Instant::now();
        let mut b = RetryBackoff::for_agent(Duration::from_secs(2), Duration::from_millis(450));
        b.attempted(start);
        b.reset();
        // An agent that accepts and drops us at once does not get hammered.
        assert_eq!(b.next_attempt(start + 10 * MS), start + DEFAULT_SPACING);
    }

    #[test]
    fn the_rate_wins_over_a_tiny_backoff_max() {
        let b = RetryBackoff::for_agent(Duration::from_millis(5), Duration::from_millis(450));
        assert_eq!(b.cap(), DEFAULT_SPACING);
        let b = RetryBackoff::for_agent(Duration::from_secs(2), Duration::from_millis(450));
        assert_eq!(b.cap(), Duration::from_millis(450));
        let b = RetryBackoff::for_agent(Duration::from_millis(400), Duration::from_secs(5));
        assert_eq!(b.cap(), Duration::from_millis(400), "never more than MESOS_SUBSCRIPTION_BACKOFF_MAX");
    }

    /// Attempt times when every attempt fails after `fail_ms[i]` and, where `flap[i]`,
    /// subscribes and is dropped at once (a reset).
    fn simulate(b: &mut RetryBackoff, fail_ms: &[u64], flap: &[bool]) -> Vec<Instant> {
        let start = Instant::now();
        let mut now = start;
        let mut attempts = Vec::new();
        for (i, took) in fail_ms.iter().enumerate() {
            let at = b.next_attempt(now);
            b.attempted(at);
            attempts.push(at);
            now = at + Duration::from_millis(*took);
            if flap.get(i).copied().unwrap_or(false) {
                b.reset();
            }
        }
        attempts
    }

    proptest! {
        #[test]
        fn never_more_than_four_attempts_a_second_and_never_later_than_the_cap(
            backoff_max_ms in 1u64..5_000,
            cap_ms in 1u64..5_000,
            fail_ms in proptest::collection::vec(prop_oneof![Just(0u64), 0u64..50, 0u64..3_000], 1..80),
            flap in proptest::collection::vec(proptest::bool::weighted(0.2), 0..80),
        ) {
            let mut b = RetryBackoff::for_agent(Duration::from_millis(backoff_max_ms), Duration::from_millis(cap_ms));
            let attempts = simulate(&mut b, &fail_ms, &flap);
            let bound = Duration::from_millis(backoff_max_ms.min(cap_ms)).max(DEFAULT_SPACING);
            for (i, pair) in attempts.windows(2).enumerate() {
                let gap = pair[1] - pair[0];
                prop_assert!(gap >= DEFAULT_SPACING, "attempts {gap:?} apart");
                // The wait starts when the previous attempt ended.
                let end = pair[0] + Duration::from_millis(fail_ms[i]);
                prop_assert!(pair[1] - end <= bound, "waited {:?} > {bound:?}", pair[1] - end);
            }
            // Any stretch of at least a second: at most 4 attempts per second.
            for (i, first) in attempts.iter().enumerate() {
                for (j, last) in attempts.iter().enumerate().skip(i) {
                    let span = (*last - *first).max(Duration::from_secs(1));
                    let count = (j - i + 1) as f64;
                    prop_assert!(count <= 4.0 * span.as_secs_f64() + 1e-9, "{count} attempts in {span:?}");
                }
            }
        }
    }
}
