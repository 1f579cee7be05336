//! The fake agent judges executors it knows nothing of: a custom executor in plain
//! Python (`tests/python/timer_executor.py`, standard library only) must pass every
//! scenario any executor must pass (`scenarios/any-executor/`).

use std::path::{Path, PathBuf};

use fake_agent::{process::Output, runner::run_scenario, scenario};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_python_executor_passes_every_generic_scenario() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let executor = root.join("tests/python/timer_executor.py");
    let mut files: Vec<PathBuf> =
        std::fs::read_dir(root.join("scenarios/any-executor")).unwrap().flatten().map(|e| e.path()).collect();
    files.sort();
    assert!(files.len() >= 4, "{files:?}");
    for file in files {
        let scenario = scenario::load(&file).unwrap();
        let command = ["python3".to_owned(), executor.display().to_string()];
        let run = run_scenario(&scenario, &command, Output::SandboxFiles).await.unwrap();
        if let Err(failure) = &run.result {
            let stderr = std::fs::read_to_string(run.sandbox.join("stderr")).unwrap_or_default();
            panic!(
                "{}: {failure}\n{}\n--- executor stderr:\n{stderr}",
                file.display(),
                fake_agent::transcript::timeline(&run.transcript)
            );
        }
    }
}
