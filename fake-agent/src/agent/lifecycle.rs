//! The agent's and the executor's lives: agent restarts with recovery and the
//! re-registration window (reference §10.6), SHUTDOWN and its grace period (§10.5),
//! the registration timeout (§10.1), executor exit (§8.4), and injected faults.

use std::time::Duration;

use bytes::Bytes;
use mesos_executor::{
    ContentType,
    env::format_duration,
    proto::v1::{
        TaskState,
        executor::{Event, event},
        task_status::Reason,
    },
    wire::encode,
};
use tokio_util::sync::CancellationToken;

use super::{Agent, ExecutorState, Fault, NetState, Phase, State};
use crate::transcript::Record;

impl Agent {
    /// Restarts the agent: connections dropped and refused for `down_for`, then every
    /// request answered 503 for `recovering_for`, then SUBSCRIBE accepted and other calls
    /// 503 for the re-registration timeout. Returns when the window opens; an executor
    /// that has not resubscribed when it closes is destroyed and its tasks are lost.
    pub async fn restart(&self, down_for: Duration, recovering_for: Duration) {
        let incarnation = self.with_state(|s| {
            s.phase = Phase::Down;
            s.incarnation += 1;
            s.stream = None;
            s.stalled = None;
            s.blackhole = false;
            self.record(s, Record::Note { what: format!("agent restarting: down for {down_for:?}") });
            s.incarnation
        });
        self.inner.net.send_modify(|net| {
            net.token.cancel();
            net.up = false;
        });
        tokio::time::sleep(down_for).await;
        self.with_state(|s| {
            s.phase = Phase::Recovering;
            self.record(s, Record::Note { what: format!("agent recovering for {recovering_for:?}: answering 503") });
        });
        self.inner.net.send_replace(NetState { up: true, token: CancellationToken::new() });
        tokio::time::sleep(recovering_for).await;

        if !self.inner.config.checkpoint {
            self.with_state(|s| {
                s.phase = Phase::Running;
                s.executor = ExecutorState::Unknown;
                self.record(s, Record::Note { what: "framework does not checkpoint: executor not recovered".into() });
            });
            self.destroy_container("not recovered after agent restart");
            return;
        }
        let window = self.inner.config.reregistration_timeout;
        self.with_state(|s| {
            s.phase = Phase::Reregistering;
            if matches!(s.executor, ExecutorState::Running | ExecutorState::Registering) {
                s.executor = ExecutorState::Registering;
            }
            self.record(s, Record::Note { what: format!("agent recovered: executors may resubscribe for {window:?}") });
        });
        let agent = self.clone();
        tokio::spawn(async move {
            tokio::time::sleep(window).await;
            agent.close_reregistration_window(incarnation);
        });
    }

    fn close_reregistration_window(&self, incarnation: u64) {
        let destroy = self.with_state(|s| {
            if s.incarnation != incarnation || s.phase != Phase::Reregistering {
                return false;
            }
            s.phase = Phase::Running;
            self.record(s, Record::Note { what: "re-registration window closed".into() });
            if s.executor != ExecutorState::Registering {
                return false;
            }
            let message = format!(
                "Executor did not reregister within {}",
                format_duration(self.inner.config.reregistration_timeout)
            );
            let state = self.lost_state(TaskState::TaskGone);
            for id in s.live_task_ids() {
                self.agent_update(s, &id, state, Reason::ExecutorReregistrationTimeout, &message);
            }
            s.executor = ExecutorState::Terminated;
            true
        });
        if destroy {
            self.destroy_container("did not resubscribe within the re-registration timeout");
        }
    }

    /// Shuts the executor down: SHUTDOWN, then after the shutdown grace period the
    /// container is destroyed if the executor is still there (reference §10.5).
    pub fn shutdown(&self) {
        let proceed = self.with_state(|s| {
            if matches!(s.executor, ExecutorState::Terminated | ExecutorState::Unknown | ExecutorState::Terminating) {
                return false;
            }
            s.executor = ExecutorState::Terminating;
            self.emit(s, Event { r#type: Some(event::Type::Shutdown as i32), ..Default::default() });
            true
        });
        if !proceed {
            return;
        }
        let grace = self.inner.config.shutdown_grace_period;
        let agent = self.clone();
        tokio::spawn(async move {
            tokio::time::sleep(grace).await;
            if agent.inspect(|s| s.executor != ExecutorState::Terminated) {
                agent.destroy_container("still running after the shutdown grace period");
            }
        });
    }

    /// Destroys the executor if it has not subscribed within the registration timeout.
    pub fn arm_registration_timeout(&self) {
        let timeout = self.inner.config.registration_timeout;
        let agent = self.clone();
        tokio::spawn(async move {
            tokio::time::sleep(timeout).await;
            let destroy = agent.with_state(|s| {
                if s.subscriptions > 0 || s.executor != ExecutorState::Registering {
                    return false;
                }
                let message = format!("Executor did not register within {}", format_duration(timeout));
                for id in s.live_task_ids() {
                    agent.agent_update(s, &id, TaskState::TaskFailed, Reason::ExecutorRegistrationTimeout, &message);
                }
                s.executor = ExecutorState::Terminated;
                true
            });
            if destroy {
                agent.destroy_container("did not subscribe within the registration timeout");
            }
        });
    }

    /// The executor process ended: every task the agent still sees as live gets
    /// TASK_FAILED / REASON_EXECUTOR_TERMINATED from the agent (reference §8.4).
    pub fn executor_exited(&self, how: &str) {
        self.with_state(|s| {
            s.executor_exit = Some(how.to_owned());
            s.executor = ExecutorState::Terminated;
            s.stream = None;
            s.queued.clear();
            self.record(s, Record::Note { what: format!("executor process {how}") });
            for id in s.live_task_ids() {
                self.agent_update(s, &id, TaskState::TaskFailed, Reason::ExecutorTerminated, "Executor terminated");
            }
        });
    }

    /// Kills every process of the executor's container.
    pub fn destroy_container(&self, why: &str) {
        let killed = self.inner.container.lock().map(|c| c.destroy()).unwrap_or_default();
        if killed > 0 {
            self.note(format!("destroyed the executor's container ({why}): {killed} processes killed"));
        }
    }

    /// Sends `signal` (`TERM`, `INT`, `HUP`, `QUIT`, `USR1`, `USR2`) to the executor
    /// process, as an operator or an init system would.
    ///
    /// # Errors
    /// An unknown signal name, or no executor process.
    pub fn signal_executor(&self, signal: &str) -> Result<(), String> {
        use nix::sys::signal::Signal;
        let sig = match signal.trim_start_matches("SIG") {
            "TERM" => Signal::SIGTERM,
            "INT" => Signal::SIGINT,
            "HUP" => Signal::SIGHUP,
            "QUIT" => Signal::SIGQUIT,
            "USR1" => Signal::SIGUSR1,
            "USR2" => Signal::SIGUSR2,
            other => return Err(format!("unknown signal {other:?} (TERM, INT, HUP, QUIT, USR1, USR2)")),
        };
        let pid = self.inner.container.lock().ok().and_then(|c| c.pid).ok_or("no executor process to signal")?;
        let pid = i32::try_from(pid).map_err(|_| format!("pid {pid} out of range"))?;
        nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid), sig).map_err(|e| format!("kill {pid}: {e}"))?;
        self.note(format!("sent SIG{} to the executor", signal.trim_start_matches("SIG")));
        Ok(())
    }

    /// Injects a fault into the live event stream or the agent host.
    pub fn inject(&self, fault: Fault) {
        self.with_state(|s| {
            self.record(s, Record::Note { what: format!("fault injected: {fault:?}") });
            self.apply_fault(s, fault);
        });
    }

    fn apply_fault(&self, s: &mut State, fault: Fault) {
        match fault {
            Fault::Stall => s.stalled = Some(Vec::new()),
            Fault::Resume => {
                if let (Some(held), Some(stream)) = (s.stalled.take(), &s.stream) {
                    for (ack_uuid, record) in held {
                        if stream.send_raw(record)
                            && let Some(uuid) = ack_uuid
                        {
                            s.unacked.remove(&uuid);
                        }
                    }
                }
            }
            Fault::Blackhole => s.blackhole = true,
            Fault::Unblackhole => s.blackhole = false,
            Fault::Answer { status, count } => s.forced_answer = Some((status, count)),
            Fault::BadHttp { reply, on, count } => {
                s.bad_http = Some((reply, on, count));
                if on == super::HttpTarget::Call {
                    s.calls_reset.cancel();
                    s.calls_reset = CancellationToken::new();
                }
            }
            _ => {
                let Some(stream) = &s.stream else { return };
                let json = stream.content_type == ContentType::Json;
                match fault {
                    Fault::BadLength => {
                        stream.send_raw(Bytes::from_static(b"12x\n{\"type\":\"HE"));
                    }
                    Fault::OversizeLength => {
                        stream.send_raw(Bytes::from_static(b"10737418240\n{\"type\":"));
                    }
                    Fault::GarbageBody => {
                        let garbage: &[u8] = if json { b"{\"type\": not json" } else { b"\xff\xff\xff\xff\xff" };
                        stream.send_record(garbage);
                    }
                    Fault::UnknownEvent => {
                        let future: &[u8] = if json {
                            br#"{"type":"TELEPORT","teleport":{"destination":"mars"}}"#
                        } else {
                            b"\x08\x2a\xfa\x06\x04mars"
                        };
                        stream.send_record(future);
                    }
                    Fault::CutMidRecord => {
                        let heartbeat = Event { r#type: Some(event::Type::Heartbeat as i32), ..Default::default() };
                        let payload = encode(&heartbeat, stream.content_type).unwrap_or_default();
                        let mut partial = format!("{}\n", payload.len() + 10).into_bytes();
                        partial.extend_from_slice(&payload);
                        stream.send_raw(Bytes::from(partial));
                        s.stream = None;
                    }
                    Fault::ResetStream => {
                        stream.reset();
                        s.stream = None;
                    }
                    _ => {}
                }
            }
        }
    }
}
