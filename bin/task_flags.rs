//! The upstream command executor's task flags, as the agent writes them
//! (`src/launcher/executor.cpp` and the containerizer that starts it): what each asks of
//! the task, or why this executor cannot do it. A flag we cannot honour is not fatal to
//! the executor: it makes each task fail clearly, naming the flag.

use std::path::PathBuf;

use mesos_executor::{ContentType, proto::v1::Environment, wire};
use serde::Deserialize;

/// What the flags ask for every task.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TaskFlags {
    /// `--task_environment`: variables the agent's isolators computed (resolved
    /// secrets, for example), over the executor's own and under the task's CommandInfo.
    pub environment: Vec<(String, String)>,
    /// `--task_supplementary_groups`.
    pub groups: Vec<u32>,
    /// `--effective_capabilities`.
    pub effective: Option<Vec<String>>,
    /// `--bounding_capabilities`.
    pub bounding: Option<Vec<String>>,
    /// `--tty_slave_path`: the task's stdin, stdout and stderr, and its controlling
    /// terminal.
    pub tty: Option<PathBuf>,
    /// `--working_directory` from `--task_launch_info`.
    pub working_directory: Option<PathBuf>,
    /// Why no task can run as asked (a flag we cannot honour), naming the flag.
    pub refusal: Option<String>,
}

/// The raw flag values.
#[derive(Debug, Clone, Default)]
pub struct Raw<'a> {
    pub rootfs: Option<&'a str>,
    pub sandbox_directory: Option<&'a str>,
    pub task_environment: Option<&'a str>,
    pub task_supplementary_groups: Option<&'a str>,
    pub effective_capabilities: Option<&'a str>,
    pub bounding_capabilities: Option<&'a str>,
    pub tty_slave_path: Option<&'a str>,
    pub task_launch_info: Option<&'a str>,
}

#[derive(Deserialize)]
struct CapabilityInfo {
    #[serde(default)]
    capabilities: Vec<String>,
}

fn environment(flag: &str, json: &serde_json::Value) -> Result<Vec<(String, String)>, String> {
    let env: Environment = wire::decode(json.to_string().as_bytes(), ContentType::Json)
        .map_err(|e| format!("--{flag} is not an Environment in JSON: {e}"))?;
    env.variables
        .iter()
        .map(|v| match (&v.value, v.secret.as_ref().and_then(|s| s.value.as_ref())) {
            (Some(value), _) => Ok((v.name.clone(), value.clone())),
            (None, Some(secret)) => Ok((v.name.clone(), String::from_utf8_lossy(&secret.data).into_owned())),
            (None, None) => Err(format!("--{flag}: variable {} has no value this executor can resolve", v.name)),
        })
        .collect()
}

fn capabilities(flag: &str, json: &str) -> Result<Vec<String>, String> {
    let info: CapabilityInfo =
        serde_json::from_str(json).map_err(|e| format!("--{flag} is not a CapabilityInfo in JSON: {e}"))?;
    crate::exec_helper::parse_caps(&info.capabilities).map_err(|e| format!("--{flag}: {e}"))?;
    Ok(info.capabilities)
}

impl TaskFlags {
    /// What `raw` asks. A malformed value is an error (exit 64, the agent wrote
    /// nonsense); a well-formed one we cannot honour becomes [`TaskFlags::refusal`].
    ///
    /// # Errors
    /// A malformed value, naming the flag.
    pub fn parse(raw: &Raw<'_>) -> Result<TaskFlags, String> {
        let mut flags = TaskFlags::default();
        if let Some(json) = raw.task_environment {
            let value: serde_json::Value =
                serde_json::from_str(json).map_err(|e| format!("--task_environment is not JSON: {e}"))?;
            flags.environment = environment("task_environment", &value)?;
        }
        if let Some(list) = raw.task_supplementary_groups {
            flags.groups = list
                .split(',')
                .map(str::trim)
                .filter(|g| !g.is_empty())
                .map(|g| g.parse::<u32>().map_err(|_| format!("--task_supplementary_groups: {g:?} is not a group id")))
                .collect::<Result<_, _>>()?;
        }
        if let Some(json) = raw.effective_capabilities {
            flags.effective = Some(capabilities("effective_capabilities", json)?);
        }
        if let Some(json) = raw.bounding_capabilities {
            flags.bounding = Some(capabilities("bounding_capabilities", json)?);
        }
        flags.tty = raw.tty_slave_path.map(PathBuf::from);
        if let Some(json) = raw.task_launch_info {
            flags.launch_info(json)?;
        }
        if let Some(rootfs) = raw.rootfs {
            flags.refusal = Some(format!(
                "--rootfs={rootfs} asks for a container root filesystem; this executor runs tasks on the host"
            ));
        } else if let Some(dir) = raw.sandbox_directory {
            flags.refusal = Some(format!(
                "--sandbox_directory={dir} maps the sandbox into a container; this executor runs tasks on the host"
            ));
        }
        Ok(flags)
    }

    /// `--task_launch_info`: the containerizer's launch info for the task. What we can
    /// honour is taken; anything else is a refusal naming the field.
    fn launch_info(&mut self, json: &str) -> Result<(), String> {
        let value: serde_json::Value =
            serde_json::from_str(json).map_err(|e| format!("--task_launch_info is not JSON: {e}"))?;
        let Some(object) = value.as_object() else { return Err("--task_launch_info is not a JSON object".to_owned()) };
        for (key, value) in object {
            match key.as_str() {
                "environment" => self.environment.extend(environment("task_launch_info", value)?),
                "working_directory" => self.working_directory = value.as_str().map(PathBuf::from),
                "supplementary_groups" => self.groups.extend(
                    value
                        .as_array()
                        .into_iter()
                        .flatten()
                        .filter_map(|g| g.as_u64())
                        .filter_map(|g| u32::try_from(g).ok()),
                ),
                "tty_slave_path" => self.tty = value.as_str().map(PathBuf::from),
                "effective_capabilities" => {
                    self.effective = Some(capabilities("task_launch_info", &value.to_string())?)
                }
                "bounding_capabilities" => self.bounding = Some(capabilities("task_launch_info", &value.to_string())?),
                // Already honoured another way: the task's own command, user and namespaces.
                "command" | "user" | "clone_namespaces" | "enter_namespaces" => {}
                other => {
                    self.refusal.get_or_insert_with(|| {
                        format!("--task_launch_info asks for {other:?}, which this executor cannot apply")
                    });
                }
            }
        }
        Ok(())
    }

    /// Whether tasks need the exec helper: capabilities. Groups do not: the spawn sets
    /// them in the child, without an extra `exec`.
    pub fn needs_helper(&self) -> bool {
        self.effective.is_some() || self.bounding.is_some()
    }
}

/// The long flag names `command` knows (with their aliases), for dropping unknown ones.
pub fn known_flags(command: &clap::Command) -> Vec<String> {
    let mut names = vec!["help".to_owned(), "version".to_owned()];
    for arg in command.get_arguments() {
        names.extend(arg.get_long().map(str::to_owned));
        names.extend(arg.get_all_aliases().into_iter().flatten().map(str::to_owned));
    }
    names
}

/// Drop-in mode: the agent, not a person, wrote the command line, and a newer agent may
/// pass a flag this executor does not know. Such flags are dropped (and returned, to be
/// logged) instead of being fatal. Only `--name` and `--name=value` forms are dropped.
pub fn drop_unknown(args: Vec<String>, known: &[String]) -> (Vec<String>, Vec<String>) {
    let drop_in = args.iter().any(|a| a == "--launcher_dir" || a.starts_with("--launcher_dir="));
    if !drop_in {
        return (args, Vec::new());
    }
    let (mut kept, mut dropped) = (Vec::new(), Vec::new());
    for (i, arg) in args.into_iter().enumerate() {
        let name = arg.strip_prefix("--").map(|rest| rest.split('=').next().unwrap_or_default().to_owned());
        match name {
            Some(name) if i > 0 && !name.is_empty() && !known.contains(&name) => dropped.push(arg),
            _ => kept.push(arg),
        }
    }
    (kept, dropped)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flags_as_the_agent_writes_them() {
        let raw = Raw {
            task_environment: Some(r#"{"variables":[{"name":"DB_PASSWORD","type":"VALUE","value":"s3cret"}]}"#),
            task_supplementary_groups: Some("1000,1001"),
            effective_capabilities: Some(r#"{"capabilities":["NET_RAW","CHOWN"]}"#),
            tty_slave_path: Some("/dev/pts/7"),
            ..Raw::default()
        };
        let flags = TaskFlags::parse(&raw).unwrap();
        assert_eq!(flags.environment, [("DB_PASSWORD".to_owned(), "s3cret".to_owned())]);
        assert_eq!(flags.groups, [1000, 1001]);
        assert_eq!(flags.effective.as_deref(), Some(&["NET_RAW".to_owned(), "CHOWN".to_owned()][..]));
        assert_eq!(flags.tty, Some(PathBuf::from("/dev/pts/7")));
        assert!(flags.refusal.is_none() && flags.needs_helper());
    }

    #[test]
    fn nonsense_is_an_error_and_the_impossible_a_refusal_naming_the_flag() {
        let bad = |raw: Raw<'_>| TaskFlags::parse(&raw).unwrap_err();
        assert!(bad(Raw { task_environment: Some("{"), ..Raw::default() }).contains("--task_environment"));
        assert!(bad(Raw { task_supplementary_groups: Some("wheel"), ..Raw::default() }).contains("wheel"));
        assert!(
            bad(Raw { bounding_capabilities: Some(r#"{"capabilities":["FLY"]}"#), ..Raw::default() }).contains("FLY")
        );
        let rootfs = TaskFlags::parse(&Raw { rootfs: Some("/img"), ..Raw::default() }).unwrap();
        assert!(rootfs.refusal.unwrap().contains("--rootfs=/img"));
        let info = TaskFlags::parse(&Raw {
            task_launch_info: Some(r#"{"rlimits":{},"working_directory":"/w"}"#),
            ..Raw::default()
        })
        .unwrap();
        assert!(info.refusal.unwrap().contains("rlimits"));
        assert_eq!(info.working_directory, Some(PathBuf::from("/w")));
    }

    #[test]
    fn unknown_flags_are_dropped_only_in_drop_in_mode() {
        let known = vec!["launcher_dir".to_owned(), "user".to_owned()];
        let args = |v: &[&str]| v.iter().map(|s| (*s).to_owned()).collect::<Vec<_>>();
        let (kept, dropped) =
            drop_unknown(args(&["me", "--launcher_dir=/x", "--future_flag=1", "--user=nobody"]), &known);
        assert_eq!((kept, dropped), (args(&["me", "--launcher_dir=/x", "--user=nobody"]), args(&["--future_flag=1"])));
        let (kept, dropped) = drop_unknown(args(&["me", "--future_flag=1"]), &known);
        assert_eq!((kept.len(), dropped.len()), (2, 0), "a person's typo stays an error");
    }
}
