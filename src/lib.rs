//! A Rust implementation of the Apache Mesos v1 HTTP executor API.
//!
//! A Mesos agent starts an executor with its identity in `MESOS_*` variables; the
//! executor POSTs `SUBSCRIBE`, reads a RecordIO stream of events, and POSTs
//! `UPDATE`s and `MESSAGE`s back.
//!
//! # Quick start
//! ```toml
//! [dependencies]
//! mesos-executor = "0.1"
//! ```
//! Implement [`Executor`] (or take the [`ExecutorEvent`] stream from
//! [`ExecutorDriver::events`]), then in `main`:
//! ```no_run
//! # use mesos_executor::{DriverHandle, Executor, ShutdownReason, proto::v1::{KillPolicy, TaskId, TaskInfo}};
//! # struct MyExecutor;
//! # impl Executor for MyExecutor {
//! #     fn launch_task(&mut self, _: &DriverHandle, _: TaskInfo) {}
//! #     fn kill_task(&mut self, _: &DriverHandle, _: TaskId, _: Option<KillPolicy>) {}
//! #     fn shutdown(&mut self, driver: &DriverHandle, _: ShutdownReason) { driver.stop(); }
//! # }
//! fn main() -> std::process::ExitCode {
//!     match mesos_executor::ExecutorDriver::from_env(MyExecutor).and_then(|driver| driver.run()) {
//!         Ok(outcome) => outcome.exit_code(), // 0, or 1 when the agent was lost or refused us
//!         Err(e) => {
//!             eprintln!("{e}"); // a bad MESOS_* environment
//!             std::process::ExitCode::from(64)
//!         }
//!     }
//! }
//! ```
//! `examples/` has three complete executors, each tested under the fake agent.
//!
//! # Lifecycle
//! 1. **Environment.** [`ExecutorDriver::from_env`] reads the `MESOS_*` variables the
//!    agent set ([`ExecutorEnv`]); a missing or malformed one is an error naming it.
//! 2. **Subscribe.** [`run`](ExecutorDriver::run) (or `start`, then `join`) POSTs
//!    SUBSCRIBE and reads the event stream. The first SUBSCRIBED calls
//!    [`Executor::registered`].
//! 3. **Launch.** LAUNCH calls [`Executor::launch_task`] (LAUNCH_GROUP
//!    [`Executor::launch_task_group`]); start the work and report with
//!    [`DriverHandle::send_status_update`], for example `TaskStatus::running(&task.task_id)`.
//! 4. **Update and acknowledge.** The driver fills in each update's uuid, timestamp,
//!    source and ids, POSTs it, and keeps it until the agent's ACKNOWLEDGED names its uuid.
//! 5. **Disconnect.** When the stream breaks, [`Executor::disconnected`] is called.
//!    Without checkpointing (`MESOS_CHECKPOINT=0`) that is the end: step 7.
//! 6. **Resubscribe.** With checkpointing the driver subscribes again (first at once,
//!    then at most 4 times a second, at least once per `MESOS_SUBSCRIPTION_BACKOFF_MAX`),
//!    carrying every unacknowledged update and task; success calls
//!    [`Executor::reregistered`]. Past `MESOS_RECOVERY_TIMEOUT` it gives up: step 7.
//! 7. **Shutdown.** [`Executor::shutdown`] is called once, with a [`ShutdownReason`]:
//!    the agent's SHUTDOWN, the agent lost or never reached or refusing us, or
//!    [`DriverHandle::request_shutdown`]. Kill every task, report it, then call
//!    [`DriverHandle::stop`]: the driver ends once every update is acknowledged (or at
//!    its stop timeout). If you do not stop it within
//!    `MESOS_EXECUTOR_SHUTDOWN_GRACE_PERIOD`, it ends itself.
//! 8. **Outcome.** `run`/`join` return a [`DriverOutcome`]; its
//!    [`exit_code`](DriverOutcome::exit_code) is 0 for a normal end and 1 otherwise.
//!
//! Every wait on the agent has a deadline; the rules are a state machine in
//! `src/driver/lifecycle.rs`.
//!
//! # What runs concurrently
//! The driver runs on one task: it reads events, calls your callbacks one at a time in
//! event order, and sends calls. A callback that blocks stops all of that, so hand long
//! work to a thread or a tokio task. With `start`/`run` that task is alone on a thread
//! and a single-threaded runtime of its own: callbacks never overlap each other, and a
//! task you `tokio::spawn` from a callback runs on that runtime between callbacks. With
//! [`run_async`](ExecutorDriver::run_async) or [`events`](ExecutorDriver::events) on a
//! multi-threaded runtime, your tasks may run while a callback does. [`DriverHandle`] is
//! `Clone + Send + Sync`: report from anywhere.
//!
//! # Logging
//! The library logs through [`tracing`](https://docs.rs/tracing) (spans carry the
//! framework and executor ids, lines about a task its `task_id`) and installs nothing:
//! without a subscriber you see no logs. Install one in `main`, for example
//! `tracing_subscriber::fmt().with_writer(std::io::stderr).init()`, and filter with
//! `RUST_LOG`. Tokens and secret values are never logged.
//!
//! # A public API we can keep
//! Public enums, and the structs with public fields that users read or fill in
//! ([`DriverConfig`], [`ExecutorEnv`], [`LaunchSpec`](executor::launch::LaunchSpec),
//! [`StartOptions`](executor::process::StartOptions), the errors, ...), are
//! `#[non_exhaustive]`, so that a new variant or field is not a breaking change: build
//! them with their constructors (`DriverConfig::new`, `LaunchSpec::new`, `Default`),
//! then set fields; give a `match` on one of our enums a wildcard arm.
//!
//! ```compile_fail,E0639
//! # fn f(env: mesos_executor::ExecutorEnv) {
//! // Refused: a struct expression, even with `..`, of a non-exhaustive struct.
//! let config = mesos_executor::DriverConfig { content_type: mesos_executor::ContentType::Json, ..mesos_executor::DriverConfig::new(env) };
//! # }
//! ```
//! ```compile_fail,E0004
//! use mesos_executor::executor::process::Exit;
//! // Refused: no wildcard arm.
//! fn describe(exit: Exit) -> i32 {
//!     match exit {
//!         Exit::Code(code) => code,
//!         Exit::Signal(signal, _) => 128 + signal,
//!     }
//! }
//! ```
//! ```
//! # fn f(env: mesos_executor::ExecutorEnv) {
//! let mut config = mesos_executor::DriverConfig::new(env);
//! config.content_type = mesos_executor::ContentType::Json;
//! # }
//! ```
//!
//! Public signatures use our own types, or crates we re-export: [`bytes`], [`prost`]
//! (the protocol types' `Message`), [`tokio`] (the runtime the driver and the task
//! processes run on) and [`metrics::prometheus`] (to register figures of your own).
//!
//! # Layout
//! - [`proto`]: the protocol types, generated from our proto2 files in `proto/`.
//! - [`wire`]: calls and events as protobuf or in the agent's JSON mapping.
//! - [`env`](mod@env): the typed executor environment and the stout duration grammar.
//! - [`driver`]: [`ExecutorDriver`] and its [`DriverHandle`]: subscription, RecordIO
//!   stream, calls, acknowledgements, recovery, TLS.
//! - [`executor`]: the [`Executor`] trait, and a toolkit for executors that run
//!   commands: [`launch`](executor::launch) (a CommandInfo to a process spec),
//!   [`process`](executor::process) (process groups, process-tree cleanup),
//!   [`kill`](executor::kill) (SIGTERM then SIGKILL under a kill policy),
//!   [`health`](executor::health) and [`check`](executor::check) (probes and their
//!   counting rules).
//! - [`metrics`]: the metrics registry and the Prometheus text file writer.
//!
//! The `mesos-executor` daemon (`bin/`, the `mesos-executor-daemon` crate) and the fake
//! agent (`fake-agent/`) are built on this library like any other user; see the README
//! for both. The library itself has no command line, no log formatting and no daemon
//! policy: install a `tracing` subscriber to see its logs.

// `deny`, not `forbid`: the one `pre_exec` hook (`executor/pre_exec.rs`) allows it.
#![deny(unsafe_code)]
#![warn(missing_docs)]

pub mod driver;
pub mod env;
pub mod executor;
pub mod metrics;
pub mod proto;
mod status;
pub mod wire;

pub use bytes::{self, Bytes};
pub use prost;
/// The crates of the JSON mapping's signatures ([`wire`]): `prost_reflect`'s dynamic
/// messages and `serde_json`'s values, at the versions this crate uses.
pub use prost_reflect;
pub use serde_json;
pub use tokio;

pub use driver::{
    DriverConfig, DriverError, DriverHandle, DriverOutcome, DriverStatus, ExecutorDriver, ShutdownReason,
    events::{Events, ExecutorEvent},
};
pub use env::{EnvError, ExecutorEnv};
pub use executor::Executor;
#[doc(no_inline)]
pub use proto::v1::{TaskId, TaskInfo, TaskState, TaskStatus};
pub use wire::{ContentType, WireError};
