//! The driver task: the shell around the [`Lifecycle`]. It turns what happens (an
//! attempt's answer, a record on the stream, a command from a handle, a deadline) into
//! inputs, and performs the actions the lifecycle returns: start or drop a SUBSCRIBE,
//! call the executor, end. It also owns the unacknowledged updates and the
//! [`Pump`] of the live subscription. Everything runs on this one task, so the
//! executor's callbacks never run concurrently.

use std::{future::Future, pin::Pin, time::Duration};

use bytes::Bytes;
use futures_util::StreamExt;
use tokio::{
    sync::mpsc,
    time::{Instant, Interval, sleep_until},
};
use tracing::{debug, error, info, warn};

use super::{
    Command, DriverConfig, DriverError, DriverHandle,
    acks::{Acked, Unacked},
    backoff::RetryBackoff,
    calls,
    lifecycle::{Action, Input, Lifecycle, Rules},
    outbox::{Outgoing, Pump, Refused},
    outcome::DriverOutcome,
    transport::{Endpoint, EventStream, TransportError},
};
use crate::{
    executor::Executor,
    proto::v1::{
        AgentId, TaskState,
        executor::{Event, event},
    },
    wire,
};

/// A SUBSCRIBE attempt: the stream and its first record, the proof that the agent
/// really serves us (it sends SUBSCRIBED at once). A 200 whose first record never comes
/// is abandoned at the attempt's deadline like any other hang.
type Attempt = Pin<Box<dyn Future<Output = Result<(EventStream, Bytes), TransportError>> + Send>>;

/// The connection to the agent, as far as the shell holds one.
enum Link {
    Down,
    /// A SUBSCRIBE in flight, and the updates it carries.
    Attempt {
        attempt: Attempt,
        included: Vec<Bytes>,
    },
    /// A live subscription.
    Live(Box<Live>),
}

struct Live {
    stream: EventStream,
    pump: Pump,
    resend: Interval,
    heartbeat: Interval,
}

/// What the link produced.
enum LinkEvent {
    Attempt(Result<(EventStream, Bytes), TransportError>),
    Frame(Option<Result<Bytes, super::RecordIoError>>),
    Refused(Refused),
    Resend,
    Heartbeat,
}

impl Link {
    /// The next thing the link produces. Cancel-safe: the attempt is polled in place,
    /// and the stream, channel and intervals are cancel-safe.
    async fn next(&mut self) -> LinkEvent {
        match self {
            Link::Down => std::future::pending().await,
            Link::Attempt { attempt, .. } => LinkEvent::Attempt(attempt.as_mut().await),
            Link::Live(live) => tokio::select! {
                frame = live.stream.frames.next() => LinkEvent::Frame(frame),
                Some(refused) = live.pump.refused.recv() => LinkEvent::Refused(refused),
                _ = live.resend.tick() => LinkEvent::Resend,
                _ = live.heartbeat.tick() => LinkEvent::Heartbeat,
            },
        }
    }
}

pub(crate) struct Session<E> {
    executor: E,
    config: DriverConfig,
    handle: DriverHandle,
    commands: mpsc::UnboundedReceiver<Command>,
    endpoint: Endpoint,
    lifecycle: Lifecycle,
    link: Link,
    unacked: Unacked,
    agent_id: Option<AgentId>,
    /// Whether a SUBSCRIBED event arrived (the next one is a re-registration).
    registered: bool,
}

fn std_now() -> std::time::Instant {
    Instant::now().into_std()
}

impl<E: Executor> Session<E> {
    pub fn new(
        executor: E,
        config: DriverConfig,
        handle: DriverHandle,
        commands: mpsc::UnboundedReceiver<Command>,
    ) -> Result<Self, DriverError> {
        let endpoint = Endpoint::new(&config.env, config.content_type, config.keepalive_idle)?;
        let backoff = RetryBackoff::for_agent(config.env.subscription_backoff_max, config.retry_interval_cap);
        let rules = Rules {
            checkpoint: config.env.checkpoint,
            recovery_timeout: config.env.recovery_timeout,
            attempt_timeout: config.attempt_timeout,
            shutdown_grace: config.env.shutdown_grace_period,
            stop_timeout: config.stop_timeout,
            shutdown_ack_timeout: config.shutdown_ack_timeout,
        };
        Ok(Session {
            executor,
            config,
            handle,
            commands,
            endpoint,
            lifecycle: Lifecycle::new(rules, backoff),
            link: Link::Down,
            unacked: Unacked::default(),
            agent_id: None,
            registered: false,
        })
    }

    /// Runs the session inside the driver's span: the future is instrumented (entered
    /// only while it is polled), so other tasks polled on the same thread never log
    /// inside it.
    pub async fn run(self) -> DriverOutcome {
        use tracing::Instrument;
        let span = tracing::info_span!(
            "executor_driver",
            framework_id = %self.config.env.framework_id,
            executor_id = %self.config.env.executor_id,
        );
        self.run_in_span().instrument(span).await
    }

    async fn run_in_span(mut self) -> DriverOutcome {
        use tracing::Instrument;
        let (stop_writer, stopped) = tokio::sync::oneshot::channel::<()>();
        let writer = self.config.metrics_file.clone().map(|path| {
            // Beneath the sandbox, whose path holds the executor's ids: relative to it.
            let shown = self.config.env.sandbox.as_deref().and_then(|s| path.strip_prefix(s).ok()).unwrap_or(&path);
            info!(path = %shown.display(), "writing metrics");
            let stopped = async move {
                let _ = stopped.await;
            };
            tokio::spawn(
                crate::metrics::run_writer(self.config.metrics.clone(), path, self.config.metrics_interval, stopped)
                    .in_current_span(),
            )
        });
        let outcome = self.drive().await;
        self.link = Link::Down;
        self.config.metrics.connected.set(0);
        let _ = stop_writer.send(());
        if let Some(writer) = writer {
            let _ = writer.await;
        }
        outcome
    }

    async fn drive(&mut self) -> DriverOutcome {
        let mut inputs = vec![Input::Start];
        loop {
            for input in inputs.drain(..) {
                let actions = self.lifecycle.step(input, std_now());
                if let Some(outcome) = self.perform(actions) {
                    self.finish(outcome);
                    return outcome;
                }
            }
            // Far enough never to fire, near enough not to overflow.
            let far = Instant::now() + Duration::from_secs(86_400 * 365);
            let wakeup = self.lifecycle.next_wakeup().map_or(far, Instant::from_std);
            tokio::select! {
                event = self.link.next() => self.link_event(event, &mut inputs),
                command = self.commands.recv() => inputs.extend(self.command(command)),
                _ = sleep_until(wakeup) => inputs.push(Input::Tick),
            }
        }
    }

    fn finish(&self, outcome: DriverOutcome) {
        if self.unacked.is_empty() {
            info!(%outcome, "driver ended");
        } else {
            warn!(unacknowledged = self.unacked.len(), %outcome, "driver ended with unacknowledged updates");
        }
    }

    /// Performs the lifecycle's actions; `Some` when the driver is over.
    fn perform(&mut self, actions: Vec<Action>) -> Option<DriverOutcome> {
        for action in actions {
            match action {
                Action::Subscribe => self.subscribe(),
                Action::CancelAttempt => {
                    warn!("the agent did not answer SUBSCRIBE before its deadline; abandoning the attempt");
                    self.config.metrics.call("SUBSCRIBE", "connection_error");
                    self.link = Link::Down;
                }
                Action::NotifyDisconnected => {
                    // The lifecycle waits `MESOS_RECOVERY_TIMEOUT` for a checkpointing
                    // framework's agent, and gives up at once otherwise (GaveUp says so).
                    if self.config.env.checkpoint {
                        let gives_up_in = crate::env::format_duration(self.config.env.recovery_timeout);
                        info!(%gives_up_in, "agent lost; waiting for the agent to come back");
                    }
                    let metrics = &self.config.metrics;
                    metrics.disconnects.inc();
                    metrics.connected.set(0);
                    metrics.flush_soon();
                    self.executor.disconnected(&self.handle);
                }
                Action::NotifyError(message) => self.executor.error(&self.handle, &message),
                Action::GaveUp { reason, why } => error!(%reason, %why, "giving up on the agent"),
                Action::NotifyShutdown(reason) => {
                    info!(%reason, "shutting the executor down");
                    self.executor.shutdown(&self.handle, reason);
                }
                Action::End(outcome) => {
                    self.link = Link::Down;
                    return Some(outcome);
                }
            }
        }
        None
    }

    /// Starts a SUBSCRIBE carrying every unacknowledged update and task.
    fn subscribe(&mut self) {
        let included = self.unacked.uuids();
        self.config.metrics.subscription_attempts.inc();
        let call = calls::subscribe(&self.config.env, self.unacked.subscribe_message());
        let body = calls::body(&call, self.config.content_type);
        debug!(
            unacknowledged_updates = included.len(),
            unacknowledged_tasks = self.unacked.task_count(),
            resubscribe = self.lifecycle.ever_subscribed(),
            "subscribing"
        );
        let endpoint = self.endpoint.clone();
        let max_record_len = self.config.max_record_len;
        let attempt = Box::pin(async move {
            let mut stream = endpoint.subscribe(body, max_record_len).await?;
            let unusable = |reason: String| TransportError::Answer { call: "SUBSCRIBE", reason };
            match stream.frames.next().await {
                Some(Ok(first)) => Ok((stream, first)),
                Some(Err(e)) => Err(unusable(format!("the event stream broke before its first event: {e}"))),
                None => Err(unusable("the agent closed the event stream before its first event".to_owned())),
            }
        });
        self.link = Link::Attempt { attempt, included };
    }

    /// Turns what the link produced into lifecycle inputs.
    fn link_event(&mut self, event: LinkEvent, inputs: &mut Vec<Input>) {
        match event {
            LinkEvent::Attempt(result) => self.attempt_answered(result, inputs),
            LinkEvent::Frame(Some(Ok(record))) => match self.decode(&record) {
                Ok(event) => inputs.extend(self.event(event)),
                Err(message) => {
                    self.executor.error(&self.handle, &message);
                    inputs.push(self.lost(message));
                }
            },
            LinkEvent::Frame(Some(Err(e))) => inputs.push(self.lost(format!("the event stream is broken: {e}"))),
            LinkEvent::Frame(None) => {
                inputs.push(self.lost("the agent closed the event stream (end of file)".to_owned()));
            }
            LinkEvent::Refused(refused) => self.refused(refused),
            LinkEvent::Resend => {
                let due = self.unacked.due_for_resend(std_now(), self.config.resend_after);
                if !due.is_empty() {
                    debug!(updates = due.len(), "resending unacknowledged updates");
                }
                for uuid in due {
                    self.post_update(uuid);
                }
            }
            LinkEvent::Heartbeat => {
                let body = calls::body(&calls::heartbeat(&self.config.env), self.config.content_type);
                self.post(Outgoing { name: "HEARTBEAT", uuid: None, body });
            }
        }
    }

    /// Decodes a record in the media type the agent chose; the error names what was wrong.
    fn decode(&self, record: &[u8]) -> Result<Event, String> {
        let media = match &self.link {
            Link::Live(live) => live.stream.media,
            _ => self.config.content_type,
        };
        wire::decode::<Event>(record, media).map_err(|e| {
            let message = format!("malformed event from the agent: {e}");
            error!(%message);
            message
        })
    }

    fn lost(&mut self, why: String) -> Input {
        warn!(reason = %why, "disconnected from the agent");
        self.link = Link::Down;
        Input::Disconnected { why }
    }

    fn attempt_answered(&mut self, result: Result<(EventStream, Bytes), TransportError>, inputs: &mut Vec<Input>) {
        let included = match std::mem::replace(&mut self.link, Link::Down) {
            Link::Attempt { included, .. } => included,
            _ => Vec::new(),
        };
        let first = result.and_then(|(stream, first)| {
            let event = wire::decode::<Event>(&first, stream.media).map_err(|e| TransportError::Answer {
                call: "SUBSCRIBE",
                reason: format!("the first event is malformed: {e}"),
            })?;
            Ok((stream, event))
        });
        let (stream, first) = match first {
            Ok(answer) => answer,
            Err(error) => {
                let outcome = match (error.status(), error.is_retryable()) {
                    (None, _) => "connection_error",
                    (Some(_), true) => "retried",
                    (Some(_), false) => "refused",
                };
                self.config.metrics.call("SUBSCRIBE", outcome);
                match (error.is_retryable(), &error) {
                    (false, _) => error!(%error, "the agent refused the subscription"),
                    // The agent answered, but not with HTTP or events we can use: say what.
                    (true, TransportError::Http(_) | TransportError::Answer { .. }) => {
                        warn!(%error, "subscription attempt failed")
                    }
                    (true, _) => debug!(%error, "subscription attempt failed"),
                }
                inputs.push(Input::AttemptFailed { retryable: error.is_retryable(), error: error.to_string() });
                return;
            }
        };
        let now = std_now();
        let metrics = &self.config.metrics;
        metrics.call("SUBSCRIBE", "accepted");
        metrics.subscriptions.inc();
        metrics.connected.set(1);
        for uuid in &included {
            if self.unacked.get(uuid).is_some_and(|u| u.sends > 0) {
                metrics.updates_resent.inc();
            }
            self.unacked.mark_sent(uuid, now);
        }
        metrics.flush_soon();
        let pump = Pump::start(
            self.endpoint.clone(),
            self.unacked.shared(),
            self.config.metrics.clone(),
            self.config.call_timeout,
        );
        let resend_every = (self.config.resend_after / 2).max(Duration::from_millis(10));
        let mut resend = tokio::time::interval_at(Instant::now() + resend_every, resend_every);
        resend.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
        let heartbeat_every = self.config.heartbeat_interval.max(Duration::from_secs(1));
        let heartbeat = tokio::time::interval_at(Instant::now() + heartbeat_every, heartbeat_every);
        self.link = Link::Live(Box::new(Live { stream, pump, resend, heartbeat }));
        // Updates produced while the SUBSCRIBE was in flight were not in it.
        for uuid in self.unacked.never_sent() {
            self.post_update(uuid);
        }
        inputs.push(Input::Subscribed);
        inputs.extend(self.event(first));
    }

    /// Queues a call on the live subscription; `false` when there is none.
    fn post(&mut self, outgoing: Outgoing) -> bool {
        match &self.link {
            Link::Live(live) => {
                live.pump.send(outgoing);
                true
            }
            _ => false,
        }
    }

    fn post_update(&mut self, uuid: Bytes) {
        let Some(pending) = self.unacked.get(&uuid) else { return };
        let resend = pending.sends > 0;
        let body = calls::body(&calls::update(&self.config.env, pending.status.clone()), self.config.content_type);
        if self.post(Outgoing { name: "UPDATE", uuid: Some(uuid.clone()), body }) {
            if resend {
                self.config.metrics.updates_resent.inc();
            }
            self.unacked.mark_sent(&uuid, std_now());
        }
    }

    /// Handles a command from a handle.
    fn command(&mut self, command: Option<Command>) -> Option<Input> {
        match command? {
            Command::Update(status) => {
                let mut status = *status;
                if status.agent_id.is_none() {
                    status.agent_id.clone_from(&self.agent_id);
                }
                let uuid = status.uuid.clone().unwrap_or_default();
                let state = TaskState::try_from(status.state).map_or("?", |s| s.as_str_name());
                debug!(task_id = %status.task_id.value, state, "status update");
                self.unacked.add_update(status, std_now());
                self.config.metrics.updates_sent.inc();
                self.config.metrics.updates_unacknowledged.set(self.unacked.len() as i64);
                self.post_update(uuid);
                None
            }
            Command::Message(data) => {
                let body = calls::body(&calls::message(&self.config.env, data), self.config.content_type);
                if !self.post(Outgoing { name: "MESSAGE", uuid: None, body }) {
                    warn!("framework message dropped: not subscribed to the agent");
                }
                None
            }
            Command::Stop => {
                if !self.unacked.is_empty() {
                    info!(unacknowledged = self.unacked.len(), "stopping once every update is acknowledged");
                }
                Some(Input::Stop { unacked: self.unacked.len() })
            }
            Command::Shutdown => Some(Input::ShutdownRequested),
            Command::Abort => Some(Input::Abort),
        }
    }

    fn refused(&mut self, refused: Refused) {
        let message = format!("the agent refused {}: {}", refused.name, refused.error);
        error!(%message);
        if let Some(uuid) = &refused.uuid
            && refused.error.status() == Some(400)
        {
            // An update the agent will never accept would poison every later SUBSCRIBE.
            self.unacked.discard(uuid);
        }
        self.executor.error(&self.handle, &message);
    }

    /// Dispatches one event to the executor; some events are also lifecycle inputs.
    fn event(&mut self, event: Event) -> Option<Input> {
        let kind = event.r#type();
        self.config.metrics.events.with_label_values(&[kind.as_str_name()]).inc();
        let handle = &self.handle;
        match kind {
            event::Type::Subscribed => {
                let Some(subscribed) = event.subscribed else { return missing(kind, "subscribed") };
                self.agent_id.clone_from(&subscribed.agent_info.id);
                handle.set_task_killing_state(&subscribed.framework_info);
                if self.registered {
                    info!(agent = %subscribed.agent_info.hostname, "resubscribed to the agent");
                    self.executor.reregistered(handle, &subscribed.agent_info);
                } else {
                    self.registered = true;
                    info!(agent = %subscribed.agent_info.hostname, "subscribed to the agent");
                    self.executor.registered(
                        handle,
                        &subscribed.executor_info,
                        &subscribed.framework_info,
                        &subscribed.agent_info,
                    );
                }
            }
            event::Type::Launch => {
                let Some(launch) = event.launch else { return missing(kind, "launch") };
                info!(task_id = %launch.task.task_id.value, "launch");
                self.unacked.add_task(launch.task.clone());
                self.executor.launch_task(handle, launch.task);
            }
            event::Type::LaunchGroup => {
                let Some(group) = event.launch_group else { return missing(kind, "launch_group") };
                for task in &group.task_group.tasks {
                    info!(task_id = %task.task_id.value, "launch in group");
                    self.unacked.add_task(task.clone());
                }
                self.executor.launch_task_group(handle, group.task_group);
            }
            event::Type::Kill => {
                let Some(kill) = event.kill else { return missing(kind, "kill") };
                info!(task_id = %kill.task_id.value, "kill");
                self.executor.kill_task(handle, kill.task_id, kill.kill_policy);
            }
            event::Type::Acknowledged => {
                let Some(ack) = event.acknowledged else { return missing(kind, "acknowledged") };
                match self.unacked.acknowledge(&ack.task_id.value, &ack.uuid, std_now()) {
                    Acked::Update { latency, terminal } => {
                        debug!(task_id = %ack.task_id.value, ?latency, terminal, "acknowledged");
                        let metrics = &self.config.metrics;
                        metrics.updates_acknowledged.inc();
                        metrics.ack_latency.observe(latency.as_secs_f64());
                        metrics.updates_unacknowledged.set(self.unacked.len() as i64);
                        self.executor.acknowledged(handle, &ack.task_id, &ack.uuid);
                    }
                    Acked::Unknown => debug!(task_id = %ack.task_id.value, "acknowledgement for an unknown update"),
                }
                return Some(Input::Acknowledged { unacked: self.unacked.len() });
            }
            event::Type::Message => {
                let Some(message) = event.message else { return missing(kind, "message") };
                self.executor.framework_message(handle, message.data);
            }
            event::Type::Error => {
                let message = event.error.map(|e| e.message).unwrap_or_default();
                self.executor.error(handle, &message);
            }
            event::Type::Shutdown => {
                info!("SHUTDOWN from the agent");
                return Some(Input::AgentShutdown);
            }
            event::Type::Heartbeat => debug!("heartbeat"),
            event::Type::Unknown => {
                warn!(raw_type = ?event.r#type, "ignoring an event of a type this executor does not know")
            }
        }
        None
    }
}

fn missing(kind: event::Type, field: &str) -> Option<Input> {
    error!(event = kind.as_str_name(), field, "event without its payload; ignored");
    None
}
