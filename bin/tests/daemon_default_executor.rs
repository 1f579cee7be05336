//! The daemon as the agent's default executor (issue 20): started as upstream's is,
//! `<launcher_dir>/mesos-default-executor --launcher_dir=...`, it runs task groups
//! (where `--launcher_dir` alone makes a drop-in that refuses them), takes no flag from
//! its environment, gives each member its own sandbox with `MESOS_SANDBOX` and
//! `MESOS_CONTAINER_IP`, and exits 0 once the last group has ended and its updates are
//! acknowledged (upstream `src/launcher/default_executor.cpp`), without a SHUTDOWN.

mod support;

use fake_agent::AgentConfig;
use mesos_executor::proto::v1::{TaskGroupInfo, TaskState};
use support::daemon::*;

/// `mesos-default-executor` in a directory of its own: a link to the daemon.
fn launcher_dir() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    std::os::unix::fs::symlink(env!("CARGO_BIN_EXE_mesos-executor"), dir.path().join("mesos-default-executor"))
        .unwrap();
    dir
}

async fn default_executor(config: AgentConfig, launcher: &std::path::Path) -> Daemon {
    let program = launcher.join("mesos-default-executor").display().to_string();
    start_command(config, &[program, format!("--launcher_dir={}", launcher.display())]).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn by_its_name_it_runs_a_group_and_exits_once_the_group_is_done() {
    let launcher = launcher_dir();
    let out = tempfile::tempdir().unwrap();
    let vars = [
        ("LIBPROCESS_IP", "127.0.0.1".to_owned()),
        // Flags from the environment change nothing.
        ("MESOS_USER", "nobody".to_owned()),
        ("MESOS_EXECUTOR_MAX_TASKS", "not a number".to_owned()),
    ];
    let config = AgentConfig {
        executor_environment_variables: vars.iter().map(|(k, v)| ((*k).to_owned(), v.clone())).collect(),
        ..AgentConfig::default()
    };
    let d = default_executor(config, launcher.path()).await;
    let report = |id: &str| {
        let file = out.path().join(id);
        shell_task(id, &format!("echo \"$(pwd) $MESOS_SANDBOX $MESOS_CONTAINER_IP $(id -u)\" > {}", file.display()))
    };
    d.agent.agent.launch_group(TaskGroupInfo { tasks: vec![report("a"), report("b"), report("c")] });
    let sandbox = std::fs::canonicalize(&d.sandbox).unwrap();
    let me = nix::unistd::getuid().as_raw().to_string();
    for id in ["a", "b", "c"] {
        d.update(id, TaskState::TaskFinished).await;
        assert_eq!(d.states(id), [TaskState::TaskStarting, TaskState::TaskRunning, TaskState::TaskFinished]);
        let seen = std::fs::read_to_string(out.path().join(id)).unwrap();
        let fields: Vec<&str> = seen.split_whitespace().collect();
        let link = std::fs::read_link(d.sandbox.join("tasks").join(id)).unwrap();
        assert_eq!(link.parent(), Some(sandbox.join("containers").as_path()), "tasks/{id} -> containers/<id>");
        let link = link.display().to_string();
        assert_eq!(fields, [link.as_str(), link.as_str(), "127.0.0.1", me.as_str()], "{id}: {seen}");
    }
    assert_eq!(d.exit().await, "exited with status 0", "without a SHUTDOWN");
    let shutdowns = d.agent.agent.inspect(|s| format!("{:?}", s.transcript)).matches("Shutdown").count();
    assert_eq!(shutdowns, 0, "the agent never sent SHUTDOWN");
}
