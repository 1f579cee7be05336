//! Everything the fake agent saw and did, in order with timestamps: as JSON lines for
//! machines, and as a task-by-task timeline for people.

use std::{collections::BTreeMap, fmt::Write as _, time::Duration};

use mesos_executor::{
    proto::v1::{TaskState, TaskStatus, executor::Call, executor::Event},
    wire::{ContentType, to_json_value},
};
use serde_json::json;

/// What happened. Field names say what they hold; `status` is an HTTP status where a
/// number, a TaskStatus where a message.
#[derive(Debug, Clone)]
#[allow(missing_docs)]
pub enum Record {
    /// A call that was decoded, with the status it was answered with and what the agent
    /// made of it (for updates: applied, duplicate, ignored-terminal, unknown-task, ...).
    Call { call: Box<Call>, content_type: ContentType, status: u16, outcome: String },
    /// A request refused before it could be decoded as a call.
    Refused { status: u16, message: String },
    /// An event written to stream `stream`, or lost because no stream was live.
    Event { event: Box<Event>, stream: Option<u64> },
    /// An update replayed in a SUBSCRIBE's `unacknowledged_updates`, and its outcome.
    Replayed { status: Box<TaskStatus>, outcome: String },
    /// An update the agent generated itself (TASK_LOST after a restart, ...).
    AgentUpdate { status: Box<TaskStatus> },
    /// The executor process started, exited or was killed; the agent restarted; a fault.
    Note { what: String },
}

/// One transcript line.
#[derive(Debug, Clone)]
pub struct Entry {
    /// Time since the agent started.
    pub at: Duration,
    /// What happened.
    pub record: Record,
}

impl Entry {
    /// The entry as one JSON object (calls and events in the agent's JSON mapping).
    pub fn to_json(&self) -> serde_json::Value {
        let t = self.at.as_secs_f64();
        let mesos_json =
            |r: Result<serde_json::Value, _>| r.unwrap_or_else(|e: mesos_executor::WireError| json!(e.to_string()));
        match &self.record {
            Record::Call { call, content_type, status, outcome } => json!({
                "t": t, "kind": "call", "type": call_type(call), "content_type": content_type.as_str(),
                "status": status, "outcome": outcome, "call": mesos_json(to_json_value(call.as_ref())),
            }),
            Record::Refused { status, message } => {
                json!({"t": t, "kind": "refused", "status": status, "message": message})
            }
            Record::Event { event, stream } => json!({
                "t": t, "kind": "event", "type": event_type(event), "stream": stream,
                "event": mesos_json(to_json_value(event.as_ref())),
            }),
            Record::Replayed { status, outcome } => json!({
                "t": t, "kind": "replayed_update", "outcome": outcome, "status": mesos_json(to_json_value(status.as_ref())),
            }),
            Record::AgentUpdate { status } => json!({
                "t": t, "kind": "agent_update", "status": mesos_json(to_json_value(status.as_ref())),
            }),
            Record::Note { what } => json!({"t": t, "kind": "note", "what": what}),
        }
    }
}

/// The call's type name (`UPDATE`, ...).
pub fn call_type(call: &Call) -> String {
    call.r#type().as_str_name().to_owned()
}

/// The event's type name (`LAUNCH`, ...).
pub fn event_type(event: &Event) -> String {
    event.r#type().as_str_name().to_owned()
}

/// Writes all entries as JSON lines.
pub fn to_json_lines(entries: &[Entry]) -> String {
    let mut out = String::new();
    for entry in entries {
        out.push_str(&entry.to_json().to_string());
        out.push('\n');
    }
    out
}

/// A human-readable timeline: the executor's life, then each task state by state.
pub fn timeline(entries: &[Entry]) -> String {
    let mut tasks: BTreeMap<String, Vec<String>> = BTreeMap::new();
    let mut order: Vec<String> = Vec::new();
    let mut executor = Vec::new();
    let mut push = |tasks: &mut BTreeMap<String, Vec<String>>, id: &str, line: String| {
        if !tasks.contains_key(id) {
            order.push(id.to_owned());
        }
        tasks.entry(id.to_owned()).or_default().push(line);
    };
    for entry in entries {
        let t = format!("{:>8.3}s", entry.at.as_secs_f64());
        match &entry.record {
            Record::Call { call, status, outcome, .. } => {
                if let Some(update) = &call.update {
                    if *status == 202 {
                        let line = format!("{t}  {}", describe_status(&update.status, Some(outcome)));
                        push(&mut tasks, &update.status.task_id.value, line);
                    }
                } else if let (Some(message), 200 | 202) = (&call.message, *status) {
                    executor.push(format!("{t}  MESSAGE call: {}", shown(&message.data)));
                } else if *status == 200 || *status == 202 {
                    executor.push(format!("{t}  {} call", call_type(call)));
                } else {
                    executor.push(format!("{t}  {} call answered {status}", call_type(call)));
                }
            }
            Record::Refused { status, message } => executor.push(format!("{t}  request refused {status}: {message}")),
            Record::Event { event, stream } => {
                let lost = if stream.is_none() { " (lost: no live stream)" } else { "" };
                if let Some(launch) = &event.launch {
                    push(&mut tasks, &launch.task.task_id.value, format!("{t}  LAUNCH delivered{lost}"));
                } else if let Some(group) = &event.launch_group {
                    for task in &group.task_group.tasks {
                        push(&mut tasks, &task.task_id.value, format!("{t}  LAUNCH_GROUP delivered{lost}"));
                    }
                } else if let Some(kill) = &event.kill {
                    push(&mut tasks, &kill.task_id.value, format!("{t}  KILL sent{lost}"));
                } else if let Some(message) = &event.message {
                    executor.push(format!("{t}  MESSAGE event{lost}: {}", shown(&message.data)));
                } else if event.acknowledged.is_none()
                    && event.r#type() != mesos_executor::proto::v1::executor::event::Type::Heartbeat
                {
                    executor.push(format!("{t}  {} event{lost}", event_type(event)));
                }
            }
            Record::Replayed { status, outcome } => {
                let line = format!("{t}  {} (replayed in SUBSCRIBE)", describe_status(status, Some(outcome)));
                push(&mut tasks, &status.task_id.value, line);
            }
            Record::AgentUpdate { status } => {
                let line = format!("{t}  {} (generated by the agent)", describe_status(status, None));
                push(&mut tasks, &status.task_id.value, line);
            }
            Record::Note { what } => executor.push(format!("{t}  {what}")),
        }
    }
    let mut out = String::from("== executor\n");
    for line in &executor {
        let _ = writeln!(out, "{line}");
    }
    for id in &order {
        let _ = writeln!(out, "== task {id}");
        for line in &tasks[id] {
            let _ = writeln!(out, "{line}");
        }
    }
    out
}

/// Message data for the timeline: as text when it is printable UTF-8 (quoted, at most
/// 200 characters), else its size and first bytes in hex.
fn shown(data: &[u8]) -> String {
    match std::str::from_utf8(data) {
        Ok(text) if !text.chars().any(|c| c.is_control() && c != '\n' && c != '\t') => {
            let cut: String = text.chars().take(200).collect();
            let more = if cut.len() < text.len() { "..." } else { "" };
            format!("{cut:?}{more}")
        }
        _ => {
            let head: String = data.iter().take(16).map(|b| format!("{b:02x}")).collect();
            format!("{} bytes: {head}{}", data.len(), if data.len() > 16 { "..." } else { "" })
        }
    }
}

fn describe_status(status: &TaskStatus, outcome: Option<&str>) -> String {
    let state = TaskState::try_from(status.state)
        .map(|s| s.as_str_name().to_owned())
        .unwrap_or_else(|_| status.state.to_string());
    let mut line = state;
    if let Some(healthy) = status.healthy {
        let _ = write!(line, " healthy={healthy}");
    }
    if status.reason.is_some() {
        let _ = write!(line, " {}", status.reason().as_str_name());
    }
    if let Some(message) = &status.message {
        let _ = write!(line, " \"{message}\"");
    }
    if let Some(outcome) = outcome.filter(|o| *o != "applied") {
        let _ = write!(line, " [{outcome}]");
    }
    line
}

#[cfg(test)]
mod shown_tests {
    #[test]
    fn message_data_is_text_when_printable() {
        assert_eq!(super::shown(b"hello"), "\"hello\"");
        assert_eq!(super::shown(&[0, 1, 2]), "3 bytes: 000102");
    }
}
