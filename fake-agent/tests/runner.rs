//! The scenario runner and the command line: expectations hold or fail naming the step,
//! every shipped scenario file parses, and a failing run exits non-zero and leaves no
//! process behind.

mod support;

use std::{path::Path, time::Duration};

use fake_agent::{
    Listening,
    runner::Runner,
    scenario::{self, Scenario},
};
use mesos_executor::proto::v1::{TaskState, executor::event};
use support::*;

/// A minimal executor made of raw HTTP calls: RUNNING then FINISHED for each LAUNCH.
fn scripted_executor(agent: &Listening) -> tokio::task::JoinHandle<()> {
    scripted_executor_at(agent.url(), subscribe_call(agent), update_call(agent, status("x", TaskState::TaskRunning, 0)))
}

/// The same against any agent URL, with the calls' ids already filled in.
fn scripted_executor_at(
    url: String,
    sub: mesos_executor::proto::v1::executor::Call,
    update_template: mesos_executor::proto::v1::executor::Call,
) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let response = client()
            .post(&url)
            .header("Content-Type", PB)
            .header("Accept", PB)
            .body(prost::Message::encode_to_vec(&sub))
            .send()
            .await
            .unwrap();
        let mut buf = bytes::BytesMut::new();
        let mut response = response;
        let mut n = 10u8;
        loop {
            let Ok(Some(chunk)) = response.chunk().await else { return };
            buf.extend_from_slice(&chunk);
            let newline = buf.iter().position(|b| *b == b'\n').unwrap();
            let len: usize = std::str::from_utf8(&buf[..newline]).unwrap().parse().unwrap();
            let record = buf.split_to(newline + 1 + len).split_off(newline + 1);
            let event: mesos_executor::proto::v1::executor::Event = prost::Message::decode(record).unwrap();
            if event.r#type() == event::Type::Launch {
                let task = event.launch.unwrap().task.task_id.value;
                for state in [TaskState::TaskRunning, TaskState::TaskFinished] {
                    n += 1;
                    let mut update = update_template.clone();
                    update.update =
                        Some(mesos_executor::proto::v1::executor::call::Update { status: status(&task, state, n) });
                    client()
                        .post(&url)
                        .header("Content-Type", PB)
                        .body(prost::Message::encode_to_vec(&update))
                        .send()
                        .await
                        .unwrap();
                }
            }
        }
    })
}

fn parse(yaml: &str) -> Scenario {
    scenario::parse_yaml(yaml).unwrap()
}

#[tokio::test]
async fn expectations_hold_against_a_conforming_executor() {
    let agent = start(quick_config()).await;
    let executor = scripted_executor(&agent);
    let scenario = parse(
        "steps:
  - expect_subscribe: {timeout_ms: 5000}
  - launch: {task_id: t1, command: 'true'}
  - expect_update: {task_id: t1, state: TASK_RUNNING}
  - wait_state: {task_id: t1, state: TASK_FINISHED}
  - expect_update: {task_id: t1, state: TASK_FINISHED}",
    );
    Runner::new(agent.agent.clone()).run(&scenario).await.unwrap();
    executor.abort();
}

#[tokio::test]
async fn the_first_failed_expectation_is_named_with_what_was_seen() {
    let agent = start(quick_config()).await;
    let executor = scripted_executor(&agent);
    let scenario = parse(
        "steps:
  - expect_subscribe: {}
  - launch: {task_id: t1, command: 'true'}
  - wait_state: {task_id: t1, state: TASK_FAILED, timeout_ms: 500}
  - expect_update: {task_id: t1, state: TASK_RUNNING}",
    );
    let failure = Runner::new(agent.agent.clone()).run(&scenario).await.unwrap_err();
    assert_eq!(failure.number, 3);
    assert!(failure.step.contains("wait_state t1 TASK_FAILED"), "{failure}");
    assert!(failure.reason.contains("task t1 is TASK_FINISHED"), "{failure}");
    // Each expect_update claims one update: a second TASK_RUNNING does not exist.
    let twice = parse(
        "steps:
  - expect_update: {task_id: t1, state: TASK_RUNNING}
  - expect_update: {task_id: t1, state: TASK_RUNNING, timeout_ms: 300}",
    );
    let failure = Runner::new(agent.agent.clone()).run(&twice).await.unwrap_err();
    assert_eq!(failure.number, 2);
    assert!(failure.reason.contains("saw updates: t1 TASK_RUNNING; t1 TASK_FINISHED"), "{failure}");
    executor.abort();
}

#[test]
fn every_shipped_scenario_parses() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("scenarios");
    let mut count = 0;
    let mut stack = vec![dir];
    while let Some(dir) = stack.pop() {
        for entry in std::fs::read_dir(&dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                stack.push(path);
            } else if path.extension().is_some_and(|e| e == "yaml" || e == "yml" || e == "json") {
                let scenario = scenario::load(&path).unwrap_or_else(|e| panic!("{e}"));
                scenario.agent.to_config().unwrap();
                assert!(!scenario.steps.is_empty(), "{}", path.display());
                count += 1;
            }
        }
    }
    assert!(count >= 7, "found {count} scenarios");
}

#[test]
fn scenario_errors_name_the_file_and_the_problem() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("bad.yaml");
    std::fs::write(&path, "steps:\n  - teleport: {}\n").unwrap();
    let err = scenario::load(&path).unwrap_err();
    assert!(err.contains("bad.yaml") && err.contains("teleport"), "{err}");
    let json = dir.path().join("ok.json");
    std::fs::write(&json, r#"{"steps":[{"launch":{"task_id":"t","argv":["/bin/true"]}},{"sleep_ms":5}]}"#).unwrap();
    assert_eq!(scenario::load(&json).unwrap().steps.len(), 2);
}

#[test]
fn cli_fails_naming_the_step_and_kills_the_executor() {
    let dir = tempfile::tempdir().unwrap();
    let scenario = dir.path().join("never.yaml");
    std::fs::write(
        &scenario,
        "agent: {shutdown_grace_period_ms: 200}\nsteps:\n  - expect_subscribe: {timeout_ms: 300}\n",
    )
    .unwrap();
    let marker = format!("fake-agent-cli-test-{}", std::process::id());
    let output = std::process::Command::new(env!("CARGO_BIN_EXE_fake-agent"))
        .args(["run", "--scenario"])
        .arg(&scenario)
        .args(["--", "/bin/sh", "-c", &format!("exec -a {marker} sleep 60")])
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert_eq!(output.status.code(), Some(1), "{stdout}");
    assert!(stdout.contains("FAILED") && stdout.contains("step 1 (expect_subscribe 1)"), "{stdout}");
    assert!(stdout.contains("saw 0 subscriptions"), "{stdout}");
    std::thread::sleep(Duration::from_millis(100));
    let survivors =
        std::process::Command::new("pgrep").args(["-f", &marker]).output().map(|o| o.stdout).unwrap_or_default();
    assert!(survivors.is_empty(), "executor survived: {}", String::from_utf8_lossy(&survivors));

    let bad = dir.path().join("bad.yaml");
    std::fs::write(&bad, "steps: [{nope: 1}]").unwrap();
    let output = std::process::Command::new(env!("CARGO_BIN_EXE_fake-agent"))
        .args(["run", "--scenario"])
        .arg(&bad)
        .args(["--", "true"])
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(2));
    let help = std::process::Command::new(env!("CARGO_BIN_EXE_fake-agent")).arg("--help").output().unwrap();
    assert!(String::from_utf8_lossy(&help.stdout).contains("run"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cli_waits_for_an_executor_started_by_hand() {
    use std::io::BufRead;
    let dir = tempfile::tempdir().unwrap();
    let scenario = dir.path().join("manual.yaml");
    std::fs::write(
        &scenario,
        "agent: {shutdown_grace_period_ms: 300}\nsteps:\n  - expect_subscribe: {timeout_ms: 10000}\n  - launch: {task_id: t1, command: 'true'}\n  - expect_update: {task_id: t1, state: TASK_FINISHED}\n",
    )
    .unwrap();
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_fake-agent"))
        .args(["run", "--quiet", "--scenario"])
        .arg(&scenario)
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let mut lines = std::io::BufReader::new(child.stdout.take().unwrap()).lines();
    let mut env = std::collections::HashMap::new();
    // Printed sorted by name; the backoff maximum comes last with checkpointing.
    while !env.contains_key("MESOS_SUBSCRIPTION_BACKOFF_MAX") {
        let line = lines.next().expect("the environment is printed").unwrap();
        if let Some((k, v)) = line.strip_prefix("export ").and_then(|kv| kv.split_once('=')) {
            env.insert(k.to_owned(), v.trim_matches('\'').to_owned());
        }
    }
    for var in ["MESOS_FRAMEWORK_ID", "MESOS_EXECUTOR_ID", "MESOS_SLAVE_PID", "MESOS_SANDBOX", "MESOS_CHECKPOINT"] {
        assert!(env.contains_key(var), "{var} missing from {env:?}");
    }
    // Act as the executor started by hand, with what was printed.
    let addr = env["MESOS_SLAVE_PID"].split_once('@').unwrap().1.to_owned();
    let url = format!("http://{addr}/slave(1)/api/v1/executor");
    let ids = |kind| mesos_executor::proto::v1::executor::Call {
        executor_id: mesos_executor::proto::v1::ExecutorId { value: env["MESOS_EXECUTOR_ID"].clone() },
        framework_id: mesos_executor::proto::v1::FrameworkId { value: env["MESOS_FRAMEWORK_ID"].clone() },
        r#type: Some(kind as i32),
        ..Default::default()
    };
    let subscribe = mesos_executor::proto::v1::executor::Call {
        subscribe: Some(Default::default()),
        ..ids(mesos_executor::proto::v1::executor::call::Type::Subscribe)
    };
    let update = ids(mesos_executor::proto::v1::executor::call::Type::Update);
    let executor = scripted_executor_at(url, subscribe, update);
    let status = tokio::task::spawn_blocking(move || child.wait()).await.unwrap().unwrap();
    executor.abort();
    assert!(status.success(), "every expectation held: {status:?}");
}

#[tokio::test]
async fn waiting_for_one_end_of_a_task_that_had_another_fails_at_once() {
    let agent = start(quick_config()).await;
    let executor = scripted_executor(&agent);
    let scenario = parse(
        "steps:
  - expect_subscribe: {}
  - launch: {task_id: t1, command: 'true'}
  - expect_update: {task_id: t1, state: TASK_FAILED, timeout_ms: 20000}",
    );
    let started = std::time::Instant::now();
    let failure = Runner::new(agent.agent.clone()).run(&scenario).await.unwrap_err();
    assert!(started.elapsed() < std::time::Duration::from_secs(5), "it waited {:?}", started.elapsed());
    assert!(failure.reason.contains("ended otherwise: t1 TASK_FINISHED"), "{failure}");
    executor.abort();
}

#[tokio::test]
async fn a_task_data_template_carries_each_tasks_seconds_and_command() {
    let agent = start(quick_config()).await;
    let scenario = parse(
        "steps:
  - launch: {task_id: t1, command: 'sleep 7', data: '7'}
  - launch: {task_id: t2, command: 'true'}",
    );
    let template = r#"{"cmd": "sleep {seconds}", "was": "{command}"}"#;
    Runner::new(agent.agent.clone()).task_data(template).run(&scenario).await.unwrap();
    let data = |id: &str| agent.agent.inspect(|s| s.task(id).and_then(|t| t.info.data.clone()));
    assert_eq!(data("t1").as_deref(), Some(&br#"{"cmd": "sleep 7", "was": "sleep 7"}"#[..]));
    assert_eq!(data("t2"), None, "a task the scenario gives no data keeps none");
}
