//! The calls the driver sends, built and encoded; the [`outbox`](super::outbox) POSTs
//! them.

use bytes::Bytes;

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
