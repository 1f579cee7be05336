//! The protocol types against bytes and JSON shaped as upstream Mesos writes them:
//! hand-assembled protobuf (not produced by prost) and agent-style JSON documents.

use mesos_executor::proto::v1::{
    self, TaskState, command_info, environment,
    executor::{Call, Event, call, event},
    framework_info, task_status,
};
use mesos_executor::wire::{ContentType, decode, encode, to_json_value};

/// A minimal protobuf writer, so test inputs do not come from the encoder under test.
struct Pb(Vec<u8>);

impl Pb {
    fn new() -> Self {
        Pb(Vec::new())
    }
    fn varint(&mut self, mut v: u64) -> &mut Self {
        loop {
            let byte = (v & 0x7f) as u8;
            v >>= 7;
            if v == 0 {
                self.0.push(byte);
                return self;
            }
            self.0.push(byte | 0x80);
        }
    }
    fn key(&mut self, field: u64, wire: u64) -> &mut Self {
        self.varint(field << 3 | wire)
    }
    fn int(&mut self, field: u64, v: u64) -> &mut Self {
        self.key(field, 0).varint(v)
    }
    fn bytes(&mut self, field: u64, b: &[u8]) -> &mut Self {
        self.key(field, 2).varint(b.len() as u64);
        self.0.extend_from_slice(b);
        self
    }
    fn msg(&mut self, field: u64, m: &Pb) -> &mut Self {
        self.bytes(field, &m.0)
    }
    fn double(&mut self, field: u64, v: f64) -> &mut Self {
        self.key(field, 1);
        self.0.extend_from_slice(&v.to_le_bytes());
        self
    }
    fn id(field: u64, value: &str) -> Pb {
        let mut id = Pb::new();
        id.bytes(1, value.as_bytes());
        let mut outer = Pb::new();
        outer.msg(field, &id);
        outer
    }
    fn id_msg(value: &str) -> Pb {
        let mut id = Pb::new();
        id.bytes(1, value.as_bytes());
        id
    }
}

const UUID: [u8; 16] = [0x9f, 0x2c, 0x4a, 0x1e, 0x7b, 0x3d, 0x4e, 0x8f, 0xa1, 0xc2, 0x5d, 0x6e, 0x7f, 0x80, 0x9a, 0x1b];

#[test]
fn subscribe_protobuf_bytes_from_the_reference() {
    // Reference §5.4: the empty `subscribe` must be present as `22 00`.
    let wire = b"\x0a\x08\x0a\x06exec-1\x12\x06\x0a\x04fw-1\x18\x01\x22\x00";
    let call: Call = decode(wire, ContentType::Protobuf).unwrap();
    assert_eq!(call.executor_id.value, "exec-1");
    assert_eq!(call.framework_id.value, "fw-1");
    assert_eq!(call.r#type(), call::Type::Subscribe);
    let subscribe = call.subscribe.as_ref().expect("subscribe present");
    assert!(subscribe.unacknowledged_tasks.is_empty() && subscribe.unacknowledged_updates.is_empty());
    assert!(call.update.is_none() && call.message.is_none());
    // And our encoder writes exactly those bytes back.
    assert_eq!(encode(&call, ContentType::Protobuf).unwrap(), wire);
}

#[test]
fn subscribe_json_with_unacknowledged_tasks_and_updates() {
    let doc = r#"{"executor_id":{"value":"exec-1"},"framework_id":{"value":"fw-1"},"type":"SUBSCRIBE",
     "subscribe":{
      "unacknowledged_tasks":[{"name":"t1","task_id":{"value":"task-1"},"agent_id":{"value":"agent-1"},
        "resources":[{"name":"cpus","type":"SCALAR","scalar":{"value":0.1}}],
        "command":{"shell":true,"value":"sleep 100"}}],
      "unacknowledged_updates":[{"status":{"task_id":{"value":"task-1"},"state":"TASK_RUNNING",
        "source":"SOURCE_EXECUTOR","executor_id":{"value":"exec-1"},"timestamp":1700000000.5,
        "uuid":"nyxKHns9To+hwl1uf4CaGw=="}}]}}"#;
    let call: Call = decode(doc.as_bytes(), ContentType::Json).unwrap();
    assert_eq!(call.r#type(), call::Type::Subscribe);
    assert_eq!(call.executor_id.value, "exec-1");
    assert_eq!(call.framework_id.value, "fw-1");
    let subscribe = call.subscribe.as_ref().unwrap();
    let task = &subscribe.unacknowledged_tasks[0];
    assert_eq!(task.name, "t1");
    assert_eq!(task.task_id.value, "task-1");
    assert_eq!(task.agent_id.value, "agent-1");
    assert_eq!(task.resources[0].name, "cpus");
    assert_eq!(task.resources[0].r#type(), v1::value::Type::Scalar);
    assert_eq!(task.resources[0].scalar.as_ref().unwrap().value, 0.1);
    let command = task.command.as_ref().unwrap();
    assert!(command.shell());
    assert_eq!(command.value(), "sleep 100");
    let status = subscribe.unacknowledged_updates[0].status.clone();
    assert_eq!(status.task_id.value, "task-1");
    assert_eq!(status.state(), TaskState::TaskRunning);
    assert_eq!(status.source(), task_status::Source::Executor);
    assert_eq!(status.executor_id.unwrap().value, "exec-1");
    assert_eq!(status.timestamp, Some(1_700_000_000.5));
    assert_eq!(status.uuid.as_deref(), Some(&UUID[..]));
}

fn update_status_pb() -> Pb {
    let mut status = Pb::new();
    status
        .msg(1, &Pb::id_msg("task-1"))
        .int(2, 2) // TASK_FINISHED
        .bytes(4, b"Command exited with status 0")
        .int(9, 2) // SOURCE_EXECUTOR
        .int(10, 0) // REASON_COMMAND_EXECUTOR_FAILED
        .bytes(3, b"\x00\x01payload")
        .msg(5, &Pb::id_msg("agent-1"))
        .msg(7, &Pb::id_msg("exec-1"))
        .double(6, 1_700_000_123.25)
        .bytes(11, &UUID)
        .int(8, 1); // healthy
    status
}

fn check_update_status(status: &v1::TaskStatus) {
    assert_eq!(status.task_id.value, "task-1");
    assert_eq!(status.state(), TaskState::TaskFinished);
    assert_eq!(status.message(), "Command exited with status 0");
    assert_eq!(status.source(), task_status::Source::Executor);
    assert_eq!(status.reason(), task_status::Reason::CommandExecutorFailed);
    assert_eq!(status.data.as_deref(), Some(&b"\x00\x01payload"[..]));
    assert_eq!(status.agent_id.as_ref().unwrap().value, "agent-1");
    assert_eq!(status.executor_id.as_ref().unwrap().value, "exec-1");
    assert_eq!(status.timestamp, Some(1_700_000_123.25));
    assert_eq!(status.uuid.as_deref(), Some(&UUID[..]));
    assert_eq!(status.healthy, Some(true));
}

#[test]
fn update_protobuf_bytes() {
    let mut update = Pb::new();
    update.msg(1, &update_status_pb());
    let mut call = Pb::id(1, "exec-1");
    call.msg(2, &Pb::id_msg("fw-1")).int(3, 2).msg(5, &update);
    let decoded: Call = decode(&call.0, ContentType::Protobuf).unwrap();
    assert_eq!(decoded.r#type(), call::Type::Update);
    assert_eq!(decoded.executor_id.value, "exec-1");
    assert_eq!(decoded.framework_id.value, "fw-1");
    check_update_status(&decoded.update.as_ref().unwrap().status);
}

#[test]
fn update_json_round_trips_in_the_agent_mapping() {
    let doc = r#"{"executor_id":{"value":"exec-1"},"framework_id":{"value":"fw-1"},"type":"UPDATE",
     "update":{"status":{"task_id":{"value":"task-1"},"state":"TASK_FINISHED",
       "source":"SOURCE_EXECUTOR","reason":"REASON_COMMAND_EXECUTOR_FAILED","data":"AAFwYXlsb2Fk",
       "agent_id":{"value":"agent-1"},"executor_id":{"value":"exec-1"},"healthy":true,
       "message":"Command exited with status 0","timestamp":1700000123.25,
       "uuid":"nyxKHns9To+hwl1uf4CaGw=="}}}"#;
    let call: Call = decode(doc.as_bytes(), ContentType::Json).unwrap();
    assert_eq!(call.r#type(), call::Type::Update);
    check_update_status(&call.update.as_ref().unwrap().status);

    // Our JSON: proto field names, enums by name, bytes as padded base64, bare numbers.
    let json = to_json_value(&call).unwrap();
    let status = &json["update"]["status"];
    assert_eq!(json["type"], "UPDATE");
    assert_eq!(json["executor_id"]["value"], "exec-1");
    assert_eq!(status["state"], "TASK_FINISHED");
    assert_eq!(status["source"], "SOURCE_EXECUTOR");
    assert_eq!(status["uuid"], "nyxKHns9To+hwl1uf4CaGw==");
    assert_eq!(status["timestamp"], 1_700_000_123.25);
    let bytes = encode(&call, ContentType::Json).unwrap();
    let again: Call = decode(&bytes, ContentType::Json).unwrap();
    assert_eq!(again, call);
}

#[test]
fn message_call_uses_field_two_and_event_message_field_one() {
    // Pitfall 7: Call.Message.data is field 2, Event.Message.data is field 1.
    let mut message = Pb::new();
    message.bytes(2, b"hello");
    let mut call = Pb::id(1, "exec-1");
    call.msg(2, &Pb::id_msg("fw-1")).int(3, 3).msg(6, &message);
    let decoded: Call = decode(&call.0, ContentType::Protobuf).unwrap();
    assert_eq!(&decoded.message.unwrap().data[..], b"hello");

    let mut message = Pb::new();
    message.bytes(1, b"hello");
    let mut event = Pb::new();
    event.int(1, 5).msg(6, &message);
    let decoded: Event = decode(&event.0, ContentType::Protobuf).unwrap();
    assert_eq!(decoded.r#type(), event::Type::Message);
    assert_eq!(&decoded.message.unwrap().data[..], b"hello");
}

#[test]
fn acknowledged_event_bytes_from_the_reference() {
    let wire: [u8; 32] = [
        0x08, 0x04, 0x1a, 0x1c, 0x0a, 0x08, 0x0a, 0x06, b't', b'a', b's', b'k', b'-', b'1', 0x12, 0x10, 0x9f, 0x2c,
        0x4a, 0x1e, 0x7b, 0x3d, 0x4e, 0x8f, 0xa1, 0xc2, 0x5d, 0x6e, 0x7f, 0x80, 0x9a, 0x1b,
    ];
    let event: Event = decode(&wire, ContentType::Protobuf).unwrap();
    assert_eq!(event.r#type(), event::Type::Acknowledged);
    let ack = event.acknowledged.unwrap();
    assert_eq!(ack.task_id.value, "task-1");
    assert_eq!(&ack.uuid[..], &UUID);
    let json =
        br#"{"type":"ACKNOWLEDGED","acknowledged":{"task_id":{"value":"task-1"},"uuid":"nyxKHns9To+hwl1uf4CaGw=="}}"#;
    assert_eq!(json.len(), 103, "reference: exactly 103 bytes");
    let event: Event = decode(json, ContentType::Json).unwrap();
    assert_eq!(&event.acknowledged.unwrap().uuid[..], &UUID);
}

const LAUNCH_JSON: &str = r#"{"type":"LAUNCH","launch":{"task":{"name":"web","task_id":{"value":"task-9"},
  "agent_id":{"value":"agent-1"},
  "resources":[{"name":"cpus","type":"SCALAR","scalar":{"value":0.5},"allocation_info":{"role":"eng"}},
    {"name":"ports","type":"RANGES","ranges":{"range":[{"begin":31000,"end":31001}]},"allocation_info":{"role":"eng"}}],
  "command":{"uris":[{"value":"http://example.invalid/app.tgz","extract":true,"cache":false}],
    "environment":{"variables":[{"name":"PORT","type":"VALUE","value":"31000"},
      {"name":"DB_PASSWORD","type":"SECRET","secret":{"type":"REFERENCE","reference":{"name":"/db/pw"}}}]},
    "shell":false,"value":"/usr/bin/python3","arguments":["python3","-m","http.server","31000"],"user":"nobody"},
  "health_check":{"delay_seconds":15.0,"interval_seconds":10.0,"timeout_seconds":20.0,"consecutive_failures":3,
    "grace_period_seconds":10.0,"type":"HTTP","http":{"protocol":"IPv4","scheme":"http","port":31000,"path":"/health","statuses":[200]}},
  "kill_policy":{"grace_period":{"nanoseconds":5000000000}},
  "labels":{"labels":[{"key":"team","value":"web"}]},
  "data":"eyJrIjoidiJ9",
  "max_completion_time":{"nanoseconds":60000000000},
  "discovery":{"visibility":"FRAMEWORK","name":"web","ports":{"ports":[{"number":31000,"name":"http","protocol":"tcp"}]}}}}}"#;

#[test]
fn launch_event_json_as_the_agent_writes_it() {
    let event: Event = decode(LAUNCH_JSON.as_bytes(), ContentType::Json).unwrap();
    assert_eq!(event.r#type(), event::Type::Launch);
    let task = event.launch.unwrap().task;
    assert_eq!(task.name, "web");
    assert_eq!(task.task_id.value, "task-9");
    assert_eq!(task.agent_id.value, "agent-1");
    assert_eq!(task.resources.len(), 2);
    assert_eq!(task.resources[0].allocation_info.as_ref().unwrap().role(), "eng");
    let range = &task.resources[1].ranges.as_ref().unwrap().range[0];
    assert_eq!((range.begin, range.end), (31000, 31001));
    let command = task.command.unwrap();
    assert_eq!(command.uris[0].value, "http://example.invalid/app.tgz");
    assert!(command.uris[0].extract());
    assert!(!command.uris[0].cache());
    let vars = &command.environment.as_ref().unwrap().variables;
    assert_eq!(
        (vars[0].name.as_str(), vars[0].value(), vars[0].r#type()),
        ("PORT", "31000", environment::variable::Type::Value)
    );
    assert_eq!(vars[1].r#type(), environment::variable::Type::Secret);
    assert_eq!(vars[1].secret.as_ref().unwrap().reference.as_ref().unwrap().name, "/db/pw");
    assert!(!command.shell());
    assert_eq!(command.value(), "/usr/bin/python3");
    assert_eq!(command.arguments, ["python3", "-m", "http.server", "31000"]);
    assert_eq!(command.user(), "nobody");
    let health = task.health_check.unwrap();
    assert_eq!(health.r#type(), v1::health_check::Type::Http);
    assert_eq!((health.delay_seconds(), health.interval_seconds(), health.timeout_seconds()), (15.0, 10.0, 20.0));
    assert_eq!((health.consecutive_failures(), health.grace_period_seconds()), (3, 10.0));
    let http = health.http.unwrap();
    assert_eq!(
        (http.port, http.path(), http.scheme(), http.statuses.as_slice()),
        (31000, "/health", "http", &[200][..])
    );
    assert_eq!(http.protocol(), v1::network_info::Protocol::IPv4);
    assert_eq!(task.kill_policy.unwrap().grace_period.unwrap().nanoseconds, 5_000_000_000);
    assert_eq!(task.labels.unwrap().labels[0].value(), "web");
    assert_eq!(task.data.as_deref(), Some(&b"{\"k\":\"v\"}"[..]));
    assert_eq!(task.max_completion_time.unwrap().nanoseconds, 60_000_000_000);
    let port = &task.discovery.unwrap().ports.unwrap().ports[0];
    assert_eq!((port.number, port.name(), port.protocol()), (31000, "http", "tcp"));
}

#[test]
fn subscribed_event_json_with_agent_defaults() {
    let doc = r#"{"type":"SUBSCRIBED","subscribed":{
      "executor_info":{"type":"CUSTOM","executor_id":{"value":"exec-1"},"framework_id":{"value":"fw-1"},
        "command":{"shell":true,"value":"/opt/bin/my-executor"},
        "resources":[{"name":"cpus","type":"SCALAR","scalar":{"value":0.1},"allocation_info":{"role":"*"}}]},
      "framework_info":{"user":"root","name":"demo","id":{"value":"fw-1"},"failover_timeout":0.0,
        "checkpoint":true,"roles":["*"],"capabilities":[{"type":"MULTI_ROLE"},{"type":"TASK_KILLING_STATE"}]},
      "agent_info":{"hostname":"agent1","port":5051,"id":{"value":"agent-1"}},
      "container_id":{"value":"1d3cf0a4-8a3e-4a43-9d0e-0f1e4c7a2b11"}}}"#;
    let event: Event = decode(doc.as_bytes(), ContentType::Json).unwrap();
    let subscribed = event.subscribed.unwrap();
    assert_eq!(subscribed.executor_info.r#type(), v1::executor_info::Type::Custom);
    assert_eq!(subscribed.executor_info.executor_id.value, "exec-1");
    let framework = subscribed.framework_info;
    assert!(framework.checkpoint());
    assert_eq!(framework.id.unwrap().value, "fw-1");
    let caps: Vec<_> = framework.capabilities.iter().map(|c| c.r#type()).collect();
    assert_eq!(caps, [framework_info::capability::Type::MultiRole, framework_info::capability::Type::TaskKillingState]);
    assert_eq!((subscribed.agent_info.hostname.as_str(), subscribed.agent_info.port()), ("agent1", 5051));
    assert_eq!(subscribed.container_id.unwrap().value, "1d3cf0a4-8a3e-4a43-9d0e-0f1e4c7a2b11");
}

#[test]
fn newer_agents_fields_and_enum_values_are_tolerated() {
    // Protobuf: an unknown field 99, an unknown event type 42, an unknown TaskState 77.
    let mut event = Pb::new();
    event.int(1, 42).bytes(99, b"from the future");
    let decoded: Event = decode(&event.0, ContentType::Protobuf).unwrap();
    assert_eq!(decoded.r#type(), event::Type::Unknown, "unknown type reads as UNKNOWN");
    let mut status = Pb::new();
    status.msg(1, &Pb::id_msg("t")).int(2, 77).int(123, 1);
    let decoded: v1::TaskStatus = decode(&status.0, ContentType::Protobuf).unwrap();
    assert_eq!(decoded.state, 77, "the raw value is kept");

    // JSON: unknown keys ignored, unknown optional enum names left unset (stout does the same).
    let decoded: Event = decode(br#"{"type":"TELEPORT","teleport":{"to":"mars"}}"#, ContentType::Json).unwrap();
    assert_eq!(decoded.r#type, None);
    let decoded: Event = decode(br#"{"type":"HEARTBEAT","agent_version":"9.0"}"#, ContentType::Json).unwrap();
    assert_eq!(decoded.r#type(), event::Type::Heartbeat);
}

#[test]
fn malformed_input_is_a_clear_error() {
    let err = decode::<Event>(b"\x0a\xff\xff", ContentType::Protobuf).unwrap_err();
    assert!(err.to_string().contains("mesos.v1.executor.Event"), "{err}");
    let err = decode::<Event>(br#"{"type":"KILL","kill":{"task_id":{"value":7}}}"#, ContentType::Json).unwrap_err();
    assert!(err.to_string().contains("mesos.v1.executor.Event"), "{err}");
    assert!(decode::<Event>(b"[1,2]", ContentType::Json).is_err());
    assert!(decode::<Event>(br#"{"type":"HEARTBEAT"} trailing"#, ContentType::Json).is_err());
    assert!(decode::<Call>(br#"{"update":{"status":{"uuid":"not base64!"}}}"#, ContentType::Json).is_err());
}

#[test]
fn command_info_defaults_follow_proto2() {
    let command = v1::CommandInfo::default();
    assert!(command.shell(), "shell defaults to true");
    let uri = command_info::Uri { value: "x".into(), ..Default::default() };
    assert!(uri.extract(), "extract defaults to true");
    assert_eq!(v1::AgentInfo::default().port(), 5051);
    let status = v1::TaskStatus::default();
    assert_eq!(status.source(), task_status::Source::Master, "unset source reads as SOURCE_MASTER (pitfall 1)");
}
