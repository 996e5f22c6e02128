#!/usr/bin/env bash
# Rootless benchmark: an ordinary user (made for the run, with a subordinate range of its
# own) runs `run --rm IMG true` and pulls (fetch + unpack) an image from a registry on
# 127.0.0.1, with rootless berth and rootless podman (`podman --runtime runc`, the same
# user); berth as root does the same, for rootless berth's cost over its own rootful time.
# Runs are interleaved; prints medians and ratios; raw timings go to
# bench/results/rootless-<date>.csv and rootless-pull-<date>.csv.
#
# Targets (docs/promises.md): rootless berth's run within 1/5 of rootless podman's, and
# within 1.5x of rootful berth's.
#
# Usage: sudo bench/rootless.sh [N] [MB]   (default 20 runs, 5 pulls of a 50 MB image)
set -euo pipefail

n=${1:-20}
mb=${2:-50}
here=$(cd "$(dirname "$0")" && pwd)
top=$(cd "$here/.." && pwd)
berth=${BERTH_BIN:-$("$top/scripts/build.sh")}
work=$(mktemp -d /tmp/bt$$-rlbench-XXXX)
chmod 755 "$work"
user=bt$(( $$ % 100000 ))rl
pids=()
. "$here/lib.sh"
cleanup() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; wait "$p" 2>/dev/null || true; done
  if id -u "$user" >/dev/null 2>&1; then
    uid=$(id -u "$user")
    # The user's processes (pause, podman's pause, pasta, conmon...) by pid, then the user.
    for p in $(ps -eo pid=,uid= | awk -v u="$uid" '$2 == u {print $1}'); do kill -9 "$p" 2>/dev/null || true; done
    sleep 0.5
    usermod --del-subuids "$sub-$((sub + 65535))" --del-subgids "$sub-$((sub + 65535))" "$user" 2>/dev/null || true
    userdel "$user" 2>/dev/null || true
    groupdel "$user" 2>/dev/null || true
  fi
  unmount_under "$work" 2>/dev/null || true
  rm -rf "$work"
}
trap cleanup EXIT

# The user, its home and runtime directory, a copy of berth it may run.
sub=$(( 1500000000 + ($$ % 1000) * 70000 ))
useradd -M -U -s /bin/sh -K SUB_UID_COUNT=0 -K SUB_GID_COUNT=0 -d "$work/home" "$user"
usermod --add-subuids "$sub-$((sub + 65535))" --add-subgids "$sub-$((sub + 65535))" "$user"
uid=$(id -u "$user") gid=$(id -g "$user")
mkdir -p "$work/home" "$work/home/run" "$work/bin"
chown -R "$uid:$gid" "$work/home" && chmod 700 "$work/home/run"
install -m 0755 "$berth" "$work/bin/berth"
as_user=(setpriv --reuid "$uid" --regid "$gid" --clear-groups env -i HOME="$work/home" PATH=/usr/sbin:/usr/bin:/sbin:/bin XDG_RUNTIME_DIR="$work/home/run")
as_root=(setpriv --reuid 0 --regid 0 --clear-groups env -i HOME=/root PATH=/usr/sbin:/usr/bin:/sbin:/bin BERTH_ROOT="$work/rootful")
rl_berth=("${as_user[@]}" "$work/bin/berth")
rl_podman=("${as_user[@]}" podman --runtime runc --cgroup-manager cgroupfs --events-backend none --storage-driver overlay)

# The image: the host's busybox, imported by each.
busybox_tar "$work" sh true
chmod 644 "$work/img.tar"
"${rl_berth[@]}" import "$work/img.tar" bt-bench:1 >/dev/null
"${as_root[@]}" "$work/bin/berth" import "$work/img.tar" bt-bench:1 >/dev/null
havepodman=0
if command -v podman >/dev/null && "${rl_podman[@]}" import "$work/img.tar" bt-bench:1 >/dev/null 2>&1; then havepodman=1; fi

mkdir -p "$here/results"
stamp=$(date -u +%Y%m%dT%H%M%SZ)
PYTHONPATH="$here" python3 - "$n" "$work/results-run.csv" "$havepodman" "$work/bin/berth" "${#as_user[@]}" "${as_user[@]}" "${as_root[@]}" <<'PY'
import sys
from interleave import interleave
n, csv, havepodman, berth, k = int(sys.argv[1]), sys.argv[2], sys.argv[3] == "1", sys.argv[4], int(sys.argv[5])
as_user, as_root = sys.argv[6:6 + k], sys.argv[6 + k:]
podman = as_user + ["podman", "--runtime", "runc", "--cgroup-manager", "cgroupfs", "--events-backend", "none", "--storage-driver", "overlay"]
# podman's default rlimits exceed this host's hard limits (see DESIGN.md's traps).
plimits = ["--ulimit", "nofile=1024:1024", "--ulimit", "nproc=4096:4096"]
for net, label in [("none", "--network none"), (None, "default network: rootless pasta (podman: its default), rootful bridge")]:
    flag = ["--network", net] if net else []
    tools = {
        "berth rootless": as_user + [berth, "run", "--rm", *flag, "bt-bench:1", "true"],
        "berth rootful": as_root + [berth, "run", "--rm", *flag, "bt-bench:1", "true"],
    }
    if havepodman:
        tools["podman rootless"] = podman + ["run", "--rm", *flag, *plimits, "bt-bench:1", "true"]
    med = interleave(tools, n, csv.replace(".csv", f"-{net or 'default'}.csv"))
    print(f"{n} x `run --rm IMG true` ({label}), median ms")
    for name, v in med.items():
        print(f"{name:>16} {v:8.1f}")
    b = med.get("berth rootless")
    if b and "podman rootless" in med:
        print(f"berth rootless / podman rootless: {b / med['podman rootless']:.2f}x the time")
    if b and "berth rootful" in med:
        print(f"berth rootless / berth rootful: {b / med['berth rootful']:.2f}x the time")
PY
cat "$work"/results-run-*.csv > "$here/results/rootless-$stamp.csv"

# Pulls: a registry on the loopback with a 3-layer image of random bytes.
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
host=127.0.0.1:$port
printf 'version: 0.1\nlog: {level: error}\nstorage: {filesystem: {rootdirectory: %s}}\nhttp: {addr: %s}\n' "$work/registry" "$host" > "$work/registry.yml"
docker-registry serve "$work/registry.yml" > "$work/registry.log" 2>&1 &
pids+=($!)
for _ in $(seq 100); do python3 -c "import socket; socket.create_connection(('127.0.0.1',$port))" 2>/dev/null && break; sleep 0.1; done
python3 "$here/layout.py" "$work/layout" "$mb" 40 1
image=$host/bench/rl:v1
skopeo copy -q --dest-tls-verify=false "oci:$work/layout:v1" "docker://$image"
pulls=$(( n / 4 > 3 ? n / 4 : 3 ))
python3 - "$pulls" "$work" "$image" "$work/bin/berth" "$here/results/rootless-pull-$stamp.csv" "$mb" "$havepodman" "${#as_user[@]}" "${as_user[@]}" "${as_root[@]}" <<'PY'
import os, shutil, statistics, subprocess, sys, time
n, work, image, berth, csv, mb, havepodman, k = int(sys.argv[1]), sys.argv[2], sys.argv[3], sys.argv[4], sys.argv[5], sys.argv[6], sys.argv[7] == "1", int(sys.argv[8])
as_user, as_root = sys.argv[9:9 + k], sys.argv[9 + k:]
def sh(cmd):
    subprocess.run(cmd, check=True, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
home = f"{work}/home"
def rm(d):
    shutil.rmtree(d, ignore_errors=True)
runs = {
    # Each pull into a store of its own, removed (by root) afterwards.
    "berth rootless": lambda i: ([*as_user, berth, "--root", f"{home}/b{i}", "pull", "-q", image], f"{home}/b{i}"),
    "berth rootful": lambda i: ([*as_root, berth, "--root", f"{work}/r{i}", "pull", "-q", image], f"{work}/r{i}"),
}
if havepodman:
    runs["podman rootless"] = lambda i: ([*as_user, "podman", "--runtime", "runc", "--cgroup-manager", "cgroupfs", "--events-backend", "none",
                                          "--storage-driver", "overlay", "--root", f"{home}/p{i}", "--runroot", f"{home}/prun{i}",
                                          "pull", "-q", "--tls-verify=false", image], f"{home}/p{i}")
res, rows = {}, []
for i in range(n):
    for name, make in runs.items():
        cmd, store = make(i)
        sh(["sync"])
        t0 = time.perf_counter()
        try:
            sh(cmd)
        except subprocess.CalledProcessError as e:
            print(f"{name}: failed: {e.stderr.decode(errors='replace').strip()[-300:]}")
            continue
        dt = time.perf_counter() - t0
        rm(store)
        res.setdefault(name, []).append(dt)
        rows.append(f"{name},{i},{dt:.3f}")
open(csv, "w").write("tool,run,seconds\n" + "\n".join(rows) + "\n")
print(f"{n} pulls (fetch + unpack) of a {mb} MB, 3-layer gzip image from a local registry, median s")
for name, ts in res.items():
    print(f"{name:>16} {statistics.median(ts):8.2f}   (min {min(ts):.2f}, max {max(ts):.2f})")
b = res.get("berth rootless")
for other in ["podman rootless", "berth rootful"]:
    if b and other in res:
        print(f"berth rootless / {other}: {statistics.median(b) / statistics.median(res[other]):.2f}x the time")
print(f"raw timings: {csv}")
PY
