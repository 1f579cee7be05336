//! The executor as a process: the environment a real agent gives it (upstream
//! `executorEnvironment()`, reference §6.1), a fresh sandbox, output to files in the
//! sandbox, and container destruction that leaves no process of it behind.

use std::{
    collections::{BTreeMap, HashMap, HashSet},
    path::Path,
    process::Stdio,
};

use mesos_executor::env::{self as vars, format_duration};
use nix::{sys::signal::Signal, unistd::Pid};

use crate::config::AgentConfig;

/// `PATH` the agent gives when none is set (reference §6.2).
pub const DEFAULT_PATH: &str = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

/// Variables of the fake agent's own environment passed on to the executor, so that
/// logs and backtraces can be had. A real agent passes none of its own.
const PASSED_THROUGH: &[&str] = &["RUST_LOG", "RUST_BACKTRACE", "LLVM_PROFILE_FILE"];

/// The full `MESOS_*` environment for an executor of `config` talking to `agent`.
pub fn executor_env(config: &AgentConfig, agent: std::net::SocketAddr, sandbox: &Path) -> BTreeMap<String, String> {
    let mut env = config.executor_environment_variables.clone();
    let mut set = |k: &str, v: String| {
        env.insert(k.to_owned(), v);
    };
    set("LIBPROCESS_PORT", "0".into());
    set(vars::FRAMEWORK_ID, config.framework_id.clone());
    set(vars::EXECUTOR_ID, config.executor_id.clone());
    set(vars::DIRECTORY, sandbox.display().to_string());
    set(vars::SANDBOX, sandbox.display().to_string());
    set(vars::SLAVE_ID, config.agent_id.clone());
    set(vars::SLAVE_PID, format!("slave(1)@{agent}"));
    set(vars::AGENT_ENDPOINT, agent.to_string());
    set(vars::CHECKPOINT, if config.checkpoint { "1" } else { "0" }.into());
    set(vars::HTTP_COMMAND_EXECUTOR, "1".into());
    set(vars::SHUTDOWN_GRACE_PERIOD, format_duration(config.shutdown_grace_period));
    if config.checkpoint {
        set(vars::RECOVERY_TIMEOUT, format_duration(config.recovery_timeout));
        set(vars::SUBSCRIPTION_BACKOFF_MAX, format_duration(config.reregistration_timeout));
    }
    if let Some(tls) = &config.tls {
        set(vars::SSL_ENABLED, "true".into());
        set(vars::SSL_CA_FILE, tls.ca_file.display().to_string());
    }
    if let Some(socket) = &config.domain_socket {
        set(vars::DOMAIN_SOCKET, socket.display().to_string());
    }
    if let Some(token) = &config.auth_token {
        set(vars::AUTHENTICATION_TOKEN, token.clone());
    }
    env
}

/// A relative path with a `/` (`target/debug/my-executor`, `./run.sh`) means the
/// caller's directory, not the sandbox the executor starts in; a bare name is looked up
/// in `PATH` as usual.
///
/// # Errors
/// The current directory cannot be read.
pub fn resolve_program(program: &str) -> std::io::Result<std::path::PathBuf> {
    let path = Path::new(program);
    if path.is_absolute() || !program.contains('/') {
        return Ok(path.to_path_buf());
    }
    Ok(std::env::current_dir()?.join(path))
}

/// Where the executor's stdout and stderr go.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Output {
    /// `stdout` and `stderr` files in the sandbox, as a real agent writes them.
    #[default]
    SandboxFiles,
    /// The fake agent's own stdout and stderr.
    Inherit,
}

/// Starts `command` as the executor in its own process group with `env` and nothing
/// else of ours (but `PATH`, `RUST_LOG`, `RUST_BACKTRACE`).
///
/// # Errors
/// The command is empty, or the process cannot be started (the OS error says why).
pub fn spawn_executor(
    command: &[String],
    env: &BTreeMap<String, String>,
    sandbox: &Path,
    output: Output,
) -> std::io::Result<tokio::process::Child> {
    let (program, args) = command.split_first().ok_or_else(|| std::io::Error::other("empty executor command"))?;
    let program = resolve_program(program)?;
    let mut cmd = tokio::process::Command::new(&program);
    cmd.args(args).env_clear().envs(env).current_dir(sandbox).process_group(0).kill_on_drop(true);
    cmd.env("PATH", std::env::var("PATH").unwrap_or_else(|_| DEFAULT_PATH.to_owned()));
    for name in PASSED_THROUGH {
        if let Ok(value) = std::env::var(name) {
            cmd.env(name, value);
        }
    }
    match output {
        Output::SandboxFiles => {
            cmd.stdout(std::fs::File::create(sandbox.join("stdout"))?);
            cmd.stderr(std::fs::File::create(sandbox.join("stderr"))?);
        }
        Output::Inherit => {
            cmd.stdout(Stdio::inherit()).stderr(Stdio::inherit());
        }
    }
    cmd.stdin(Stdio::null());
    cmd.spawn()
}

/// The executor's container: its process, and a marker every process of it inherits.
#[derive(Debug, Clone, Default)]
pub struct Container {
    /// Container id given in SUBSCRIBED.
    pub id: String,
    /// The executor's pid, once started.
    pub pid: Option<u32>,
    /// `MESOS_SANDBOX=<path>`: processes whose environment holds it belong here.
    pub marker: Option<String>,
}

impl Container {
    /// A container for an executor whose sandbox is `sandbox`.
    pub fn new(sandbox: Option<&Path>) -> Self {
        Container {
            id: uuid::Uuid::new_v4().to_string(),
            pid: None,
            marker: sandbox.map(|p| format!("{}={}", vars::SANDBOX, p.display())),
        }
    }

    /// SIGKILLs every process of the container: the executor, its descendants, and any
    /// process carrying the container's marker (tasks that escaped their parents), as
    /// container destruction would. Returns how many were signalled.
    pub fn destroy(&self) -> usize {
        let victims = self.members();
        for pid in &victims {
            let _ = nix::sys::signal::kill(Pid::from_raw(*pid as i32), Signal::SIGKILL);
        }
        victims.len()
    }

    /// Pids of the container's processes (never this process or its ancestors).
    pub fn members(&self) -> HashSet<u32> {
        let me = std::process::id();
        let processes = read_proc();
        let mut members = HashSet::new();
        if let Some(root) = self.pid.filter(|p| *p != me) {
            let mut children: HashMap<u32, Vec<u32>> = HashMap::new();
            for (pid, info) in &processes {
                children.entry(info.ppid).or_default().push(*pid);
            }
            let mut stack = vec![root];
            while let Some(pid) = stack.pop() {
                if processes.contains_key(&pid) && members.insert(pid) {
                    stack.extend(children.get(&pid).into_iter().flatten());
                }
            }
        }
        if let Some(marker) = &self.marker {
            for pid in processes.keys() {
                if *pid != me && environ_contains(*pid, marker) {
                    members.insert(*pid);
                }
            }
        }
        let mut ancestor = Some(me);
        while let Some(pid) = ancestor {
            members.remove(&pid);
            ancestor = processes.get(&pid).map(|p| p.ppid).filter(|p| *p > 1);
        }
        members
    }
}

struct ProcInfo {
    ppid: u32,
}

fn read_proc() -> HashMap<u32, ProcInfo> {
    let mut out = HashMap::new();
    let Ok(dir) = std::fs::read_dir("/proc") else { return out };
    for entry in dir.flatten() {
        let Some(pid) = entry.file_name().to_str().and_then(|n| n.parse::<u32>().ok()) else { continue };
        let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else { continue };
        // Fields after the command name, which is in parentheses and may hold spaces.
        let Some(rest) = stat.rfind(')').map(|i| &stat[i + 1..]) else { continue };
        let mut fields = rest.split_whitespace();
        let state = fields.next().unwrap_or("");
        if state == "Z" || state == "X" {
            continue;
        }
        if let Some(ppid) = fields.next().and_then(|p| p.parse().ok()) {
            out.insert(pid, ProcInfo { ppid });
        }
    }
    out
}

fn environ_contains(pid: u32, marker: &str) -> bool {
    std::fs::read(format!("/proc/{pid}/environ"))
        .map(|env| env.split(|b| *b == 0).any(|kv| kv == marker.as_bytes()))
        .unwrap_or(false)
}

/// A fresh sandbox directory.
///
/// # Errors
/// The temporary directory cannot be created.
pub fn new_sandbox() -> std::io::Result<tempfile::TempDir> {
    tempfile::Builder::new().prefix("fake-agent-sandbox-").tempdir()
}

/// Describes how a child ended, the way the agent logs it.
pub fn describe_exit(status: std::process::ExitStatus) -> String {
    use std::os::unix::process::ExitStatusExt;
    match (status.code(), status.signal()) {
        (Some(code), _) => format!("exited with status {code}"),
        (None, Some(signal)) => {
            let name = Signal::try_from(signal).map(|s| s.as_str().to_owned()).unwrap_or_else(|_| signal.to_string());
            format!("terminated by signal {name}")
        }
        _ => "ended".to_owned(),
    }
}
