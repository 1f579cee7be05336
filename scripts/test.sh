#!/usr/bin/env bash
# Runs every test of the workspace. This is the README's test command, and .ci/run calls it.
# A fresh machine needs only the Rust toolchain (protoc comes from the protoc-bin-vendored crate).
set -euo pipefail
cd "$(dirname "$0")/.."
# The metrics test checks our file with an independent parser: Python's prometheus_client.
python3 -c "import prometheus_client" 2>/dev/null ||
  python3 -m pip install --quiet --disable-pip-version-check prometheus_client
# Tests on a real Apache Mesos (bin/tests/real_mesos.rs) find it through MESOS_HOME; without
# it they print "SKIPPED (MESOS_HOME unset)" and pass. Unpack the shared build when it is there.
if [ -z "${MESOS_HOME:-}" ] && [ -f ../shared/mesos/unpack.sh ]; then
  MESOS_HOME="$(sh ../shared/mesos/unpack.sh target/mesos)"
  export MESOS_HOME
fi
# Tests that need root are marked #[ignore] and say so when not root; as root (CI), run them.
# Two other kinds are ignored and stay skipped: `known_difference` (a difference from
# upstream on the real agent, kept visible with its reason until fixed) and `open_hole`
# (an attack that still works, kept with its reason until fixed).
include_ignored=()
if [ "$(id -u)" = 0 ]; then
  include_ignored=(--include-ignored --skip known_difference --skip open_hole)
fi
cargo test --workspace --all-targets --no-fail-fast "$@" -- "${include_ignored[@]}"
cargo test --workspace --doc
