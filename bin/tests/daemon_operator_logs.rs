//! The log an operator reads (issue 22 item 5): in the default human format the
//! executor's ids come once, at the start, and every later line is short; the lines an
//! operator looks for are there at info level: a kill (grace period, processes
//! signalled, escalation to SIGKILL), each URI fetched (size, time, never its
//! credentials), waiting for a lost agent (with the deadline), each health-check failure
//! and the first success after failures, and the signal that asked the daemon to stop.
//! In JSON, every line carries the ids as fields.

mod support;

use std::time::Duration;

use fake_agent::AgentConfig;
use mesos_executor::proto::v1::{
    CommandInfo, DurationInfo, HealthCheck, KillPolicy, TaskInfo, TaskState, command_info::Uri, health_check,
};
use support::daemon::*;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// Ids as a real master and agent make them: long, which is why they belong once.
const FRAMEWORK: &str = "7c9a3e2e-5b0a-4f7e-9c55-2b1f3c9d8e71-0001";
const EXECUTOR: &str = "web-frontend.3f1e9c2a-d4b5-11ee-9c55-0242ac110002";

fn config() -> AgentConfig {
    AgentConfig {
        framework_id: FRAMEWORK.into(),
        executor_id: EXECUTOR.into(),
        checkpoint: true,
        recovery_timeout: Duration::from_secs(90),
        ..killing_capable()
    }
}

/// Serves `body` to every GET on an ephemeral port (one request per connection).
async fn serve(body: Vec<u8>) -> u16 {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    tokio::spawn(async move {
        while let Ok((mut stream, _)) = listener.accept().await {
            let body = body.clone();
            tokio::spawn(async move {
                let mut head = Vec::new();
                let mut byte = [0u8; 1];
                while !head.ends_with(b"\r\n\r\n") && stream.read(&mut byte).await.is_ok_and(|n| n == 1) {
                    head.push(byte[0]);
                }
                let reply = format!("HTTP/1.1 200 OK\r\nContent-Length: {}\r\nConnection: close\r\n\r\n", body.len());
                let _ = stream.write_all(reply.as_bytes()).await;
                let _ = stream.write_all(&body).await;
            });
        }
    });
    port
}

/// A custom executor's task (its CommandInfo as JSON in `TaskInfo.data`) with `uris`.
fn task_with_uris(id: &str, command: &str, uris: Vec<Uri>) -> TaskInfo {
    let info = CommandInfo { value: Some(command.into()), uris, ..Default::default() };
    let json = mesos_executor::wire::to_json_value(&info).unwrap().to_string();
    TaskInfo { data: Some(json.into_bytes().into()), ..data_task(id, command) }
}

fn log_of(d: &Daemon) -> String {
    std::fs::read_to_string(d.sandbox.join("stderr")).unwrap_or_default()
}

/// The first line of `log` that contains every one of `needles`.
fn line_with<'a>(log: &'a str, needles: &[&str]) -> &'a str {
    log.lines()
        .find(|l| needles.iter().all(|n| l.contains(n)))
        .unwrap_or_else(|| panic!("no line with {needles:?} in the log:\n{log}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_operator_reads_what_happened_in_short_lines() {
    let d = start(config(), &["--mode=custom"]).await;
    let port = serve(vec![7u8; 12_345]).await;
    let flag = tempfile::tempdir().unwrap();
    let ready = flag.path().join("ready");
    let marker = unique_seconds();
    // Unhealthy for its first second, healthy after; ignores SIGTERM, so the kill escalates.
    let command = format!("trap '' TERM; sleep 1; touch {}; sleep {marker}", ready.display());
    let secret_uri = format!("http://alice:pw-never-logged@127.0.0.1:{port}/blob.bin?sig=sig-never-logged");
    let mut task = task_with_uris("web", &command, vec![Uri { value: secret_uri, ..Default::default() }]);
    task.health_check = Some(HealthCheck {
        r#type: Some(health_check::Type::Command as i32),
        command: Some(CommandInfo { value: Some(format!("test -e {}", ready.display())), ..Default::default() }),
        delay_seconds: Some(0.0),
        interval_seconds: Some(0.2),
        timeout_seconds: Some(2.0),
        grace_period_seconds: Some(0.0),
        consecutive_failures: Some(100),
        ..Default::default()
    });
    d.agent.agent.launch(task);
    d.wait("healthy report", |s| {
        s.transcript.iter().any(|e| e.to_json()["call"]["update"]["status"]["healthy"] == true)
    })
    .await;

    // The agent goes away for a moment.
    d.agent.agent.restart(Duration::from_millis(300), Duration::ZERO).await;
    d.wait("resubscription", |s| s.subscriptions > 1).await;

    let grace = KillPolicy { grace_period: Some(DurationInfo { nanoseconds: 400_000_000 }) };
    d.agent.agent.kill("web", Some(grace));
    d.update("web", TaskState::TaskKilled).await;

    let pid = d
        .agent
        .agent
        .container_members()
        .into_iter()
        .find(|pid| {
            let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
            let parent = stat.rfind(')').and_then(|i| stat[i + 1..].split_whitespace().nth(1).map(str::to_owned));
            parent == Some(std::process::id().to_string())
        })
        .expect("the executor's pid");
    nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid as i32), nix::sys::signal::Signal::SIGTERM).unwrap();
    assert_eq!(d.exit().await, "exited with status 0");
    assert!(processes_matching(&marker).is_empty());

    let log = log_of(&d);
    eprintln!("--- the log ({} bytes):\n{log}", log.len());
    // The ids once, at the start; never again.
    let mut lines = log.lines();
    let first = lines.next().unwrap_or_default();
    assert!(first.contains("starting") && first.contains(FRAMEWORK) && first.contains(EXECUTOR), "{first}");
    for line in lines {
        assert!(!line.contains(FRAMEWORK) && !line.contains(EXECUTOR), "an id repeated after the start: {line}");
        // An error's own text (from the OS, hyper, a probe) is as long as it is, also as
        // a disconnection's reason.
        if !line.contains(" error=") && !line.contains(" reason=") {
            assert!(line.len() < 160, "a line of {} characters: {line}", line.len());
        }
    }
    // Each URI fetched: which (without its credentials or query), how big, how long.
    let fetched = line_with(&log, &["INFO", "fetched", r#"task_id="web""#, "blob.bin", "bytes=12345"]);
    assert!(fetched.contains("ms="), "{fetched}");
    assert!(!log.contains("pw-never-logged") && !log.contains("sig-never-logged"), "a credential was logged:\n{log}");
    // Health: each failure, then the first success after failures.
    line_with(&log, &["WARN", "health check failed", r#"task_id="web""#, "consecutive_failures=1"]);
    let failures = log.lines().filter(|l| l.contains("health check failed")).count();
    assert!(failures >= 2, "{failures} failures logged:\n{log}");
    line_with(&log, &["INFO", "health check passed", r#"task_id="web""#]);
    // The lost agent, with how long the executor waits for it.
    line_with(&log, &["INFO", "waiting for the agent", "gives_up_in=90secs"]);
    // The kill: grace period, processes signalled, escalation.
    let term = line_with(&log, &["INFO", "SIGTERM", r#"task_id="web""#, "grace=400ms"]);
    assert!(term.contains("processes="), "{term}");
    line_with(&log, &["WARN", "SIGKILL", r#"task_id="web""#, "processes="]);
    // The signal that asked the daemon to stop.
    line_with(&log, &["INFO", "SIGTERM received"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn json_lines_carry_the_ids_as_fields() {
    let d = start(config(), &["--mode=custom", "--log_format=json"]).await;
    d.agent.agent.launch(data_task("t1", "true"));
    d.update("t1", TaskState::TaskFinished).await;
    d.agent.agent.shutdown();
    assert_eq!(d.exit().await, "exited with status 0");
    let log = log_of(&d);
    let mut seen = 0;
    for line in log.lines() {
        let json: serde_json::Value = serde_json::from_str(line).unwrap_or_else(|e| panic!("not JSON ({e}): {line}"));
        assert_eq!(json["span"]["framework_id"], FRAMEWORK, "{line}");
        assert_eq!(json["span"]["executor_id"], EXECUTOR, "{line}");
        seen += 1;
    }
    assert!(seen >= 5, "{log}");
}

/// A figure, and a bound: the bytes of log a 1-second task leaves in drop-in mode
/// (2.6 KB before issue 22, upstream's command executor 0.9 KB).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_one_second_task_leaves_a_short_log() {
    let d = command_executor(config()).await;
    d.agent.agent.launch(shell_task("one-second", "sleep 1"));
    d.update("one-second", TaskState::TaskFinished).await;
    assert_eq!(d.exit().await, "exited with status 0");
    let log = log_of(&d);
    eprintln!("LOG BYTES a 1-second task, drop-in: {} bytes, {} lines\n{log}", log.len(), log.lines().count());
    assert!(log.len() < 1500, "{} bytes of log:\n{log}", log.len());
}

/// The state file put where other users may write (a task could put its own file in its
/// place between two writes): said at start.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_state_file_others_could_forge_is_warned_about() {
    use std::os::unix::fs::PermissionsExt;
    let shared = tempfile::tempdir().unwrap();
    std::fs::set_permissions(shared.path(), std::fs::Permissions::from_mode(0o777)).unwrap();
    let flag = format!("--state_file={}", shared.path().join("state.json").display());
    let d = start(config(), &["--mode=custom", &flag]).await;
    d.agent.agent.shutdown();
    assert_eq!(d.exit().await, "exited with status 0");
    let log = log_of(&d);
    line_with(&log, &["WARN", "writable by other users", r#"file="state""#, "state.json"]);
    assert!(!log.contains(r#"file="metrics""#), "the sandbox is the daemon's own:\n{log}");
}
