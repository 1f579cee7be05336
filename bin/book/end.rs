//! The book's side of a task's end: kills (before and after the spawn) with their grace
//! periods, exits and their terminal states, and the group rule.

use std::time::Duration;

use mesos_executor::{
    executor::process::Exit,
    proto::v1::{KillPolicy, TaskState, task_status::Reason},
};
use tokio::time::Instant;

use super::{Effect, KillReason, Killing, Report, Signal, Stage, TaskBook, after};

impl TaskBook {
    pub(super) fn kill_requested(
        &mut self,
        id: &str,
        policy: Option<&KillPolicy>,
        now: Instant,
        out: &mut Vec<Effect>,
    ) {
        if self.shutting_down {
            return;
        }
        match self.tasks.get(id) {
            // A KILL for a task we never got (a lost LAUNCH): answer with a terminal
            // update so it does not stay live on the agent (reference §10.3).
            None => {
                let report = Report {
                    task_id: id.to_owned(),
                    state: TaskState::TaskKilled,
                    message: Some("Task is not known to this executor".into()),
                    reason: None,
                    healthy: None,
                    check_status: None,
                };
                out.push(Effect::Report(report));
            }
            Some(task) if task.done() => {}
            Some(_) => {
                let grace = self.grace(id, policy);
                self.kill(id, grace, KillReason::Kill, now, out);
            }
        }
    }

    /// SIGTERM now and SIGKILL at the end of `grace`; a repeated kill can only shorten
    /// the time left, as in upstream's command executor. A task not spawned yet never
    /// will be: its fetch is cancelled and it is TASK_KILLED at once.
    pub(super) fn kill(&mut self, id: &str, grace: Duration, reason: KillReason, now: Instant, out: &mut Vec<Effect>) {
        let killing_state = self.killing_state;
        let Some(task) = self.tasks.get_mut(id) else { return };
        if task.done() {
            return;
        }
        if let Some(killing) = &mut task.killing {
            let deadline = after(killing.since, grace);
            if deadline < killing.deadline {
                killing.deadline = deadline;
                if deadline <= now && task.stage == Stage::Running && !killing.escalated {
                    killing.escalated = true;
                    out.push(killing.signal(id, Signal::Kill));
                }
            }
            return;
        }
        let stage = task.stage;
        let escalated = grace.is_zero() && stage == Stage::Running;
        let killing = Killing { since: now, deadline: after(now, grace), reason, escalated };
        let signal = killing.signal(id, if escalated { Signal::Kill } else { Signal::Term });
        task.killing = Some(killing);
        out.push(Effect::Quiet { task_id: id.to_owned() });
        if killing_state && reason != KillReason::MaxCompletion {
            self.report(out, id, TaskState::TaskKilling, None, None);
        }
        match stage {
            Stage::Queued | Stage::Fetching | Stage::Ready => self.kill_unstarted(id, stage, now, out),
            // The signal goes out when the spawn is reported.
            Stage::Spawning | Stage::Done => {}
            Stage::Running => out.push(signal),
        }
    }

    /// A task killed before its spawn: nothing runs, so it ends now, and its unit with
    /// it (upstream's default executor kills a whole group for one member).
    fn kill_unstarted(&mut self, id: &str, stage: Stage, now: Instant, out: &mut Vec<Effect>) {
        if stage == Stage::Fetching {
            out.push(Effect::CancelFetch { task_id: id.to_owned() });
        }
        let Some(task) = self.finish(id) else { return };
        let (unit, group) = (task.unit, task.group);
        out.push(Effect::CleanUp { task_id: id.to_owned() });
        let message = Some("Task killed before it was started".to_owned());
        self.report(out, id, TaskState::TaskKilled, message, None);
        // Its unit can no longer start whole: no spawn, and its group falls.
        self.units.remove(&unit);
        self.group_rule(id, group, TaskState::TaskKilled, now, out);
    }

    pub(super) fn exited(&mut self, id: &str, exit: Result<Exit, String>, now: Instant, out: &mut Vec<Effect>) {
        let Some(task) = self.finish(id) else { return };
        let reason = task.killing.as_ref().map(|k| k.reason);
        if reason == Some(KillReason::HealthCheck) {
            task.healthy = Some(false);
        }
        let group = task.group;
        let (state, message, why) = match (&exit, reason) {
            (Err(e), _) => (TaskState::TaskFailed, format!("Failed to get exit status for Command: {e}"), None),
            (Ok(exit), Some(KillReason::MaxCompletion)) => {
                (TaskState::TaskFailed, exit.message(), Some(Reason::MaxCompletionTimeReached))
            }
            (Ok(exit), Some(KillReason::Stopped)) => (
                TaskState::TaskKilled,
                format!("{}: the executor was asked to stop (SIGTERM or SIGINT), not by the framework", exit.message()),
                Some(Reason::ExecutorTerminated),
            ),
            (Ok(exit), Some(_)) => (TaskState::TaskKilled, exit.message(), None),
            (Ok(Exit::Code(0)), None) => (TaskState::TaskFinished, Exit::Code(0).message(), None),
            // Upstream's command executor sets no reason on a failed command (`reaped`).
            (Ok(exit), None) => (TaskState::TaskFailed, exit.message(), None),
        };
        out.push(Effect::Quiet { task_id: id.to_owned() });
        // Its leftovers go before the update says it ended.
        out.push(Effect::CleanUp { task_id: id.to_owned() });
        self.report(out, id, state, Some(message), why);
        self.group_rule(id, group, state, now, out);
    }

    /// Default executor: a failed or killed member takes its group down with it.
    pub(super) fn group_rule(
        &mut self,
        id: &str,
        group: Option<usize>,
        state: TaskState,
        now: Instant,
        out: &mut Vec<Effect>,
    ) {
        let Some(index) = group else { return };
        if !matches!(state, TaskState::TaskFailed | TaskState::TaskKilled) || self.shutting_down {
            return;
        }
        let Some(members) = self.groups.get(&index) else { return };
        let others: Vec<String> = members.iter().filter(|o| o.as_str() != id).cloned().collect();
        for other in others {
            // Upstream's default executor kills the rest of a group with its default
            // grace (`waited` calls `kill(container)`); custom mode honours the task's.
            let grace = match self.mode {
                super::Mode::Default => mesos_executor::executor::kill::DEFAULT_KILL_GRACE,
                _ => self.grace(&other, None),
            };
            self.kill(&other, grace, KillReason::GroupMember, now, out);
        }
    }
}
