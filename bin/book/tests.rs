//! The task book's rules, without processes, sockets or clocks.

use mesos_executor::proto::v1::{
    CheckInfo, DurationInfo, HealthCheck, KillPolicy, TaskId, TaskInfo, check_info, check_status_info, health_check,
};

use mesos_executor::executor::process::Exit;

use super::*;

const MS: Duration = Duration::from_millis(1);
const SEC: Duration = Duration::from_secs(1);

fn task(id: &str) -> TaskInfo {
    TaskInfo { name: id.into(), task_id: TaskId { value: id.into() }, ..Default::default() }
}

fn spec() -> Result<Prepared, LaunchError> {
    let spec = LaunchSpec::new("/bin/true", ["true"]);
    Ok(Prepared { spec, uris: Vec::new() })
}

fn launch(t: TaskInfo) -> Input {
    Input::Launch { task: Box::new(t), spec: spec() }
}

fn spawned(id: &str) -> Input {
    Input::Spawned { task_id: id.into(), result: Ok(()) }
}

fn fetched(id: &str) -> Input {
    Input::Fetched { task_id: id.into(), result: Ok(()) }
}

/// A lone task's start after its launch: its fetch ends, then its spawn; the spawn's
/// effects.
fn up(book: &mut TaskBook, id: &str, now: Instant) -> Vec<Effect> {
    let effects = book.step(fetched(id), now);
    assert!(matches!(&effects[..], [Effect::Spawn { task_ids, .. }] if task_ids == &[id]), "{effects:?}");
    book.step(spawned(id), now)
}

/// The effects that ask for a fetch, by task.
fn fetches(effects: &[Effect]) -> Vec<String> {
    effects
        .iter()
        .filter_map(|e| match e {
            Effect::Fetch { task_id, .. } => Some(task_id.clone()),
            _ => None,
        })
        .collect()
}

fn tick(book: &mut TaskBook, at: Instant) -> Vec<Effect> {
    book.step(Input::Tick, at)
}

fn exited(id: &str, exit: Exit) -> Input {
    Input::Exited { task_id: id.into(), exit: Ok(exit) }
}

/// The reports among `effects`, as (task, state).
fn reports(effects: &[Effect]) -> Vec<(String, TaskState)> {
    effects
        .iter()
        .filter_map(|e| match e {
            Effect::Report(r) => Some((r.task_id.clone(), r.state)),
            _ => None,
        })
        .collect()
}

fn report_of<'a>(effects: &'a [Effect], id: &str) -> &'a Report {
    effects
        .iter()
        .find_map(|e| match e {
            Effect::Report(r) if r.task_id == id => Some(r),
            _ => None,
        })
        .unwrap_or_else(|| panic!("no report for {id} in {effects:?}"))
}

fn signals(effects: &[Effect]) -> Vec<(String, Signal)> {
    effects
        .iter()
        .filter_map(|e| match e {
            Effect::Signal { task_id, signal, .. } => Some((task_id.clone(), *signal)),
            _ => None,
        })
        .collect()
}

fn st(id: &str, state: TaskState) -> (String, TaskState) {
    (id.to_owned(), state)
}

/// A book with task `id` running since `now`.
fn running(mode: Mode, id: &str, killing_state: bool) -> (TaskBook, Instant) {
    let now = Instant::now();
    let mut book = TaskBook::new(mode, 5 * SEC, None);
    book.step(Input::Registered { killing_state }, now);
    let effects = book.step(launch(task(id)), now);
    assert_eq!(reports(&effects), [st(id, TaskState::TaskStarting)]);
    assert_eq!(fetches(&effects), [id]);
    assert_eq!(reports(&up(&mut book, id, now)), [st(id, TaskState::TaskRunning)]);
    (book, now)
}

#[test]
fn exit_codes_become_terminal_states_and_drop_in_mode_finishes() {
    let (mut book, now) = running(Mode::Command, "t", false);
    let effects = book.step(exited("t", Exit::Code(0)), now);
    let finished = report_of(&effects, "t");
    assert_eq!(
        (finished.state, finished.message.as_deref()),
        (TaskState::TaskFinished, Some("Command exited with status 0"))
    );
    assert!(effects.contains(&Effect::CleanUp { task_id: "t".into() }));
    assert_eq!(effects.last(), Some(&Effect::StopDriver), "drop-in mode ends with its task");

    let (mut book, now) = running(Mode::Custom, "t", false);
    let effects = book.step(exited("t", Exit::Code(3)), now);
    let failed = report_of(&effects, "t");
    assert_eq!(failed.state, TaskState::TaskFailed);
    assert_eq!(failed.reason, None, "upstream's command executor sets no reason");
    assert_eq!(failed.message.as_deref(), Some("Command exited with status 3"));
    assert!(!effects.contains(&Effect::StopDriver), "custom mode waits for SHUTDOWN");

    let (mut book, now) = running(Mode::Custom, "t", false);
    let effects = book.step(exited("t", Exit::Signal(15, false)), now);
    assert_eq!(report_of(&effects, "t").message.as_deref(), Some("Command terminated with signal Terminated"));
    let effects = book.step(Input::Exited { task_id: "u".into(), exit: Err("no such task".into()) }, now);
    assert!(effects.is_empty(), "an exit of an unknown task changes nothing");
}

#[test]
fn launch_acceptance_rules() {
    let (mut book, now) = running(Mode::Custom, "t", false);
    // A duplicate id: dropped, never an update on the live task's id (see
    // a_launch_reusing_a_live_id_says_nothing_about_the_live_task).
    assert!(reports(&book.step(launch(task("t")), now)).is_empty());
    // A task that cannot be prepared.
    let bad = Input::Launch { task: Box::new(task("bad")), spec: Err(LaunchError::Malformed("no value".into())) };
    let effects = book.step(bad, now);
    assert_eq!(report_of(&effects, "bad").state, TaskState::TaskError);
    assert!(!effects.iter().any(|e| matches!(e, Effect::Fetch { .. })));
    // Drop-in mode: one task only.
    let (mut book, now) = running(Mode::Command, "first", false);
    let effects = book.step(launch(task("second")), now);
    assert!(report_of(&effects, "second").message.as_deref().unwrap_or_default().contains("multiple tasks"));
    let effects = book.step(Input::LaunchGroup { members: vec![(task("g1"), spec())], file: None }, now);
    assert_eq!(reports(&effects), [st("g1", TaskState::TaskError)]);
    // Shutting down: nothing new.
    let (mut book, now) = running(Mode::Custom, "t", false);
    book.step(Input::Shutdown, now);
    assert_eq!(report_of(&book.step(launch(task("late")), now), "late").state, TaskState::TaskFailed);
}

#[test]
fn a_failed_spawn_is_task_failed() {
    let now = Instant::now();
    let mut book = TaskBook::new(Mode::Custom, 5 * SEC, None);
    book.step(launch(task("t")), now);
    book.step(fetched("t"), now);
    let effects =
        book.step(Input::Spawned { task_id: "t".into(), result: Err("Failed to launch: ENOENT".into()) }, now);
    let failed = report_of(&effects, "t");
    assert_eq!((failed.state, failed.reason), (TaskState::TaskFailed, Some(Reason::CommandExecutorFailed)));
}

#[test]
fn kill_escalates_after_the_grace_period_and_a_repeated_kill_only_shortens_it() {
    let (mut book, t0) = running(Mode::Custom, "t", true);
    let policy = |ms: i64| Some(KillPolicy { grace_period: Some(DurationInfo { nanoseconds: ms * 1_000_000 }) });
    let effects = book.step(Input::Kill { task_id: "t".into(), policy: policy(2000) }, t0);
    assert_eq!(reports(&effects), [st("t", TaskState::TaskKilling)], "TASK_KILLING with the capability");
    assert_eq!(signals(&effects), [("t".into(), Signal::Term)]);
    assert_eq!(book.next_wakeup(), Some(t0 + 2 * SEC));
    // A longer grace does not extend it; a shorter one shortens it.
    let effects = book.step(Input::Kill { task_id: "t".into(), policy: policy(10_000) }, t0 + 100 * MS);
    assert!(effects.is_empty(), "{effects:?}");
    let effects = book.step(Input::Kill { task_id: "t".into(), policy: policy(500) }, t0 + 100 * MS);
    assert!(effects.is_empty(), "{effects:?}");
    assert_eq!(book.next_wakeup(), Some(t0 + 500 * MS), "one deadline, moved");
    // Waking early does nothing; at the deadline, SIGKILL, once.
    assert!(tick(&mut book, t0 + 400 * MS).is_empty());
    let effects = tick(&mut book, t0 + 500 * MS);
    assert_eq!(signals(&effects), [("t".into(), Signal::Kill)]);
    assert_eq!(book.next_wakeup(), None, "nothing more to wait for but the exit");
    assert!(tick(&mut book, t0 + 600 * MS).is_empty());
    let effects = book.step(exited("t", Exit::Signal(9, false)), t0 + 510 * MS);
    assert_eq!(report_of(&effects, "t").state, TaskState::TaskKilled);
    // After the end, ticks and kills are ignored.
    assert!(tick(&mut book, t0 + 3 * SEC).is_empty());
    assert!(book.step(Input::Kill { task_id: "t".into(), policy: None }, t0 + 3 * SEC).is_empty());
}

#[test]
fn kill_grace_comes_from_the_kill_then_the_task_then_three_seconds() {
    let (mut book, t0) = running(Mode::Custom, "plain", false);
    let effects = book.step(Input::Kill { task_id: "plain".into(), policy: None }, t0);
    assert_eq!(book.next_wakeup(), Some(t0 + 3 * SEC));
    assert!(reports(&effects).is_empty(), "no TASK_KILLING without the capability");
    let mut own = task("own");
    own.kill_policy = Some(KillPolicy { grace_period: Some(DurationInfo { nanoseconds: 700_000_000 }) });
    book.step(Input::Launch { task: Box::new(own), spec: spec() }, t0);
    up(&mut book, "own", t0);
    book.step(Input::Kill { task_id: "own".into(), policy: None }, t0);
    assert_eq!(book.next_wakeup(), Some(t0 + 700 * MS));
    // A negative grace period from the wire is zero: SIGKILL at once.
    let effects = book.step(Input::Launch { task: Box::new(task("neg")), spec: spec() }, t0);
    assert!(!effects.is_empty());
    up(&mut book, "neg", t0);
    let negative = Some(KillPolicy { grace_period: Some(DurationInfo { nanoseconds: -5 }) });
    let effects = book.step(Input::Kill { task_id: "neg".into(), policy: negative }, t0);
    assert_eq!(signals(&effects), [("neg".into(), Signal::Kill)]);
}

#[test]
fn a_kill_for_an_unknown_task_answers_killed() {
    let now = Instant::now();
    let mut book = TaskBook::new(Mode::Custom, 5 * SEC, None);
    let effects = book.step(Input::Kill { task_id: "ghost".into(), policy: None }, now);
    assert_eq!(reports(&effects), [st("ghost", TaskState::TaskKilled)]);
}

#[test]
fn max_completion_time_fails_the_task_with_its_reason() {
    let now = Instant::now();
    let mut book = TaskBook::new(Mode::Custom, 5 * SEC, None);
    book.step(Input::Registered { killing_state: true }, now);
    let mut t = task("slow");
    t.max_completion_time = Some(DurationInfo { nanoseconds: 250_000_000 });
    book.step(Input::Launch { task: Box::new(t), spec: spec() }, now);
    up(&mut book, "slow", now);
    assert_eq!(book.next_wakeup(), Some(now + 250 * MS));
    let effects = tick(&mut book, now + 250 * MS);
    assert_eq!(signals(&effects), [("slow".into(), Signal::Kill)]);
    assert!(reports(&effects).is_empty(), "no TASK_KILLING for a timeout");
    let effects = book.step(exited("slow", Exit::Signal(9, false)), now + 260 * MS);
    let failed = report_of(&effects, "slow");
    assert_eq!((failed.state, failed.reason), (TaskState::TaskFailed, Some(Reason::MaxCompletionTimeReached)));
}

#[test]
fn a_group_starts_together_and_falls_together() {
    let now = Instant::now();
    let mut book = TaskBook::new(Mode::Custom, 5 * SEC, None);
    let members = vec![(task("a"), spec()), (task("b"), spec()), (task("c"), spec())];
    let effects = book.step(Input::LaunchGroup { members, file: None }, now);
    let starting: Vec<_> = reports(&effects);
    assert_eq!(
        starting,
        [st("a", TaskState::TaskStarting), st("b", TaskState::TaskStarting), st("c", TaskState::TaskStarting)]
    );
    assert_eq!(fetches(&effects), ["a", "b", "c"], "every member fetches, after every STARTING");
    assert!(book.step(fetched("b"), now).is_empty(), "no spawn before every member is ready");
    assert!(book.step(fetched("a"), now).is_empty());
    let effects = book.step(fetched("c"), now);
    assert!(
        matches!(&effects[..], [Effect::Spawn { task_ids, .. }] if task_ids.len() == 3),
        "one spawn of all: {effects:?}"
    );
    for id in ["a", "b", "c"] {
        book.step(spawned(id), now);
    }
    // One member fails: the others are killed, each reported on its own.
    let effects = book.step(exited("b", Exit::Code(1)), now);
    assert_eq!(report_of(&effects, "b").state, TaskState::TaskFailed);
    let mut killed: Vec<_> = signals(&effects).into_iter().map(|(id, _)| id).collect();
    killed.sort();
    assert_eq!(killed, ["a", "c"]);
    assert_eq!(report_of(&book.step(exited("a", Exit::Signal(15, false)), now), "a").state, TaskState::TaskKilled);
    // A member that finishes normally does not take the others down.
    let members = vec![(task("x"), spec()), (task("y"), spec())];
    book.step(Input::LaunchGroup { members, file: None }, now);
    for id in ["x", "y"] {
        book.step(fetched(id), now);
    }
    book.step(spawned("x"), now);
    book.step(spawned("y"), now);
    assert!(signals(&book.step(exited("x", Exit::Code(0)), now)).is_empty());
}

#[test]
fn a_member_that_fails_to_spawn_takes_its_group_down() {
    let now = Instant::now();
    let mut book = TaskBook::new(Mode::Custom, 5 * SEC, None);
    let members = vec![(task("a"), spec()), (task("b"), spec()), (task("c"), spec())];
    book.step(Input::LaunchGroup { members, file: None }, now);
    for id in ["a", "b", "c"] {
        book.step(fetched(id), now);
    }
    book.step(spawned("a"), now);
    let effects = book.step(Input::Spawned { task_id: "b".into(), result: Err("no such user".into()) }, now);
    assert_eq!(report_of(&effects, "b").state, TaskState::TaskFailed);
    assert_eq!(signals(&effects), [("a".into(), Signal::Term)], "a is running: SIGTERM now");
    // c was killed before its spawn was performed: the signal follows the spawn, and it
    // never reports TASK_RUNNING.
    let effects = book.step(spawned("c"), now);
    assert_eq!(signals(&effects), [("c".into(), Signal::Term)]);
    assert!(reports(&effects).is_empty());
}

#[test]
fn a_group_is_refused_as_a_whole() {
    let now = Instant::now();
    let mut book = TaskBook::new(Mode::Custom, 5 * SEC, None);
    let bad: Result<Prepared, LaunchError> = Err(LaunchError::Unsupported("container images".into()));
    let effects =
        book.step(Input::LaunchGroup { members: vec![(task("ok"), spec()), (task("img"), bad)], file: None }, now);
    assert_eq!(reports(&effects), [st("ok", TaskState::TaskError), st("img", TaskState::TaskError)]);
    assert!(report_of(&effects, "ok").message.as_deref().unwrap_or_default().contains("\"img\""), "names the member");
    let dup = vec![(task("d"), spec()), (task("d"), spec())];
    assert!(
        reports(&book.step(Input::LaunchGroup { members: dup, file: None }, now))
            .iter()
            .all(|(_, s)| *s == TaskState::TaskError)
    );
}

fn health_check(failures: u32) -> HealthCheck {
    HealthCheck {
        r#type: Some(health_check::Type::Tcp as i32),
        consecutive_failures: Some(failures),
        grace_period_seconds: Some(0.0),
        delay_seconds: Some(0.0),
        ..Default::default()
    }
}

#[test]
fn health_is_reported_on_change_and_the_limit_kills() {
    let now = Instant::now();
    let mut book = TaskBook::new(Mode::Custom, 5 * SEC, None);
    let mut t = task("h");
    t.health_check = Some(health_check(2));
    book.step(Input::Launch { task: Box::new(t), spec: spec() }, now);
    up(&mut book, "h", now);
    assert_eq!(book.next_wakeup(), Some(now), "no delay: the first check at once");
    let effects = tick(&mut book, now);
    assert!(matches!(&effects[..], [Effect::RunProbe { probe: Probe::Health(_), .. }]), "{effects:?}");
    assert_eq!(book.next_wakeup(), None, "the next is scheduled from the result");
    let ok = |book: &mut TaskBook| book.step(Input::Health { task_id: "h".into(), result: Ok(()) }, now + SEC);
    let bad = |book: &mut TaskBook| {
        book.step(Input::Health { task_id: "h".into(), result: Err("refused".into()) }, now + SEC)
    };
    let effects = ok(&mut book);
    let report = report_of(&effects, "h");
    assert_eq!((report.healthy, report.reason), (Some(true), Some(Reason::TaskHealthCheckStatusUpdated)));
    assert!(ok(&mut book).is_empty(), "no change, no update");
    let effects = bad(&mut book);
    assert_eq!(report_of(&effects, "h").healthy, Some(false));
    assert_eq!(report_of(&effects, "h").message, None, "upstream's health updates carry no message");
    let effects = bad(&mut book);
    assert_eq!(signals(&effects), [("h".into(), Signal::Term)], "the second failure in a row kills");
    // Upstream reports every counted failure, the one that kills included, before the kill.
    let unhealthy = report_of(&effects, "h");
    assert_eq!(
        (unhealthy.state, unhealthy.healthy, unhealthy.reason),
        (TaskState::TaskRunning, Some(false), Some(Reason::TaskHealthCheckStatusUpdated))
    );
    assert_eq!(unhealthy.message, None);
    let killing = effects.iter().filter_map(|e| match e {
        Effect::Report(r) if r.state == TaskState::TaskKilling => Some(r.healthy),
        _ => None,
    });
    assert!(killing.into_iter().all(|h| h.is_none()), "TASK_KILLING carries no health");
    let effects = book.step(exited("h", Exit::Signal(15, false)), now + 2 * SEC);
    let last = report_of(&effects, "h");
    assert_eq!((last.state, last.healthy), (TaskState::TaskKilled, Some(false)));
}

#[test]
fn check_results_ride_on_every_update_and_changes_are_reported() {
    let now = Instant::now();
    let mut book = TaskBook::new(Mode::Custom, 5 * SEC, None);
    let mut t = task("c");
    t.check = Some(CheckInfo { r#type: Some(check_info::Type::Command as i32), ..Default::default() });
    let effects = book.step(Input::Launch { task: Box::new(t), spec: spec() }, now);
    let empty = report_of(&effects, "c").check_status;
    assert!(empty.is_some_and(|s| s.command.is_some()), "TASK_STARTING carries the empty status of the check's type");
    up(&mut book, "c", now);
    let result = CheckStatusInfo {
        r#type: Some(check_info::Type::Command as i32),
        command: Some(check_status_info::Command { exit_code: Some(0) }),
        ..Default::default()
    };
    let check = |status: CheckStatusInfo| Input::Check { task_id: "c".into(), status: Some(status) };
    let effects = book.step(check(result), now);
    let report = report_of(&effects, "c");
    assert_eq!((report.state, report.reason), (TaskState::TaskRunning, Some(Reason::TaskCheckStatusUpdated)));
    assert!(book.step(check(result), now).is_empty(), "unchanged: nothing");
    let effects = book.step(exited("c", Exit::Code(0)), now);
    assert_eq!(report_of(&effects, "c").check_status, Some(result), "the terminal update carries the last result");
}

#[test]
fn shutdown_kills_every_task_within_the_grace_period_then_stops_the_driver() {
    let (mut book, t0) = running(Mode::Custom, "a", true);
    book.step(launch(task("b")), t0);
    up(&mut book, "b", t0);
    let effects = book.step(Input::Shutdown, t0);
    assert_eq!(signals(&effects).len(), 2);
    assert_eq!(book.next_wakeup(), Some(t0 + 3 * SEC), "5 s grace less 2 s for the executor");
    assert!(book.step(Input::Shutdown, t0).is_empty(), "once");
    assert!(!book.step(exited("a", Exit::Signal(15, false)), t0).contains(&Effect::StopDriver));
    let effects = book.step(exited("b", Exit::Signal(15, false)), t0);
    assert_eq!(effects.last(), Some(&Effect::StopDriver));
    assert!(!book.step(exited("b", Exit::Code(0)), t0).contains(&Effect::StopDriver), "stopped once");
    // A short grace period keeps half for SIGTERM.
    let now = Instant::now();
    let mut book = TaskBook::new(Mode::Custom, SEC, None);
    book.step(launch(task("t")), now);
    up(&mut book, "t", now);
    book.step(Input::Shutdown, now);
    assert_eq!(book.next_wakeup(), Some(now + 500 * MS));
}

/// The README's shutdown bound (issue 22 item 8): with grace period G, every task gets
/// SIGKILL at most max(G - 2 s, G / 2) after SHUTDOWN, whatever its own kill policy says
/// (10 s here, against G = 5 s); a kill already under way keeps its deadline when that
/// is sooner, and has it moved to its start + max(G - 2 s, G / 2) otherwise.
#[test]
fn shutdown_bound_is_the_grace_period_never_the_tasks_kill_policy() {
    let now = Instant::now();
    let mut book = TaskBook::new(Mode::Custom, 5 * SEC, None);
    book.step(Input::Registered { killing_state: true }, now);
    let ten_seconds = Some(KillPolicy { grace_period: Some(DurationInfo { nanoseconds: 10_000_000_000 }) });
    for id in ["own-policy", "killed-before"] {
        let mut t = task(id);
        t.kill_policy = ten_seconds;
        book.step(launch(t), now);
        up(&mut book, id, now);
    }
    let effects = book.step(Input::Kill { task_id: "killed-before".into(), policy: None }, now);
    assert!(
        effects.iter().any(|e| matches!(e, Effect::Signal { grace, why: KillReason::Kill, .. } if *grace == 10 * SEC)),
        "the SIGTERM carries the kill's grace for the log: {effects:?}"
    );
    assert_eq!(book.next_wakeup(), Some(now + 10 * SEC), "the task's own policy, before the shutdown");
    let at = now + SEC;
    let effects = book.step(Input::Shutdown, at);
    assert_eq!(signals(&effects), [("own-policy".into(), Signal::Term)], "the other one has had its SIGTERM");
    assert_eq!(book.next_wakeup(), Some(now + 3 * SEC), "the earlier kill's deadline moved to its start + 3 s");
    assert_eq!(signals(&tick(&mut book, now + 3 * SEC)), [("killed-before".into(), Signal::Kill)]);
    assert_eq!(book.next_wakeup(), Some(at + 3 * SEC), "5 s grace less 2 s, not the task's 10 s");
    assert_eq!(signals(&tick(&mut book, at + 3 * SEC)), [("own-policy".into(), Signal::Kill)]);
}

#[test]
fn shutdown_with_no_tasks_stops_at_once() {
    let now = Instant::now();
    let mut book = TaskBook::new(Mode::Custom, 5 * SEC, None);
    assert_eq!(book.step(Input::Shutdown, now), [Effect::StopDriver]);
    let mut book = TaskBook::new(Mode::Command, 5 * SEC, None);
    assert_eq!(book.step(Input::Shutdown, now), [Effect::StopDriver], "drop-in mode before its task");
}

#[test]
fn a_group_that_cannot_be_prepared_fails_whole_naming_the_member() {
    let now = Instant::now();
    let mut book = TaskBook::new(Mode::Custom, 5 * SEC, None);
    let members = vec![(task("a"), spec()), (task("b"), spec())];
    book.step(Input::LaunchGroup { members, file: None }, now);
    let failed =
        Input::NotStarted { task_ids: vec!["a".into(), "b".into()], member: "b".into(), error: "no such user".into() };
    let effects = book.step(failed, now);
    assert_eq!(reports(&effects), [st("a", TaskState::TaskFailed), st("b", TaskState::TaskFailed)]);
    let a = report_of(&effects, "a");
    assert_eq!(a.reason, Some(Reason::ContainerLaunchFailed));
    assert!(a.message.as_deref().unwrap_or_default().contains("member \"b\""), "{a:?}");
    assert!(signals(&effects).is_empty(), "nothing ran, nothing to kill");
}

#[test]
fn the_admission_cap_holds_at_the_boundary_and_never_splits_a_group() {
    let now = Instant::now();
    let mut book = TaskBook::new(Mode::Custom, 5 * SEC, Some(2));
    book.step(launch(task("one")), now);
    up(&mut book, "one", now);
    book.step(launch(task("two")), now);
    up(&mut book, "two", now);
    let effects = book.step(launch(task("three")), now);
    let refused = report_of(&effects, "three");
    assert_eq!((refused.state, refused.reason), (TaskState::TaskFailed, Some(Reason::ContainerLimitation)));
    assert!(refused.message.as_deref().unwrap_or_default().contains("--max_tasks"));
    // One ends: room for one, not for a group of two.
    book.step(exited("one", Exit::Code(0)), now);
    let group = vec![(task("g1"), spec()), (task("g2"), spec())];
    let effects = book.step(Input::LaunchGroup { members: group, file: None }, now);
    assert_eq!(reports(&effects), [st("g1", TaskState::TaskFailed), st("g2", TaskState::TaskFailed)]);
    let effects = book.step(launch(task("four")), now);
    assert_eq!(reports(&effects), [st("four", TaskState::TaskStarting)], "exactly at the cap is fine");
}

fn cancels(effects: &[Effect]) -> Vec<String> {
    effects
        .iter()
        .filter_map(|e| match e {
            Effect::CancelFetch { task_id } => Some(task_id.clone()),
            _ => None,
        })
        .collect()
}

fn spawns(effects: &[Effect]) -> usize {
    effects.iter().filter(|e| matches!(e, Effect::Spawn { .. })).count()
}

#[test]
fn a_kill_while_fetching_cancels_the_fetch_and_is_task_killed_at_once() {
    let now = Instant::now();
    let mut book = TaskBook::new(Mode::Custom, 5 * SEC, None);
    book.step(Input::Registered { killing_state: true }, now);
    assert_eq!(fetches(&book.step(launch(task("t")), now)), ["t"]);
    let effects = book.step(Input::Kill { task_id: "t".into(), policy: None }, now + MS);
    assert_eq!(reports(&effects), [st("t", TaskState::TaskKilling), st("t", TaskState::TaskKilled)]);
    assert_eq!(cancels(&effects), ["t"], "the effect names the fetch to stop");
    assert!(signals(&effects).is_empty(), "nothing runs, nothing to signal");
    assert!(effects.contains(&Effect::CleanUp { task_id: "t".into() }));
    assert_eq!(book.next_wakeup(), None, "no grace period to wait for");
    // The fetch's late answer, success or failure, changes nothing: no spawn, no update.
    assert!(book.step(fetched("t"), now + 2 * MS).is_empty());
    let failed = Input::Fetched { task_id: "t".into(), result: Err("connection reset".into()) };
    assert!(book.step(failed, now + 2 * MS).is_empty(), "a fetch failing after a KILL is not TASK_FAILED");
    assert!(book.step(Input::Kill { task_id: "t".into(), policy: None }, now + 3 * MS).is_empty());
}

#[test]
fn a_kill_of_a_ready_member_waiting_for_its_group_ends_the_group_unstarted() {
    let now = Instant::now();
    let mut book = TaskBook::new(Mode::Custom, 5 * SEC, None);
    let members = vec![(task("a"), spec()), (task("b"), spec())];
    book.step(Input::LaunchGroup { members, file: None }, now);
    book.step(fetched("a"), now);
    let effects = book.step(Input::Kill { task_id: "a".into(), policy: None }, now);
    assert_eq!(reports(&effects), [st("a", TaskState::TaskKilled), st("b", TaskState::TaskKilled)]);
    assert_eq!(cancels(&effects), ["b"], "a was fetched; b's fetch is stopped");
    assert_eq!(spawns(&book.step(fetched("b"), now)), 0, "the group never spawns");
}

#[test]
fn shutdown_while_fetching_ends_every_task_and_stops_the_driver() {
    let now = Instant::now();
    let mut book = TaskBook::new(Mode::Custom, 5 * SEC, None);
    book.step(launch(task("solo")), now);
    let members = vec![(task("g1"), spec()), (task("g2"), spec())];
    book.step(Input::LaunchGroup { members, file: None }, now);
    book.step(fetched("g1"), now);
    let effects = book.step(Input::Shutdown, now);
    let mut killed: Vec<_> = reports(&effects).into_iter().filter(|(_, s)| *s == TaskState::TaskKilled).collect();
    killed.sort();
    assert_eq!(
        killed,
        [st("g1", TaskState::TaskKilled), st("g2", TaskState::TaskKilled), st("solo", TaskState::TaskKilled)]
    );
    let mut cancelled = cancels(&effects);
    cancelled.sort();
    assert_eq!(cancelled, ["g2", "solo"]);
    assert_eq!(effects.last(), Some(&Effect::StopDriver), "nothing left: the executor can end");
}

#[test]
fn a_failed_fetch_fails_the_unit_and_cancels_the_other_fetches() {
    let now = Instant::now();
    let mut book = TaskBook::new(Mode::Custom, 5 * SEC, None);
    book.step(Input::Registered { killing_state: true }, now);
    let members = vec![(task("a"), spec()), (task("b"), spec()), (task("c"), spec())];
    book.step(Input::LaunchGroup { members, file: None }, now);
    book.step(fetched("a"), now);
    let failed = Input::Fetched { task_id: "b".into(), result: Err("http://x/y: 404".into()) };
    let effects = book.step(failed, now);
    assert_eq!(
        reports(&effects),
        [st("a", TaskState::TaskFailed), st("b", TaskState::TaskFailed), st("c", TaskState::TaskFailed)]
    );
    let a = report_of(&effects, "a");
    assert_eq!(a.reason, Some(Reason::ContainerLaunchFailed));
    assert!(
        a.message.as_deref().unwrap_or_default().contains("member \"b\"")
            && a.message.as_deref().unwrap_or_default().contains("404")
    );
    assert_eq!(cancels(&effects), ["c"]);
    assert!(book.step(fetched("c"), now).is_empty());
}

#[test]
fn a_group_fetches_four_members_at_once_and_spawns_when_all_are_ready() {
    let now = Instant::now();
    let mut book = TaskBook::new(Mode::Custom, 5 * SEC, None);
    let ids = ["m0", "m1", "m2", "m3", "m4", "m5"];
    let members = ids.iter().map(|id| (task(id), spec())).collect();
    let effects = book.step(Input::LaunchGroup { members, file: None }, now);
    assert_eq!(fetches(&effects), ["m0", "m1", "m2", "m3"], "at most {FETCHES_PER_UNIT} at once");
    assert_eq!(fetches(&book.step(fetched("m2"), now)), ["m4"], "a free slot goes to the next member");
    assert_eq!(fetches(&book.step(fetched("m0"), now)), ["m5"]);
    for id in ["m1", "m3", "m4"] {
        assert!(book.step(fetched(id), now).is_empty());
    }
    let effects = book.step(fetched("m5"), now);
    assert!(matches!(&effects[..], [Effect::Spawn { task_ids, .. }] if task_ids.len() == 6), "{effects:?}");
}

#[test]
fn checks_pause_while_the_agent_is_away_and_run_at_once_when_it_is_back() {
    let now = Instant::now();
    let mut book = TaskBook::new(Mode::Custom, 5 * SEC, None);
    let mut t = task("h");
    t.health_check = Some(HealthCheck { interval_seconds: Some(1.0), ..health_check(1) });
    book.step(Input::Launch { task: Box::new(t), spec: spec() }, now);
    up(&mut book, "h", now);
    assert!(!tick(&mut book, now).is_empty(), "the first check");
    book.step(Input::Health { task_id: "h".into(), result: Ok(()) }, now);
    assert_eq!(book.next_wakeup(), Some(now + SEC), "the next an interval after the result");
    assert!(matches!(&tick(&mut book, now + SEC)[..], [Effect::RunProbe { .. }]));
    // The check runs; the agent goes away before its result.
    book.step(Input::Disconnected, now + SEC + MS);
    let late = Input::Health { task_id: "h".into(), result: Err("refused".into()) };
    assert!(book.step(late, now + 2 * SEC).is_empty(), "a result from the agent's absence is dropped");
    assert_eq!(book.next_wakeup(), None, "no probe while the agent is away");
    assert!(tick(&mut book, now + 5 * SEC).is_empty());
    // Back: a check at once, whose failure counts again (the limit is 1: a kill).
    book.step(Input::Reconnected, now + 6 * SEC);
    assert_eq!(book.next_wakeup(), Some(now + 6 * SEC));
    let effects = tick(&mut book, now + 6 * SEC);
    assert!(matches!(&effects[..], [Effect::RunProbe { probe: Probe::Health(_), .. }]), "{effects:?}");
    let failed = Input::Health { task_id: "h".into(), result: Err("refused".into()) };
    assert_eq!(signals(&book.step(failed, now + 6 * SEC)), [("h".into(), Signal::Term)]);
    // Drop-in mode does not pause (upstream's command executor has no such rule).
    let (mut book, t0) = running(Mode::Command, "c", false);
    book.step(Input::Disconnected, t0);
    assert!(!book.paused);
}

#[test]
fn hostile_delays_and_intervals_from_the_wire_do_not_overflow_the_clock() {
    let now = Instant::now();
    let mut book = TaskBook::new(Mode::Custom, 5 * SEC, None);
    let mut t = task("far");
    t.health_check =
        Some(HealthCheck { delay_seconds: Some(1e300), interval_seconds: Some(f64::MAX), ..health_check(1) });
    t.check = Some(CheckInfo {
        r#type: Some(check_info::Type::Command as i32),
        delay_seconds: Some(1e19),
        interval_seconds: Some(1e19),
        ..Default::default()
    });
    t.max_completion_time = Some(DurationInfo { nanoseconds: i64::MAX });
    t.kill_policy = Some(KillPolicy { grace_period: Some(DurationInfo { nanoseconds: i64::MAX }) });
    book.step(Input::Launch { task: Box::new(t), spec: spec() }, now);
    assert_eq!(reports(&up(&mut book, "far", now)), [st("far", TaskState::TaskRunning)]);
    // A delay past what a Duration holds reads as the longest one (health::seconds);
    // it, 1e19 s and 292 years are clamped to the far future.
    let year = Duration::from_secs(86_400 * 365);
    assert!(book.next_wakeup().is_some_and(|at| at > now + year), "no probe soon");
    book.step(Input::Health { task_id: "far".into(), result: Ok(()) }, now);
    book.step(Input::Check { task_id: "far".into(), status: None }, now);
    let policy = Some(KillPolicy { grace_period: Some(DurationInfo { nanoseconds: i64::MAX }) });
    book.step(Input::Kill { task_id: "far".into(), policy }, now);
    assert!(book.next_wakeup().is_some_and(|at| at > now));
}

/// A group through default mode, every member running.
fn default_group(ids: &[&str], now: Instant) -> TaskBook {
    let mut book = TaskBook::new(Mode::Default, 5 * SEC, None);
    book.step(Input::Registered { killing_state: true }, now);
    let members = ids.iter().map(|id| (task(id), spec())).collect();
    book.step(Input::LaunchGroup { members, file: None }, now);
    for id in ids {
        book.step(fetched(id), now);
    }
    for id in ids {
        book.step(spawned(id), now);
    }
    book
}

/// Upstream's default executor shuts down once its last container is gone
/// (`src/launcher/default_executor.cpp`, `waited`); custom mode waits for SHUTDOWN.
#[test]
fn default_mode_stops_when_the_last_member_has_ended() {
    let now = Instant::now();
    let mut book = default_group(&["a", "b", "c"], now);
    for id in ["a", "b"] {
        let effects = book.step(exited(id, Exit::Code(0)), now);
        assert!(!effects.contains(&Effect::StopDriver), "{id} is not the last: {effects:?}");
    }
    let effects = book.step(exited("c", Exit::Code(0)), now);
    assert_eq!(report_of(&effects, "c").state, TaskState::TaskFinished);
    assert_eq!(effects.last(), Some(&Effect::StopDriver), "the last member's end stops the driver");
    // A group coming in while the last updates are acknowledged is not started.
    let effects = book.step(Input::LaunchGroup { members: vec![(task("late"), spec())], file: None }, now);
    assert_eq!(reports(&effects), [st("late", TaskState::TaskError)]);
    assert!(fetches(&effects).is_empty());
}

/// Upstream's default executor kills the rest of a failed group with its default 3 s
/// grace (`waited` calls `kill(container)`), not with the task's own kill policy.
#[test]
fn default_mode_kills_the_rest_of_a_group_with_three_seconds_and_then_stops() {
    let now = Instant::now();
    let mut long = task("long");
    long.kill_policy = Some(KillPolicy { grace_period: Some(DurationInfo { nanoseconds: 30_000_000_000 }) });
    let mut book = TaskBook::new(Mode::Default, 5 * SEC, None);
    book.step(Input::Registered { killing_state: true }, now);
    let members = vec![(task("ok"), spec()), (long, spec()), (task("bad"), spec())];
    book.step(Input::LaunchGroup { members, file: None }, now);
    for id in ["ok", "long", "bad"] {
        book.step(fetched(id), now);
    }
    for id in ["ok", "long", "bad"] {
        book.step(spawned(id), now);
    }
    book.step(exited("ok", Exit::Code(0)), now);
    let effects = book.step(exited("bad", Exit::Code(1)), now);
    assert_eq!(report_of(&effects, "bad").state, TaskState::TaskFailed);
    assert_eq!(reports(&effects)[1..], [st("long", TaskState::TaskKilling)]);
    assert_eq!(signals(&effects), [("long".into(), Signal::Term)]);
    assert!(signals(&tick(&mut book, now + 3 * SEC - MS)).is_empty());
    assert_eq!(signals(&tick(&mut book, now + 3 * SEC)), [("long".into(), Signal::Kill)], "3 s, not the policy's 30 s");
    let effects = book.step(exited("long", Exit::Signal(9, false)), now + 3 * SEC);
    assert_eq!(report_of(&effects, "long").state, TaskState::TaskKilled);
    assert_eq!(effects.last(), Some(&Effect::StopDriver));
}

/// Upstream's default executor takes no LAUNCH: "LAUNCH event is not supported", and it
/// shuts down (`DefaultExecutor::received`), with no update for that task.
#[test]
fn default_mode_shuts_down_on_a_lone_launch() {
    let now = Instant::now();
    let mut book = default_group(&["a"], now);
    let effects = book.step(launch(task("lone")), now);
    assert!(reports(&effects).iter().all(|(id, _)| id != "lone"), "{effects:?}");
    assert!(fetches(&effects).is_empty());
    assert_eq!(signals(&effects), [("a".into(), Signal::Term)], "the running member is killed");
    let effects = book.step(exited("a", Exit::Signal(15, false)), now);
    assert_eq!(report_of(&effects, "a").state, TaskState::TaskKilled);
    assert_eq!(effects.last(), Some(&Effect::StopDriver));
    // Before any group, the executor stops at once.
    let mut book = TaskBook::new(Mode::Default, 5 * SEC, None);
    assert_eq!(book.step(launch(task("lone")), now), [Effect::StopDriver]);
}

/// A first group refused whole leaves nothing to run: the executor ends, as upstream's
/// does once its failed launches are reported.
#[test]
fn default_mode_stops_after_a_refused_group() {
    let now = Instant::now();
    let mut book = TaskBook::new(Mode::Default, 5 * SEC, None);
    let bad: Result<Prepared, LaunchError> = Err(LaunchError::Unsupported("container images".into()));
    let effects =
        book.step(Input::LaunchGroup { members: vec![(task("ok"), spec()), (task("img"), bad)], file: None }, now);
    assert_eq!(reports(&effects), [st("ok", TaskState::TaskError), st("img", TaskState::TaskError)]);
    assert_eq!(effects.last(), Some(&Effect::StopDriver));
    // Custom mode waits for SHUTDOWN.
    let mut book = TaskBook::new(Mode::Custom, 5 * SEC, None);
    let bad: Result<Prepared, LaunchError> = Err(LaunchError::Unsupported("container images".into()));
    let effects = book.step(Input::LaunchGroup { members: vec![(task("img"), bad)], file: None }, now);
    assert!(!effects.contains(&Effect::StopDriver));
}

#[test]
fn a_launch_reusing_a_live_id_says_nothing_about_the_live_task() {
    // A second LAUNCH for an id the book holds (fetching, running or ended) must not put
    // a terminal update on the task that has the id: the agent would see TASK_FAILED for
    // a task that then reports TASK_RUNNING. The duplicate is dropped (the agent itself
    // never sends one: `Slave::run` refuses a duplicate task id).
    let now = Instant::now();
    let mut book = TaskBook::new(Mode::Custom, 5 * SEC, None);
    book.step(launch(task("a")), now);
    assert!(reports(&book.step(launch(task("a")), now)).is_empty(), "while fetching");
    let group =
        |ids: &[&str]| Input::LaunchGroup { members: ids.iter().map(|id| (task(id), spec())).collect(), file: None };
    // A group naming the live id is refused, but only its other members hear of it.
    assert_eq!(reports(&book.step(group(&["a", "b"]), now)), [st("b", TaskState::TaskError)]);
    assert_eq!(reports(&up(&mut book, "a", now)), [st("a", TaskState::TaskRunning)]);
    assert!(reports(&book.step(launch(task("a")), now)).is_empty(), "while running");
    book.step(exited("a", Exit::Code(0)), now);
    assert!(reports(&book.step(launch(task("a")), now)).is_empty(), "after its end");
}

#[test]
fn a_task_ended_before_its_spawn_keeps_no_probe() {
    let now = Instant::now();
    let mut book = TaskBook::new(Mode::Custom, 5 * SEC, None);
    let probed = |id: &str| {
        let mut t = task(id);
        t.health_check = Some(health_check(1));
        t.check = Some(CheckInfo { r#type: Some(check_info::Type::Command as i32), ..Default::default() });
        launch(t)
    };
    book.step(probed("killed"), now);
    book.step(Input::Kill { task_id: "killed".into(), policy: None }, now);
    assert!(!book.probed("killed"), "killed while fetching");
    book.step(probed("unfetched"), now);
    book.step(Input::Fetched { task_id: "unfetched".into(), result: Err("404".into()) }, now);
    assert!(!book.probed("unfetched"), "its fetch failed");
    book.step(probed("unspawned"), now);
    book.step(fetched("unspawned"), now);
    book.step(Input::Spawned { task_id: "unspawned".into(), result: Err("no such file".into()) }, now);
    assert!(!book.probed("unspawned"), "its spawn failed");
}

#[test]
fn a_probe_hung_when_the_agent_left_is_stopped_and_run_again_when_it_is_back() {
    // A check with no timeout hangs; the agent goes away and comes back. Upstream's
    // default executor restarts its checkers on SUBSCRIBED; a probe the book waits for
    // forever would end the task's health checks for good.
    let now = Instant::now();
    let mut book = TaskBook::new(Mode::Custom, 5 * SEC, None);
    let mut t = task("h");
    t.health_check = Some(HealthCheck { interval_seconds: Some(1.0), ..health_check(3) });
    book.step(Input::Launch { task: Box::new(t), spec: spec() }, now);
    up(&mut book, "h", now);
    assert!(matches!(&tick(&mut book, now)[..], [Effect::RunProbe { .. }]), "the first check, which hangs");
    book.step(Input::Disconnected, now + SEC);
    let effects = book.step(Input::Reconnected, now + 2 * SEC);
    assert!(effects.contains(&Effect::Quiet { task_id: "h".into() }), "the hung probe is stopped: {effects:?}");
    assert_eq!(book.next_wakeup(), Some(now + 2 * SEC), "and runs again at once");
    assert!(matches!(&tick(&mut book, now + 2 * SEC)[..], [Effect::RunProbe { probe: Probe::Health(_), .. }]));
}

#[test]
fn an_interval_past_what_a_duration_holds_is_the_far_future_not_ten_milliseconds() {
    let now = Instant::now();
    let mut book = TaskBook::new(Mode::Custom, 5 * SEC, None);
    let mut t = task("slow");
    t.health_check = Some(HealthCheck { interval_seconds: Some(f64::INFINITY), ..health_check(3) });
    t.check = Some(CheckInfo {
        r#type: Some(check_info::Type::Command as i32),
        interval_seconds: Some(1e300),
        delay_seconds: Some(0.0),
        ..Default::default()
    });
    book.step(Input::Launch { task: Box::new(t), spec: spec() }, now);
    up(&mut book, "slow", now);
    assert_eq!(tick(&mut book, now).len(), 2, "both run first after their delay (0)");
    book.step(Input::Health { task_id: "slow".into(), result: Ok(()) }, now);
    book.step(Input::Check { task_id: "slow".into(), status: None }, now);
    let next = book.next_wakeup().expect("scheduled");
    assert!(next > now + Duration::from_secs(86_400 * 365), "next run at {:?} from now", next - now);
}

// ---- review20 (hostile review of #20 default mode and the book hardening) ----
// These tests show problems found in review; they fail on this branch on purpose.

/// A hostile or buggy agent sends a LAUNCH_GROUP naming one id twice. The group is
/// refused with one TASK_ERROR per id, never two terminal updates for one task id
/// (found by the hostile review of #20). Upstream never answers twice for one id (the master and `Slave::run`
/// refuse such a group before an executor sees it; the default executor keys its
/// containers by task id). One terminal update per id is the rule everywhere else in
/// the book.
#[test]
fn a_group_naming_an_id_twice_gets_one_terminal_update_per_id() {
    let now = Instant::now();
    for mode in [Mode::Default, Mode::Custom] {
        let mut book = TaskBook::new(mode, 5 * SEC, None);
        let members = vec![(task("x"), spec()), (task("x"), spec()), (task("y"), spec())];
        let effects = book.step(Input::LaunchGroup { members, file: None }, now);
        let terminal_for_x = reports(&effects).iter().filter(|(id, s)| id == "x" && s.is_terminal()).count();
        assert_eq!(terminal_for_x, 1, "{mode:?}: one terminal update for \"x\", got {effects:?}");
    }
}

/// A group whose members have all ended has no rule left to apply, and a custom
/// executor runs until SHUTDOWN: the book forgets such a group, or its memory would
/// grow with every group ever launched (found by the hostile review of #20). Upstream's default executor erases a container
/// at its end (`waited`: `containers.erase(taskId)`) and keeps nothing per ended task.
#[test]
fn groups_whose_members_all_ended_are_forgotten() {
    let now = Instant::now();
    let mut book = TaskBook::new(Mode::Custom, 5 * SEC, None);
    for n in 0..1000 {
        let ids = [format!("g{n}-a"), format!("g{n}-b")];
        let members = ids.iter().map(|id| (task(id), spec())).collect();
        book.step(Input::LaunchGroup { members, file: None }, now);
        for id in &ids {
            book.step(fetched(id), now);
        }
        for id in &ids {
            book.step(spawned(id), now);
        }
        for id in &ids {
            book.step(exited(id, Exit::Code(0)), now);
        }
    }
    assert_eq!(book.live, 0);
    let kept: usize = book.groups.values().map(Vec::len).sum();
    assert_eq!(kept, 0, "{} groups and {kept} member ids kept after every member ended", book.groups.len());
}
