#!/usr/bin/env bash
# The whole test suite, as CI runs it: formatting, clippy, then every unit, integration and
# end-to-end test with BERTH_TEST_ROOT=1, so a test whose requirement (root, a tool, a cgroup
# version) is missing fails instead of skipping. Run as root.
set -euo pipefail
cd "$(dirname "$0")/.."

if [ "$(id -u)" != 0 ]; then
  echo "scripts/test.sh: run as root (the tests create namespaces, mounts and cgroups)" >&2
  exit 1
fi
scripts/install-deps.sh
# One clean build: incremental caches would only double the target directory here.
export CARGO_INCREMENTAL="${CARGO_INCREMENTAL:-0}"
cargo fmt --all --check
cargo clippy --workspace --all-targets --locked -- -D warnings
# The tests run in a session of their own: a signal sent to a process group by mistake
# reaches them, never this script, which then says what the kernel saw.
status=0
BERTH_TEST_ROOT=1 setsid --wait cargo test --workspace --locked || status=$?
if [ "$status" != 0 ]; then
  echo "scripts/test.sh: cargo test ended with status $status; what the kernel said of killed processes:" >&2
  dmesg 2>/dev/null | grep -iE "out of memory|killed process|oom-kill|segfault|traps:" | tail -n 20 >&2 || true
  exit "$status"
fi
