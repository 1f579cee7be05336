//! Task groups through the agent's DEFAULT executor (issue 20): `<launcher_dir>/
//! mesos-default-executor`, our daemon on the `ours` cluster, upstream's
//! (`src/launcher/default_executor.cpp`) on the control. Groups go through
//! `mesos-execute --task_group` (whose executor is `default-executor`), or through our
//! small framework where the executor must end while the framework stays.

use super::*;

/// `mesos-execute --task_group` with `tasks`.
fn run_group(c: &Cluster, id: &str, tasks: Vec<Value>) -> Outcome {
    let group = json!({ "tasks": tasks });
    c.run(&[format!("--task_group={}", c.json_file(id, &group))], RUN)
}

/// Three members that finish: each STARTING, RUNNING, FINISHED, its output in
/// `tasks/<id>/stdout` of the executor's sandbox.
fn default_group_finish(c: &mut Cluster, id: &str) {
    let ids: Vec<String> = ["a", "b", "c"].iter().map(|m| format!("{id}-{m}")).collect();
    let tasks = ids.iter().enumerate().map(|(i, t)| task(t, json!({"value": format!("sleep {i}; echo member {i}")})));
    let o = run_group(c, id, tasks.collect());
    let sandbox = c.sandbox(o.framework(), "default-executor");
    for (i, t) in ids.iter().enumerate() {
        assert_eq!(o.states(t), ["TASK_STARTING", "TASK_RUNNING", "TASK_FINISHED"], "{}", o.text);
        assert_eq!(o.last(t, "TASK_FINISHED").message.as_deref(), Some("Command exited with status 0"));
        assert_eq!(read(&sandbox.join("tasks").join(t).join("stdout")), format!("member {i}\n"));
        assert_eq!(c.agent_task_state(t).as_deref(), Some("TASK_FINISHED"), "the agent's /state");
    }
    assert_eq!(c.executor_end(o.framework(), "default-executor"), "exited with status 0");
}
both!(default_group_finish);

/// One member exits 1: it is TASK_FAILED, the two still running are killed (TASK_KILLING,
/// TASK_KILLED), and the executor exits 0. Updates as upstream's, member by member:
/// state, message, reason and source.
fn default_group_failure(c: &mut Cluster, id: &str) {
    let (long, other, bad) = (format!("{id}-long"), format!("{id}-other"), format!("{id}-bad"));
    let tasks = vec![
        task(&long, json!({"value": "sleep 1000"})),
        task(&other, json!({"value": "sleep 1000"})),
        task(&bad, json!({"value": "sleep 1; exit 1"})),
    ];
    let o = run_group(c, id, tasks);
    eprintln!("{id}:\n{}", o.text);
    assert_eq!(o.states(&bad), ["TASK_STARTING", "TASK_RUNNING", "TASK_FAILED"], "{}", o.text);
    let failed = o.last(&bad, "TASK_FAILED");
    assert_eq!(failed.message.as_deref(), Some("Command exited with status 1"), "{}", o.text);
    assert_eq!((failed.reason.as_deref(), failed.source.as_deref()), (None, Some("SOURCE_EXECUTOR")), "{}", o.text);
    for t in [&long, &other] {
        assert_eq!(o.states(t), ["TASK_STARTING", "TASK_RUNNING", "TASK_KILLING", "TASK_KILLED"], "{}", o.text);
        let killed = o.last(t, "TASK_KILLED");
        let seen = (killed.message.as_deref(), killed.reason.as_deref(), killed.source.as_deref());
        assert_eq!(seen, (Some("Command terminated with signal Terminated"), None, Some("SOURCE_EXECUTOR")));
    }
    assert_eq!(c.executor_end(o.framework(), "default-executor"), "exited with status 0");
}
both!(default_group_failure);

/// Each member's sandbox as upstream lays it out: `tasks/<task id>` links to
/// `<executor sandbox>/containers/<id>`, where the member runs, which is its
/// `MESOS_SANDBOX`; `MESOS_CONTAINER_IP` is the executor's address (the agent's `--ip`).
fn default_group_sandbox(c: &mut Cluster, id: &str) {
    let (a, b) = (format!("{id}-a"), format!("{id}-b"));
    let show = json!({"value": "echo \"$(pwd) $MESOS_SANDBOX $MESOS_CONTAINER_IP\""});
    let o = run_group(c, id, vec![task(&a, show.clone()), task(&b, show)]);
    let sandbox = std::fs::canonicalize(c.sandbox(o.framework(), "default-executor")).expect("the sandbox");
    let mut dirs = Vec::new();
    for t in [&a, &b] {
        assert_eq!(o.states(t), ["TASK_STARTING", "TASK_RUNNING", "TASK_FINISHED"], "{}", o.text);
        let link = std::fs::read_link(sandbox.join("tasks").join(t)).expect("tasks/<id> is a link");
        assert_eq!(link.parent(), Some(sandbox.join("containers").as_path()), "{t}: {}", link.display());
        let link = link.display().to_string();
        let stdout = read(&sandbox.join("tasks").join(t).join("stdout"));
        let fields: Vec<&str> = stdout.split_whitespace().collect();
        assert_eq!(fields, [link.as_str(), link.as_str(), "127.0.0.1"], "{t}: pwd, MESOS_SANDBOX, MESOS_CONTAINER_IP");
        dirs.push(link);
    }
    assert_ne!(dirs[0], dirs[1], "a directory per member");
}
both!(default_group_sandbox);

/// A member's URI is fetched once (upstream: by the agent's fetcher, for the member's
/// nested container), into that member's sandbox.
fn default_group_uri(c: &mut Cluster, id: &str) {
    let server = CountingServer::start("member payload\n");
    let uri = format!("http://127.0.0.1:{}/payload.txt", server.port);
    let (a, b) = (format!("{id}-a"), format!("{id}-b"));
    let tasks = vec![
        task(&a, json!({"value": "cat payload.txt", "uris": [{"value": uri, "extract": false}]})),
        task(&b, json!({"value": "test ! -e payload.txt"})),
    ];
    let o = run_group(c, id, tasks);
    for t in [&a, &b] {
        assert_eq!(o.states(t), ["TASK_STARTING", "TASK_RUNNING", "TASK_FINISHED"], "{}", o.text);
    }
    let sandbox = c.sandbox(o.framework(), "default-executor");
    assert_eq!(read(&sandbox.join("tasks").join(&a).join("stdout")), "member payload\n");
    assert_eq!(server.gets(), 1, "GETs, by User-Agent: {:?}", server.user_agents());
}
both!(default_group_uri);

/// With its framework still there, the executor ends on its own once its group is done
/// and acknowledged, with status 0 (upstream: `waited` then `_shutdown`); no SHUTDOWN.
fn default_group_exits_on_its_own(c: &mut Cluster, id: &str) {
    let exec = format!("{id}-executor");
    let (a, b) = (format!("{id}-a"), format!("{id}-b"));
    let mut resources = resources(&[]);
    if let Some(r) = resources.as_array_mut() {
        r.push(json!({"name": "disk", "type": "SCALAR", "scalar": {"value": 16}}));
    }
    let executor = json!({"type": "DEFAULT", "executor_id": {"value": exec}, "resources": resources});
    let mut s = Scheduler::subscribe(c, id);
    s.launch_group(executor, vec![task(&a, json!({"value": "true"})), task(&b, json!({"value": "sleep 1"}))]);
    s.wait_terminal(&[&a, &b], RUN);
    let started = Instant::now();
    assert_eq!(c.executor_end(&s.framework_id, &exec), "exited with status 0", "{:?}", s.updates);
    eprintln!("{id}: the executor ended {:.1}s after the last update", started.elapsed().as_secs_f64());
    assert!(!c.agent_logged(&["Shutting down executor", &exec]), "the agent asked it to shut down");
}
both!(default_group_exits_on_its_own);

/// The names of the environment variables a member sees, on both: nothing upstream gives
/// its members is missing from ours.
#[test]
#[ignore = "needs root and a Mesos in MESOS_HOME (scripts/test.sh runs it)"]
fn same_member_environment() {
    const NAME: &str = "same_member_environment";
    let Some(home) = real_mesos::mesos_home(NAME) else { return };
    let mut names = Vec::new();
    for (shared, flavour) in [(&OURS, Flavour::Ours), (&UPSTREAM, Flavour::Upstream)] {
        let c = shared.get(&home, flavour);
        let id = format!("{NAME}-{flavour:?}");
        let o = run_group(&c, &id, vec![task(&id, json!({"value": "env | cut -d= -f1 | sort"}))]);
        let sandbox = c.sandbox(o.framework(), "default-executor");
        let text = read(&sandbox.join("tasks").join(&id).join("stdout"));
        names.push(text.lines().map(str::to_owned).collect::<std::collections::BTreeSet<_>>());
    }
    let only_ours: Vec<_> = names[0].difference(&names[1]).collect();
    let only_upstream: Vec<_> = names[1].difference(&names[0]).collect();
    eprintln!("{NAME}: only ours {only_ours:?}; only upstream {only_upstream:?}");
    assert!(only_upstream.is_empty(), "variables upstream's members have and ours lack: {only_upstream:?}");
}
