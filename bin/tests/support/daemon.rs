//! Running the real `mesos-executor` binary under the fake agent.

use std::{path::PathBuf, time::Duration};

use fake_agent::{AgentConfig, FakeAgent, Listening, process::Output};
use mesos_executor::proto::v1::{CommandInfo, TaskInfo, TaskState, TaskStatus};

pub struct Daemon {
    pub agent: Listening,
    pub sandbox: PathBuf,
}

/// Starts the daemon with `args` under a fake agent configured by `config`.
pub async fn start(config: AgentConfig, args: &[&str]) -> Daemon {
    let mut command = vec![env!("CARGO_BIN_EXE_mesos-executor").to_owned()];
    command.extend(args.iter().map(|a| (*a).to_owned()));
    start_command(config, &command).await
}

/// Starts `command` (the daemon behind a wrapper) as the executor under a fake agent.
pub async fn start_command(config: AgentConfig, command: &[String]) -> Daemon {
    let mut agent = FakeAgent::new(config).start().await.unwrap();
    let sandbox = agent.launch_executor(command, Output::SandboxFiles).unwrap();
    let daemon = Daemon { agent, sandbox };
    daemon.wait("subscription", |s| s.subscriptions > 0).await;
    daemon
}

/// The drop-in command executor mode, as the agent starts it.
pub async fn command_executor(config: AgentConfig) -> Daemon {
    start(config, &["--launcher_dir=/usr/libexec/mesos"]).await
}

pub fn killing_capable() -> AgentConfig {
    AgentConfig {
        capabilities: vec![mesos_executor::proto::v1::framework_info::capability::Type::TaskKillingState],
        ..AgentConfig::default()
    }
}

impl Daemon {
    pub async fn wait(&self, what: &str, done: impl Fn(&fake_agent::agent::State) -> bool) {
        let stderr = self.sandbox.join("stderr");
        let result =
            self.agent.agent.wait_for(what, Duration::from_secs(10), done, |s| format!("{:?}", s.executor)).await;
        if let Err(e) = result {
            let log = std::fs::read_to_string(&stderr).unwrap_or_default();
            panic!(
                "{e}\n--- executor stderr:\n{log}\n--- timeline:\n{}",
                fake_agent::transcript::timeline(&self.agent.agent.transcript())
            );
        }
    }

    /// Waits for an accepted update of `task` in `state`, and returns it.
    pub async fn update(&self, task: &str, state: TaskState) -> TaskStatus {
        let find = |s: &fake_agent::agent::State| {
            updates(s).into_iter().find(|u| u.task_id.value == task && u.state == state as i32)
        };
        self.wait(&format!("{task} {}", state.as_str_name()), |s| find(s).is_some()).await;
        self.agent.agent.inspect(find).unwrap()
    }

    pub fn updates(&self, task: &str) -> Vec<TaskStatus> {
        self.agent.agent.inspect(updates).into_iter().filter(|u| u.task_id.value == task).collect()
    }

    pub fn states(&self, task: &str) -> Vec<TaskState> {
        self.updates(task).iter().filter_map(|u| TaskState::try_from(u.state).ok()).collect()
    }

    /// Waits for the daemon process to exit and returns how.
    pub async fn exit(&self) -> String {
        self.wait("executor exit", |s| s.executor_exit.is_some()).await;
        self.agent.agent.inspect(|s| s.executor_exit.clone()).unwrap()
    }
}

fn updates(s: &fake_agent::agent::State) -> Vec<TaskStatus> {
    s.transcript
        .iter()
        .filter_map(|e| match &e.record {
            fake_agent::transcript::Record::Call { call, status: 202, .. } => {
                call.update.as_ref().map(|u| u.status.clone())
            }
            _ => None,
        })
        .collect()
}

/// A task whose CommandInfo is a shell command in `TaskInfo.command`.
pub fn shell_task(id: &str, command: &str) -> TaskInfo {
    super::task(id, command)
}

/// A custom executor's task: the CommandInfo as JSON in `TaskInfo.data`.
pub fn data_task(id: &str, command: &str) -> TaskInfo {
    let info = CommandInfo { value: Some(command.into()), ..Default::default() };
    let json = mesos_executor::wire::to_json_value(&info).unwrap().to_string();
    TaskInfo { command: None, data: Some(json.into_bytes().into()), ..super::task(id, command) }
}

/// Pids of live processes whose command line contains `needle`.
pub fn processes_matching(needle: &str) -> Vec<u32> {
    let me = std::process::id();
    std::fs::read_dir("/proc")
        .unwrap()
        .flatten()
        .filter_map(|e| e.file_name().to_str().and_then(|n| n.parse::<u32>().ok()))
        .filter(|pid| *pid != me)
        .filter(|pid| {
            let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
            let zombie = stat.rfind(')').is_some_and(|i| stat[i + 1..].trim_start().starts_with('Z'));
            let cmdline = std::fs::read(format!("/proc/{pid}/cmdline")).unwrap_or_default();
            !zombie && String::from_utf8_lossy(&cmdline).replace('\0', " ").contains(needle)
        })
        .collect()
}

/// A number unlikely to appear in any other process's command line.
pub fn unique_seconds() -> String {
    let nanos = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().subsec_nanos();
    format!("{}.{:09}", 900 + std::process::id() % 97, nanos)
}
