//! Runs a [`Scenario`] against a fake agent: each step acts or waits, every wait has a
//! timeout, and the first expectation that fails stops the run with what was seen.

use std::{collections::HashSet, time::Duration};

use mesos_executor::proto::v1::{
    TaskState, TaskStatus,
    executor::{Call, call},
};

use crate::{
    agent::{Agent, State},
    scenario::{Scenario, Step, UpdateFilter, kill_policy},
    transcript::Record,
};

/// The result of [`run_scenario`].
pub struct Run {
    /// Ok when every expectation held.
    pub result: Result<(), StepFailure>,
    /// Everything the agent saw and did.
    pub transcript: Vec<crate::transcript::Entry>,
    /// The agent, still listening (dropping it destroys what is left of the container).
    pub agent: crate::Listening,
    /// The executor's sandbox.
    pub sandbox: std::path::PathBuf,
}

/// Starts a fake agent for `scenario`, launches `command` as the executor, runs every
/// step, then shuts the executor down as an agent would and destroys its container.
///
/// # Errors
/// The agent cannot listen or the executor cannot be started.
pub async fn run_scenario(
    scenario: &Scenario,
    command: &[String],
    output: crate::process::Output,
) -> Result<Run, String> {
    let config = scenario.agent.to_config()?;
    let grace = config.shutdown_grace_period;
    let mut agent = crate::FakeAgent::new(config).start().await.map_err(|e| format!("cannot listen: {e}"))?;
    let sandbox = agent.launch_executor(command, output).map_err(|e| format!("cannot start {command:?}: {e}"))?;
    let result = Runner::new(agent.agent.clone()).run(scenario).await;
    finish(&agent.agent, grace).await;
    let transcript = agent.agent.transcript();
    Ok(Run { result, transcript, agent, sandbox })
}

/// Leaves nothing running: SHUTDOWN, the grace period, then container destruction.
pub async fn finish(agent: &Agent, grace: Duration) {
    use crate::agent::ExecutorState;
    if agent.inspect(|s| !matches!(s.executor, ExecutorState::Terminated | ExecutorState::Unknown)) {
        agent.shutdown();
        let _ = agent
            .wait_for("exit", grace + Duration::from_secs(2), |s| s.executor_exit.is_some(), |_| String::new())
            .await;
    }
    agent.destroy_container("scenario finished");
}

/// The first step that failed.
#[derive(Debug, Clone, thiserror::Error)]
#[error("step {number} ({step}) failed: {reason}")]
pub struct StepFailure {
    /// 1-based step number.
    pub number: usize,
    /// The step, briefly.
    pub step: String,
    /// What went wrong and what was seen instead.
    pub reason: String,
}

/// Executes scenarios step by step.
pub struct Runner {
    agent: Agent,
    default_timeout: Duration,
    claimed_updates: HashSet<usize>,
    claimed_calls: HashSet<usize>,
    /// See [`Runner::task_data`].
    task_data: Option<String>,
}

impl Runner {
    /// A runner for `agent`.
    pub fn new(agent: Agent) -> Self {
        Runner {
            agent,
            default_timeout: Duration::from_secs(10),
            claimed_updates: HashSet::new(),
            claimed_calls: HashSet::new(),
            task_data: None,
        }
    }

    /// Launches every task whose scenario gives it `data` with `template` as its
    /// `TaskInfo.data` instead, `{data}` (also `{seconds}`, as the generic scenarios'
    /// data is a number of seconds) and `{command}` replaced by the task's: so an
    /// executor with its own payload format, such as `{"cmd": "sleep {seconds}"}`, runs
    /// the generic scenarios unchanged.
    ///
    /// ```
    /// let agent = fake_agent::agent::Agent::new(Default::default());
    /// let runner = fake_agent::runner::Runner::new(agent).task_data(r#"{"cmd": "sleep {seconds}"}"#);
    /// # drop(runner);
    /// ```
    #[must_use]
    pub fn task_data(mut self, template: impl Into<String>) -> Self {
        self.task_data = Some(template.into());
        self
    }

    fn task_info(&self, spec: &crate::scenario::TaskSpec, agent_id: &str) -> mesos_executor::proto::v1::TaskInfo {
        let mut task = spec.to_task_info(agent_id);
        if let (Some(template), Some(data)) = (&self.task_data, &spec.data) {
            let command = spec.command.clone().unwrap_or_default();
            let filled = template.replace("{data}", data).replace("{seconds}", data).replace("{command}", &command);
            task.data = Some(filled.into_bytes().into());
        }
        task
    }

    /// Runs every step of `scenario`.
    ///
    /// # Errors
    /// The first step whose expectation did not hold.
    pub async fn run(&mut self, scenario: &Scenario) -> Result<(), StepFailure> {
        self.default_timeout = Duration::from_millis(scenario.default_timeout_ms);
        for (i, step) in scenario.steps.iter().enumerate() {
            let brief = describe(step);
            self.agent.note(format!("scenario step {}: {brief}", i + 1));
            if let Err(reason) = self.step(step).await {
                return Err(StepFailure { number: i + 1, step: brief, reason });
            }
        }
        Ok(())
    }

    fn timeout(&self, ms: Option<u64>) -> Duration {
        ms.map_or(self.default_timeout, Duration::from_millis)
    }

    async fn step(&mut self, step: &Step) -> Result<(), String> {
        let agent = self.agent.clone();
        let agent_id = agent.config().agent_id.clone();
        match step {
            Step::ExpectSubscribe { count, timeout_ms } => {
                let count = count.unwrap_or(1);
                agent
                    .wait_for(
                        &format!("{count} subscriptions"),
                        self.timeout(*timeout_ms),
                        |s| s.subscriptions >= count,
                        |s| format!("saw {} subscriptions; executor is {:?}", s.subscriptions, s.executor),
                    )
                    .await
                    .map_err(|e| e.to_string())
            }
            Step::Launch(spec) => agent
                .launch(self.task_info(spec, &agent_id))
                .then_some(())
                .ok_or_else(|| format!("task id {} already used", spec.task_id)),
            Step::LaunchGroup { tasks } => {
                let group = mesos_executor::proto::v1::TaskGroupInfo {
                    tasks: tasks.iter().map(|t| self.task_info(t, &agent_id)).collect(),
                };
                agent
                    .launch_group(group)
                    .then_some(())
                    .ok_or_else(|| "a task id of the group is already used".to_owned())
            }
            Step::Kill { task_id, grace_ms } => {
                agent.kill(task_id, kill_policy(*grace_ms));
                Ok(())
            }
            Step::Message { data } => {
                agent.send_message(data.clone().into_bytes());
                Ok(())
            }
            Step::Shutdown {} => {
                agent.shutdown();
                Ok(())
            }
            Step::WaitState { task_id, state, timeout_ms } => {
                let wanted = TaskState::from_str_name(state).ok_or_else(|| format!("unknown task state {state:?}"))?;
                agent
                    .wait_for(
                        &format!("task {task_id} to reach {state}"),
                        self.timeout(*timeout_ms),
                        |s| s.task(task_id).is_some_and(|t| t.state == wanted),
                        |s| match s.task(task_id) {
                            Some(t) => format!("task {task_id} is {}", t.state.as_str_name()),
                            None => format!("no task {task_id}"),
                        },
                    )
                    .await
                    .map_err(|e| e.to_string())
            }
            Step::ExpectUpdate(filter) => self.expect_update(filter).await,
            Step::ExpectCall { r#type, data, data_contains, after_step, timeout_ms } => {
                let kind = call::Type::from_str_name(r#type).ok_or_else(|| format!("unknown call type {type:?}"))?;
                let claimed = self.claimed_calls.clone();
                let after = self.after(*after_step)?;
                let wanted = DataMatch { exact: data.as_deref(), contains: data_contains.as_deref() };
                let found = |s: &State| find_call(s, kind, wanted, after, &claimed);
                agent
                    .wait_for(
                        &format!("a {type} call{}", wanted.describe()),
                        self.timeout(*timeout_ms),
                        |s| found(s).is_some(),
                        |s| format!("saw calls: {}", call_summary(s)),
                    )
                    .await
                    .map_err(|e| e.to_string())?;
                if let Some(index) = agent.inspect(found) {
                    self.claimed_calls.insert(index);
                }
                Ok(())
            }
            Step::SignalExecutor { signal } => agent.signal_executor(signal),
            Step::RestartAgent { down_ms, recovering_ms, resubscribe_within_ms } => {
                let (subscriptions, gaps) = agent.inspect(|s| (s.subscriptions, s.resubscribe_gaps));
                agent
                    .restart(Duration::from_millis(*down_ms), Duration::from_millis(recovering_ms.unwrap_or(100)))
                    .await;
                let back = tokio::time::Instant::now();
                let within = resubscribe_within_ms.map_or(agent.config().reregistration_timeout, Duration::from_millis);
                agent
                    .wait_for(
                        "the executor to resubscribe",
                        within,
                        |s| s.subscriptions > subscriptions,
                        |s| format!("executor is {:?}, {} subscriptions", s.executor, s.subscriptions),
                    )
                    .await
                    .map_err(|e| e.to_string())?;
                agent.note(format!(
                    "executor resubscribed {:.1} ms after the agent accepted SUBSCRIBE again",
                    back.elapsed().as_secs_f64() * 1e3
                ));
                let (now_gaps, lost) = agent.inspect(|s| (s.resubscribe_gaps, lost_tasks(s)));
                if now_gaps > gaps {
                    return Err(
                        "the resubscription did not carry every unacknowledged update (see transcript)".to_owned()
                    );
                }
                if !lost.is_empty() {
                    return Err(format!("the agent lost tasks the executor did not report: {}", lost.join(", ")));
                }
                Ok(())
            }
            Step::AckPolicy(policy) => {
                agent.set_ack_policy(policy.clone());
                Ok(())
            }
            Step::ReleaseAcks {} => {
                agent.release_withheld_acks();
                Ok(())
            }
            Step::Fault(fault) => {
                agent.inject(fault.clone());
                Ok(())
            }
            Step::SleepMs(ms) => {
                tokio::time::sleep(Duration::from_millis(*ms)).await;
                Ok(())
            }
            Step::ExpectNoUpdate { task_id, state, within_ms } => {
                let filter = UpdateFilter { task_id: task_id.clone(), state: state.clone(), ..Default::default() };
                let start = agent.inspect(|s| s.transcript.len());
                tokio::time::sleep(Duration::from_millis(*within_ms)).await;
                match agent.inspect(|s| find_update(s, &filter, start, &HashSet::new()).map(|i| update_at(s, i))) {
                    Some(seen) => {
                        Err(format!("expected no update {} for {within_ms} ms, saw {seen}", describe_filter(&filter)))
                    }
                    None => Ok(()),
                }
            }
            Step::ExpectNoCall { r#type, within_ms } => {
                let kind = match r#type {
                    Some(name) => {
                        Some(call::Type::from_str_name(name).ok_or_else(|| format!("unknown call type {name:?}"))?)
                    }
                    None => None,
                };
                let start = agent.inspect(|s| s.transcript.len());
                tokio::time::sleep(Duration::from_millis(*within_ms)).await;
                let seen = agent.inspect(|s| {
                    calls(s)
                        .filter(|(i, c, _)| *i >= start && kind.is_none_or(|k| c.r#type() == k))
                        .map(|(_, c, status)| describe_call(c, status))
                        .collect::<Vec<_>>()
                });
                if seen.is_empty() {
                    Ok(())
                } else {
                    Err(format!("expected no call for {within_ms} ms, saw {}", seen.join(", ")))
                }
            }
            Step::ExpectExit { code, timeout_ms } => {
                agent
                    .wait_for(
                        "the executor to exit",
                        self.timeout(*timeout_ms),
                        |s| s.executor_exit.is_some(),
                        |s| format!("executor is {:?}", s.executor),
                    )
                    .await
                    .map_err(|e| e.to_string())?;
                let how = agent.inspect(|s| s.executor_exit.clone()).unwrap_or_default();
                match code {
                    Some(code) if how != format!("exited with status {code}") => {
                        Err(format!("expected exit status {code}, the executor {how}"))
                    }
                    _ => Ok(()),
                }
            }
        }
    }

    /// The transcript index after which an `after_step` expectation looks.
    fn after(&self, step: Option<usize>) -> Result<usize, String> {
        let Some(step) = step else { return Ok(0) };
        let note = format!("scenario step {step}: ");
        self.agent
            .inspect(|s| {
                s.transcript.iter().position(|e| matches!(&e.record, Record::Note { what } if what.starts_with(&note)))
            })
            .map(|i| i + 1)
            .ok_or_else(|| format!("step {step} has not run"))
    }

    async fn expect_update(&mut self, filter: &UpdateFilter) -> Result<(), String> {
        let claimed = self.claimed_updates.clone();
        let after = self.after(filter.after_step)?;
        let found = |s: &State| find_update(s, filter, after, &claimed);
        // Waiting for one terminal state of a task that reached another is over at once.
        let other_end = |s: &State| other_terminal(s, filter, after);
        let result = self
            .agent
            .wait_for(
                &format!("an update {}", describe_filter(filter)),
                self.timeout(filter.timeout_ms),
                |s| found(s).is_some() || other_end(s).is_some(),
                |s| format!("saw updates: {}", update_summary(s, filter.task_id.as_deref())),
            )
            .await;
        result.map_err(|e| e.to_string())?;
        if self.agent.inspect(found).is_none()
            && let Some(ended) = self.agent.inspect(other_end)
        {
            return Err(format!(
                "the task ended otherwise: {ended}; saw updates: {}",
                self.agent.inspect(|s| update_summary(s, filter.task_id.as_deref()))
            ));
        }
        if let Some(index) = self.agent.inspect(found) {
            self.claimed_updates.insert(index);
        }
        Ok(())
    }
}

fn updates(s: &State) -> impl Iterator<Item = (usize, &TaskStatus)> {
    s.transcript.iter().enumerate().filter_map(|(i, e)| match &e.record {
        Record::Call { call, status: 202, .. } => call.update.as_ref().map(|u| (i, &u.status)),
        Record::Replayed { status, .. } => Some((i, status.as_ref())),
        _ => None,
    })
}

/// When `f` waits for a terminal state of one task: that task's update in another
/// terminal state, described.
fn other_terminal(s: &State, f: &UpdateFilter, after: usize) -> Option<String> {
    let (id, wanted) = (f.task_id.as_ref()?, f.state.as_ref()?);
    let terminal = |name: &str| {
        matches!(
            name,
            "TASK_FINISHED" | "TASK_FAILED" | "TASK_KILLED" | "TASK_ERROR" | "TASK_LOST" | "TASK_DROPPED" | "TASK_GONE"
        )
    };
    if !terminal(wanted) {
        return None;
    }
    updates(s).filter(|(i, st)| *i >= after && &st.task_id.value == id).find_map(|(_, st)| {
        let name = TaskState::try_from(st.state).map_or("?", |x| x.as_str_name());
        (terminal(name) && name != wanted).then(|| describe_update(st))
    })
}

fn find_update(s: &State, f: &UpdateFilter, after: usize, claimed: &HashSet<usize>) -> Option<usize> {
    updates(s)
        .filter(|(i, _)| *i >= after && !claimed.contains(i))
        .find(|(_, st)| {
            f.task_id.as_ref().is_none_or(|id| &st.task_id.value == id)
                && f.state.as_ref().is_none_or(|n| TaskState::try_from(st.state).is_ok_and(|x| x.as_str_name() == n))
                && f.healthy.is_none_or(|h| st.healthy == Some(h))
                && f.reason.as_ref().is_none_or(|r| st.reason.is_some() && st.reason().as_str_name() == r)
                && f.message_contains.as_ref().is_none_or(|m| st.message().contains(m.as_str()))
        })
        .map(|(i, _)| i)
}

fn describe_update(st: &TaskStatus) -> String {
    let state = TaskState::try_from(st.state).map_or("?", |x| x.as_str_name());
    let mut line = format!("{} {state}", st.task_id.value);
    if let Some(h) = st.healthy {
        line.push_str(&format!(" healthy={h}"));
    }
    if let Some(m) = &st.message {
        line.push_str(&format!(" {m:?}"));
    }
    line
}

/// The update at transcript index `i`, described.
fn update_at(s: &State, i: usize) -> String {
    updates(s).find(|(j, _)| *j == i).map_or_else(|| "?".to_owned(), |(_, st)| describe_update(st))
}

fn update_summary(s: &State, task: Option<&str>) -> String {
    let seen: Vec<String> = updates(s)
        .filter(|(_, st)| task.is_none_or(|t| st.task_id.value == t))
        .map(|(_, st)| describe_update(st))
        .collect();
    if seen.is_empty() { "none".to_owned() } else { seen.join("; ") }
}

fn calls(s: &State) -> impl Iterator<Item = (usize, &Call, u16)> {
    s.transcript.iter().enumerate().filter_map(|(i, e)| match &e.record {
        Record::Call { call, status, .. } => Some((i, call.as_ref(), *status)),
        _ => None,
    })
}

/// What a MESSAGE's data must be.
#[derive(Debug, Clone, Copy)]
struct DataMatch<'a> {
    exact: Option<&'a str>,
    contains: Option<&'a str>,
}

impl DataMatch<'_> {
    fn accepts(&self, call: &Call) -> bool {
        if self.exact.is_none() && self.contains.is_none() {
            return true;
        }
        let Some(message) = &call.message else { return false };
        self.exact.is_none_or(|d| message.data.as_ref() == d.as_bytes())
            && self.contains.is_none_or(|d| String::from_utf8_lossy(&message.data).contains(d))
    }

    fn describe(&self) -> String {
        match (self.exact, self.contains) {
            (Some(d), _) => format!(" with data {d:?}"),
            (None, Some(d)) => format!(" with data containing {d:?}"),
            (None, None) => String::new(),
        }
    }
}

fn find_call(
    s: &State,
    kind: call::Type,
    data: DataMatch<'_>,
    after: usize,
    claimed: &HashSet<usize>,
) -> Option<usize> {
    calls(s)
        .filter(|(i, c, status)| *i >= after && !claimed.contains(i) && c.r#type() == kind && *status < 300)
        .find(|(_, c, _)| data.accepts(c))
        .map(|(i, _, _)| i)
}

/// A call, with a MESSAGE's data, for failure messages.
fn describe_call(c: &Call, status: u16) -> String {
    match &c.message {
        Some(m) => format!("{} {status} data={:?}", c.r#type().as_str_name(), String::from_utf8_lossy(&m.data)),
        None => format!("{} {status}", c.r#type().as_str_name()),
    }
}

fn call_summary(s: &State) -> String {
    let seen: Vec<String> = calls(s).map(|(_, c, status)| describe_call(c, status)).collect();
    if seen.is_empty() { "none".to_owned() } else { seen.join(", ") }
}

fn lost_tasks(s: &State) -> Vec<String> {
    s.transcript
        .iter()
        .filter_map(|e| match &e.record {
            Record::AgentUpdate { status }
                if status.reason() == mesos_executor::proto::v1::task_status::Reason::AgentRestarted =>
            {
                Some(status.task_id.value.clone())
            }
            _ => None,
        })
        .collect()
}

fn describe_filter(f: &UpdateFilter) -> String {
    let mut parts = Vec::new();
    if let Some(t) = &f.task_id {
        parts.push(format!("task {t}"));
    }
    if let Some(st) = &f.state {
        parts.push(st.clone());
    }
    if let Some(h) = f.healthy {
        parts.push(format!("healthy={h}"));
    }
    if let Some(r) = &f.reason {
        parts.push(r.clone());
    }
    if let Some(m) = &f.message_contains {
        parts.push(format!("message containing {m:?}"));
    }
    parts.join(" ")
}

/// A one-line description of a step.
pub fn describe(step: &Step) -> String {
    match step {
        Step::ExpectSubscribe { count, .. } => format!("expect_subscribe {}", count.unwrap_or(1)),
        Step::Launch(t) => format!("launch {}", t.task_id),
        Step::LaunchGroup { tasks } => {
            format!("launch_group [{}]", tasks.iter().map(|t| t.task_id.as_str()).collect::<Vec<_>>().join(", "))
        }
        Step::Kill { task_id, .. } => format!("kill {task_id}"),
        Step::Message { .. } => "message".to_owned(),
        Step::Shutdown {} => "shutdown".to_owned(),
        Step::WaitState { task_id, state, .. } => format!("wait_state {task_id} {state}"),
        Step::ExpectUpdate(f) => format!("expect_update {}", describe_filter(f)),
        Step::ExpectCall { r#type, .. } => format!("expect_call {type}"),
        Step::ExpectNoUpdate { task_id, within_ms, .. } => {
            format!("expect_no_update {} for {within_ms} ms", task_id.as_deref().unwrap_or("any task"))
        }
        Step::ExpectNoCall { r#type, within_ms } => {
            format!("expect_no_call {} for {within_ms} ms", r#type.as_deref().unwrap_or("any"))
        }
        Step::RestartAgent { down_ms, .. } => format!("restart_agent down {down_ms} ms"),
        Step::SignalExecutor { signal } => format!("signal_executor {signal}"),
        Step::AckPolicy(p) => format!("ack_policy {p:?}"),
        Step::ReleaseAcks {} => "release_acks".to_owned(),
        Step::Fault(f) => format!("fault {f:?}"),
        Step::SleepMs(ms) => format!("sleep {ms} ms"),
        Step::ExpectExit { code, .. } => format!("expect_exit {}", code.map_or("any".to_owned(), |c| c.to_string())),
    }
}
