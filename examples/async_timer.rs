//! The timer executor (`timer.rs`) written for tokio, on the driver's event stream
//! instead of the trait: each task waits the seconds in `TaskInfo.data`; a kill aborts
//! the wait and reports TASK_KILLED; messages are echoed; shutdown kills and reports
//! every task, then stops the driver; SIGTERM does the same. The same driver runs
//! underneath, with the same guarantees. Run it under the fake agent with `examples/async_timer.yaml`.

use std::{collections::HashMap, process::ExitCode, time::Duration};

use mesos_executor::{
    DriverConfig, ExecutorDriver, ExecutorEvent,
    proto::v1::{TaskId, TaskStatus},
};
use tokio::task::JoinHandle;

#[tokio::main(flavor = "current_thread")]
async fn main() -> ExitCode {
    let config = match DriverConfig::from_process_env() {
        Ok(config) => config,
        Err(e) => {
            eprintln!("async_timer: {e}");
            return ExitCode::from(64);
        }
    };
    let (driver, mut events) = match ExecutorDriver::events(config) {
        Ok(started) => started,
        Err(e) => {
            eprintln!("async_timer: {e}");
            return ExitCode::from(70);
        }
    };
    // SIGTERM (an operator, an init system) ends the executor as SHUTDOWN would: every
    // task killed and reported, then the driver stopped (ExecutorEvent::Shutdown with
    // ShutdownReason::Requested).
    let stopper = driver.clone();
    tokio::spawn(async move {
        use tokio::signal::unix::{SignalKind, signal};
        if let Ok(mut term) = signal(SignalKind::terminate()) {
            term.recv().await;
            stopper.request_shutdown();
        }
    });
    let mut tasks: HashMap<TaskId, JoinHandle<()>> = HashMap::new();
    // Reports TASK_KILLED for a task whose timer was still running.
    let kill = |id: &TaskId, timer: JoinHandle<()>| {
        if !timer.is_finished() {
            timer.abort();
            let _ = driver.send_status_update(TaskStatus::killed(id));
        }
    };
    while let Some(event) = events.next().await {
        match event {
            ExecutorEvent::Launch(task) => {
                let text = String::from_utf8_lossy(task.data.as_deref().unwrap_or_default()).trim().to_owned();
                let Some(wait) = text.parse::<f64>().ok().and_then(|s| Duration::try_from_secs_f64(s).ok()) else {
                    let _ =
                        driver.send_status_update(TaskStatus::error(&task.task_id, format!("not seconds: {text:?}")));
                    continue;
                };
                let _ = driver.send_status_update(TaskStatus::running(&task.task_id));
                let (driver, id) = (driver.clone(), task.task_id.clone());
                let timer = tokio::spawn(async move {
                    tokio::time::sleep(wait).await;
                    let _ = driver.send_status_update(TaskStatus::finished(&id));
                });
                tasks.insert(task.task_id, timer);
            }
            ExecutorEvent::Kill { task_id, .. } => match tasks.remove(&task_id) {
                Some(timer) => kill(&task_id, timer),
                None => {
                    let _ = driver.send_status_update(TaskStatus::killed(&task_id));
                }
            },
            ExecutorEvent::Message(data) => {
                let _ = driver.send_framework_message(data);
            }
            ExecutorEvent::Shutdown(_) => {
                for (id, timer) in tasks.drain() {
                    kill(&id, timer);
                }
                driver.stop();
            }
            _ => {}
        }
    }
    match events.outcome().await {
        Ok(outcome) => outcome.exit_code(),
        Err(e) => {
            eprintln!("async_timer: {e}");
            ExitCode::from(70)
        }
    }
}
