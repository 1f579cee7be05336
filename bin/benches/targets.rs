//! The targets, measured the way an operator pays for them, for our daemon and for a
//! peer (a command executor on pymesos, `bin/benches/peer/pymesos_executor.py`) on the
//! same fake agent and machine: memory (PSS and USS from `/proc/PID/smaps_rollup`, VmRSS
//! beside them) idle, with 50 live tasks, with fifty executors on one agent, and the peak
//! under a burst of 1,000 tasks; process start to SUBSCRIBE; LAUNCH to TASK_RUNNING with a
//! real process spawn; CPU per acknowledged update; acknowledged updates per second from a
//! synthetic executor on our trait; and a herd of 200 executors through an agent restart.
//! Prints a table and, with `--json PATH`, writes it. Asserts nothing.
//!
//! Run it with `scripts/bench.sh`, which builds in release mode and makes the peer's
//! virtualenv; `cargo bench -p mesos-executor-daemon --bench targets` runs our side
//! alone (set `PEER_PYTHON` to a python with pymesos for the peer). Pick parts with
//! `-- memory fifty speed cpu burst flood herd`; the number of tasks of `speed` with
//! `BENCH_SPEED_TASKS` (500).

#[allow(dead_code)]
#[path = "../../tests/support/herd.rs"]
mod herd;

use std::{
    collections::BTreeMap,
    path::PathBuf,
    process::Stdio,
    time::{Duration, Instant},
};

use fake_agent::{
    AgentConfig, FakeAgent, Listening, herd::HerdAgent, process::Output, scenario::TaskSpec, transcript::Record,
};
use mesos_executor::{
    DriverConfig, DriverHandle, Executor, ExecutorDriver, ExecutorEnv, ShutdownReason,
    proto::v1::{KillPolicy, TaskId, TaskInfo, TaskState, TaskStatus, executor::event},
};
use serde_json::{Value, json};

/// An executor to measure.
#[derive(Clone)]
struct Subject {
    name: &'static str,
    command: Vec<String>,
    /// Whether its memory includes a watchdog child (ours).
    watchdog: bool,
}

fn subjects() -> Vec<Subject> {
    // `BENCH_WRAP="strace -f -tt -T -o /tmp/trace"` (words split on white space) runs our
    // daemon under that program, to see where its time goes; its memory figures are the
    // wrapper's then, not the daemon's.
    let wrap = std::env::var("BENCH_WRAP").unwrap_or_default();
    let mut command: Vec<String> = wrap.split_whitespace().map(str::to_owned).collect();
    command.extend([env!("CARGO_BIN_EXE_mesos-executor").to_owned(), "--mode=custom".to_owned()]);
    let mut out = vec![Subject { name: "mesos-executor", command, watchdog: true }];
    if let Ok(python) = std::env::var("PEER_PYTHON") {
        let script = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("benches/peer/pymesos_executor.py");
        out.push(Subject { name: "pymesos", command: vec![python, script.display().to_string()], watchdog: false });
    }
    out
}

// ---- /proc ----

/// (PSS, USS, RSS) in KiB.
fn smaps(pid: u32) -> (u64, u64, u64) {
    let text = std::fs::read_to_string(format!("/proc/{pid}/smaps_rollup")).unwrap_or_default();
    let field = |name: &str| {
        text.lines()
            .find_map(|l| l.strip_prefix(name))
            .and_then(|v| v.split_whitespace().next()?.parse::<u64>().ok())
            .unwrap_or(0)
    };
    (field("Pss:"), field("Private_Clean:") + field("Private_Dirty:"), field("Rss:"))
}

fn status_kib(pid: u32, field: &str) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix(field))
        .and_then(|v| v.split_whitespace().next()?.parse().ok())
        .unwrap_or(0)
}

/// User + system CPU of a process, in seconds.
fn cpu_seconds(pid: u32) -> f64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    let Some(close) = stat.rfind(')') else { return 0.0 };
    let fields: Vec<&str> = stat[close + 1..].split_whitespace().collect();
    let ticks: u64 = [11, 12].iter().filter_map(|i| fields.get(*i)?.parse::<u64>().ok()).sum();
    ticks as f64 / 100.0
}

fn children(pid: u32) -> Vec<u32> {
    std::fs::read_dir(format!("/proc/{pid}/task"))
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|t| std::fs::read_to_string(t.path().join("children")).ok())
        .flat_map(|l| l.split_whitespace().filter_map(|p| p.parse().ok()).collect::<Vec<u32>>())
        .collect()
}

/// The executor's own processes: it, and our watchdog (its child running the same program).
fn executor_pids(subject: &Subject, pid: u32) -> Vec<u32> {
    let mut pids = vec![pid];
    if subject.watchdog {
        pids.extend(children(pid).into_iter().filter(|c| {
            std::fs::read(format!("/proc/{c}/cmdline"))
                .is_ok_and(|c| String::from_utf8_lossy(&c).contains("--watchdog"))
        }));
    }
    pids
}

fn memory(pids: &[u32]) -> (u64, u64, u64) {
    pids.iter().map(|p| smaps(*p)).fold((0, 0, 0), |a, b| (a.0 + b.0, a.1 + b.1, a.2 + b.2))
}

fn mib(kib: u64) -> f64 {
    kib as f64 / 1024.0
}

fn quantile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    sorted[((sorted.len() - 1) as f64 * p).round() as usize]
}

// ---- one executor under a fake agent ----

/// A shell-command task, as the fake agent builds one from a scenario's task.
fn task(id: &str, command: &str) -> TaskInfo {
    TaskSpec { task_id: id.into(), command: Some(command.into()), ..Default::default() }.to_task_info("fake-agent-S0")
}

struct Running {
    agent: Listening,
    pid: u32,
    /// Agent-clock time at which the process was started.
    spawned: f64,
}

async fn launch(subject: &Subject) -> Running {
    let mut agent = FakeAgent::new(AgentConfig::default()).start().await.unwrap();
    let spawned = agent.agent.elapsed().as_secs_f64();
    agent.launch_executor(&subject.command, Output::SandboxFiles).unwrap();
    agent
        .agent
        .wait_for("subscribe", Duration::from_secs(30), |s| s.subscriptions > 0, |_| String::new())
        .await
        .unwrap();
    let pid = agent.agent.container_members().into_iter().min().unwrap_or(0);
    Running { agent, pid, spawned }
}

async fn wait_states(agent: &Listening, ids: &[String], state: TaskState, within: Duration) -> bool {
    let done = |s: &fake_agent::agent::State| ids.iter().all(|id| s.task(id).is_some_and(|t| t.state == state));
    agent.agent.wait_for("states", within, done, |_| String::new()).await.is_ok()
}

/// Samples the memory of `pids` every 100 ms for `window`: (steady = median, max) of
/// PSS, USS and RSS, in MiB.
async fn sample(pids: &[u32], window: Duration) -> Value {
    let mut series: [Vec<f64>; 3] = Default::default();
    let end = Instant::now() + window;
    while Instant::now() < end {
        let (pss, uss, rss) = memory(pids);
        for (s, v) in series.iter_mut().zip([pss, uss, rss]) {
            s.push(mib(v));
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let stats = |s: &mut Vec<f64>| {
        s.sort_by(f64::total_cmp);
        json!({"steady": quantile(s, 0.5), "max": s.last().copied().unwrap_or(f64::NAN)})
    };
    let [mut pss, mut uss, mut rss] = series;
    json!({"pss": stats(&mut pss), "uss": stats(&mut uss), "rss": stats(&mut rss)})
}

async fn memory_idle_and_live(subject: &Subject, idle_for: Duration) -> Value {
    let run = launch(subject).await;
    let start_to_subscribe = run.agent.agent.inspect(|s| {
        s.transcript.iter().find_map(|e| match &e.record {
            Record::Call { call, .. }
                if call.r#type() == mesos_executor::proto::v1::executor::call::Type::Subscribe =>
            {
                Some(e.at.as_secs_f64())
            }
            _ => None,
        })
    });
    let pids = executor_pids(subject, run.pid);
    let idle = sample(&pids, idle_for).await;
    let ids: Vec<String> = (0..50).map(|i| format!("live-{i}")).collect();
    for id in &ids {
        run.agent.agent.launch(task(id, "sleep 600"));
    }
    let live = if wait_states(&run.agent, &ids, TaskState::TaskRunning, Duration::from_secs(60)).await {
        sample(&pids, Duration::from_secs(5)).await
    } else {
        json!("not all 50 tasks ran")
    };
    json!({
        "start_to_subscribe_ms": start_to_subscribe.map(|t| (t - run.spawned) * 1e3),
        "idle": idle,
        "live_50": live,
    })
}

/// LAUNCH written to TASK_RUNNING received, 500 tasks one after another, from the
/// agent's transcript.
async fn launch_latency(subject: &Subject, n: usize) -> Value {
    let run = launch(subject).await;
    let mut latencies = Vec::new();
    for i in 0..n {
        let id = format!("lat-{i}");
        run.agent.agent.launch(task(&id, "true"));
        if !wait_states(&run.agent, std::slice::from_ref(&id), TaskState::TaskFinished, Duration::from_secs(30)).await {
            return json!(format!("task {id} did not finish"));
        }
        let times = run.agent.agent.inspect(|s| {
            let launched = s.transcript.iter().find_map(|e| match &e.record {
                Record::Event { event, .. } if event.launch.as_ref().is_some_and(|l| l.task.task_id.value == id) => {
                    Some(e.at.as_secs_f64())
                }
                _ => None,
            });
            let running = s.transcript.iter().find_map(|e| match &e.record {
                Record::Call { call, status: 202, .. } => call
                    .update
                    .as_ref()
                    .filter(|u| u.status.task_id.value == id && u.status.state == TaskState::TaskRunning as i32)
                    .map(|_| e.at.as_secs_f64()),
                _ => None,
            });
            launched.zip(running)
        });
        if let Some((launched, running)) = times {
            latencies.push((running - launched) * 1e3);
        }
    }
    latencies.sort_by(f64::total_cmp);
    json!({"p50_ms": quantile(&latencies, 0.5), "p99_ms": quantile(&latencies, 0.99), "tasks": latencies.len()})
}

/// CPU of the executor (user + system) per acknowledged update, over tasks that each
/// make their updates; and the peak memory (VmHWM) through a burst of 1,000 tasks.
async fn cpu_and_burst(subject: &Subject, updates_wanted: usize) -> Value {
    let run = launch(subject).await;
    let pids = executor_pids(subject, run.pid);
    let acked = |s: &fake_agent::agent::State| {
        s.transcript.iter().filter(|e| matches!(&e.record, Record::Event { event, stream: Some(_) } if event.r#type() == event::Type::Acknowledged)).count()
    };
    let cpu_before: f64 = pids.iter().map(|p| cpu_seconds(*p)).sum();
    let acked_before = run.agent.agent.inspect(acked);
    let mut batch = 0;
    while run.agent.agent.inspect(acked) - acked_before < updates_wanted {
        let ids: Vec<String> = (0..50).map(|i| format!("cpu-{batch}-{i}")).collect();
        for id in &ids {
            run.agent.agent.launch(task(id, "true"));
        }
        if !wait_states(&run.agent, &ids, TaskState::TaskFinished, Duration::from_secs(60)).await {
            return json!("tasks did not finish");
        }
        batch += 1;
    }
    tokio::time::sleep(Duration::from_millis(200)).await;
    let cpu = pids.iter().map(|p| cpu_seconds(*p)).sum::<f64>() - cpu_before;
    let updates = run.agent.agent.inspect(acked) - acked_before;
    // The burst: 1,000 tasks at once.
    let ids: Vec<String> = (0..1000).map(|i| format!("burst-{i}")).collect();
    for id in &ids {
        run.agent.agent.launch(task(id, "sleep 1"));
    }
    let finished = wait_states(&run.agent, &ids, TaskState::TaskFinished, Duration::from_secs(120)).await;
    let hwm: u64 = pids.iter().map(|p| status_kib(*p, "VmHWM:")).max().unwrap_or(0);
    json!({
        "cpu_us_per_update": cpu * 1e6 / updates.max(1) as f64,
        "updates": updates,
        "burst_1000_vmhwm_mib": mib(hwm),
        "burst_1000_finished": finished,
    })
}

// ---- many executors on one agent ----

async fn spawn_many(
    subject: &Subject,
    herd: &HerdAgent,
    n: usize,
    dir: &std::path::Path,
) -> Vec<tokio::process::Child> {
    let mut children = Vec::new();
    for i in 0..n {
        let id = format!("{}-{i:04}", subject.name);
        let sandbox = dir.join(&id);
        std::fs::create_dir_all(&sandbox).unwrap();
        let mut env = herd.executor_env(&id, &sandbox);
        env.insert("PATH".into(), std::env::var("PATH").unwrap_or_default());
        let child = tokio::process::Command::new(&subject.command[0])
            .args(&subject.command[1..])
            .env_clear()
            .envs(&env)
            .current_dir(&sandbox)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .kill_on_drop(true)
            .spawn()
            .unwrap();
        children.push(child);
    }
    let deadline = Instant::now() + Duration::from_secs(120);
    while herd.seen().values().filter(|s| s.subscribed_at.is_some()).count() < n && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    children
}

async fn fifty(subject: &Subject) -> Value {
    let config = AgentConfig { checkpoint: true, ..AgentConfig::default() };
    let herd = HerdAgent::start(config).await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let children = spawn_many(subject, &herd, 50, dir.path()).await;
    tokio::time::sleep(Duration::from_secs(3)).await;
    let per: Vec<u64> =
        children.iter().filter_map(|c| c.id()).map(|pid| memory(&executor_pids(subject, pid)).0).collect();
    let subscribed = herd.seen().values().filter(|s| s.subscribed_at.is_some()).count();
    json!({"pss_per_executor_mib": mib(per.iter().sum::<u64>() / per.len().max(1) as u64), "subscribed": subscribed})
}

async fn herd_restart(subject: &Subject, n: usize) -> Value {
    let config = AgentConfig { checkpoint: true, recovery_timeout: Duration::from_secs(60), ..AgentConfig::default() };
    let herd = HerdAgent::start(config).await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let _children = spawn_many(subject, &herd, n, dir.path()).await;
    let before: u64 = herd.seen().values().map(|s| s.refused).sum();
    let away = Instant::now();
    herd.restart(Duration::from_secs(3), Duration::from_secs(1)).await;
    let outage = away.elapsed().as_secs_f64();
    let attempts = herd.down_connects() + herd.seen().values().map(|s| s.refused).sum::<u64>() - before;
    let accepted = herd.accepting_since().unwrap_or_else(Instant::now);
    tokio::time::sleep(Duration::from_secs(20)).await;
    let mut back: Vec<f64> = herd
        .seen()
        .values()
        .filter_map(|s| s.subscribed_at.filter(|t| *t >= accepted).map(|t| (t - accepted).as_secs_f64() * 1e3))
        .collect();
    back.sort_by(f64::total_cmp);
    json!({
        "back_p50_ms": quantile(&back, 0.5),
        "back_p99_ms": quantile(&back, 0.99),
        "back_within_2s": back.iter().filter(|b| **b <= 2000.0).count(),
        "executors": n,
        "attempts_per_second_per_executor": attempts as f64 / n as f64 / outage,
    })
}

// ---- the synthetic executor on our trait ----

struct Flood {
    updates: usize,
}

impl Executor for Flood {
    fn launch_task(&mut self, driver: &DriverHandle, task: TaskInfo) {
        let (driver, updates) = (driver.clone(), self.updates);
        std::thread::spawn(move || {
            for _ in 0..updates {
                if driver.send_status_update(TaskStatus::running(&task.task_id)).is_err() {
                    return;
                }
            }
        });
    }
    fn kill_task(&mut self, _: &DriverHandle, _: TaskId, _: Option<KillPolicy>) {}
    fn shutdown(&mut self, driver: &DriverHandle, _: ShutdownReason) {
        driver.stop();
    }
}

async fn flood(updates: usize) -> Value {
    let agent = FakeAgent::new(AgentConfig::default()).start().await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    agent.expect_executor(dir.path());
    let env = ExecutorEnv::from_lookup(&agent.executor_env(dir.path())).unwrap();
    let mut config = DriverConfig::new(env);
    config.metrics_file = None;
    let mut driver = ExecutorDriver::new(Flood { updates }, config);
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
    let _ = agent.agent.wait_for("all acked", Duration::from_secs(120), acked, |_| String::new()).await;
    let took = start.elapsed().as_secs_f64();
    driver.abort();
    let _ = driver.join();
    json!({"updates_per_second": updates as f64 / took})
}

// ---- the table ----

/// (figure, goal, path into a subject's results, unit).
const ROWS: &[(&str, &str, &str, &str)] = &[
    ("idle PSS, executor + watchdog (steady)", "<= 2.5 MiB", "memory/idle/pss/steady", "MiB"),
    ("idle PSS (max over 30 s)", "", "memory/idle/pss/max", "MiB"),
    ("idle USS (steady)", "<= 1.5 MiB", "memory/idle/uss/steady", "MiB"),
    ("idle VmRSS (steady)", "", "memory/idle/rss/steady", "MiB"),
    ("PSS with 50 live tasks (steady)", "", "memory/live_50/pss/steady", "MiB"),
    ("PSS per executor, fifty on one agent", "<= 1.5 MiB", "fifty/pss_per_executor_mib", "MiB"),
    ("VmHWM through a burst of 1,000 tasks", "<= 8 MiB", "cpu/burst_1000_vmhwm_mib", "MiB"),
    ("process start to SUBSCRIBE", "", "memory/start_to_subscribe_ms", "ms"),
    ("LAUNCH to TASK_RUNNING p50 (500 tasks)", "<= 1 ms", "speed/p50_ms", "ms"),
    ("LAUNCH to TASK_RUNNING p99", "<= 3 ms", "speed/p99_ms", "ms"),
    ("CPU per acknowledged update", "", "cpu/cpu_us_per_update", "us"),
    ("acked updates/s, synthetic executor", ">= 10,000", "flood/updates_per_second", "/s"),
    ("herd of 200: back p50 after accept", "", "herd/back_p50_ms", "ms"),
    ("herd of 200: back p99 after accept", "<= 500 ms", "herd/back_p99_ms", "ms"),
    ("herd of 200: back within the 2 s window", "200", "herd/back_within_2s", ""),
    ("herd: attempts/s per executor while away", "<= 4", "herd/attempts_per_second_per_executor", "/s"),
];

fn lookup<'a>(v: &'a Value, path: &str) -> Option<&'a Value> {
    path.split('/').try_fold(v, |v, k| v.get(k))
}

fn cell(v: Option<&Value>) -> String {
    match v {
        Some(Value::Number(n)) => {
            let f = n.as_f64().unwrap_or(f64::NAN);
            if (f.fract() == 0.0 && f.abs() < 1e9) || f.abs() >= 100.0 { format!("{f:.0}") } else { format!("{f:.2}") }
        }
        Some(Value::String(s)) => s.clone(),
        Some(other) => other.to_string(),
        None => "-".to_owned(),
    }
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    if !args.iter().any(|a| a == "--bench") {
        println!("targets: run with scripts/bench.sh, or cargo bench -p mesos-executor-daemon --bench targets");
        return;
    }
    let json_path = args.iter().position(|a| a == "--json").and_then(|i| args.get(i + 1)).cloned();
    let parts = ["memory", "fifty", "speed", "cpu", "flood", "herd"];
    let only: Vec<&str> = parts.iter().copied().filter(|p| args.iter().any(|a| a == p)).collect();
    let wanted = |p: &str| only.is_empty() || only.contains(&p);
    let idle_for =
        Duration::from_secs(std::env::var("BENCH_IDLE_SECONDS").ok().and_then(|s| s.parse().ok()).unwrap_or(30));
    let runtime = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
    let mut results: BTreeMap<&str, Value> = BTreeMap::new();
    runtime.block_on(async {
        for subject in subjects() {
            eprintln!("== {}", subject.name);
            let mut r = serde_json::Map::new();
            if wanted("memory") {
                r.insert("memory".into(), memory_idle_and_live(&subject, idle_for).await);
            }
            if wanted("fifty") {
                r.insert("fifty".into(), fifty(&subject).await);
            }
            if wanted("speed") {
                let n = std::env::var("BENCH_SPEED_TASKS").ok().and_then(|s| s.parse().ok()).unwrap_or(500);
                r.insert("speed".into(), launch_latency(&subject, n).await);
            }
            if wanted("cpu") {
                r.insert("cpu".into(), cpu_and_burst(&subject, 10_000).await);
            }
            if wanted("flood") && subject.name == "mesos-executor" {
                r.insert("flood".into(), flood(60_000).await);
            }
            if wanted("herd") {
                r.insert("herd".into(), herd_restart(&subject, 200).await);
            }
            eprintln!("{}", serde_json::to_string(&r).unwrap_or_default());
            results.insert(subject.name, Value::Object(r));
        }
    });
    let ours = results.get("mesos-executor").cloned().unwrap_or(Value::Null);
    let peer = results.get("pymesos").cloned().unwrap_or(Value::Null);
    let machine = format!(
        "{} CPUs, {}",
        std::thread::available_parallelism().map_or(0, |n| n.get()),
        std::fs::read_to_string("/proc/cpuinfo")
            .ok()
            .and_then(|c| c.lines().find(|l| l.starts_with("model name")).map(|l| l
                .split(':')
                .nth(1)
                .unwrap_or("")
                .trim()
                .to_owned()))
            .unwrap_or_default()
    );
    println!("| figure | goal | mesos-executor | pymesos |");
    println!("|---|---|---|---|");
    let mut rows = Vec::new();
    for (figure, goal, path, unit) in ROWS {
        let (o, p) = (lookup(&ours, path), lookup(&peer, path));
        println!("| {figure} | {goal} | {} {unit} | {} {unit} |", cell(o), cell(p));
        rows.push(json!({"figure": figure, "goal": goal, "unit": unit, "mesos-executor": o, "pymesos": p}));
    }
    println!("\nmachine: {machine}");
    if let Some(path) = json_path {
        let doc = json!({"machine": machine, "rows": rows, "raw": results});
        match std::fs::write(&path, serde_json::to_string_pretty(&doc).unwrap_or_default()) {
            Ok(()) => println!("written to {path}"),
            Err(e) => eprintln!("cannot write {path}: {e}"),
        }
    }
}
