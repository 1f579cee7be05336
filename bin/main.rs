//! `mesos-executor`: a Mesos command and task-group executor. Thin: the flags and the
//! environment into one validated [`settings::Settings`] (exit 64 when they are bad),
//! logging, the watchdog, then the driver from the library with the task supervisor
//! beside it, joined at the end. Signals are in `signals.rs`, the metrics endpoint in
//! `metrics_endpoint.rs`. The exit status comes from the driver's outcome; `--help`
//! lists the codes.

#![forbid(unsafe_code)]

mod book;
mod config_file;
mod exec_helper;
mod executor;
mod fetch;
mod group;
mod host_metrics;
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

use std::{os::unix::process::CommandExt, path::PathBuf, process::ExitCode, time::Duration};

use mesos_executor::{DriverConfig, ExecutorDriver, executor::process, metrics::Metrics};
use tracing::{info, warn};

use crate::{
    executor::CommandExecutor,
    host_metrics::MetricsAddress,
    settings::{LogFormat, Settings, Sub},
    supervisor::SupervisorConfig,
};

const EX_USAGE: u8 = 64;
const EX_SOFTWARE: u8 = 70;

/// How long the exit waits for the supervisor to write its last state.
const SUPERVISOR_JOIN_DEADLINE: Duration = Duration::from_secs(1);

/// Logging on stderr, filtered by `--log_filter` (or `RUST_LOG`); a filter that does not
/// parse is `info`, as a bad `RUST_LOG` always was.
fn init_logging(format: LogFormat, filter: Option<&str>) {
    let filter = filter
        .and_then(|f| tracing_subscriber::EnvFilter::try_new(f).ok())
        .unwrap_or_else(|| tracing_subscriber::EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr);
    match format {
        LogFormat::Human => builder.with_ansi(false).init(),
        LogFormat::Json => builder.json().init(),
    }
}

fn main() -> ExitCode {
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
    init_logging(args.log_format, args.log_filter.as_deref());
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
        .args(settings.cleanup.iter().map(|path| {
            let mut arg = std::ffi::OsString::from("--watchdog_remove=");
            arg.push(path);
            arg
        }))
        .stdin(std::process::Stdio::null())
        .spawn();
    if let Err(e) = &watchdog {
        warn!(error = %e, "cannot start the watchdog; tasks may outlive a killed executor");
    }
    let (mode, metrics_address) = (settings.mode, settings.metrics_address.clone());
    let host_metrics_file = settings.host_metrics_file.clone();
    let (config, supervisor_config) = match settings.configs(&nonce) {
        Ok(configs) => configs,
        Err(e) => {
            eprintln!("mesos-executor: {e}");
            return ExitCode::from(EX_SOFTWARE);
        }
    };
    info!(?mode, content_type = %config.content_type, agent = %config.env.agent.authority(), "starting");
    let (code, socket) = runtime.block_on(async move {
        let socket = match metrics_address {
            Some(address) => serve_metrics(address, config.metrics.clone()).await,
            None => None,
        };
        (run(config, supervisor_config).await, socket)
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

/// Serves the metrics at `http://<address>/metrics` (`metrics_endpoint.rs`) for as long
/// as the runtime lives, logging the address (the port the system chose, for port 0);
/// a bind that fails is logged, and the daemon runs on without. Returns the socket it
/// made, to be removed at exit.
async fn serve_metrics(address: MetricsAddress, metrics: Metrics) -> Option<PathBuf> {
    let (listener, socket) = match &address {
        MetricsAddress::Tcp(address) => match tokio::net::TcpListener::bind(address).await {
            Ok(listener) => {
                let address = listener.local_addr().map_or_else(|_| address.to_string(), |a| a.to_string());
                info!(%address, "serving metrics at /metrics");
                (metrics_endpoint::Listener::Tcp(listener), None)
            }
            Err(e) => {
                warn!(%address, error = %e, "cannot serve metrics");
                return None;
            }
        },
        MetricsAddress::Unix(path) => match tokio::net::UnixListener::bind(path) {
            Ok(listener) => {
                info!(address = %format!("unix:{}", path.display()), "serving metrics at /metrics");
                (metrics_endpoint::Listener::Unix(listener), Some(path.clone()))
            }
            Err(e) => {
                warn!(address = %format!("unix:{}", path.display()), error = %e, "cannot serve metrics");
                return None;
            }
        },
    };
    tokio::spawn(metrics_endpoint::serve(listener, metrics));
    socket
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
