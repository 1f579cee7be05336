//! In drop-in mode the daemon's flags come from its command line only (issue 20): the
//! agent merges the task's own environment into the command executor's, so a task
//! variable named like a flag's environment form (`MESOS_TASK_COMMAND`, `MESOS_USER`,
//! `MESOS_ROOTFS`, ...) must not change what the daemon does to that task. Upstream's
//! command executor reads its flags from the command line alone.

mod support;

use fake_agent::AgentConfig;
use mesos_executor::proto::v1::TaskState;
use support::daemon::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn task_variables_named_like_flags_change_nothing_in_drop_in_mode() {
    let out = tempfile::tempdir().unwrap();
    let hijacked = out.path().join("hijacked");
    let ran = out.path().join("ran");
    let planted = out.path().join("metrics-where-the-task-says");
    let vars = [
        ("MESOS_EXECUTOR_METRICS_FILE", planted.display().to_string()),
        ("MESOS_TASK_COMMAND", format!(r#"{{"value": "touch {}"}}"#, hijacked.display())),
        ("MESOS_USER", "nobody".to_owned()),
        ("MESOS_ROOTFS", "/no/such/rootfs".to_owned()),
        ("MESOS_EXECUTOR_MAX_TASKS", "not a number".to_owned()),
    ];
    let config = AgentConfig {
        executor_environment_variables: vars.iter().map(|(k, v)| ((*k).to_owned(), v.clone())).collect(),
        ..AgentConfig::default()
    };
    let d = command_executor(config).await;
    d.agent.agent.launch(shell_task("t1", &format!("id -u > {}", ran.display())));
    let finished = d.update("t1", TaskState::TaskFinished).await;
    assert_eq!(finished.state(), TaskState::TaskFinished);
    assert!(!hijacked.exists(), "MESOS_TASK_COMMAND from the environment replaced the task's command");
    let uid = std::fs::read_to_string(&ran).unwrap_or_default();
    let me = nix::unistd::getuid().as_raw().to_string();
    assert_eq!(uid.trim(), me, "MESOS_USER from the environment changed the task's user");
    assert!(!planted.exists(), "the task's MESOS_EXECUTOR_METRICS_FILE chose where the daemon writes");
    assert!(d.sandbox.join("mesos-executor.prom").exists(), "the metrics file is in the sandbox");
}
