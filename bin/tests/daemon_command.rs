//! The daemon as a drop-in command executor: one task from `TaskInfo.command`, real
//! processes, upstream's states and messages, and exit once the task is acknowledged.

mod support;

use fake_agent::AgentConfig;
use mesos_executor::proto::v1::TaskState;
use support::daemon::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_command_runs_reports_and_the_executor_exits() {
    let d = command_executor(AgentConfig::default()).await;
    d.agent.agent.launch(shell_task("t1", "echo hello from t1; echo oops >&2"));
    let finished = d.update("t1", TaskState::TaskFinished).await;
    assert_eq!(finished.message(), "Command exited with status 0");
    assert_eq!(d.states("t1"), [TaskState::TaskStarting, TaskState::TaskRunning, TaskState::TaskFinished]);
    assert_eq!(d.exit().await, "exited with status 0");
    let stdout = std::fs::read_to_string(d.sandbox.join("stdout")).unwrap();
    assert!(stdout.contains("hello from t1"), "{stdout}");
    assert!(std::fs::read_to_string(d.sandbox.join("stderr")).unwrap().contains("oops"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn exit_status_and_signals_become_task_failed() {
    let d = command_executor(AgentConfig::default()).await;
    d.agent.agent.launch(shell_task("t1", "exit 3"));
    let failed = d.update("t1", TaskState::TaskFailed).await;
    assert_eq!(failed.message(), "Command exited with status 3");
    assert_eq!(failed.reason, None, "upstream's command executor sets no reason (src/launcher/executor.cpp)");
    assert_eq!(d.exit().await, "exited with status 0");

    let d = command_executor(AgentConfig::default()).await;
    d.agent.agent.launch(shell_task("t2", "kill -USR1 $$"));
    let failed = d.update("t2", TaskState::TaskFailed).await;
    assert_eq!(failed.message(), "Command terminated with signal User defined signal 1");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn argv_form_environment_and_a_spawn_failure() {
    let d = command_executor(AgentConfig { auth_token: Some("never-leaks-to-tasks".into()), ..AgentConfig::default() })
        .await;
    let mut task = shell_task("t1", "");
    task.command = Some(mesos_executor::proto::v1::CommandInfo {
        shell: Some(false),
        value: Some("/bin/sh".into()),
        arguments: vec!["sh".into(), "-c".into(), "env > task-env.txt; pwd >> task-env.txt".into()],
        environment: Some(mesos_executor::proto::v1::Environment {
            variables: vec![mesos_executor::proto::v1::environment::Variable {
                name: "GREETING".into(),
                value: Some("hi".into()),
                ..Default::default()
            }],
        }),
        ..Default::default()
    });
    d.agent.agent.launch(task);
    d.update("t1", TaskState::TaskFinished).await;
    let env = std::fs::read_to_string(d.sandbox.join("task-env.txt")).unwrap();
    assert!(env.lines().any(|l| l == "GREETING=hi"), "{env}");
    assert!(env.lines().any(|l| l.starts_with("MESOS_FRAMEWORK_ID=")), "the executor's environment is inherited");
    assert!(!env.contains("never-leaks-to-tasks"), "the token must not reach tasks");
    assert!(env.lines().any(|l| l == d.sandbox.display().to_string()), "runs in the sandbox: {env}");

    let d = command_executor(AgentConfig::default()).await;
    let mut task = shell_task("t2", "");
    task.command = Some(mesos_executor::proto::v1::CommandInfo {
        shell: Some(false),
        value: Some("/no/such/program".into()),
        ..Default::default()
    });
    d.agent.agent.launch(task);
    let failed = d.update("t2", TaskState::TaskFailed).await;
    assert!(
        failed.message().contains("/no/such/program") && failed.message().contains("No such file"),
        "{}",
        failed.message()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_second_task_and_malformed_tasks_are_refused() {
    let d = command_executor(AgentConfig::default()).await;
    d.agent.agent.launch(shell_task("first", &format!("sleep {}", unique_seconds())));
    d.update("first", TaskState::TaskRunning).await;
    d.agent.agent.launch(shell_task("second", "true"));
    let refused = d.update("second", TaskState::TaskFailed).await;
    assert!(refused.message().contains("multiple tasks"), "{}", refused.message());
    assert_eq!(d.agent.agent.task_state("first"), Some(TaskState::TaskRunning), "the first task is untouched");

    let d = command_executor(AgentConfig::default()).await;
    let mut nowhere = shell_task("nowhere", "");
    nowhere.command = None;
    d.agent.agent.launch(nowhere);
    let error = d.update("nowhere", TaskState::TaskError).await;
    assert!(
        error.message().contains("TaskInfo.command") && error.message().contains("TaskInfo.data"),
        "{}",
        error.message()
    );
    assert_eq!(d.exit().await, "exited with status 0");

    let d = command_executor(AgentConfig::default()).await;
    let mut image = shell_task("image", "true");
    image.container = Some(mesos_executor::proto::v1::ContainerInfo {
        r#type: mesos_executor::proto::v1::container_info::Type::Docker as i32,
        docker: Some(mesos_executor::proto::v1::container_info::DockerInfo {
            image: "nginx".into(),
            ..Default::default()
        }),
        ..Default::default()
    });
    d.agent.agent.launch(image);
    let error = d.update("image", TaskState::TaskError).await;
    assert!(error.message().contains("image"), "{}", error.message());
}

#[test]
fn bad_configuration_exits_64_naming_what_is_wrong() {
    let run = |env: &[(&str, &str)], args: &[&str]| {
        let output = std::process::Command::new(env!("CARGO_BIN_EXE_mesos-executor"))
            .env_clear()
            .envs(env.iter().copied())
            .args(args)
            .output()
            .unwrap();
        (output.status.code(), String::from_utf8_lossy(&output.stderr).into_owned())
    };
    let (code, stderr) = run(&[], &[]);
    assert_eq!(code, Some(64));
    assert!(stderr.contains("MESOS_FRAMEWORK_ID is not set"), "{stderr}");
    let env = [("MESOS_FRAMEWORK_ID", "f"), ("MESOS_EXECUTOR_ID", "e"), ("MESOS_SLAVE_PID", "slave(1)@127.0.0.1:1")];
    let (code, stderr) = run(&[("MESOS_SLAVE_PID", "not-a-pid"), env[0], env[1]], &[]);
    assert_eq!(code, Some(64));
    assert!(stderr.contains("MESOS_SLAVE_PID") && stderr.contains("not-a-pid"), "{stderr}");
    let (code, stderr) = run(&env, &["--metrics_interval=5"]);
    assert_eq!(code, Some(64));
    assert!(stderr.contains("--metrics_interval=\"5\""), "{stderr}");
    let (code, stderr) = run(&env, &["--task_command={not json"]);
    assert_eq!(code, Some(64));
    assert!(stderr.contains("--task_command"), "{stderr}");
}

/// Upstream's command executor waits 60 s for the acknowledgement of its terminal update
/// and exits 1 without it (`src/launcher/executor.cpp` `selfTerminate`); ours exited 0.
/// Here with `--ack_timeout=500ms`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_terminal_update_never_acknowledged_is_exit_one() {
    let config = AgentConfig { ack_policy: fake_agent::AckPolicy::Withhold, ..AgentConfig::default() };
    let d = start(config, &["--launcher_dir=/usr/libexec/mesos", "--ack_timeout=500ms"]).await;
    d.agent.agent.launch(shell_task("t1", "true"));
    d.update("t1", TaskState::TaskFinished).await;
    let asked = std::time::Instant::now();
    assert_eq!(d.exit().await, "exited with status 1");
    assert!(asked.elapsed() < std::time::Duration::from_secs(5), "after the ack timeout: {:?}", asked.elapsed());
}
