//! The daemon as a framework's custom executor: commands from `TaskInfo.data`, many
//! tasks, task groups, health checks, completion limits, and SHUTDOWN.

mod support;

use std::time::Duration;

use fake_agent::AgentConfig;
use mesos_executor::proto::v1::{HealthCheck, TaskGroupInfo, TaskState, health_check, task_status::Reason};
use support::daemon::*;

async fn custom(config: AgentConfig) -> Daemon {
    start(config, &["--mode=custom"]).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn many_tasks_from_task_data_until_shutdown() {
    let d = custom(killing_capable()).await;
    let marker = unique_seconds();
    d.agent.agent.launch(data_task("quick", "echo quick output"));
    d.agent.agent.launch(data_task("slow", &format!("sleep {marker}")));
    d.update("quick", TaskState::TaskFinished).await;
    d.update("slow", TaskState::TaskRunning).await;
    let out = std::fs::read_to_string(d.sandbox.join("tasks/quick/stdout")).unwrap();
    assert_eq!(out, "quick output\n");
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert!(d.agent.agent.inspect(|s| s.executor_exit.is_none()), "a custom executor stays after its tasks end");
    d.agent.agent.shutdown();
    d.update("slow", TaskState::TaskKilled).await;
    assert_eq!(d.exit().await, "exited with status 0");
    assert!(processes_matching(&marker).is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failing_group_member_takes_the_group_down() {
    let d = custom(killing_capable()).await;
    let marker = unique_seconds();
    let group = TaskGroupInfo {
        tasks: vec![
            shell_task("ok", "true"),
            shell_task("long", &format!("sleep {marker}")),
            shell_task("bad", "sleep 0.3; exit 7"),
        ],
    };
    d.agent.agent.launch_group(group);
    d.update("ok", TaskState::TaskFinished).await;
    assert_eq!(d.agent.agent.task_state("long"), Some(TaskState::TaskRunning), "FINISHED does not affect the others");
    let failed = d.update("bad", TaskState::TaskFailed).await;
    assert_eq!(failed.message(), "Command exited with status 7");
    d.update("long", TaskState::TaskKilled).await;
    assert!(d.states("long").contains(&TaskState::TaskKilling));
    assert!(processes_matching(&marker).is_empty());
    // Every member got TASK_STARTING before any got TASK_RUNNING.
    assert!(std::fs::metadata(d.sandbox.join("tasks/bad/stdout")).is_ok(), "a directory per task");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn command_mode_refuses_task_groups() {
    let d = command_executor(AgentConfig::default()).await;
    d.agent.agent.launch_group(TaskGroupInfo { tasks: vec![shell_task("g1", "true")] });
    let error = d.update("g1", TaskState::TaskError).await;
    assert_eq!(error.reason(), Reason::TaskGroupInvalid);
}

fn command_check(command: &str, failures: u32) -> HealthCheck {
    HealthCheck {
        r#type: Some(health_check::Type::Command as i32),
        command: Some(mesos_executor::proto::v1::CommandInfo { value: Some(command.into()), ..Default::default() }),
        delay_seconds: Some(0.0),
        interval_seconds: Some(0.1),
        timeout_seconds: Some(2.0),
        grace_period_seconds: Some(0.0),
        consecutive_failures: Some(failures),
        ..Default::default()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failing_health_checks_report_unhealthy_then_kill() {
    let d = custom(killing_capable()).await;
    let mut task = data_task("sick", &format!("sleep {}", unique_seconds()));
    task.health_check = Some(command_check("test -e healthy-flag", 3));
    d.agent.agent.launch(task);
    let killed = d.update("sick", TaskState::TaskKilled).await;
    assert_eq!(killed.healthy, Some(false), "the terminal update says why");
    let health: Vec<_> =
        d.updates("sick").into_iter().filter(|u| u.reason() == Reason::TaskHealthCheckStatusUpdated).collect();
    assert_eq!(health.len(), 3, "a report per counted failure, the one reaching the limit of 3 included (upstream)");
    assert!(health.iter().all(|u| u.healthy == Some(false) && u.state() == TaskState::TaskRunning));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn passing_health_checks_report_healthy_once() {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    tokio::spawn(async move {
        loop {
            let Ok((mut s, _)) = listener.accept().await else { return };
            tokio::spawn(async move {
                use tokio::io::{AsyncReadExt, AsyncWriteExt};
                let mut buf = [0u8; 512];
                let _ = s.read(&mut buf).await;
                let _ = s.write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok").await;
            });
        }
    });
    let d = custom(AgentConfig::default()).await;
    let mut task = data_task("web", &format!("sleep {}", unique_seconds()));
    task.health_check = Some(HealthCheck {
        r#type: Some(health_check::Type::Http as i32),
        http: Some(health_check::HttpCheckInfo {
            port: port.into(),
            path: Some("/health".into()),
            ..Default::default()
        }),
        delay_seconds: Some(0.0),
        interval_seconds: Some(0.05),
        timeout_seconds: Some(1.0),
        ..Default::default()
    });
    d.agent.agent.launch(task);
    let healthy = d.update("web", TaskState::TaskRunning).await;
    let _ = healthy;
    d.wait("healthy report", |s| {
        s.transcript.iter().any(|e| e.to_json()["call"]["update"]["status"]["healthy"] == true)
    })
    .await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    let reports = d.updates("web").into_iter().filter(|u| u.healthy.is_some()).count();
    assert_eq!(reports, 1, "no update while health does not change");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn max_completion_time_fails_the_task() {
    let d = custom(killing_capable()).await;
    let mut task = data_task("slowpoke", &format!("sleep {}", unique_seconds()));
    task.max_completion_time = Some(mesos_executor::proto::v1::DurationInfo { nanoseconds: 200_000_000 });
    d.agent.agent.launch(task);
    let failed = d.update("slowpoke", TaskState::TaskFailed).await;
    assert_eq!(failed.reason(), Reason::MaxCompletionTimeReached);
    assert!(!d.states("slowpoke").contains(&TaskState::TaskKilling), "no TASK_KILLING for max completion kills");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_kills_every_task_within_the_grace_period() {
    let config = AgentConfig { shutdown_grace_period: Duration::from_secs(2), ..killing_capable() };
    let d = custom(config).await;
    let marker = unique_seconds();
    for i in 0..3 {
        d.agent.agent.launch(data_task(&format!("t{i}"), &format!("trap '' TERM; sleep {marker}; true")));
    }
    for i in 0..3 {
        d.update(&format!("t{i}"), TaskState::TaskRunning).await;
    }
    let asked = std::time::Instant::now();
    d.agent.agent.shutdown();
    for i in 0..3 {
        d.update(&format!("t{i}"), TaskState::TaskKilled).await;
    }
    assert_eq!(d.exit().await, "exited with status 0");
    assert!(asked.elapsed() < Duration::from_secs(2), "done within the shutdown grace period: {:?}", asked.elapsed());
    assert!(processes_matching(&marker).is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_duplicate_task_id_is_dropped_and_the_original_keeps_running() {
    let d = custom(AgentConfig::default()).await;
    let marker = unique_seconds();
    d.agent.agent.launch(data_task("same", &format!("sleep {marker}")));
    d.update("same", TaskState::TaskRunning).await;
    // A faithful agent never sends a duplicate (`Slave::run` refuses it); push one past
    // its checks. Any update for the id would be read as the running task's: none comes.
    d.agent.agent.with_unchecked_launch(data_task("same", "true"));
    // Events are handled in order: once a later task has finished, the duplicate is done.
    d.agent.agent.launch(data_task("later", "true"));
    d.update("later", TaskState::TaskFinished).await;
    let sent = |id: &'static str, state: &'static str| {
        d.agent.agent.inspect(move |s| {
            s.transcript.iter().any(|e| {
                let status = &e.to_json()["call"]["update"]["status"];
                status["task_id"]["value"] == id && status["state"] == state
            })
        })
    };
    assert!(sent("later", "TASK_FINISHED"), "the transcript is read as it should be");
    assert!(!sent("same", "TASK_FAILED"), "a TASK_FAILED for the running task's id");
    assert!(!processes_matching(&marker).is_empty(), "the original task still runs");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_agent_gone_for_good_kills_the_tasks_and_ends_the_daemon() {
    let config =
        AgentConfig { checkpoint: true, recovery_timeout: Duration::from_millis(500), ..AgentConfig::default() };
    let d = custom(config).await;
    let marker = unique_seconds();
    d.agent.agent.launch(data_task("orphan", &format!("sleep {marker}")));
    d.update("orphan", TaskState::TaskRunning).await;
    let agent = d.agent.agent.clone();
    let gone = std::time::Instant::now();
    tokio::spawn(async move { agent.restart(Duration::from_secs(30), Duration::ZERO).await });
    assert_eq!(d.exit().await, "exited with status 1", "giving up on the agent is a failure");
    let took = gone.elapsed();
    assert!(took >= Duration::from_millis(450) && took < Duration::from_secs(10), "gave up after {took:?}");
    assert!(processes_matching(&marker).is_empty(), "no task outlives the executor");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_kill_for_a_task_never_launched_gets_a_terminal_update() {
    let d = custom(AgentConfig::default()).await;
    // The agent thinks it delivered a task whose LAUNCH the executor never saw.
    d.agent.agent.kill("ghost", None);
    let killed = d.update("ghost", TaskState::TaskKilled).await;
    assert_eq!(killed.message(), "Task is not known to this executor");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_daemon_speaks_json_when_asked() {
    let d = start(AgentConfig::default(), &["--mode=custom", "--content_type=json"]).await;
    d.agent.agent.launch(data_task("j1", "true"));
    d.update("j1", TaskState::TaskFinished).await;
    let media: Vec<String> = d
        .agent
        .agent
        .transcript()
        .iter()
        .map(|e| e.to_json())
        .filter(|j| j["kind"] == "call")
        .map(|j| j["content_type"].as_str().unwrap().to_owned())
        .collect();
    assert!(!media.is_empty() && media.iter().all(|m| m == "application/json"), "{media:?}");
    assert_eq!(
        d.agent.agent.inspect(|s| s.stream.as_ref().map(|st| st.content_type)),
        Some(mesos_executor::ContentType::Json)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs root (scripts/test.sh includes it when run as root)"]
async fn a_task_runs_as_its_commandinfo_user() {
    assert!(nix::unistd::geteuid().is_root(), "switching users needs root");
    let d = custom(AgentConfig::default()).await;
    // A real agent chowns the sandbox to the task's user; open it up instead.
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&d.sandbox, std::fs::Permissions::from_mode(0o755)).unwrap();
    let mut task = data_task("as-nobody", "");
    let command = mesos_executor::proto::v1::CommandInfo {
        value: Some("id -un; id -G".into()),
        user: Some("nobody".into()),
        ..Default::default()
    };
    task.data = Some(mesos_executor::wire::to_json_value(&command).unwrap().to_string().into_bytes().into());
    d.agent.agent.launch(task);
    d.update("as-nobody", TaskState::TaskFinished).await;
    let out = std::fs::read_to_string(d.sandbox.join("tasks/as-nobody/stdout")).unwrap();
    let mut lines = out.lines();
    assert_eq!(lines.next(), Some("nobody"));
    let groups = lines.next().unwrap_or_default();
    assert!(!groups.split_whitespace().any(|g| g == "0"), "root's groups were dropped: {groups}");

    let mut task = data_task("as-ghost", "");
    let command = mesos_executor::proto::v1::CommandInfo {
        value: Some("true".into()),
        user: Some("no-such-user-here".into()),
        ..Default::default()
    };
    task.data = Some(mesos_executor::wire::to_json_value(&command).unwrap().to_string().into_bytes().into());
    d.agent.agent.launch(task);
    let failed = d.update("as-ghost", TaskState::TaskFailed).await;
    assert!(failed.message().contains("no-such-user-here"), "{}", failed.message());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn general_checks_report_changes_and_never_kill() {
    let d = custom(killing_capable()).await;
    let mut task = data_task("checked", &format!("sleep {}", unique_seconds()));
    task.check = Some(mesos_executor::proto::v1::CheckInfo {
        r#type: Some(mesos_executor::proto::v1::check_info::Type::Command as i32),
        command: Some(mesos_executor::proto::v1::check_info::Command {
            command: mesos_executor::proto::v1::CommandInfo {
                value: Some("test -e ready || exit 7".into()),
                ..Default::default()
            },
        }),
        delay_seconds: Some(0.0),
        interval_seconds: Some(0.05),
        timeout_seconds: Some(2.0),
        ..Default::default()
    });
    d.agent.agent.launch(task);
    let exit_codes = |d: &Daemon| -> Vec<Option<i32>> {
        d.updates("checked")
            .iter()
            .filter(|u| u.reason() == Reason::TaskCheckStatusUpdated)
            .map(|u| u.check_status.as_ref().and_then(|c| c.command.as_ref()).and_then(|c| c.exit_code))
            .collect()
    };
    for _ in 0..100 {
        if exit_codes(&d) == [Some(7)] {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(exit_codes(&d), [Some(7)], "one update for a result that does not change, and no kill");
    // The check runs in the task's own directory.
    std::fs::write(d.sandbox.join("tasks/checked/ready"), b"").unwrap();
    for _ in 0..100 {
        if exit_codes(&d) == [Some(7), Some(0)] {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(exit_codes(&d), [Some(7), Some(0)]);
    d.agent.agent.kill("checked", None);
    let killed = d.update("checked", TaskState::TaskKilled).await;
    assert_eq!(
        killed.check_status.and_then(|c| c.command).and_then(|c| c.exit_code),
        Some(0),
        "every update carries the latest result"
    );
}
