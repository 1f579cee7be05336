//! `mesos-executor`: a Mesos command and task-group executor. Thin: the flags and the
//! environment into one validated [`settings::Settings`] (exit 64 when they are bad),
//! logging, the watchdog, then the driver from the library with the task supervisor
//! beside it, joined at the end. Signals are in `signals.rs`, the metrics endpoint in
//! `metrics_endpoint.rs`. The exit status comes from the driver's outcome; `--help`
//! lists the codes.
//!
//! This file is the root of a library; the program (`program.rs`) only calls [`main`].
//! The daemon is this library, `executor_daemon`, so that its log lines have targets
//! of their own (`executor_daemon::supervisor`, ...), apart from the library's
//! `mesos_executor::*` (issue 21 item 8). `RUST_LOG` matches targets by prefix, so a
//! name that began with `mesos_executor` would be switched by `RUST_LOG=mesos_executor=...`
//! too.

#![forbid(unsafe_code)]

mod book;
mod config_file;
mod exec_helper;
mod executor;
mod fetch;
mod group;
mod host_metrics;
mod inbox;
mod logging;
mod logrotate;
mod metrics_endpoint;
mod sandbox;
mod settings;
mod signals;
mod state_file;
mod supervisor;
mod task_flags;
mod watchdog;

use std::{os::unix::process::CommandExt, path::PathBuf, process::ExitCode, time::Duration};

use mesos_executor::{DriverConfig, ExecutorDriver, executor::process};
use tracing::{info, warn};

use crate::{
    executor::CommandExecutor,
    settings::{Settings, Sub},
    state_file::ReadBy,
    supervisor::SupervisorConfig,
};

const EX_USAGE: u8 = 64;
const EX_SOFTWARE: u8 = 70;

/// How long the exit waits for the supervisor to write its last state.
const SUPERVISOR_JOIN_DEADLINE: Duration = Duration::from_secs(1);

/// The program: what `mesos-executor` does, from argv and the environment to its exit
/// status.
pub fn main() -> ExitCode {
    // Before clap: the helper's environment is the task's, whose MESOS_* variables
    // must not be read as this program's flags.
    if let Some(spec) = exec_helper::spec_from_argv(std::env::args_os()) {
        return exec_helper::run(&spec);
    }
    // The fetch helper reads nothing from argv or the environment (clap would read
    // MESOS_* variables): its spec comes on stdin. See fetch/child.rs.
    if std::env::args_os().nth(1).is_some_and(|a| a == fetch::HELPER_FLAG) {
        return fetch::child::run();
    }
    let (args, dropped_flags) = match settings::parse_args() {
        Ok(parsed) => parsed,
        Err(code) => return code,
    };
    if let (Some(parent), Some(prefix)) = (args.watchdog, &args.watchdog_marker) {
        return watchdog::run(parent, prefix, &args.watchdog_remove);
    }
    if let Some(Sub::State { sandbox, state_file }) = &args.command {
        return match state_file::table(sandbox.as_deref(), state_file.as_deref()) {
            Ok(table) => {
                print!("{table}");
                ExitCode::SUCCESS
            }
            Err(e) => {
                eprintln!("mesos-executor state: {e}");
                ExitCode::from(EX_USAGE)
            }
        };
    }
    logging::init(args.log_format, args.log_filter.as_deref());
    for flag in &dropped_flags {
        warn!(%flag, "ignoring a flag this executor does not know (the agent may be newer)");
    }
    // Every flag is checked before anything starts (the runtime, the watchdog).
    let settings = match Settings::validate(args) {
        Ok(settings) => settings,
        Err(e) => {
            // Once, on stderr (where the log goes too).
            eprintln!("mesos-executor: {e}");
            return ExitCode::from(EX_USAGE);
        }
    };
    if let Err(e) = process::become_subreaper() {
        warn!(error = %e, "cannot become a child subreaper; orphaned task processes will not be reaped here");
    }
    let runtime = match tokio::runtime::Builder::new_current_thread().enable_all().build() {
        Ok(runtime) => runtime,
        Err(e) => {
            eprintln!("mesos-executor: cannot start the runtime: {e}");
            return ExitCode::from(EX_SOFTWARE);
        }
    };
    let nonce = uuid::Uuid::new_v4().simple().to_string()[..12].to_owned();
    // Bound before the watchdog starts: it is handed only a socket this daemon made (a
    // second executor with the same ids cannot bind the first's, and must not remove it).
    let endpoint = settings.metrics_address.as_ref().map(metrics_endpoint::bind);
    let socket = endpoint.as_ref().and_then(|e| e.as_ref().ok()).and_then(|b| b.socket().map(PathBuf::from));
    // Spawned from the main thread, which lives as long as the process: the watchdog's
    // parent-death signal fires when the daemon dies, however it dies.
    // Named for `ps` (argv[0] here, comm in watchdog.rs): a process run as
    // `/proc/self/exe` with comm `exe` is what security tooling flags (runc's escape).
    let program = std::env::current_exe()
        .ok()
        .filter(|p| p.exists())
        .unwrap_or_else(|| std::path::PathBuf::from("/proc/self/exe"));
    let watchdog = std::process::Command::new(program)
        .arg0(watchdog::NAME)
        .arg(format!("--watchdog={}", std::process::id()))
        .arg(format!("--watchdog_marker={nonce}/"))
        .args(settings.cleanup.iter().chain(socket.iter()).map(|path| {
            let mut arg = std::ffi::OsString::from("--watchdog_remove=");
            arg.push(path);
            arg
        }))
        .stdin(std::process::Stdio::null())
        // Nothing from the environment, which in drop-in mode holds the task's variables:
        // one of them named like a flag (`MESOS_EXECUTOR_MAX_TASKS=0`) would stop the
        // watchdog at its start, and with it the cleanup after a SIGKILL.
        .env_clear()
        .spawn();
    if let Err(e) = &watchdog {
        warn!(error = %e, "cannot start the watchdog; tasks may outlive a killed executor");
    }
    let mode = settings.mode;
    let host_metrics_file = settings.host_metrics_file.clone();
    let (config, supervisor_config) = match settings.configs(&nonce) {
        Ok(configs) => configs,
        Err(e) => {
            eprintln!("mesos-executor: {e}");
            return ExitCode::from(EX_SOFTWARE);
        }
    };
    // Every line from here on is in the executor's span (JSON lines carry its ids); the
    // human format names the ids on this line only (logging.rs).
    let span = logging::executor_span(&config.env.framework_id, &config.env.executor_id);
    let _in_span = span.enter();
    info!(
        framework_id = %config.env.framework_id,
        executor_id = %config.env.executor_id,
        ?mode,
        content_type = %config.content_type,
        agent = %config.env.agent.authority(),
        "starting"
    );
    // A task of another user could put its own file in their place (README, "Files in
    // the sandbox"); in --metrics_dir, which node_exporter reads whole, beside it too.
    let metrics_read_by = if host_metrics_file.is_some() { ReadBy::EveryFile } else { ReadBy::ItsName };
    for (file, path, read) in [
        ("state", Some(&supervisor_config.state_file), ReadBy::ItsName),
        ("metrics", config.metrics_file.as_ref(), metrics_read_by),
    ] {
        if let Some(path) = path.filter(|p| state_file::forgeable_by_others(p, read) == Some(true)) {
            match read {
                ReadBy::ItsName => warn!(
                    file,
                    path = %path.display(),
                    "the file's directory is writable by other users: a task could forge it"
                ),
                ReadBy::EveryFile => warn!(
                    file,
                    path = %path.display(),
                    "the metrics directory is writable by other users: any of them can add series with this \
                     executor's labels, or take its file's name first"
                ),
            }
        }
    }
    // The name is the ids' (host_metrics.rs): taken, it is shared, or a killed executor's.
    if let Some(path) = host_metrics_file.as_ref().filter(|p| p.symlink_metadata().is_ok()) {
        warn!(
            path = %path.display(),
            "the metrics file is there already: an executor with the same ids shares it (whichever ends first \
             removes it until the other's next write), or a killed one left it"
        );
    }
    if let Some(endpoint) = &endpoint {
        metrics_endpoint::report(endpoint);
    }
    let code = runtime.block_on(async move {
        if let Some(Ok(bound)) = endpoint {
            tokio::spawn(metrics_endpoint::serve_bound(bound, config.metrics.clone()));
        }
        run(config, supervisor_config, mode).await
    });
    // A name lookup abandoned at its deadline may still hold a blocking thread; the
    // exit must not wait for it.
    runtime.shutdown_background();
    // What this executor put in shared places goes with it (the driver has written its
    // last metrics by now); after a SIGKILL the watchdog removes them.
    for path in host_metrics_file.iter().chain(socket.iter()) {
        host_metrics::remove(path);
    }
    // Whatever happened, leave no task process behind.
    let killed = process::kill_marked_with_prefix(&format!("{nonce}/"));
    if killed > 0 {
        warn!(killed, "killed task processes still running at exit");
    }
    ExitCode::from(code)
}

async fn run(config: DriverConfig, supervisor_config: SupervisorConfig, mode: supervisor::Mode) -> u8 {
    let mut parts = None;
    let driver = ExecutorDriver::with_handle(config, |handle| {
        let (executor, supervisor, inbox) = CommandExecutor::new(supervisor_config, handle);
        parts = Some((supervisor, inbox));
        executor
    });
    let Some((supervisor, inbox)) = parts else { return EX_SOFTWARE };
    let supervisor = tokio::spawn(supervisor.run(inbox));
    tokio::spawn(signals::shut_down_on_signals(driver.handle()));
    let outcome = match driver.run_async().await {
        Ok(outcome) => outcome,
        Err(e) => {
            // Bad TLS files or token: the environment is at fault.
            eprintln!("mesos-executor: cannot start the driver: {e}");
            return EX_USAGE;
        }
    };
    // The driver has dropped the executor: the supervisor ends once it has written the
    // state file's last changes (bounded: it may be busy).
    if tokio::time::timeout(SUPERVISOR_JOIN_DEADLINE, supervisor).await.is_err() {
        warn!(deadline = ?SUPERVISOR_JOIN_DEADLINE, "the supervisor did not end in time");
    }
    let code = exit_code(mode, &outcome);
    info!(%outcome, code, "executor ends");
    code
}

/// 0 for a normal end, else 1. Default mode, having stopped on its own, ends normally
/// even with updates the agent never acknowledged: upstream's default executor
/// terminates after its 60 s fail-safe and returns `EXIT_SUCCESS`
/// (`src/launcher/default_executor.cpp`, `_shutdown`, `main`), where the command
/// executor exits 1.
fn exit_code(mode: supervisor::Mode, outcome: &mesos_executor::DriverOutcome) -> u8 {
    let unacknowledged_only = outcome.status == mesos_executor::DriverStatus::Stopped
        && outcome.reason.is_none()
        && outcome.unacknowledged > 0;
    if outcome.is_success() || (mode == supervisor::Mode::Default && unacknowledged_only) { 0 } else { 1 }
}

#[cfg(test)]
mod tests {
    use mesos_executor::{DriverOutcome, DriverStatus, ShutdownReason};

    use super::{exit_code, supervisor::Mode};

    #[test]
    fn only_default_mode_ends_normally_with_updates_never_acknowledged() {
        let stopped = |unacknowledged| DriverOutcome::new(DriverStatus::Stopped, None, unacknowledged);
        assert_eq!(exit_code(Mode::Default, &stopped(2)), 0, "upstream's default executor: EXIT_SUCCESS");
        assert_eq!(exit_code(Mode::Command, &stopped(2)), 1, "upstream's command executor: EXIT_FAILURE");
        assert_eq!(exit_code(Mode::Default, &stopped(0)), 0);
        let lost = DriverOutcome::new(DriverStatus::Stopped, Some(ShutdownReason::AgentLost), 0);
        assert_eq!(exit_code(Mode::Default, &lost), 1, "a lost agent is still a failure");
    }
}
