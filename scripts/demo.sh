#!/usr/bin/env bash
# The main job: the mesos-executor daemon, as a framework's custom executor, driven by
# the fake agent through fake-agent/scenarios/daemon/demo.yaml (tasks that finish and
# fail, a health check, a task group, a kill, an agent restart, a shutdown). Prints the
# timeline; the transcript goes to target/demo-transcript.jsonl. Exits 0 when every
# expectation held. A fresh machine needs only the Rust toolchain.
set -euo pipefail
cd "$(dirname "$0")/.."
cargo build --release --quiet -p mesos-executor-daemon -p fake-agent --bins
exec target/release/fake-agent run \
  --scenario fake-agent/scenarios/daemon/demo.yaml \
  --transcript target/demo-transcript.jsonl \
  -- "$PWD/target/release/mesos-executor" --mode=custom
