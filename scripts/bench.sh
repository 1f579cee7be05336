#!/usr/bin/env bash
# The benchmark: our daemon and a peer (a command executor on pymesos from PyPI) on the
# same fake agent and machine. Builds in release mode, makes the peer's virtualenv in
# target/bench-venv (pymesos 0.3.15; its http-parser dependency installed without its C
# extension, which no longer builds on current CPython, so pymesos uses its pure-Python
# parser), prints the table and writes it as JSON to target/bench.json.
# Arguments pick parts: memory fifty speed cpu flood herd real (default: all).
#
# `real` (bin/benches/real.rs): ours beside upstream's command and default executors on a
# real Mesos master and agent, as root, found through MESOS_HOME (set here from
# ../shared/mesos when that is there, as scripts/test.sh does); its table goes to
# target/bench-real.json. Without MESOS_HOME it is skipped, saying so.
set -euo pipefail
cd "$(dirname "$0")/.."
real=no
fake=()
for part in "$@"; do
  if [ "$part" = real ]; then real=yes; else fake+=("$part"); fi
done
if [ $# -eq 0 ]; then real=yes; fi
if [ "$real" = yes ] && [ -z "${MESOS_HOME:-}" ] && [ -f ../shared/mesos/unpack.sh ]; then
  MESOS_HOME="$(sh ../shared/mesos/unpack.sh target/mesos)"
  export MESOS_HOME
fi
if [ $# -gt 0 ] && [ ${#fake[@]} -eq 0 ]; then
  # `real` alone.
  cargo build --release --quiet -p mesos-executor-daemon
  if [ -z "${MESOS_HOME:-}" ]; then echo "real: skipped (MESOS_HOME unset)"; exit 0; fi
  cargo bench --quiet -p mesos-executor-daemon --bench real -- --json "$PWD/target/bench-real.json"
  exit 0
fi
venv=target/bench-venv
if ! "$venv/bin/python" -c "import pymesos" 2>/dev/null; then
  python3 -m venv "$venv"
  tmp=$(mktemp -d)
  "$venv/bin/pip" download --quiet --disable-pip-version-check --no-deps --no-binary :all: http-parser==0.9.0 -d "$tmp"
  tar xzf "$tmp"/http-parser-0.9.0.tar.gz -C "$tmp"
  sed -i 's/run_setup(not IS_PYPY)/run_setup(False)/' "$tmp"/http-parser-0.9.0/setup.py
  "$venv/bin/pip" install --quiet --disable-pip-version-check "$tmp"/http-parser-0.9.0
  "$venv/bin/pip" install --quiet --disable-pip-version-check pymesos==0.3.15
  rm -rf "$tmp"
fi
cargo build --release --quiet -p mesos-executor-daemon -p fake-agent
PEER_PYTHON="$PWD/$venv/bin/python" \
  cargo bench --quiet -p mesos-executor-daemon --bench targets -- --json "$PWD/target/bench.json" ${fake[@]+"${fake[@]}"}
if [ "$real" = yes ]; then
  if [ -z "${MESOS_HOME:-}" ]; then
    echo "real: skipped (MESOS_HOME unset)"
  else
    cargo bench --quiet -p mesos-executor-daemon --bench real -- --json "$PWD/target/bench-real.json"
  fi
fi
