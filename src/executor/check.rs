//! General checks from `TaskInfo.check` (reference §9.3): COMMAND, HTTP and TCP probes
//! whose results are reported in `TaskStatus.check_status`, in an update with
//! `REASON_TASK_CHECK_STATUS_UPDATED` whenever the result changes. Unlike health checks
//! they never kill a task.

use std::{collections::BTreeMap, path::Path, time::Duration};

use super::{health::timeout, probe, process::Exit};
use crate::proto::v1::{CheckInfo, CheckStatusInfo, check_info, check_status_info};

/// The status before any result: the check's type with an empty sub-message, as
/// upstream reports it (a present `check_status` must carry its type's sub-message).
///
/// ```
/// use mesos_executor::{executor::check::empty, proto::v1::{check_info, CheckInfo}};
/// let check = CheckInfo { r#type: Some(check_info::Type::Tcp as i32), ..Default::default() };
/// let status = empty(&check).unwrap();
/// assert!(status.tcp.is_some_and(|t| t.succeeded.is_none()));
/// ```
pub fn empty(check: &CheckInfo) -> Option<CheckStatusInfo> {
    let kind = check.r#type();
    let mut status = CheckStatusInfo { r#type: Some(kind as i32), ..Default::default() };
    match kind {
        check_info::Type::Command => status.command = Some(check_status_info::Command::default()),
        check_info::Type::Http => status.http = Some(check_status_info::Http::default()),
        check_info::Type::Tcp => status.tcp = Some(check_status_info::Tcp::default()),
        check_info::Type::Unknown => return None,
    }
    Some(status)
}

/// Runs the check once; a COMMAND check runs as `user` (the task's; `None`: the
/// executor's), as upstream's. A probe that cannot run, or times out, yields the empty
/// status of its type, as upstream's checker does.
///
/// ```
/// # #[tokio::main(flavor = "current_thread")] async fn main() {
/// use mesos_executor::{executor::check::run, proto::v1::{check_info, CheckInfo, CommandInfo}};
///
/// let check = CheckInfo {
///     r#type: Some(check_info::Type::Command as i32),
///     command: Some(check_info::Command { command: CommandInfo { value: Some("exit 7".into()), ..Default::default() } }),
///     ..Default::default()
/// };
/// let status = run(&check, &Default::default(), std::path::Path::new("/"), None).await.unwrap();
/// assert_eq!(status.command.and_then(|c| c.exit_code), Some(7));
/// # }
/// ```
pub async fn run(
    check: &CheckInfo,
    env: &BTreeMap<String, String>,
    cwd: &Path,
    user: Option<&str>,
) -> Option<CheckStatusInfo> {
    let mut status = empty(check)?;
    // A timeout leaves the status empty, like a probe that could not run; zero is none.
    let timeout = timeout(check.timeout_seconds()).unwrap_or(Duration::MAX);
    let _ = tokio::time::timeout(timeout, async {
        match check.r#type() {
            check_info::Type::Command => {
                let command = &check.command.as_ref()?.command;
                match probe::command(command, env, cwd, user).await.ok()? {
                    Exit::Code(code) => status.command = Some(check_status_info::Command { exit_code: Some(code) }),
                    Exit::Signal(..) => {}
                }
            }
            check_info::Type::Http => {
                let http = check.http.as_ref()?;
                let code = probe::http(http.port, http.path.as_deref(), Default::default()).await.ok()?;
                status.http = Some(check_status_info::Http { status_code: Some(u32::from(code)) });
            }
            check_info::Type::Tcp => {
                let tcp = check.tcp.as_ref()?;
                let succeeded = probe::tcp(tcp.port, Default::default()).await.is_ok();
                status.tcp = Some(check_status_info::Tcp { succeeded: Some(succeeded) });
            }
            check_info::Type::Unknown => return None,
        }
        Some(())
    })
    .await;
    Some(status)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::proto::v1::CommandInfo;

    fn command_check(value: &str) -> CheckInfo {
        CheckInfo {
            r#type: Some(check_info::Type::Command as i32),
            command: Some(check_info::Command {
                command: CommandInfo { value: Some(value.into()), ..Default::default() },
            }),
            timeout_seconds: Some(0.5),
            ..Default::default()
        }
    }

    #[tokio::test]
    async fn results_carry_their_values_and_failures_are_empty() {
        let env = BTreeMap::new();
        let cwd = std::env::temp_dir();
        let exit = |s: Option<CheckStatusInfo>| s.and_then(|s| s.command).and_then(|c| c.exit_code);
        assert_eq!(exit(run(&command_check("exit 3"), &env, &cwd, None).await), Some(3));
        assert_eq!(exit(run(&command_check("true"), &env, &cwd, None).await), Some(0));
        let mut unbounded = command_check("sleep 0.2; exit 5");
        unbounded.timeout_seconds = Some(0.0);
        assert_eq!(exit(run(&unbounded, &env, &cwd, None).await), Some(5), "zero is no timeout");
        let timed_out = run(&command_check("sleep 5"), &env, &cwd, None).await.unwrap();
        assert_eq!(timed_out, empty(&command_check("x")).unwrap(), "a timeout is an empty result of the type");
        let tcp = CheckInfo {
            r#type: Some(check_info::Type::Tcp as i32),
            tcp: Some(check_info::Tcp { port: 1 }),
            timeout_seconds: Some(1.0),
            ..Default::default()
        };
        assert_eq!(run(&tcp, &env, &cwd, None).await.unwrap().tcp.unwrap().succeeded, Some(false));
        assert_eq!(empty(&CheckInfo::default()), None, "no type, no check");
    }
}
