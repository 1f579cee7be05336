//! Issue 21 item 8: the daemon's log lines and the library's have different targets
//! (`executor_daemon::*` and `mesos_executor::*`), so `RUST_LOG` can turn either off.

mod support;

use fake_agent::AgentConfig;
use mesos_executor::proto::v1::TaskState;
use support::daemon::*;

/// The `target` and message of every JSON line the daemon wrote with `rust_log`, after
/// one task.
async fn lines_with(rust_log: &str) -> Vec<(String, String)> {
    let mut config = AgentConfig::default();
    config.executor_environment_variables.insert("RUST_LOG".into(), rust_log.into());
    let d = start(config, &["--mode=custom", "--log_format=json"]).await;
    d.agent.agent.launch(data_task("t1", "true"));
    d.update("t1", TaskState::TaskFinished).await;
    d.agent.agent.shutdown();
    d.exit().await;
    let log = std::fs::read_to_string(d.sandbox.join("stderr")).unwrap();
    log.lines()
        .map(|line| {
            let json: serde_json::Value =
                serde_json::from_str(line).unwrap_or_else(|e| panic!("not JSON ({e}): {line}"));
            let target = json["target"].as_str().unwrap_or_else(|| panic!("no target: {line}"));
            (target.to_owned(), json["fields"]["message"].as_str().unwrap_or_default().to_owned())
        })
        .collect()
}

fn is_daemon(target: &str) -> bool {
    target == "executor_daemon" || target.starts_with("executor_daemon::")
}

fn is_library(target: &str) -> bool {
    target == "mesos_executor" || target.starts_with("mesos_executor::")
}

/// Lines only the daemon writes.
const DAEMON_MESSAGES: &[&str] = &["starting", "task started", "status update", "executor ends"];

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_library_off_leaves_the_daemons_lines() {
    let lines = lines_with("mesos_executor=off,executor_daemon=info").await;
    assert!(lines.iter().any(|(t, m)| t == "executor_daemon::supervisor" && m == "status update"), "{lines:?}");
    assert!(lines.iter().all(|(t, _)| is_daemon(t)), "{lines:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_daemon_off_leaves_the_librarys_lines() {
    let lines = lines_with("executor_daemon=off,mesos_executor=info").await;
    assert!(lines.iter().any(|(t, _)| t.starts_with("mesos_executor::driver")), "{lines:?}");
    assert!(lines.iter().all(|(t, _)| is_library(t)), "{lines:?}");
    assert!(!lines.iter().any(|(_, m)| DAEMON_MESSAGES.contains(&m.as_str())), "{lines:?}");
}
