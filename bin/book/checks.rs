//! The book's side of health checks and general checks: when each runs (first after its
//! delay, then an interval after each result), what a result means, and the pause while
//! the agent is away (custom mode), as upstream's default executor pauses its checkers
//! on disconnection and resumes them, with a check at once, on SUBSCRIBED
//! (`src/launcher/default_executor.cpp`, `src/checks/checker_process.cpp`).

use std::time::Duration;

use mesos_executor::{
    executor::health::{self, Verdict},
    proto::v1::{CheckInfo, CheckStatusInfo, HealthCheck, TaskState, task_status::Reason},
};
use tokio::time::Instant;

use super::{Effect, KillReason, Mode, Stage, TaskBook, after};

/// The shortest interval between two runs of a probe.
const MIN_INTERVAL: Duration = Duration::from_millis(10);

/// One probe to run.
#[derive(Debug, Clone, PartialEq)]
pub enum Probe {
    /// The task's health check.
    Health(Box<HealthCheck>),
    /// The task's general check.
    Check(Box<CheckInfo>),
}

/// When a probe runs next.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub(super) enum Schedule {
    /// The task has no such probe, or it no longer runs.
    #[default]
    Off,
    /// Next run at this time.
    Due(Instant),
    /// Running; the next is scheduled when its result comes in.
    Running,
    /// Was running when the agent went away: its result is dropped, and it runs again
    /// when the agent is back.
    Stale,
}

impl Schedule {
    /// The first run, at `at` (`None`: no such probe).
    pub(super) fn first(at: Option<Instant>) -> Self {
        at.map_or(Schedule::Off, Schedule::Due)
    }

    /// When it is next due, if it is scheduled.
    pub(super) fn due(self) -> Option<Instant> {
        match self {
            Schedule::Due(at) => Some(at),
            _ => None,
        }
    }
}

/// The interval after a result, from the probe's own.
fn interval(seconds: f64) -> Duration {
    health::seconds(seconds).max(MIN_INTERVAL)
}

impl TaskBook {
    /// Whether the task has probes (the shell keeps its environment for them).
    pub fn probed(&self, id: &str) -> bool {
        self.tasks.get(id).is_some_and(|t| t.health.is_some() || t.check.is_some())
    }

    /// The task's health so far, for the log: failures counted in a row, and the latest
    /// verdict (`None`: no health check, or no counted result yet).
    pub fn health_of(&self, id: &str) -> (u32, Option<bool>) {
        let tracker = self.tasks.get(id).and_then(|t| t.tracker.as_ref());
        tracker.map_or((0, None), |t| (t.consecutive_failures(), t.healthy()))
    }

    /// Runs whichever of the task's probes are due at `now`.
    pub(super) fn run_due_probes(&mut self, id: &str, now: Instant, out: &mut Vec<Effect>) {
        if self.paused {
            return;
        }
        let Some(task) = self.tasks.get_mut(id) else { return };
        if task.stage != Stage::Running || task.killing.is_some() {
            return;
        }
        if let (Some(at), Some(hc)) = (task.health_due.due(), &task.health)
            && at <= now
        {
            task.health_due = Schedule::Running;
            out.push(Effect::RunProbe { task_id: id.to_owned(), probe: Probe::Health(Box::new(hc.clone())) });
        }
        if let (Some(at), Some(ck)) = (task.check_due.due(), &task.check)
            && at <= now
        {
            task.check_due = Schedule::Running;
            out.push(Effect::RunProbe { task_id: id.to_owned(), probe: Probe::Check(Box::new(ck.clone())) });
        }
    }

    /// The agent is away: probes pause (custom and default modes); those running are
    /// disregarded.
    pub(super) fn pause(&mut self) {
        if self.mode == Mode::Command {
            return;
        }
        self.paused = true;
        for task in self.tasks.values_mut() {
            for schedule in [&mut task.health_due, &mut task.check_due] {
                if *schedule == Schedule::Running {
                    *schedule = Schedule::Stale;
                }
            }
        }
    }

    /// The agent is back: every paused probe runs at once. A probe that was running when
    /// the agent left is stopped (one with no timeout may never answer) and runs again,
    /// as upstream's default executor starts its checkers afresh on SUBSCRIBED.
    pub(super) fn resume(&mut self, now: Instant, out: &mut Vec<Effect>) {
        if !self.paused {
            return;
        }
        self.paused = false;
        for id in &self.running {
            let Some(task) = self.tasks.get_mut(id) else { continue };
            let mut stale = false;
            for schedule in [&mut task.health_due, &mut task.check_due] {
                match schedule {
                    Schedule::Due(at) => *at = now,
                    Schedule::Stale => {
                        stale = true;
                        *schedule = Schedule::Due(now);
                    }
                    Schedule::Off | Schedule::Running => {}
                }
            }
            if stale {
                out.push(Effect::Quiet { task_id: id.clone() });
            }
        }
    }

    /// A probe's result came in: the next run is an interval from now, unless the
    /// result is to be dropped (the agent was away meanwhile). Returns whether the
    /// result counts.
    fn probe_done(&mut self, id: &str, health: bool, now: Instant) -> bool {
        let paused = self.paused;
        let Some(task) = self.tasks.get_mut(id) else { return false };
        let (schedule, seconds) = if health {
            (&mut task.health_due, task.health.as_ref().map(HealthCheck::interval_seconds))
        } else {
            (&mut task.check_due, task.check.as_ref().map(CheckInfo::interval_seconds))
        };
        let Some(seconds) = seconds else { return false };
        // A result while the agent is away, or of a run it went away during, is dropped.
        let counts = matches!(*schedule, Schedule::Running | Schedule::Due(_)) && !paused;
        *schedule = match *schedule {
            Schedule::Stale => Schedule::Due(now),
            Schedule::Running | Schedule::Due(_) => Schedule::Due(after(now, interval(seconds))),
            Schedule::Off => Schedule::Off,
        };
        counts && task.stage == Stage::Running && task.killing.is_none()
    }

    pub(super) fn health(&mut self, id: &str, result: Result<(), String>, now: Instant, out: &mut Vec<Effect>) {
        if !self.probe_done(id, true, now) {
            return;
        }
        let Some(task) = self.tasks.get_mut(id) else { return };
        let Some(tracker) = &mut task.tracker else { return };
        match tracker.observe(result.is_ok(), now) {
            Verdict::Quiet => {}
            // Upstream's health updates carry `healthy` and no message.
            Verdict::Report(healthy) => {
                task.healthy = Some(healthy);
                let reason = Some(Reason::TaskHealthCheckStatusUpdated);
                self.report(out, id, TaskState::TaskRunning, None, reason);
            }
            Verdict::Kill => {
                // Upstream's command executor reports the failure that reaches the limit
                // too (RUNNING, healthy false), then kills.
                task.healthy = Some(false);
                let reason = Some(Reason::TaskHealthCheckStatusUpdated);
                self.report(out, id, TaskState::TaskRunning, None, reason);
                let grace = self.grace(id, None);
                self.kill(id, grace, KillReason::HealthCheck, now, out);
            }
            // The library's verdicts are #[non_exhaustive]; one it adds is not acted on
            // until the book knows it.
            _ => {}
        }
    }

    /// A general check result: reported only when it changes (upstream).
    pub(super) fn checked(&mut self, id: &str, status: Option<CheckStatusInfo>, now: Instant, out: &mut Vec<Effect>) {
        if !self.probe_done(id, false, now) {
            return;
        }
        let Some(status) = status else { return };
        let Some(task) = self.tasks.get_mut(id) else { return };
        if task.check_status.as_ref() == Some(&status) {
            return;
        }
        task.check_status = Some(status);
        let state = task.state;
        self.report(out, id, state, None, Some(Reason::TaskCheckStatusUpdated));
    }
}
