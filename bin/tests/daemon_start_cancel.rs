//! A task's start can be called off: a KILL or SHUTDOWN while its URIs are being
//! fetched (from a server that accepts and never answers) cancels the fetch, starts no
//! process, and ends the task with TASK_KILLED at once; SHUTDOWN then ends the executor
//! with exit 0, as does the drop-in executor once its one task is killed (issue 19).

mod support;

use std::time::{Duration, Instant};

use fake_agent::AgentConfig;
use mesos_executor::proto::v1::{CommandInfo, TaskGroupInfo, TaskInfo, TaskState, command_info::Uri};
use support::daemon::*;

/// A server on `127.0.0.1:0` that accepts connections and never answers; the
/// connections are held until the test ends.
async fn silent_server() -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((stream, _)) = listener.accept().await {
            held.push(stream);
        }
    });
    base
}

/// A task that fetches `uri` and would leave a `ran-<marker>` file and a process
/// named by `marker` if it ever started.
fn fetching(id: &str, uri: &str, marker: &str) -> TaskInfo {
    let mut task = shell_task(id, "");
    let command = format!("touch ran-{id}; sleep {marker}");
    let uris = vec![Uri { value: uri.into(), ..Default::default() }];
    task.command = Some(CommandInfo { uris, value: Some(command), ..Default::default() });
    task
}

/// The executor's fetch helpers that are alive.
fn fetch_helpers(d: &Daemon) -> usize {
    let members = d.agent.agent.container_members();
    members
        .into_iter()
        .filter(|pid| {
            let cmdline = std::fs::read(format!("/proc/{pid}/cmdline")).unwrap_or_default();
            let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
            let zombie = stat.rfind(')').is_some_and(|i| stat[i + 1..].trim_start().starts_with('Z'));
            !zombie && String::from_utf8_lossy(&cmdline).contains("--fetch_helper")
        })
        .count()
}

fn ran(d: &Daemon, id: &str) -> bool {
    d.sandbox.join(format!("tasks/{id}/ran-{id}")).exists() || d.sandbox.join(format!("ran-{id}")).exists()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_kill_while_fetching_is_task_killed_at_once_and_nothing_starts() {
    let base = silent_server().await;
    let d = start(killing_capable(), &["--mode=custom"]).await;
    let marker = unique_seconds();
    d.agent.agent.launch(fetching("t1", &format!("{base}/never.tar.gz"), &marker));
    d.update("t1", TaskState::TaskStarting).await;
    // Let the fetch reach the silent server.
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(fetch_helpers(&d), 1, "the fetch is under way");
    let asked = Instant::now();
    d.agent.agent.kill("t1", None);
    let killed = d.update("t1", TaskState::TaskKilled).await;
    let took = asked.elapsed();
    assert!(took < Duration::from_secs(3), "TASK_KILLED within the 3 s grace period, after {took:?}");
    assert_eq!(d.states("t1"), [TaskState::TaskStarting, TaskState::TaskKilling, TaskState::TaskKilled]);
    assert!(!killed.message().is_empty());
    // Nothing starts afterwards either.
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert!(!ran(&d, "t1"), "the task's process started");
    assert!(processes_matching(&marker).is_empty(), "the task's process is running");
    assert_eq!(fetch_helpers(&d), 0, "the fetch was cancelled and its helper killed");
    assert_eq!(d.states("t1").len(), 3, "nothing after TASK_KILLED: {:?}", d.states("t1"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_while_fetching_ends_every_task_and_exits_zero() {
    let base = silent_server().await;
    let config = AgentConfig { shutdown_grace_period: Duration::from_secs(3), ..killing_capable() };
    let d = start(config, &["--mode=custom"]).await;
    let marker = unique_seconds();
    d.agent.agent.launch(fetching("solo", &format!("{base}/solo.bin"), &marker));
    // A group: one member fetches from the silent server, one has nothing to fetch.
    let quick = shell_task("quick", &format!("touch ran-quick; sleep {marker}"));
    let slow = fetching("slow", &format!("{base}/slow.bin"), &marker);
    d.agent.agent.launch_group(TaskGroupInfo { tasks: vec![quick, slow] });
    for id in ["solo", "quick", "slow"] {
        d.update(id, TaskState::TaskStarting).await;
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    let asked = Instant::now();
    d.agent.agent.shutdown();
    for id in ["solo", "quick", "slow"] {
        d.update(id, TaskState::TaskKilled).await;
    }
    assert_eq!(d.exit().await, "exited with status 0");
    assert!(asked.elapsed() < Duration::from_secs(3), "within the shutdown grace period: {:?}", asked.elapsed());
    for id in ["solo", "quick", "slow"] {
        assert!(!ran(&d, id), "{id}: a process started");
    }
    assert!(processes_matching(&marker).is_empty());
}

/// Drop-in mode fetches nothing: the agent's fetcher did before it started us (issue 20).
/// A URI on a server that never answers does not hold the task back (it used to: the
/// task waited on the fetch), and the server sees no connection from us.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn drop_in_mode_leaves_uris_to_the_agents_fetcher() {
    let base = silent_server().await;
    let d = command_executor(killing_capable()).await;
    let marker = unique_seconds();
    d.agent.agent.launch(fetching("only", &format!("{base}/never.bin"), &marker));
    d.update("only", TaskState::TaskRunning).await;
    assert_eq!(fetch_helpers(&d), 0, "no fetch helper runs in drop-in mode");
    d.agent.agent.kill("only", None);
    d.update("only", TaskState::TaskKilled).await;
    assert_eq!(d.exit().await, "exited with status 0", "its one task is done: the drop-in executor ends");
    assert!(processes_matching(&marker).is_empty());
}
