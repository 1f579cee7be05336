//! The daemon judged by the fake agent's scenario files: the ones any executor must pass
//! (`fake-agent/scenarios/any-executor/`) and the daemon's own (`daemon/`) in custom
//! executor mode, the command executor's (`command-executor/`) in drop-in mode.

use std::path::Path;

use fake_agent::{process::Output, runner::run_scenario, scenario};

async fn judge(file: &str, args: &[&str]) {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../fake-agent/scenarios").join(file);
    let scenario = scenario::load(&path).unwrap();
    let mut command = vec![env!("CARGO_BIN_EXE_mesos-executor").to_owned()];
    command.extend(args.iter().map(|a| (*a).to_owned()));
    let run = run_scenario(&scenario, &command, Output::SandboxFiles).await.unwrap();
    if let Err(failure) = &run.result {
        let stderr = std::fs::read_to_string(run.sandbox.join("stderr")).unwrap_or_default();
        panic!(
            "{file}: {failure}\n{}\n--- executor stderr:\n{stderr}",
            fake_agent::transcript::timeline(&run.transcript)
        );
    }
}

const DROP_IN: &[&str] = &["--launcher_dir=/usr/libexec/mesos"];
const CUSTOM: &[&str] = &["--mode=custom"];

macro_rules! scenarios {
    ($($name:ident: $file:literal with $args:expr;)*) => {$(
        #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
        async fn $name() {
            judge($file, $args).await;
        }
    )*};
}

scenarios! {
    any_launch_and_shutdown: "any-executor/launch-and-shutdown.yaml" with CUSTOM;
    any_kill: "any-executor/kill.yaml" with CUSTOM;
    any_finish: "any-executor/finish.yaml" with CUSTOM;
    any_agent_restart: "any-executor/agent-restart.yaml" with CUSTOM;
    command_finishes: "command-executor/command-finishes.yaml" with DROP_IN;
    command_fails: "command-executor/command-fails.yaml" with DROP_IN;
    command_argv: "command-executor/command-argv.yaml" with DROP_IN;
    kill: "command-executor/kill.yaml" with DROP_IN;
    shutdown: "command-executor/shutdown.yaml" with DROP_IN;
    agent_restart: "command-executor/agent-restart.yaml" with DROP_IN;
    agent_restart_unacknowledged: "command-executor/agent-restart-unacknowledged.yaml" with DROP_IN;
    daemon_demo: "daemon/demo.yaml" with CUSTOM;
    daemon_task_group: "daemon/task-group.yaml" with CUSTOM;
    daemon_health_kill: "daemon/health-kill.yaml" with CUSTOM;
    daemon_hostile_agent: "daemon/hostile-agent.yaml" with CUSTOM;
}

#[test]
fn every_scenario_file_is_judged_here() {
    let source = include_str!("scenarios.rs");
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../fake-agent/scenarios");
    for sub in ["any-executor", "command-executor", "daemon"] {
        for entry in std::fs::read_dir(dir.join(sub)).unwrap().flatten() {
            let name = entry.file_name().to_string_lossy().into_owned();
            if name.ends_with(".yaml") {
                let file = if sub.is_empty() { name } else { format!("{sub}/{name}") };
                assert!(source.contains(&format!("\"{file}\"")), "{file} is not run by tests/scenarios.rs");
            }
        }
    }
}
