//! Each task of a custom executor has a sandbox of its own (`containers/<uuid>`, with
//! `tasks/<id>` a link to it): its working directory, its `MESOS_SANDBOX`, where its URIs
//! are fetched and its logs written; another task, even of the same group, cannot touch
//! it, and nothing the task plants there steers the daemon. Drop-in mode is unchanged.

mod support;

use std::{path::Path, time::Duration};

use fake_agent::AgentConfig;
use mesos_executor::proto::v1::{CommandInfo, TaskGroupInfo, TaskInfo, TaskState, command_info::Uri};
use support::daemon::*;

/// A custom executor's task running `command` as `user`.
fn task_as(id: &str, command: &str, user: Option<&str>) -> TaskInfo {
    let mut task = data_task(id, command);
    let info = CommandInfo { value: Some(command.into()), user: user.map(str::to_owned), ..Default::default() };
    task.data = Some(mesos_executor::wire::to_json_value(&info).unwrap().to_string().into_bytes().into());
    task
}

/// The lines of `file`, once it has `n` of them (the task may still be writing).
async fn lines(file: &Path, n: usize) -> Vec<String> {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    loop {
        let text = std::fs::read_to_string(file).unwrap_or_default();
        let lines: Vec<String> = text.lines().map(str::to_owned).collect();
        if lines.len() >= n {
            return lines;
        }
        assert!(tokio::time::Instant::now() < deadline, "{} has {lines:?}", file.display());
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_task_works_in_its_own_directory() {
    let d = start(AgentConfig::default(), &["--mode=custom"]).await;
    let containers = d.sandbox.join("containers").canonicalize().unwrap_or_else(|_| d.sandbox.join("containers"));
    // Two ids that read the same once made safe for a file name, and a plain one.
    for id in ["x/y", "x_y", "plain"] {
        let script = format!("pwd -P; echo \"$MESOS_SANDBOX\"; echo {id} > mine; cat mine");
        d.agent.agent.launch(data_task(id, &script));
    }
    let mut seen = Vec::new();
    for id in ["x/y", "x_y", "plain"] {
        d.update(id, TaskState::TaskFinished).await;
    }
    let links: Vec<_> = std::fs::read_dir(d.sandbox.join("tasks")).unwrap().flatten().map(|e| e.path()).collect();
    assert_eq!(links.len(), 3, "a link per task: {links:?}");
    for link in links {
        let out = lines(&link.join("stdout"), 3).await;
        let real = link.canonicalize().unwrap();
        assert!(real.starts_with(&containers), "{} is beneath containers/: {}", link.display(), real.display());
        assert_eq!(out[0], real.display().to_string(), "the working directory is the task's own");
        assert_eq!(out[1], real.display().to_string(), "MESOS_SANDBOX is the real path");
        seen.push(out[2].clone());
    }
    seen.sort();
    assert_eq!(seen, ["plain", "x/y", "x_y"], "no task saw another's file of the same name");
    assert_eq!(std::fs::read_link(d.sandbox.join("tasks/plain")).unwrap().parent(), Some(containers.as_path()));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn group_members_fetch_into_their_own_directories() {
    let d = start(AgentConfig::default(), &["--mode=custom"]).await;
    let source = tempfile::tempdir().unwrap();
    let member = |id: &str| {
        let path = source.path().join(format!("{id}.txt"));
        std::fs::write(&path, format!("payload of {id}\n")).unwrap();
        let mut task = shell_task(id, "sleep 0.2; cat payload");
        let command = task.command.as_mut().unwrap();
        command.uris.push(Uri {
            value: format!("file://{}", path.display()),
            output_file: Some("payload".into()),
            ..Default::default()
        });
        task
    };
    d.agent.agent.launch_group(TaskGroupInfo { tasks: vec![member("a"), member("b")] });
    for id in ["a", "b"] {
        d.update(id, TaskState::TaskFinished).await;
        let out = std::fs::read_to_string(d.sandbox.join(format!("tasks/{id}/stdout"))).unwrap();
        assert_eq!(out, format!("payload of {id}\n"), "{id} read its own fetched file");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_operators_working_directory_still_wins() {
    let work = tempfile::tempdir().unwrap();
    let flag = format!("--working_directory={}", work.path().display());
    let d = start(AgentConfig::default(), &["--mode=custom", &flag]).await;
    d.agent.agent.launch(data_task("w", "pwd -P; echo \"$MESOS_SANDBOX\""));
    d.update("w", TaskState::TaskFinished).await;
    let out = lines(&d.sandbox.join("tasks/w/stdout"), 2).await;
    assert_eq!(out[0], work.path().canonicalize().unwrap().display().to_string());
    assert_eq!(out[1], d.sandbox.join("tasks/w").canonicalize().unwrap().display().to_string());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn drop_in_mode_runs_the_task_in_the_executor_sandbox() {
    let d = command_executor(AgentConfig::default()).await;
    d.agent.agent.launch(shell_task("only", "pwd -P; echo \"$MESOS_SANDBOX\""));
    d.update("only", TaskState::TaskFinished).await;
    let out = std::fs::read_to_string(d.sandbox.join("stdout")).unwrap();
    let sandbox = d.sandbox.canonicalize().unwrap().display().to_string();
    assert!(out.lines().any(|l| l == sandbox), "pwd is the executor's sandbox: {out}");
    assert!(!d.sandbox.join("containers").exists() && !d.sandbox.join("tasks").exists());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn symlinks_a_task_plants_do_not_steer_its_log_rotation() {
    let outside = tempfile::tempdir().unwrap();
    let victim = outside.path().join("precious");
    std::fs::write(&victim, "precious\n").unwrap();
    let args = ["--mode=custom", "--task_log_max_size=1KB", "--task_log_max_files=2"];
    let d = start(AgentConfig::default(), &args).await;
    // Four processes keep replacing the logs with links to the file outside while
    // another writes enough for hundreds of rotations. (`cd` for the old layout, where
    // the logs were in tasks/<id> and the task ran in the executor's sandbox.)
    let script = format!(
        "cd tasks/evil 2>/dev/null || true; \
         plant() {{ while :; do ln -sfn {v} stdout; ln -sfn {v} $1; done; }}; \
         plant stdout.1 & p1=$!; plant stdout.2 & p2=$!; plant stderr & p3=$!; plant stdout & p4=$!; \
         for i in $(seq 1 8000); do echo line-$i-0123456789012345678901234567890123456789; done; \
         kill $p1 $p2 $p3 $p4",
        v = victim.display()
    );
    d.agent.agent.launch(data_task("evil", &script));
    d.update("evil", TaskState::TaskFinished).await;
    let after = std::fs::read(&victim).unwrap();
    assert!(after == b"precious\n", "the file outside was written: {} bytes", after.len());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs root: runs tasks as root and as nobody"]
async fn a_nobody_task_cannot_touch_a_root_tasks_files() {
    assert!(nix::unistd::geteuid().is_root(), "switching users needs root");
    let d = start(AgentConfig::default(), &["--mode=custom"]).await;
    // As an agent does for a framework user: the executor's sandbox is theirs (here
    // anyone's), so a task can reach whatever lies directly in it.
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&d.sandbox, std::fs::Permissions::from_mode(0o777)).unwrap();
    d.agent.agent.launch(task_as("root-task", "echo trusted > run.sh; sleep 1.5; cat run.sh", None));
    d.update("root-task", TaskState::TaskRunning).await;
    let root_dir = d.sandbox.join("tasks/root-task");
    let attack = format!(
        "sleep 0.3; rm -f run.sh; echo hijacked > run.sh; \
         echo hijacked > {dir}/run.sh; touch {dir}/planted; ln -s /etc/shadow {dir}/stdout.1; \
         echo \"$(id -un) $MESOS_SANDBOX\"",
        dir = root_dir.display()
    );
    d.agent.agent.launch(task_as("nobody-task", &attack, Some("nobody")));
    d.update("nobody-task", TaskState::TaskFinished).await;
    d.update("root-task", TaskState::TaskFinished).await;
    let root_out = std::fs::read_to_string(root_dir.join("stdout")).unwrap();
    assert_eq!(root_out, "trusted\n", "the root task ran its own file");
    assert!(!root_dir.join("planted").exists() && !root_dir.join("stdout.1").exists());
    let nobody_out = std::fs::read_to_string(d.sandbox.join("tasks/nobody-task/stdout")).unwrap();
    assert!(nobody_out.starts_with("nobody "), "{nobody_out}");
    let nobody_dir = d.sandbox.join("tasks/nobody-task").canonicalize().unwrap();
    use std::os::unix::fs::MetadataExt;
    let meta = std::fs::metadata(&nobody_dir).unwrap();
    let nobody = nix::unistd::User::from_name("nobody").unwrap().unwrap();
    assert_eq!((meta.uid(), meta.mode() & 0o777), (nobody.uid.as_raw(), 0o750), "owned by its user, 0750");
    let root_meta = std::fs::metadata(root_dir.canonicalize().unwrap()).unwrap();
    assert_eq!((root_meta.uid(), root_meta.mode() & 0o777), (0, 0o750));
}
