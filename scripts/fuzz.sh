#!/usr/bin/env bash
# Runs every cargo-fuzz target for a bounded time (FUZZ_SECONDS, default 60 each) and
# copies any crash into tests/fuzz_regressions/<target>/, where tests/fuzz_regressions.rs
# replays it on every test run. cargo-fuzz needs nightly features; RUSTC_BOOTSTRAP lets
# the stable toolchain provide them.
set -euo pipefail
cd "$(dirname "$0")/.."
command -v cargo-fuzz >/dev/null || cargo install cargo-fuzz --locked
seconds="${FUZZ_SECONDS:-60}"
status=0
for target in recordio event_protobuf event_json agent_answer_call agent_answer_subscribe extract; do
  echo "== fuzzing $target for ${seconds}s"
  mkdir -p "fuzz/corpus/$target"
  if ! RUSTC_BOOTSTRAP=1 cargo fuzz run --fuzz-dir fuzz "$target" "fuzz/corpus/$target" -- \
      -max_total_time="$seconds" -max_len=4096 -rss_limit_mb=512 -print_final_stats=1; then
    status=1
  fi
  if compgen -G "fuzz/artifacts/$target/*" >/dev/null; then
    mkdir -p "tests/fuzz_regressions/$target"
    cp fuzz/artifacts/"$target"/* "tests/fuzz_regressions/$target/"
    echo "findings copied to tests/fuzz_regressions/$target/: fix them, keep them"
  fi
done
exit "$status"
