//! The targets, measured: idle RSS of the daemon, LAUNCH to TASK_RUNNING latency with a
//! real process spawn, acknowledged status updates per second on loopback (and the
//! driver thread's CPU per update), the time from the agent's return to SUBSCRIBED, and
//! a herd of 200 executors through an agent restart. Prints figures; asserts nothing.
//! Run with `cargo bench --bench targets`.

#[allow(dead_code)]
#[path = "../../tests/support/herd.rs"]
mod herd;

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

fn status_kib(pid: u32, field: &str) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix(field))
        .and_then(|v| v.split_whitespace().next()?.parse().ok())
        .unwrap_or(0)
}

fn rss_kib(pid: u32) -> u64 {
    status_kib(pid, "VmRSS:")
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
    let mut members: Vec<u32> = agent.agent.container_members().into_iter().collect();
    members.sort();
    // The daemon starts first; its watchdog (same binary) is its child.
    let pid = members[0];
    let mut samples = Vec::new();
    for _ in 0..8 {
        tokio::time::sleep(Duration::from_secs(1)).await;
        samples.push(rss_kib(pid));
    }
    println!("  RSS each second while idle (KiB): {samples:?}");
    for watchdog in &members[1..] {
        println!(
            "  watchdog process {watchdog}: RSS {} KiB (anonymous {} KiB)",
            rss_kib(*watchdog),
            status_kib(*watchdog, "RssAnon:")
        );
    }
    let idle = *samples.last().unwrap();
    println!(
        "idle RSS of the daemon (subscribed, no task): {} KiB = {:.2} MiB (target <= 4 MiB); anonymous {} KiB, file-backed {} KiB; {:?}",
        idle,
        idle as f64 / 1024.0,
        status_kib(pid, "RssAnon:"),
        status_kib(pid, "RssFile:"),
        std::fs::read_link(format!("/proc/{pid}/exe")).unwrap_or_default(),
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
    let mut starting = std::collections::HashMap::new();
    let (mut to_running, mut to_starting, mut spawn) = (Vec::new(), Vec::new(), Vec::new());
    for e in &entries {
        match &e.record {
            Record::Event { event, .. } if event.r#type() == event::Type::Launch => {
                launched.insert(event.launch.as_ref().unwrap().task.task_id.value.clone(), e.at);
            }
            Record::Call { call, status: 202, .. } => {
                let Some(u) = &call.update else { continue };
                let Some(at) = launched.get(&u.status.task_id.value) else { continue };
                if u.status.state == TaskState::TaskStarting as i32 {
                    to_starting.push(e.at - *at);
                    starting.insert(u.status.task_id.value.clone(), e.at);
                } else if u.status.state == TaskState::TaskRunning as i32 {
                    to_running.push(e.at - *at);
                    if let Some(s) = starting.get(&u.status.task_id.value) {
                        spawn.push(e.at - *s);
                    }
                }
            }
            _ => {}
        }
    }
    let ms = |v: &mut Vec<Duration>, p: f64| {
        v.sort();
        percentile(v, p).as_secs_f64() * 1e3
    };
    println!(
        "LAUNCH written -> TASK_RUNNING accepted, {} tasks spawning /bin/sh: p50 {:.2} ms, p90 {:.2} ms, p99 {:.2} ms (target p50 <= 2 ms)",
        to_running.len(),
        ms(&mut to_running, 0.5),
        ms(&mut to_running, 0.9),
        ms(&mut to_running, 0.99),
    );
    println!(
        "  of which LAUNCH -> TASK_STARTING accepted p50 {:.2} ms, TASK_STARTING -> TASK_RUNNING (the spawn) p50 {:.2} ms",
        ms(&mut to_starting, 0.5),
        ms(&mut spawn, 0.5)
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
    fn shutdown(&mut self, driver: &DriverHandle, _reason: mesos_executor::ShutdownReason) {
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
    let cpu_before = driver_thread_cpu();
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
    let cpu = driver_thread_cpu().saturating_sub(cpu_before);
    println!(
        "acknowledged status updates: {updates} in {:.2} s = {:.0} per second, one call at a time on a keep-alive connection (goal >= 10,000); driver thread CPU {:.1} us per update",
        took.as_secs_f64(),
        updates as f64 / took.as_secs_f64(),
        cpu.as_secs_f64() * 1e6 / updates as f64,
    );
    driver.abort();
    let _ = driver.join();
}

/// User and system CPU time of the driver's thread (`mesos-executor-driver`, which
/// /proc shows truncated to 15 bytes) in this process.
fn driver_thread_cpu() -> Duration {
    let ticks_per_second = 100; // USER_HZ on Linux
    let mut ticks = 0u64;
    for entry in std::fs::read_dir("/proc/self/task").into_iter().flatten().flatten() {
        let stat = std::fs::read_to_string(entry.path().join("stat")).unwrap_or_default();
        let (Some(open), Some(close)) = (stat.find('('), stat.rfind(')')) else { continue };
        if !stat[open + 1..close].starts_with("mesos-executor-") {
            continue;
        }
        let fields: Vec<&str> = stat[close + 1..].split_whitespace().collect();
        // Fields 14 and 15 of stat (utime, stime), counted after the ')'.
        ticks += fields.get(11).and_then(|v| v.parse::<u64>().ok()).unwrap_or(0);
        ticks += fields.get(12).and_then(|v| v.parse::<u64>().ok()).unwrap_or(0);
    }
    Duration::from_millis(ticks * 1000 / ticks_per_second)
}

async fn herd_through_an_agent_restart() {
    let n = 200;
    let report = herd::run(n, Duration::from_secs(3), Duration::from_secs(1), Duration::from_secs(2)).await;
    let rates = &report.attempts_per_second;
    println!(
        "herd of {n} executors, agent down 3 s then 503 for 1 s: back after the agent accepts SUBSCRIBE p50 {:.0} ms, p99 {:.0} ms (goal <= 500 ms), {} missing the 2 s window; attempts per second per executor while away: mean {:.2}, max {:.2} (goal <= 4)",
        herd::quantile(&report.back, 0.5).as_secs_f64() * 1e3,
        herd::quantile(&report.back, 0.99).as_secs_f64() * 1e3,
        report.missing,
        rates.iter().sum::<f64>() / rates.len() as f64,
        rates.iter().copied().fold(0.0, f64::max),
    );
}

fn main() {
    if !std::env::args().any(|a| a == "--bench") {
        println!("targets: run with `cargo bench --bench targets`");
        return;
    }
    let runtime = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
    // `cargo bench --bench targets -- flood` runs one part (rss, flood, herd).
    let only: Vec<String> = std::env::args().filter(|a| ["rss", "flood", "herd"].contains(&a.as_str())).collect();
    let wanted = |name: &str| only.is_empty() || only.iter().any(|o| o == name);
    runtime.block_on(async {
        if wanted("rss") {
            daemon_rss_and_launch_latency().await;
        }
        if wanted("flood") {
            acknowledged_updates_per_second().await;
        }
        if wanted("herd") {
            herd_through_an_agent_restart().await;
        }
    });
}
