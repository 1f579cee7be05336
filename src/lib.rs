//! A Rust implementation of the Apache Mesos v1 HTTP executor API.
//!
//! A Mesos agent starts an executor with its identity in `MESOS_*` variables; the
//! executor POSTs `SUBSCRIBE`, reads a RecordIO stream of events, and POSTs
//! `UPDATE`s and `MESSAGE`s back.
//!
//! # Layout
//! - [`proto`]: the protocol types, generated from our proto2 files in `proto/`.
//! - [`wire`]: calls and events as protobuf or in the agent's JSON mapping.
//! - [`env`]: the typed executor environment and the stout duration grammar.
//! - [`driver`]: [`ExecutorDriver`] and its [`DriverHandle`]: subscription, RecordIO
//!   stream, calls, acknowledgements, recovery, TLS.
//! - [`executor`]: the [`Executor`] trait, and the daemon's executor.
//! - [`metrics`]: the metrics registry and the Prometheus text file writer.

#![forbid(unsafe_code)]
#![warn(missing_docs)]

pub mod driver;
pub mod env;
pub mod executor;
pub mod metrics;
pub mod proto;
pub mod wire;

pub use driver::{DriverConfig, DriverError, DriverHandle, DriverStatus, ExecutorDriver};
pub use env::{EnvError, ExecutorEnv};
pub use executor::Executor;
pub use wire::{ContentType, WireError};
