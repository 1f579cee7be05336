//! Gangs of tasks in the daemon: the start barrier (no member runs unless all can),
//! peer discovery (every member knows every other's ports and addresses), the admission
//! cap at its boundary, and the state file an operator reads, checked against the fake
//! agent's transcript.

mod support;

use std::time::Duration;

use fake_agent::{AckPolicy, AgentConfig};
use mesos_executor::proto::v1::{
    CommandInfo, Resource, TaskGroupInfo, TaskInfo, TaskState, task_status::Reason, value,
};
use support::daemon::*;

fn with_ports(mut task: TaskInfo, ports: &[u64]) -> TaskInfo {
    let range = ports.iter().map(|p| value::Range { begin: *p, end: *p }).collect();
    task.resources.push(Resource {
        name: "ports".into(),
        r#type: value::Type::Ranges as i32,
        ranges: Some(value::Ranges { range }),
        ..Default::default()
    });
    task
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_member_runs_unless_every_member_can() {
    let d = start(AgentConfig::default(), &["--mode=custom"]).await;
    // Two members would leave a file behind; the third names a user that does not exist.
    let a = shell_task("a", "touch ran-a; sleep 30");
    let b = shell_task("b", "touch ran-b; sleep 30");
    let mut c = shell_task("c", "touch ran-c; sleep 30");
    c.command = Some(CommandInfo { user: Some("no-such-user-for-mesos".into()), ..c.command.unwrap_or_default() });
    d.agent.agent.launch_group(TaskGroupInfo { tasks: vec![a, b, c] });
    for id in ["a", "b", "c"] {
        let failed = d.update(id, TaskState::TaskFailed).await;
        assert_eq!(failed.reason(), Reason::ContainerLaunchFailed);
        assert!(
            failed.message().contains("member \"c\"") && failed.message().contains("no such user"),
            "{}",
            failed.message()
        );
        assert!(!d.states(id).contains(&TaskState::TaskRunning), "{id} never ran");
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    for id in ["a", "b", "c"] {
        let ran = [d.sandbox.join(format!("ran-{id}")), d.sandbox.join(format!("tasks/{id}/ran-{id}"))];
        assert!(!ran.iter().any(|f| f.exists()), "no process of the group ran ({id} did)");
    }
    // A member whose program is missing stops the group the same way.
    let ok = shell_task("ok", "touch ran-ok; sleep 30");
    let mut missing = shell_task("missing", "");
    missing.command =
        Some(CommandInfo { shell: Some(false), value: Some("/no/such/program".into()), ..Default::default() });
    d.agent.agent.launch_group(TaskGroupInfo { tasks: vec![ok, missing] });
    let failed = d.update("ok", TaskState::TaskFailed).await;
    assert!(failed.message().contains("/no/such/program"), "{}", failed.message());
    assert!(!d.sandbox.join("ran-ok").exists() && !d.sandbox.join("tasks/ok/ran-ok").exists());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_member_sees_every_other_members_ports_and_addresses() {
    let d = start(AgentConfig::default(), &["--mode=custom"]).await;
    let dump = "env | grep ^MESOS_GROUP_ | sort > env-$MESOS_EXECUTOR_ID-$(basename $PWD).txt; \
                cp \"$MESOS_GROUP_FILE\" copy.$$ && mv copy.$$ group-copy.json; sleep 30";
    let member = |id: &str, name: &str, ports: &[u64]| {
        let mut task = shell_task(id, &dump.replace("$MESOS_EXECUTOR_ID-$(basename $PWD)", id));
        task.name = name.into();
        with_ports(task, ports)
    };
    let tasks = vec![
        member("db-0", "db", &[31000, 31001]),
        member("web-0", "web.front", &[31002]),
        member("cache-0", "cache", &[31003]),
    ];
    d.agent.agent.launch_group(TaskGroupInfo { tasks });
    for id in ["db-0", "web-0", "cache-0"] {
        d.update(id, TaskState::TaskRunning).await;
    }
    let host = "localhost"; // the fake agent's AgentInfo.hostname
    for id in ["db-0", "web-0", "cache-0"] {
        // Each member writes in its own directory.
        let path = d.sandbox.join(format!("tasks/{id}/env-{id}.txt"));
        let mut env = String::new();
        for _ in 0..100 {
            env = std::fs::read_to_string(&path).unwrap_or_default();
            if env.contains("MESOS_GROUP_FILE") {
                break;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        for line in [
            "MESOS_GROUP_TASK_IDS=db-0,web-0,cache-0".to_owned(),
            "MESOS_GROUP_TASK_NAMES=db,web.front,cache".to_owned(),
            "MESOS_GROUP_DB_PORTS=31000,31001".to_owned(),
            format!("MESOS_GROUP_DB_ADDRESSES={host}:31000,{host}:31001"),
            "MESOS_GROUP_WEB_FRONT_PORTS=31002".to_owned(),
            format!("MESOS_GROUP_WEB_FRONT_ADDRESSES={host}:31002"),
            format!("MESOS_GROUP_CACHE_ADDRESSES={host}:31003"),
        ] {
            assert!(env.lines().any(|l| l == line), "{id} lacks {line}:\n{env}");
        }
    }
    let copy = d.sandbox.join("tasks/db-0/group-copy.json");
    for _ in 0..100 {
        if copy.exists() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let file: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(&copy).unwrap()).unwrap();
    assert_eq!(file["tasks"][0]["ports"], serde_json::json!([31000, 31001]));
    assert_eq!(file["tasks"][1]["name"], "web.front");
    assert_eq!(file["tasks"][2]["addresses"], serde_json::json!([format!("{host}:31003")]));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_admission_cap_refuses_at_the_boundary_and_never_half_a_group() {
    let d = start(AgentConfig::default(), &["--mode=custom", "--max_tasks=2"]).await;
    let sleeper = |id: &str| shell_task(id, "sleep 30");
    d.agent.agent.launch(sleeper("one"));
    d.agent.agent.launch(sleeper("two"));
    d.update("one", TaskState::TaskRunning).await;
    d.update("two", TaskState::TaskRunning).await;
    d.agent.agent.launch(sleeper("three"));
    let refused = d.update("three", TaskState::TaskFailed).await;
    assert_eq!(refused.reason(), Reason::ContainerLimitation);
    assert!(refused.message().contains("--max_tasks"), "{}", refused.message());
    d.agent.agent.kill("one", None);
    d.update("one", TaskState::TaskKilled).await;
    // One slot free: a group of two is refused whole.
    d.agent.agent.launch_group(TaskGroupInfo { tasks: vec![sleeper("g1"), sleeper("g2")] });
    for id in ["g1", "g2"] {
        assert_eq!(d.update(id, TaskState::TaskFailed).await.reason(), Reason::ContainerLimitation);
        assert!(!d.states(id).contains(&TaskState::TaskRunning));
    }
    // Exactly at the cap is fine.
    d.agent.agent.launch(sleeper("four"));
    d.update("four", TaskState::TaskRunning).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_state_file_follows_the_tasks_and_the_acknowledgements() {
    let config = AgentConfig { ack_policy: AckPolicy::Withhold, ..AgentConfig::default() };
    let d = start(config, &["--mode=custom"]).await;
    let path = d.sandbox.join("mesos-executor-state.json");
    let read = || -> serde_json::Value {
        serde_json::from_str(&std::fs::read_to_string(&path).unwrap_or_else(|_| "{}".into())).unwrap_or_default()
    };
    let task_of = |doc: &serde_json::Value, id: &str| {
        doc["tasks"].as_array().and_then(|ts| ts.iter().find(|t| t["task_id"] == id).cloned()).unwrap_or_default()
    };
    d.agent.agent.launch(shell_task("quick", "exit 0"));
    d.agent.agent.launch(shell_task("slow", "sleep 30"));
    d.update("quick", TaskState::TaskFinished).await;
    d.update("slow", TaskState::TaskRunning).await;
    // During the run: states, pids, exits, and nothing acknowledged yet.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    let mut doc = read();
    while task_of(&doc, "quick")["exit"].is_null() || task_of(&doc, "slow")["pid"].is_null() {
        assert!(tokio::time::Instant::now() < deadline, "state file: {doc}");
        tokio::time::sleep(Duration::from_millis(20)).await;
        doc = read();
    }
    let (quick, slow) = (task_of(&doc, "quick"), task_of(&doc, "slow"));
    assert_eq!(quick["state"], "TASK_FINISHED");
    assert_eq!(quick["exit"], "Command exited with status 0");
    assert_eq!(slow["state"], "TASK_RUNNING");
    assert!(slow["pid"].as_u64().is_some_and(|p| p > 1) && slow["started_at"].as_f64().is_some());
    assert_eq!((quick["acknowledged"].as_bool(), slow["acknowledged"].as_bool()), (Some(false), Some(false)));
    // The agent acknowledges: the file says so.
    d.agent.agent.release_withheld_acks();
    d.agent.agent.set_ack_policy(AckPolicy::Immediate);
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    while task_of(&read(), "slow")["acknowledged"] != true || task_of(&read(), "quick")["acknowledged"] != true {
        assert!(tokio::time::Instant::now() < deadline, "acknowledged never shows: {}", read());
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    // After the run: the file agrees with the agent's transcript, task by task.
    d.agent.agent.shutdown();
    assert_eq!(d.exit().await, "exited with status 0");
    let doc = read();
    for id in ["quick", "slow"] {
        let last = d.updates(id).last().map(|u| u.state()).unwrap();
        assert_eq!(task_of(&doc, id)["state"], last.as_str_name(), "{id}: {doc}");
        assert_eq!(task_of(&doc, id)["acknowledged"], true);
    }
    assert_eq!(task_of(&doc, "slow")["exit"], "Command terminated with signal Terminated");
    // And a person can read it.
    let table = std::process::Command::new(env!("CARGO_BIN_EXE_mesos-executor"))
        .args(["state", "--sandbox"])
        .arg(&d.sandbox)
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&table.stdout);
    assert!(table.status.success(), "{}", String::from_utf8_lossy(&table.stderr));
    assert!(text.lines().any(|l| l.starts_with("slow") && l.contains("KILLED") && l.contains("yes")), "{text}");
    assert!(text.lines().any(|l| l.starts_with("quick") && l.contains("FINISHED")), "{text}");
}
