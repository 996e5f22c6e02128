#!/usr/bin/env bash
# kube play benchmark: a Deployment of 3 replicas played until all its pods are ready, and
# then `kube down`, berth against `podman kube play` (runc, a private store); both on their
# default bridge, as users run them. Up and down are timed apart, N times interleaved,
# medians; then the RSS of what stays behind per pod (berth's monitor and infra; podman's
# conmon and infra). Prints the figures and berth's ratios; raw timings go to
# bench/results/kube-*.csv.
#
# Usage: sudo bench/kube.sh [N]   (default 10)
set -euo pipefail

n=${1:-10}
here=$(cd "$(dirname "$0")" && pwd)
top=$(cd "$here/.." && pwd)
berth=${BERTH_BIN:-$("$top/scripts/build.sh")}
work=$(mktemp -d /tmp/bt$$-kubebench-XXXX)
. "$here/lib.sh"
networks_apart "$work"
pflags+=(--runtime runc)
cleanup() {
  "$berth" kube down "$work/deploy.yaml" >/dev/null 2>&1 || true
  if command -v podman >/dev/null; then
    podman "${pflags[@]}" kube down "$work/deploy.yaml" >/dev/null 2>&1 || true
    podman_leftovers
  fi
  unmount_under "$work" 2>/dev/null || true
  rm -rf "$work"
}
trap cleanup EXIT

busybox_tar "$work" sh sleep true
"$berth" import -c 'ENV PATH=/bin' "$work/img.tar" bt-bench:1 >/dev/null
# A container that stops at SIGTERM at once (a shell as PID 1 would ignore it), so that
# `kube down` measures the engines, not a grace period; ready once its readiness probe
# passed (podman 4 reads no readiness probes: its pods count as ready once running).
cat > "$work/deploy.yaml" <<'EOF'
apiVersion: apps/v1
kind: Deployment
metadata:
  name: bt-web
spec:
  replicas: 3
  selector:
    matchLabels: {app: bt-web}
  template:
    metadata:
      labels: {app: bt-web}
    spec:
      terminationGracePeriodSeconds: 5
      containers:
      - name: srv
        image: bt-bench:1
        command: ["sh", "-c", "trap 'exit 0' TERM; sleep 1000 & wait"]
        readinessProbe:
          exec: {command: ["true"]}
          periodSeconds: 1
EOF

export CONTAINERS_CONF=$work/containers.conf
printf '[containers]\ndefault_ulimits = ["nofile=1024:1024", "nproc=4096:4096"]\n' > "$CONTAINERS_CONF"
havepodman=0
if command -v podman >/dev/null && command -v catatonit >/dev/null \
  && podman "${pflags[@]}" import --change 'ENV PATH=/bin' "$work/img.tar" bt-bench:1 >/dev/null 2>&1; then havepodman=1; fi

mkdir -p "$here/results"
stamp=$(date -u +%Y%m%dT%H%M%SZ)
PYTHONPATH="$here" python3 - "$n" "$berth" "$work/deploy.yaml" "$here/results/kube-$stamp" "$havepodman" "${pflags[@]}" <<'PY'
import subprocess, sys
from interleave import interleave
n, berth, yaml, csv, havepodman, pflags = int(sys.argv[1]), sys.argv[2], sys.argv[3], sys.argv[4], sys.argv[5] == "1", sys.argv[6:]
podman = "podman " + " ".join(pflags)
# Ready: every replica's container running (`kube ps` READY 1/1; podman: Running pods).
ready = {
    "berth": f"until [ \"$({berth} kube ps --format '{{{{.Ready}}}}' | grep -c '^1/1$')\" = 3 ]; do sleep 0.01; done",
    "podman": f"until [ \"$({podman} pod ps --format '{{{{.Status}}}}' | grep -c '^Running$')\" = 3 ]; do sleep 0.01; done",
}
cli = {"berth": berth, "podman": podman}
tools = ["berth"] + (["podman"] if havepodman else [])
up = {t: ["sh", "-ec", f"{cli[t]} kube play {yaml} >/dev/null\n{ready[t]}"] for t in tools}
down = {t: ["sh", "-ec", f"{cli[t]} kube down {yaml} >/dev/null"] for t in tools}
def sh(cmd):
    subprocess.run(["sh", "-c", cmd], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
def all_down():
    for t in tools:
        sh(f"{cli[t]} kube down {yaml}")
def all_up():
    for t in tools:
        sh(f"{cli[t]} kube down {yaml}")
        sh(f"{cli[t]} kube play {yaml}")
        sh(ready[t])
mu = interleave(up, n, csv + "-up.csv", before=all_down)
md = interleave(down, n, csv + "-down.csv", before=all_up)
all_down()
print(f"{n} x kube play of a 3-replica Deployment until ready, and kube down (default bridge), median ms")
print(f"{'':>8} {'up':>8} {'down':>8} {'total':>8}")
for t in tools:
    if t in mu and t in md:
        print(f"{t:>8} {mu[t]:8.1f} {md[t]:8.1f} {mu[t] + md[t]:8.1f}")
if all(t in mu and t in md for t in ("berth", "podman")):
    print(f"berth / podman: up {mu['berth'] / mu['podman']:.2f}x, down {md['berth'] / md['podman']:.2f}x, "
          f"total {(mu['berth'] + md['berth']) / (mu['podman'] + md['podman']):.2f}x the time")
print(f"raw timings: {csv}-up.csv, {csv}-down.csv")
PY

# What stays behind per running replica, after a few of its readiness probes: berth's
# monitors, podman's conmons (each pod's infra's and its container's).
rss() { awk '/^VmRSS/ {print $2}' "/proc/$1/status" 2>/dev/null || echo 0; }
"$berth" kube play "$work/deploy.yaml" >/dev/null
sleep 5
total=0
for c in $("$berth" ps -aq --no-trunc); do
  mon=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["monitor_pid"])' "$BERTH_ROOT/containers/$c/state.json")
  total=$((total + $(rss "$mon")))
done
echo "berth:  monitors $((total / 3)) KiB RSS per pod"
"$berth" kube down "$work/deploy.yaml" >/dev/null
if [ "$havepodman" = 1 ]; then
  podman "${pflags[@]}" kube play "$work/deploy.yaml" >/dev/null
  sleep 1
  total=0
  for id in $(podman "${pflags[@]}" ps -a --no-trunc --format '{{.ID}}'); do
    pid=$(podman "${pflags[@]}" inspect -f '{{.State.ConmonPid}}' "$id")
    total=$((total + $(rss "$pid")))
  done
  echo "podman: conmons $((total / 3)) KiB RSS per pod"
  podman "${pflags[@]}" kube down "$work/deploy.yaml" >/dev/null
fi
