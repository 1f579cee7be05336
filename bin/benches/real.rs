//! Our daemon beside upstream's executors on a real Apache Mesos master and agent
//! (issue 20 item 4), through the real-agent tests' harness
//! (`bin/tests/support/real_mesos/`): one cluster per flavour, our binary or upstream's
//! programs as the agent's `mesos-executor` and `mesos-default-executor`.
//!
//! - **Command executor**: tasks one after another (`sleep 1000`, each in a framework of
//!   its own through the harness's small v1 scheduler), each measured alone: from just
//!   before the scheduler's ACCEPT (LAUNCH) call goes out to the moment its TASK_RUNNING
//!   update has been read off the scheduler's event stream; then, 10 s after that update,
//!   PSS, USS and RSS (`/proc/PID/smaps_rollup`) of the executor's own processes (ours:
//!   the daemon and its watchdog; never the task); then a TEARDOWN, and the next task
//!   only once every process of the executor is gone.
//! - **Default executor**: three-member task groups (`sleep 1000` each) on an executor
//!   of type DEFAULT, one group at a time: ACCEPT (LAUNCH_GROUP) to the last member's
//!   TASK_RUNNING, and the executor's memory 10 s after that.
//!
//! Needs root and `MESOS_HOME` (as the real-agent tests); without them it says why and
//! measures nothing. `scripts/bench.sh real` runs it in release mode. Asserts nothing.
//! Knobs: `BENCH_REAL_TASKS` (20), `BENCH_REAL_GROUPS` (5), `BENCH_REAL_SETTLE_SECONDS`
//! (10); `--json PATH` writes the results.

#[path = "../tests/support/real_mesos/mod.rs"]
mod real_mesos;

use std::{
    path::{Path, PathBuf},
    time::{Duration, Instant},
};

use real_mesos::{Cluster, Flavour, Shared, memory, our_binary, resources, scheduler::Scheduler};
use serde_json::{Value, json};

const WAIT: Duration = Duration::from_secs(60);

fn knob(name: &str, default: u64) -> u64 {
    std::env::var(name).ok().and_then(|v| v.parse().ok()).unwrap_or(default)
}

/// The programs whose processes count as the executor's: ours, or upstream's two.
fn programs(home: &Path, flavour: Flavour) -> Vec<PathBuf> {
    let names: Vec<PathBuf> = match flavour {
        Flavour::Ours => vec![our_binary()],
        Flavour::Upstream => {
            ["mesos-executor", "mesos-default-executor"].iter().map(|n| home.join("libexec/mesos").join(n)).collect()
        }
    };
    names.iter().filter_map(|p| std::fs::canonicalize(p).ok()).collect()
}

fn sleeper(id: &str) -> Value {
    json!({
        "name": id,
        "task_id": {"value": id},
        "agent_id": {"value": ""},
        "resources": resources(&[]),
        "command": {"value": "sleep 1000"},
    })
}

/// The executor's processes and their memory, `settle` after `since`.
fn memory_after(executor: &str, programs: &[PathBuf], since: Instant, settle: Duration) -> Value {
    std::thread::sleep((since + settle).saturating_duration_since(Instant::now()));
    let programs: Vec<&Path> = programs.iter().map(PathBuf::as_path).collect();
    let pids = memory::executor_processes(executor, &programs);
    let m = memory::total(&pids);
    let kib = |v: u64| v as f64 / 1024.0;
    json!({"pss_mib": kib(m.pss), "uss_mib": kib(m.uss), "rss_mib": kib(m.rss), "processes": pids.len()})
}

/// Waits (bounded) until no process names the executor any more.
fn gone(executor: &str) {
    let marker = format!("MESOS_EXECUTOR_ID={executor}\0");
    let end = Instant::now() + WAIT;
    while !real_mesos::processes_naming(&marker).is_empty() && Instant::now() < end {
        std::thread::sleep(Duration::from_millis(100));
    }
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1e3
}

fn command_executor(c: &Cluster, programs: &[PathBuf], n: u64, settle: Duration) -> Vec<Value> {
    let mut runs = Vec::new();
    for i in 0..n {
        let id = format!("bench-cmd-{i:02}");
        let mut s = Scheduler::subscribe(c, &id);
        s.launch(sleeper(&id));
        s.wait_state(&id, "TASK_RUNNING", WAIT);
        let (Some(accepted), Some(running)) = (s.accepted, s.received_at(&id, "TASK_RUNNING")) else {
            panic!("{id}: no ACCEPT or TASK_RUNNING time");
        };
        let mut run = memory_after(&id, programs, running, settle);
        run["running_ms"] = json!(ms(running - accepted));
        eprintln!("{:?} {id}: {run}", c.flavour);
        runs.push(run);
        drop(s);
        gone(&id);
    }
    runs
}

fn default_executor(c: &Cluster, programs: &[PathBuf], n: u64, settle: Duration) -> Vec<Value> {
    let mut runs = Vec::new();
    for i in 0..n {
        let exec = format!("bench-grp-{i:02}");
        let members: Vec<String> = ["a", "b", "c"].iter().map(|m| format!("{exec}-{m}")).collect();
        // The master wants cpus, mem and disk for the executor of a task group.
        let mut res = resources(&[]);
        if let Some(r) = res.as_array_mut() {
            r.push(json!({"name": "disk", "type": "SCALAR", "scalar": {"value": 16}}));
        }
        let executor = json!({"type": "DEFAULT", "executor_id": {"value": exec}, "resources": res});
        let mut s = Scheduler::subscribe(c, &exec);
        s.launch_group(executor, members.iter().map(|m| sleeper(m)).collect());
        for m in &members {
            s.wait_state(m, "TASK_RUNNING", WAIT);
        }
        let last = members.iter().filter_map(|m| s.received_at(m, "TASK_RUNNING")).max();
        let (Some(accepted), Some(running)) = (s.accepted, last) else {
            panic!("{exec}: no ACCEPT or TASK_RUNNING time");
        };
        let mut run = memory_after(&exec, programs, running, settle);
        run["all_running_ms"] = json!(ms(running - accepted));
        eprintln!("{:?} {exec}: {run}", c.flavour);
        runs.push(run);
        drop(s);
        gone(&exec);
    }
    runs
}

/// The `q` quantile (nearest rank) of `key` over `runs`.
fn quantile(runs: &[Value], key: &str, q: f64) -> Value {
    let mut v: Vec<f64> = runs.iter().filter_map(|r| r[key].as_f64()).collect();
    v.sort_by(f64::total_cmp);
    if v.is_empty() {
        return Value::Null;
    }
    let at = ((v.len() - 1) as f64 * q).round() as usize;
    json!(v[at.min(v.len() - 1)])
}

fn summary(runs: &[Value], time: &str) -> Value {
    json!({
        "runs": runs.len(),
        "p50_ms": quantile(runs, time, 0.5),
        "p90_ms": quantile(runs, time, 0.9),
        "max_ms": quantile(runs, time, 1.0),
        "pss_mib": quantile(runs, "pss_mib", 0.5),
        "uss_mib": quantile(runs, "uss_mib", 0.5),
        "rss_mib": quantile(runs, "rss_mib", 0.5),
        "processes": quantile(runs, "processes", 0.5),
        "all": runs,
    })
}

/// (figure, path into a flavour's results, unit).
const ROWS: &[(&str, &str, &str)] = &[
    ("command executor: ACCEPT to TASK_RUNNING p50", "command/p50_ms", "ms"),
    ("command executor: ACCEPT to TASK_RUNNING p90", "command/p90_ms", "ms"),
    ("command executor: ACCEPT to TASK_RUNNING max", "command/max_ms", "ms"),
    ("command executor: PSS 10 s after TASK_RUNNING (median)", "command/pss_mib", "MiB"),
    ("command executor: USS (median)", "command/uss_mib", "MiB"),
    ("command executor: VmRSS (median)", "command/rss_mib", "MiB"),
    ("command executor: processes counted", "command/processes", ""),
    ("default executor, 3 members: ACCEPT to all RUNNING p50", "group/p50_ms", "ms"),
    ("default executor: ACCEPT to all RUNNING max", "group/max_ms", "ms"),
    ("default executor: PSS 10 s after all RUNNING (median)", "group/pss_mib", "MiB"),
    ("default executor: USS (median)", "group/uss_mib", "MiB"),
    ("default executor: VmRSS (median)", "group/rss_mib", "MiB"),
    ("default executor: processes counted", "group/processes", ""),
];

fn cell(v: Option<&Value>) -> String {
    match v.and_then(Value::as_f64) {
        Some(f) if f.fract() == 0.0 || f >= 100.0 => format!("{f:.0}"),
        Some(f) => format!("{f:.2}"),
        None => "-".to_owned(),
    }
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    if !args.iter().any(|a| a == "--bench") {
        println!("real: run with scripts/bench.sh real, or cargo bench -p mesos-executor-daemon --bench real");
        return;
    }
    let Some(home) = real_mesos::mesos_home("the real-agent benchmark") else { return };
    let json_path = args.iter().position(|a| a == "--json").and_then(|i| args.get(i + 1)).cloned();
    let (tasks, groups) = (knob("BENCH_REAL_TASKS", 20), knob("BENCH_REAL_GROUPS", 5));
    let settle = Duration::from_secs(knob("BENCH_REAL_SETTLE_SECONDS", 10));
    let mut results = serde_json::Map::new();
    for flavour in [Flavour::Ours, Flavour::Upstream] {
        let programs = programs(&home, flavour);
        // A cluster of its own, stopped (its reaper run) before the next one starts.
        let shared = Shared::new();
        let cluster = shared.get(&home, flavour);
        let command = command_executor(&cluster, &programs, tasks, settle);
        let group = default_executor(&cluster, &programs, groups, settle);
        let name = format!("{flavour:?}").to_lowercase();
        results.insert(
            name,
            json!({"command": summary(&command, "running_ms"), "group": summary(&group, "all_running_ms")}),
        );
        drop(cluster);
    }
    let results = Value::Object(results);
    println!("| figure | mesos-executor (ours) | upstream |");
    println!("|---|---|---|");
    for (figure, path, unit) in ROWS {
        let at = |who: &str| path.split('/').try_fold(&results[who], |v, k| v.get(k));
        let with_unit = |who: &str| format!("{} {unit}", cell(at(who))).trim_end().to_owned();
        let figure = figure.replace("10 s", &format!("{} s", settle.as_secs()));
        println!("| {figure} | {} | {} |", with_unit("ours"), with_unit("upstream"));
    }
    let machine = format!(
        "{} CPUs; settle {} s; {tasks} tasks, {groups} groups",
        std::thread::available_parallelism().map_or(0, |n| n.get()),
        settle.as_secs()
    );
    println!("\n{machine}");
    if let Some(path) = json_path {
        let doc = json!({"machine": machine, "results": results});
        match std::fs::write(&path, serde_json::to_string_pretty(&doc).unwrap_or_default()) {
            Ok(()) => println!("written to {path}"),
            Err(e) => eprintln!("cannot write {path}: {e}"),
        }
    }
}
