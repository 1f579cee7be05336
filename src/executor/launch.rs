//! Turning a TaskInfo into a process to start: where its CommandInfo comes from, the
//! argv (shell or not), the environment, and the fields this executor cannot honour.
//!
//! A Mesos master refuses a single task carrying both a CommandInfo and an ExecutorInfo
//! (pitfall 16), so a custom executor's LAUNCH has no `command`: we read a CommandInfo
//! in the agent's JSON mapping from `TaskInfo.data`. Tasks of a LAUNCH_GROUP, and tasks
//! the agent gives its command executor, carry `command`.

use std::collections::BTreeMap;

use crate::{
    ContentType,
    proto::v1::{CommandInfo, TaskInfo, container_info, environment, secret},
    wire,
};

/// Variables of the executor's own environment never passed to tasks (upstream removes
/// the token from its environment, reference §1.7).
pub const WITHHELD_FROM_TASKS: &[&str] = &[crate::env::AUTHENTICATION_TOKEN];

/// Every task process carries `MESOS_EXECUTOR_TASK=<executor nonce>/<task id>`, so that
/// processes that escaped the task's process group can still be found and killed.
pub const TASK_MARKER: &str = "MESOS_EXECUTOR_TASK";

/// Why a task cannot be started.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum LaunchError {
    /// No CommandInfo anywhere.
    #[error("task has no command: {0}")]
    NoCommand(String),
    /// A field this executor cannot honour (an image, an unresolvable secret, ...).
    #[error("unsupported task: {0}")]
    Unsupported(String),
    /// The TaskInfo or its CommandInfo is malformed.
    #[error("malformed task: {0}")]
    Malformed(String),
}

/// Where the CommandInfo was found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum CommandSource {
    /// `--task_command` given to the executor.
    Override,
    /// `TaskInfo.command`.
    TaskCommand,
    /// `TaskInfo.data`, as JSON.
    TaskData,
}

/// Finds the task's CommandInfo: the `--task_command` override, else `TaskInfo.command`,
/// else a CommandInfo as JSON in `TaskInfo.data`.
///
/// ```
/// use mesos_executor::{executor::launch::{resolve_command, CommandSource}, proto::v1::TaskInfo};
///
/// let task = TaskInfo { data: Some(br#"{"value":"echo hi","shell":true}"#.to_vec().into()), ..Default::default() };
/// let (command, source) = resolve_command(&task, None)?;
/// assert_eq!((command.value.as_deref(), source), (Some("echo hi"), CommandSource::TaskData));
/// assert!(resolve_command(&TaskInfo::default(), None).is_err(), "no command anywhere");
/// # Ok::<(), mesos_executor::executor::launch::LaunchError>(())
/// ```
///
/// # Errors
/// [`LaunchError::NoCommand`] saying where it looked, or [`LaunchError::Malformed`] when
/// `data` holds something that is not a CommandInfo.
pub fn resolve_command(
    task: &TaskInfo,
    task_override: Option<&CommandInfo>,
) -> Result<(CommandInfo, CommandSource), LaunchError> {
    if let Some(command) = task_override {
        return Ok((command.clone(), CommandSource::Override));
    }
    if let Some(command) = &task.command {
        return Ok((command.clone(), CommandSource::TaskCommand));
    }
    match &task.data {
        Some(data) if !data.is_empty() => wire::decode::<CommandInfo>(data, ContentType::Json)
            .map(|c| (c, CommandSource::TaskData))
            .map_err(|e| LaunchError::Malformed(format!("TaskInfo.data is not a CommandInfo in JSON: {e}"))),
        _ => Err(LaunchError::NoCommand(
            "looked in TaskInfo.command (unset) and TaskInfo.data (empty; a custom executor's task carries its CommandInfo there as JSON)"
                .to_owned(),
        )),
    }
}

/// Refuses what this executor cannot do rather than run the task differently: a
/// container image, or a secret that is a reference rather than a value.
///
/// ```
/// use mesos_executor::{executor::launch::check_supported, proto::v1::{CommandInfo, ContainerInfo, TaskInfo, container_info}};
///
/// let command = CommandInfo { value: Some("true".into()), ..Default::default() };
/// assert!(check_supported(&TaskInfo::default(), &command).is_ok());
/// let docker = ContainerInfo { r#type: container_info::Type::Docker as i32, ..Default::default() };
/// let task = TaskInfo { container: Some(docker), ..Default::default() };
/// assert!(check_supported(&task, &command).is_err());
/// ```
///
/// # Errors
/// [`LaunchError::Unsupported`] naming the field.
pub fn check_supported(task: &TaskInfo, command: &CommandInfo) -> Result<(), LaunchError> {
    if let Some(container) = &task.container {
        let image = container.docker.is_some()
            || container.r#type == container_info::Type::Docker as i32
            || container.mesos.as_ref().is_some_and(|m| m.image.is_some());
        if image {
            return Err(LaunchError::Unsupported(
                "TaskInfo.container asks for a container image; this executor runs commands on the host".to_owned(),
            ));
        }
    }
    if let Some(env) = &command.environment {
        for var in &env.variables {
            if var.r#type() == environment::variable::Type::Secret {
                let resolvable =
                    var.secret.as_ref().is_some_and(|s| s.r#type() == secret::Type::Value && s.value.is_some());
                if !resolvable {
                    return Err(LaunchError::Unsupported(format!(
                        "environment variable {} is a secret reference this executor cannot resolve",
                        var.name
                    )));
                }
            }
        }
    }
    Ok(())
}

/// A process to start.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct LaunchSpec {
    /// Program to execute (searched in `PATH` when it has no `/`).
    pub program: String,
    /// Full argv, `argv[0]` included.
    pub argv: Vec<String>,
    /// The complete environment.
    pub env: BTreeMap<String, String>,
    /// `CommandInfo.user`, when set.
    pub user: Option<String>,
}

impl LaunchSpec {
    /// `program` with `argv` (`argv[0]` included), an empty environment and no user;
    /// [`build`] makes one from a task. A `LaunchSpec` is `#[non_exhaustive]`: build it
    /// here, then set its fields.
    ///
    /// ```
    /// use mesos_executor::executor::launch::LaunchSpec;
    /// let mut spec = LaunchSpec::new("/bin/sh", ["sh", "-c", "exit 0"]);
    /// spec.env.insert("PATH".into(), "/usr/bin:/bin".into());
    /// assert_eq!(spec.argv, ["sh", "-c", "exit 0"]);
    /// ```
    ///
    /// A struct literal is refused, so that a field added later breaks no one:
    ///
    /// ```compile_fail,E0639
    /// use mesos_executor::executor::launch::LaunchSpec;
    /// let spec = LaunchSpec { program: "/bin/true".into(), argv: vec![], env: Default::default(), user: None };
    /// ```
    pub fn new(program: impl Into<String>, argv: impl IntoIterator<Item = impl Into<String>>) -> Self {
        LaunchSpec {
            program: program.into(),
            argv: argv.into_iter().map(Into::into).collect(),
            env: BTreeMap::new(),
            user: None,
        }
    }
}

/// Builds the process for `command`: `/bin/sh -c value` when `shell` is true or unset,
/// else `value` with argv = `arguments` (`arguments[0]` is `argv[0]`, as upstream).
/// The environment is the executor's (`base`), then the command's variables, then
/// `MESOS_ALLOCATION_ROLE` and the task marker.
///
/// ```
/// use mesos_executor::{executor::launch::{build, TASK_MARKER}, proto::v1::{CommandInfo, TaskInfo}};
///
/// let command = CommandInfo { value: Some("echo $GREETING".into()), ..Default::default() };
/// let base = [("GREETING".to_owned(), "hello".to_owned()), ("MESOS_EXECUTOR_AUTHENTICATION_TOKEN".to_owned(), "secret".to_owned())];
/// let spec = build(&TaskInfo::default(), &command, base, "run-1/task-1")?;
/// assert_eq!(spec.argv, ["sh", "-c", "echo $GREETING"]);
/// assert_eq!(spec.env["GREETING"], "hello");
/// assert_eq!(spec.env[TASK_MARKER], "run-1/task-1");
/// assert!(!spec.env.contains_key("MESOS_EXECUTOR_AUTHENTICATION_TOKEN"), "the token never reaches a task");
/// # Ok::<(), mesos_executor::executor::launch::LaunchError>(())
/// ```
///
/// # Errors
/// [`LaunchError::Malformed`] without a `value`.
pub fn build(
    task: &TaskInfo,
    command: &CommandInfo,
    base: impl IntoIterator<Item = (String, String)>,
    marker: &str,
) -> Result<LaunchSpec, LaunchError> {
    let value = command.value.clone().filter(|v| !v.is_empty()).ok_or_else(|| {
        LaunchError::Malformed("CommandInfo.value is required (the shell command or the program)".to_owned())
    })?;
    let (program, argv) = if command.shell() {
        ("/bin/sh".to_owned(), vec!["sh".to_owned(), "-c".to_owned(), value])
    } else {
        let argv = if command.arguments.is_empty() { vec![value.clone()] } else { command.arguments.clone() };
        (value, argv)
    };
    let mut env: BTreeMap<String, String> =
        base.into_iter().filter(|(k, _)| !WITHHELD_FROM_TASKS.contains(&k.as_str())).collect();
    if let Some(environment) = &command.environment {
        apply_environment(&mut env, environment);
    }
    if let Some(role) = task.resources.first().and_then(|r| r.allocation_info.as_ref()).and_then(|a| a.role.clone()) {
        env.insert("MESOS_ALLOCATION_ROLE".to_owned(), role);
    }
    env.insert(TASK_MARKER.to_owned(), marker.to_owned());
    Ok(LaunchSpec { program, argv, env, user: command.user.clone().filter(|u| !u.is_empty()) })
}

/// Sets `environment`'s variables in `env`, over what is there: plain values, and
/// secrets of type VALUE resolved (references are refused before a task gets here).
pub(crate) fn apply_environment(env: &mut BTreeMap<String, String>, environment: &crate::proto::v1::Environment) {
    for var in &environment.variables {
        match var.r#type() {
            environment::variable::Type::Secret => {
                if let Some(data) = var.secret.as_ref().and_then(|s| s.value.as_ref()) {
                    env.insert(var.name.clone(), String::from_utf8_lossy(&data.data).into_owned());
                }
            }
            _ => {
                env.insert(var.name.clone(), var.value().to_owned());
            }
        }
    }
}

#[cfg(test)]
mod tests;
