#!/usr/bin/env bash
# scripts/critest.sh [extra critest flags...]: run Kubernetes' CRI validation suite (critest)
# against `berth cri`, through the shared harness (../shared/cri-harness: stand-in images on a
# local registry, per-spec results), the way its containerd-baseline.sh runs containerd.
#
# critest is not built here: put a critest binary (from cri-tools) in $CRI_WORK/bin.
# Everything runs inside `unshare --mount --net --ipc --pid --fork --mount-proc`: berth's
# state lives under $CRI_WORK/berth, the CNI bridge and nftables vanish with the netns, and
# every container dies with the namespace's init. The cgroups the run made (those not there
# before it) are removed at the end.
# Env: BERTH_BIN (default target/x86_64-unknown-linux-gnu/release/berth), CRI_WORK
# (/tmp/cri-harness), HARNESS (../shared/cri-harness), CRITEST_FOCUS / CRITEST_SKIP.
set -euo pipefail
REPO=$(cd "$(dirname "$0")/.." && pwd)
HARNESS=${HARNESS:-$REPO/../shared/cri-harness}
BERTH=$(realpath "${BERTH_BIN:-$REPO/target/x86_64-unknown-linux-gnu/release/berth}")
export CRI_WORK=${CRI_WORK:-/tmp/cri-harness}
export CRI_REG_PORT=${CRI_REG_PORT:-5055}
W=$CRI_WORK
B=$W/berth
[ -x "$W/bin/critest" ] || { echo "a critest binary is expected in $W/bin" >&2; exit 1; }
"$HARNESS/images.sh" prepare

rm -rf "$B" && mkdir -p "$B/root" "$B/cni" "$B/cni-ipam"
cat >"$B/cni/10-cri-harness.conflist" <<JSON
{
  "cniVersion": "1.0.0",
  "name": "cri-harness",
  "plugins": [
    {"type": "bridge", "bridge": "cni0", "isGateway": true, "ipMasq": false, "hairpinMode": true,
     "ipam": {"type": "host-local", "dataDir": "$B/cni-ipam",
              "ranges": [[{"subnet": "10.88.0.0/16"}]], "routes": [{"dst": "0.0.0.0/0"}]}},
    {"type": "portmap", "capabilities": {"portMappings": true}}
  ]
}
JSON
cgroups() { find /sys/fs/cgroup -depth -type d \( -path '*/berth/*' -o -path '*/kubepods*' \) 2>/dev/null | sort; }
cgroups >"$B/cgroups.before"
OUTDIR=$W/results/berth-$(date +%Y%m%d-%H%M%S)
mkdir -p "$OUTDIR"
set +e
unshare --mount --net --ipc --pid --fork --mount-proc --propagation private bash -c '
  set -uo pipefail
  HARNESS=$1 B=$2 OUTDIR=$3 BERTH=$4; shift 4
  ip link set lo up
  mkdir -p /run/berth
  mount -n -t tmpfs -o mode=0711 tmpfs /run/berth
  BERTH_ROOT=$B/root RUST_LOG=${RUST_LOG:-info} "$BERTH" cri \
    --listen "unix://$B/cri.sock" --cni-conf-dir "$B/cni" --cni-bin-dir /usr/lib/cni \
    --registry-config-path "$CRI_WORK/certs.d" >"$OUTDIR/berth.log" 2>&1 &
  bpid=$!
  for _ in $(seq 100); do [ -S "$B/cri.sock" ] && break; sleep 0.1; done
  CRITEST_OUT=$OUTDIR "$HARNESS/critest.sh" "$B/cri.sock" "$@"
  rc=$?
  kill "$bpid"; wait "$bpid"
  exit $rc
' bash "$HARNESS" "$B" "$OUTDIR" "$BERTH" "$@" | tee "$OUTDIR/summary.txt"
rc=${PIPESTATUS[0]}
set -e
# cgroups left by containers that died with the namespace
comm -13 "$B/cgroups.before" <(cgroups) | sort -r | while read -r d; do rmdir "$d" 2>/dev/null || true; done
echo "results: $OUTDIR/results.tsv"
exit "$rc"
