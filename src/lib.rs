//! A Rust implementation of the Apache Mesos v1 HTTP executor API.
//!
//! A Mesos agent starts an executor with its identity in `MESOS_*` variables; the
//! executor POSTs `SUBSCRIBE`, reads a RecordIO stream of events, and POSTs
//! `UPDATE`s and `MESSAGE`s back.
//!
//! # Lifecycle
//! [`ExecutorDriver::from_env`] reads the environment; [`ExecutorDriver::run`] (or
//! `start` then `join`) subscribes and calls your [`Executor`] one event at a time:
//! `registered`, then `launch_task`, `kill_task`, ... Report task states through the
//! [`DriverHandle`] from anywhere; every update is kept until the agent acknowledges it.
//! On a lost connection the driver calls `disconnected`, then resubscribes
//! (`reregistered`) if the framework checkpoints, or calls `shutdown` with a
//! [`ShutdownReason`]. Your `shutdown` kills the tasks and calls
//! [`DriverHandle::stop`], which ends the driver once the terminal updates are
//! acknowledged; `run` then returns a [`DriverOutcome`] whose
//! [`exit_code`](DriverOutcome::exit_code) a `main` can return. Every wait on the agent
//! has a deadline (see `src/driver/lifecycle.rs`).
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

#![forbid(unsafe_code)]
#![warn(missing_docs)]

pub mod driver;
pub mod env;
pub mod executor;
pub mod metrics;
pub mod proto;
mod status;
pub mod wire;

pub use bytes::{self, Bytes};

pub use driver::{
    DriverConfig, DriverError, DriverHandle, DriverOutcome, DriverStatus, ExecutorDriver, ShutdownReason,
};
pub use env::{EnvError, ExecutorEnv};
pub use executor::{
    Executor,
    events::{Events, ExecutorEvent},
};
pub use wire::{ContentType, WireError};
