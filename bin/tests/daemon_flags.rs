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

/// The `Cap*` lines of the task's `/proc/self/status`, as `name value` pairs.
fn caps_of(d: &Daemon) -> Vec<(String, String)> {
    read(d, "caps.txt")
        .lines()
        .filter_map(|l| l.split_once(":\t"))
        .map(|(k, v)| (k.to_owned(), v.trim().to_owned()))
        .collect()
}

/// Runs one task printing its capability sets, with `args`, and returns them.
async fn task_caps(args: &[&str]) -> Vec<(String, String)> {
    let mut all = vec![DROP_IN];
    all.extend_from_slice(args);
    let d = start(AgentConfig::default(), &all).await;
    let _ = std::process::Command::new("chmod").arg("777").arg(&d.sandbox).status();
    d.agent.agent.launch(shell_task("t1", "grep -E '^Cap' /proc/self/status > caps.txt"));
    d.update("t1", TaskState::TaskFinished).await;
    caps_of(&d)
}

fn all_sets(value: &str) -> Vec<(String, String)> {
    ["CapInh", "CapPrm", "CapEff", "CapBnd", "CapAmb"].iter().map(|k| ((*k).to_owned(), value.to_owned())).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs root (scripts/test.sh includes it when run as root)"]
async fn effective_capabilities_alone_bound_a_root_task() {
    // Upstream's calculateCapabilities: effective alone is also the bounding set, so a
    // task running as root gets no more than it was given (CAP_NET_RAW is bit 13).
    let caps = task_caps(&[r#"--effective_capabilities={"capabilities":["NET_RAW"]}"#]).await;
    assert_eq!(caps, all_sets("0000000000002000"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs root (scripts/test.sh includes it when run as root)"]
async fn effective_capabilities_alone_bound_a_nobody_task() {
    let caps = task_caps(&["--user=nobody", r#"--effective_capabilities={"capabilities":["NET_RAW"]}"#]).await;
    assert_eq!(caps, all_sets("0000000000002000"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs root (scripts/test.sh includes it when run as root)"]
async fn bounding_capabilities_alone_bound_a_root_task_and_leave_nobody_nothing() {
    // A root task's permitted set is its bounding set on exec; a nobody task's is empty.
    let bounding = r#"--bounding_capabilities={"capabilities":["NET_RAW","CHOWN"]}"#;
    let root = task_caps(&[bounding]).await;
    assert_eq!(
        root,
        [("CapInh", "2001"), ("CapPrm", "2001"), ("CapEff", "2001"), ("CapBnd", "2001"), ("CapAmb", "0")]
            .map(|(k, v)| (k.to_owned(), format!("{v:0>16}")))
    );
    let nobody = task_caps(&["--user=nobody", bounding]).await;
    assert_eq!(
        nobody,
        [("CapInh", "2001"), ("CapPrm", "0"), ("CapEff", "0"), ("CapBnd", "2001"), ("CapAmb", "0")]
            .map(|(k, v)| (k.to_owned(), format!("{v:0>16}")))
    );
}

/// A user and a group made for one test (root only), the user a member of the group;
/// both removed when dropped, even when the test fails.
struct TestUser {
    user: String,
    group: String,
    gid: u32,
}

impl TestUser {
    fn create() -> TestUser {
        let nanos = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().subsec_nanos();
        let tag = format!("{}x{nanos}", std::process::id());
        let (user, group) = (format!("mxu{tag}"), format!("mxg{tag}"));
        let run = |program: &str, args: &[&str]| {
            let status = std::process::Command::new(program).args(args).status().unwrap();
            assert!(status.success(), "{program} {args:?}: {status}");
        };
        run("groupadd", &[&group]);
        let mut made = TestUser { user: user.clone(), group: group.clone(), gid: 0 };
        run("useradd", &["-M", "-N", "-s", "/bin/sh", "-G", &group, &user]);
        let line = std::process::Command::new("getent").args(["group", &group]).output().unwrap().stdout;
        made.gid = String::from_utf8_lossy(&line).split(':').nth(2).unwrap().trim().parse().unwrap();
        made
    }
}

impl Drop for TestUser {
    fn drop(&mut self) {
        let _ = std::process::Command::new("userdel").arg(&self.user).status();
        let _ = std::process::Command::new("groupdel").arg(&self.group).status();
    }
}

fn groups_of(d: &Daemon) -> Vec<u32> {
    read(d, "groups.txt").split_whitespace().filter_map(|g| g.parse().ok()).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs root (scripts/test.sh includes it when run as root)"]
async fn a_task_keeps_the_groups_its_user_has_in_etc_group() {
    let who = TestUser::create();
    let user = format!("--user={}", who.user);
    let d = start(AgentConfig::default(), &[DROP_IN, &user]).await;
    let _ = std::process::Command::new("chmod").arg("777").arg(&d.sandbox).status();
    d.agent.agent.launch(shell_task("t1", "id -G > groups.txt"));
    d.update("t1", TaskState::TaskFinished).await;
    let groups = groups_of(&d);
    assert!(groups.contains(&who.gid), "group {} ({}) missing from {groups:?}", who.group, who.gid);
    assert!(!groups.contains(&0), "root's group is gone: {groups:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs root (scripts/test.sh includes it when run as root)"]
async fn the_exec_helper_takes_nothing_from_the_tasks_environment() {
    // The task's environment is the helper's: variables that are daemon flags, one of
    // them malformed, must not reach the helper's own settings.
    let who = TestUser::create();
    let user = format!("--user={}", who.user);
    let args = [
        DROP_IN,
        &user,
        "--task_supplementary_groups=4242",
        r#"--effective_capabilities={"capabilities":["NET_RAW"]}"#,
    ];
    let d = start(AgentConfig::default(), &args).await;
    let _ = std::process::Command::new("chmod").arg("777").arg(&d.sandbox).status();
    let mut task = shell_task("t1", "id -G > groups.txt; echo $MESOS_EXECUTOR_MODE > mode.txt");
    if let Some(command) = &mut task.command {
        let var = |name: &str, value: &str| environment::Variable {
            name: name.into(),
            value: Some(value.into()),
            ..Default::default()
        };
        command.environment = Some(Environment {
            variables: vec![var("MESOS_EXECUTOR_MODE", "batch"), var("MESOS_EXECUTOR_MAX_TASKS", "x")],
        });
    }
    d.agent.agent.launch(task);
    d.update("t1", TaskState::TaskFinished).await;
    let groups = groups_of(&d);
    assert!(groups.contains(&who.gid) && groups.contains(&4242), "{groups:?}");
    assert_eq!(read(&d, "mode.txt"), "batch", "the task still sees its own environment");
}
