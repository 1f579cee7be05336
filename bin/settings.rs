//! The daemon's flags (with their `MESOS_*` environment variables) and the executor's
//! environment, validated into one [`Settings`] value before anything starts: a bad
//! value is a [`UsageError`] naming it, and the daemon exits 64.

use std::{fmt, path::PathBuf, process::ExitCode, time::Duration};

use clap::{Parser, ValueEnum};
use mesos_executor::{ContentType, DriverConfig, ExecutorEnv, proto::v1::CommandInfo, wire};
use tracing::warn;

use crate::{
    EX_USAGE, config_file, fetch,
    host_metrics::{self, MetricsAddress},
    logrotate, state_file,
    supervisor::{Mode, SupervisorConfig},
    task_flags,
};

/// What `--help` says after the flags: what the agent must provide, and what the exit
/// status means.
const AFTER_HELP: &str = "\
Environment (set by the Mesos agent):
  required: MESOS_FRAMEWORK_ID, MESOS_EXECUTOR_ID, and MESOS_SLAVE_PID (or
            MESOS_AGENT_ENDPOINT); MESOS_DIRECTORY or MESOS_SANDBOX for the sandbox
  optional: MESOS_CHECKPOINT (1/0), MESOS_RECOVERY_TIMEOUT (15mins),
            MESOS_SUBSCRIPTION_BACKOFF_MAX (2secs), MESOS_EXECUTOR_SHUTDOWN_GRACE_PERIOD
            (5secs), MESOS_EXECUTOR_AUTHENTICATION_TOKEN, MESOS_DOMAIN_SOCKET,
            LIBPROCESS_SSL_* (https)

Exit status:
  0   normal end: the task is done (drop-in mode), every task group is done
      (default mode), SHUTDOWN from the agent, or SIGTERM/SIGINT
  1   the agent was lost, never reached, or refused us; or the shutdown grace
      period passed
  64  bad usage: an unknown flag, a bad flag value, or a bad MESOS_* variable
  70  internal failure: the runtime cannot start";

/// Runs Mesos tasks: a drop-in for the agent's command executor, or a framework's
/// custom executor for commands and task groups. Every flag can also be given as the
/// environment variable named in brackets, as stout flags can.
#[derive(Debug, Parser)]
#[command(name = "mesos-executor", version, after_help = AFTER_HELP)]
pub struct Args {
    /// A file of options for this host: TOML, one `flag_name = value` a line, under the
    /// flags and their environment forms (default: /etc/mesos-executor/config.toml when
    /// it exists; MESOS_EXECUTOR_CONFIG names another, outside drop-in mode).
    #[arg(long, value_name = "PATH")]
    config: Option<PathBuf>,
    /// Directory of Mesos helper programs. The agent passes it when it starts its
    /// command executor; its presence selects the drop-in command executor mode.
    #[arg(long = "launcher_dir", alias = "launcher-dir", env = "MESOS_LAUNCHER_DIR")]
    launcher_dir: Option<PathBuf>,
    /// The sandbox path inside the task's container (image tasks only; unused here).
    #[arg(long = "sandbox_directory", alias = "sandbox-directory", env = "MESOS_SANDBOX_DIRECTORY")]
    sandbox_directory: Option<PathBuf>,
    /// Working directory of tasks (default: the sandbox, MESOS_SANDBOX; in custom mode
    /// each task's own directory beneath it).
    #[arg(long = "working_directory", alias = "working-directory", env = "MESOS_WORKING_DIRECTORY")]
    working_directory: Option<PathBuf>,
    /// Root filesystem of an image task. Images are not supported: such tasks get
    /// TASK_ERROR.
    #[arg(long, env = "MESOS_ROOTFS")]
    rootfs: Option<PathBuf>,
    /// Run tasks as this user when their CommandInfo names none (needs root).
    #[arg(long, env = "MESOS_USER")]
    user: Option<String>,
    /// A CommandInfo in JSON that replaces the task's command (as upstream's flag).
    #[arg(long = "task_command", alias = "task-command", env = "MESOS_TASK_COMMAND")]
    task_command: Option<String>,
    /// `command` (one task, exit after it), `default` (task groups, as upstream's
    /// `mesos-default-executor`: exit after the last group) or `custom` (many tasks and
    /// task groups, until SHUTDOWN). Default: `default` when the program is named
    /// `mesos-default-executor`, else `command` when --launcher_dir is given, else
    /// `custom`.
    #[arg(long, value_enum, env = "MESOS_EXECUTOR_MODE")]
    mode: Option<ModeArg>,
    /// Encoding spoken to the agent.
    #[arg(
        long = "content_type",
        alias = "content-type",
        value_enum,
        default_value = "protobuf",
        env = "MESOS_EXECUTOR_CONTENT_TYPE"
    )]
    content_type: MediaArg,
    /// Where to write the metrics in Prometheus text format (default:
    /// `mesos-executor.prom` in the sandbox).
    #[arg(long = "metrics_file", alias = "metrics-file", env = "MESOS_EXECUTOR_METRICS_FILE")]
    metrics_file: Option<PathBuf>,
    /// Interval between metrics file writes, as a stout duration (`10secs`, `500ms`).
    #[arg(
        long = "metrics_interval",
        alias = "metrics-interval",
        default_value = "10secs",
        env = "MESOS_EXECUTOR_METRICS_INTERVAL"
    )]
    metrics_interval: String,
    /// Write the metrics file into this shared directory (node_exporter's textfile
    /// collector) instead, under a name unique to the executor, removed when it ends.
    #[arg(long = "metrics_dir", alias = "metrics-dir", env = "MESOS_EXECUTOR_METRICS_DIR")]
    metrics_dir: Option<PathBuf>,
    /// Also serve the metrics at `http://<address>/metrics` (off by default): such as
    /// `127.0.0.1:9105`, port 0 for one the system chooses (logged), or `unix:<path>`
    /// for a unix socket (relative: in the sandbox; ending in `/`: a directory, where
    /// the socket gets a name of the executor's own).
    #[arg(
        long = "metrics_address",
        alias = "metrics-address",
        env = "MESOS_EXECUTOR_METRICS_ADDRESS",
        value_parser = host_metrics::parse_address
    )]
    metrics_address: Option<MetricsAddress>,
    /// Idle time before TCP keepalive probes start on connections to the agent, as a
    /// stout duration; a vanished agent host is noticed after about 2.5 times this.
    #[arg(
        long = "keepalive_idle",
        alias = "keepalive-idle",
        default_value = "10secs",
        env = "MESOS_EXECUTOR_KEEPALIVE_IDLE"
    )]
    keepalive_idle: String,
    /// How long the executor waits for the acknowledgement of its last updates when it
    /// ends on its own (a drop-in whose task is done), as a stout duration; still
    /// unacknowledged then, it exits 1, as upstream's command executor does after 60 s.
    #[arg(long = "ack_timeout", alias = "ack-timeout", default_value = "60secs", env = "MESOS_EXECUTOR_ACK_TIMEOUT")]
    ack_timeout: String,
    /// Internal: run as the watchdog of the daemon with this pid.
    #[arg(long, hide = true, requires = "watchdog_marker")]
    pub watchdog: Option<u32>,
    /// Internal: the task marker prefix the watchdog cleans up.
    #[arg(long = "watchdog_marker", hide = true)]
    pub watchdog_marker: Option<String>,
    /// Internal: files the watchdog removes once the daemon is gone.
    #[arg(long = "watchdog_remove", hide = true)]
    pub watchdog_remove: Vec<PathBuf>,
    /// A CA bundle (PEM) that task URI downloads trust besides the system's roots.
    /// Downloads never use the agent link's TLS settings.
    #[arg(long = "fetcher_ca_file", alias = "fetcher-ca-file", env = "MESOS_EXECUTOR_FETCHER_CA_FILE")]
    fetcher_ca_file: Option<PathBuf>,
    /// How long a task URI download may send no byte before it fails, as a stout
    /// duration (upstream's agent flag of the same name).
    #[arg(
        long = "fetcher_stall_timeout",
        alias = "fetcher-stall-timeout",
        default_value = "1mins",
        env = "MESOS_EXECUTOR_FETCHER_STALL_TIMEOUT"
    )]
    fetcher_stall_timeout: String,
    /// An Environment in JSON that the agent's isolators computed for the task (resolved
    /// secrets, ...), over the executor's environment and under the task's own.
    #[arg(long = "task_environment", alias = "task-environment", env = "MESOS_TASK_ENVIRONMENT")]
    task_environment: Option<String>,
    /// Supplementary group ids for the task, comma-separated (needs root).
    #[arg(
        long = "task_supplementary_groups",
        alias = "task-supplementary-groups",
        env = "MESOS_TASK_SUPPLEMENTARY_GROUPS"
    )]
    task_supplementary_groups: Option<String>,
    /// A CapabilityInfo in JSON: the task's effective capabilities (needs root).
    #[arg(long = "effective_capabilities", alias = "effective-capabilities", env = "MESOS_EFFECTIVE_CAPABILITIES")]
    effective_capabilities: Option<String>,
    /// A CapabilityInfo in JSON: the task's bounding set (needs root).
    #[arg(long = "bounding_capabilities", alias = "bounding-capabilities", env = "MESOS_BOUNDING_CAPABILITIES")]
    bounding_capabilities: Option<String>,
    /// The slave end of a TTY: the task's stdin, stdout and stderr, and its controlling
    /// terminal in a session of its own.
    #[arg(long = "tty_slave_path", alias = "tty-slave-path", env = "MESOS_TTY_SLAVE_PATH")]
    tty_slave_path: Option<String>,
    /// The containerizer's launch info for the task, in JSON (environment, working
    /// directory, groups, capabilities and TTY are honoured; anything else refuses tasks).
    #[arg(long = "task_launch_info", alias = "task-launch-info", env = "MESOS_TASK_LAUNCH_INFO")]
    task_launch_info: Option<String>,
    /// Log format on stderr.
    #[arg(
        long = "log_format",
        alias = "log-format",
        value_enum,
        default_value = "human",
        env = "MESOS_EXECUTOR_LOG_FORMAT"
    )]
    pub log_format: LogFormat,
    /// Which log lines to write, as `RUST_LOG` says it (`info`, `debug`,
    /// `mesos_executor=debug,info`); `RUST_LOG` is read in both modes (default: `info`).
    #[arg(long = "log_filter", alias = "log-filter", env = "RUST_LOG")]
    pub log_filter: Option<String>,
    /// Most tasks running at once (off by default): a LAUNCH over it, or a LAUNCH_GROUP
    /// that would cross it, gets TASK_FAILED (REASON_CONTAINER_LIMITATION) at once.
    #[arg(long = "max_tasks", alias = "max-tasks", env = "MESOS_EXECUTOR_MAX_TASKS", value_parser = clap::value_parser!(u32).range(1..))]
    max_tasks: Option<u32>,
    /// Where the state file for operators goes (default: `mesos-executor-state.json` in
    /// the sandbox).
    #[arg(long = "state_file", alias = "state-file", env = "MESOS_EXECUTOR_STATE_FILE")]
    state_file: Option<PathBuf>,
    /// Rotate each task's stdout and stderr at this size (custom mode), a stout byte size
    /// such as `10MB`; off by default, as upstream's files.
    #[arg(long = "task_log_max_size", alias = "task-log-max-size", env = "MESOS_EXECUTOR_TASK_LOG_MAX_SIZE")]
    task_log_max_size: Option<String>,
    /// Rotated files kept beside the current `stdout` and `stderr` (with
    /// `--task_log_max_size`).
    #[arg(
        long = "task_log_max_files",
        alias = "task-log-max-files",
        env = "MESOS_EXECUTOR_TASK_LOG_MAX_FILES",
        default_value_t = 5
    )]
    task_log_max_files: usize,
    #[command(subcommand)]
    pub command: Option<Sub>,
}

/// What else the binary does.
#[derive(Debug, clap::Subcommand)]
pub enum Sub {
    /// Print an executor's state file as a table.
    State {
        /// The executor's sandbox (its state file is `mesos-executor-state.json` there).
        #[arg(long)]
        sandbox: Option<PathBuf>,
        /// The state file itself.
        #[arg(long = "state_file", alias = "state-file")]
        state_file: Option<PathBuf>,
    },
}

#[derive(Debug, Clone, Copy, ValueEnum)]
enum ModeArg {
    Command,
    Default,
    Custom,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
enum MediaArg {
    Protobuf,
    Json,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum LogFormat {
    Human,
    Json,
}

/// A flag or variable with a bad value; the message names it.
#[derive(Debug)]
pub struct UsageError(String);

impl fmt::Display for UsageError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for UsageError {}

/// The flags, or the exit for `--help`, `--version` (0) and bad usage or a bad config
/// file (64, where clap would say 2); with the flags dropped as unknown (`task_flags.rs`).
pub fn parse_args() -> Result<(Args, Vec<String>), ExitCode> {
    let argv: Vec<String> = std::env::args_os().map(|a| a.to_string_lossy().into_owned()).collect();
    parse_from(argv, |name| std::env::var_os(name)).map_err(|e| match e {
        ParseError::Flags(e) => {
            let _ = e.print();
            match e.kind() {
                clap::error::ErrorKind::DisplayHelp | clap::error::ErrorKind::DisplayVersion => ExitCode::SUCCESS,
                _ => ExitCode::from(EX_USAGE),
            }
        }
        ParseError::Config(e) => {
            eprintln!("mesos-executor: {e}");
            ExitCode::from(EX_USAGE)
        }
    })
}

/// Why the command line (with the host's config file) was not read.
#[derive(Debug)]
enum ParseError {
    Flags(clap::Error),
    Config(config_file::ConfigError),
}

/// [`parse_args`] of `argv`: the mode named by the program (`mesos-default-executor`)
/// unless `--mode` says otherwise; no flag read from the environment in the modes the
/// agent starts on its own (`RUST_LOG` excepted); the host's config file under the flags
/// and their environment forms.
fn parse_from(
    argv: Vec<String>,
    env: impl Fn(&str) -> Option<std::ffi::OsString>,
) -> Result<(Args, Vec<String>), ParseError> {
    use clap::{CommandFactory, FromArgMatches};
    let (argv, dropped) = task_flags::drop_unknown(argv, &task_flags::known_flags(&Args::command()));
    let mut command = Args::command();
    let agent_started = drop_in(&argv) || default_executor(&argv);
    let watchdog = argv.iter().any(|a| a.starts_with("--watchdog="));
    if watchdog {
        // The watchdog takes its orders from its command line alone (main.rs starts it
        // with an empty environment too).
        command = command.mut_args(|arg| arg.env(None::<&'static str>));
    } else if agent_started {
        // Upstream's command and default executors read their flags from their command
        // line alone, and the agent merges the task's own environment into a drop-in's:
        // a task variable named like a flag (MESOS_USER, MESOS_TASK_COMMAND, ...) must
        // change nothing. RUST_LOG excepted: it filters the executor's own log (in the
        // task's sandbox), as it always has in every mode.
        command =
            command.mut_args(|arg| if arg.get_id() == "log_filter" { arg } else { arg.env(None::<&'static str>) });
    }
    // The host's file, under the flags and their environment forms; never for the
    // watchdog, which must start whatever the file says.
    if !watchdog {
        let (path, required) = config_file::locate(&argv, agent_started, env);
        let entries = config_file::read(&path, required).map_err(ParseError::Config)?;
        if let Some(entries) = entries {
            command = config_file::apply(command, &path, &entries, |key, value| {
                checked_value(key, value).map_err(|e| e.to_string())
            })
            .map_err(ParseError::Config)?;
        }
    }
    let by_name = named_default_executor(&argv);
    let mut args =
        command.try_get_matches_from(argv).and_then(|m| Args::from_arg_matches(&m)).map_err(ParseError::Flags)?;
    if by_name && args.mode.is_none() {
        args.mode = Some(ModeArg::Default);
    }
    Ok((args, dropped))
}

/// The program's name (argv[0]'s file name) under which the agent starts its default
/// executor: `<launcher_dir>/mesos-default-executor --launcher_dir=...` (upstream
/// `src/launcher/default_executor.cpp`; the agent's `Slave::getExecutorInfo` names it).
pub const DEFAULT_EXECUTOR_NAME: &str = "mesos-default-executor";

/// Whether argv[0] is the default executor's name.
fn named_default_executor(argv: &[String]) -> bool {
    argv.first().is_some_and(|a| std::path::Path::new(a).file_name().is_some_and(|n| n == DEFAULT_EXECUTOR_NAME))
}

/// Whether the command line makes this the default executor: by its name, or
/// `--mode=default`.
fn default_executor(argv: &[String]) -> bool {
    let args = argv.get(1..).unwrap_or_default();
    named_default_executor(argv)
        || args.iter().any(|a| a == "--mode=default")
        || args.windows(2).any(|w| w[0] == "--mode" && w[1] == "default")
}

/// Whether the command line makes this a drop-in command executor: `--launcher_dir`
/// (as the agent starts one) or `--mode=command`.
fn drop_in(argv: &[String]) -> bool {
    let flagged = |a: &String| {
        ["--launcher_dir", "--launcher-dir"].iter().any(|f| a == f || a.starts_with(&format!("{f}=")))
            || a == "--mode=command"
    };
    let args = argv.get(1..).unwrap_or_default();
    args.iter().any(flagged) || args.windows(2).any(|w| w[0] == "--mode" && w[1] == "command")
}

/// The flags clap holds as strings because their values are stout durations and byte
/// sizes; [`checked_value`] and [`Settings::validate`] parse them alike.
const DURATION_FLAGS: [&str; 4] = ["metrics_interval", "keepalive_idle", "ack_timeout", "fetcher_stall_timeout"];

/// The least value of the duration flag `name`.
fn least_duration(name: &str) -> Duration {
    if name == "keepalive_idle" { Duration::from_secs(1) } else { Duration::from_millis(1) }
}

/// Checks a value from the host's config file with the parser [`Settings::validate`]
/// uses for its flag (clap's own parser has checked the rest), so that a bad duration or
/// size is reported with the file and the line (`config_file::apply`), not later as if it
/// came from the command line.
///
/// # Errors
/// The value does not parse, as the flag's error says.
pub fn checked_value(name: &str, value: &str) -> Result<(), UsageError> {
    if DURATION_FLAGS.contains(&name) {
        duration_flag(name, value).map(drop)
    } else if name == "task_log_max_size" {
        size_flag(value).map(drop)
    } else {
        Ok(())
    }
}

/// `--task_log_max_size`: a stout byte size.
fn size_flag(value: &str) -> Result<u64, UsageError> {
    logrotate::parse_bytes(value).map_err(|e| UsageError(format!("--task_log_max_size: {e}")))
}

/// A flag holding a stout duration of at least its [`least_duration`].
fn duration_flag(name: &str, value: &str) -> Result<Duration, UsageError> {
    let min = least_duration(name);
    match mesos_executor::env::parse_duration(value) {
        Ok(d) if d >= min => Ok(d),
        Ok(_) => Err(UsageError(format!("--{name}={value:?} is shorter than {min:?}"))),
        Err(why) => Err(UsageError(format!("--{name}={value:?} is not a duration such as 10secs or 500ms ({why})"))),
    }
}

/// Everything the daemon was asked to do, validated.
#[derive(Debug)]
pub struct Settings {
    pub mode: Mode,
    /// The agent's variables.
    pub env: ExecutorEnv,
    pub content_type: ContentType,
    pub task_flags: task_flags::TaskFlags,
    /// `--task_command`.
    pub task_command: Option<CommandInfo>,
    pub metrics_file: Option<PathBuf>,
    pub metrics_interval: Duration,
    /// `--metrics_dir`: the executor's file in the shared directory, removed at exit.
    pub host_metrics_file: Option<PathBuf>,
    /// `--metrics_address`, resolved: serve the metrics there too.
    pub metrics_address: Option<MetricsAddress>,
    /// Files of this executor's alone that its watchdog removes when the daemon dies
    /// however it dies (the shared metrics file; main.rs adds the socket it bound).
    pub cleanup: Vec<PathBuf>,
    pub keepalive_idle: Duration,
    /// `--ack_timeout`.
    pub ack_timeout: Duration,
    pub fetcher_stall: Duration,
    pub fetcher_ca_file: Option<PathBuf>,
    pub log_rotation: Option<logrotate::Rotation>,
    /// The executor's sandbox.
    pub sandbox: PathBuf,
    pub working_directory: Option<PathBuf>,
    pub user: Option<String>,
    pub max_tasks: Option<usize>,
    pub state_file: PathBuf,
}

impl Settings {
    /// Checks every flag and the executor's environment.
    ///
    /// # Errors
    /// The first bad value, named.
    pub fn validate(args: Args) -> Result<Settings, UsageError> {
        let raw = task_flags::Raw {
            rootfs: args.rootfs.as_deref().and_then(|p| p.to_str()),
            sandbox_directory: args.sandbox_directory.as_deref().and_then(|p| p.to_str()),
            task_environment: args.task_environment.as_deref(),
            task_supplementary_groups: args.task_supplementary_groups.as_deref(),
            effective_capabilities: args.effective_capabilities.as_deref(),
            bounding_capabilities: args.bounding_capabilities.as_deref(),
            tty_slave_path: args.tty_slave_path.as_deref(),
            task_launch_info: args.task_launch_info.as_deref(),
        };
        let task_flags = task_flags::TaskFlags::parse(&raw).map_err(|e| UsageError(e.to_string()))?;
        if let Some(refusal) = &task_flags.refusal {
            warn!(%refusal, "tasks will be refused");
        }
        let env = ExecutorEnv::from_process().map_err(|e| UsageError(format!("bad executor environment: {e}")))?;
        let task_command = args
            .task_command
            .as_deref()
            .map(|json| wire::decode::<CommandInfo>(json.as_bytes(), ContentType::Json))
            .transpose()
            .map_err(|e| UsageError(format!("--task_command is not a CommandInfo in JSON: {e}")))?;
        let fetcher_stall = duration_flag("fetcher_stall_timeout", &args.fetcher_stall_timeout)?;
        let metrics_interval = duration_flag("metrics_interval", &args.metrics_interval)?;
        let keepalive_idle = duration_flag("keepalive_idle", &args.keepalive_idle)?;
        let ack_timeout = duration_flag("ack_timeout", &args.ack_timeout)?;
        let log_rotation = args
            .task_log_max_size
            .as_deref()
            .map(size_flag)
            .transpose()?
            .map(|max_size| logrotate::Rotation { max_size, max_files: args.task_log_max_files });
        let mode = match args.mode {
            Some(ModeArg::Command) => Mode::Command,
            Some(ModeArg::Default) => Mode::Default,
            Some(ModeArg::Custom) => Mode::Custom,
            None if args.launcher_dir.is_some() => Mode::Command,
            None => Mode::Custom,
        };
        if log_rotation.is_some() && mode == Mode::Command {
            warn!("--task_log_max_size is for custom and default modes: a drop-in task's output is the executor's own");
        }
        // The executor's sandbox; tasks run in it (drop-in) or in directories of their
        // own beneath it (custom), unless the operator names a working directory.
        let sandbox =
            env.sandbox.clone().or_else(|| std::env::current_dir().ok()).unwrap_or_else(|| PathBuf::from("."));
        let working_directory = args.working_directory.clone().or_else(|| task_flags.working_directory.clone());
        let state_file = args.state_file.unwrap_or_else(|| sandbox.join(state_file::FILE_NAME));
        let (framework_id, executor_id) = (env.framework_id.as_str(), env.executor_id.as_str());
        let host_metrics_file =
            args.metrics_dir.map(|dir| dir.join(host_metrics::file_name(framework_id, executor_id)));
        if host_metrics_file.is_some() && args.metrics_file.is_some() {
            warn!("--metrics_dir wins over --metrics_file: the metrics go to the shared directory");
        }
        let metrics_address = args.metrics_address.map(|a| a.resolve(&sandbox, framework_id, executor_id));
        // The socket, once bound, is added by main.rs: only one this daemon made.
        let cleanup: Vec<PathBuf> = host_metrics_file.iter().cloned().collect();
        Ok(Settings {
            mode,
            env,
            content_type: match args.content_type {
                MediaArg::Protobuf => ContentType::Protobuf,
                MediaArg::Json => ContentType::Json,
            },
            task_flags,
            task_command,
            metrics_file: args.metrics_file,
            metrics_interval,
            host_metrics_file,
            metrics_address,
            cleanup,
            keepalive_idle,
            ack_timeout,
            fetcher_stall,
            fetcher_ca_file: args.fetcher_ca_file,
            log_rotation,
            sandbox,
            working_directory,
            user: args.user,
            max_tasks: args.max_tasks.and_then(|n| usize::try_from(n).ok()),
            state_file,
        })
    }

    /// The driver's configuration and the supervisor's, for the run marked `nonce`.
    ///
    /// # Errors
    /// The tasks metric cannot be registered (an internal failure).
    pub fn configs(self, nonce: &str) -> Result<(DriverConfig, SupervisorConfig), String> {
        let mut config = DriverConfig::new(self.env);
        // Every series names its executor: many executors' files share a directory, and
        // scrapes of many endpoints are told apart.
        config.metrics = mesos_executor::metrics::Metrics::with_labels(&[
            ("framework_id", config.env.framework_id.as_str()),
            ("executor_id", config.env.executor_id.as_str()),
        ])
        .map_err(|e| format!("cannot label the metrics: {e}"))?;
        if let Some(path) = self.host_metrics_file {
            config.metrics_file = Some(path);
        } else if let Some(path) = self.metrics_file {
            config.metrics_file = Some(path);
        } else if self.mode != Mode::Custom {
            // A drop-in's environment holds the task's variables: a task must not choose
            // where the daemon (root) writes (MESOS_EXECUTOR_METRICS_FILE=/etc/...). The
            // agent's own executors take no flag from the environment.
            config.metrics_file = Some(self.sandbox.join(mesos_executor::metrics::DEFAULT_FILE_NAME));
        }
        config.metrics_interval = self.metrics_interval;
        config.keepalive_idle = self.keepalive_idle;
        config.stop_timeout = self.ack_timeout;
        config.content_type = self.content_type;
        // Per user, outside every task's directory; off in drop-in mode (one task).
        let fetch_cache = (self.mode != Mode::Command).then(|| self.sandbox.join(".fetcher-cache"));
        let helper = std::env::current_exe().unwrap_or_else(|_| PathBuf::from("/proc/self/exe"));
        let tasks_gauge = tasks_gauge(&config.metrics).map_err(|e| format!("cannot register the tasks metric: {e}"))?;
        // Only where groups run (never a drop-in's start held up by a name lookup).
        let container_ip = (self.mode != Mode::Command)
            .then(|| crate::group::container_ip(|name| std::env::var(name).ok(), crate::group::resolve_host_name))
            .flatten()
            .map(|ip| ip.to_string());
        let supervisor = SupervisorConfig {
            mode: self.mode,
            sandbox: self.sandbox,
            working_directory: self.working_directory,
            task_command: self.task_command,
            user: self.user,
            shutdown_grace: config.env.shutdown_grace_period,
            nonce: nonce.to_owned(),
            max_tasks: self.max_tasks,
            helper: helper.clone(),
            log_rotation: self.log_rotation,
            fetcher: fetch::Fetcher::new(
                helper,
                fetch::Limits { stall: self.fetcher_stall, ..fetch::Limits::default() },
                self.fetcher_ca_file,
                fetch_cache,
            ),
            task_flags: self.task_flags,
            state_file: self.state_file,
            executor_id: config.env.executor_id.clone(),
            framework_id: config.env.framework_id.clone(),
            base_env: base_env(),
            tasks_gauge,
            container_ip,
        };
        Ok((config, supervisor))
    }
}

/// The process's own environment, once, at the edge: the base of every task's. A
/// variable that is not UTF-8 cannot be passed on faithfully, so it is not.
fn base_env() -> Vec<(String, String)> {
    std::env::vars_os()
        .filter_map(|(k, v)| match (k.into_string(), v.into_string()) {
            (Ok(k), Ok(v)) => Some((k, v)),
            (k, _) => {
                warn!(variable = ?k, "an environment variable that is not UTF-8 is not passed to tasks");
                None
            }
        })
        .collect()
}

/// The daemon's own metric family beside the driver's: tasks by latest state.
fn tasks_gauge(
    metrics: &mesos_executor::metrics::Metrics,
) -> Result<mesos_executor::metrics::prometheus::IntGaugeVec, mesos_executor::metrics::prometheus::Error> {
    use mesos_executor::metrics::prometheus::{IntGaugeVec, Opts};
    let gauge = IntGaugeVec::new(Opts::new("tasks", "Tasks of this executor by latest state."), &["state"])?;
    metrics.register(Box::new(gauge.clone()))?;
    Ok(gauge)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn duration_flags_name_the_flag_and_the_bad_value() {
        assert_eq!(duration_flag("keepalive_idle", "10secs").ok(), Some(Duration::from_secs(10)));
        let short = duration_flag("keepalive_idle", "500ms").unwrap_err().to_string();
        assert!(short.contains("--keepalive_idle=\"500ms\"") && short.contains("shorter"), "{short}");
        let bad = duration_flag("metrics_interval", "soon").unwrap_err().to_string();
        assert!(bad.contains("--metrics_interval=\"soon\"") && bad.contains("not a duration"), "{bad}");
    }

    /// Every flag clap keeps as a string whose default is a duration is checked when it
    /// comes from the config file (a new such flag not added to `DURATION_FLAGS` fails here).
    #[test]
    fn the_config_files_durations_and_sizes_are_checked_as_the_flags_are() {
        use clap::CommandFactory;
        for arg in Args::command().get_arguments() {
            let default = arg.get_default_values().first().and_then(|v| v.to_str());
            if default.is_some_and(|d| mesos_executor::env::parse_duration(d).is_ok()) {
                assert!(DURATION_FLAGS.contains(&arg.get_id().as_str()), "{}", arg.get_id());
            }
        }
        for name in DURATION_FLAGS {
            assert!(checked_value(name, "soon").is_err() && checked_value(name, "10secs").is_ok(), "{name}");
        }
        assert!(checked_value("keepalive_idle", "500ms").is_err(), "its least value");
        assert!(
            checked_value("task_log_max_size", "big").is_err() && checked_value("task_log_max_size", "1MB").is_ok()
        );
        assert!(checked_value("max_tasks", "anything").is_ok(), "clap's parser checks the rest");
    }

    #[test]
    fn the_flags_parse_as_the_agent_passes_them() {
        let args = Args::try_parse_from(["mesos-executor", "--mode=custom", "--max_tasks=3", "--log_format=json"])
            .expect("valid flags");
        assert!(matches!(args.mode, Some(ModeArg::Custom)));
        assert_eq!(args.max_tasks, Some(3));
        assert!(matches!(args.log_format, LogFormat::Json));
        assert!(Args::try_parse_from(["mesos-executor", "--max_tasks=0"]).is_err(), "at least one task");
    }

    #[test]
    fn drop_in_is_told_by_the_command_line() {
        let argv = |args: &[&str]| args.iter().map(|a| (*a).to_owned()).collect::<Vec<_>>();
        assert!(drop_in(&argv(&["x", "--launcher_dir=/usr/libexec/mesos"])));
        assert!(drop_in(&argv(&["x", "--launcher-dir", "/usr/libexec/mesos"])));
        assert!(drop_in(&argv(&["x", "--mode", "command"])));
        assert!(!drop_in(&argv(&["x", "--mode=custom"])));
        assert!(!drop_in(&argv(&["--launcher_dir=/x"])), "argv[0] is not a flag");
    }

    /// The agent starts its default executor as `<launcher_dir>/mesos-default-executor
    /// --launcher_dir=...`: by that name the daemon is the default executor, not a
    /// drop-in command executor, and takes no flag from the environment.
    #[test]
    fn the_default_executor_is_told_by_its_name_or_its_mode() {
        let argv = |args: &[&str]| args.iter().map(|a| (*a).to_owned()).collect::<Vec<_>>();
        let mode = |args: &[&str]| parse_from(argv(args), |_| None).map(|(a, _)| a.mode).expect("valid flags");
        let agent = ["/var/lib/mesos/libexec/mesos-default-executor", "--launcher_dir=/usr/libexec/mesos"];
        assert!(matches!(mode(&agent), Some(ModeArg::Default)));
        assert!(matches!(mode(&["mesos-default-executor"]), Some(ModeArg::Default)));
        assert!(matches!(mode(&["x", "--mode", "default"]), Some(ModeArg::Default)));
        assert!(matches!(mode(&["mesos-default-executor", "--mode=custom"]), Some(ModeArg::Custom)), "--mode wins");
        assert!(mode(&["/usr/libexec/mesos/mesos-executor", "--launcher_dir=/x"]).is_none(), "drop-in");
        assert!(!named_default_executor(&argv(&["/x/mesos-default-executor-2"])));
        assert!(!named_default_executor(&argv(&["x", "mesos-default-executor"])), "only argv[0] names it");
        for flags in [&agent[..], &["x", "--mode=default"]] {
            assert!(default_executor(&argv(flags)), "{flags:?}: flags from the command line only");
        }
        assert!(!default_executor(&argv(&["x", "--mode=custom"])));
    }
}
