//! The daemon's exit status means something: 0 for a normal end, 1 when the agent was
//! lost, never reached or refused us, 64 for bad usage or environment, 70 when the
//! runtime cannot start. Every wait on the agent ends at a deadline.

mod support;

use std::{
    collections::BTreeMap,
    process::Stdio,
    time::{Duration, Instant},
};

use fake_agent::{AgentConfig, BadHttp, FakeAgent, Fault, HttpTarget};
use mesos_executor::proto::v1::TaskState;
use support::daemon::*;

const BIN: &str = env!("CARGO_BIN_EXE_mesos-executor");

/// How a daemon run ended.
struct Run {
    code: Option<i32>,
    stderr: String,
    stdout: String,
    took: Duration,
}

/// Runs the daemon with exactly `env` and `args`, killed after `limit`.
async fn run(env: &BTreeMap<String, String>, args: &[&str], limit: Duration) -> Run {
    run_in_shell(env, args, limit, "").await
}

/// As [`run`], with a shell prefix (such as a `ulimit`) before the exec.
async fn run_in_shell(env: &BTreeMap<String, String>, args: &[&str], limit: Duration, prefix: &str) -> Run {
    let started = Instant::now();
    let mut command = tokio::process::Command::new("/bin/sh");
    command
        .arg("-c")
        .arg(format!("{prefix} exec \"$0\" \"$@\""))
        .arg(BIN)
        .args(args)
        .env_clear()
        .envs(env)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true);
    let child = command.spawn().unwrap();
    let output = tokio::time::timeout(limit, child.wait_with_output())
        .await
        .unwrap_or_else(|_| panic!("the daemon ran past {limit:?}"))
        .unwrap();
    Run {
        code: output.status.code(),
        stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
        stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
        took: started.elapsed(),
    }
}

/// An environment for an agent at `pid` (`slave(1)@host:port`).
fn env_for(pid: &str, checkpoint: bool, sandbox: &std::path::Path) -> BTreeMap<String, String> {
    let mut env = BTreeMap::new();
    for (k, v) in [
        ("MESOS_FRAMEWORK_ID", "f1"),
        ("MESOS_EXECUTOR_ID", "e1"),
        ("MESOS_SLAVE_PID", pid),
        ("MESOS_CHECKPOINT", if checkpoint { "1" } else { "0" }),
        ("MESOS_RECOVERY_TIMEOUT", "2secs"),
        ("PATH", fake_agent::process::DEFAULT_PATH),
    ] {
        env.insert(k.to_owned(), v.to_owned());
    }
    env.insert("MESOS_SANDBOX".into(), sandbox.display().to_string());
    env
}

/// A port on loopback that nothing listens on.
fn closed_port() -> u16 {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    listener.local_addr().unwrap().port()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refused_connection_exits_1() {
    let sandbox = tempfile::tempdir().unwrap();
    let pid = format!("slave(1)@127.0.0.1:{}", closed_port());
    // Without checkpointing the first failure is final (upstream).
    let r = run(&env_for(&pid, false, sandbox.path()), &[], Duration::from_secs(10)).await;
    assert_eq!(r.code, Some(1), "{}", r.stderr);
    assert!(r.took < Duration::from_secs(2), "{:?}", r.took);
    assert!(r.stderr.contains("never reached"), "{}", r.stderr);
    // With checkpointing it retries until the recovery timeout (2 s), politely.
    let r = run(&env_for(&pid, true, sandbox.path()), &[], Duration::from_secs(10)).await;
    assert_eq!(r.code, Some(1), "{}", r.stderr);
    assert!(r.took >= Duration::from_millis(1900) && r.took < Duration::from_secs(3), "{:?}", r.took);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unresolvable_agent_host_exits_1_within_the_recovery_timeout() {
    let sandbox = tempfile::tempdir().unwrap();
    let env = env_for("slave(1)@no-such-agent.invalid:5051", true, sandbox.path());
    let r = run(&env, &[], Duration::from_secs(10)).await;
    assert_eq!(r.code, Some(1), "{}", r.stderr);
    assert!(r.took < Duration::from_secs(3), "{:?}", r.took);
    assert!(r.stderr.contains("no-such-agent.invalid"), "the log names the host: {}", r.stderr);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unauthorized_on_the_first_subscribe_exits_1_at_once() {
    let agent = FakeAgent::new(AgentConfig::default()).start().await.unwrap();
    agent.agent.inject(Fault::Answer { status: 401, count: u32::MAX });
    let sandbox = tempfile::tempdir().unwrap();
    let r = run(&agent.executor_env(sandbox.path()), &[], Duration::from_secs(10)).await;
    assert_eq!(r.code, Some(1), "{}", r.stderr);
    assert!(r.took < Duration::from_secs(2), "not retried in a loop: {:?}", r.took);
    assert!(r.stderr.contains("401"), "{}", r.stderr);
    let attempts = agent.agent.transcript().iter().filter(|e| e.to_json()["status"] == 401).count();
    assert_eq!(attempts, 1, "one SUBSCRIBE, no retry loop");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_agent_that_never_answers_the_first_subscribe_exits_1_at_the_recovery_timeout() {
    let config = AgentConfig { recovery_timeout: Duration::from_secs(2), ..AgentConfig::default() };
    let agent = FakeAgent::new(config).start().await.unwrap();
    agent.agent.inject(Fault::BadHttp { reply: BadHttp::NoAnswer, on: HttpTarget::Subscribe, count: u32::MAX });
    let sandbox = tempfile::tempdir().unwrap();
    let r = run(&agent.executor_env(sandbox.path()), &[], Duration::from_secs(10)).await;
    assert_eq!(r.code, Some(1), "{}", r.stderr);
    assert!(r.took < Duration::from_secs(3), "{:?}", r.took);
    assert!(r.stderr.contains("never reached"), "{}", r.stderr);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_agent_that_stops_answering_after_a_disconnection_ends_the_executor_and_its_tasks() {
    let config = AgentConfig { recovery_timeout: Duration::from_secs(2), ..AgentConfig::default() };
    let d = start(config, &["--mode=custom"]).await;
    let marker = unique_seconds();
    d.agent.agent.launch(data_task("t1", &format!("sleep {marker}")));
    d.update("t1", TaskState::TaskRunning).await;
    d.agent.agent.inject(Fault::BadHttp { reply: BadHttp::NoAnswer, on: HttpTarget::Subscribe, count: u32::MAX });
    d.agent.agent.inject(Fault::ResetStream);
    let cut = Instant::now();
    assert_eq!(d.exit().await, "exited with status 1");
    let took = cut.elapsed();
    assert!(took < Duration::from_secs(3), "exit {took:?} after the disconnection");
    assert!(processes_matching(&marker).is_empty(), "the task was killed");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn agent_shutdown_exits_0() {
    let d = start(AgentConfig::default(), &["--mode=custom"]).await;
    d.agent.agent.launch(data_task("t1", &format!("sleep {}", unique_seconds())));
    d.update("t1", TaskState::TaskRunning).await;
    d.agent.agent.shutdown();
    assert_eq!(d.exit().await, "exited with status 0");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_usage_exits_64_and_help_exits_0() {
    let sandbox = tempfile::tempdir().unwrap();
    let env = env_for("slave(1)@127.0.0.1:1", false, sandbox.path());
    let limit = Duration::from_secs(10);
    for args in [&["--no_such_flag"][..], &["--mode=sideways"], &["--metrics_interval=soon"], &["--keepalive_idle=0ms"]]
    {
        let r = run(&env, args, limit).await;
        assert_eq!(r.code, Some(64), "{args:?}: {}", r.stderr);
        assert!(!r.stderr.is_empty(), "{args:?} says why");
    }
    let help = run(&env, &["--help"], limit).await;
    assert_eq!(help.code, Some(0));
    for needed in ["MESOS_FRAMEWORK_ID", "MESOS_EXECUTOR_ID", "MESOS_SLAVE_PID", "64", "70", "Exit status"] {
        assert!(help.stdout.contains(needed), "--help lists {needed}: {}", help.stdout);
    }
    assert_eq!(run(&env, &["--version"], limit).await.code, Some(0));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bad_environment_exits_64_naming_the_variable_once() {
    let sandbox = tempfile::tempdir().unwrap();
    let mut env = env_for("slave(1)@127.0.0.1:1", true, sandbox.path());
    env.remove("MESOS_FRAMEWORK_ID");
    let r = run(&env, &[], Duration::from_secs(10)).await;
    assert_eq!(r.code, Some(64), "{}", r.stderr);
    assert_eq!(r.stderr.matches("MESOS_FRAMEWORK_ID").count(), 1, "said once: {}", r.stderr);
    let mut env = env_for("slave(1)@127.0.0.1:1", true, sandbox.path());
    // Past i64 nanoseconds only through its thirty-digit fraction.
    env.insert("MESOS_RECOVERY_TIMEOUT".into(), format!("15250.{}weeks", "9".repeat(30)));
    let r = run(&env, &[], Duration::from_secs(10)).await;
    assert_eq!(r.code, Some(64), "an overflowing duration is an error: {}", r.stderr);
    assert!(r.stderr.contains("MESOS_RECOVERY_TIMEOUT"), "{}", r.stderr);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_runtime_that_cannot_start_exits_70() {
    let sandbox = tempfile::tempdir().unwrap();
    let env = env_for("slave(1)@127.0.0.1:1", false, sandbox.path());
    // With no file descriptor left for the runtime's epoll instance.
    let r = run_in_shell(&env, &[], Duration::from_secs(10), "ulimit -n 4;").await;
    assert_eq!(r.code, Some(70), "{}", r.stderr);
    assert!(r.stderr.contains("runtime"), "{}", r.stderr);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_drop_in_task_done_exits_0_and_a_lost_agent_exits_1() {
    let d = command_executor(AgentConfig::default()).await;
    d.agent.agent.launch(shell_task("t1", "true"));
    d.update("t1", TaskState::TaskFinished).await;
    assert_eq!(d.exit().await, "exited with status 0");
    // Without checkpointing, a lost agent is final.
    let d = command_executor(AgentConfig { checkpoint: false, ..AgentConfig::default() }).await;
    d.agent.agent.inject(Fault::ResetStream);
    assert_eq!(d.exit().await, "exited with status 1");
}
