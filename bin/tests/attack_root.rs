//! Security review of issue 18 (attacks as a hostile task against the root daemon):
//! what a task running as `nobody` can make root do for it. Each test that shows a
//! hole still open is a test named `open_hole_...`, ignored with its reason (scripts/test.sh
//! skips it); the rest are regression tests of closed holes, run as root.

mod support;

use std::{os::unix::fs::MetadataExt, path::Path, time::Duration};

use fake_agent::AgentConfig;
use mesos_executor::proto::v1::{
    CheckInfo, CommandInfo, Environment, HealthCheck, TaskInfo, TaskState, check_info, environment, health_check,
};
use support::daemon::*;

const DROP_IN: &str = "--launcher_dir=/usr/libexec/mesos";

fn is_root() -> bool {
    nix::unistd::geteuid().is_root()
}

fn var(name: &str, value: &str) -> environment::Variable {
    environment::Variable { name: name.into(), value: Some(value.into()), ..Default::default() }
}

/// A custom-mode task running `command` as `user`.
fn task_as(id: &str, command: &str, user: &str) -> TaskInfo {
    let mut task = shell_task(id, command);
    task.command = Some(CommandInfo { value: Some(command.into()), user: Some(user.into()), ..Default::default() });
    task
}

/// A directory only root may write: anything that appears in it was written by root.
fn root_only_dir() -> tempfile::TempDir {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().unwrap();
    std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o700)).unwrap();
    dir
}

fn root_owned_files(dir: &Path) -> Vec<String> {
    std::fs::read_dir(dir)
        .unwrap()
        .flatten()
        .filter(|e| e.metadata().is_ok_and(|m| m.uid() == 0))
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect()
}

/// Kills the listed pids when dropped (a failed test leaves nothing running).
struct KillOnDrop(Vec<u32>);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        for pid in &self.0 {
            let _ = nix::sys::signal::kill(nix::unistd::Pid::from_raw(*pid as i32), nix::sys::signal::SIGKILL);
        }
    }
}

/// FINDING (critical): with capability flags, the task starts as the exec helper — this
/// very binary, exec'd AS ROOT (before its setuid) with the TASK'S environment and the
/// task's sandbox as cwd (`bin/supervisor.rs` `through_helper`: `env: spec.env`). The
/// helper's own code reads no variable, but the dynamic loader does: `LD_DEBUG_OUTPUT`
/// makes ld.so create files as root anywhere, and `LD_PRELOAD` (a library the task
/// fetched into its sandbox, named relative to its cwd) runs the task's code as root.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs root: the daemon switches to nobody"]
async fn attack_exec_helper_runs_the_tasks_loader_environment_as_root() {
    assert!(is_root(), "run as root");
    let target = root_only_dir();
    let out = target.path().join("ld-debug");
    let d = start(
        AgentConfig::default(),
        &[DROP_IN, "--user=nobody", r#"--bounding_capabilities={"capabilities":["NET_RAW"]}"#],
    )
    .await;
    let _ = std::process::Command::new("chmod").arg("777").arg(&d.sandbox).status();
    let mut task = shell_task("t1", "true");
    if let Some(command) = &mut task.command {
        command.environment = Some(Environment {
            variables: vec![var("LD_DEBUG", "files"), var("LD_DEBUG_OUTPUT", &out.display().to_string())],
        });
    }
    d.agent.agent.launch(task);
    d.update("t1", TaskState::TaskFinished).await;
    let written = root_owned_files(target.path());
    assert!(written.is_empty(), "ld.so wrote {written:?} as root into a root-only directory on the task's word");
}

/// The same hole, to code execution: a library in the task's sandbox, preloaded by a
/// relative name, runs its constructor as uid 0 (skipped without a C compiler).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs root: the daemon switches to nobody"]
async fn attack_exec_helper_preloads_the_tasks_library_as_root() {
    assert!(is_root(), "run as root");
    let d = start(
        AgentConfig::default(),
        &[DROP_IN, "--user=nobody", r#"--bounding_capabilities={"capabilities":["NET_RAW"]}"#],
    )
    .await;
    let _ = std::process::Command::new("chmod").arg("777").arg(&d.sandbox).status();
    let source = d.sandbox.join("evil.c");
    std::fs::write(
        &source,
        "#include <stdio.h>\n#include <unistd.h>\n__attribute__((constructor)) static void own(void) {\n\
         if (getuid() == 0) { FILE *f = fopen(\"pwned-as-root\", \"w\"); if (f) { fputs(\"uid 0\\n\", f); fclose(f); } }\n}\n",
    )
    .unwrap();
    let built = std::process::Command::new("cc")
        .args(["-shared", "-fPIC", "-o"])
        .arg(d.sandbox.join("evil.so"))
        .arg(&source)
        .status();
    if !built.is_ok_and(|s| s.success()) {
        eprintln!("no C compiler: skipped");
        return;
    }
    let mut task = shell_task("t1", "true");
    if let Some(command) = &mut task.command {
        command.environment = Some(Environment { variables: vec![var("LD_PRELOAD", "./evil.so")] });
    }
    d.agent.agent.launch(task);
    d.update("t1", TaskState::TaskFinished).await;
    let pwned = d.sandbox.join("pwned-as-root");
    assert!(!pwned.exists(), "the task's library ran as root in the exec helper");
}

/// FINDING (critical): a COMMAND health check or general check of a task that runs as
/// `nobody` runs as ROOT (`src/executor/probe.rs` `command`: no user switch; the
/// supervisor passes the task's env and cwd only). Upstream runs a task's check
/// commands as the task's user.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs root: the task runs as nobody"]
async fn attack_check_commands_run_as_root() {
    assert!(is_root(), "run as root");
    let d = start(killing_capable(), &["--mode=custom"]).await;
    let marker = unique_seconds();
    let mut task = task_as("t1", &format!("id -u > task-uid; exec sleep {marker}"), "nobody");
    let _guard = KillOnDrop(Vec::new());
    task.health_check = Some(HealthCheck {
        r#type: Some(health_check::Type::Command as i32),
        command: Some(CommandInfo { value: Some("id -u > health-uid".into()), ..Default::default() }),
        delay_seconds: Some(0.0),
        interval_seconds: Some(0.1),
        timeout_seconds: Some(2.0),
        grace_period_seconds: Some(10.0),
        consecutive_failures: Some(100),
        ..Default::default()
    });
    task.check = Some(CheckInfo {
        r#type: Some(check_info::Type::Command as i32),
        command: Some(check_info::Command {
            command: CommandInfo { value: Some("id -u > check-uid".into()), ..Default::default() },
        }),
        delay_seconds: Some(0.0),
        interval_seconds: Some(0.1),
        timeout_seconds: Some(2.0),
        ..Default::default()
    });
    d.agent.agent.launch(task);
    d.update("t1", TaskState::TaskRunning).await;
    let dir = d.sandbox.join("tasks/t1");
    let mut seen = Vec::new();
    for _ in 0..100 {
        seen = ["health-uid", "check-uid"]
            .iter()
            .filter_map(|f| std::fs::read_to_string(dir.join(f)).ok().map(|s| (*f, s.trim().to_owned())))
            .filter(|(_, s)| !s.is_empty())
            .collect();
        if seen.len() == 2 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    d.agent.agent.kill("t1", None);
    d.update("t1", TaskState::TaskKilled).await;
    assert_eq!(seen.len(), 2, "both probes ran: {seen:?}");
    let task_uid = std::fs::read_to_string(dir.join("task-uid")).unwrap_or_default();
    assert_eq!(task_uid.trim(), "65534", "the task itself runs as nobody");
    for (file, uid) in &seen {
        assert_eq!(uid, "65534", "{file}: the probe of a nobody task ran as uid {uid}");
    }
}

/// FINDING (medium): a task's process that starts a session and drops the task marker
/// from its environment (`setsid env -i ...`) is neither killed with the task
/// (`clean_up`: process group, then `kill_escaped` by marker) nor when the executor
/// ends (`kill_marked_with_prefix`): it runs on as the task's user after the task is
/// reported finished, and after the executor is gone.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "open hole (documented in the README): a task process that drops its marker (setsid env -i) outlives the task and the executor"]
async fn open_hole_a_process_without_the_marker_outlives_its_task() {
    assert!(is_root(), "run as root");
    let d = start(killing_capable(), &["--mode=custom"]).await;
    let marker = unique_seconds();
    let command = format!("setsid env -i /bin/sleep {marker} </dev/null >/dev/null 2>&1 & sleep 0.2; exit 0");
    d.agent.agent.launch(task_as("t1", &command, "nobody"));
    d.update("t1", TaskState::TaskFinished).await;
    tokio::time::sleep(Duration::from_secs(1)).await;
    let after_task = processes_matching(&format!("sleep {marker}"));
    let _guard = KillOnDrop(after_task.clone());
    d.agent.agent.shutdown();
    let _ = d.exit().await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    let after_executor = processes_matching(&format!("sleep {marker}"));
    let _guard2 = KillOnDrop(after_executor.clone());
    assert!(after_task.is_empty(), "{after_task:?} outlived the task");
    assert!(after_executor.is_empty(), "{after_executor:?} outlived the executor");
}

/// Holds (checked): with `--effective_capabilities` and `--bounding_capabilities`, a
/// nobody task gets exactly the effective set in permitted/effective/ambient, and the
/// bounding set as bounding and inheritable (upstream's calculateCapabilities); a TTY
/// is not needed for this. Recorded so the review's reading of `/proc/<pid>/status` is
/// repeatable.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs root: the task runs as nobody"]
async fn capability_sets_of_a_nobody_task_are_what_was_asked() {
    assert!(is_root(), "run as root");
    let d = start(
        AgentConfig::default(),
        &[
            DROP_IN,
            "--user=nobody",
            r#"--effective_capabilities={"capabilities":["NET_RAW"]}"#,
            r#"--bounding_capabilities={"capabilities":["NET_RAW","CHOWN"]}"#,
        ],
    )
    .await;
    let _ = std::process::Command::new("chmod").arg("777").arg(&d.sandbox).status();
    d.agent.agent.launch(shell_task("t1", "grep -E '^(Cap|NoNewPrivs|Uid|Gid|Groups)' /proc/self/status > st.txt"));
    d.update("t1", TaskState::TaskFinished).await;
    let status = std::fs::read_to_string(d.sandbox.join("st.txt")).unwrap();
    for (key, value) in [
        ("CapInh", "0000000000002001"),
        ("CapPrm", "0000000000002000"),
        ("CapEff", "0000000000002000"),
        ("CapBnd", "0000000000002001"),
        ("CapAmb", "0000000000002000"),
    ] {
        assert!(status.contains(&format!("{key}:\t{value}")), "{key}: {status}");
    }
    assert!(status.contains("Uid:\t65534\t65534\t65534\t65534"), "{status}");
    assert!(!status.lines().any(|l| l.starts_with("Groups:") && l.split_whitespace().any(|g| g == "0")), "{status}");
}

/// FINDING (low): a nobody task's `stdout`/`stderr` are created by the root daemon and
/// stay root's (`bin/sandbox.rs` `open_log`, 0644, never chowned), in a directory the
/// task owns. Upstream's agent chowns a sandbox's `stdout`/`stderr` to the task's user.
/// Root-owned, they escape the user's disk quota and may fill root's reserved blocks.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs root: the task runs as nobody"]
async fn attack_a_nobody_tasks_logs_belong_to_root() {
    assert!(is_root(), "run as root");
    for args in [&["--mode=custom"][..], &["--mode=custom", "--task_log_max_size=1MB"][..]] {
        let d = start(AgentConfig::default(), args).await;
        d.agent.agent.launch(task_as("t1", "echo out; echo err >&2", "nobody"));
        d.update("t1", TaskState::TaskFinished).await;
        for name in ["stdout", "stderr"] {
            let uid = std::fs::metadata(d.sandbox.join("tasks/t1").join(name)).unwrap().uid();
            assert_eq!(uid, 65534, "{args:?}: {name} belongs to uid {uid}");
        }
    }
}

/// FINDING (low): any local process (a task) holds the metrics endpoint's four
/// connection slots (`bin/metrics_endpoint.rs` `MAX_CONNECTIONS`) by connecting and
/// sending nothing; the scraper's connection is then closed unanswered. Each slot is
/// freed after REQUEST_READ_TIMEOUT, but the attacker reconnects at once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn attack_four_idle_connections_starve_the_metrics_endpoint() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let free = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let address = free.local_addr().unwrap();
    drop(free);
    let flag = format!("--metrics_address={address}");
    let _d = start(AgentConfig::default(), &["--mode=custom", &flag]).await;
    let scrape = || async {
        let mut stream = tokio::net::TcpStream::connect(address).await.ok()?;
        stream.write_all(b"GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n").await.ok()?;
        let mut answer = Vec::new();
        tokio::time::timeout(Duration::from_secs(3), stream.read_to_end(&mut answer)).await.ok()?.ok()?;
        Some(String::from_utf8_lossy(&answer).into_owned())
    };
    assert!(scrape().await.is_some_and(|a| a.starts_with("HTTP/1.1 200")), "the endpoint serves");
    let mut idle = Vec::new();
    for _ in 0..4 {
        idle.push(tokio::net::TcpStream::connect(address).await.unwrap());
    }
    tokio::time::sleep(Duration::from_millis(200)).await;
    let answer = scrape().await.unwrap_or_default();
    drop(idle);
    assert!(answer.starts_with("HTTP/1.1 200"), "with 4 idle connections open, a scrape got {answer:?}");
}

/// Issue 22 item 8: the files the root daemon writes for operators (the state file and
/// the metrics file, in the executor's sandbox) cannot be forged by a task running as
/// another user. The sandbox is laid out as the agent lays out a root executor's (its own
/// directory root's, mode 0755); the task, as nobody, tries to write each file, to
/// replace it with a file of its own, to swap it for a link, and to remove it. None of
/// it works, and afterwards both are still root's regular files with the daemon's
/// content.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs root: the task runs as nobody"]
async fn a_nobody_task_cannot_forge_the_operators_files() {
    use std::os::unix::fs::PermissionsExt;
    assert!(is_root(), "run as root");
    let d = start(killing_capable(), &["--mode=custom", "--metrics_interval=50ms"]).await;
    std::fs::set_permissions(&d.sandbox, std::fs::Permissions::from_mode(0o755)).unwrap();
    let sandbox = d.sandbox.display().to_string();
    // Written once the task has started, so the state file exists by then.
    let attack = format!(
        r#"sleep 0.3; cd {sandbox} || exit 9
for f in mesos-executor-state.json mesos-executor.prom; do
  test -e "$f" || echo "MISSING $f"
  echo '{{"forged": true}}' >> "$f" 2>/dev/null && echo "WROTE $f"
  echo '{{"forged": true}}' > ".$f.x" 2>/dev/null && mv -f ".$f.x" "$f" 2>/dev/null && echo "REPLACED $f"
  ln -sfn /etc/hostname "$f" 2>/dev/null && echo "LINKED $f"
  rm -f "$f" 2>/dev/null && ! test -e "$f" && echo "REMOVED $f"
done
echo done"#
    );
    d.agent.agent.launch(task_as("forger", &attack, "nobody"));
    d.update("forger", TaskState::TaskFinished).await;
    let out = std::fs::read_to_string(d.sandbox.join("tasks/forger/stdout")).unwrap();
    assert!(out.ends_with("done\n"), "the attack ran to its end: {out}");
    assert_eq!(out, "done\n", "what the nobody task did to the operators' files");
    tokio::time::sleep(Duration::from_millis(200)).await;
    for name in ["mesos-executor-state.json", "mesos-executor.prom"] {
        let meta = std::fs::symlink_metadata(d.sandbox.join(name)).unwrap();
        assert!(meta.file_type().is_file() && meta.uid() == 0, "{name}: {meta:?}");
        let text = std::fs::read_to_string(d.sandbox.join(name)).unwrap();
        assert!(!text.contains("forged"), "{name}: {text}");
    }
    let state = std::fs::read_to_string(d.sandbox.join("mesos-executor-state.json")).unwrap();
    assert!(state.contains("\"forger\""), "{state}");
}
