#!/usr/bin/env bash
# Container run benchmark: `run --rm IMG true` with berth, docker (a private dockerd) and
# podman, median of N each, all with --network none, on the same busybox image imported
# offline; then bench/monitor.sh: the memory of what keeps each container (berth's monitor,
# containerd-shim-runc-v2, conmon) in the states users are in. Prints medians and berth's
# ratios; raw timings go to bench/results/run-<date>.csv.
#
# Usage: sudo bench/run.sh [N]   (default 20)
set -euo pipefail

n=${1:-20}
here=$(cd "$(dirname "$0")" && pwd)
top=$(cd "$here/.." && pwd)
berth=${BERTH_BIN:-$("$top/scripts/build.sh")}
work=$(mktemp -d /tmp/bt$$-runbench-XXXX)
pids=()
cleanup() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; wait "$p" 2>/dev/null || true; done
  unmount_under "$work" 2>/dev/null || true
  rm -rf "$work"
}
pflags=(--root "$work/podman" --runroot "$work/podman-run" --storage-driver overlay --cgroup-manager cgroupfs --events-backend none)
trap cleanup EXIT

# The image: the host's busybox.
. "$here/lib.sh"
busybox_tar "$work" sh true sleep

export BERTH_ROOT=$work/berth
"$berth" import "$work/img.tar" bt-bench:1 >/dev/null

start_dockerd "$work" none
docker import "$work/img.tar" bt-bench:1 >/dev/null
havepodman=0
if command -v podman >/dev/null && podman "${pflags[@]}" import "$work/img.tar" bt-bench:1 >/dev/null 2>&1; then havepodman=1; fi

mkdir -p "$here/results"
csv="$here/results/run-$(date -u +%Y%m%dT%H%M%SZ).csv"
PYTHONPATH="$here" python3 - "$n" "$berth" "$csv" "$havepodman" "${pflags[@]}" <<'PY'
import sys
from interleave import interleave
n, berth, csv, havepodman, pflags = int(sys.argv[1]), sys.argv[2], sys.argv[3], sys.argv[4] == "1", sys.argv[5:]
tools = {
    "berth": [berth, "run", "--rm", "--network", "none", "bt-bench:1", "true"],
    "docker": ["docker", "run", "--rm", "--network", "none", "bt-bench:1", "true"],
}
if havepodman:
    # podman's default rlimits exceed this host's hard limits (see DESIGN.md's traps).
    tools["podman"] = ["podman", *pflags, "run", "--runtime", "runc", "--rm", "--network", "none", "--ulimit", "nofile=1024:1024",
                       "--ulimit", "nproc=4096:4096", "bt-bench:1", "true"]
med = interleave(tools, n, csv)
print(f"{n} x `run --rm IMG true` (--network none), median ms")
for k, v in med.items():
    print(f"{k:>8} {v:8.1f}")
for k, v in med.items():
    if k != "berth" and "berth" in med:
        print(f"berth / {k}: {med['berth'] / v:.2f}x the time")
print(f"raw timings: {csv}")
PY

# What keeps each container, in the states users are in (its own dockerd and podman store).
BERTH_BIN=$berth "$here/monitor.sh"
