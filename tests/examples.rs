//! The examples, built by `cargo test`, each judged by the fake agent with the scenario
//! file beside it and with every scenario any executor must pass
//! (`fake-agent/scenarios/any-executor/`), as real processes.

use std::path::{Path, PathBuf};

use fake_agent::{process::Output, runner::run_scenario, scenario};

/// The example's executable (`target/<profile>/examples/<name>`). `cargo test` builds the
/// examples but leaves only hashed names behind, so they are built once more here with
/// `cargo build --examples`, which reuses that work and writes the plain names.
fn example(name: &str) -> PathBuf {
    static BUILT: std::sync::OnceLock<Result<(), String>> = std::sync::OnceLock::new();
    let built = BUILT.get_or_init(|| {
        let status = std::process::Command::new(env!("CARGO"))
            .args(["build", "--examples", "--quiet", "-p", "mesos-executor"])
            .current_dir(root())
            .status()
            .map_err(|e| e.to_string())?;
        if status.success() { Ok(()) } else { Err(format!("cargo build --examples: {status}")) }
    });
    if let Err(e) = built {
        panic!("cannot build the examples: {e}");
    }
    let exe = std::env::current_exe().unwrap();
    exe.parent().and_then(Path::parent).unwrap().join("examples").join(name)
}

async fn judge(scenario_file: &Path, name: &str) {
    let scenario = scenario::load(scenario_file).unwrap();
    let program = example(name);
    assert!(program.exists(), "{} is not built", program.display());
    let run = run_scenario(&scenario, &[program.display().to_string()], Output::SandboxFiles).await.unwrap();
    if let Err(failure) = &run.result {
        let stderr = std::fs::read_to_string(run.sandbox.join("stderr")).unwrap_or_default();
        panic!(
            "{name} under {}: {failure}\n{}\n--- executor stderr:\n{stderr}",
            scenario_file.display(),
            fake_agent::transcript::timeline(&run.transcript)
        );
    }
}

fn root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

/// Every scenario any executor must pass.
fn generic() -> Vec<PathBuf> {
    let dir = root().join("fake-agent/scenarios/any-executor");
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir).unwrap().flatten().map(|e| e.path()).collect();
    files.sort();
    files
}

macro_rules! examples {
    ($($name:ident),*) => {$(
        #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
        async fn $name() {
            let name = stringify!($name);
            judge(&root().join(format!("examples/{name}.yaml")), name).await;
            for file in generic() {
                judge(&file, name).await;
            }
        }
    )*};
}

examples!(timer, commands, async_timer);
