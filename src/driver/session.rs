//! The driver task: subscribes, reads and dispatches events one at a time, sends calls
//! through the [`Pump`], keeps unacknowledged updates, and follows the [`Recovery`]
//! rules when the connection fails. Everything here runs on one task, so the executor's
//! callbacks never run concurrently.

use std::time::Duration;

use bytes::Bytes;
use futures_util::StreamExt;
use tokio::{
    sync::mpsc,
    time::{Instant, sleep_until},
};
use tracing::{debug, error, info, warn};

use super::{
    Command, DriverConfig, DriverError, DriverHandle, DriverStatus,
    acks::{Acked, Unacked},
    backoff::RetryBackoff,
    calls::{self, Outgoing, PendingSet, Pump, Refused},
    subscription::{Next, Recovery},
    transport::{Endpoint, EventStream},
};
use crate::{
    executor::Executor,
    proto::v1::{
        AgentId, TaskState,
        executor::{Event, event},
    },
    wire,
};

/// How a subscribed session ended.
enum Ended {
    Disconnected(String),
    Exit(DriverStatus),
}

pub(crate) struct Session<E> {
    executor: E,
    config: DriverConfig,
    handle: DriverHandle,
    commands: mpsc::UnboundedReceiver<Command>,
    endpoint: Endpoint,
    unacked: Unacked,
    pending: PendingSet,
    recovery: Recovery,
    agent_id: Option<AgentId>,
    registered: bool,
    stop_deadline: Option<Instant>,
    shutdown_deadline: Option<Instant>,
    gave_up: bool,
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
        let cap = config.retry_interval_cap.min(config.env.subscription_backoff_max).max(Duration::from_millis(1));
        let backoff = RetryBackoff::new(config.initial_retry_interval.min(cap), cap)?;
        let recovery = Recovery::new(config.env.checkpoint, config.env.recovery_timeout, backoff);
        Ok(Session {
            executor,
            config,
            handle,
            commands,
            endpoint,
            unacked: Unacked::default(),
            pending: PendingSet::default(),
            recovery,
            agent_id: None,
            registered: false,
            stop_deadline: None,
            shutdown_deadline: None,
            gave_up: false,
        })
    }

    pub async fn run(mut self) -> DriverStatus {
        let span = tracing::info_span!(
            "executor_driver",
            framework_id = %self.config.env.framework_id,
            executor_id = %self.config.env.executor_id,
        );
        let _entered = span.enter();
        let (stop_writer, stopped) = tokio::sync::oneshot::channel::<()>();
        let writer = self.config.metrics_file.clone().map(|path| {
            info!(path = %path.display(), "writing metrics");
            let stopped = async move {
                let _ = stopped.await;
            };
            tokio::spawn(crate::metrics::run_writer(
                self.config.metrics.clone(),
                path,
                self.config.metrics_interval,
                stopped,
            ))
        });
        let status = self.drive().await;
        self.config.metrics.connected.set(0);
        let _ = stop_writer.send(());
        if let Some(writer) = writer {
            let _ = writer.await;
        }
        status
    }

    async fn drive(&mut self) -> DriverStatus {
        let mut delay = Duration::ZERO;
        loop {
            let stream = match self.connect(delay).await {
                Ok(stream) => stream,
                Err(status) => return self.finish(status),
            };
            match self.serve(stream).await {
                Ended::Exit(status) => return self.finish(status),
                Ended::Disconnected(reason) => {
                    warn!(%reason, "disconnected from the agent");
                    let metrics = &self.config.metrics;
                    metrics.disconnects.inc();
                    metrics.connected.set(0);
                    metrics.flush_soon();
                    self.executor.disconnected(&self.handle);
                    match self.recovery.disconnected(std_now()) {
                        Next::RetryIn(d) => delay = d,
                        Next::GiveUp(why) => self.give_up(&why),
                    }
                }
            }
        }
    }

    fn finish(&self, status: DriverStatus) -> DriverStatus {
        if !self.unacked.is_empty() {
            warn!(unacknowledged = self.unacked.len(), ?status, "driver ended with unacknowledged updates");
        } else {
            info!(?status, "driver ended");
        }
        status
    }

    /// Earliest of the stop and shutdown deadlines.
    fn deadline(&self) -> Instant {
        let far = Instant::now() + Duration::from_secs(86_400 * 365);
        self.stop_deadline.into_iter().chain(self.shutdown_deadline).min().unwrap_or(far)
    }

    fn deadline_passed(&self) -> Option<DriverStatus> {
        let now = Instant::now();
        if self.shutdown_deadline.is_some_and(|d| now >= d) {
            warn!("the shutdown grace period passed before the executor stopped the driver; ending it");
            return Some(DriverStatus::Aborted);
        }
        if self.stop_deadline.is_some_and(|d| now >= d) {
            warn!(unacknowledged = self.unacked.len(), "stop timeout passed with updates still unacknowledged");
            return Some(DriverStatus::Stopped);
        }
        None
    }

    fn give_up(&mut self, why: &str) {
        error!(reason = %why, "giving up on the agent; shutting the executor down");
        self.gave_up = true;
        if self.shutdown_deadline.is_none() {
            self.shutdown_deadline = Some(Instant::now() + self.config.env.shutdown_grace_period);
        }
        self.executor.shutdown(&self.handle);
    }

    /// Waits `delay` then subscribes, retrying as [`Recovery`] says, while handling
    /// commands. `Err` when the driver must end.
    async fn connect(&mut self, mut delay: Duration) -> Result<EventStream, DriverStatus> {
        loop {
            let until = Instant::now() + delay;
            loop {
                if self.gave_up && self.stop_deadline.is_some() {
                    return Err(DriverStatus::Stopped);
                }
                let deadline = self.deadline();
                tokio::select! {
                    _ = sleep_until(until), if !self.gave_up => break,
                    command = self.commands.recv() => if let Some(status) = self.command(command, None) {
                        return Err(status);
                    },
                    _ = sleep_until(deadline) => if let Some(status) = self.deadline_passed() {
                        return Err(status);
                    },
                }
            }
            let included = self.unacked.uuids();
            let metrics = &self.config.metrics;
            metrics.subscription_attempts.inc();
            let call = calls::subscribe(&self.config.env, self.unacked.subscribe_message());
            let body = calls::body(&call, self.config.content_type);
            debug!(
                unacknowledged_updates = included.len(),
                unacknowledged_tasks = self.unacked.task_count(),
                "subscribing"
            );
            let endpoint = self.endpoint.clone();
            let max_record_len = self.config.max_record_len;
            let attempt = endpoint.subscribe(body, max_record_len);
            tokio::pin!(attempt);
            let result = loop {
                let deadline = self.deadline();
                tokio::select! {
                    result = &mut attempt => break result,
                    command = self.commands.recv() => if let Some(status) = self.command(command, None) {
                        return Err(status);
                    },
                    _ = sleep_until(deadline) => if let Some(status) = self.deadline_passed() {
                        return Err(status);
                    },
                }
            };
            match result {
                Ok(stream) => {
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
                    return Ok(stream);
                }
                Err(error) => {
                    let outcome = match (error.status(), error.is_retryable()) {
                        (None, _) => "connection_error",
                        (Some(_), true) => "retried",
                        (Some(_), false) => "refused",
                    };
                    self.config.metrics.call("SUBSCRIBE", outcome);
                    match self.recovery.failed(std_now(), error.is_retryable()) {
                        Next::RetryIn(d) => {
                            debug!(%error, retry_in = ?d, "subscription attempt failed");
                            delay = d;
                        }
                        Next::GiveUp(why) => {
                            self.executor.error(&self.handle, &error.to_string());
                            self.give_up(&format!("{why}: {error}"));
                            delay = Duration::ZERO;
                        }
                    }
                }
            }
        }
    }

    /// Reads and dispatches events of one subscription until it ends.
    async fn serve(&mut self, mut stream: EventStream) -> Ended {
        let mut pump = Pump::start(self.endpoint.clone(), self.pending.clone(), self.config.metrics.clone());
        // Updates produced while the SUBSCRIBE was in flight were not in it.
        for uuid in self.unacked.never_sent() {
            self.post_update(&pump, uuid);
        }
        let resend_every = (self.config.resend_after / 2).max(Duration::from_millis(10));
        let mut resend = tokio::time::interval_at(Instant::now() + resend_every, resend_every);
        resend.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
        let heartbeat_every = self.config.heartbeat_interval.max(Duration::from_secs(1));
        let mut heartbeat = tokio::time::interval_at(Instant::now() + heartbeat_every, heartbeat_every);
        loop {
            let deadline = self.deadline();
            tokio::select! {
                frame = stream.frames.next() => match frame {
                    Some(Ok(record)) => match wire::decode::<Event>(&record, stream.media) {
                        Ok(event) => self.event(event),
                        Err(e) => {
                            let message = format!("malformed event from the agent: {e}");
                            error!(%message);
                            self.executor.error(&self.handle, &message);
                            return Ended::Disconnected(message);
                        }
                    },
                    Some(Err(e)) => return Ended::Disconnected(format!("the event stream is broken: {e}")),
                    None => return Ended::Disconnected("the agent closed the event stream (end of file)".to_owned()),
                },
                command = self.commands.recv() => if let Some(status) = self.command(command, Some(&pump)) {
                    return Ended::Exit(status);
                },
                Some(refused) = pump.refused.recv() => self.refused(refused),
                _ = resend.tick() => {
                    let due = self.unacked.due_for_resend(std_now(), self.config.resend_after);
                    if !due.is_empty() {
                        debug!(updates = due.len(), "resending unacknowledged updates");
                    }
                    for uuid in due {
                        self.post_update(&pump, uuid);
                    }
                },
                _ = heartbeat.tick() => pump.send(Outgoing {
                    name: "HEARTBEAT",
                    uuid: None,
                    body: calls::body(&calls::heartbeat(&self.config.env), self.config.content_type),
                }),
                _ = sleep_until(deadline) => if let Some(status) = self.deadline_passed() {
                    return Ended::Exit(status);
                },
            }
            if self.stop_deadline.is_some() && self.unacked.is_empty() {
                return Ended::Exit(DriverStatus::Stopped);
            }
        }
    }

    fn post_update(&mut self, pump: &Pump, uuid: Bytes) {
        let Some(pending) = self.unacked.get(&uuid) else { return };
        if pending.sends > 0 {
            self.config.metrics.updates_resent.inc();
        }
        let body = calls::body(&calls::update(&self.config.env, pending.status.clone()), self.config.content_type);
        pump.send(Outgoing { name: "UPDATE", uuid: Some(uuid.clone()), body });
        self.unacked.mark_sent(&uuid, std_now());
    }

    /// Handles a command from a handle; `Some` when the driver must end.
    fn command(&mut self, command: Option<Command>, pump: Option<&Pump>) -> Option<DriverStatus> {
        match command? {
            Command::Update(status) => {
                let mut status = *status;
                if status.agent_id.is_none() {
                    status.agent_id.clone_from(&self.agent_id);
                }
                let uuid = status.uuid.clone().unwrap_or_default();
                let state = TaskState::try_from(status.state).map_or("?", |s| s.as_str_name());
                debug!(task_id = %status.task_id.value, state, "status update");
                if let Ok(mut pending) = self.pending.lock() {
                    pending.insert(uuid.clone());
                }
                self.unacked.add_update(status, std_now());
                self.config.metrics.updates_sent.inc();
                self.config.metrics.updates_unacknowledged.set(self.unacked.len() as i64);
                if let Some(pump) = pump {
                    self.post_update(pump, uuid);
                }
                None
            }
            Command::Message(data) => {
                match pump {
                    Some(pump) => pump.send(Outgoing {
                        name: "MESSAGE",
                        uuid: None,
                        body: calls::body(&calls::message(&self.config.env, data), self.config.content_type),
                    }),
                    None => warn!("framework message dropped: not subscribed to the agent"),
                }
                None
            }
            Command::Stop => {
                if self.gave_up || self.unacked.is_empty() {
                    return Some(DriverStatus::Stopped);
                }
                info!(unacknowledged = self.unacked.len(), "stopping once every update is acknowledged");
                self.stop_deadline.get_or_insert(Instant::now() + self.config.stop_timeout);
                None
            }
            Command::Abort => Some(DriverStatus::Aborted),
        }
    }

    fn refused(&mut self, refused: Refused) {
        let message = format!("the agent refused {}: {}", refused.name, refused.error);
        error!(%message);
        if let Some(uuid) = &refused.uuid
            && refused.error.status() == Some(hyper::StatusCode::BAD_REQUEST)
        {
            // An update the agent will never accept would poison every later SUBSCRIBE.
            self.unacked.discard(uuid);
            if let Ok(mut pending) = self.pending.lock() {
                pending.remove(uuid);
            }
        }
        self.executor.error(&self.handle, &message);
    }

    /// Dispatches one event to the executor.
    fn event(&mut self, event: Event) {
        let kind = event.r#type();
        self.config.metrics.events.with_label_values(&[kind.as_str_name()]).inc();
        let handle = &self.handle;
        match kind {
            event::Type::Subscribed => {
                let Some(subscribed) = event.subscribed else { return missing(kind, "subscribed") };
                self.agent_id.clone_from(&subscribed.agent_info.id);
                self.recovery.subscribed();
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
                if let Ok(mut pending) = self.pending.lock() {
                    pending.remove(&ack.uuid);
                }
                match self.unacked.acknowledge(&ack.task_id.value, &ack.uuid, std_now()) {
                    Acked::Update { latency, terminal } => {
                        debug!(task_id = %ack.task_id.value, ?latency, terminal, "acknowledged");
                        let metrics = &self.config.metrics;
                        metrics.updates_acknowledged.inc();
                        metrics.ack_latency.observe(latency.as_secs_f64());
                        metrics.updates_unacknowledged.set(self.unacked.len() as i64);
                    }
                    Acked::Unknown => debug!(task_id = %ack.task_id.value, "acknowledgement for an unknown update"),
                }
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
                self.shutdown_deadline.get_or_insert(Instant::now() + self.config.env.shutdown_grace_period);
                self.executor.shutdown(handle);
            }
            event::Type::Heartbeat => debug!("heartbeat"),
            event::Type::Unknown => {
                warn!(raw_type = ?event.r#type, "ignoring an event of a type this executor does not know")
            }
        }
    }
}

fn missing(kind: event::Type, field: &str) {
    error!(event = kind.as_str_name(), field, "event without its payload; ignored");
}
