//! The smallest correct custom executor: a task waits the seconds in `TaskInfo.data`; kill
//! stops it; messages are echoed; shutdown kills and reports all. See examples/timer.yaml.
use std::{collections::HashMap, process::ExitCode, sync::mpsc, thread, time::Duration};

use mesos_executor::{
    Bytes, DriverHandle, Executor, ExecutorDriver, ShutdownReason,
    proto::v1::{KillPolicy, TaskId, TaskInfo, TaskStatus},
};

#[derive(Default)]
struct Timer {
    /// Per running task: the channel that kills it, and its thread.
    tasks: HashMap<String, (mpsc::Sender<()>, thread::JoinHandle<()>)>,
}

impl Executor for Timer {
    fn launch_task(&mut self, driver: &DriverHandle, task: TaskInfo) {
        let text = String::from_utf8_lossy(task.data.as_deref().unwrap_or_default()).trim().to_owned();
        let Some(seconds) = text.parse::<f64>().ok().and_then(|s| Duration::try_from_secs_f64(s).ok()) else {
            let _ = driver.send_status_update(TaskStatus::error(&task.task_id, format!("not seconds: {text:?}")));
            return;
        };
        let (kill, killed) = mpsc::channel();
        let (driver, id) = (driver.clone(), task.task_id.clone());
        let _ = driver.send_status_update(TaskStatus::running(&id));
        let work = thread::spawn(move || {
            // The work: wait out the time unless a kill comes first.
            let done = match killed.recv_timeout(seconds) {
                Err(mpsc::RecvTimeoutError::Timeout) => TaskStatus::finished(&id),
                _ => TaskStatus::killed(&id),
            };
            let _ = driver.send_status_update(done);
        });
        self.tasks.insert(task.task_id.value, (kill, work));
    }

    fn kill_task(&mut self, driver: &DriverHandle, task_id: TaskId, _: Option<KillPolicy>) {
        if let Some((kill, work)) = self.tasks.remove(&task_id.value) {
            let _ = kill.send(()); // Its thread reports TASK_KILLED (or TASK_FINISHED if it won).
            let _ = work.join();
        } else {
            let _ = driver.send_status_update(TaskStatus::killed(task_id)); // Never heard of it.
        }
    }

    fn framework_message(&mut self, driver: &DriverHandle, data: Bytes) {
        let _ = driver.send_framework_message(data);
    }

    fn shutdown(&mut self, driver: &DriverHandle, _: ShutdownReason) {
        for (_, (kill, work)) in self.tasks.drain() {
            let _ = kill.send(());
            let _ = work.join();
        }
        driver.stop(); // Ends once every terminal update is acknowledged.
    }
}

fn main() -> ExitCode {
    match ExecutorDriver::from_env(Timer::default()).and_then(ExecutorDriver::run) {
        Ok(outcome) => outcome.exit_code(),
        Err(e) => {
            eprintln!("timer: {e}");
            ExitCode::from(64)
        }
    }
}
