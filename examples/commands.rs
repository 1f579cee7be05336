//! A custom executor that runs each task's command as a real process, with the
//! library's toolkit: `launch` finds the CommandInfo (TaskInfo.command, or JSON in
//! TaskInfo.data) and builds the process with the environment merge; `process` starts it
//! in a process group of its own, as a `TaskProcess` whose `wait` kills whatever the task
//! left running when it exits, and whose `terminate` ends it with SIGTERM, then SIGKILL
//! when the kill policy's grace period is over (`kill` says how long that is). Exit code 0 is TASK_FINISHED, anything else
//! TASK_FAILED with upstream's message. Run it under the fake agent with
//! `examples/commands.yaml`.

use std::{collections::HashMap, process::ExitCode, process::Stdio};

use mesos_executor::{
    DriverHandle, Executor, ExecutorDriver, ShutdownReason,
    executor::{
        kill,
        launch::{self, LaunchError},
        process::{self, Exit, TaskProcess},
    },
    proto::v1::{KillPolicy, TaskId, TaskInfo, TaskStatus, task_status::Reason},
};
use tokio::sync::oneshot;

/// A running task: how to kill it (with its grace period), and its watcher.
struct Running {
    kill: oneshot::Sender<std::time::Duration>,
    watcher: tokio::task::JoinHandle<()>,
    own_policy: Option<KillPolicy>,
}

struct Commands {
    sandbox: std::path::PathBuf,
    /// Each task's marker starts with this: unique per executor run.
    run_id: String,
    tasks: HashMap<String, Running>,
}

impl Commands {
    fn spec(&self, task: &TaskInfo) -> Result<launch::LaunchSpec, LaunchError> {
        let (command, _) = launch::resolve_command(task, None)?;
        launch::check_supported(task, &command)?;
        let marker = format!("{}/{}", self.run_id, task.task_id.value);
        // The executor's environment is the base of the task's (a variable that is not
        // UTF-8 cannot be passed on faithfully, so it is not).
        let base = std::env::vars_os().filter_map(|(k, v)| Some((k.into_string().ok()?, v.into_string().ok()?)));
        launch::build(task, &command, base, &marker)
    }
}

impl Executor for Commands {
    fn launch_task(&mut self, driver: &DriverHandle, task: TaskInfo) {
        let id = task.task_id.clone();
        let spec = match self.spec(&task) {
            Ok(spec) => spec,
            Err(e) => return drop(driver.send_status_update(TaskStatus::error(&id, e.to_string()))),
        };
        let mut process: TaskProcess = match process::spawn(&spec, &self.sandbox, Stdio::inherit(), Stdio::inherit()) {
            Ok(process) => process,
            Err(e) => return drop(driver.send_status_update(TaskStatus::failed(&id, format!("cannot start: {e}")))),
        };
        let _ = driver.send_status_update(TaskStatus::running(&id));
        let (kill_tx, kill_rx) = oneshot::channel();
        let driver = driver.clone();
        // The driver's runtime is current in callbacks, so tasks can be spawned on it.
        // Both `wait` and `terminate` return once nothing of the task runs any more, so
        // its terminal update never leaves a process of it behind.
        let watcher = tokio::spawn(async move {
            let status = tokio::select! {
                exit = process.wait() => match exit {
                    Ok(Exit::Code(0)) => TaskStatus::finished(&id),
                    Ok(exit) => TaskStatus::failed(&id, exit.message()).with_reason(Reason::CommandExecutorFailed),
                    Err(e) => TaskStatus::failed(&id, format!("cannot wait for the task: {e}")),
                },
                Ok(grace) = kill_rx => match process.terminate(grace).await {
                    Ok(exit) => TaskStatus::killed(&id).with_message(exit.message()),
                    Err(e) => TaskStatus::killed(&id).with_message(e.to_string()),
                },
            };
            let _ = driver.send_status_update(status);
        });
        let running = Running { kill: kill_tx, watcher, own_policy: task.kill_policy };
        self.tasks.insert(task.task_id.value, running);
    }

    fn kill_task(&mut self, driver: &DriverHandle, task_id: TaskId, policy: Option<KillPolicy>) {
        match self.tasks.remove(&task_id.value) {
            Some(task) => {
                let _ = task.kill.send(kill::grace_period(policy.as_ref(), task.own_policy.as_ref()));
            }
            None => {
                let _ = driver.send_status_update(TaskStatus::killed(task_id));
            }
        }
    }

    fn shutdown(&mut self, driver: &DriverHandle, reason: ShutdownReason) {
        eprintln!("commands: shutting down ({reason})");
        let watchers: Vec<_> = self
            .tasks
            .drain()
            .map(|(_, task)| {
                let _ = task.kill.send(kill::grace_period(None, task.own_policy.as_ref()));
                task.watcher
            })
            .collect();
        // Stop once every task has reported its end; the driver then waits for the acks.
        let driver = driver.clone();
        tokio::spawn(async move {
            for watcher in watchers {
                let _ = watcher.await;
            }
            driver.stop();
        });
    }
}

fn main() -> ExitCode {
    let run_id = format!("commands-{}", std::process::id());
    let driver = ExecutorDriver::from_env(Commands {
        sandbox: std::env::var_os("MESOS_SANDBOX").map_or_else(|| ".".into(), Into::into),
        run_id,
        tasks: HashMap::new(),
    });
    match driver.and_then(ExecutorDriver::run) {
        Ok(outcome) => outcome.exit_code(),
        Err(e) => {
            eprintln!("commands: {e}");
            ExitCode::from(64)
        }
    }
}
