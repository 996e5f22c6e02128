#!/usr/bin/env bash
# Pod benchmark: a pod made, two containers run in it (`sleep`), and the pod removed with
# them, berth against `podman pod` (runc, a private store, --network none for both), N
# times interleaved, medians; then the RSS and PSS of each pod's infra process while it
# holds one container. Prints the figures and berth's ratios; raw timings go to
# bench/results/pod-<date>.csv.
#
# Usage: sudo bench/pod.sh [N]   (default 10)
set -euo pipefail

n=${1:-10}
here=$(cd "$(dirname "$0")" && pwd)
top=$(cd "$here/.." && pwd)
berth=${BERTH_BIN:-$("$top/scripts/build.sh")}
work=$(mktemp -d /tmp/bt$$-podbench-XXXX)
pflags=(--root "$work/podman" --runroot "$work/podman-run" --storage-driver overlay --cgroup-manager cgroupfs --events-backend none --runtime runc)
cleanup() {
  "$berth" pod rm -f bt-pod bt-rss >/dev/null 2>&1 || true
  if command -v podman >/dev/null; then podman "${pflags[@]}" pod rm -af -t 0 >/dev/null 2>&1 || true; fi
  unmount_under "$work" 2>/dev/null || true
  rm -rf "$work"
}
trap cleanup EXIT

. "$here/lib.sh"
busybox_tar "$work" sh true sleep
export BERTH_ROOT=$work/berth
"$berth" import "$work/img.tar" bt-bench:1 >/dev/null

# podman's default rlimits exceed this host's hard limits, for the infra too (see
# DESIGN.md's traps); its infra image is built from catatonit.
export CONTAINERS_CONF=$work/containers.conf
printf '[containers]\ndefault_ulimits = ["nofile=1024:1024", "nproc=4096:4096"]\n' > "$CONTAINERS_CONF"
havepodman=0
if command -v podman >/dev/null && command -v catatonit >/dev/null \
  && podman "${pflags[@]}" import "$work/img.tar" bt-bench:1 >/dev/null 2>&1; then havepodman=1; fi

mkdir -p "$here/results"
csv="$here/results/pod-$(date -u +%Y%m%dT%H%M%SZ).csv"
PYTHONPATH="$here" python3 - "$n" "$berth" "$csv" "$havepodman" "${pflags[@]}" <<'PY'
import sys
from interleave import interleave
n, berth, csv, havepodman, pflags = int(sys.argv[1]), sys.argv[2], sys.argv[3], sys.argv[4] == "1", sys.argv[5:]
def cycle(cli, rm):
    return ["sh", "-ec", f"""
{cli} pod create --name bt-pod --network none >/dev/null
{cli} run -d --pod bt-pod bt-bench:1 sleep 60 >/dev/null
{cli} run -d --pod bt-pod bt-bench:1 sleep 60 >/dev/null
{cli} pod rm -f {rm} bt-pod >/dev/null
"""]
tools = {"berth": cycle(berth, "")}
if havepodman:
    tools["podman"] = cycle("podman " + " ".join(pflags), "-t 0")
med = interleave(tools, n, csv)
print(f"{n} x pod create, 2 x `run -d --pod`, pod rm -f (--network none), median ms")
for k, v in med.items():
    print(f"{k:>8} {v:8.1f}")
if "podman" in med and "berth" in med:
    print(f"berth / podman: {med['berth'] / med['podman']:.2f}x the time")
print(f"raw timings: {csv}")
PY

# The infra process of a pod holding one sleeping container.
rss() { echo "$(awk '/^VmRSS/ {print $2}' "/proc/$1/status") KiB RSS, $(awk '/^Pss:/ {print $2}' "/proc/$1/smaps_rollup") KiB PSS"; }
"$berth" pod create --name bt-rss --network none >/dev/null
"$berth" run -d --pod bt-rss bt-bench:1 sleep 600 >/dev/null
sleep 1
infra=$("$berth" pod inspect -f '{{.InfraContainerID}}' bt-rss)
echo "berth infra:  $(rss "$("$berth" inspect -f '{{.State.Pid}}' "$infra")")"
"$berth" pod rm -f bt-rss >/dev/null
if [ "$havepodman" = 1 ]; then
  podman "${pflags[@]}" pod create --name bt-rss --network none >/dev/null
  podman "${pflags[@]}" run -d --pod bt-rss bt-bench:1 sleep 600 >/dev/null
  sleep 1
  infra=$(podman "${pflags[@]}" pod inspect -f '{{.InfraContainerID}}' bt-rss)
  echo "podman infra: $(rss "$(podman "${pflags[@]}" inspect -f '{{.State.Pid}}' "$infra")") (catatonit)"
  podman "${pflags[@]}" pod rm -f -t 0 bt-rss >/dev/null
else
  echo "podman: not measured (podman or catatonit missing)"
fi
