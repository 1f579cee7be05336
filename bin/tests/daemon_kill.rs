//! Killing tasks with real processes and signals: TASK_KILLING then TASK_KILLED,
//! SIGTERM then SIGKILL after the grace period, nothing of the task left behind, and
//! the daemon's own SIGTERM.

mod support;

use std::time::{Duration, Instant};

use mesos_executor::proto::v1::TaskState;
use support::daemon::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_sends_killing_then_killed_and_the_process_is_gone() {
    let d = command_executor(killing_capable()).await;
    let marker = unique_seconds();
    d.agent.agent.launch(shell_task("t1", &format!("sleep {marker}")));
    d.update("t1", TaskState::TaskRunning).await;
    assert!(!processes_matching(&marker).is_empty());
    d.agent.agent.kill("t1", None);
    let killed = d.update("t1", TaskState::TaskKilled).await;
    assert!(killed.message().starts_with("Command terminated with signal"), "{}", killed.message());
    assert_eq!(
        d.states("t1"),
        [TaskState::TaskStarting, TaskState::TaskRunning, TaskState::TaskKilling, TaskState::TaskKilled]
    );
    assert!(processes_matching(&marker).is_empty());
    assert_eq!(d.exit().await, "exited with status 0");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_killing_state_without_the_capability() {
    let d =
        command_executor(fake_agent::AgentConfig { capabilities: vec![], ..fake_agent::AgentConfig::default() }).await;
    d.agent.agent.launch(shell_task("t1", &format!("sleep {}", unique_seconds())));
    d.update("t1", TaskState::TaskRunning).await;
    d.agent.agent.kill("t1", None);
    d.update("t1", TaskState::TaskKilled).await;
    assert!(!d.states("t1").contains(&TaskState::TaskKilling));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_is_escalated_to_sigkill_after_the_kill_policy_grace() {
    let d = command_executor(killing_capable()).await;
    let marker = unique_seconds();
    // The shell ignores SIGTERM and so does its child.
    d.agent.agent.launch(shell_task("stubborn", &format!("trap '' TERM; sleep {marker}; true")));
    d.update("stubborn", TaskState::TaskRunning).await;
    tokio::time::sleep(Duration::from_millis(50)).await;
    let asked = Instant::now();
    d.agent.agent.kill("stubborn", fake_agent::scenario::kill_policy(Some(400)));
    let killed = d.update("stubborn", TaskState::TaskKilled).await;
    let took = asked.elapsed();
    assert_eq!(killed.message(), "Command terminated with signal Killed");
    assert!(took >= Duration::from_millis(380), "SIGKILL came after {took:?}, before the grace period");
    assert!(took < Duration::from_secs(3), "the KILL event's policy (400 ms) wins over the 3 s default: {took:?}");
    assert!(processes_matching(&marker).is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn processes_that_escape_the_group_are_killed_too() {
    let d = command_executor(killing_capable()).await;
    let (escaped, leftover) = (unique_seconds(), unique_seconds());
    // One child moves to its own session (its own process group); the task then waits.
    d.agent.agent.launch(shell_task("t1", &format!("setsid sleep {escaped} & sleep 0.1; sleep {leftover}")));
    d.update("t1", TaskState::TaskRunning).await;
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert!(!processes_matching(&escaped).is_empty(), "the escaped process is running");
    d.agent.agent.kill("t1", None);
    d.update("t1", TaskState::TaskKilled).await;
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert!(processes_matching(&escaped).is_empty(), "the escaped process survived the kill");
    assert!(processes_matching(&leftover).is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn what_a_finished_task_leaves_running_is_killed() {
    let d = command_executor(fake_agent::AgentConfig::default()).await;
    let marker = unique_seconds();
    d.agent.agent.launch(shell_task("t1", &format!("sleep {marker} & echo started")));
    d.update("t1", TaskState::TaskFinished).await;
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert!(processes_matching(&marker).is_empty(), "the background sleep outlived its task");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_to_the_daemon_kills_tasks_reports_and_exits_zero() {
    graceful_on(nix::sys::signal::Signal::SIGTERM).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigint_to_the_daemon_kills_tasks_reports_and_exits_zero() {
    graceful_on(nix::sys::signal::Signal::SIGINT).await;
}

async fn graceful_on(signal: nix::sys::signal::Signal) {
    // Acknowledgements come 300 ms after each update: a daemon that did not wait for the
    // terminal one would exit before it.
    let config = fake_agent::AgentConfig { ack_policy: fake_agent::AckPolicy::DelayMs(300), ..Default::default() };
    let d = start(config, &["--mode=custom"]).await;
    let marker = unique_seconds();
    d.agent.agent.launch(data_task("t1", &format!("sleep {marker}")));
    d.update("t1", TaskState::TaskRunning).await;
    let executor_pid = executor_pid(&d);
    nix::sys::signal::kill(nix::unistd::Pid::from_raw(executor_pid as i32), signal).unwrap();
    let killed = d.update("t1", TaskState::TaskKilled).await;
    assert!(killed.message().contains("signal"), "{}", killed.message());
    // A framework tells this from a kill it asked for (issue 22).
    assert!(killed.message().contains("the executor was asked to stop"), "{}", killed.message());
    assert_eq!(killed.reason(), mesos_executor::proto::v1::task_status::Reason::ExecutorTerminated);
    assert_eq!(d.exit().await, "exited with status 0");
    assert!(processes_matching(&marker).is_empty());
    let acked = support::ack_time(&d.agent.agent, "t1", TaskState::TaskKilled).expect("terminal update acknowledged");
    let exited = d
        .agent
        .agent
        .transcript()
        .iter()
        .map(|e| e.to_json())
        .find(|j| j["what"].as_str().is_some_and(|w| w.starts_with("executor process exited")))
        .and_then(|j| j["t"].as_f64())
        .expect("the exit is in the transcript");
    assert!(acked < exited, "exit at {exited} s came before the terminal ACK at {acked} s");
}

/// The daemon: the container's process whose parent is this test (the fake agent);
/// its watchdog runs the same binary but is the daemon's child.
fn executor_pid(d: &Daemon) -> u32 {
    let me = std::process::id().to_string();
    d.agent
        .agent
        .container_members()
        .into_iter()
        .find(|pid| {
            let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
            stat.rfind(')').and_then(|i| stat[i + 1..].split_whitespace().nth(1).map(str::to_owned)) == Some(me.clone())
        })
        .expect("the executor process")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_daemon_started_by_a_finished_task_is_killed() {
    let d = start(fake_agent::AgentConfig::default(), &["--mode=custom"]).await;
    let (escaped, grandchild) = (unique_seconds(), unique_seconds());
    // A classic daemon: a new session, then a child of its own, then the task exits 0.
    let script = format!("setsid sh -c 'sleep {grandchild} & sleep {escaped}' & sleep 0.2; exit 0");
    d.agent.agent.launch(data_task("t1", &script));
    d.update("t1", TaskState::TaskFinished).await;
    for _ in 0..50 {
        if processes_matching(&escaped).is_empty() && processes_matching(&grandchild).is_empty() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    panic!("left behind: {:?} {:?}", processes_matching(&escaped), processes_matching(&grandchild));
}

/// Issue 21 item 1: the clean-up comes before the terminal update, not after it. At the
/// moment the agent has TASK_FINISHED, nothing the task started runs: neither what it
/// left in its group nor a daemon it started (a session of its own, whose processes are
/// found one generation at a time as each parent dies and its children come to us).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nothing_of_a_finished_task_runs_when_its_update_is_sent() {
    let d = start(fake_agent::AgentConfig::default(), &["--mode=custom"]).await;
    let (in_group, escaped, grandchild) = (unique_seconds(), unique_seconds(), unique_seconds());
    // setsid sh a.sh -> sh b.sh -> sh c.sh -> the sleeps.
    let script = format!(
        "echo 'sleep {grandchild} & sleep {escaped}; :' > c.sh; echo 'sh c.sh; :' > b.sh; echo 'sh b.sh; :' > a.sh; \
         sleep {in_group} & setsid sh a.sh & sleep 0.2; exit 0"
    );
    d.agent.agent.launch(data_task("t1", &script));
    d.update("t1", TaskState::TaskFinished).await;
    let left: Vec<_> = [&in_group, &escaped, &grandchild].into_iter().flat_map(|m| processes_matching(m)).collect();
    assert!(left.is_empty(), "still running when TASK_FINISHED was sent: {left:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigkill_of_the_daemon_leaves_no_task_behind() {
    let d = start(fake_agent::AgentConfig::default(), &["--mode=custom"]).await;
    let (plain, forked) = (unique_seconds(), unique_seconds());
    d.agent.agent.launch(data_task("t1", &format!("sleep {plain}")));
    d.agent.agent.launch(data_task("t2", &format!("setsid sleep {forked} & wait")));
    d.update("t1", TaskState::TaskRunning).await;
    d.update("t2", TaskState::TaskRunning).await;
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert!(!processes_matching(&plain).is_empty() && !processes_matching(&forked).is_empty());
    let executor_pid = executor_pid(&d);
    nix::sys::signal::kill(nix::unistd::Pid::from_raw(executor_pid as i32), nix::sys::signal::Signal::SIGKILL).unwrap();
    assert_eq!(d.exit().await, "terminated by signal SIGKILL");
    for _ in 0..100 {
        if processes_matching(&plain).is_empty() && processes_matching(&forked).is_empty() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    panic!("tasks outlived the killed executor: {:?} {:?}", processes_matching(&plain), processes_matching(&forked));
}

/// The watchdog names itself in `ps` (#22): `mesos-executor-watchdog` as argv[0] and
/// `mesos-watchdog` as comm, never `/proc/self/exe` with comm `exe` (the pattern security
/// tooling flags).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_watchdog_names_itself() {
    let d = start(fake_agent::AgentConfig::default(), &["--mode=custom"]).await;
    let daemon = executor_pid(&d).to_string();
    let mut found = None;
    for _ in 0..100 {
        found = d.agent.agent.container_members().into_iter().find(|pid| {
            let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
            stat.rfind(')').and_then(|i| stat[i + 1..].split_whitespace().nth(1).map(str::to_owned))
                == Some(daemon.clone())
        });
        let named = found.is_some_and(|pid| {
            std::fs::read_to_string(format!("/proc/{pid}/comm")).is_ok_and(|c| c.trim() == "mesos-watchdog")
        });
        if named {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let pid = found.expect("the daemon's watchdog child");
    let comm = std::fs::read_to_string(format!("/proc/{pid}/comm")).unwrap_or_default();
    let cmdline = std::fs::read(format!("/proc/{pid}/cmdline")).unwrap_or_default();
    let argv0 = String::from_utf8_lossy(cmdline.split(|b| *b == 0).next().unwrap_or_default()).into_owned();
    assert_eq!(comm.trim(), "mesos-watchdog");
    assert_eq!(argv0, "mesos-executor-watchdog");
}
