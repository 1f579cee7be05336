//! The targets, measured: idle RSS of the daemon, LAUNCH to TASK_RUNNING latency with a
//! real process spawn, acknowledged status updates per second on loopback, and the time
//! from the agent's return to SUBSCRIBED. Prints figures; asserts nothing.
//! Run with `cargo bench --bench targets`.

use std::time::{Duration, Instant};

use fake_agent::{AgentConfig, FakeAgent, process::Output, transcript::Record};
use mesos_executor::{
    DriverConfig, DriverHandle, Executor, ExecutorDriver, ExecutorEnv,
    proto::v1::{AgentId, CommandInfo, KillPolicy, TaskId, TaskInfo, TaskState, TaskStatus, executor::event},
};

fn task(id: &str, command: &str) -> TaskInfo {
    TaskInfo {
        name: id.into(),
        task_id: TaskId { value: id.into() },
        agent_id: AgentId { value: "fake-agent-S0".into() },
        command: Some(CommandInfo { value: Some(command.into()), ..Default::default() }),
        ..Default::default()
    }
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    sorted[((sorted.len() - 1) as f64 * p).round() as usize]
}

fn rss_kib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next()?.parse().ok())
        .unwrap_or(0)
}

async fn daemon_rss_and_launch_latency() {
    let mut agent = FakeAgent::new(AgentConfig::default()).start().await.unwrap();
    let command = vec![env!("CARGO_BIN_EXE_mesos-executor").to_owned(), "--mode=custom".to_owned()];
    agent.launch_executor(&command, Output::SandboxFiles).unwrap();
    agent
        .agent
        .wait_for("subscribe", Duration::from_secs(10), |s| s.subscriptions > 0, |_| String::new())
        .await
        .unwrap();
    let pid = agent.agent.inner_container_members().into_iter().min().unwrap();
    tokio::time::sleep(Duration::from_secs(1)).await;
    let idle = rss_kib(pid);
    println!(
        "idle RSS of the daemon (subscribed, no task): {} KiB = {:.2} MiB (target <= 4 MiB)",
        idle,
        idle as f64 / 1024.0
    );

    let n = 300;
    for i in 0..n {
        agent.agent.launch(task(&format!("t{i}"), "exit 0"));
        agent
            .agent
            .wait_for(
                "running",
                Duration::from_secs(10),
                |s| s.task(&format!("t{i}")).is_some_and(|t| t.state.is_terminal()),
                |_| String::new(),
            )
            .await
            .unwrap();
    }
    let entries = agent.agent.transcript();
    let mut launched = std::collections::HashMap::new();
    let mut latencies = Vec::new();
    for e in &entries {
        match &e.record {
            Record::Event { event, .. } if event.r#type() == event::Type::Launch => {
                launched.insert(event.launch.as_ref().unwrap().task.task_id.value.clone(), e.at);
            }
            Record::Call { call, status: 202, .. } => {
                if let Some(u) = &call.update
                    && u.status.state == TaskState::TaskRunning as i32
                    && let Some(at) = launched.get(&u.status.task_id.value)
                {
                    latencies.push(e.at - *at);
                }
            }
            _ => {}
        }
    }
    latencies.sort();
    println!(
        "LAUNCH written -> TASK_RUNNING accepted, {} tasks spawning /bin/sh: p50 {:.2} ms, p90 {:.2} ms, p99 {:.2} ms (target p50 <= 2 ms)",
        latencies.len(),
        percentile(&latencies, 0.5).as_secs_f64() * 1e3,
        percentile(&latencies, 0.9).as_secs_f64() * 1e3,
        percentile(&latencies, 0.99).as_secs_f64() * 1e3,
    );
    println!("RSS of the daemon after {n} tasks: {} KiB", rss_kib(pid));
}

struct Flood {
    updates: usize,
}

impl Executor for Flood {
    fn launch_task(&mut self, driver: &DriverHandle, task: TaskInfo) {
        let driver = driver.clone();
        let updates = self.updates;
        std::thread::spawn(move || {
            for _ in 0..updates {
                let status = TaskStatus {
                    task_id: task.task_id.clone(),
                    state: TaskState::TaskRunning as i32,
                    ..Default::default()
                };
                if driver.send_status_update(status).is_err() {
                    return;
                }
            }
        });
    }
    fn kill_task(&mut self, _: &DriverHandle, _: TaskId, _: Option<KillPolicy>) {}
    fn shutdown(&mut self, driver: &DriverHandle) {
        driver.stop();
    }
}

async fn acknowledged_updates_per_second() {
    let agent = FakeAgent::new(AgentConfig::default()).start().await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    agent.expect_executor(dir.path());
    let env = ExecutorEnv::from_lookup(&agent.executor_env(dir.path())).unwrap();
    let updates = 60_000;
    let mut driver = ExecutorDriver::new(Flood { updates }, DriverConfig::new(env));
    driver.start().unwrap();
    agent
        .agent
        .wait_for("subscribe", Duration::from_secs(10), |s| s.subscriptions > 0, |_| String::new())
        .await
        .unwrap();
    let start = Instant::now();
    agent.agent.launch(task("flood", "x"));
    let acked = |s: &fake_agent::agent::State| {
        s.task("flood").map_or(0, |t| t.updates as usize) == updates && s.unacked.is_empty()
    };
    agent
        .agent
        .wait_for("all acked", Duration::from_secs(120), acked, |s| format!("{:?}", s.task("flood").map(|t| t.updates)))
        .await
        .unwrap();
    let took = start.elapsed();
    println!(
        "acknowledged status updates: {updates} in {:.2} s = {:.0} per second on one keep-alive connection (target >= 20,000)",
        took.as_secs_f64(),
        updates as f64 / took.as_secs_f64()
    );
    driver.abort();
    driver.join();
}

async fn resubscription_after_agent_restart() {
    let config = AgentConfig { checkpoint: true, ..AgentConfig::default() };
    let agent = FakeAgent::new(config).start().await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    agent.expect_executor(dir.path());
    let env = ExecutorEnv::from_lookup(&agent.executor_env(dir.path())).unwrap();
    let mut driver = ExecutorDriver::new(Flood { updates: 0 }, DriverConfig::new(env));
    driver.start().unwrap();
    let mut back = Vec::new();
    for _ in 0..25 {
        let before = agent.agent.inspect(|s| s.subscriptions);
        agent
            .agent
            .wait_for(
                "subscribed",
                Duration::from_secs(5),
                |s| s.subscriptions >= before && s.stream.is_some(),
                |_| String::new(),
            )
            .await
            .unwrap();
        agent.agent.restart(Duration::from_millis(300), Duration::from_millis(100)).await;
        let window = Instant::now();
        agent
            .agent
            .wait_for("resubscribed", Duration::from_secs(5), |s| s.subscriptions > before, |_| String::new())
            .await
            .unwrap();
        back.push(window.elapsed());
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    back.sort();
    println!(
        "agent accepts SUBSCRIBE again -> SUBSCRIBED, {} restarts: p50 {:.1} ms, max {:.1} ms (target <= 50 ms)",
        back.len(),
        percentile(&back, 0.5).as_secs_f64() * 1e3,
        back.last().unwrap().as_secs_f64() * 1e3
    );
    driver.abort();
    driver.join();
}

fn main() {
    if !std::env::args().any(|a| a == "--bench") {
        println!("targets: run with `cargo bench --bench targets`");
        return;
    }
    let runtime = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
    // `cargo bench --bench targets -- flood` runs one part (rss, flood, restart).
    let only: Vec<String> = std::env::args().filter(|a| ["rss", "flood", "restart"].contains(&a.as_str())).collect();
    let wanted = |name: &str| only.is_empty() || only.iter().any(|o| o == name);
    runtime.block_on(async {
        if wanted("rss") {
            daemon_rss_and_launch_latency().await;
        }
        if wanted("flood") {
            acknowledged_updates_per_second().await;
        }
        if wanted("restart") {
            resubscription_after_agent_restart().await;
        }
    });
}
