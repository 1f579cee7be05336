//! Every flag the agent passes to its command executor, written the way the agent writes
//! it, does what upstream does with it; what we cannot do fails the task naming the flag;
//! an unknown flag from a newer agent is ignored in drop-in mode.

mod support;

use fake_agent::AgentConfig;
use mesos_executor::proto::v1::{CommandInfo, Environment, TaskState, environment};
use support::daemon::*;

const DROP_IN: &str = "--launcher_dir=/usr/libexec/mesos";

async fn run_one(args: &[&str], command: &str) -> Daemon {
    let mut all = vec![DROP_IN];
    all.extend_from_slice(args);
    let d = start(AgentConfig::default(), &all).await;
    d.agent.agent.launch(shell_task("t1", command));
    d
}

fn read(d: &Daemon, file: &str) -> String {
    std::fs::read_to_string(d.sandbox.join(file)).unwrap_or_default().trim().to_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn task_environment_sits_between_the_executors_and_the_tasks_own() {
    let env = r#"--task_environment={"variables":[{"name":"FROM_AGENT","type":"VALUE","value":"agent"},{"name":"BOTH","type":"VALUE","value":"agent"}]}"#;
    let d = start(AgentConfig::default(), &[DROP_IN, env]).await;
    let mut task = shell_task("t1", "echo $FROM_AGENT $BOTH > env.txt");
    if let Some(command) = &mut task.command {
        command.environment = Some(Environment {
            variables: vec![environment::Variable {
                name: "BOTH".into(),
                value: Some("task".into()),
                ..Default::default()
            }],
        });
    }
    d.agent.agent.launch(task);
    d.update("t1", TaskState::TaskFinished).await;
    assert_eq!(read(&d, "env.txt"), "agent task");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_task_launch_info_gives_environment_and_working_directory() {
    let dir = tempfile::tempdir().unwrap();
    let info = format!(
        r#"--task_launch_info={{"environment":{{"variables":[{{"name":"FROM_INFO","type":"VALUE","value":"yes"}}]}},"working_directory":"{}"}}"#,
        dir.path().display()
    );
    let d = run_one(&[&info], "echo $FROM_INFO $PWD > $MESOS_SANDBOX/info.txt").await;
    d.update("t1", TaskState::TaskFinished).await;
    assert_eq!(read(&d, "info.txt"), format!("yes {}", dir.path().display()));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_tty_gets_the_tasks_output() {
    let dir = tempfile::tempdir().unwrap();
    // The slave end of a pseudo-terminal, as far as the task can tell: a file it writes to.
    let tty = dir.path().join("pts-7");
    std::fs::write(&tty, b"").unwrap();
    let flag = format!("--tty_slave_path={}", tty.display());
    let d = run_one(&[&flag], "echo on the tty; echo errors too >&2").await;
    d.update("t1", TaskState::TaskFinished).await;
    let seen = std::fs::read_to_string(&tty).unwrap();
    assert!(seen.contains("on the tty") && seen.contains("errors too"), "{seen:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn what_cannot_be_honoured_fails_the_task_naming_the_flag() {
    let d = run_one(&["--rootfs=/var/lib/mesos/provisioner/rootfs/abc"], "true").await;
    let error = d.update("t1", TaskState::TaskError).await;
    assert!(error.message().contains("--rootfs=/var/lib/mesos/provisioner/rootfs/abc"), "{}", error.message());
    let d = run_one(&[r#"--task_launch_info={"rlimits":{"rlimits":[]}}"#], "true").await;
    let error = d.update("t1", TaskState::TaskError).await;
    assert!(
        error.message().contains("--task_launch_info") && error.message().contains("rlimits"),
        "{}",
        error.message()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unknown_flag_from_a_newer_agent_is_ignored_in_drop_in_mode() {
    let d = run_one(&["--some_future_flag=42", "--another_one"], "true").await;
    d.update("t1", TaskState::TaskFinished).await;
    assert_eq!(d.exit().await, "exited with status 0");
    let log = std::fs::read_to_string(d.sandbox.join("stderr")).unwrap();
    assert!(log.contains("--some_future_flag=42") && log.contains("ignoring"), "{log}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs root (scripts/test.sh includes it when run as root)"]
async fn supplementary_groups_are_applied_when_the_task_switches_user() {
    let d = start(AgentConfig::default(), &[DROP_IN, "--user=nobody", "--task_supplementary_groups=4242,4243"]).await;
    // The sandbox must be writable by nobody (a real agent chowns it).
    let _ = std::process::Command::new("chmod").arg("777").arg(&d.sandbox).status();
    d.agent.agent.launch(shell_task("t1", "id -un > user.txt; id -G > groups.txt"));
    d.update("t1", TaskState::TaskFinished).await;
    assert_eq!(read(&d, "user.txt"), "nobody");
    let groups = read(&d, "groups.txt");
    for gid in ["4242", "4243"] {
        assert!(groups.split_whitespace().any(|g| g == gid), "{groups}");
    }
    assert!(!groups.split_whitespace().any(|g| g == "0"), "root's group is gone: {groups}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs root (scripts/test.sh includes it when run as root)"]
async fn capabilities_are_applied_before_exec() {
    // As upstream (and Linux) has it: a task that runs as root gets its whole bounding
    // set on exec, so the effective set is seen on a task of another user.
    let d = start(
        AgentConfig::default(),
        &[
            DROP_IN,
            "--user=nobody",
            r#"--effective_capabilities={"capabilities":["NET_RAW"]}"#,
            r#"--bounding_capabilities={"capabilities":["NET_RAW","CHOWN"]}"#,
        ],
    )
    .await;
    let _ = std::process::Command::new("chmod").arg("777").arg(&d.sandbox).status();
    let mut task = shell_task("t1", "");
    task.command = Some(CommandInfo {
        value: Some("grep -E '^Cap(Eff|Bnd)' /proc/self/status > caps.txt".into()),
        ..Default::default()
    });
    d.agent.agent.launch(task);
    d.update("t1", TaskState::TaskFinished).await;
    let caps = read(&d, "caps.txt");
    // CAP_CHOWN is bit 0, CAP_NET_RAW bit 13.
    assert!(caps.contains("CapEff:\t0000000000002000"), "{caps}");
    assert!(caps.contains("CapBnd:\t0000000000002001"), "{caps}");
}
