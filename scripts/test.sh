#!/usr/bin/env bash
# Runs every test of the workspace. This is the README's test command, and .ci/run calls it.
# A fresh machine needs only the Rust toolchain (protoc comes from the protoc-bin-vendored crate).
set -euo pipefail
cd "$(dirname "$0")/.."
cargo test --workspace --all-targets "$@"
cargo test --workspace --doc
