//! The daemon's own signals: the first SIGTERM or SIGINT asks the driver for a graceful
//! shutdown (the tasks are killed and reported, exit 0); a second aborts. Each is logged
//! by name. (Who sent it is not: tokio's handlers do not see the `siginfo`, and a handler
//! of our own would need `unsafe` or a blocked signal mask that tasks would inherit.)

use mesos_executor::DriverHandle;
use tokio::signal::unix::{SignalKind, signal};
use tracing::{info, warn};

/// Waits for SIGTERM or SIGINT and shuts the driver down; on a second, aborts it.
/// Without the signal handlers (which cannot fail on Linux in practice) it logs and
/// returns.
pub async fn shut_down_on_signals(driver: DriverHandle) {
    let (mut term, mut int) = match (signal(SignalKind::terminate()), signal(SignalKind::interrupt())) {
        (Ok(term), Ok(int)) => (term, int),
        (Err(e), _) | (_, Err(e)) => {
            warn!(error = %e, "cannot handle SIGTERM and SIGINT");
            return;
        }
    };
    let first = tokio::select! { _ = term.recv() => "SIGTERM", _ = int.recv() => "SIGINT" };
    info!("{first} received: shutting down gracefully (a second SIGTERM or SIGINT aborts)");
    driver.request_shutdown();
    let second = tokio::select! { _ = term.recv() => "SIGTERM", _ = int.recv() => "SIGINT" };
    warn!("{second} received again: aborting");
    driver.abort();
}
