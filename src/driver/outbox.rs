//! Calls other than SUBSCRIBE (UPDATE, MESSAGE, HEARTBEAT), POSTed one at a time, in
//! the order they were queued, on a keep-alive connection of their own. One at a time
//! is what keeps the updates of a task in the order they were produced; real agents
//! take about a hundred updates a second, and this path carries over ten thousand.
//!
//! Each call has a deadline ([`super::DriverConfig::call_timeout`]) covering the
//! connection, the answer's head and its body. A call that fails for a reason that can
//! pass (no connection, a malformed or missing answer, 503 while the agent recovers,
//! 403 until it has caught up with our SUBSCRIBE) is tried again after a growing pause,
//! on a fresh connection where the old one is suspect; an update that is acknowledged
//! meanwhile is dropped from the queue. A call refused for good is handed back to the
//! session. The outbox lives as long as one subscription: while the agent is away
//! nothing here knocks on its door.

use std::{
    collections::HashSet,
    sync::{Arc, Mutex},
    time::Duration,
};

use bytes::Bytes;
use tokio::sync::mpsc;
use tracing::{debug, warn};

use super::transport::{CallConnection, Endpoint, TransportError};

/// First pause before retrying a call.
const FIRST_RETRY: Duration = Duration::from_millis(20);
/// Longest pause before retrying a call.
const LAST_RETRY: Duration = Duration::from_millis(500);

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

/// The task that POSTs calls in order ([`run`]); dropping it ends the task.
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
        let task = tokio::spawn(tracing::Instrument::in_current_span(run(
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

/// How a call fared.
enum Fate {
    Accepted,
    /// Not now: try again after a pause, on the same connection if `keep`.
    Retry {
        error: TransportError,
        keep: bool,
    },
    Refused(TransportError),
}

fn fate(result: Result<(), TransportError>) -> Fate {
    match result {
        Ok(()) => Fate::Accepted,
        Err(error) => match error.status() {
            // 503 while the agent finishes recovery, 404 before its routes are up, 5xx,
            // and 403 until it has caught up with our SUBSCRIBE: the connection is fine.
            Some(status) if error.is_retryable() || status == 403 => Fate::Retry { error, keep: true },
            Some(_) => Fate::Refused(error),
            None => Fate::Retry { error, keep: false },
        },
    }
}

/// Sends queued calls until the queue closes (the subscription ended).
pub(crate) async fn run(
    endpoint: Endpoint,
    mut queue: mpsc::UnboundedReceiver<Outgoing>,
    refused: mpsc::UnboundedSender<Refused>,
    pending: PendingSet,
    metrics: crate::metrics::Metrics,
    call_timeout: Duration,
) {
    let mut connection: Option<CallConnection> = None;
    let mut pause = FIRST_RETRY;
    while let Some(item) = queue.recv().await {
        loop {
            let acknowledged =
                item.uuid.as_ref().is_some_and(|u| pending.lock().map(|p| !p.contains(u)).unwrap_or(false));
            if acknowledged {
                break;
            }
            if connection.as_ref().is_some_and(CallConnection::is_closed) {
                connection = None;
            }
            let attempt = async {
                let conn = match &mut connection {
                    Some(conn) => conn,
                    empty => empty.insert(endpoint.open_calls().await?),
                };
                endpoint.post(conn, item.name, item.body.clone()).await
            };
            let result = match tokio::time::timeout(call_timeout, attempt).await {
                Ok(result) => result,
                Err(_) => Err(TransportError::Timeout { call: item.name, after: call_timeout }),
            };
            match fate(result) {
                Fate::Accepted => {
                    metrics.call(item.name, "accepted");
                    pause = FIRST_RETRY;
                    break;
                }
                Fate::Refused(error) => {
                    metrics.call(item.name, "refused");
                    let _ = refused.send(Refused { name: item.name, uuid: item.uuid.clone(), error });
                    break;
                }
                Fate::Retry { error, keep } => {
                    if keep {
                        metrics.call(item.name, "retried");
                        debug!(call = item.name, %error, retry_in = ?pause, "call not accepted yet");
                    } else {
                        metrics.call(item.name, "connection_error");
                        warn!(call = item.name, %error, retry_in = ?pause, "call failed; retrying on a new connection");
                        connection = None;
                    }
                    tokio::time::sleep(pause).await;
                    pause = (pause * 2).min(LAST_RETRY);
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {

    use super::*;

    fn status(code: u16) -> Result<(), TransportError> {
        Err(TransportError::Status { call: "UPDATE", status: code, body: String::new() })
    }

    #[test]
    fn answers_decide_the_fate_of_a_call() {
        assert!(matches!(fate(Ok(())), Fate::Accepted));
        for code in [503, 500, 404, 403] {
            assert!(matches!(fate(status(code)), Fate::Retry { keep: true, .. }), "{code}");
        }
        for code in [400, 401, 406, 415] {
            assert!(matches!(fate(status(code)), Fate::Refused(_)), "{code}");
        }
        let timeout = Err(TransportError::Timeout { call: "UPDATE", after: Duration::from_secs(1) });
        assert!(matches!(fate(timeout), Fate::Retry { keep: false, .. }), "a suspect connection is replaced");
        let answer = Err(TransportError::Answer { call: "UPDATE", reason: "length limit exceeded".into() });
        assert!(matches!(fate(answer), Fate::Retry { keep: false, .. }));
    }
}
