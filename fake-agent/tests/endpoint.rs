//! The endpoint answers every malformed or misplaced call as an upstream agent does
//! (reference §1.5, §3.3), using a raw HTTP client.

mod support;

use fake_agent::AgentConfig;
use mesos_executor::proto::v1::{ExecutorId, TaskState, executor::call, task_status};
use prost::Message;
use support::*;

#[tokio::test]
async fn routing_method_and_media_type() {
    let agent = start(AgentConfig::default()).await;
    let body = subscribe_call(&agent).encode_to_vec();
    let wrong_path = client().post(format!("http://{}/slave(2)/api/v1/executor", agent.addr)).body(body.clone());
    assert_eq!(wrong_path.send().await.unwrap().status(), 404);
    let get = client().get(agent.url()).send().await.unwrap();
    assert_eq!(get.status(), 405);
    assert_eq!(get.headers()["allow"], "POST");
    assert_eq!(post(&agent, None, body.clone()).await, (400, "Expecting 'Content-Type' to be present".into()));
    assert_eq!(post(&agent, Some("text/plain"), body.clone()).await.0, 415);
    assert_eq!(post(&agent, Some("application/json; charset=utf-8"), b"{}".to_vec()).await.0, 415);
    let (status, message) = post(&agent, Some(PB), b"\xff\xff\xff".to_vec()).await;
    assert_eq!((status, message.as_str()), (400, "Failed to parse body into Call protobuf"));
    let (status, message) = post(&agent, Some(JSON), b"{not json".to_vec()).await;
    assert!(status == 400 && message.starts_with("Failed to parse body into JSON"), "{message}");
    let (status, message) = post(&agent, Some(JSON), b"[1]".to_vec()).await;
    assert!(status == 400 && message.starts_with("Failed to convert JSON into Call protobuf"), "{message}");
    // The unprefixed path reaches the agent too.
    let unprefixed = client()
        .post(format!("http://{}/api/v1/executor", agent.addr))
        .header("Content-Type", PB)
        .body(call(&agent, call::Type::Heartbeat).encode_to_vec());
    assert_eq!(unprefixed.send().await.unwrap().status(), 202);
}

#[tokio::test]
async fn json_calls_are_checked_like_stout_does() {
    let agent = start(AgentConfig::default()).await;
    // camelCase keys are ignored, so required fields are missing.
    let (status, message) =
        post(&agent, Some(JSON), br#"{"executorId":{"value":"x"},"type":"HEARTBEAT"}"#.to_vec()).await;
    assert_eq!(status, 400);
    assert!(message.contains("executor_id") && message.contains("framework_id"), "{message}");
    // Enums only by name.
    let by_number =
        br#"{"executor_id":{"value":"fake-executor-0001"},"framework_id":{"value":"fake-framework-0001"},"type":4}"#;
    let (status, message) = post(&agent, Some(JSON), by_number.to_vec()).await;
    assert!(status == 400 && message.contains("enum"), "{message}");
    let heartbeat = br#"{"executor_id":{"value":"unused"},"framework_id":{"value":"unused"},"type":"HEARTBEAT"}"#;
    assert_eq!(post(&agent, Some(JSON), heartbeat.to_vec()).await.0, 202);
}

#[tokio::test]
async fn call_validation_rules() {
    let agent = start(AgentConfig::default()).await;
    let mut no_type = call(&agent, call::Type::Heartbeat);
    no_type.r#type = None;
    let no_subscribe = call(&agent, call::Type::Subscribe);
    let no_update = call(&agent, call::Type::Update);
    let mut no_uuid = status("t1", TaskState::TaskRunning, 1);
    no_uuid.uuid = None;
    let mut text_uuid = status("t1", TaskState::TaskRunning, 1);
    text_uuid.uuid = Some(bytes::Bytes::from_static(b"9f2c4a1e-7b3d-4e8f-a1c2-5d6e7f809a1b"));
    let mut no_source = status("t1", TaskState::TaskRunning, 1);
    no_source.source = None;
    let mut agent_source = status("t1", TaskState::TaskRunning, 1);
    agent_source.source = Some(task_status::Source::Agent as i32);
    let staging = status("t1", TaskState::TaskStaging, 1);
    let mut other_executor = status("t1", TaskState::TaskRunning, 1);
    other_executor.executor_id = Some(ExecutorId { value: "someone-else".into() });
    let no_message = call(&agent, call::Type::Message);
    let cases = [
        (no_type, "Expecting 'type' to be present"),
        (no_subscribe, "Expecting 'subscribe' to be present"),
        (no_update, "Expecting 'update' to be present"),
        (update_call(&agent, no_uuid), "Expecting 'uuid' to be present"),
        (update_call(&agent, text_uuid), "Invalid UUID"),
        (update_call(&agent, no_source), "SOURCE_EXECUTOR"),
        (update_call(&agent, agent_source), "SOURCE_EXECUTOR"),
        (update_call(&agent, staging), "TASK_STAGING"),
        (update_call(&agent, other_executor), "does not match ExecutorID"),
        (no_message, "Expecting 'message' to be present"),
    ];
    for (call, expected) in cases {
        let (status, message) = post_call(&agent, &call).await;
        assert_eq!(status, 400, "{message}");
        assert!(message.starts_with("Failed to validate Executor::Call: "), "{message}");
        assert!(message.contains(expected), "{message} should mention {expected}");
    }
}

#[tokio::test]
async fn lookups_subscription_and_unknown_type() {
    let agent = start(AgentConfig::default()).await;
    let mut wrong_framework = call(&agent, call::Type::Message);
    wrong_framework.framework_id.value = "nope".into();
    wrong_framework.message = Some(call::Message { data: "x".into() });
    assert_eq!(post_call(&agent, &wrong_framework).await, (400, "Framework cannot be found".into()));
    let mut wrong_executor = subscribe_call(&agent);
    wrong_executor.executor_id.value = "nope".into();
    assert_eq!(post_call(&agent, &wrong_executor).await, (400, "Executor cannot be found".into()));
    // Calls before SUBSCRIBE are refused (pitfall 14).
    let update = update_call(&agent, status("t1", TaskState::TaskRunning, 1));
    assert_eq!(post_call(&agent, &update).await, (403, "Executor is not subscribed".into()));
    // SUBSCRIBE whose Accept admits neither media type.
    let response = client()
        .post(agent.url())
        .header("Content-Type", PB)
        .header("Accept", "application/recordio")
        .body(subscribe_call(&agent).encode_to_vec())
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 406);
    let _stream = Stream::open(&agent, &subscribe_call(&agent), PB).await;
    assert_eq!(post_call(&agent, &call(&agent, call::Type::Unknown)).await.0, 501);
    // Every refusal is in the transcript.
    let refused =
        agent.agent.transcript().iter().filter(|e| e.to_json()["status"].as_u64().is_some_and(|s| s >= 400)).count();
    assert!(refused >= 5, "{refused} refusals recorded");
}

#[tokio::test]
async fn authentication_token_is_required_when_configured() {
    let agent = start(AgentConfig { auth_token: Some("s3cret-token".into()), ..AgentConfig::default() }).await;
    let body = call(&agent, call::Type::Heartbeat).encode_to_vec();
    let send = |auth: Option<&'static str>| {
        let mut request = client().post(agent.url()).header("Content-Type", PB).body(body.clone());
        if let Some(auth) = auth {
            request = request.header("Authorization", auth);
        }
        request.send()
    };
    let missing = send(None).await.unwrap();
    assert_eq!(missing.status(), 401);
    assert_eq!(missing.headers()["www-authenticate"], r#"Bearer realm="mesos-agent-executor""#);
    let wrong = send(Some("Bearer wrong")).await.unwrap();
    assert_eq!(wrong.status(), 401);
    assert!(wrong.headers()["www-authenticate"].to_str().unwrap().contains("invalid_token"));
    assert_eq!(send(Some("Basic s3cret-token")).await.unwrap().status(), 401);
    assert_eq!(send(Some("Bearer s3cret-token")).await.unwrap().status(), 202);
    let env = agent.executor_env(std::path::Path::new("/tmp/x"));
    assert_eq!(env["MESOS_EXECUTOR_AUTHENTICATION_TOKEN"], "s3cret-token");
}
