//! Running a task's probes, as the book asks: each run is a job, as the task's user,
//! that answers the book with the result. When they run, and what a result means, is the book's
//! (`book/checks.rs`).

use std::sync::Arc;

use mesos_executor::executor::{check, health};

use super::Supervisor;
use crate::book::{Input, Probe};

impl Supervisor {
    /// Runs one probe of the task in its environment and working directory.
    pub(super) fn run_probe(&mut self, task_id: &str, probe: Probe) {
        let cwd = self.cwd(task_id);
        let Some(record) = self.tasks.get_mut(task_id) else { return };
        let Some(env) = record.env.as_ref().map(Arc::clone) else { return };
        // COMMAND probes run as the task's user.
        let (user, id) = (record.user.clone(), task_id.to_owned());
        let job = self.jobs.spawn(async move {
            let user = user.as_deref();
            Some(match probe {
                Probe::Health(hc) => Input::Health { result: health::probe(&hc, &env, &cwd, user).await, task_id: id },
                Probe::Check(ck) => Input::Check { status: check::run(&ck, &env, &cwd, user).await, task_id: id },
            })
        });
        record.probes.retain(|p| !p.is_finished());
        record.probes.push(job);
    }
}
