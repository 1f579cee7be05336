//! The driver against the fake agent: subscribe, launch, acknowledged updates, kill,
//! messages both ways, shutdown, stop, and the handle's errors.

mod support;

use std::time::Duration;

use fake_agent::{AckPolicy, AgentConfig};
use mesos_executor::{DriverError, DriverStatus, proto::v1::TaskState};
use support::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn subscribe_launch_and_acknowledged_updates() {
    let h = Harness::start(AgentConfig::default(), |_| {}).await;
    h.log.wait_for("registered fake-executor-0001 fake-agent localhost", Duration::from_secs(5)).await;
    h.agent.agent.launch(task("t1", "finish"));
    h.wait_state("t1", TaskState::TaskFinished).await;
    h.wait_all_acked().await;
    // The driver filled in what the agent needs (the fake agent validated it).
    let updates: Vec<serde_json::Value> = h
        .agent
        .agent
        .transcript()
        .iter()
        .map(|e| e.to_json())
        .filter(|j| j["type"] == "UPDATE" && j["status"] == 202)
        .collect();
    assert_eq!(updates.len(), 2);
    let status = &updates[0]["call"]["update"]["status"];
    assert_eq!(status["source"], "SOURCE_EXECUTOR");
    assert_eq!(status["executor_id"]["value"], "fake-executor-0001");
    assert_eq!(status["agent_id"]["value"], "fake-agent-S0");
    assert!(status["timestamp"].as_f64().unwrap() > 1.7e9);
    assert_eq!(updates[0]["content_type"], "application/x-protobuf");
    assert_eq!(h.handle.status(), DriverStatus::Running);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_and_messages_both_ways() {
    let h = Harness::start(AgentConfig::default(), |_| {}).await;
    h.log.wait_for("registered", Duration::from_secs(5)).await;
    h.agent.agent.launch(task("t1", "sleep"));
    h.wait_state("t1", TaskState::TaskRunning).await;
    h.agent.agent.kill("t1", fake_agent::scenario::kill_policy(Some(1500)));
    h.wait_state("t1", TaskState::TaskKilled).await;
    assert!(h.log.contains("kill t1 Some(1500000000)"), "{:?}", h.log.lines());
    h.agent.agent.send_message(&b"ping"[..]);
    h.log.wait_for("message ping", Duration::from_secs(5)).await;
    h.agent
        .agent
        .wait_for(
            "echo",
            Duration::from_secs(5),
            |s| s.transcript.iter().any(|e| e.to_json()["call"]["message"]["data"] == "ZWNobzogcGluZw=="),
            |_| String::new(),
        )
        .await
        .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_kills_reports_and_stops_after_acknowledgements() {
    // Acknowledgements come 300 ms after each update: a driver that did not wait for
    // the terminal one would end before it.
    let mut h =
        Harness::start(AgentConfig { ack_policy: AckPolicy::DelayMs(300), ..AgentConfig::default() }, |_| {}).await;
    h.log.wait_for("registered", Duration::from_secs(5)).await;
    h.agent.agent.launch(task("t1", "sleep"));
    h.wait_state("t1", TaskState::TaskRunning).await;
    h.agent.agent.shutdown();
    let outcome = h.join(Duration::from_secs(5)).await;
    let ended = h.agent.agent.elapsed().as_secs_f64();
    assert_eq!(outcome.status, DriverStatus::Stopped);
    assert_eq!(outcome.reason, Some(mesos_executor::ShutdownReason::AgentShutdown));
    assert!(outcome.is_success());
    assert_eq!(h.agent.agent.task_state("t1"), Some(TaskState::TaskKilled));
    let acked = ack_time(&h.agent.agent, "t1", TaskState::TaskKilled).expect("the terminal update was acknowledged");
    assert!(acked <= ended, "the driver ended at {ended} s, before the terminal ACK at {acked} s");
    // The handle fails fast once the driver is not running.
    let err = h.handle.send_status_update(update(&task("t1", "").task_id, TaskState::TaskRunning)).unwrap_err();
    assert!(matches!(err, DriverError::NotRunning(DriverStatus::Stopped)), "{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stop_waits_for_delayed_acknowledgements() {
    let mut h =
        Harness::start(AgentConfig { ack_policy: AckPolicy::DelayMs(300), ..AgentConfig::default() }, |_| {}).await;
    h.log.wait_for("registered", Duration::from_secs(5)).await;
    h.agent.agent.launch(task("t1", "finish"));
    h.wait_state("t1", TaskState::TaskFinished).await;
    let asked = std::time::Instant::now();
    h.handle.stop();
    assert_eq!(h.join(Duration::from_secs(5)).await.status, DriverStatus::Stopped);
    assert!(asked.elapsed() >= Duration::from_millis(150), "stop returned after {:?}", asked.elapsed());
    assert!(h.agent.agent.inspect(|s| s.unacked.is_empty()));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stop_is_bounded_when_acknowledgements_never_come() {
    let mut h = Harness::start(AgentConfig { ack_policy: AckPolicy::Withhold, ..AgentConfig::default() }, |c| {
        c.stop_timeout = Duration::from_millis(300);
    })
    .await;
    h.log.wait_for("registered", Duration::from_secs(5)).await;
    h.agent.agent.launch(task("t1", "finish"));
    h.wait_state("t1", TaskState::TaskFinished).await;
    h.handle.stop();
    assert_eq!(h.join(Duration::from_secs(3)).await.status, DriverStatus::Stopped);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn abort_ends_at_once_and_invalid_updates_fail_fast() {
    let mut h = Harness::start(AgentConfig::default(), |_| {}).await;
    h.log.wait_for("registered", Duration::from_secs(5)).await;
    let staging = update(&task("t1", "").task_id, TaskState::TaskStaging);
    assert!(matches!(h.handle.send_status_update(staging), Err(DriverError::InvalidUpdate { .. })));
    let nameless = update(&task("", "").task_id, TaskState::TaskRunning);
    assert!(matches!(h.handle.send_status_update(nameless), Err(DriverError::InvalidUpdate { .. })));
    h.handle.abort();
    assert_eq!(h.join(Duration::from_secs(3)).await.status, DriverStatus::Aborted);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn json_mode_speaks_json_both_ways() {
    let h = Harness::start(AgentConfig::default(), |c| c.content_type = mesos_executor::ContentType::Json).await;
    h.log.wait_for("registered", Duration::from_secs(5)).await;
    h.agent.agent.launch(task("t1", "finish"));
    h.wait_state("t1", TaskState::TaskFinished).await;
    h.wait_all_acked().await;
    let calls: Vec<serde_json::Value> =
        h.agent.agent.transcript().iter().map(|e| e.to_json()).filter(|j| j["kind"] == "call").collect();
    assert!(calls.iter().all(|c| c["content_type"] == "application/json"), "{calls:?}");
    let stream_json = h.agent.agent.inspect(|s| s.stream.as_ref().map(|st| st.content_type));
    assert_eq!(stream_json, Some(mesos_executor::ContentType::Json));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn authentication_token_is_sent() {
    let config = AgentConfig { auth_token: Some("jwt-for-the-executor".into()), ..AgentConfig::default() };
    let h = Harness::start(config, |_| {}).await;
    h.log.wait_for("registered", Duration::from_secs(5)).await;
    h.agent.agent.launch(task("t1", "finish"));
    h.wait_state("t1", TaskState::TaskFinished).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_wrong_token_is_fatal_with_a_clear_error() {
    let config = AgentConfig { auth_token: Some("the-right-token".into()), ..AgentConfig::default() };
    let mut h = Harness::start(config, |c| {
        c.env.auth_token = Some(mesos_executor::env::Secret::new("a-wrong-token"));
    })
    .await;
    assert_eq!(h.join(Duration::from_secs(5)).await.status, DriverStatus::Stopped);
    assert!(h.log.contains("error the agent answered '401 Unauthorized' to SUBSCRIBE"), "{:?}", h.log.lines());
    assert!(h.log.contains("shutdown"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pipelined_updates_of_a_task_arrive_in_order() {
    let h = Harness::start(AgentConfig::default(), |_| {}).await;
    h.log.wait_for("registered", Duration::from_secs(5)).await;
    let id = task("ordered", "").task_id;
    h.agent.agent.launch(task("ordered", "silent"));
    h.log.wait_for("launch ordered", Duration::from_secs(5)).await;
    for n in 0..2000 {
        let mut status = update(&id, TaskState::TaskRunning);
        status.message = Some(n.to_string());
        h.handle.send_status_update(status).unwrap();
    }
    h.agent
        .agent
        .wait_for(
            "2000 updates",
            Duration::from_secs(10),
            |s| s.task("ordered").is_some_and(|t| t.updates == 2000),
            |s| format!("{:?}", s.task("ordered").map(|t| t.updates)),
        )
        .await
        .unwrap();
    let order: Vec<u32> = h
        .agent
        .agent
        .transcript()
        .iter()
        .map(|e| e.to_json())
        .filter(|j| j["type"] == "UPDATE" && j["outcome"] == "applied")
        .map(|j| j["call"]["update"]["status"]["message"].as_str().unwrap().parse().unwrap())
        .collect();
    assert_eq!(order, (0..2000).collect::<Vec<u32>>());
}

/// Records the thread of every callback and whether two ever overlapped.
struct Observer {
    log: std::sync::Arc<std::sync::Mutex<Vec<(String, std::thread::ThreadId)>>>,
    busy: std::sync::Arc<std::sync::atomic::AtomicBool>,
}

impl Observer {
    fn note(&self, what: String) {
        assert!(!self.busy.swap(true, std::sync::atomic::Ordering::SeqCst), "two callbacks ran at once");
        self.log.lock().unwrap().push((what, std::thread::current().id()));
        std::thread::sleep(Duration::from_millis(2));
        self.busy.store(false, std::sync::atomic::Ordering::SeqCst);
    }
}

impl mesos_executor::Executor for Observer {
    fn registered(
        &mut self,
        _: &mesos_executor::DriverHandle,
        _: &mesos_executor::proto::v1::ExecutorInfo,
        _: &mesos_executor::proto::v1::FrameworkInfo,
        _: &mesos_executor::proto::v1::AgentInfo,
    ) {
        self.note("registered".into());
    }
    fn launch_task(&mut self, _: &mesos_executor::DriverHandle, task: mesos_executor::proto::v1::TaskInfo) {
        self.note(format!("launch {}", task.task_id.value));
    }
    fn kill_task(
        &mut self,
        _: &mesos_executor::DriverHandle,
        id: mesos_executor::proto::v1::TaskId,
        _: Option<mesos_executor::proto::v1::KillPolicy>,
    ) {
        self.note(format!("kill {}", id.value));
    }
    fn framework_message(&mut self, _: &mesos_executor::DriverHandle, data: bytes::Bytes) {
        self.note(format!("message {}", String::from_utf8_lossy(&data)));
    }
    fn shutdown(&mut self, driver: &mesos_executor::DriverHandle, _reason: mesos_executor::ShutdownReason) {
        self.note("shutdown".into());
        driver.stop();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn callbacks_run_one_at_a_time_on_one_thread_in_event_order() {
    let agent = fake_agent::FakeAgent::new(AgentConfig::default()).start().await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    agent.expect_executor(dir.path());
    let env = mesos_executor::ExecutorEnv::from_lookup(&agent.executor_env(dir.path())).unwrap();
    let mut config = mesos_executor::DriverConfig::new(env);
    config.heartbeat_interval = Duration::from_secs(1);
    let log = std::sync::Arc::default();
    let observer = Observer { log: std::sync::Arc::clone(&log), busy: Default::default() };
    let mut driver = mesos_executor::ExecutorDriver::new(observer, config);
    driver.start().unwrap();
    agent
        .agent
        .wait_for("subscribe", Duration::from_secs(5), |s| s.subscriptions > 0, |_| String::new())
        .await
        .unwrap();
    // A burst of events: they arrive back to back and must be handled in order.
    for i in 0..20 {
        agent.agent.launch(task(&format!("t{i}"), "x"));
        agent.agent.send_message(format!("m{i}").into_bytes());
        agent.agent.kill(&format!("t{i}"), None);
    }
    agent.agent.shutdown();
    let status = tokio::task::spawn_blocking(move || driver.join()).await.unwrap();
    assert_eq!(status.status, DriverStatus::Stopped);
    let log = log.lock().unwrap().clone();
    let threads: std::collections::HashSet<_> = log.iter().map(|(_, t)| *t).collect();
    assert_eq!(threads.len(), 1, "every callback on the driver's one thread");
    let mut expected = vec!["registered".to_owned()];
    for i in 0..20 {
        expected.extend([format!("launch t{i}"), format!("message m{i}"), format!("kill t{i}")]);
    }
    expected.push("shutdown".to_owned());
    assert_eq!(log.into_iter().map(|(w, _)| w).collect::<Vec<_>>(), expected);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn heartbeat_calls_are_sent_while_subscribed() {
    let h = Harness::start(AgentConfig::default(), |c| c.heartbeat_interval = Duration::from_secs(1)).await;
    h.log.wait_for("registered", Duration::from_secs(5)).await;
    h.agent
        .agent
        .wait_for(
            "a HEARTBEAT call",
            Duration::from_secs(4),
            |s| s.transcript.iter().any(|e| e.to_json()["type"] == "HEARTBEAT" && e.to_json()["status"] == 202),
            |_| String::new(),
        )
        .await
        .unwrap();
}
