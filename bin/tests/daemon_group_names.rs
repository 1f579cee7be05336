//! Group naming in the daemon: a member with a 250-character id, and two members with
//! the same name, in one group; every member starts and sees every other by its place.

mod support;

use std::time::Duration;

use fake_agent::AgentConfig;
use mesos_executor::proto::v1::{TaskGroupInfo, TaskState};
use support::daemon::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn long_ids_and_equal_names_work() {
    let d = start(AgentConfig::default(), &["--mode=custom"]).await;
    let out = tempfile::tempdir().unwrap();
    let long_id = "x".repeat(250);
    let member = |id: &str, file: &str| {
        let path = out.path().join(file);
        let mut task = shell_task(
            id,
            &format!("env | grep ^MESOS_GROUP_ | sort > {}.tmp && mv {0}.tmp {0}; sleep 30", path.display()),
        );
        task.name = "web".into();
        task
    };
    let tasks = vec![member(&long_id, "long"), member("short", "short")];
    d.agent.agent.launch_group(TaskGroupInfo { tasks });
    d.update(&long_id, TaskState::TaskRunning).await;
    d.update("short", TaskState::TaskRunning).await;
    let path = out.path().join("short");
    for _ in 0..200 {
        if path.exists() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let env = std::fs::read_to_string(&path).unwrap();
    for line in [
        "MESOS_GROUP_SIZE=2".to_owned(),
        format!("MESOS_GROUP_MEMBER_0_ID={long_id}"),
        "MESOS_GROUP_MEMBER_1_ID=short".to_owned(),
    ] {
        assert!(env.lines().any(|l| l == line), "lacks {line}:\n{env}");
    }
    assert!(!env.contains("MESOS_GROUP_WEB_PORTS"), "an ambiguous name got variables:\n{env}");
    drop(d);
}
