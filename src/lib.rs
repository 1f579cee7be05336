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
//! - [`driver`]: the connection to the agent, starting with the RecordIO codec.

#![forbid(unsafe_code)]
#![warn(missing_docs)]

pub mod driver;
pub mod env;
pub mod proto;
pub mod wire;

pub use env::{EnvError, ExecutorEnv};
pub use wire::{ContentType, WireError};
