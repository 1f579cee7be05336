//! Custom mode: checks and health checks pause while the agent is away and resume on
//! SUBSCRIBED, as upstream's default executor does, so that an agent restart cannot get
//! a task killed (issue 19).

mod support;

use std::time::Duration;

use fake_agent::AgentConfig;
use mesos_executor::proto::v1::{CommandInfo, HealthCheck, TaskState, health_check};
use support::daemon::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_health_check_that_fails_while_the_agent_is_away_does_not_kill() {
    let config = AgentConfig { checkpoint: true, ..killing_capable() };
    let d = start(config, &["--mode=custom"]).await;
    let dir = tempfile::tempdir().unwrap();
    let flag = dir.path().join("agent-away");
    let marker = unique_seconds();
    let mut task = data_task("steady", &format!("sleep {marker}"));
    task.health_check = Some(HealthCheck {
        r#type: Some(health_check::Type::Command as i32),
        command: Some(CommandInfo { value: Some(format!("test ! -e {}", flag.display())), ..Default::default() }),
        delay_seconds: Some(0.0),
        interval_seconds: Some(0.1),
        timeout_seconds: Some(2.0),
        grace_period_seconds: Some(0.0),
        consecutive_failures: Some(2),
        ..Default::default()
    });
    d.agent.agent.launch(task);
    d.wait("healthy report", |s| {
        s.transcript.iter().any(|e| e.to_json()["call"]["update"]["status"]["healthy"] == true)
    })
    .await;
    let agent = d.agent.agent.clone();
    let restart = tokio::spawn(async move { agent.restart(Duration::from_millis(2000), Duration::ZERO).await });
    // Once the daemon has seen the connection drop, the check would fail a dozen times
    // over while the agent is down.
    tokio::time::sleep(Duration::from_millis(400)).await;
    std::fs::write(&flag, b"").unwrap();
    tokio::time::sleep(Duration::from_millis(1300)).await;
    std::fs::remove_file(&flag).unwrap();
    restart.await.unwrap();
    d.wait("resubscription", |s| s.subscriptions > 1).await;
    tokio::time::sleep(Duration::from_millis(800)).await;
    let states = d.states("steady");
    assert!(
        !states.iter().any(|s| matches!(s, TaskState::TaskKilling | TaskState::TaskKilled)),
        "killed for a check that failed while the agent was away: {states:?}"
    );
    assert!(!processes_matching(&marker).is_empty(), "the task still runs");
    assert!(
        d.updates("steady").iter().all(|u| u.healthy != Some(false)),
        "no unhealthy report for the agent's absence"
    );
    d.agent.agent.kill("steady", None);
    d.update("steady", TaskState::TaskKilled).await;
}
