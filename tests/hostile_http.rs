//! Malformed HTTP from the agent, on call answers and on the SUBSCRIBE answer: a huge
//! or non-hex chunk size, a garbage status line, a header block over the cap, an answer
//! that never comes, a body that never ends. The driver never panics, keeps the update
//! and sends it again, resubscribes, and gives up only at the recovery timeout.

mod support;

use std::time::Duration;

use fake_agent::{AgentConfig, BadHttp, Fault, HttpTarget};
use mesos_executor::{DriverStatus, ShutdownReason, proto::v1::TaskState};
use support::*;

const ALL: [BadHttp; 6] = [
    BadHttp::HugeChunkSize,
    BadHttp::BadChunkSize,
    BadHttp::GarbageStatusLine,
    BadHttp::OversizeHead,
    BadHttp::NoAnswer,
    BadHttp::EndlessBody,
];

fn served(h: &Harness, reply: BadHttp) -> usize {
    let needle = format!("fault served: {reply:?}");
    h.agent.agent.transcript().iter().filter(|e| e.to_json().to_string().contains(&needle)).count()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn malformed_call_answers_keep_the_update_and_send_it_again() {
    let h = Harness::start(AgentConfig::default(), |c| c.call_timeout = Duration::from_millis(500)).await;
    h.log.wait_for("registered", Duration::from_secs(5)).await;
    for (i, reply) in ALL.into_iter().enumerate() {
        h.agent.agent.inject(Fault::BadHttp { reply, on: HttpTarget::Call, count: 1 });
        let task = format!("t{i}");
        h.agent.agent.launch(support::task(&task, "sleep"));
        // The first UPDATE got the malformed answer; it arrives all the same.
        h.wait_state(&task, TaskState::TaskRunning).await;
        assert_eq!(served(&h, reply), 1, "{reply:?} was served once");
        assert_eq!(h.handle.status(), DriverStatus::Running, "{reply:?}");
    }
    h.wait_all_acked().await;
    assert!(!h.log.contains("disconnected"), "call faults do not touch the event stream: {:?}", h.log.lines());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn malformed_subscribe_answers_lead_to_a_resubscription() {
    let h = Harness::start(AgentConfig::default(), |c| c.attempt_timeout = Duration::from_millis(500)).await;
    h.log.wait_for("registered", Duration::from_secs(5)).await;
    h.agent.agent.launch(support::task("t1", "sleep"));
    h.wait_state("t1", TaskState::TaskRunning).await;
    for (i, reply) in ALL.into_iter().enumerate() {
        h.agent.agent.inject(Fault::BadHttp { reply, on: HttpTarget::Subscribe, count: 1 });
        // The agent restarts; the first SUBSCRIBE after it gets the malformed answer.
        h.agent.agent.restart(Duration::from_millis(50), Duration::ZERO).await;
        let expected = i + 1;
        let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
        while h.log.lines().iter().filter(|l| l.starts_with("reregistered")).count() < expected {
            assert!(tokio::time::Instant::now() < deadline, "{reply:?}: not back: {:?}", h.log.lines());
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        assert_eq!(served(&h, reply), 1, "{reply:?} was served once");
    }
    assert_eq!(h.agent.agent.task_state("t1"), Some(TaskState::TaskRunning), "the task survived every restart");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_agent_that_never_answers_subscribe_is_given_up_at_the_recovery_timeout() {
    let config = AgentConfig { recovery_timeout: Duration::from_secs(2), ..AgentConfig::default() };
    let mut h = Harness::start(config, |_| {}).await;
    h.log.wait_for("registered", Duration::from_secs(5)).await;
    h.agent.agent.inject(Fault::BadHttp { reply: BadHttp::NoAnswer, on: HttpTarget::Subscribe, count: u32::MAX });
    h.agent.agent.inject(Fault::ResetStream);
    let lost = std::time::Instant::now();
    let outcome = h.join(Duration::from_secs(5)).await;
    let took = lost.elapsed();
    assert_eq!(outcome.reason, Some(ShutdownReason::AgentLost));
    assert!(!outcome.is_success());
    assert!(took >= Duration::from_millis(1900), "gave up early: {took:?}");
    assert!(took < Duration::from_secs(3), "the recovery timeout held against a hanging attempt: {took:?}");
    assert!(served(&h, BadHttp::NoAnswer) >= 1);
    assert!(h.log.contains("reason AgentLost"), "{:?}", h.log.lines());
}
