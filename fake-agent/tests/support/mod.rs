//! A raw HTTP client for the fake agent's tests: reqwest, a tiny RecordIO reader of its
//! own, and helpers to build calls. Deliberately independent of the library's driver.

#![allow(dead_code)]

use std::time::Duration;

use bytes::{Bytes, BytesMut};
use fake_agent::{AgentConfig, FakeAgent, Listening};
use mesos_executor::proto::v1::{
    AgentId, CommandInfo, ExecutorId, FrameworkId, TaskId, TaskInfo, TaskState, TaskStatus,
    executor::{Call, Event, call},
    task_status,
};
use prost::Message;

pub const PB: &str = "application/x-protobuf";
pub const JSON: &str = "application/json";

pub async fn start(config: AgentConfig) -> Listening {
    FakeAgent::new(config).start().await.expect("fake agent starts")
}

pub fn quick_config() -> AgentConfig {
    AgentConfig { reregistration_timeout: Duration::from_millis(500), ..AgentConfig::default() }
}

pub fn client() -> reqwest::Client {
    // In a workspace build reqwest carries the daemon's `rustls-no-provider` feature, and
    // building a client then needs a process-wide crypto provider (ours is ring).
    let _ = tokio_rustls::rustls::crypto::ring::default_provider().install_default();
    reqwest::Client::builder().pool_max_idle_per_host(0).build().expect("client")
}

pub fn call(agent: &Listening, kind: call::Type) -> Call {
    let cfg = agent.agent.config();
    Call {
        executor_id: ExecutorId { value: cfg.executor_id.clone() },
        framework_id: FrameworkId { value: cfg.framework_id.clone() },
        r#type: Some(kind as i32),
        ..Default::default()
    }
}

pub fn subscribe_call(agent: &Listening) -> Call {
    Call { subscribe: Some(call::Subscribe::default()), ..call(agent, call::Type::Subscribe) }
}

pub fn uuid(n: u8) -> Bytes {
    let mut b = [n; 16];
    b[6] = 0x40 | (n & 0x0f);
    Bytes::copy_from_slice(&b)
}

pub fn status(task: &str, state: TaskState, n: u8) -> TaskStatus {
    TaskStatus {
        task_id: TaskId { value: task.into() },
        state: state as i32,
        source: Some(task_status::Source::Executor as i32),
        uuid: Some(uuid(n)),
        ..Default::default()
    }
}

pub fn update_call(agent: &Listening, status: TaskStatus) -> Call {
    Call { update: Some(call::Update { status }), ..call(agent, call::Type::Update) }
}

pub fn task(id: &str, command: &str) -> TaskInfo {
    TaskInfo {
        name: id.into(),
        task_id: TaskId { value: id.into() },
        agent_id: AgentId { value: "fake-agent-S0".into() },
        command: Some(CommandInfo { value: Some(command.into()), ..Default::default() }),
        ..Default::default()
    }
}

pub async fn post(agent: &Listening, content_type: Option<&str>, body: Vec<u8>) -> (u16, String) {
    let mut request = client().post(agent.url()).body(body);
    if let Some(ct) = content_type {
        request = request.header("Content-Type", ct);
    }
    let response = request.send().await.expect("request sent");
    let status = response.status().as_u16();
    (status, response.text().await.unwrap_or_default())
}

pub async fn post_call(agent: &Listening, call: &Call) -> (u16, String) {
    post(agent, Some(PB), call.encode_to_vec()).await
}

/// An open event stream, read with a RecordIO reader written for these tests.
pub struct Stream {
    pub response: reqwest::Response,
    buf: BytesMut,
    pub json: bool,
}

impl Stream {
    pub async fn open(agent: &Listening, call: &Call, accept: &str) -> Stream {
        let response = client()
            .post(agent.url())
            .header("Content-Type", PB)
            .header("Accept", accept)
            .body(call.encode_to_vec())
            .send()
            .await
            .expect("subscribe sent");
        assert_eq!(response.status(), 200, "SUBSCRIBE answered {}", response.status());
        let json = response.headers()["content-type"] == JSON;
        Stream { response, buf: BytesMut::new(), json }
    }

    /// The next record's raw bytes, or None at the end of the stream.
    pub async fn record(&mut self) -> Option<Bytes> {
        loop {
            if let Some(newline) = self.buf.iter().position(|b| *b == b'\n') {
                let len: usize = std::str::from_utf8(&self.buf[..newline]).ok()?.parse().ok()?;
                if self.buf.len() >= newline + 1 + len {
                    let _ = self.buf.split_to(newline + 1);
                    return Some(self.buf.split_to(len).freeze());
                }
            }
            match tokio::time::timeout(Duration::from_secs(10), self.response.chunk()).await {
                Ok(Ok(Some(chunk))) => self.buf.extend_from_slice(&chunk),
                _ => return None,
            }
        }
    }

    /// The next event, or None at the end.
    pub async fn event(&mut self) -> Option<Event> {
        let record = self.record().await?;
        Some(if self.json {
            mesos_executor::wire::decode(&record, mesos_executor::ContentType::Json).expect("JSON event")
        } else {
            Event::decode(record).expect("protobuf event")
        })
    }

    /// Raw bytes as they arrive (for fault injection checks).
    pub async fn raw_chunk(&mut self) -> Option<Bytes> {
        if !self.buf.is_empty() {
            return Some(self.buf.split().freeze());
        }
        tokio::time::timeout(Duration::from_secs(10), self.response.chunk()).await.ok()?.ok()?
    }

    /// Whether the stream ended (terminating chunk or closed connection).
    pub async fn ended(&mut self) -> bool {
        matches!(tokio::time::timeout(Duration::from_secs(5), self.response.chunk()).await, Ok(Ok(None)) | Ok(Err(_)))
    }
}
