//! Per-task log rotation: a task that writes fast through many rotations keeps at most
//! the configured files of at most the configured size, and what is kept is the tail of
//! what it wrote, line for line.

mod support;

use std::time::Duration;

use fake_agent::AgentConfig;
use mesos_executor::proto::v1::TaskState;
use support::daemon::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_fast_writer_is_rotated_without_losing_lines() {
    let args = ["--mode=custom", "--task_log_max_size=64KB", "--task_log_max_files=3"];
    let d = start(AgentConfig::default(), &args).await;
    d.agent.agent.launch(data_task("chatty", "seq 1 200000; echo done >&2"));
    d.update("chatty", TaskState::TaskFinished).await;
    let dir = d.sandbox.join("tasks/chatty");
    // The writer may finish a moment after the process.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    while !std::fs::read_to_string(dir.join("stdout")).unwrap_or_default().ends_with("200000\n") {
        assert!(tokio::time::Instant::now() < deadline, "the last line never reached stdout");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let mut kept = String::new();
    for name in ["stdout.3", "stdout.2", "stdout.1", "stdout"] {
        let part = std::fs::read_to_string(dir.join(name)).unwrap_or_else(|e| panic!("{name}: {e}"));
        assert!(part.len() <= 64 * 1024, "{name} is {} bytes", part.len());
        if !part.ends_with('\n') {
            let others: Vec<String> = ["stdout.3", "stdout.2", "stdout.1", "stdout"]
                .iter()
                .map(|n| {
                    let t = std::fs::read_to_string(dir.join(n)).unwrap_or_default();
                    format!(
                        "{n}: len {} head {:?} tail {:?}",
                        t.len(),
                        &t[..t.len().min(20)],
                        &t[t.len().saturating_sub(20)..]
                    )
                })
                .collect();
            panic!("{name} ends mid-line: {others:#?}");
        }
        kept.push_str(&part);
    }
    assert!(!dir.join("stdout.4").exists(), "at most 3 rotated files");
    let numbers: Vec<u64> =
        kept.lines().map(|l| l.parse().unwrap_or_else(|_| panic!("not a whole line: {l:?}"))).collect();
    assert_eq!(numbers.last(), Some(&200_000));
    let gap = numbers.windows(2).find(|w| w[1] != w[0] + 1);
    assert!(
        gap.is_none(),
        "no line lost at a rotation point: {gap:?}, files {:?}",
        ["stdout.3", "stdout.2", "stdout.1", "stdout"].map(|n| std::fs::read_to_string(dir.join(n))
            .map(|s| (s.len(), s.lines().next().map(str::to_owned), s.lines().last().map(str::to_owned)))
            .ok())
    );
    assert!(numbers.len() > 4 * 64 * 1024 / 8, "the files are nearly full: {} lines", numbers.len());
    assert_eq!(std::fs::read_to_string(dir.join("stderr")).unwrap(), "done\n");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bad_size_is_bad_usage() {
    let sandbox = tempfile::tempdir().unwrap();
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_mesos-executor"))
        .arg("--task_log_max_size=10 megabytes")
        .env_clear()
        .env("MESOS_FRAMEWORK_ID", "f")
        .env("MESOS_EXECUTOR_ID", "e")
        .env("MESOS_SLAVE_PID", "slave(1)@127.0.0.1:1")
        .env("MESOS_SANDBOX", sandbox.path())
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(64));
    assert!(String::from_utf8_lossy(&out.stderr).contains("--task_log_max_size"));
}
