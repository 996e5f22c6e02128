#!/usr/bin/env bash
# Container run benchmark: `run --rm IMG true` with berth, docker (a private dockerd) and
# podman, median of N each, all with --network none, on the same busybox image imported
# offline; then the RSS of an idle container's keeper: berth's monitor vs
# containerd-shim-runc-v2 vs conmon. Prints medians and berth's ratios; raw timings go to
# bench/results/run-<date>.csv.
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
  BERTH_ROOT=$work/berth "$berth" rm -f bt-idle >/dev/null 2>&1 || true
  docker rm -f bt-idle >/dev/null 2>&1 || true
  podman "${pflags[@]}" rm -f bt-idle >/dev/null 2>&1 || true
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; wait "$p" 2>/dev/null || true; done
  grep -o " $work[^ ]*" /proc/self/mounts | sort -r | while read -r m; do umount -l "$m" 2>/dev/null || true; done || true
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

# Idle keepers' memory: one sleeping container each, then the RSS of what keeps it.
rss() { awk '/^VmRSS/ {print $2}' "/proc/$1/status"; }
"$berth" run -d --name bt-idle --network none bt-bench:1 sleep 1000 >/dev/null
mon=$(python3 -c "import json,sys; print(json.load(open(sys.argv[1]))['monitor_pid'])" "$BERTH_ROOT/containers/$("$berth" inspect --format '{{.Id}}' bt-idle)/state.json")
docker run -d --name bt-idle --network none bt-bench:1 sleep 1000 >/dev/null
cpid=$(docker inspect --format '{{.State.Pid}}' bt-idle)
shim=$(ps -o ppid= -p "$cpid" | tr -d ' ')
sleep 3  # past the keeper's 2 s (its fresh image)
keeper=$(ps -o ppid= -p "$mon" | tr -d ' ')
pss() { awk '/^Pss:/ {print $2}' "/proc/$1/smaps_rollup"; }
echo "idle keeper RSS (KiB): berth monitor $(rss "$mon") + its keeper $(rss "$keeper") = $(( $(rss "$mon") + $(rss "$keeper") )), containerd-shim-runc-v2 $(rss "$shim")"
echo "idle keeper PSS (KiB): berth monitor $(pss "$mon") + its keeper $(pss "$keeper"), containerd-shim-runc-v2 $(pss "$shim")"
if [ "$havepodman" = 1 ]; then
  podman "${pflags[@]}" run --runtime runc -d --name bt-idle --network none --ulimit nofile=1024:1024 --ulimit nproc=4096:4096 bt-bench:1 sleep 1000 >/dev/null
  ppid=$(podman "${pflags[@]}" inspect --format '{{.State.ConmonPid}}' bt-idle)
  echo "idle keeper RSS (KiB): conmon $(rss "$ppid")"
fi
