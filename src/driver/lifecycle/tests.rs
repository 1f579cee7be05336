//! The lifecycle's interleavings, without sockets or clocks.

use super::*;

const SEC: Duration = Duration::from_secs(1);
const MS: Duration = Duration::from_millis(1);

fn rules(checkpoint: bool) -> Rules {
    Rules {
        checkpoint,
        recovery_timeout: 2 * SEC,
        attempt_timeout: 5 * SEC,
        shutdown_grace: 3 * SEC,
        stop_timeout: 10 * SEC,
        shutdown_ack_timeout: SEC,
    }
}

fn machine(checkpoint: bool) -> (Lifecycle, Instant) {
    let backoff = RetryBackoff::for_agent(2 * SEC, 450 * MS);
    (Lifecycle::new(rules(checkpoint), backoff), Instant::now())
}

fn refused() -> Input {
    Input::AttemptFailed { retryable: true, error: "connection refused".into() }
}

fn ended(actions: &[Action]) -> Option<DriverOutcome> {
    actions.iter().find_map(|a| match a {
        Action::End(outcome) => Some(*outcome),
        _ => None,
    })
}

fn told_shutdown(actions: &[Action]) -> Option<ShutdownReason> {
    actions.iter().find_map(|a| match a {
        Action::NotifyShutdown(reason) => Some(*reason),
        _ => None,
    })
}

/// Starts and subscribes at `t0`.
fn subscribed(checkpoint: bool) -> (Lifecycle, Instant) {
    let (mut m, t0) = machine(checkpoint);
    assert_eq!(m.step(Input::Start, t0), vec![Action::Subscribe]);
    assert!(m.step(Input::Subscribed, t0).is_empty());
    assert_eq!(m.phase(), &Phase::Subscribed);
    (m, t0)
}

#[test]
fn start_subscribes_at_once_with_a_deadline() {
    let (mut m, t0) = machine(true);
    assert_eq!(m.step(Input::Start, t0), vec![Action::Subscribe]);
    // With checkpointing the attempt ends at the recovery deadline (2 s), before the
    // attempt timeout (5 s).
    assert_eq!(m.phase(), &Phase::Subscribing { deadline: t0 + 2 * SEC });
    assert_eq!(m.next_wakeup(), Some(t0 + 2 * SEC));
    let (mut m, t0) = machine(false);
    m.step(Input::Start, t0);
    assert_eq!(m.phase(), &Phase::Subscribing { deadline: t0 + 5 * SEC }, "the connect timeout without");
}

#[test]
fn without_checkpointing_a_failed_first_attempt_is_final() {
    let (mut m, t0) = machine(false);
    m.step(Input::Start, t0);
    let actions = m.step(refused(), t0 + MS);
    assert_eq!(told_shutdown(&actions), Some(ShutdownReason::AgentUnreachable));
    assert_eq!(m.phase(), &Phase::Offline);
    let actions = m.step(Input::Stop { unacked: 3 }, t0 + 2 * MS);
    let outcome = ended(&actions).expect("a stop when offline ends at once");
    assert_eq!(
        outcome,
        DriverOutcome {
            status: DriverStatus::Stopped,
            reason: Some(ShutdownReason::AgentUnreachable),
            unacknowledged: 3
        }
    );
    assert!(!outcome.is_success());
}

#[test]
fn without_checkpointing_a_disconnection_is_final() {
    let (mut m, t0) = subscribed(false);
    let actions = m.step(Input::Disconnected { why: "EOF".into() }, t0 + SEC);
    assert_eq!(actions[0], Action::NotifyDisconnected);
    assert_eq!(told_shutdown(&actions), Some(ShutdownReason::AgentLost));
    assert!(!actions.contains(&Action::Subscribe));
}

#[test]
fn with_checkpointing_retries_until_the_recovery_deadline() {
    let (mut m, t0) = subscribed(true);
    let t1 = t0 + 10 * SEC;
    let actions = m.step(Input::Disconnected { why: "EOF".into() }, t1);
    assert_eq!(actions, vec![Action::NotifyDisconnected, Action::Subscribe], "the first retry is immediate");
    let mut now = t1;
    let mut attempts = 1;
    loop {
        let actions = m.step(refused(), now);
        assert!(actions.is_empty(), "{actions:?}");
        let Some(wake) = m.next_wakeup() else { panic!("nothing scheduled") };
        assert!(wake - now <= 450 * MS, "never idle longer than the cap: {:?}", wake - now);
        now = wake;
        let actions = m.step(Input::Tick, now);
        if let Some(reason) = told_shutdown(&actions) {
            assert_eq!(reason, ShutdownReason::AgentLost);
            assert_eq!(now, t1 + 2 * SEC, "gives up exactly at the recovery deadline");
            break;
        }
        assert_eq!(actions, vec![Action::Subscribe]);
        attempts += 1;
    }
    assert!((5..=9).contains(&attempts), "{attempts} attempts in 2 s");
}

#[test]
fn the_recovery_deadline_holds_while_an_attempt_hangs() {
    let (mut m, t0) = subscribed(true);
    let t1 = t0 + SEC;
    m.step(Input::Disconnected { why: "reset".into() }, t1);
    // The attempt never answers: abandoned at the recovery deadline, not the 5 s timeout.
    assert_eq!(m.next_wakeup(), Some(t1 + 2 * SEC));
    let actions = m.step(Input::Tick, t1 + 2 * SEC);
    assert_eq!(actions[0], Action::CancelAttempt);
    assert_eq!(told_shutdown(&actions), Some(ShutdownReason::AgentLost));
    // A late answer to the abandoned attempt changes nothing.
    assert!(m.step(Input::Subscribed, t1 + 2 * SEC + MS).is_empty());
    assert_eq!(m.phase(), &Phase::Offline);
}

#[test]
fn a_hung_first_attempt_ends_at_the_recovery_deadline_as_unreachable() {
    let (mut m, t0) = machine(true);
    m.step(Input::Start, t0);
    let actions = m.step(Input::Tick, t0 + 2 * SEC);
    assert_eq!(actions[0], Action::CancelAttempt);
    assert_eq!(told_shutdown(&actions), Some(ShutdownReason::AgentUnreachable));
}

#[test]
fn a_hung_attempt_is_abandoned_at_the_attempt_timeout_and_retried() {
    let mut r = rules(true);
    r.recovery_timeout = 60 * SEC;
    let mut m = Lifecycle::new(r, RetryBackoff::for_agent(2 * SEC, 450 * MS));
    let t0 = Instant::now();
    m.step(Input::Start, t0);
    // The first retry is immediate: the last attempt was long enough ago.
    let actions = m.step(Input::Tick, t0 + 5 * SEC);
    assert_eq!(actions, vec![Action::CancelAttempt, Action::Subscribe]);
    assert_eq!(m.phase(), &Phase::Subscribing { deadline: t0 + 10 * SEC });
    // The next one waits.
    assert_eq!(m.step(Input::Tick, t0 + 10 * SEC), vec![Action::CancelAttempt]);
    let wake = m.next_wakeup().unwrap();
    assert!(wake >= t0 + 10 * SEC + 334 * MS, "{:?}", wake - t0);
    assert_eq!(m.step(Input::Tick, wake), vec![Action::Subscribe]);
}

#[test]
fn unauthorized_on_the_first_subscribe_is_not_retried() {
    let (mut m, t0) = machine(true);
    m.step(Input::Start, t0);
    let error = "the agent answered '401 Unauthorized' to SUBSCRIBE".to_owned();
    let actions = m.step(Input::AttemptFailed { retryable: false, error: error.clone() }, t0 + MS);
    assert_eq!(actions[0], Action::NotifyError(error));
    assert_eq!(told_shutdown(&actions), Some(ShutdownReason::Refused));
    assert_eq!(m.phase(), &Phase::Offline);
    assert_eq!(m.next_wakeup(), Some(t0 + MS + 3 * SEC), "only the grace period remains");
    // The executor stops: exit 1, the agent refused us.
    let outcome = ended(&m.step(Input::Stop { unacked: 0 }, t0 + SEC)).unwrap();
    assert_eq!(outcome.reason, Some(ShutdownReason::Refused));
    assert!(!outcome.is_success());
}

#[test]
fn stop_while_connecting() {
    // Nothing pending: ends at once, and a normal end.
    let (mut m, t0) = machine(true);
    m.step(Input::Start, t0);
    m.step(refused(), t0);
    let outcome = ended(&m.step(Input::Stop { unacked: 0 }, t0 + MS)).unwrap();
    assert_eq!(outcome, DriverOutcome { status: DriverStatus::Stopped, reason: None, unacknowledged: 0 });
    assert!(outcome.is_success());
    // Updates pending: keeps connecting to deliver them, within the stop timeout.
    let (mut m, t0) = machine(true);
    m.step(Input::Start, t0);
    m.step(refused(), t0);
    assert!(m.step(Input::Stop { unacked: 2 }, t0 + MS).is_empty());
    let wake = m.next_wakeup().unwrap();
    assert_eq!(m.step(Input::Tick, wake), vec![Action::Subscribe]);
    m.step(Input::Subscribed, wake);
    assert!(m.step(Input::Acknowledged { unacked: 1 }, wake + MS).is_empty());
    let outcome = ended(&m.step(Input::Acknowledged { unacked: 0 }, wake + 2 * MS)).unwrap();
    assert_eq!(outcome.status, DriverStatus::Stopped);
}

#[test]
fn stop_while_recovering_ends_when_recovery_gives_up() {
    let (mut m, t0) = subscribed(true);
    m.step(Input::Disconnected { why: "EOF".into() }, t0);
    m.step(Input::Stop { unacked: 1 }, t0 + MS);
    let actions = m.step(Input::Tick, t0 + 2 * SEC);
    let outcome = ended(&actions).expect("nothing can be delivered any more");
    assert_eq!(
        outcome,
        DriverOutcome { status: DriverStatus::Stopped, reason: Some(ShutdownReason::AgentLost), unacknowledged: 1 }
    );
    assert_eq!(told_shutdown(&actions), None, "a stopping executor is not told to shut down");
}

#[test]
fn stop_timeout_bounds_the_wait_for_acknowledgements() {
    let (mut m, t0) = subscribed(true);
    m.step(Input::Stop { unacked: 1 }, t0);
    assert_eq!(m.next_wakeup(), Some(t0 + 10 * SEC));
    assert!(m.step(Input::Tick, t0 + 9 * SEC).is_empty());
    let outcome = ended(&m.step(Input::Tick, t0 + 10 * SEC)).unwrap();
    assert_eq!(outcome.status, DriverStatus::Stopped);
    // Upstream's command executor exits 1 when its terminal update is never acknowledged.
    assert_eq!(outcome.unacknowledged, 1);
    assert!(!outcome.is_success());
}

#[test]
fn after_shutdown_a_stop_waits_for_acknowledgements_about_a_second() {
    let (mut m, t0) = subscribed(true);
    m.step(Input::AgentShutdown, t0);
    m.step(Input::Stop { unacked: 2 }, t0 + 100 * MS);
    assert_eq!(m.next_wakeup(), Some(t0 + 100 * MS + SEC), "not the 10 s stop timeout");
    assert!(ended(&m.step(Input::Acknowledged { unacked: 1 }, t0 + 500 * MS)).is_none());
    let outcome = ended(&m.step(Input::Tick, t0 + 1100 * MS)).unwrap();
    assert_eq!((outcome.status, outcome.unacknowledged), (DriverStatus::Stopped, 1));
    assert!(outcome.is_success(), "a framework torn down acknowledges nothing: still a normal end");
}

#[test]
fn shutdown_while_recovering() {
    let (mut m, t0) = subscribed(true);
    m.step(Input::Disconnected { why: "EOF".into() }, t0);
    m.step(refused(), t0);
    // A signal while the agent is away: the executor is told at once and attempts go on,
    // so that its terminal updates can still reach the agent.
    let actions = m.step(Input::ShutdownRequested, t0 + 100 * MS);
    assert_eq!(actions, vec![Action::NotifyShutdown(ShutdownReason::Requested)]);
    assert!(matches!(m.phase(), Phase::Connecting { .. }));
    // Giving up later does not tell it twice, and keeps the first reason.
    let actions = m.step(Input::Tick, t0 + 2 * SEC);
    assert!(matches!(&actions[..], [Action::GaveUp { reason: ShutdownReason::AgentLost, .. }]), "{actions:?}");
    let outcome = ended(&m.step(Input::Stop { unacked: 1 }, t0 + 2 * SEC + MS)).unwrap();
    assert_eq!(outcome.reason, Some(ShutdownReason::Requested));
}

#[test]
fn agent_shutdown_then_grace_period_ends_the_driver_aborted() {
    let (mut m, t0) = subscribed(true);
    assert_eq!(m.step(Input::AgentShutdown, t0 + SEC), vec![Action::NotifyShutdown(ShutdownReason::AgentShutdown)]);
    assert_eq!(m.next_wakeup(), Some(t0 + 4 * SEC));
    let outcome = ended(&m.step(Input::Tick, t0 + 4 * SEC)).unwrap();
    assert_eq!(
        outcome,
        DriverOutcome { status: DriverStatus::Aborted, reason: Some(ShutdownReason::AgentShutdown), unacknowledged: 0 }
    );
    assert!(!outcome.is_success(), "the executor never stopped");
}

#[test]
fn a_signal_during_the_grace_period_changes_nothing() {
    let (mut m, t0) = subscribed(true);
    m.step(Input::AgentShutdown, t0);
    assert!(m.step(Input::ShutdownRequested, t0 + 2 * SEC).is_empty(), "told once");
    assert!(m.step(Input::AgentShutdown, t0 + 2 * SEC).is_empty());
    assert_eq!(m.next_wakeup(), Some(t0 + 3 * SEC), "the grace period is not extended");
    let outcome = ended(&m.step(Input::Stop { unacked: 0 }, t0 + 2500 * MS)).unwrap();
    assert_eq!(
        outcome,
        DriverOutcome { status: DriverStatus::Stopped, reason: Some(ShutdownReason::AgentShutdown), unacknowledged: 0 }
    );
    assert!(outcome.is_success());
}

#[test]
fn stop_after_giving_up_ends_at_once() {
    let (mut m, t0) = subscribed(false);
    m.step(Input::Disconnected { why: "EOF".into() }, t0);
    let outcome = ended(&m.step(Input::Stop { unacked: 4 }, t0 + MS)).unwrap();
    assert_eq!(
        outcome,
        DriverOutcome { status: DriverStatus::Stopped, reason: Some(ShutdownReason::AgentLost), unacknowledged: 4 }
    );
}

#[test]
fn a_second_disconnection_during_recovery_keeps_the_deadline() {
    let (mut m, t0) = subscribed(true);
    let actions = m.step(Input::Disconnected { why: "EOF".into() }, t0);
    assert_eq!(actions.iter().filter(|a| **a == Action::NotifyDisconnected).count(), 1);
    // A stale report of the same loss, while the attempt is in flight: nothing.
    assert!(m.step(Input::Disconnected { why: "reset".into() }, t0 + 100 * MS).is_empty());
    m.step(refused(), t0 + 200 * MS);
    assert!(m.step(Input::Disconnected { why: "again".into() }, t0 + 300 * MS).is_empty());
    let actions = m.step(Input::Tick, t0 + 2 * SEC);
    assert_eq!(told_shutdown(&actions), Some(ShutdownReason::AgentLost), "the deadline did not move");
}

#[test]
fn resubscribing_ends_the_recovery_and_a_new_loss_starts_a_new_one() {
    let (mut m, t0) = subscribed(true);
    m.step(Input::Disconnected { why: "EOF".into() }, t0);
    assert_eq!(m.step(Input::Tick, t0 + SEC), vec![Action::Subscribe]);
    m.step(Input::Subscribed, t0 + SEC);
    assert_eq!(m.phase(), &Phase::Subscribed);
    assert_eq!(m.next_wakeup(), None, "no deadline while subscribed");
    let t1 = t0 + 60 * SEC;
    assert_eq!(
        m.step(Input::Disconnected { why: "EOF".into() }, t1),
        vec![Action::NotifyDisconnected, Action::Subscribe]
    );
    assert_eq!(m.phase(), &Phase::Subscribing { deadline: t1 + 2 * SEC });
}

#[test]
fn an_agent_that_drops_us_at_once_is_not_hammered() {
    let (mut m, t0) = subscribed(true);
    let mut now = t0;
    let mut attempts = vec![t0];
    for _ in 0..20 {
        m.step(Input::Disconnected { why: "EOF".into() }, now);
        if let Some(wake) = m.next_wakeup()
            && wake > now
        {
            now = wake;
            m.step(Input::Tick, now);
        }
        attempts.push(now);
        m.step(Input::Subscribed, now);
    }
    for pair in attempts.windows(2) {
        assert!(pair[1] - pair[0] >= 334 * MS, "{:?}", pair[1] - pair[0]);
    }
}

#[test]
fn abort_ends_at_once_and_nothing_follows() {
    let (mut m, t0) = subscribed(true);
    let outcome = ended(&m.step(Input::Abort, t0)).unwrap();
    assert_eq!(outcome.status, DriverStatus::Aborted);
    assert!(m.step(Input::AgentShutdown, t0).is_empty());
    assert!(m.step(Input::Tick, t0 + 60 * SEC).is_empty());
    assert_eq!(m.next_wakeup(), None);
}
