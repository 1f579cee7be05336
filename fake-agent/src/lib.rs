//! A faithful stand-in for a Mesos agent's v1 executor API, for testing executors
//! without a cluster: it launches the executor, validates its calls as upstream does,
//! streams events, acknowledges updates, restarts, injects faults and keeps a transcript.
//!
//! # Layout
//! - [`server`]: the listener and [`FakeAgent`]/[`Listening`].
//! - [`http`]: routing and status codes in upstream order.
//! - [`bad_http`]: malformed HTTP answers on demand (a fault).
//! - [`validate`]: call decoding and validation, independent of the library's driver.
//! - [`herd`]: one agent restarting under many executors (no tasks), for herd tests.
//! - [`agent`]: the agent's state machine: subscriptions, tasks, acks, restarts, faults.
//! - [`stream`]: the chunked RecordIO event stream body.
//! - [`process`]: the executor's environment, process and container.
//! - [`transcript`]: JSON lines and a human timeline.
//! - [`scenario`] and [`runner`]: scenario files and their execution.

#![warn(missing_docs)]

pub mod agent;
pub mod bad_http;
pub mod config;
pub mod herd;
pub mod http;
pub mod process;
pub mod runner;
pub mod scenario;
pub mod server;
pub mod stream;
pub mod transcript;
pub mod validate;

pub use agent::{Agent, BadHttp, ExecutorState, Fault, HttpTarget, Phase, UpdateOutcome, WaitTimeout};
pub use config::{AckPolicy, AgentConfig};
pub use server::{FakeAgent, Listening};
