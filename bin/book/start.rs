//! The book's side of a start: admitting a LAUNCH or LAUNCH_GROUP, the members'
//! fetches (at most [`FETCHES_PER_UNIT`] of a unit at once), the all-or-nothing spawn
//! once every member is ready, and the spawn's results.

use std::time::Duration;

use mesos_executor::{
    executor::{
        health::Tracker,
        kill::{self, policy_grace},
        launch::LaunchError,
    },
    proto::v1::{TaskInfo, TaskState, task_status::Reason},
};
use tokio::time::Instant;
use tracing::warn;

use super::{Effect, FETCHES_PER_UNIT, Prepared, Signal, Stage, Task, TaskBook, Unit, after, checks::Schedule};
use crate::group::GroupFile;

impl TaskBook {
    /// Why a task id cannot be launched now, if it cannot.
    fn refusal(&self, id: &str) -> Option<String> {
        // Stopped: its last updates are being acknowledged, and it ends then.
        if self.shutting_down || self.stopped {
            return Some("the executor is shutting down".to_owned());
        }
        if self.mode == super::Mode::Command && self.launched {
            return Some("Attempted to run multiple tasks using a \"command\" executor".to_owned());
        }
        if self.tasks.contains_key(id) {
            return Some(format!("task id {id:?} is already used by a task of this executor"));
        }
        None
    }

    /// Whether `id` belongs to a task of the book (live or ended): a LAUNCH that reuses it
    /// is dropped unanswered, since any update for the id would be read as the book's
    /// task's (a TASK_FAILED for a task that then reports TASK_RUNNING). The agent never
    /// sends one: it refuses a duplicate task id itself (`Slave::run`).
    fn duplicate(&self, id: &str) -> bool {
        let taken = self.tasks.contains_key(id);
        if taken {
            warn!(task_id = id, "a LAUNCH reuses the id of a task of this executor; dropped, unanswered");
        }
        taken
    }

    /// Why `more` tasks cannot be admitted now, if the cap says so.
    fn over_cap(&self, more: usize) -> Option<String> {
        let cap = self.max_tasks?;
        let live = self.live;
        (live.saturating_add(more) > cap).then(|| {
            format!(
                "the executor runs at most {cap} tasks at once (--max_tasks); {live} are running, {more} more asked"
            )
        })
    }

    fn enter(&mut self, task: &TaskInfo, group: Option<usize>, unit: usize, spec: Prepared) {
        let check_status = task.check.as_ref().and_then(mesos_executor::executor::check::empty);
        self.live = self.live.saturating_add(1);
        self.tasks.insert(
            task.task_id.value.clone(),
            Task {
                grace: task.kill_policy.as_ref().and_then(policy_grace),
                max_completion: task.max_completion_time.as_ref().map(kill::duration_of).filter(|d| !d.is_zero()),
                complete_by: None,
                health: task.health_check.clone(),
                check: task.check.clone(),
                group,
                unit,
                spec: Some(Box::new(spec)),
                stage: Stage::Queued,
                state: TaskState::TaskStaging,
                killing: None,
                healthy: None,
                tracker: None,
                check_status,
                health_due: Schedule::default(),
                check_due: Schedule::default(),
            },
        );
    }

    fn new_unit(&mut self, ids: Vec<String>, file: Option<GroupFile>) -> usize {
        let number = self.next_unit;
        self.next_unit = self.next_unit.wrapping_add(1);
        self.units.insert(number, Unit { ids, file });
        number
    }

    pub(super) fn launch(&mut self, task: TaskInfo, spec: Result<Prepared, LaunchError>, out: &mut Vec<Effect>) {
        let id = task.task_id.value.clone();
        if self.duplicate(&id) {
            return;
        }
        if let Some(refusal) = self.refusal(&id) {
            return Self::refuse(out, &id, TaskState::TaskFailed, Reason::TaskInvalid, refusal);
        }
        self.launched = true;
        let spec = match spec {
            Ok(spec) => spec,
            Err(e) => return Self::refuse(out, &id, TaskState::TaskError, Reason::TaskInvalid, e.to_string()),
        };
        if let Some(why) = self.over_cap(1) {
            return Self::refuse(out, &id, TaskState::TaskFailed, Reason::ContainerLimitation, why);
        }
        let unit = self.new_unit(vec![id.clone()], None);
        self.enter(&task, None, unit, spec);
        self.report(out, &id, TaskState::TaskStarting, None, None);
        self.start_fetches(unit, out);
    }

    pub(super) fn launch_group(
        &mut self,
        members: Vec<(TaskInfo, Result<Prepared, LaunchError>)>,
        file: Option<GroupFile>,
        out: &mut Vec<Effect>,
    ) {
        if self.mode == super::Mode::Default {
            // Whatever becomes of this group, the executor ends once no task is left, as
            // upstream's does once its containers are gone, launched or not.
            self.launched = true;
        }
        if self.mode == super::Mode::Command {
            for (task, _) in members.iter().filter(|(t, _)| !self.duplicate(&t.task_id.value)) {
                let message = "task groups need a custom executor, not the command executor".to_owned();
                Self::refuse(out, &task.task_id.value, TaskState::TaskError, Reason::TaskGroupInvalid, message);
            }
            return;
        }
        let ids: Vec<String> = members.iter().map(|(t, _)| t.task_id.value.clone()).collect();
        let mut seen = std::collections::HashSet::new();
        let duplicate =
            ids.iter().find(|id| !seen.insert(id.as_str())).map(|id| format!("task id {id:?} appears twice"));
        let refusal = ids.iter().find_map(|id| self.refusal(id)).or(duplicate);
        let invalid = refusal.or_else(|| {
            members.iter().find_map(|(t, s)| s.as_ref().err().map(|e| format!("task {:?}: {e}", t.task_id.value)))
        });
        if let Some(why) = invalid {
            // The default executor refuses a group as a whole (and never answers for a
            // member whose id is a task's of the book, nor twice for one id).
            let mut answered = std::collections::HashSet::new();
            for id in ids.iter().filter(|id| answered.insert(id.as_str()) && !self.duplicate(id)) {
                let message = format!("task group refused: {why}");
                Self::refuse(out, id, TaskState::TaskError, Reason::TaskGroupInvalid, message);
            }
            return;
        }
        if let Some(why) = self.over_cap(ids.len()) {
            // Never half a group.
            for id in &ids {
                let message = format!("task group refused: {why}");
                Self::refuse(out, id, TaskState::TaskFailed, Reason::ContainerLimitation, message);
            }
            return;
        }
        self.launched = true;
        let group = self.next_group;
        self.next_group = self.next_group.wrapping_add(1);
        self.groups.insert(group, ids.clone());
        let unit = self.new_unit(ids, file);
        for (task, spec) in members {
            let Ok(spec) = spec else { continue };
            self.enter(&task, Some(group), unit, spec);
            self.report(out, &task.task_id.value, TaskState::TaskStarting, None, None);
        }
        self.start_fetches(unit, out);
    }

    /// Gives queued members of `unit` a fetch slot while the unit has one free.
    fn start_fetches(&mut self, unit: usize, out: &mut Vec<Effect>) {
        let Some(ids) = self.units.get(&unit).map(|u| u.ids.clone()) else { return };
        let mut fetching = ids.iter().filter(|id| self.stage_of(id) == Some(Stage::Fetching)).count();
        for id in ids {
            if fetching >= FETCHES_PER_UNIT {
                return;
            }
            let Some(task) = self.tasks.get_mut(&id) else { continue };
            if task.stage != Stage::Queued {
                continue;
            }
            let Some(spec) = task.spec.take() else { continue };
            task.stage = Stage::Fetching;
            fetching += 1;
            out.push(Effect::Fetch { task_id: id, prepared: spec });
        }
    }

    fn stage_of(&self, id: &str) -> Option<Stage> {
        self.tasks.get(id).map(|t| t.stage)
    }

    /// A member's fetch ended: the next member's turn, and the spawn once all are ready;
    /// or, when it failed, the whole unit fails unstarted.
    pub(super) fn fetched(&mut self, id: &str, result: Result<(), String>, _now: Instant, out: &mut Vec<Effect>) {
        let Some(task) = self.tasks.get_mut(id) else { return };
        // Killed meanwhile (its fetch was cancelled): a late answer changes nothing.
        if task.stage != Stage::Fetching {
            return;
        }
        let unit = task.unit;
        match result {
            Ok(()) => {
                task.stage = Stage::Ready;
                self.start_fetches(unit, out);
                self.spawn_if_ready(unit, out);
            }
            Err(error) => {
                // Its fetch is over; the others' are stopped.
                task.stage = Stage::Ready;
                let ids = self.units.get(&unit).map(|u| u.ids.clone()).unwrap_or_default();
                self.not_started(&ids, id, &error, out);
            }
        }
    }

    /// The all-or-nothing start: one spawn of every member, once each is ready.
    fn spawn_if_ready(&mut self, unit: usize, out: &mut Vec<Effect>) {
        let Some(members) = self.units.get(&unit) else { return };
        if !members.ids.iter().all(|id| self.stage_of(id) == Some(Stage::Ready)) {
            return;
        }
        let Some(Unit { ids, file }) = self.units.remove(&unit) else { return };
        for id in &ids {
            if let Some(task) = self.tasks.get_mut(id) {
                task.stage = Stage::Spawning;
            }
        }
        out.push(Effect::Spawn { task_ids: ids, file });
    }

    /// A start that did not happen: every task of it not yet ended fails, naming the
    /// member; fetches still running are cancelled.
    pub(super) fn not_started(&mut self, ids: &[String], member: &str, error: &str, out: &mut Vec<Effect>) {
        for id in ids {
            if self.stage_of(id) == Some(Stage::Fetching) {
                out.push(Effect::CancelFetch { task_id: id.clone() });
            }
            let Some(task) = self.finish(id) else { continue };
            let unit = task.unit;
            self.units.remove(&unit);
            let message = if ids.len() > 1 {
                format!("task group not started: member {member:?} could not be prepared: {error}")
            } else {
                format!("task not started: {error}")
            };
            out.push(Effect::CleanUp { task_id: id.clone() });
            self.report(out, id, TaskState::TaskFailed, Some(message), Some(Reason::ContainerLaunchFailed));
        }
    }

    pub(super) fn spawned(&mut self, id: &str, result: Result<(), String>, now: Instant, out: &mut Vec<Effect>) {
        let Some(task) = self.tasks.get_mut(id) else { return };
        if task.stage != Stage::Spawning {
            return;
        }
        match result {
            Ok(()) => {
                task.stage = Stage::Running;
                self.running.insert(id.to_owned());
                // A member killed before its spawn was performed (its group fell): the
                // kill it missed, now; the deadline is the book's.
                if let Some(killing) = &mut task.killing {
                    let signal = if killing.deadline <= now {
                        killing.escalated = true;
                        Signal::Kill
                    } else {
                        Signal::Term
                    };
                    out.push(killing.signal(id, signal));
                    return;
                }
                task.tracker = task.health.as_ref().map(|h| Tracker::new(h, now));
                task.complete_by = task.max_completion.map(|limit| after(now, limit));
                let delay = |seconds: f64| after(now, mesos_executor::executor::health::seconds(seconds));
                task.health_due = Schedule::first(task.health.as_ref().map(|h| delay(h.delay_seconds())));
                task.check_due = Schedule::first(task.check.as_ref().map(|c| delay(c.delay_seconds())));
                self.report(out, id, TaskState::TaskRunning, None, None);
            }
            Err(message) => {
                let group = task.group;
                self.finish(id);
                out.push(Effect::CleanUp { task_id: id.to_owned() });
                self.report(out, id, TaskState::TaskFailed, Some(message), Some(Reason::CommandExecutorFailed));
                self.group_rule(id, group, TaskState::TaskFailed, now, out);
            }
        }
    }

    /// The KILL's grace period, else the task's, else the upstream default of 3 s.
    pub(super) fn grace(&self, id: &str, policy: Option<&mesos_executor::proto::v1::KillPolicy>) -> Duration {
        policy
            .and_then(policy_grace)
            .or_else(|| self.tasks.get(id).and_then(|t| t.grace))
            .unwrap_or(kill::DEFAULT_KILL_GRACE)
    }
}
