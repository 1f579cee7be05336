//! Subscriptions, the event stream, acknowledgements, agent restarts and injected
//! faults, observed with a raw HTTP client.

mod support;

use std::time::Duration;

use fake_agent::{AckPolicy, AgentConfig, ExecutorState, Fault};
use mesos_executor::proto::v1::{
    TaskState,
    executor::{call, event},
    task_status::Reason,
};
use support::*;

#[tokio::test]
async fn subscribe_streams_subscribed_then_launches() {
    let agent = start(AgentConfig::default()).await;
    agent.agent.launch(task("t1", "sleep 1"));
    let mut stream = Stream::open(&agent, &subscribe_call(&agent), PB).await;
    assert_eq!(stream.response.headers()["content-type"], PB);
    assert_eq!(stream.response.headers()["transfer-encoding"], "chunked");
    assert!(stream.response.headers().get("content-length").is_none());
    let subscribed = stream.event().await.unwrap();
    assert_eq!(subscribed.r#type(), event::Type::Subscribed);
    let s = subscribed.subscribed.unwrap();
    assert_eq!(s.framework_info.id.as_ref().unwrap().value, "fake-framework-0001");
    assert!(s.framework_info.checkpoint());
    assert_eq!(s.executor_info.executor_id.value, "fake-executor-0001");
    assert_eq!(s.agent_info.port(), i32::from(agent.addr.port()));
    assert!(!s.container_id.unwrap().value.is_empty());
    let launch = stream.event().await.unwrap();
    assert_eq!(launch.launch.unwrap().task.task_id.value, "t1");
    assert_eq!(agent.agent.inspect(|s| s.executor), ExecutorState::Running);
}

#[tokio::test]
async fn json_is_chosen_by_default_accept() {
    let agent = start(AgentConfig::default()).await;
    let mut stream = Stream::open(&agent, &subscribe_call(&agent), "*/*").await;
    assert!(stream.json);
    let record = stream.record().await.unwrap();
    let json: serde_json::Value = serde_json::from_slice(&record).unwrap();
    assert_eq!(json["type"], "SUBSCRIBED");
    assert_eq!(json["subscribed"]["agent_info"]["port"], agent.addr.port());
    assert_eq!(json["subscribed"]["framework_info"]["failover_timeout"], 0.0);
}

#[tokio::test]
async fn updates_are_acknowledged_with_their_uuid_even_when_duplicated() {
    let agent = start(AgentConfig::default()).await;
    agent.agent.launch(task("t1", "true"));
    let mut stream = Stream::open(&agent, &subscribe_call(&agent), PB).await;
    stream.event().await.unwrap();
    stream.event().await.unwrap();
    let update = update_call(&agent, status("t1", TaskState::TaskRunning, 7));
    assert_eq!(post_call(&agent, &update).await.0, 202);
    let ack = stream.event().await.unwrap().acknowledged.unwrap();
    assert_eq!((ack.task_id.value.as_str(), ack.uuid.clone()), ("t1", uuid(7)));
    assert_eq!(post_call(&agent, &update).await.0, 202);
    assert_eq!(stream.event().await.unwrap().acknowledged.unwrap().uuid, uuid(7), "duplicates are acked again");
    assert_eq!(agent.agent.task_state("t1"), Some(TaskState::TaskRunning));
    // An update for an unknown task is answered 202 but never acknowledged.
    assert_eq!(post_call(&agent, &update_call(&agent, status("ghost", TaskState::TaskRunning, 8))).await.0, 202);
    let finished = update_call(&agent, status("t1", TaskState::TaskFinished, 9));
    assert_eq!(post_call(&agent, &finished).await.0, 202);
    assert_eq!(stream.event().await.unwrap().acknowledged.unwrap().uuid, uuid(9), "ghost update got no ack");
    let outcomes: Vec<String> =
        agent.agent.transcript().iter().filter_map(|e| e.to_json()["outcome"].as_str().map(str::to_owned)).collect();
    assert!(outcomes.contains(&"duplicate".to_owned()) && outcomes.contains(&"dropped: unknown task".to_owned()));
}

#[tokio::test]
async fn messages_flow_both_ways() {
    let agent = start(AgentConfig::default()).await;
    let mut stream = Stream::open(&agent, &subscribe_call(&agent), PB).await;
    stream.event().await.unwrap();
    agent.agent.send_message(&b"to the executor"[..]);
    assert_eq!(&stream.event().await.unwrap().message.unwrap().data[..], b"to the executor");
    let message = mesos_executor::proto::v1::executor::Call {
        message: Some(call::Message { data: "to the scheduler".into() }),
        ..call(&agent, call::Type::Message)
    };
    assert_eq!(post_call(&agent, &message).await.0, 202);
}

#[tokio::test]
async fn a_new_subscription_closes_the_older_stream() {
    let agent = start(AgentConfig::default()).await;
    let mut first = Stream::open(&agent, &subscribe_call(&agent), PB).await;
    first.event().await.unwrap();
    let mut second = Stream::open(&agent, &subscribe_call(&agent), PB).await;
    second.event().await.unwrap();
    assert!(first.ended().await, "older stream must end");
    agent.agent.send_message(&b"only on the new stream"[..]);
    assert!(second.event().await.unwrap().message.is_some());
}

#[tokio::test]
async fn heartbeats_arrive_on_a_shortened_interval() {
    let agent = start(AgentConfig { heartbeat_interval: Duration::from_millis(50), ..AgentConfig::default() }).await;
    let mut stream = Stream::open(&agent, &subscribe_call(&agent), PB).await;
    stream.event().await.unwrap();
    for _ in 0..3 {
        assert_eq!(stream.event().await.unwrap().r#type(), event::Type::Heartbeat);
    }
}

#[tokio::test]
async fn restart_refuses_then_recovers_then_reregisters() {
    let agent = start(quick_config()).await;
    agent.agent.launch(task("reported", "sleep 9"));
    agent.agent.launch(task("unreported", "sleep 9"));
    let mut stream = Stream::open(&agent, &subscribe_call(&agent), PB).await;
    stream.event().await.unwrap();
    stream.event().await.unwrap();
    stream.event().await.unwrap();
    let running = status("reported", TaskState::TaskRunning, 1);

    let restart = {
        let agent = agent.agent.clone();
        tokio::spawn(async move { agent.restart(Duration::from_millis(300), Duration::from_millis(300)).await })
    };
    assert!(stream.ended().await, "the stream dies with the agent");
    tokio::time::sleep(Duration::from_millis(100)).await;
    let refused = client().post(agent.url()).header("Content-Type", PB).body(vec![]).send().await;
    assert!(refused.is_err_and(|e| e.is_connect()), "connections are refused while down");
    agent
        .agent
        .wait_for("recovering", Duration::from_secs(2), |s| s.phase == fake_agent::Phase::Recovering, |_| String::new())
        .await
        .unwrap();
    assert_eq!(post_call(&agent, &subscribe_call(&agent)).await, (503, "Agent has not finished recovery".into()));
    restart.await.unwrap();

    // Re-registration window: SUBSCRIBE works, other calls get 503.
    let mut resubscribe = subscribe_call(&agent);
    let sub = resubscribe.subscribe.as_mut().unwrap();
    sub.unacknowledged_updates.push(call::Update { status: running.clone() });
    let mut stream = Stream::open(&agent, &resubscribe, PB).await;
    assert_eq!(stream.event().await.unwrap().r#type(), event::Type::Subscribed);
    assert_eq!(
        stream.event().await.unwrap().acknowledged.unwrap().uuid,
        uuid(1),
        "replayed update acked after SUBSCRIBED"
    );
    let later = update_call(&agent, status("reported", TaskState::TaskFinished, 2));
    assert_eq!(post_call(&agent, &later).await.0, 503);
    // The delivered task that was neither reported nor acknowledged is lost (pitfall 12).
    assert_eq!(agent.agent.task_state("unreported"), Some(TaskState::TaskLost));
    assert_eq!(agent.agent.task_state("reported"), Some(TaskState::TaskRunning));
    agent
        .agent
        .wait_for("window closed", Duration::from_secs(3), |s| s.phase == fake_agent::Phase::Running, |_| String::new())
        .await
        .unwrap();
    assert_eq!(post_call(&agent, &later).await.0, 202);
}

#[tokio::test]
async fn executor_that_does_not_resubscribe_loses_its_tasks() {
    let config = AgentConfig {
        capabilities: vec![mesos_executor::proto::v1::framework_info::capability::Type::PartitionAware],
        ..quick_config()
    };
    let agent = start(config).await;
    agent.agent.launch(task("t1", "sleep 9"));
    let mut stream = Stream::open(&agent, &subscribe_call(&agent), PB).await;
    stream.event().await.unwrap();
    stream.event().await.unwrap();
    assert_eq!(post_call(&agent, &update_call(&agent, status("t1", TaskState::TaskRunning, 1))).await.0, 202);
    agent.agent.restart(Duration::from_millis(50), Duration::from_millis(50)).await;
    agent
        .agent
        .wait_for(
            "t1 gone",
            Duration::from_secs(3),
            |s| s.task("t1").is_some_and(|t| t.is_terminal()),
            |_| String::new(),
        )
        .await
        .unwrap();
    assert_eq!(agent.agent.task_state("t1"), Some(TaskState::TaskGone), "partition-aware: TASK_GONE");
    let transcript = fake_agent::transcript::to_json_lines(&agent.agent.transcript());
    assert!(transcript.contains("REASON_EXECUTOR_REREGISTRATION_TIMEOUT"), "{transcript}");
    assert!(transcript.contains("Executor did not reregister within 500ms"), "{transcript}");
}

#[tokio::test]
async fn kill_before_delivery_is_handled_by_the_agent() {
    let agent = start(AgentConfig::default()).await;
    agent.agent.launch(task("early", "sleep 9"));
    agent.agent.kill("early", None);
    assert_eq!(agent.agent.task_state("early"), Some(TaskState::TaskKilled));
    let json = fake_agent::transcript::to_json_lines(&agent.agent.transcript());
    assert!(json.contains("REASON_TASK_KILLED_DURING_LAUNCH"));
    let mut stream = Stream::open(&agent, &subscribe_call(&agent), PB).await;
    stream.event().await.unwrap();
    agent.agent.launch(task("late", "sleep 9"));
    assert!(stream.event().await.unwrap().launch.is_some());
    agent.agent.kill("late", None);
    assert_eq!(stream.event().await.unwrap().kill.unwrap().task_id.value, "late");
}

#[tokio::test]
async fn ack_policies_withhold_delay_and_drop() {
    let agent = start(AgentConfig { ack_policy: AckPolicy::Withhold, ..AgentConfig::default() }).await;
    agent.agent.launch(task("t1", "true"));
    let mut stream = Stream::open(&agent, &subscribe_call(&agent), PB).await;
    stream.event().await.unwrap();
    stream.event().await.unwrap();
    post_call(&agent, &update_call(&agent, status("t1", TaskState::TaskRunning, 1))).await;
    agent.agent.send_message(&b"marker"[..]);
    assert!(stream.event().await.unwrap().message.is_some(), "no ack before the marker");
    agent.agent.release_withheld_acks();
    assert_eq!(stream.event().await.unwrap().acknowledged.unwrap().uuid, uuid(1));

    agent.agent.set_ack_policy(AckPolicy::DelayMs(150));
    let sent = std::time::Instant::now();
    post_call(&agent, &update_call(&agent, status("t1", TaskState::TaskRunning, 2))).await;
    assert!(stream.event().await.unwrap().acknowledged.is_some());
    assert!(sent.elapsed() >= Duration::from_millis(150));

    agent.agent.set_ack_policy(AckPolicy::Drop(1.0));
    post_call(&agent, &update_call(&agent, status("t1", TaskState::TaskRunning, 3))).await;
    agent.agent.send_message(&b"after"[..]);
    assert!(stream.event().await.unwrap().message.is_some(), "the ack was dropped");
}

#[tokio::test]
async fn faults_reach_the_wire() {
    let agent = start(AgentConfig::default()).await;
    let mut stream = Stream::open(&agent, &subscribe_call(&agent), PB).await;
    stream.event().await.unwrap();
    agent.agent.inject(Fault::BadLength);
    assert!(stream.raw_chunk().await.unwrap().starts_with(b"12x\n"));
    agent.agent.inject(Fault::OversizeLength);
    assert!(stream.raw_chunk().await.unwrap().starts_with(b"10737418240\n"));
    agent.agent.inject(Fault::UnknownEvent);
    assert_eq!(stream.event().await.unwrap().r#type(), event::Type::Unknown);
    agent.agent.inject(Fault::Stall);
    agent.agent.send_message(&b"held"[..]);
    assert!(tokio::time::timeout(Duration::from_millis(200), stream.raw_chunk()).await.is_err(), "stalled");
    agent.agent.inject(Fault::Resume);
    assert!(stream.event().await.unwrap().message.is_some());
    agent.agent.inject(Fault::CutMidRecord);
    let partial = stream.raw_chunk().await.unwrap();
    let (len, rest) = partial.split_at(partial.iter().position(|b| *b == b'\n').unwrap());
    assert!(std::str::from_utf8(len).unwrap().parse::<usize>().unwrap() > rest.len() - 1);
    assert!(stream.ended().await);
}

#[tokio::test]
async fn blackholed_host_never_answers() {
    let agent = start(AgentConfig::default()).await;
    agent.agent.inject(Fault::Blackhole);
    let hung =
        tokio::time::timeout(Duration::from_millis(300), post_call(&agent, &call(&agent, call::Type::Heartbeat))).await;
    assert!(hung.is_err(), "request must hang");
    agent.agent.inject(Fault::Unblackhole);
    assert_eq!(post_call(&agent, &call(&agent, call::Type::Heartbeat)).await.0, 202);
}

#[tokio::test]
async fn transcript_and_timeline() {
    let agent = start(AgentConfig::default()).await;
    agent.agent.launch(task("t1", "true"));
    let mut stream = Stream::open(&agent, &subscribe_call(&agent), PB).await;
    stream.event().await.unwrap();
    post_call(&agent, &update_call(&agent, status("t1", TaskState::TaskRunning, 1))).await;
    post_call(&agent, &update_call(&agent, status("t1", TaskState::TaskFinished, 2))).await;
    let entries = agent.agent.transcript();
    let lines = fake_agent::transcript::to_json_lines(&entries);
    for line in lines.lines() {
        let json: serde_json::Value = serde_json::from_str(line).unwrap();
        assert!(json["t"].as_f64().is_some() && json["kind"].is_string(), "{line}");
    }
    assert!(lines.contains(r#""state":"TASK_FINISHED""#));
    let timeline = fake_agent::transcript::timeline(&entries);
    let task_section = timeline.split("== task t1").nth(1).unwrap();
    let running = task_section.find("TASK_RUNNING").unwrap();
    let finished = task_section.find("TASK_FINISHED").unwrap();
    assert!(task_section.contains("LAUNCH delivered") && running < finished, "{timeline}");
}

#[tokio::test]
async fn executor_process_gets_the_agent_environment_and_dies_with_its_container() {
    let mut agent =
        start(AgentConfig { registration_timeout: Duration::from_secs(30), ..AgentConfig::default() }).await;
    agent.agent.launch(task("t1", "sleep 9"));
    let script = "env > env.txt; sleep 1000 & setsid sleep 1001 & echo started; wait".to_owned();
    let sandbox = agent
        .launch_executor(&["/bin/sh".into(), "-c".into(), script], fake_agent::process::Output::SandboxFiles)
        .unwrap();
    let env_file = sandbox.join("env.txt");
    for _ in 0..100 {
        if std::fs::read_to_string(&env_file).is_ok_and(|e| e.contains("MESOS_SLAVE_PID")) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let env = std::fs::read_to_string(&env_file).unwrap();
    for expected in [
        format!("MESOS_SLAVE_PID=slave(1)@127.0.0.1:{}", agent.addr.port()),
        "MESOS_FRAMEWORK_ID=fake-framework-0001".into(),
        "MESOS_EXECUTOR_ID=fake-executor-0001".into(),
        "MESOS_CHECKPOINT=1".into(),
        "MESOS_RECOVERY_TIMEOUT=15mins".into(),
        "MESOS_SUBSCRIPTION_BACKOFF_MAX=2secs".into(),
        "MESOS_EXECUTOR_SHUTDOWN_GRACE_PERIOD=5secs".into(),
        format!("MESOS_SANDBOX={}", sandbox.display()),
    ] {
        assert!(env.lines().any(|l| l == expected), "missing {expected} in\n{env}");
    }
    // The shell forks its two sleeps after writing env.txt: give them a moment.
    let mut container = agent.agent.container_members();
    for _ in 0..100 {
        if container.len() >= 3 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
        container = agent.agent.container_members();
    }
    assert!(container.len() >= 3, "executor and both sleeps: {container:?}");
    agent.agent.destroy_container("test");
    agent
        .agent
        .wait_for("executor exit", Duration::from_secs(5), |s| s.executor_exit.is_some(), |_| String::new())
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_millis(100)).await;
    for pid in container {
        assert!(
            !std::path::Path::new(&format!("/proc/{pid}/cmdline")).exists() || is_zombie(pid),
            "pid {pid} survived"
        );
    }
    // The agent failed the task the executor never reported.
    assert_eq!(agent.agent.task_state("t1"), Some(TaskState::TaskFailed));
    let json = fake_agent::transcript::to_json_lines(&agent.agent.transcript());
    assert!(json.contains("REASON_EXECUTOR_TERMINATED") && json.contains("terminated by signal SIGKILL"), "{json}");
    let _ = Reason::ExecutorTerminated;
}

fn is_zombie(pid: u32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat")).map(|s| s.contains(") Z ")).unwrap_or(true)
}
