//! Helpers of the daemon's tests: the library's (`tests/support/` at the top) and the
//! daemon's own (`daemon`).

#![allow(dead_code, unused_imports)]

#[path = "../../../tests/support/mod.rs"]
mod common;

pub use common::*;

pub mod daemon;
