//! Malformed HTTP from the agent, as the daemon sees it: its log names what was wrong,
//! and it carries on (`tests/hostile_http.rs` covers the driver itself).

mod support;

use std::time::Duration;

use fake_agent::{AgentConfig, BadHttp, Fault, HttpTarget};
use mesos_executor::proto::v1::TaskState;
use support::daemon::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_daemon_logs_what_was_wrong_with_the_answer() {
    let d = start(AgentConfig::default(), &["--mode=custom"]).await;
    d.agent.agent.inject(Fault::BadHttp { reply: BadHttp::GarbageStatusLine, on: HttpTarget::Call, count: 1 });
    d.agent.agent.launch(data_task("t1", &format!("sleep {}", unique_seconds())));
    d.update("t1", TaskState::TaskRunning).await;
    d.agent.agent.inject(Fault::BadHttp { reply: BadHttp::OversizeHead, on: HttpTarget::Subscribe, count: 1 });
    d.agent.agent.restart(Duration::from_millis(50), Duration::ZERO).await;
    d.wait("resubscription", |s| s.subscriptions >= 2).await;
    let log = std::fs::read_to_string(d.sandbox.join("stderr")).unwrap();
    let line = |needle: &str| log.lines().find(|l| l.contains(needle)).map(str::to_owned);
    let call = line("invalid HTTP").unwrap_or_else(|| panic!("no line names the garbage answer:\n{log}"));
    assert!(call.contains("UPDATE") || call.contains("call"), "{call}");
    let head = line("too large").unwrap_or_else(|| panic!("no line names the oversize head:\n{log}"));
    assert!(head.contains("subscri"), "{head}");
    assert!(!log.contains("panicked"), "{log}");
}
