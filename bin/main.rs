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
mod exec_helper;
mod executor;
mod fetch;
mod group;
mod inbox;
mod logrotate;
mod metrics_endpoint;
mod sandbox;
mod settings;
mod signals;
mod state_file;
mod supervisor;
mod task_flags;
mod watchdog;

use std::{net::SocketAddr, os::unix::process::CommandExt, process::ExitCode, time::Duration};

use mesos_executor::{DriverConfig, ExecutorDriver, executor::process, metrics::Metrics};
use tracing::{info, warn};

use crate::{
    executor::CommandExecutor,
    settings::{LogFormat, Settings, Sub},
    supervisor::SupervisorConfig,
};

const EX_USAGE: u8 = 64;
const EX_SOFTWARE: u8 = 70;

/// How long the exit waits for the supervisor to write its last state.
const SUPERVISOR_JOIN_DEADLINE: Duration = Duration::from_secs(1);

fn init_logging(format: LogFormat) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into());
    let builder = tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr);
    match format {
        LogFormat::Human => builder.with_ansi(false).init(),
        LogFormat::Json => builder.json().init(),
    }
}

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
        return watchdog::run(parent, prefix);
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
    init_logging(args.log_format);
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
        .stdin(std::process::Stdio::null())
        .spawn();
    if let Err(e) = &watchdog {
        warn!(error = %e, "cannot start the watchdog; tasks may outlive a killed executor");
    }
    let (mode, metrics_address) = (settings.mode, settings.metrics_address);
    let (config, supervisor_config) = match settings.configs(&nonce) {
        Ok(configs) => configs,
        Err(e) => {
            eprintln!("mesos-executor: {e}");
            return ExitCode::from(EX_SOFTWARE);
        }
    };
    info!(?mode, content_type = %config.content_type, agent = %config.env.agent.authority(), "starting");
    let code = runtime.block_on(async move {
        if let Some(address) = metrics_address {
            serve_metrics(address, config.metrics.clone()).await;
        }
        run(config, supervisor_config).await
    });
    // A name lookup abandoned at its deadline may still hold a blocking thread; the
    // exit must not wait for it.
    runtime.shutdown_background();
    // Whatever happened, leave no task process behind.
    let killed = process::kill_marked_with_prefix(&format!("{nonce}/"));
    if killed > 0 {
        warn!(killed, "killed task processes still running at exit");
    }
    ExitCode::from(code)
}

/// Serves the metrics at `http://<address>/metrics` (`metrics_endpoint.rs`) for as long
/// as the runtime lives; a bind that fails is logged, and the daemon runs on without.
async fn serve_metrics(address: SocketAddr, metrics: Metrics) {
    match tokio::net::TcpListener::bind(address).await {
        Ok(listener) => {
            info!(%address, "serving metrics at /metrics");
            tokio::spawn(metrics_endpoint::serve(listener, metrics));
        }
        Err(e) => warn!(%address, error = %e, "cannot serve metrics"),
    }
}

async fn run(config: DriverConfig, supervisor_config: SupervisorConfig) -> u8 {
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
    let code = if outcome.is_success() { 0 } else { 1 };
    info!(%outcome, code, "executor ends");
    code
}
