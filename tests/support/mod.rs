//! Shared test helpers: a fake agent, a recording test executor, and the driver
//! running it in-process.

#![allow(dead_code)]

pub mod herd;

use std::{
    collections::HashSet,
    sync::{Arc, Mutex},
    time::Duration,
};

use bytes::Bytes;
use fake_agent::{AgentConfig, FakeAgent, Listening};
use mesos_executor::{
    DriverConfig, DriverHandle, DriverOutcome, Executor, ExecutorDriver, ExecutorEnv,
    proto::v1::{
        AgentInfo, CommandInfo, ExecutorInfo, FrameworkInfo, KillPolicy, TaskId, TaskInfo, TaskState, TaskStatus,
    },
};

/// What the test executor saw, in order.
#[derive(Clone, Default)]
pub struct Log(Arc<Mutex<Vec<String>>>);

impl Log {
    pub fn push(&self, line: impl Into<String>) {
        self.0.lock().unwrap().push(line.into());
    }

    pub fn lines(&self) -> Vec<String> {
        self.0.lock().unwrap().clone()
    }

    pub fn contains(&self, needle: &str) -> bool {
        self.lines().iter().any(|l| l.contains(needle))
    }

    pub async fn wait_for(&self, needle: &str, timeout: Duration) {
        let deadline = tokio::time::Instant::now() + timeout;
        while !self.contains(needle) {
            assert!(tokio::time::Instant::now() < deadline, "no {needle:?} in {:?}", self.lines());
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    }
}

/// Reports RUNNING on launch, FINISHED when the command says `finish`, KILLED on kill,
/// echoes messages, and on shutdown kills its tasks and stops the driver.
pub struct TestExecutor {
    pub log: Log,
    running: HashSet<String>,
}

impl TestExecutor {
    pub fn new(log: Log) -> Self {
        TestExecutor { log, running: HashSet::new() }
    }
}

pub fn update(task_id: &TaskId, state: TaskState) -> TaskStatus {
    TaskStatus { task_id: task_id.clone(), state: state as i32, ..Default::default() }
}

impl Executor for TestExecutor {
    fn registered(&mut self, _: &DriverHandle, e: &ExecutorInfo, f: &FrameworkInfo, a: &AgentInfo) {
        self.log.push(format!("registered {} {} {}", e.executor_id.value, f.name, a.hostname));
    }
    fn reregistered(&mut self, _: &DriverHandle, a: &AgentInfo) {
        self.log.push(format!("reregistered {}", a.hostname));
    }
    fn disconnected(&mut self, _: &DriverHandle) {
        self.log.push("disconnected");
    }
    fn launch_task(&mut self, driver: &DriverHandle, task: TaskInfo) {
        self.log.push(format!("launch {}", task.task_id.value));
        let command = task.command.as_ref().and_then(|c| c.value.clone()).unwrap_or_default();
        if command.contains("silent") {
            self.running.insert(task.task_id.value);
            return;
        }
        driver.send_status_update(update(&task.task_id, TaskState::TaskRunning)).unwrap();
        if command.contains("finish") {
            driver.send_status_update(update(&task.task_id, TaskState::TaskFinished)).unwrap();
        } else {
            self.running.insert(task.task_id.value);
        }
    }
    fn kill_task(&mut self, driver: &DriverHandle, task_id: TaskId, policy: Option<KillPolicy>) {
        self.log.push(format!(
            "kill {} {:?}",
            task_id.value,
            policy.and_then(|p| p.grace_period).map(|g| g.nanoseconds)
        ));
        if self.running.remove(&task_id.value) {
            driver.send_status_update(update(&task_id, TaskState::TaskKilled)).unwrap();
        }
    }
    fn framework_message(&mut self, driver: &DriverHandle, data: Bytes) {
        self.log.push(format!("message {}", String::from_utf8_lossy(&data)));
        let mut reply = b"echo: ".to_vec();
        reply.extend_from_slice(&data);
        driver.send_framework_message(reply).unwrap();
    }
    fn shutdown(&mut self, driver: &DriverHandle, reason: mesos_executor::ShutdownReason) {
        self.log.push("shutdown");
        self.log.push(format!("reason {reason:?}"));
        for id in self.running.drain() {
            let _ = driver.send_status_update(update(&TaskId { value: id }, TaskState::TaskKilled));
        }
        driver.stop();
    }
    fn error(&mut self, _: &DriverHandle, message: &str) {
        self.log.push(format!("error {message}"));
    }
}

/// When (transcript seconds) the agent wrote the ACKNOWLEDGED for the accepted update
/// of `task` in `state` to a live stream; `None` if it never did.
pub fn ack_time(agent: &fake_agent::Agent, task: &str, state: TaskState) -> Option<f64> {
    let entries: Vec<serde_json::Value> = agent.transcript().iter().map(|e| e.to_json()).collect();
    let uuid = entries.iter().find_map(|j| {
        let status = &j["call"]["update"]["status"];
        (j["type"] == "UPDATE"
            && j["status"] == 202
            && status["task_id"]["value"] == task
            && status["state"] == state.as_str_name())
        .then(|| status["uuid"].clone())
    })?;
    entries.iter().find_map(|j| {
        (j["type"] == "ACKNOWLEDGED" && !j["stream"].is_null() && j["event"]["acknowledged"]["uuid"] == uuid)
            .then(|| j["t"].as_f64())
            .flatten()
    })
}

pub fn task(id: &str, command: &str) -> TaskInfo {
    TaskInfo {
        name: id.into(),
        task_id: TaskId { value: id.into() },
        agent_id: mesos_executor::proto::v1::AgentId { value: "fake-agent-S0".into() },
        command: Some(CommandInfo { value: Some(command.into()), ..Default::default() }),
        ..Default::default()
    }
}

/// A fake agent with the driver running a [`TestExecutor`] in-process.
pub struct Harness {
    pub agent: Listening,
    pub log: Log,
    pub handle: DriverHandle,
    driver: Option<tokio::task::JoinHandle<DriverOutcome>>,
    _sandbox: tempfile::TempDir,
}

impl Harness {
    pub async fn start(config: AgentConfig, tweak: impl FnOnce(&mut DriverConfig)) -> Harness {
        let agent = FakeAgent::new(config).start().await.unwrap();
        let sandbox = tempfile::tempdir().unwrap();
        agent.expect_executor(sandbox.path());
        let env = ExecutorEnv::from_lookup(&agent.executor_env(sandbox.path())).unwrap();
        let mut config = DriverConfig::new(env);
        config.stop_timeout = Duration::from_secs(5);
        tweak(&mut config);
        let log = Log::default();
        let mut driver = ExecutorDriver::new(TestExecutor::new(log.clone()), config);
        let handle = driver.handle();
        driver.start().unwrap();
        let driver = tokio::task::spawn_blocking(move || driver.join());
        Harness { agent, log, handle, driver: Some(driver), _sandbox: sandbox }
    }

    /// Waits for the driver to end and returns how it ended.
    pub async fn join(&mut self, timeout: Duration) -> DriverOutcome {
        let driver = self.driver.take().expect("joined once");
        tokio::time::timeout(timeout, driver).await.expect("driver ended in time").unwrap()
    }

    pub async fn wait_state(&self, task: &str, state: TaskState) {
        self.agent
            .agent
            .wait_for(
                &format!("{task} {state:?}"),
                Duration::from_secs(5),
                |s| s.task(task).is_some_and(|t| t.state == state),
                |s| format!("{:?}", s.task(task).map(|t| t.state)),
            )
            .await
            .unwrap();
    }

    pub async fn wait_all_acked(&self) {
        self.agent
            .agent
            .wait_for(
                "all acked",
                Duration::from_secs(5),
                |s| s.unacked.is_empty(),
                |s| format!("{} unacked", s.unacked.len()),
            )
            .await
            .unwrap();
    }
}

impl Drop for Harness {
    fn drop(&mut self) {
        self.handle.abort();
    }
}
