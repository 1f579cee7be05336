#!/usr/bin/env bash
# The benchmark: our daemon and a peer (a command executor on pymesos from PyPI) on the
# same fake agent and machine. Builds in release mode, makes the peer's virtualenv in
# target/bench-venv (pymesos 0.3.15; its http-parser dependency installed without its C
# extension, which no longer builds on current CPython, so pymesos uses its pure-Python
# parser), prints the table and writes it as JSON to target/bench.json.
# Arguments pick parts: memory fifty speed cpu flood herd (default: all).
set -euo pipefail
cd "$(dirname "$0")/.."
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
  cargo bench --quiet -p mesos-executor-daemon --bench targets -- --json "$PWD/target/bench.json" "$@"
