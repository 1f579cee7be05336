//! The calls the driver sends, and the [`Pump`] that hands them to the
//! [`outbox`](super::outbox) task of the current subscription.

use std::{
    collections::HashSet,
    sync::{Arc, Mutex},
};

use bytes::Bytes;
use tokio::sync::mpsc;

use super::transport::{Endpoint, TransportError};
use crate::{
    ContentType, ExecutorEnv,
    proto::v1::{ExecutorId, FrameworkId, TaskStatus, executor::Call, executor::call},
    wire::encode,
};

fn call(env: &ExecutorEnv, kind: call::Type) -> Call {
    Call {
        executor_id: ExecutorId { value: env.executor_id.clone() },
        framework_id: FrameworkId { value: env.framework_id.clone() },
        r#type: Some(kind as i32),
        ..Default::default()
    }
}

/// SUBSCRIBE, always with a `subscribe` message even when empty (pitfall 4).
pub(crate) fn subscribe(env: &ExecutorEnv, subscribe: call::Subscribe) -> Call {
    Call { subscribe: Some(subscribe), ..call(env, call::Type::Subscribe) }
}

/// UPDATE carrying `status`.
pub(crate) fn update(env: &ExecutorEnv, status: TaskStatus) -> Call {
    Call { update: Some(call::Update { status }), ..call(env, call::Type::Update) }
}

/// MESSAGE (the data is field 2 of `Call.Message`, pitfall 7).
pub(crate) fn message(env: &ExecutorEnv, data: Bytes) -> Call {
    Call { message: Some(call::Message { data }), ..call(env, call::Type::Message) }
}

/// HEARTBEAT.
pub(crate) fn heartbeat(env: &ExecutorEnv) -> Call {
    call(env, call::Type::Heartbeat)
}

/// Encodes a call; our own messages always have descriptors, so this cannot fail in a
/// correct build, and an empty body would be refused by the agent with a clear 400.
pub(crate) fn body(call: &Call, media: ContentType) -> Bytes {
    encode(call, media).map(Bytes::from).unwrap_or_default()
}

/// One call for the pump.
#[derive(Debug)]
pub(crate) struct Outgoing {
    /// `UPDATE`, `MESSAGE` or `HEARTBEAT`.
    pub name: &'static str,
    /// The uuid of an update: skipped if acknowledged before it goes out.
    pub uuid: Option<Bytes>,
    /// The encoded call.
    pub body: Bytes,
}

/// A call the agent refused for good.
#[derive(Debug)]
pub(crate) struct Refused {
    pub name: &'static str,
    pub uuid: Option<Bytes>,
    pub error: TransportError,
}

/// Uuids of updates not acknowledged yet, shared with the pump.
pub(crate) type PendingSet = Arc<Mutex<HashSet<Bytes>>>;

/// The task that POSTs calls in order ([`super::outbox`]); dropping it ends the task.
pub(crate) struct Pump {
    queue: mpsc::UnboundedSender<Outgoing>,
    pub refused: mpsc::UnboundedReceiver<Refused>,
    task: tokio::task::JoinHandle<()>,
}

impl Pump {
    pub fn start(
        endpoint: Endpoint,
        pending: PendingSet,
        metrics: crate::metrics::Metrics,
        call_timeout: std::time::Duration,
    ) -> Self {
        let (queue, rx) = mpsc::unbounded_channel();
        let (refused_tx, refused) = mpsc::unbounded_channel();
        let task = tokio::spawn(tracing::Instrument::in_current_span(super::outbox::run(
            endpoint,
            rx,
            refused_tx,
            pending,
            metrics,
            call_timeout,
        )));
        Pump { queue, refused, task }
    }

    pub fn send(&self, outgoing: Outgoing) {
        let _ = self.queue.send(outgoing);
    }
}

impl Drop for Pump {
    fn drop(&mut self) {
        self.task.abort();
    }
}
