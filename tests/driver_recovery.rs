//! The driver across agent restarts and broken streams: resubscription with what is
//! unacknowledged, retries during the agent's recovery, and giving up as upstream does.

mod support;

use std::time::Duration;

use fake_agent::{AckPolicy, AgentConfig, Fault};
use mesos_executor::{DriverStatus, proto::v1::TaskState};
use support::*;

fn checkpointing() -> AgentConfig {
    AgentConfig { checkpoint: true, reregistration_timeout: Duration::from_secs(1), ..AgentConfig::default() }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn resubscription_carries_unacknowledged_updates_and_tasks() {
    let h = Harness::start(AgentConfig { ack_policy: AckPolicy::Withhold, ..checkpointing() }, |_| {}).await;
    h.log.wait_for("registered", Duration::from_secs(5)).await;
    h.agent.agent.launch(task("reported", "sleep"));
    h.agent.agent.launch(task("quiet", "silent"));
    h.wait_state("reported", TaskState::TaskRunning).await;
    h.log.wait_for("launch quiet", Duration::from_secs(5)).await;

    h.agent.agent.restart(Duration::from_millis(200), Duration::from_millis(100)).await;
    h.log.wait_for("reregistered localhost", Duration::from_secs(3)).await;
    assert!(
        h.log.lines().iter().position(|l| l == "disconnected")
            < h.log.lines().iter().position(|l| l.starts_with("reregistered"))
    );
    let (gaps, quiet) = h.agent.agent.inspect(|s| (s.resubscribe_gaps, s.task("quiet").map(|t| t.state)));
    assert_eq!(gaps, 0, "every unacknowledged update was resent");
    assert_eq!(quiet, Some(TaskState::TaskStaging), "the unreported task was listed, so it is not lost");
    let subscribe = h
        .agent
        .agent
        .transcript()
        .iter()
        .map(|e| e.to_json())
        .rfind(|j| j["type"] == "SUBSCRIBE" && j["status"] == 200)
        .unwrap();
    let sub = &subscribe["call"]["subscribe"];
    assert_eq!(sub["unacknowledged_updates"].as_array().unwrap().len(), 1);
    let tasks: Vec<&str> = sub["unacknowledged_tasks"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["task_id"]["value"].as_str().unwrap())
        .collect();
    assert_eq!(tasks, ["reported", "quiet"]);
    assert_eq!(h.handle.status(), DriverStatus::Running);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn updates_refused_while_the_agent_recovers_are_retried() {
    let h = Harness::start(checkpointing(), |_| {}).await;
    h.log.wait_for("registered", Duration::from_secs(5)).await;
    h.agent.agent.launch(task("t1", "sleep"));
    h.wait_state("t1", TaskState::TaskRunning).await;
    h.agent.agent.restart(Duration::from_millis(100), Duration::from_millis(100)).await;
    h.log.wait_for("reregistered", Duration::from_secs(3)).await;
    // Inside the re-registration window UPDATE gets 503: the kill's TASK_KILLED must
    // still arrive once the window closes.
    h.agent.agent.kill("t1", None);
    h.wait_state("t1", TaskState::TaskKilled).await;
    let refused_503 = h
        .agent
        .agent
        .transcript()
        .iter()
        .map(|e| e.to_json())
        .filter(|j| j["type"] == "UPDATE" && j["status"] == 503)
        .count();
    assert!(refused_503 >= 1, "the update was first refused with 503");
    h.wait_all_acked().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_checkpointing_a_disconnection_shuts_down() {
    let mut h = Harness::start(AgentConfig { checkpoint: false, ..AgentConfig::default() }, |_| {}).await;
    h.log.wait_for("registered", Duration::from_secs(5)).await;
    let agent = h.agent.agent.clone();
    tokio::spawn(async move { agent.restart(Duration::from_secs(2), Duration::from_millis(10)).await });
    assert_eq!(h.join(Duration::from_secs(5)).await.status, DriverStatus::Stopped);
    let lines = h.log.lines();
    let disconnected = lines.iter().position(|l| l == "disconnected").expect("disconnected");
    let shutdown = lines.iter().position(|l| l == "shutdown").expect("shutdown");
    assert!(disconnected < shutdown, "{lines:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn checkpointing_executor_gives_up_at_the_recovery_timeout() {
    let config = AgentConfig { recovery_timeout: Duration::from_millis(400), ..checkpointing() };
    let mut h = Harness::start(config, |_| {}).await;
    h.log.wait_for("registered", Duration::from_secs(5)).await;
    let agent = h.agent.agent.clone();
    let down = std::time::Instant::now();
    tokio::spawn(async move { agent.restart(Duration::from_secs(5), Duration::from_millis(10)).await });
    assert_eq!(h.join(Duration::from_secs(4)).await.status, DriverStatus::Stopped);
    let gave_up_after = down.elapsed();
    assert!(gave_up_after >= Duration::from_millis(350), "gave up after {gave_up_after:?}");
    assert!(h.log.contains("shutdown") && !h.log.contains("reregistered"), "{:?}", h.log.lines());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_malformed_record_leads_to_resubscription() {
    let h = Harness::start(checkpointing(), |_| {}).await;
    h.log.wait_for("registered", Duration::from_secs(5)).await;
    for fault in [Fault::BadLength, Fault::GarbageBody, Fault::CutMidRecord, Fault::ResetStream] {
        let before = h.agent.agent.inspect(|s| s.subscriptions);
        h.agent.agent.inject(fault.clone());
        h.agent
            .agent
            .wait_for(
                &format!("resubscription after {fault:?}"),
                Duration::from_secs(3),
                |s| s.subscriptions > before,
                |s| format!("{} subscriptions", s.subscriptions),
            )
            .await
            .unwrap();
    }
    assert!(h.log.contains("error malformed event from the agent"), "{:?}", h.log.lines());
    h.agent.agent.inject(Fault::UnknownEvent);
    h.agent.agent.launch(task("after", "finish"));
    h.wait_state("after", TaskState::TaskFinished).await;
    assert_eq!(h.handle.status(), DriverStatus::Running);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dropped_acknowledgements_are_recovered_by_resending() {
    let h = Harness::start(AgentConfig { ack_policy: AckPolicy::Drop(1.0), ..checkpointing() }, |c| {
        c.resend_after = Duration::from_millis(100);
    })
    .await;
    h.log.wait_for("registered", Duration::from_secs(5)).await;
    h.agent.agent.launch(task("t1", "finish"));
    h.wait_state("t1", TaskState::TaskFinished).await;
    tokio::time::sleep(Duration::from_millis(150)).await;
    h.agent.agent.set_ack_policy(AckPolicy::Immediate);
    h.wait_all_acked().await;
    let duplicates = h.agent.agent.transcript().iter().filter(|e| e.to_json()["outcome"] == "duplicate").count();
    assert!(duplicates >= 2, "both updates were resent with their uuid ({duplicates} duplicates)");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn not_found_and_server_errors_are_retried_forbidden_is_not() {
    let mut h = Harness::start(checkpointing(), |_| {}).await;
    h.log.wait_for("registered", Duration::from_secs(5)).await;
    for status in [404, 500, 502, 503] {
        let before = h.agent.agent.inspect(|s| s.subscriptions);
        h.agent.agent.inject(Fault::Answer { status, count: 3 });
        h.agent.agent.inject(Fault::ResetStream);
        h.agent
            .agent
            .wait_for(
                &format!("resubscription through {status}s"),
                Duration::from_secs(3),
                |s| s.subscriptions > before,
                |s| format!("{} subscriptions", s.subscriptions),
            )
            .await
            .unwrap();
        let refused = h.agent.agent.transcript().iter().filter(|e| e.to_json()["status"] == status).count();
        assert_eq!(refused, 3, "three {status} answers, then success");
    }
    h.agent.agent.inject(Fault::Answer { status: 403, count: 1000 });
    h.agent.agent.inject(Fault::ResetStream);
    assert_eq!(h.join(Duration::from_secs(5)).await.status, DriverStatus::Stopped);
    assert!(
        h.log.contains("error the agent answered '403 Forbidden' to SUBSCRIBE: fault injected: 403"),
        "{:?}",
        h.log.lines()
    );
    assert!(h.log.contains("shutdown"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_oversize_record_is_refused_without_buffering_it() {
    let h = Harness::start(checkpointing(), |c| c.max_record_len = 4096).await;
    h.log.wait_for("registered", Duration::from_secs(5)).await;
    let before = h.agent.agent.inspect(|s| s.subscriptions);
    h.agent.agent.inject(Fault::OversizeLength);
    h.agent
        .agent
        .wait_for("resubscription", Duration::from_secs(3), |s| s.subscriptions > before, |_| String::new())
        .await
        .unwrap();
    assert_eq!(h.handle.status(), DriverStatus::Running);
}
