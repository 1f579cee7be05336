#!/usr/bin/env bash
# RustSec advisories (vulnerabilities, and crates listed as unmaintained, unsound or
# yanked: warnings are denied) against the workspace's and the fuzz crate's Cargo.lock.
#
# The advisory database cannot be fetched from this project's machines (only package
# registries are reachable), so a snapshot of rustsec/advisory-db (CC0) is kept in
# .ci/advisory-db.tar.gz; .ci/advisory-db.commit names its commit and date. Refresh it
# where GitHub is reachable:
#   git clone --depth 1 https://github.com/rustsec/advisory-db /tmp/db &&
#   git -C /tmp/db archive HEAD crates rust LICENSE.txt | gzip -9 > .ci/advisory-db.tar.gz
# cargo-audit comes from crates.io (a fresh 2-core machine builds it in several minutes).
set -euo pipefail
cd "$(dirname "$0")/.."
if ! command -v cargo-audit >/dev/null; then
  cargo install --locked --quiet cargo-audit --version 0.22.2 --no-default-features
fi
db=target/advisory-db
rm -rf "$db"
mkdir -p "$db"
tar -xzf .ci/advisory-db.tar.gz -C "$db"
echo "advisory database: $(cat .ci/advisory-db.commit)"
# --stale: the snapshot is older than cargo-audit's 90-day freshness check.
cargo audit --db "$db" --no-fetch --stale --deny warnings
(cd fuzz && cargo audit --db "../$db" --no-fetch --stale --deny warnings)
