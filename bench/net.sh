#!/usr/bin/env bash
# Network benchmark: the time `run --rm IMG true` takes on the default bridge against
# `--network none` (what network setup adds to a start), berth beside docker (a private
# dockerd on a bridge of its own, no iptables) and podman (a private store; its CNI bridge
# and the iptables tables it leaves are removed afterwards when they were not there
# before); then container-to-container TCP throughput
# over the bridge: busybox httpd serving a 256 MiB file to busybox wget in a second
# container, berth and docker. Traffic stays on bridges this script makes.
#
# Usage: sudo bench/net.sh [N]   (default 20)
set -euo pipefail

n=${1:-20}
here=$(cd "$(dirname "$0")" && pwd)
top=$(cd "$here/.." && pwd)
berth=${BERTH_BIN:-$("$top/scripts/build.sh")}
work=$(mktemp -d /tmp/bt$$-netbench-XXXX)
. "$here/lib.sh"
networks_apart "$work"
pids=()
cleanup() {
  podman_leftovers
  "$berth" rm -f bt-srv bt-cli >/dev/null 2>&1 || true
  docker rm -f bt-srv bt-cli >/dev/null 2>&1 || true
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; wait "$p" 2>/dev/null || true; done
  sleep 3 # berth keeps an idle bridge for 2 s
  ip link del "$dkbr" 2>/dev/null || true
  unmount_under "$work" 2>/dev/null || true
  rm -rf "$work"
}
trap cleanup EXIT

mkdir -p "$work/rootfs"/{bin,etc,dev,proc,sys,tmp,www}
cp /bin/busybox "$work/rootfs/bin/"
for a in sh true sleep httpd wget dd; do ln -s busybox "$work/rootfs/bin/$a"; done
echo 'root:x:0:0:root:/root:/bin/sh' > "$work/rootfs/etc/passwd"
tar -C "$work/rootfs" -cf "$work/img.tar" .
"$berth" import "$work/img.tar" bt-bench:1 >/dev/null

ip link add "$dkbr" type bridge
ip addr add 10.253.0.1/24 dev "$dkbr"
ip link set "$dkbr" up
start_dockerd "$work" "$dkbr"
docker import "$work/img.tar" bt-bench:1 >/dev/null
havepodman=0
if command -v podman >/dev/null && podman "${pflags[@]}" import "$work/img.tar" bt-bench:1 >/dev/null 2>&1; then havepodman=1; fi

mkdir -p "$here/results"
csv="$here/results/net-$(date -u +%Y%m%dT%H%M%SZ).csv"
PYTHONPATH="$here" python3 - "$n" "$berth" "$csv" "$havepodman" "${pflags[@]}" <<'PY'
import sys
from interleave import interleave
n, berth, csv, havepodman, pflags = int(sys.argv[1]), sys.argv[2], sys.argv[3], sys.argv[4] == "1", sys.argv[5:]
tools = {
    "berth none": [berth, "run", "--rm", "--network", "none", "bt-bench:1", "true"],
    "berth bridge": [berth, "run", "--rm", "bt-bench:1", "true"],
    "docker none": ["docker", "run", "--rm", "--network", "none", "bt-bench:1", "true"],
    "docker bridge": ["docker", "run", "--rm", "bt-bench:1", "true"],
}
if havepodman:
    # runc and these rlimits: crun refuses this hybrid host, and podman's default rlimits
    # exceed its hard limits.
    pod = ["podman", *pflags, "run", "--runtime", "runc", "--rm", "--ulimit", "nofile=1024:1024", "--ulimit", "nproc=4096:4096"]
    tools["podman none"] = [*pod, "--network", "none", "bt-bench:1", "true"]
    tools["podman bridge"] = [*pod, "bt-bench:1", "true"]
med = interleave(tools, n, csv)
print(f"{n} x `run --rm IMG true`, median ms")
for k, v in med.items():
    print(f"{k:>14} {v:8.1f}")
for t in ("berth", "docker", "podman"):
    if f"{t} none" in med and f"{t} bridge" in med:
        print(f"{t}: the bridge adds {med[t + ' bridge'] - med[t + ' none']:.1f} ms to a run")
for t in ("docker", "podman"):
    if "berth bridge" in med and f"{t} bridge" in med:
        print(f"berth / {t} on the bridge: {med['berth bridge'] / med[t + ' bridge']:.2f}x the time")
print(f"raw timings: {csv}")
PY

# Throughput: a 256 MiB file over HTTP from one container to another on the bridge.
serve='dd if=/dev/zero of=/www/big bs=1M count=256 2>/dev/null && exec httpd -f -p 80 -h /www'
through() { # tool
  local tool=$1 ip t0 t1
  "$tool" run -d --name bt-srv bt-bench:1 sh -c "$serve" >/dev/null
  "$tool" run -d --name bt-cli bt-bench:1 sleep 1000 >/dev/null
  ip=$("$tool" inspect --format '{{.NetworkSettings.IPAddress}}' bt-srv)
  for _ in $(seq 100); do "$tool" exec bt-cli wget -q -O /dev/null "http://$ip/big" 2>/dev/null && break; sleep 0.2; done
  t0=$(date +%s.%N)
  for _ in 1 2 3; do "$tool" exec bt-cli wget -q -O /dev/null "http://$ip/big"; done
  t1=$(date +%s.%N)
  "$tool" rm -f bt-srv bt-cli >/dev/null
  python3 -c "print(f'{3*256/($t1-$t0):.0f}')"
}
bt=$(through "$berth")
dt=$(through docker)
echo "container-to-container HTTP, 3 x 256 MiB (MiB/s): berth $bt, docker $dt"
