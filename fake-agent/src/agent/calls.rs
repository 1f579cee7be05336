//! How the agent answers a decoded, validated call once it passed the HTTP layer:
//! the lookups and state checks of upstream `Http::executor` (reference §1.5 steps
//! 6 to 10), then SUBSCRIBE (`Slave::subscribe`, §10.2), UPDATE and MESSAGE.

use std::{collections::HashSet, time::Duration};

use hyper::StatusCode;
use mesos_executor::{
    ContentType,
    proto::v1::{
        TaskState,
        executor::{Call, Event, call, event},
        task_status,
    },
};

use super::{Agent, ExecutorState, Phase, State};
use crate::{
    stream::{EventBody, EventStream},
    transcript::Record,
};

/// The agent's answer to a call.
pub enum Reply {
    /// 200 with an event stream in this media type.
    Stream(EventBody, ContentType),
    /// A status with a plain-text body.
    Status(StatusCode, String),
}

impl Reply {
    fn status(&self) -> StatusCode {
        match self {
            Reply::Stream(..) => StatusCode::OK,
            Reply::Status(status, _) => *status,
        }
    }
}

const RECOVERING: &str = "Agent has not finished recovery";

impl Agent {
    /// Answers `call`, recording it (with its status and outcome) before the events it caused.
    pub(crate) fn dispatch(&self, call: Call, media: ContentType, stream_media: ContentType) -> Reply {
        self.with_state(|s| {
            let position = s.transcript.len();
            let at = self.elapsed();
            let (reply, outcome) = match self.gate(s, &call) {
                Some(refusal) => (refusal, String::new()),
                None => match call.r#type() {
                    call::Type::Subscribe => self.subscribe(s, &call, stream_media),
                    call::Type::Update => self.update(s, &call),
                    call::Type::Message => {
                        (Reply::Status(StatusCode::ACCEPTED, String::new()), "forwarded to the scheduler".to_owned())
                    }
                    call::Type::Heartbeat => (Reply::Status(StatusCode::ACCEPTED, String::new()), String::new()),
                    call::Type::Unknown => (Reply::Status(StatusCode::NOT_IMPLEMENTED, String::new()), String::new()),
                },
            };
            let entry = crate::transcript::Entry {
                at,
                record: Record::Call {
                    call: Box::new(call),
                    content_type: media,
                    status: reply.status().as_u16(),
                    outcome: if outcome.is_empty() {
                        match &reply {
                            Reply::Status(_, body) => body.clone(),
                            Reply::Stream(..) => String::new(),
                        }
                    } else {
                        outcome
                    },
                },
            };
            s.transcript.insert(position, entry);
            reply
        })
    }

    /// The checks between validation and dispatch, in upstream order.
    fn gate(&self, s: &State, call: &Call) -> Option<Reply> {
        let kind = call.r#type();
        if kind == call::Type::Heartbeat {
            return None;
        }
        let bad_request = |m: &str| Some(Reply::Status(StatusCode::BAD_REQUEST, m.to_owned()));
        if kind != call::Type::Subscribe && s.phase == Phase::Reregistering {
            return Some(Reply::Status(StatusCode::SERVICE_UNAVAILABLE, RECOVERING.to_owned()));
        }
        let cfg = &self.inner.config;
        if call.framework_id.value != cfg.framework_id || s.executor == ExecutorState::Unknown {
            return bad_request("Framework cannot be found");
        }
        if call.executor_id.value != cfg.executor_id {
            return bad_request("Executor cannot be found");
        }
        if kind != call::Type::Subscribe && s.executor == ExecutorState::Registering {
            return Some(Reply::Status(StatusCode::FORBIDDEN, "Executor is not subscribed".to_owned()));
        }
        None
    }

    fn subscribe(&self, s: &mut State, call: &Call, media: ContentType) -> (Reply, String) {
        s.streams_opened += 1;
        let (stream, body) = EventStream::new(s.streams_opened, media);
        if matches!(s.executor, ExecutorState::Terminating | ExecutorState::Terminated) {
            // §10.2 step 1: a single SHUTDOWN, then the stream ends.
            let previous = s.stream.replace(stream);
            self.emit(s, Event { r#type: Some(event::Type::Shutdown as i32), ..Default::default() });
            s.stream = previous;
            return (Reply::Stream(body, media), "answered with SHUTDOWN: executor is terminating".to_owned());
        }
        let id = stream.id;
        if let Some(old) = s.stream.replace(stream) {
            self.record(s, Record::Note { what: format!("closed older event stream {}", old.id) });
        }
        s.executor = ExecutorState::Running;
        s.subscriptions += 1;
        self.spawn_heartbeats(id);

        let subscribe = call.subscribe.clone().unwrap_or_default();
        // Not an upstream check: a faithful executor resends every update whose
        // acknowledgement it never received (reference §7.4); flag any it left out.
        let resent: HashSet<&[u8]> =
            subscribe.unacknowledged_updates.iter().filter_map(|u| u.status.uuid.as_deref()).collect();
        let mut missing: Vec<String> = s
            .unacked
            .iter()
            .filter(|(uuid, _)| !resent.contains(uuid.as_ref()))
            .map(|(uuid, task)| format!("{task}/{}", hex(uuid)))
            .collect();
        if !missing.is_empty() {
            missing.sort();
            s.resubscribe_gaps += 1;
            let what = format!("SUBSCRIBE lacks {} unacknowledged updates: {}", missing.len(), missing.join(", "));
            self.record(s, Record::Note { what });
        }
        // §10.2 step 3: replay unacknowledged updates; their ACKs follow SUBSCRIBED.
        let agent_id = self.inner.config.agent_id.clone();
        let mut acks = Vec::new();
        for update in &subscribe.unacknowledged_updates {
            let outcome = s.apply_update(&update.status, &agent_id);
            if outcome.is_acknowledged() {
                acks.push((update.status.task_id.value.clone(), update.status.uuid.clone().unwrap_or_default()));
            }
            let record =
                Record::Replayed { status: Box::new(update.status.clone()), outcome: outcome.as_str().to_owned() };
            self.record(s, record);
        }
        // §10.2 step 4 (pitfall 12): delivered tasks still STAGING that the executor
        // did not report are lost.
        let reported: HashSet<&str> = subscribe.unacknowledged_tasks.iter().map(|t| t.task_id.value.as_str()).collect();
        let lost: Vec<String> = s
            .tasks
            .iter()
            .filter(|t| t.delivered && t.state == TaskState::TaskStaging)
            .map(|t| t.info.task_id.value.clone())
            .filter(|id| !reported.contains(id.as_str()))
            .collect();
        for id in lost {
            let state = self.lost_state(TaskState::TaskDropped);
            self.agent_update(s, &id, state, task_status::Reason::AgentRestarted, "Task launched during agent restart");
        }
        let port = self.port();
        let command = self.inner.executor_command.lock().map(|c| c.clone()).unwrap_or_default();
        let container_id = self.inner.container.lock().map(|c| c.id.clone()).unwrap_or_default();
        let cfg = &self.inner.config;
        let subscribed = event::Subscribed {
            executor_info: cfg.executor_info(&command),
            framework_info: cfg.framework_info(),
            agent_info: cfg.agent_info(port),
            container_id: Some(mesos_executor::proto::v1::ContainerId { value: container_id, parent: None }),
        };
        self.emit(
            s,
            Event { r#type: Some(event::Type::Subscribed as i32), subscribed: Some(subscribed), ..Default::default() },
        );
        for (task_id, uuid) in acks {
            self.acknowledge(s, &task_id, uuid);
        }
        self.deliver_queued(s);
        let outcome = format!(
            "subscribed on stream {id} with {} unacknowledged updates and {} unacknowledged tasks",
            subscribe.unacknowledged_updates.len(),
            subscribe.unacknowledged_tasks.len()
        );
        (Reply::Stream(body, media), outcome)
    }

    fn update(&self, s: &mut State, call: &Call) -> (Reply, String) {
        let Some(update) = &call.update else {
            return (Reply::Status(StatusCode::BAD_REQUEST, "Expecting 'update' to be present".into()), String::new());
        };
        let status = &update.status;
        let outcome = s.apply_update(status, &self.inner.config.agent_id);
        if outcome.is_acknowledged() {
            self.acknowledge(s, &status.task_id.value, status.uuid.clone().unwrap_or_default());
        }
        (Reply::Status(StatusCode::ACCEPTED, String::new()), outcome.as_str().to_owned())
    }

    fn spawn_heartbeats(&self, stream_id: u64) {
        let interval = self.inner.config.heartbeat_interval;
        if interval.is_zero() {
            return;
        }
        let agent = self.clone();
        tokio::spawn(async move {
            let mut ticks = tokio::time::interval_at(
                tokio::time::Instant::now() + interval,
                interval.max(Duration::from_millis(1)),
            );
            loop {
                ticks.tick().await;
                let sent = agent.with_state(|s| {
                    if s.stream.as_ref().map(|st| st.id) != Some(stream_id) {
                        return false;
                    }
                    agent.emit(s, Event { r#type: Some(event::Type::Heartbeat as i32), ..Default::default() });
                    true
                });
                if !sent {
                    return;
                }
            }
        });
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}
