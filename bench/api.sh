#!/usr/bin/env bash
# API benchmark: the same `docker` CLI against berth's daemon and against dockerd (a
# private one), on the same busybox image imported offline, --network none:
#   1. `docker run --rm IMG true`, median of N, interleaved;
#   2. 50 containers created and started at once (`docker run -d`, 50 in parallel), the
#      wall time until all 50 run, for each daemon (then removed); three rounds, medians.
# Prints the figures and berth's ratios; raw timings go to bench/results/api-<date>.csv.
#
# Usage: sudo bench/api.sh [N]   (default 20)
set -euo pipefail

n=${1:-20}
here=$(cd "$(dirname "$0")" && pwd)
top=$(cd "$here/.." && pwd)
berth=${BERTH_BIN:-$("$top/scripts/build.sh")}
work=$(mktemp -d /tmp/bt$$-apibench-XXXX)
pids=()
cleanup() {
  DOCKER_HOST=unix://$work/berth.sock docker rm -f $(DOCKER_HOST=unix://$work/berth.sock docker ps -aq 2>/dev/null) >/dev/null 2>&1 || true
  docker rm -f $(docker ps -aq 2>/dev/null) >/dev/null 2>&1 || true
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; wait "$p" 2>/dev/null || true; done
  unmount_under "$work" 2>/dev/null || true
  rm -rf "$work" 2>/dev/null || true
}
trap cleanup EXIT

. "$here/lib.sh"
busybox_tar "$work" sh true sleep

export BERTH_ROOT=$work/berth
"$berth" import "$work/img.tar" bt-bench:1 >/dev/null
"$berth" daemon -H "unix://$work/berth.sock" > "$work/berth.log" 2>&1 &
pids+=($!)
for _ in $(seq 100); do [ -S "$work/berth.sock" ] && break; sleep 0.05; done

start_dockerd "$work" none
docker import "$work/img.tar" bt-bench:1 >/dev/null
dockerd_host=$DOCKER_HOST
berth_host=unix://$work/berth.sock

mkdir -p "$here/results"
csv="$here/results/api-$(date -u +%Y%m%dT%H%M%SZ).csv"
PYTHONPATH="$here" python3 - "$n" "$csv" "$berth_host" "$dockerd_host" <<'PY'
import os, subprocess, sys, time
from interleave import interleave
n, csv, berth_host, dockerd_host = int(sys.argv[1]), sys.argv[2], sys.argv[3], sys.argv[4]
def env(host):
    e = dict(os.environ); e["DOCKER_HOST"] = host; return e
# interleave() runs plain argv lists: wrap each in `env DOCKER_HOST=...`.
tools = {
    "berth": ["env", f"DOCKER_HOST={berth_host}", "docker", "run", "--rm", "--network", "none", "bt-bench:1", "true"],
    "dockerd": ["env", f"DOCKER_HOST={dockerd_host}", "docker", "run", "--rm", "--network", "none", "bt-bench:1", "true"],
}
med = interleave(tools, n, csv)
print(f"{n} x `docker run --rm IMG true` (--network none) through each daemon, median ms")
for k, v in med.items():
    print(f"{k:>8} {v:8.1f}")
print(f"berth / dockerd: {med['berth'] / med['dockerd']:.2f}x the time")
print(f"raw timings: {csv}")
# The 50-at-once figure swings with the host's load: three rounds, alternating daemons,
# and the median of each.
res = {"berth": [], "dockerd": []}
for rnd in range(3):
    for name, host in (("berth", berth_host), ("dockerd", dockerd_host)):
        t0 = time.perf_counter()
        procs = [subprocess.Popen(["docker", "run", "-d", "--network", "none", "bt-bench:1", "sleep", "300"], env=env(host),
                                  stdout=subprocess.DEVNULL, stderr=subprocess.PIPE) for _ in range(50)]
        failed = sum(1 for p in procs if p.wait() != 0)
        ms = (time.perf_counter() - t0) * 1000
        res[name].append(ms)
        ids = subprocess.run(["docker", "ps", "-aq"], env=env(host), capture_output=True, text=True).stdout.split()
        if ids:
            subprocess.run(["docker", "rm", "-f", *ids], env=env(host), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        print(f"round {rnd + 1} {name:>8}: 50 concurrent `docker run -d` in {ms:.0f} ms ({failed} failed)")
med = {k: sorted(v)[1] for k, v in res.items()}
for name in ("berth", "dockerd"):
    print(f"{name:>8}: 50 concurrent `docker run -d`, median of 3: {med[name]:.0f} ms ({med[name] / 50:.1f} ms per container)")
print(f"berth / dockerd (50 concurrent): {med['berth'] / med['dockerd']:.2f}x the time ({med['dockerd'] / med['berth']:.1f}x faster)")
PY
