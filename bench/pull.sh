#!/usr/bin/env bash
# Pull benchmark: a ~200 MB, 3-layer image of incompressible data (gzip layers, as registries
# serve them) is pushed to a private docker-registry on 127.0.0.1, then pulled N times from a
# clean state by berth (fetch + verify + unpack), skopeo (fetch to an OCI layout, no unpack),
# dockerd (`docker pull`, overlay2) and podman (`podman pull`, overlay). Prints each median and
# berth's ratio to each peer; raw timings go to bench/results/pull-<date>.csv.
#
# Usage: sudo bench/pull.sh [N] [MB]   (default 5 runs, 200 MB)
set -euo pipefail

n=${1:-5}
mb=${2:-200}
here=$(cd "$(dirname "$0")" && pwd)
top=$(cd "$here/.." && pwd)
berth=${BERTH_BIN:-$("$top/scripts/build.sh")}
work=$(mktemp -d /tmp/bt$$-pullbench-XXXX)
. "$here/lib.sh"
pids=()
cleanup() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; wait "$p" 2>/dev/null || true; done
  # dockerd's overlay2 and podman's overlay mounts, if any were left.
  unmount_under "$work" 2>/dev/null || true
  rm -rf "$work"
}
trap cleanup EXIT

port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
host=127.0.0.1:$port
cat > "$work/registry.yml" <<YML
version: 0.1
log: {level: error}
storage: {filesystem: {rootdirectory: $work/registry}}
http: {addr: $host}
YML
docker-registry serve "$work/registry.yml" > "$work/registry.log" 2>&1 &
pids+=($!)
for _ in $(seq 100); do python3 -c "import socket; socket.create_connection(('127.0.0.1',$port))" 2>/dev/null && break; sleep 0.1; done

# The image: an OCI layout with three gzip layers of random bytes, copied to the registry.
python3 "$here/layout.py" "$work/layout" "$mb"
image=$host/bench/big:v1
skopeo copy -q --dest-tls-verify=false "oci:$work/layout:v1" "docker://$image"

# A private dockerd for `docker pull`.
mkdir -p "$work/docker"
dockerd --data-root "$work/docker/data" --exec-root "$work/docker/exec" --pidfile "$work/docker/pid" \
  -H "unix://$work/docker/sock" --bridge=none --iptables=false --ip6tables=false --ip-masq=false \
  --insecure-registry "$host" --containerd-namespace "bt$$-moby" --containerd-plugins-namespace "bt$$-plugins" \
  > "$work/docker/log" 2>&1 &
pids+=($!)
export DOCKER_HOST=unix://$work/docker/sock DOCKER_CONFIG=$work/docker/cli
mkdir -p "$DOCKER_CONFIG" && echo '{}' > "$DOCKER_CONFIG/config.json"
for _ in $(seq 300); do docker version >/dev/null 2>&1 && break; sleep 0.2; done

mkdir -p "$here/results"
csv="$here/results/pull-$(date -u +%Y%m%dT%H%M%SZ).csv"
python3 - "$n" "$work" "$image" "$berth" "$csv" "$mb" <<'PY'
import os, shutil, statistics, subprocess, sys, time
n, work, image, berth, csv, mb = int(sys.argv[1]), sys.argv[2], sys.argv[3], sys.argv[4], sys.argv[5], sys.argv[6]
def sh(cmd, env=None):
    subprocess.run(cmd, check=True, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                   env={**os.environ, **(env or {})})
def umount_below(d):
    for line in reversed(open("/proc/self/mounts").read().splitlines()):
        m = line.split()[1]
        if m.startswith(d):
            subprocess.run(["umount", "-l", m], stderr=subprocess.DEVNULL)
tools = {}
def berth_run(i):
    root = f"{work}/berth-{i}"
    return (lambda: sh([berth, "pull", "-q", image], {"BERTH_ROOT": root}), lambda: shutil.rmtree(root))
def skopeo_run(i):
    d = f"{work}/skopeo-{i}"
    return (lambda: sh(["skopeo", "copy", "-q", "--src-tls-verify=false", f"docker://{image}", f"oci:{d}:v1"]),
            lambda: shutil.rmtree(d))
def docker_run(i):
    return (lambda: sh(["docker", "pull", "-q", image]),
            lambda: (sh(["docker", "rmi", "-f", image]), sh(["docker", "image", "prune", "-af"])))
def podman_run(i):
    root, run = f"{work}/podman-{i}", f"{work}/podman-run-{i}"
    args = ["podman", "--root", root, "--runroot", run, "--storage-driver", "overlay", "--cgroup-manager", "cgroupfs", "--events-backend", "none"]
    def clean():
        umount_below(root); umount_below(run)
        shutil.rmtree(root, ignore_errors=True); shutil.rmtree(run, ignore_errors=True)
    return (lambda: sh(args + ["pull", "-q", "--tls-verify=false", image]), clean)
runs = [("berth", berth_run), ("skopeo", skopeo_run), ("docker", docker_run)]
if shutil.which("podman"):
    runs.append(("podman", podman_run))
rows, results = [], {}
for i in range(n):
    for name, make in runs:  # interleaved, so drift hits every tool alike
        if name in results and results[name] is None:
            continue
        do, undo = make(i)
        sh(["sync"])
        t0 = time.perf_counter()
        try:
            do()
        except subprocess.CalledProcessError as e:
            print(f"{name:>8}: failed: {e.stderr.decode(errors='replace').strip().splitlines()[-1:]}")
            results[name] = None
            continue
        dt = time.perf_counter() - t0
        undo()
        rows.append(f"{name},{i},{dt:.3f}")
        results.setdefault(name, []).append(dt)
open(csv, "w").write("tool,run,seconds\n" + "\n".join(rows) + "\n")
print(f"{n} pulls of a {mb} MB, 3-layer gzip image from a local registry (seconds, median)")
for name, ts in results.items():
    if ts:
        print(f"{name:>8} {statistics.median(ts):8.2f}   (min {min(ts):.2f}, max {max(ts):.2f})")
b = results.get("berth")
for name, ts in results.items():
    if b and ts and name != "berth":
        print(f"berth / {name}: {statistics.median(b) / statistics.median(ts):.2f}x the time")
print(f"raw timings: {csv}")
PY
