//! `fake-agent`: run an executor under a fake Mesos agent through a scenario.

use std::{io::Write as _, path::PathBuf, process::ExitCode};

use clap::{Parser, Subcommand};
use fake_agent::{
    FakeAgent,
    process::{Output, new_sandbox},
    runner::{Runner, finish},
    scenario,
    transcript::{timeline, to_json_lines},
};

/// A faithful stand-in for a Mesos agent's v1 executor API.
///
/// It serves `POST /slave(1)/api/v1/executor` on a loopback port, launches the executor
/// with the environment a real agent gives, drives it through a scenario file (JSON or
/// YAML, see fake-agent/README.md), and exits 0 exactly when every expectation held.
#[derive(Debug, Parser)]
#[command(name = "fake-agent", version)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run a scenario against an executor.
    Run(RunArgs),
}

#[derive(Debug, clap::Args)]
struct RunArgs {
    /// The scenario file (.json, .yaml or .yml).
    #[arg(long)]
    scenario: PathBuf,
    /// Write every call and event as JSON lines to this file.
    #[arg(long)]
    transcript: Option<PathBuf>,
    /// Do not print the timeline at the end.
    #[arg(long)]
    quiet: bool,
    /// Let the executor write to this terminal instead of `stdout`/`stderr` in its sandbox.
    #[arg(long)]
    inherit_output: bool,
    /// Keep the sandbox directory and print its path.
    #[arg(long)]
    keep_sandbox: bool,
    /// A template for the `TaskInfo.data` of every task the scenario gives data to:
    /// `{data}` (or `{seconds}`) and `{command}` are replaced by the task's, so an
    /// executor with its own payload runs the generic scenarios unchanged, e.g.
    /// `--task-data '{"cmd": "sleep {seconds}"}'`.
    #[arg(long = "task-data")]
    task_data: Option<String>,
    /// Port to listen on (default: a free one).
    #[arg(long, default_value_t = 0)]
    port: u16,
    /// The executor command line. Without it, the agent prints the environment to start
    /// an executor by hand with, and waits for it.
    #[arg(last = true)]
    command: Vec<String>,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
        .with_writer(std::io::stderr)
        .init();
    let runtime = match tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("fake-agent: cannot start the runtime: {e}");
            return ExitCode::from(70);
        }
    };
    match cli.command {
        Command::Run(args) => runtime.block_on(run(args)),
    }
}

async fn run(args: RunArgs) -> ExitCode {
    let scenario = match scenario::load(&args.scenario) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("fake-agent: {e}");
            return ExitCode::from(2);
        }
    };
    let config = match scenario.agent.to_config() {
        Ok(c) => c,
        Err(e) => {
            eprintln!("fake-agent: {}: {e}", args.scenario.display());
            return ExitCode::from(2);
        }
    };
    let grace = config.shutdown_grace_period;
    let addr = std::net::SocketAddr::from(([127, 0, 0, 1], args.port));
    let mut agent = match FakeAgent::new(config).start_on(addr).await {
        Ok(a) => a,
        Err(e) => {
            eprintln!("fake-agent: cannot listen on {addr}: {e}");
            return ExitCode::from(1);
        }
    };
    let _manual_sandbox;
    let sandbox = if args.command.is_empty() {
        let dir = match new_sandbox() {
            Ok(d) => d,
            Err(e) => {
                eprintln!("fake-agent: cannot create a sandbox: {e}");
                return ExitCode::from(1);
            }
        };
        let path = dir.path().to_path_buf();
        println!("# Start your executor with this environment; the fake agent waits for it:");
        for (k, v) in agent.executor_env(&path) {
            println!("export {k}='{v}'");
        }
        let _ = std::io::stdout().flush();
        agent.expect_executor(&path);
        _manual_sandbox = Some(dir);
        path
    } else {
        let output = if args.inherit_output { Output::Inherit } else { Output::SandboxFiles };
        match agent.launch_executor(&args.command, output) {
            Ok(path) => path,
            Err(e) => {
                eprintln!("fake-agent: cannot start {:?}: {e}", args.command);
                return ExitCode::from(1);
            }
        }
    };

    let name = if scenario.name.is_empty() { args.scenario.display().to_string() } else { scenario.name.clone() };
    eprintln!("fake-agent: scenario {name:?} on {} (sandbox {})", agent.url(), sandbox.display());
    let mut runner = Runner::new(agent.agent.clone());
    if let Some(template) = &args.task_data {
        runner = runner.task_data(template.clone());
    }
    let result = runner.run(&scenario).await;
    finish(&agent.agent, grace).await;
    let entries = agent.agent.transcript();
    if let Some(path) = &args.transcript
        && let Err(e) = std::fs::write(path, to_json_lines(&entries))
    {
        eprintln!("fake-agent: cannot write the transcript to {}: {e}", path.display());
    }
    if !args.quiet {
        println!("{}", timeline(&entries));
    }
    if args.keep_sandbox
        && let Some(path) = agent.keep_sandbox()
    {
        eprintln!("fake-agent: sandbox kept at {}", path.display());
    }
    match result {
        Ok(()) => {
            println!("PASSED: {name} ({} steps)", scenario.steps.len());
            ExitCode::SUCCESS
        }
        Err(failure) => {
            println!("FAILED: {name}: {failure}");
            if let Ok(stderr) = std::fs::read_to_string(sandbox.join("stderr")) {
                let tail: Vec<&str> = stderr.lines().rev().take(20).collect();
                if !tail.is_empty() {
                    println!("-- last lines of the executor's stderr:");
                    for line in tail.iter().rev() {
                        println!("{line}");
                    }
                }
            }
            ExitCode::FAILURE
        }
    }
}
