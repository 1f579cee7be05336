//! Our daemon on a real Apache Mesos agent (issue 20), beside upstream's executors as the
//! control: every scenario runs twice, `<scenario>::ours` with our binary as the agent's
//! `mesos-executor` and `mesos-default-executor` (drop-in) and `<scenario>::upstream` with
//! upstream's command and default executors,
//! each against its own master and agent (one pair per flavour, shared by the tests of this
//! binary, one test at a time). Tasks go through upstream's `mesos-execute`; the tests
//! assert the status updates it prints, the sandbox files, and the agent's `/state` and
//! `/containers`.
//!
//! Every test is ignored unless asked for (`--include-ignored`, as `scripts/test.sh` does
//! as root); asked for without `MESOS_HOME` (or not as root) it prints "SKIPPED (...)"
//! and passes: a skip is no evidence. Where ours differs from upstream, the `ours` test asserts
//! upstream's behaviour and is ignored with the reason "known difference, issue 20: ...".

#[path = "support/real_mesos/mod.rs"]
mod real_mesos;

use std::{
    io::{BufRead, BufReader},
    os::unix::process::CommandExt,
    process::{Command, Stdio},
    time::{Duration, Instant},
};

use real_mesos::{
    Cluster, CountingServer, Flavour, Outcome, Shared, base64, free_task_port, our_binary, resources,
    scheduler::Scheduler,
};
use serde_json::{Value, json};

static OURS: Shared = Shared::new();
static UPSTREAM: Shared = Shared::new();

/// Runs `scenario` on the cluster of `flavour`, timed; skips without `MESOS_HOME`.
fn with(flavour: Flavour, test: &str, scenario: impl FnOnce(&mut Cluster, &str)) {
    let Some(home) = real_mesos::mesos_home(test) else { return };
    let shared = match flavour {
        Flavour::Ours => &OURS,
        Flavour::Upstream => &UPSTREAM,
    };
    let mut cluster = shared.get(&home, flavour);
    let started = Instant::now();
    // Task ids unique in this run, readable in the agent's work directory.
    let id = test.replace("::", "-");
    scenario(&mut cluster, &id);
    eprintln!("TIMING {test}: {:.1}s", started.elapsed().as_secs_f64());
}

/// `<scenario>::ours` and `<scenario>::upstream`. With `difference = "..."`, ours is
/// `<scenario>::ours_known_difference`, ignored with that reason (so that
/// `--skip known_difference` leaves every such test out, even with `--include-ignored`).
macro_rules! both {
    ($scenario:ident) => {
        mod $scenario {
            use super::*;
            #[test]
            #[ignore = "needs root and a Mesos in MESOS_HOME (scripts/test.sh runs it)"]
            fn ours() {
                with(Flavour::Ours, concat!(stringify!($scenario), "::ours"), super::$scenario);
            }
            both!(@upstream $scenario);
        }
    };
    ($scenario:ident, difference = $reason:literal) => {
        mod $scenario {
            use super::*;
            #[test]
            #[ignore = $reason]
            fn ours_known_difference() {
                with(Flavour::Ours, concat!(stringify!($scenario), "::ours"), super::$scenario);
            }
            both!(@upstream $scenario);
        }
    };
    (@upstream $scenario:ident) => {
        #[test]
        #[ignore = "needs root and a Mesos in MESOS_HOME (scripts/test.sh runs it)"]
        fn upstream() {
            with(Flavour::Upstream, concat!(stringify!($scenario), "::upstream"), super::$scenario);
        }
    };
}

const RUN: Duration = Duration::from_secs(90);

fn args(list: &[&str]) -> Vec<String> {
    list.iter().map(|s| (*s).to_owned()).collect()
}

/// A `TaskInfo` in the agent's JSON mapping: `id` runs `command` (a CommandInfo).
fn task(id: &str, command: Value) -> Value {
    json!({
        "name": id,
        "task_id": {"value": id},
        "agent_id": {"value": ""},
        "resources": resources(&[]),
        "command": command,
    })
}

/// Runs the task JSON `task` with `extra` flags.
fn run_task(c: &Cluster, id: &str, task: &Value, extra: &[&str]) -> Outcome {
    let mut a = vec![format!("--task={}", c.json_file(id, task))];
    a.extend(args(extra));
    c.run(&a, RUN)
}

fn read(path: &std::path::Path) -> String {
    std::fs::read_to_string(path).unwrap_or_else(|e| panic!("read {}: {e}", path.display()))
}

// ---- drop-in: the agent's command executor ----

fn finish(c: &mut Cluster, id: &str) {
    let o = c.run(&[format!("--name={id}"), "--command=echo hello from the task; echo to stderr >&2".into()], RUN);
    assert_eq!(o.states(id), ["TASK_STARTING", "TASK_RUNNING", "TASK_FINISHED"], "{}", o.text);
    assert_eq!(o.exit, Some(0), "{}", o.text);
    assert!(o.updates.iter().all(|u| u.source.as_deref() == Some("SOURCE_EXECUTOR")), "{}", o.text);
    let sandbox = c.sandbox(o.framework(), id);
    assert!(read(&sandbox.join("stdout")).contains("hello from the task\n"));
    assert!(read(&sandbox.join("stderr")).contains("to stderr\n"));
    assert_eq!(c.agent_task_state(id).as_deref(), Some("TASK_FINISHED"), "the agent's /state");
    assert_eq!(c.executor_end(o.framework(), id), "exited with status 0", "the executor's end, in the agent's log");
}
both!(finish);

fn failure(c: &mut Cluster, id: &str) {
    let o = c.run(&[format!("--name={id}"), "--command=exit 3".into()], RUN);
    assert_eq!(o.states(id), ["TASK_STARTING", "TASK_RUNNING", "TASK_FAILED"], "{}", o.text);
    let failed = o.last(id, "TASK_FAILED");
    assert_eq!(failed.message.as_deref(), Some("Command exited with status 3"), "{}", o.text);
    assert_eq!(c.agent_task_state(id).as_deref(), Some("TASK_FAILED"), "the agent's /state");
}
both!(failure);

/// A figure, not a test (issue 22 item 5): the bytes of the executor's log (the sandbox's
/// `stderr`, where the task writes nothing) for a 1-second task.
fn one_second_log(c: &mut Cluster, id: &str) {
    let o = c.run(&[format!("--name={id}"), "--command=sleep 1".into()], RUN);
    assert_eq!(o.states(id), ["TASK_STARTING", "TASK_RUNNING", "TASK_FINISHED"], "{}", o.text);
    let _ = c.executor_end(o.framework(), id);
    let log = read(&c.sandbox(o.framework(), id).join("stderr"));
    eprintln!("LOG {:?} a 1-second task: {} bytes, {} lines\n{log}", c.flavour, log.len(), log.lines().count());
}
both!(one_second_log);

/// Upstream's command executor sets no reason on a failed command
/// (`src/launcher/executor.cpp`, `reaped`).
fn failure_reason(c: &mut Cluster, id: &str) {
    let o = c.run(&[format!("--name={id}"), "--command=exit 3".into()], RUN);
    let failed = o.last(id, "TASK_FAILED");
    assert_eq!(failed.reason, None, "{}", o.text);
}
both!(failure_reason);

/// TASK_KILLING before TASK_KILLED: `mesos-execute` always has TASK_KILLING_STATE.
/// While the task runs, the agent's `/containers` lists its executor's container.
fn kill(c: &mut Cluster, id: &str) {
    let run = c.execute(&[format!("--name={id}"), "--command=sleep 1000".into(), "--kill_after=3secs".into()]);
    run.wait_for("TASK_RUNNING", RUN, |o| o.states(id).contains(&"TASK_RUNNING"));
    let containers = c.agent_containers().expect("/containers");
    let listed = containers.as_array().is_some_and(|a| a.iter().any(|k| k["executor_id"] == id));
    // A figure, not a test: the executor's memory with one running task.
    std::thread::sleep(Duration::from_millis(500));
    if let Some((rss, pss)) = real_mesos::executor_memory(id, "mesos-executor") {
        eprintln!("MEMORY {:?} command executor with one sleeping task: VmRSS {rss} kB, PSS {pss} kB", c.flavour);
    }
    assert!(listed, "the agent's /containers lists the executor {id}: {containers}");
    assert_eq!(c.agent_task_state(id).as_deref(), Some("TASK_RUNNING"), "the agent's /state");
    let o = run.wait(RUN);
    assert_eq!(o.states(id), ["TASK_STARTING", "TASK_RUNNING", "TASK_KILLING", "TASK_KILLED"], "{}", o.text);
    assert_eq!(o.last(id, "TASK_KILLED").message.as_deref(), Some("Command terminated with signal Terminated"));
    assert_eq!(c.executor_end(o.framework(), id), "exited with status 0", "the executor's end, in the agent's log");
}
both!(kill);

/// Without TASK_KILLING_STATE in the framework's capabilities, a kill gives TASK_KILLED
/// alone (upstream `src/launcher/executor.cpp` sends TASK_KILLING only when capable).
fn kill_without_killing_state(c: &mut Cluster, id: &str) {
    let mut s = Scheduler::subscribe_with(c, id, &[]);
    let agent = s.launch(task(id, json!({"value": "sleep 1000"})));
    s.wait_state(id, "TASK_RUNNING", RUN);
    s.kill(id, &agent);
    s.wait_terminal(&[id], RUN);
    assert_eq!(s.states(id), ["TASK_STARTING", "TASK_RUNNING", "TASK_KILLED"], "{:?}", s.updates);
}
both!(kill_without_killing_state);

/// A task that takes 4 s to end after SIGTERM, under a kill policy with a 6 s grace
/// period (the default is 3 s). The kill comes 3 s after TASK_RUNNING: the shell has set its
/// trap by then, even on a loaded machine.
fn graceful_task(c: &Cluster, id: &str) -> Outcome {
    let mut t =
        task(id, json!({"value": "trap 'sleep 4; echo graceful exit; exit 0' TERM; while :; do sleep 0.1; done"}));
    t["kill_policy"] = json!({"grace_period": {"nanoseconds": 6_000_000_000_i64}});
    let o = run_task(c, id, &t, &["--kill_after=3secs"]);
    assert_eq!(o.states(id), ["TASK_STARTING", "TASK_RUNNING", "TASK_KILLING", "TASK_KILLED"], "{}", o.text);
    o
}

/// The kill policy's grace replaces the default 3 s: TASK_KILLED comes more than 3.5 s after
/// TASK_KILLING (timed by the agent's log).
fn kill_policy_grace(c: &mut Cluster, id: &str) {
    graceful_task(c, id);
    let killing = c.agent_update_time(id, "TASK_KILLING").expect("the agent logged TASK_KILLING");
    let killed = c.agent_update_time(id, "TASK_KILLED").expect("the agent logged TASK_KILLED");
    eprintln!("{id}: {:.1}s from TASK_KILLING to TASK_KILLED", killed - killing);
    assert!(killed - killing >= 3.5, "more than the default grace: {:.1}s", killed - killing);
    assert!(killed - killing < 7.0, "no more than the policy's grace: {:.1}s", killed - killing);
}
both!(kill_policy_grace);

/// `POST /master/teardown` of a framework whose task runs (issue 22 item 2). The agent
/// sends SHUTDOWN and from then on ignores the executor's updates ("for terminating
/// framework", `Slave::statusUpdate`): none is ever acknowledged. The task is killed (the
/// agent's log shows it handled TASK_KILLED), the executor exits 0 well within the
/// agent's `--executor_shutdown_grace_period` (5 s, `Slave::_shutdownExecutor`), and the
/// agent never kills it ("Killing executor", `Slave::shutdownExecutorTimeout`).
fn teardown(c: &mut Cluster, id: &str) {
    let mut s = Scheduler::subscribe(c, id);
    s.launch(task(id, json!({"value": "sleep 1000"})));
    s.wait_state(id, "TASK_RUNNING", RUN);
    let framework = s.framework_id.clone();
    c.teardown(&framework);
    let end = c.executor_end(&framework, id);
    assert_eq!(end, "exited with status 0", "the executor's end, in the agent's log");
    let whose = format!("'{id}' of framework {framework}");
    let shutdown = c.agent_log_time(&["Shutting down executor", &whose]).expect("the agent logged its SHUTDOWN");
    let exited = c.agent_log_time(&["Executor ", &whose, " exited with status"]).expect("the agent logged the exit");
    eprintln!("{id}: the executor exited {:.2}s after the agent's SHUTDOWN", exited - shutdown);
    assert!(exited - shutdown < 4.5, "exited {:.2}s after SHUTDOWN: the grace period is 5 s", exited - shutdown);
    assert!(c.agent_update_time(id, "TASK_KILLED").is_some(), "the agent handled TASK_KILLED for the task");
    assert!(!c.agent_logged(&["Killing executor", id]), "the agent killed the executor");
    assert!(!c.agent_logged(&["terminated with signal", id]), "the executor died of a signal");
}
both!(teardown);

/// The task's TERM trap runs to its end within the grace (it prints "graceful exit").
fn kill_policy_trap_completes(c: &mut Cluster, id: &str) {
    let o = graceful_task(c, id);
    let sandbox = c.sandbox(o.framework(), id);
    let stdout = read(&sandbox.join("stdout"));
    let stderr = read(&sandbox.join("stderr"));
    assert!(stdout.contains("graceful exit"), "the TERM trap ran to its end: {stdout}\n--- stderr:\n{stderr}");
}
// Ours used to send SIGTERM twice (the group, then each marked process); when the second
// landed after the trap began, sh ran the trap again and the grace ran out (5 of 11
// runs). One SIGTERM per process now (bin/tests/daemon_signals.rs).
both!(kill_policy_trap_completes);

/// The terminal state of a task that exits 0 on SIGTERM, as upstream reports it.
fn kill_policy_grace_state(c: &mut Cluster, id: &str) {
    let mut t = task(id, json!({"value": "trap 'echo bye; exit 0' TERM; while :; do sleep 0.1; done"}));
    t["kill_policy"] = json!({"grace_period": {"nanoseconds": 5_000_000_000_i64}});
    let o = run_task(c, id, &t, &["--kill_after=2secs"]);
    assert_eq!(o.states(id), ["TASK_STARTING", "TASK_RUNNING", "TASK_KILLING", "TASK_KILLED"], "{}", o.text);
}
both!(kill_policy_grace_state);

/// The agent SIGKILLed and restarted while a checkpointed task runs: the task survives,
/// its updates arrive once, and the restarted agent's `/state` shows it running.
fn agent_restart(c: &mut Cluster, id: &str) {
    let run = c.execute(&[format!("--name={id}"), "--checkpoint".into(), "--command=sleep 12; echo survived".into()]);
    run.wait_for("TASK_RUNNING", RUN, |o| o.states(id).contains(&"TASK_RUNNING"));
    // Killed before the framework's acknowledgement of TASK_RUNNING is checkpointed, the
    // agent would (rightly) resend that update after recovery: wait for the checkpoint.
    c.wait_agent_logged(&["Checkpointing ACK for task status update TASK_RUNNING", id], Duration::from_secs(20));
    let restarted = Instant::now();
    c.restart_agent();
    eprintln!("agent restarted in {:.1}s", restarted.elapsed().as_secs_f64());
    let deadline = Instant::now() + Duration::from_secs(30);
    while c.agent_task_state(id).as_deref() != Some("TASK_RUNNING") && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(200));
    }
    assert_eq!(c.agent_task_state(id).as_deref(), Some("TASK_RUNNING"), "the recovered agent's /state");
    let o = run.wait(RUN);
    assert_eq!(o.states(id), ["TASK_STARTING", "TASK_RUNNING", "TASK_FINISHED"], "{}", o.text);
    assert!(read(&c.sandbox(o.framework(), id).join("stdout")).contains("survived\n"));
}
both!(agent_restart);

/// A URI fetched by the agent's fetcher is in the sandbox before the task starts.
fn uri_fetch_task(c: &mut Cluster, id: &str) -> (CountingServer, Outcome) {
    let server = CountingServer::start("payload from the test server\n");
    let uri = format!("http://127.0.0.1:{}/payload.txt", server.port);
    let t = task(id, json!({"value": "cat payload.txt", "uris": [{"value": uri, "extract": false}]}));
    let o = run_task(c, id, &t, &[]);
    assert_eq!(o.states(id), ["TASK_STARTING", "TASK_RUNNING", "TASK_FINISHED"], "{}", o.text);
    (server, o)
}

fn uri_in_sandbox(c: &mut Cluster, id: &str) {
    let (server, o) = uri_fetch_task(c, id);
    let sandbox = c.sandbox(o.framework(), id);
    assert_eq!(read(&sandbox.join("payload.txt")), "payload from the test server\n");
    assert!(read(&sandbox.join("stdout")).contains("payload from the test server\n"));
    assert!(server.gets() >= 1);
}
both!(uri_in_sandbox);

/// Upstream: the agent's fetcher GETs the URI once; the command executor does not fetch.
fn uri_fetched_once(c: &mut Cluster, id: &str) {
    let (server, _) = uri_fetch_task(c, id);
    assert_eq!(server.gets(), 1, "GETs of the URI, by User-Agent: {:?}", server.user_agents());
}
// Drop-in mode used to fetch the URI a second time (2 GETs vs 1); it fetches nothing now.
both!(uri_fetched_once);

/// A SECRET variable with an inline value, resolved by the agent's environment_secret
/// isolator, reaches the task.
fn secret_env(c: &mut Cluster, id: &str) {
    let env = json!({"variables": [
        {"name": "SEKRIT", "type": "SECRET", "secret": {"type": "VALUE", "value": {"data": base64(b"hunter2")}}},
        {"name": "PLAIN", "value": "visible"},
    ]});
    let t = task(id, json!({"value": "echo \"secret=$SEKRIT plain=$PLAIN\"", "environment": env}));
    let o = run_task(c, id, &t, &[]);
    assert_eq!(o.states(id), ["TASK_STARTING", "TASK_RUNNING", "TASK_FINISHED"], "{}", o.text);
    let stdout = read(&c.sandbox(o.framework(), id).join("stdout"));
    assert!(stdout.contains("secret=hunter2 plain=visible\n"), "{stdout}");
}
both!(secret_env);

/// `max_completion_time` passed: upstream fails the task with
/// REASON_MAX_COMPLETION_TIME_REACHED (`src/launcher/executor.cpp`, `reaped`).
fn max_completion_time(c: &mut Cluster, id: &str) {
    let mut t = task(id, json!({"value": "sleep 1000"}));
    t["max_completion_time"] = json!({"nanoseconds": 2_000_000_000_i64});
    let o = run_task(c, id, &t, &[]);
    assert_eq!(o.states(id), ["TASK_STARTING", "TASK_RUNNING", "TASK_FAILED"], "{}", o.text);
    let failed = o.last(id, "TASK_FAILED");
    assert_eq!(failed.reason.as_deref(), Some("REASON_MAX_COMPLETION_TIME_REACHED"), "{}", o.text);
}
both!(max_completion_time);

/// A task with `CommandInfo.user` runs as that user; so does its sandbox's output.
fn run_as_user(c: &mut Cluster, id: &str) {
    let t = task(id, json!({"value": "id -un; id -u", "user": "nobody"}));
    let o = run_task(c, id, &t, &[]);
    assert_eq!(o.states(id), ["TASK_STARTING", "TASK_RUNNING", "TASK_FINISHED"], "{}", o.text);
    let stdout = read(&c.sandbox(o.framework(), id).join("stdout"));
    assert!(stdout.contains("nobody\n65534\n"), "the task ran as nobody: {stdout}");
}
both!(run_as_user);

// ---- health checks ----

#[derive(Clone, Copy)]
enum Kind {
    Command,
    Http,
    Tcp,
}

/// A health check of `kind` against `port` (or the command `ok`/`false`), every second.
fn health_check(kind: Kind, healthy: bool, port: u16) -> Value {
    let mut check = json!({
        "delay_seconds": 0.0, "interval_seconds": 1.0, "timeout_seconds": 5.0,
        "grace_period_seconds": 0.0, "consecutive_failures": 2,
    });
    match kind {
        Kind::Command => {
            check["type"] = json!("COMMAND");
            check["command"] = json!({"value": if healthy { "true" } else { "false" }});
        }
        Kind::Http => {
            check["type"] = json!("HTTP");
            check["http"] = json!({"port": port, "path": "/"});
        }
        Kind::Tcp => {
            check["type"] = json!("TCP");
            check["tcp"] = json!({"port": port});
        }
    }
    check
}

/// A healthy task: an update with `healthy?: 1` arrives while it runs.
fn healthy(c: &mut Cluster, id: &str, kind: Kind) {
    let server = CountingServer::start("ok\n");
    let mut t = task(id, json!({"value": "sleep 1000"}));
    t["health_check"] = health_check(kind, true, server.port);
    let o = run_task(c, id, &t, &["--kill_after=6secs"]);
    assert!(
        o.updates.iter().any(|u| u.task == id && u.state == "TASK_RUNNING" && u.healthy == Some(true)),
        "a healthy update: {}",
        o.text
    );
    assert!(o.updates.iter().all(|u| u.healthy != Some(false)), "no unhealthy update: {}", o.text);
    assert_eq!(o.states(id).last(), Some(&"TASK_KILLED"), "{}", o.text);
    eprintln!("{id}:\n{}", o.text);
}

/// An unhealthy task is killed after `consecutive_failures`; returns its unhealthy updates.
fn unhealthy(c: &mut Cluster, id: &str, kind: Kind) -> usize {
    let port = free_task_port();
    let mut t = task(id, json!({"value": "sleep 1000"}));
    t["health_check"] = health_check(kind, false, port);
    let o = run_task(c, id, &t, &[]);
    let unhealthy = o.updates.iter().filter(|u| u.healthy == Some(false)).count();
    assert!(unhealthy >= 1, "an unhealthy update: {}", o.text);
    assert_eq!(o.states(id).last(), Some(&"TASK_KILLED"), "{}", o.text);
    eprintln!("{id}: {unhealthy} unhealthy update(s):\n{}", o.text);
    unhealthy
}

/// Upstream's updates for a task its health check kills (`src/launcher/executor.cpp`,
/// `taskHealthUpdated` and `reaped`): TASK_RUNNING with `healthy: false` and no message
/// for each failure up to `consecutive_failures`, TASK_KILLING without `healthy`, and
/// TASK_KILLED with `healthy: false`.
fn health_unhealthy_updates(c: &mut Cluster, id: &str) {
    let mut t = task(id, json!({"value": "sleep 1000"}));
    t["health_check"] = health_check(Kind::Command, false, 0);
    let o = run_task(c, id, &t, &[]);
    let seen: Vec<(&str, Option<bool>, Option<&str>)> =
        o.updates.iter().map(|u| (u.state.as_str(), u.healthy, u.message.as_deref())).collect();
    let expected = [
        ("TASK_STARTING", None, None),
        ("TASK_RUNNING", None, None),
        ("TASK_RUNNING", Some(false), None),
        ("TASK_RUNNING", Some(false), None),
        ("TASK_KILLING", None, None),
        ("TASK_KILLED", Some(false), Some("Command terminated with signal Terminated")),
    ];
    assert_eq!(seen, expected, "{}", o.text);
}
both!(health_unhealthy_updates);

/// Upstream's updates for a healthy task the framework kills: the health check's
/// TASK_RUNNING carries `healthy: true`; TASK_KILLING and TASK_KILLED carry no `healthy`
/// (`src/launcher/executor.cpp` sets it on the terminal update only when the health check
/// killed the task).
fn health_healthy_updates(c: &mut Cluster, id: &str) {
    let mut t = task(id, json!({"value": "sleep 1000"}));
    t["health_check"] = health_check(Kind::Command, true, 0);
    let o = run_task(c, id, &t, &["--kill_after=6secs"]);
    let seen: Vec<(&str, Option<bool>)> = o.updates.iter().map(|u| (u.state.as_str(), u.healthy)).collect();
    let expected = [
        ("TASK_STARTING", None),
        ("TASK_RUNNING", None),
        ("TASK_RUNNING", Some(true)),
        ("TASK_KILLING", None),
        ("TASK_KILLED", None),
    ];
    assert_eq!(seen, expected, "{}", o.text);
}
both!(health_healthy_updates);

fn health_command_healthy(c: &mut Cluster, id: &str) {
    healthy(c, id, Kind::Command);
}
both!(health_command_healthy);
fn health_http_healthy(c: &mut Cluster, id: &str) {
    healthy(c, id, Kind::Http);
}
both!(health_http_healthy);
fn health_tcp_healthy(c: &mut Cluster, id: &str) {
    healthy(c, id, Kind::Tcp);
}
both!(health_tcp_healthy);
fn health_command_unhealthy(c: &mut Cluster, id: &str) {
    unhealthy(c, id, Kind::Command);
}
both!(health_command_unhealthy);
fn health_http_unhealthy(c: &mut Cluster, id: &str) {
    unhealthy(c, id, Kind::Http);
}
both!(health_http_unhealthy);
fn health_tcp_unhealthy(c: &mut Cluster, id: &str) {
    unhealthy(c, id, Kind::Tcp);
}
both!(health_tcp_unhealthy);

// ---- executors named in ExecutorInfo, and task groups ----

/// A plain task through our daemon as a framework's custom executor (`--mode=custom`),
/// its command as CommandInfo JSON in `TaskInfo.data`.
fn custom_task(c: &Cluster, id: &str, command: &str) -> Outcome {
    c.run(&[format!("--task={}", c.json_file(id, &custom_task_json(id, command)))], RUN)
}

/// The `--task` JSON of [`custom_task`].
fn custom_task_json(id: &str, command: &str) -> Value {
    let exec = format!("{id}-executor");
    let data = json!({"value": command}).to_string();
    json!({
        "name": id,
        "task_id": {"value": id},
        "agent_id": {"value": ""},
        "resources": resources(&[]),
        "executor": {
            "type": "CUSTOM",
            "executor_id": {"value": exec},
            "command": {"value": format!("{} --mode=custom", our_binary().display())},
            "resources": resources(&[]),
        },
        "data": base64(data.as_bytes()),
    })
}

#[test]
#[ignore = "needs root and a Mesos in MESOS_HOME (scripts/test.sh runs it)"]
fn custom_executor_finish_ours() {
    with(Flavour::Ours, "custom_executor_finish_ours", |c, id| {
        let o = custom_task(c, id, "echo custom hello");
        assert_eq!(o.states(id), ["TASK_STARTING", "TASK_RUNNING", "TASK_FINISHED"], "{}", o.text);
        let sandbox = c.sandbox(o.framework(), &format!("{id}-executor"));
        let stdout = read(&sandbox.join("tasks").join(id).join("stdout"));
        assert_eq!(stdout, "custom hello\n");
        // mesos-execute ends its framework; the agent shuts the executor down.
        let end = c.executor_end(o.framework(), &format!("{id}-executor"));
        assert_eq!(end, "exited with status 0", "the executor's end, in the agent's log");
        assert_eq!(c.agent_task_state(id).as_deref(), Some("TASK_FINISHED"), "the agent's /state");
    });
}

#[test]
#[ignore = "needs root and a Mesos in MESOS_HOME (scripts/test.sh runs it)"]
fn custom_executor_failure_ours() {
    with(Flavour::Ours, "custom_executor_failure_ours", |c, id| {
        let o = custom_task(c, id, "exit 5");
        assert_eq!(o.states(id).last(), Some(&"TASK_FAILED"), "{}", o.text);
        assert_eq!(o.last(id, "TASK_FAILED").message.as_deref(), Some("Command exited with status 5"));
    });
}

#[test]
#[ignore = "needs root and a Mesos in MESOS_HOME (scripts/test.sh runs it)"]
fn custom_executor_kill_ours() {
    with(Flavour::Ours, "custom_executor_kill_ours", |c, id| {
        let file = c.json_file(id, &custom_task_json(id, "sleep 1000"));
        let o = c.run(&[format!("--task={file}"), "--kill_after=2secs".into()], RUN);
        assert_eq!(o.states(id), ["TASK_STARTING", "TASK_RUNNING", "TASK_KILLING", "TASK_KILLED"], "{}", o.text);
        assert_eq!(c.agent_task_state(id).as_deref(), Some("TASK_KILLED"), "the agent's /state");
    });
}

/// Our daemon as a checkpointed framework's custom executor while the agent is SIGKILLed
/// and restarted: the task survives, its updates arrive once.
#[test]
#[ignore = "needs root and a Mesos in MESOS_HOME (scripts/test.sh runs it)"]
fn custom_executor_agent_restart_ours() {
    with(Flavour::Ours, "custom_executor_agent_restart_ours", |c, id| {
        let file = c.json_file(id, &custom_task_json(id, "sleep 12; echo survived"));
        let run = c.execute(&[format!("--task={file}"), "--checkpoint".into()]);
        run.wait_for("TASK_RUNNING", RUN, |o| o.states(id).contains(&"TASK_RUNNING"));
        c.wait_agent_logged(&["Checkpointing ACK for task status update TASK_RUNNING", id], Duration::from_secs(20));
        c.restart_agent();
        let deadline = Instant::now() + Duration::from_secs(30);
        while c.agent_task_state(id).as_deref() != Some("TASK_RUNNING") && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(200));
        }
        assert_eq!(c.agent_task_state(id).as_deref(), Some("TASK_RUNNING"), "the recovered agent's /state");
        let o = run.wait(RUN);
        assert_eq!(o.states(id), ["TASK_STARTING", "TASK_RUNNING", "TASK_FINISHED"], "{}", o.text);
        let sandbox = c.sandbox(o.framework(), &format!("{id}-executor"));
        assert_eq!(read(&sandbox.join("tasks").join(id).join("stdout")), "survived\n");
    });
}

// ---- task groups through the agent's DEFAULT executor ----

#[path = "real_mesos_scenarios/default_executor.rs"]
mod default_executor;

// ---- task groups (LAUNCH_GROUP) through our own small framework ----

/// The executor of a task group: upstream's DEFAULT executor on the upstream cluster, our
/// daemon as a CUSTOM executor (`--mode=custom`) on ours.
fn group_executor(c: &Cluster, id: &str) -> (String, Value) {
    let exec = format!("{id}-executor");
    // The master wants cpus, mem and disk for the executor of a task group.
    let mut resources = resources(&[]);
    if let Some(r) = resources.as_array_mut() {
        r.push(json!({"name": "disk", "type": "SCALAR", "scalar": {"value": 16}}));
    }
    let executor = match c.flavour {
        Flavour::Upstream => json!({"type": "DEFAULT", "executor_id": {"value": exec}, "resources": resources}),
        Flavour::Ours => json!({
            "type": "CUSTOM",
            "executor_id": {"value": exec},
            "command": {"value": format!("{} --mode=custom", our_binary().display())},
            "resources": resources,
        }),
    };
    (exec, executor)
}

/// Two members that finish: each gets TASK_STARTING, TASK_RUNNING, TASK_FINISHED; each has
/// its own sandbox under the executor's (`tasks/<id>/`).
fn group_finish(c: &mut Cluster, id: &str) {
    let (a, b) = (format!("{id}-a"), format!("{id}-b"));
    let (exec, executor) = group_executor(c, id);
    let mut s = Scheduler::subscribe(c, id);
    s.launch_group(
        executor,
        vec![task(&a, json!({"value": "echo member a"})), task(&b, json!({"value": "sleep 1; echo member b"}))],
    );
    s.wait_terminal(&[&a, &b], RUN);
    for t in [&a, &b] {
        assert_eq!(s.states(t), ["TASK_STARTING", "TASK_RUNNING", "TASK_FINISHED"], "{t}: {:?}", s.updates);
    }
    let sandbox = c.sandbox(&s.framework_id, &exec);
    assert_eq!(read(&sandbox.join("tasks").join(&a).join("stdout")), "member a\n");
    assert_eq!(read(&sandbox.join("tasks").join(&b).join("stdout")), "member b\n");
    assert_eq!(c.agent_task_state(&b).as_deref(), Some("TASK_FINISHED"), "the agent's /state");
}
both!(group_finish);

/// A failing member takes the group down: it is TASK_FAILED with its exit status, a running
/// member is killed (TASK_KILLING, TASK_KILLED), a finished one stays TASK_FINISHED.
fn group_failure(c: &mut Cluster, id: &str) {
    let (ok, long, bad) = (format!("{id}-ok"), format!("{id}-long"), format!("{id}-bad"));
    let (_, executor) = group_executor(c, id);
    let mut s = Scheduler::subscribe(c, id);
    let tasks = vec![
        task(&ok, json!({"value": "true"})),
        task(&long, json!({"value": "sleep 1000"})),
        task(&bad, json!({"value": "sleep 2; exit 7"})),
    ];
    s.launch_group(executor, tasks);
    s.wait_terminal(&[&ok, &long, &bad], RUN);
    for u in &s.updates {
        eprintln!("{id}: {} {} {} {} {}", u["task_id"]["value"], u["state"], u["message"], u["reason"], u["source"]);
    }
    assert_eq!(s.states(&ok).last().map(String::as_str), Some("TASK_FINISHED"), "{:?}", s.updates);
    assert_eq!(s.states(&bad).last().map(String::as_str), Some("TASK_FAILED"), "{:?}", s.updates);
    assert_eq!(s.last(&bad, "TASK_FAILED")["message"], "Command exited with status 7", "{:?}", s.updates);
    assert_eq!(s.states(&long), ["TASK_STARTING", "TASK_RUNNING", "TASK_KILLING", "TASK_KILLED"], "{:?}", s.updates);
}
both!(group_failure);

/// The agent SIGKILLed and restarted while a checkpointed framework's task group runs: both
/// members survive and their updates arrive once.
fn group_agent_restart(c: &mut Cluster, id: &str) {
    let (a, b) = (format!("{id}-a"), format!("{id}-b"));
    let (exec, executor) = group_executor(c, id);
    let mut s = Scheduler::subscribe(c, id);
    let tasks = vec![task(&a, json!({"value": "sleep 10; echo a survived"})), task(&b, json!({"value": "sleep 11"}))];
    s.launch_group(executor, tasks);
    for t in [&a, &b] {
        s.wait_state(t, "TASK_RUNNING", RUN);
        c.wait_agent_logged(&["Checkpointing ACK for task status update TASK_RUNNING", t], Duration::from_secs(20));
    }
    c.restart_agent();
    s.wait_terminal(&[&a, &b], RUN);
    for t in [&a, &b] {
        assert_eq!(s.states(t), ["TASK_STARTING", "TASK_RUNNING", "TASK_FINISHED"], "{t}: {:?}", s.updates);
    }
    let sandbox = c.sandbox(&s.framework_id, &exec);
    assert_eq!(read(&sandbox.join("tasks").join(&a).join("stdout")), "a survived\n");
}
both!(group_agent_restart);

// ---- ours beside upstream, update by update ----

/// Runs `args` (with `{id}` replaced by the task id) on both clusters and returns what each
/// printed, updates as (state, message, reason, healthy).
fn on_both(test: &str, args: &[&str]) -> Option<[Seen; 2]> {
    let home = real_mesos::mesos_home(test)?;
    let mut out = Vec::new();
    for (shared, flavour) in [(&OURS, Flavour::Ours), (&UPSTREAM, Flavour::Upstream)] {
        let c = shared.get(&home, flavour);
        let id = format!("{test}-{flavour:?}");
        let a: Vec<String> = args.iter().map(|x| x.replace("{id}", &id)).collect();
        let o = c.run(&a, RUN);
        drop(c);
        eprintln!("{id}:\n{}", o.text);
        out.push(o.updates.iter().map(|u| (u.state.clone(), u.message.clone(), u.reason.clone(), u.healthy)).collect());
    }
    let upstream = out.pop()?;
    let ours = out.pop()?;
    Some([ours, upstream])
}

type Seen = Vec<(String, Option<String>, Option<String>, Option<bool>)>;

/// Updates without their reasons: failures differ only there, and `failure_reason` shows it.
fn without_reasons(updates: Seen) -> Seen {
    updates.into_iter().map(|(state, message, _, healthy)| (state, message, None, healthy)).collect()
}

/// The names of the environment variables a drop-in task sees, on both.
#[test]
#[ignore = "needs root and a Mesos in MESOS_HOME (scripts/test.sh runs it)"]
fn same_task_environment() {
    const NAME: &str = "same_task_environment";
    let Some(home) = real_mesos::mesos_home(NAME) else { return };
    let mut names = Vec::new();
    for (shared, flavour) in [(&OURS, Flavour::Ours), (&UPSTREAM, Flavour::Upstream)] {
        let c = shared.get(&home, flavour);
        let id = format!("{NAME}-{flavour:?}");
        let o = c.run(&[format!("--name={id}"), "--command=env | cut -d= -f1 | sort > env.txt".into()], RUN);
        let text = read(&c.sandbox(o.framework(), &id).join("env.txt"));
        names.push(text.lines().map(str::to_owned).collect::<std::collections::BTreeSet<_>>());
    }
    let only_ours: Vec<_> = names[0].difference(&names[1]).collect();
    let only_upstream: Vec<_> = names[1].difference(&names[0]).collect();
    eprintln!("{NAME}: only ours {only_ours:?}; only upstream {only_upstream:?}");
    assert!(only_upstream.is_empty(), "variables upstream's task has and ours lacks: {only_upstream:?}");
}

#[test]
#[ignore = "needs root and a Mesos in MESOS_HOME (scripts/test.sh runs it)"]
fn same_updates_finish() {
    if let Some([ours, upstream]) = on_both("same_updates_finish", &["--name={id}", "--command=echo hi"]) {
        assert_eq!(ours, upstream);
    }
}

#[test]
#[ignore = "needs root and a Mesos in MESOS_HOME (scripts/test.sh runs it)"]
fn same_updates_kill() {
    let args = ["--name={id}", "--command=sleep 1000", "--kill_after=1secs"];
    if let Some([ours, upstream]) = on_both("same_updates_kill", &args) {
        assert_eq!(ours, upstream);
    }
}

#[test]
#[ignore = "needs root and a Mesos in MESOS_HOME (scripts/test.sh runs it)"]
fn same_updates_signal() {
    if let Some([ours, upstream]) = on_both("same_updates_signal", &["--name={id}", "--command=kill -9 $$"]) {
        assert_eq!(without_reasons(ours), without_reasons(upstream));
    }
}

#[test]
#[ignore = "needs root and a Mesos in MESOS_HOME (scripts/test.sh runs it)"]
fn same_updates_no_such_command() {
    if let Some([ours, upstream]) =
        on_both("same_updates_no_such_command", &["--name={id}", "--command=/no/such/program"])
    {
        assert_eq!(without_reasons(ours), without_reasons(upstream));
    }
}

// ---- the harness itself ----

/// The test process SIGKILLed in the middle of a scenario (master, agent, our executor and
/// a task running): the reaper still ends every process naming the work directory and
/// removes that directory.
#[test]
#[ignore = "needs root and a Mesos in MESOS_HOME (scripts/test.sh runs it)"]
fn harness_reaps_everything_when_the_test_process_is_killed() {
    const NAME: &str = "harness_reaps_everything_when_the_test_process_is_killed";
    if real_mesos::mesos_home(NAME).is_none() {
        return;
    }
    let exe = std::env::current_exe().expect("this test binary");
    let mut child = Command::new(exe)
        .args(["--exact", "agent_restart::ours", "--include-ignored", "--nocapture", "--test-threads=1"])
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .process_group(0)
        .spawn()
        .expect("run agent_restart::ours in a child test process");
    let stderr = child.stderr.take().expect("child stderr");
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            let _ = tx.send(line);
        }
    });
    // Kills the child however this test ends.
    struct Kill(std::process::Child);
    impl Drop for Kill {
        fn drop(&mut self) {
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }
    let mut child = Kill(child);
    let work = loop {
        let line = rx.recv_timeout(Duration::from_secs(60)).expect("the child printed its work directory");
        if let Some((_, w)) = line.split_once("work directory ") {
            break w.trim().to_owned();
        }
    };
    let deadline = Instant::now() + Duration::from_secs(60);
    let running = |what: &str| real_mesos::processes_naming(&work).iter().any(|(_, cmd)| cmd.contains(what));
    while !(running("sleep 12") && running("mesos-executor --launcher_dir")) {
        assert!(
            Instant::now() < deadline,
            "the task and our executor did not start: {:?}",
            real_mesos::processes_naming(&work)
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    let before = real_mesos::processes_naming(&work).len();
    assert!(before >= 4, "master, agent, executor, task: {:?}", real_mesos::processes_naming(&work));
    let _ = child.0.kill();
    let _ = child.0.wait();
    let deadline = Instant::now() + Duration::from_secs(15);
    while (!real_mesos::processes_naming(&work).is_empty() || std::path::Path::new(&work).exists())
        && Instant::now() < deadline
    {
        std::thread::sleep(Duration::from_millis(200));
    }
    assert_eq!(real_mesos::processes_naming(&work), Vec::new(), "processes left behind");
    assert!(!std::path::Path::new(&work).exists(), "{work} left behind");
    eprintln!("{NAME}: {before} processes named {work}, all gone");
}
