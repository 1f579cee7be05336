//! Scenario files: what the fake agent does to an executor and what it expects back,
//! step by step, in JSON or YAML. See `fake-agent/README.md` for the format.

use std::{collections::BTreeMap, path::Path, time::Duration};

use mesos_executor::proto::v1::{
    AgentId, CommandInfo, DurationInfo, Environment, HealthCheck, KillPolicy, Label, Labels, Resource, TaskId,
    TaskInfo, environment, framework_info::capability, health_check, value,
};
use serde::Deserialize;

use crate::{agent::Fault, config::AckPolicy, config::AgentConfig};

/// A whole scenario.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Scenario {
    /// Shown in output.
    #[serde(default)]
    pub name: String,
    /// Agent settings for this scenario.
    #[serde(default)]
    pub agent: AgentSettings,
    /// Timeout of an expectation that names none (default 10 s).
    #[serde(default = "default_timeout_ms")]
    pub default_timeout_ms: u64,
    /// What happens, in order.
    pub steps: Vec<Step>,
}

fn default_timeout_ms() -> u64 {
    10_000
}

/// Agent settings a scenario may change; the rest are upstream defaults.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AgentSettings {
    /// `FrameworkInfo.checkpoint` (default true).
    pub checkpoint: Option<bool>,
    /// Framework capabilities by upstream name (`TASK_KILLING_STATE`, `PARTITION_AWARE`).
    pub capabilities: Option<Vec<String>>,
    /// HEARTBEAT period.
    pub heartbeat_interval_ms: Option<u64>,
    /// `--executor_registration_timeout`.
    pub registration_timeout_ms: Option<u64>,
    /// `--executor_reregistration_timeout`.
    pub reregistration_timeout_ms: Option<u64>,
    /// `--recovery_timeout` given to the executor.
    pub recovery_timeout_ms: Option<u64>,
    /// `--executor_shutdown_grace_period`.
    pub shutdown_grace_period_ms: Option<u64>,
    /// Require `Authorization: Bearer <token>`.
    pub auth_token: Option<String>,
    /// Initial acknowledgement policy.
    pub ack_policy: Option<AckPolicy>,
    /// `--executor_environment_variables`.
    #[serde(default)]
    pub executor_environment_variables: BTreeMap<String, String>,
}

impl AgentSettings {
    /// The agent configuration these settings describe.
    ///
    /// # Errors
    /// An unknown capability name.
    pub fn to_config(&self) -> Result<AgentConfig, String> {
        let mut config = AgentConfig::default();
        let ms = Duration::from_millis;
        if let Some(v) = self.checkpoint {
            config.checkpoint = v;
        }
        if let Some(names) = &self.capabilities {
            config.capabilities = names
                .iter()
                .map(|n| {
                    capability::Type::from_str_name(n).ok_or_else(|| format!("unknown framework capability {n:?}"))
                })
                .collect::<Result<_, _>>()?;
        }
        if let Some(v) = self.heartbeat_interval_ms {
            config.heartbeat_interval = ms(v);
        }
        if let Some(v) = self.registration_timeout_ms {
            config.registration_timeout = ms(v);
        }
        if let Some(v) = self.reregistration_timeout_ms {
            config.reregistration_timeout = ms(v);
        }
        if let Some(v) = self.recovery_timeout_ms {
            config.recovery_timeout = ms(v);
        }
        if let Some(v) = self.shutdown_grace_period_ms {
            config.shutdown_grace_period = ms(v);
        }
        config.auth_token.clone_from(&self.auth_token);
        if let Some(policy) = &self.ack_policy {
            config.ack_policy = policy.clone();
        }
        config.executor_environment_variables.clone_from(&self.executor_environment_variables);
        Ok(config)
    }
}

/// One step. Field names are the scenario file's keys, documented in `fake-agent/README.md`.
#[derive(Debug, Clone, Deserialize)]
#[allow(missing_docs)]
#[serde(rename_all = "snake_case", deny_unknown_fields)]
pub enum Step {
    /// Wait until the executor has subscribed (`count` subscriptions in all, default 1).
    ExpectSubscribe { count: Option<u64>, timeout_ms: Option<u64> },
    /// Launch one task (LAUNCH).
    Launch(Box<TaskSpec>),
    /// Launch a task group (LAUNCH_GROUP).
    LaunchGroup { tasks: Vec<TaskSpec> },
    /// Kill a task, optionally with a kill policy grace period.
    Kill { task_id: String, grace_ms: Option<u64> },
    /// Send a framework message.
    Message { data: String },
    /// Shut the executor down.
    Shutdown {},
    /// Send a signal to the executor process (`TERM`, `INT`, ...), as an operator would.
    SignalExecutor { signal: String },
    /// Wait until the agent sees the task in `state`.
    WaitState { task_id: String, state: String, timeout_ms: Option<u64> },
    /// Expect an accepted UPDATE (or one replayed in SUBSCRIBE) matching the filter.
    ExpectUpdate(UpdateFilter),
    /// Expect a call of a type; for a MESSAGE, optionally with exactly `data` or with
    /// data containing `data_contains`; optionally after step `after_step`.
    ExpectCall {
        r#type: String,
        data: Option<String>,
        data_contains: Option<String>,
        after_step: Option<usize>,
        timeout_ms: Option<u64>,
    },
    /// Expect no accepted UPDATE matching the filter for `within_ms` (for example none
    /// after a task's terminal update).
    ExpectNoUpdate { task_id: Option<String>, state: Option<String>, within_ms: u64 },
    /// Expect no call of a type (any type when unset) for `within_ms`.
    ExpectNoCall { r#type: Option<String>, within_ms: u64 },
    /// Restart the agent; then expect a resubscription carrying every update whose
    /// acknowledgement never reached the executor, within the re-registration timeout.
    RestartAgent { down_ms: u64, recovering_ms: Option<u64>, resubscribe_within_ms: Option<u64> },
    /// Change the acknowledgement policy.
    AckPolicy(AckPolicy),
    /// Send the withheld acknowledgements.
    ReleaseAcks {},
    /// Inject a fault.
    Fault(Fault),
    /// Wait.
    SleepMs(u64),
    /// Expect the executor process to exit (optionally with `code`).
    ExpectExit { code: Option<i32>, timeout_ms: Option<u64> },
}

/// Which updates an `expect_update` step accepts.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UpdateFilter {
    /// Task id.
    pub task_id: Option<String>,
    /// State name, such as `TASK_RUNNING`.
    pub state: Option<String>,
    /// `healthy` field.
    pub healthy: Option<bool>,
    /// Reason name, such as `REASON_COMMAND_EXECUTOR_FAILED`.
    pub reason: Option<String>,
    /// A substring of `message`.
    pub message_contains: Option<String>,
    /// The update must come after step number `after_step` (1-based) began.
    pub after_step: Option<usize>,
    /// How long to wait.
    pub timeout_ms: Option<u64>,
}

/// A task to launch.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TaskSpec {
    /// Task id.
    pub task_id: String,
    /// Name (default: the id).
    pub name: Option<String>,
    /// Shell command (`shell: true`).
    pub command: Option<String>,
    /// Program and arguments (`shell: false`; `argv[0]` is the program).
    pub argv: Option<Vec<String>>,
    /// Environment variables of the task.
    #[serde(default)]
    pub env: BTreeMap<String, String>,
    /// Kill policy grace period.
    pub kill_grace_ms: Option<u64>,
    /// Health check.
    pub health_check: Option<HealthSpec>,
    /// `cpus` resource.
    pub cpus: Option<f64>,
    /// `mem` resource in MB.
    pub mem: Option<f64>,
    /// `ports` resource.
    #[serde(default)]
    pub ports: Vec<u64>,
    /// Labels.
    #[serde(default)]
    pub labels: BTreeMap<String, String>,
    /// `TaskInfo.data` as text (for custom executors that read their own format).
    pub data: Option<String>,
    /// `TaskInfo.data` as base64, for arbitrary bytes.
    pub data_base64: Option<String>,
    /// `CommandInfo.uris`: what the executor fetches before the task starts.
    #[serde(default)]
    pub uris: Vec<UriSpec>,
    /// Where the CommandInfo goes: `command` (a command executor's `TaskInfo.command`,
    /// the default) or `data` (JSON in `TaskInfo.data`, for custom executors).
    #[serde(default)]
    pub command_in: CommandIn,
}

/// A `CommandInfo.URI`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UriSpec {
    /// `http://`, `https://`, `file://` or an absolute path.
    pub value: String,
    /// Make the fetched file executable.
    pub executable: Option<bool>,
    /// Unpack an archive (upstream's default: true).
    pub extract: Option<bool>,
    /// Keep the download for later tasks.
    pub cache: Option<bool>,
    /// The name in the sandbox (default: the URI's last path segment).
    pub output_file: Option<String>,
}

/// Where a task's CommandInfo is put.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CommandIn {
    /// `TaskInfo.command`.
    #[default]
    Command,
    /// `TaskInfo.data`, as JSON in the agent's mapping.
    Data,
    /// Nowhere (to test the executor's error for a task without a command).
    Nowhere,
}

/// A health check.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HealthSpec {
    /// `command`, `http` or `tcp`.
    pub r#type: String,
    /// Shell command for `command`.
    pub command: Option<String>,
    /// Port for `http` and `tcp`.
    pub port: Option<u32>,
    /// Path for `http`.
    pub path: Option<String>,
    /// First check after this many seconds.
    pub delay_seconds: Option<f64>,
    /// Seconds between checks.
    pub interval_seconds: Option<f64>,
    /// Seconds before a check counts as failed.
    pub timeout_seconds: Option<f64>,
    /// Failures that kill the task.
    pub consecutive_failures: Option<u32>,
    /// Seconds during which failures are ignored.
    pub grace_period_seconds: Option<f64>,
}

impl TaskSpec {
    /// The TaskInfo the agent sends for this spec.
    pub fn to_task_info(&self, agent_id: &str) -> TaskInfo {
        let command = self.command_info();
        let mut resources = Vec::new();
        for (name, amount) in [("cpus", self.cpus), ("mem", self.mem)] {
            if let Some(amount) = amount {
                resources.push(Resource {
                    name: name.to_owned(),
                    r#type: value::Type::Scalar as i32,
                    scalar: Some(value::Scalar { value: amount }),
                    ..Default::default()
                });
            }
        }
        if !self.ports.is_empty() {
            let range = self.ports.iter().map(|p| value::Range { begin: *p, end: *p }).collect();
            resources.push(Resource {
                name: "ports".to_owned(),
                r#type: value::Type::Ranges as i32,
                ranges: Some(value::Ranges { range }),
                ..Default::default()
            });
        }
        let raw = match (&self.data, &self.data_base64) {
            (Some(text), _) => Some(text.clone().into_bytes().into()),
            (None, Some(b64)) => {
                use base64::Engine as _;
                base64::engine::general_purpose::STANDARD.decode(b64.trim()).ok().map(Into::into)
            }
            (None, None) => None,
        };
        let (command, data) = match self.command_in {
            CommandIn::Command => (Some(command), raw),
            CommandIn::Data => {
                let json = mesos_executor::wire::to_json_value(&command).map(|v| v.to_string()).unwrap_or_default();
                (None, Some(json.into_bytes().into()))
            }
            CommandIn::Nowhere => (None, raw),
        };
        TaskInfo {
            name: self.name.clone().unwrap_or_else(|| self.task_id.clone()),
            task_id: TaskId { value: self.task_id.clone() },
            agent_id: AgentId { value: agent_id.to_owned() },
            resources,
            command,
            data,
            health_check: self.health_check.as_ref().map(HealthSpec::to_proto),
            kill_policy: self.kill_grace_ms.map(|ms| KillPolicy { grace_period: Some(duration_info(ms)) }),
            labels: (!self.labels.is_empty()).then(|| Labels {
                labels: self.labels.iter().map(|(k, v)| Label { key: k.clone(), value: Some(v.clone()) }).collect(),
            }),
            ..Default::default()
        }
    }

    fn command_info(&self) -> CommandInfo {
        let environment = (!self.env.is_empty()).then(|| Environment {
            variables: self
                .env
                .iter()
                .map(|(k, v)| environment::Variable { name: k.clone(), value: Some(v.clone()), ..Default::default() })
                .collect(),
        });
        let uris = self
            .uris
            .iter()
            .map(|u| mesos_executor::proto::v1::command_info::Uri {
                value: u.value.clone(),
                executable: u.executable,
                extract: u.extract,
                cache: u.cache,
                output_file: u.output_file.clone(),
            })
            .collect();
        match &self.argv {
            Some(argv) => CommandInfo {
                shell: Some(false),
                value: argv.first().cloned(),
                arguments: argv.clone(),
                environment,
                uris,
                ..Default::default()
            },
            None => CommandInfo {
                shell: Some(true),
                value: Some(self.command.clone().unwrap_or_default()),
                environment,
                uris,
                ..Default::default()
            },
        }
    }
}

impl HealthSpec {
    fn to_proto(&self) -> HealthCheck {
        let kind = match self.r#type.to_ascii_lowercase().as_str() {
            "http" => health_check::Type::Http,
            "tcp" => health_check::Type::Tcp,
            _ => health_check::Type::Command,
        };
        HealthCheck {
            r#type: Some(kind as i32),
            command: self.command.as_ref().map(|c| CommandInfo { value: Some(c.clone()), ..Default::default() }),
            http: (kind == health_check::Type::Http).then(|| health_check::HttpCheckInfo {
                port: self.port.unwrap_or(0),
                path: self.path.clone(),
                ..Default::default()
            }),
            tcp: (kind == health_check::Type::Tcp)
                .then(|| health_check::TcpCheckInfo { port: self.port.unwrap_or(0), ..Default::default() }),
            delay_seconds: self.delay_seconds,
            interval_seconds: self.interval_seconds,
            timeout_seconds: self.timeout_seconds,
            consecutive_failures: self.consecutive_failures,
            grace_period_seconds: self.grace_period_seconds,
        }
    }
}

fn duration_info(ms: u64) -> DurationInfo {
    DurationInfo { nanoseconds: (ms as i64).saturating_mul(1_000_000) }
}

/// Kill policy for a KILL event.
pub fn kill_policy(grace_ms: Option<u64>) -> Option<KillPolicy> {
    grace_ms.map(|ms| KillPolicy { grace_period: Some(duration_info(ms)) })
}

/// Parses a scenario from YAML (or JSON, which is YAML too).
///
/// # Errors
/// The text is not a valid scenario.
pub fn parse_yaml(text: &str) -> Result<Scenario, String> {
    let value: serde_json::Value = serde_yaml_ng::from_str(text).map_err(|e| e.to_string())?;
    serde_json::from_value(value).map_err(|e| e.to_string()).and_then(checked)
}

/// What serde cannot check: base64 that decodes, steps that refer to earlier steps.
fn checked(scenario: Scenario) -> Result<Scenario, String> {
    use base64::Engine as _;
    for (i, step) in scenario.steps.iter().enumerate() {
        let number = i + 1;
        let tasks: Vec<&TaskSpec> = match step {
            Step::Launch(task) => vec![task.as_ref()],
            Step::LaunchGroup { tasks } => tasks.iter().collect(),
            _ => Vec::new(),
        };
        for task in tasks {
            if let Some(b64) = &task.data_base64 {
                base64::engine::general_purpose::STANDARD
                    .decode(b64.trim())
                    .map_err(|e| format!("step {number}: data_base64 of task {} is not base64: {e}", task.task_id))?;
            }
        }
        let after = match step {
            Step::ExpectUpdate(filter) => filter.after_step,
            Step::ExpectCall { after_step, .. } => *after_step,
            _ => None,
        };
        if let Some(after) = after
            && (after == 0 || after >= number)
        {
            return Err(format!("step {number}: after_step {after} must name an earlier step"));
        }
    }
    Ok(scenario)
}

/// Reads a scenario from a `.json`, `.yaml` or `.yml` file.
///
/// # Errors
/// The file cannot be read or is not a valid scenario; the message names the file.
pub fn load(path: &Path) -> Result<Scenario, String> {
    let text = std::fs::read_to_string(path).map_err(|e| format!("cannot read {}: {e}", path.display()))?;
    let json = path.extension().is_some_and(|e| e == "json");
    // YAML is read as a JSON value first, so both formats write steps as `{step: ...}`
    // maps (serde_yaml_ng would want `!step` tags for enums).
    let value: Result<serde_json::Value, String> = if json {
        serde_json::from_str(&text).map_err(|e| e.to_string())
    } else {
        serde_yaml_ng::from_str(&text).map_err(|e| e.to_string())
    };
    let parsed = value.and_then(|v| serde_json::from_value::<Scenario>(v).map_err(|e| e.to_string())).and_then(checked);
    parsed.map_err(|e| format!("{} is not a valid scenario: {e}", path.display()))
}
