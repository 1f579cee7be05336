//! `mesos-executor`: the daemon's program. All of it is in the crate's library,
//! `executor_daemon` (its root is `main.rs`), whose name is the target of the daemon's
//! log lines.

fn main() -> std::process::ExitCode {
    executor_daemon::main()
}
