//! The host's configuration file (issue 22, item 3): options set once per host reach a
//! drop-in that the agent starts with `--launcher_dir` alone; a flag, then its
//! environment form (outside drop-in mode), wins over the file; a drop-in never reads
//! the variable naming a file (it may be the task's); a malformed file, an unknown key,
//! a bad value or a file others may write is bad usage (64) naming the file and line.

mod support;

use std::{os::unix::fs::PermissionsExt as _, path::Path, process::Stdio, time::Duration};

use fake_agent::AgentConfig;
use mesos_executor::proto::v1::TaskState;
use support::daemon::*;

const DROP_IN: &str = "--launcher_dir=/usr/libexec/mesos";

/// A config file holding `text`, mode 0644, in a fresh directory.
fn config(text: &str) -> (tempfile::TempDir, std::path::PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("config.toml");
    std::fs::write(&path, text).unwrap();
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).unwrap();
    (dir, path)
}

/// Whether the daemon's log in `sandbox` is JSON (its first line parses).
fn logs_json(sandbox: &Path) -> bool {
    let log = std::fs::read_to_string(sandbox.join("stderr")).unwrap();
    let first = log.lines().next().unwrap_or_else(|| panic!("no log at all"));
    serde_json::from_str::<serde_json::Value>(first).is_ok()
}

/// Runs a drop-in's task `t1` to its end.
async fn run_task(d: &Daemon) {
    d.agent.agent.launch(shell_task("t1", "true"));
    d.update("t1", TaskState::TaskFinished).await;
    assert_eq!(d.exit().await, "exited with status 0");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_drop_in_takes_its_options_from_the_file() {
    let out = tempfile::tempdir().unwrap();
    let metrics = out.path().join("from-config.prom");
    let (_dir, path) = config(&format!("log_format = \"json\"\nmetrics_file = \"{}\"\n", metrics.display()));
    let d = start(AgentConfig::default(), &[DROP_IN, &format!("--config={}", path.display())]).await;
    run_task(&d).await;
    assert!(logs_json(&d.sandbox), "log_format from the file was not applied");
    assert!(metrics.exists(), "metrics_file from the file was not applied");
}

/// `RUST_LOG`'s filter, which an operator could only set with a wrapper, is an option
/// (`log_filter`); `RUST_LOG` itself, read in both modes as before, wins over the file.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_log_filter_is_an_option_under_rust_log() {
    let (_dir, path) = config("log_filter = \"debug\"\n");
    let config_flag = format!("--config={}", path.display());
    let d = start(AgentConfig::default(), &[DROP_IN, &config_flag]).await;
    run_task(&d).await;
    let log = std::fs::read_to_string(d.sandbox.join("stderr")).unwrap();
    assert!(log.contains("DEBUG"), "log_filter from the file was not applied:\n{log}");
    let mut agent = AgentConfig::default();
    agent.executor_environment_variables.insert("RUST_LOG".into(), "warn".into());
    let d = start(agent, &[DROP_IN, &config_flag]).await;
    run_task(&d).await;
    let log = std::fs::read_to_string(d.sandbox.join("stderr")).unwrap();
    assert!(!log.contains("DEBUG") && !log.contains("INFO"), "the file won over RUST_LOG:\n{log}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_flag_wins_over_the_file() {
    let (_dir, path) = config("log_format = \"json\"\n");
    let d =
        start(AgentConfig::default(), &[DROP_IN, "--log_format=human", &format!("--config={}", path.display())]).await;
    run_task(&d).await;
    assert!(!logs_json(&d.sandbox), "the file won over the command line");
}

/// Outside drop-in mode `MESOS_EXECUTOR_CONFIG` names the file, and a flag's
/// environment form wins over it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn in_custom_mode_the_variable_names_the_file_and_the_environment_wins_over_it() {
    let out = tempfile::tempdir().unwrap();
    let metrics = out.path().join("from-config.prom");
    let (_dir, path) = config(&format!("log_format = \"json\"\nmetrics_file = \"{}\"\n", metrics.display()));
    let mut agent = AgentConfig::default();
    agent.executor_environment_variables.insert("MESOS_EXECUTOR_CONFIG".into(), path.display().to_string());
    agent.executor_environment_variables.insert("MESOS_EXECUTOR_LOG_FORMAT".into(), "human".into());
    let d = start(agent, &["--mode=custom"]).await;
    d.agent.agent.launch(data_task("t1", "true"));
    d.update("t1", TaskState::TaskFinished).await;
    d.agent.agent.shutdown();
    assert_eq!(d.exit().await, "exited with status 0");
    assert!(metrics.exists(), "the file named by MESOS_EXECUTOR_CONFIG was not read");
    assert!(!logs_json(&d.sandbox), "the file won over MESOS_EXECUTOR_LOG_FORMAT");
}

/// The agent merges a task's environment into a drop-in's: a task must not choose the
/// daemon's configuration.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_drop_in_ignores_the_variable() {
    let out = tempfile::tempdir().unwrap();
    let planted = out.path().join("planted.prom");
    let (_dir, path) = config(&format!("metrics_file = \"{}\"\n", planted.display()));
    let mut agent = AgentConfig::default();
    agent.executor_environment_variables.insert("MESOS_EXECUTOR_CONFIG".into(), path.display().to_string());
    let d = start(agent, &[DROP_IN]).await;
    run_task(&d).await;
    assert!(!planted.exists(), "a drop-in read the file named by its (the task's) environment");
}

/// The daemon's exit status and stderr for `args`, with an empty environment.
fn run_bare(args: &[&str]) -> (Option<i32>, String) {
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_mesos-executor"))
        .args(args)
        .env_clear()
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while child.try_wait().unwrap().is_none() {
        if std::time::Instant::now() > deadline {
            let _ = child.kill();
            panic!("the daemon ran past 10 s");
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    let output = child.wait_with_output().unwrap();
    (output.status.code(), String::from_utf8_lossy(&output.stderr).into_owned())
}

#[test]
fn a_bad_file_is_bad_usage_naming_the_file_and_the_line() {
    let cases = [
        ("log_format = \"json\"\nmax_tasks = \n", "line 2", "not TOML"),
        ("log_format = \"json\"\n\nno_such_option = 1\n", "line 3", "no_such_option"),
        ("max_tasks = 0\n", "line 1", "max_tasks"),
        ("log_format = \"yaml\"\n", "line 1", "yaml"),
        ("launcher_dir = \"/usr/libexec/mesos\"\n", "line 1", "launcher_dir"),
        ("max_tasks = 4\ntask_command = \"{\\\"value\\\": \\\"true\\\"}\"\n", "line 2", "task_command"),
        ("effective_capabilities = \"{}\"\n", "line 1", "effective_capabilities"),
    ];
    for (text, line, what) in cases {
        let (_dir, path) = config(text);
        for mode in [DROP_IN, "--mode=custom"] {
            let (code, stderr) = run_bare(&[mode, &format!("--config={}", path.display())]);
            assert_eq!(code, Some(64), "{text:?}: {stderr}");
            let named = format!("config file {}, {line}", path.display());
            assert!(
                stderr.contains(&named) && stderr.contains(what),
                "{text:?}: want {named:?} and {what:?} in {stderr}"
            );
        }
    }
}

#[test]
fn a_file_others_may_write_or_that_is_missing_is_refused() {
    let (_dir, path) = config("log_format = \"json\"\n");
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o666)).unwrap();
    let (code, stderr) = run_bare(&[DROP_IN, &format!("--config={}", path.display())]);
    assert_eq!(code, Some(64), "{stderr}");
    assert!(stderr.contains(&path.display().to_string()) && stderr.contains("writable"), "{stderr}");
    let (code, stderr) = run_bare(&[DROP_IN, "--config=/no/such/mesos-executor.toml"]);
    assert_eq!(code, Some(64), "{stderr}");
    assert!(stderr.contains("/no/such/mesos-executor.toml"), "{stderr}");
}

/// The place an operator installs it: with nothing on the command line but the agent's
/// `--launcher_dir`, the drop-in reads `/etc/mesos-executor/config.toml`. The test
/// binds a directory of its own over `/etc` in a mount namespace of the daemon's own.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs root (a mount namespace; scripts/test.sh includes it when run as root)"]
async fn a_drop_in_reads_the_default_place() {
    let out = tempfile::tempdir().unwrap();
    let metrics = out.path().join("from-etc.prom");
    let etc = tempfile::tempdir().unwrap();
    std::fs::set_permissions(etc.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    std::fs::create_dir(etc.path().join("mesos-executor")).unwrap();
    let file = etc.path().join("mesos-executor/config.toml");
    std::fs::write(&file, format!("log_format = \"json\"\nmetrics_file = \"{}\"\n", metrics.display())).unwrap();
    std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o644)).unwrap();
    let script = format!("mount --make-rprivate / && mount --bind {} /etc && exec \"$0\" \"$@\"", etc.path().display());
    let command =
        ["unshare", "--mount", "sh", "-c", &script, env!("CARGO_BIN_EXE_mesos-executor"), DROP_IN].map(str::to_owned);
    let d = start_command(AgentConfig::default(), &command).await;
    run_task(&d).await;
    assert!(logs_json(&d.sandbox) && metrics.exists(), "/etc/mesos-executor/config.toml was not read");
}
