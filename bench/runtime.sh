#!/usr/bin/env bash
# Runtime start-up benchmark: N sequential create+start+wait+delete cycles (`<runtime> run`
# in the foreground, which is exactly those four steps) of a busybox `true` container, with
# berth-runtime and each peer found on this machine (runc, crun, youki), all on the same
# bundle. Prints the median and p90 per container and berth's ratio to each peer; raw
# per-run timings go to bench/results/runtime-<date>.csv.
#
# Usage: sudo bench/runtime.sh [N]   (default 100; needs root and busybox-static)
set -euo pipefail

n=${1:-100}
here=$(cd "$(dirname "$0")" && pwd)
top=$(cd "$here/.." && pwd)
berth=${BERTH_BIN:-$("$top/scripts/build.sh")}
work=$(mktemp -d /tmp/bt$$-bench-XXXX)
cleanup() {
  for r in "$work"/root-*; do
    [ -d "$r" ] || continue
    for id in $(ls "$r" 2>/dev/null); do :; done
  done
  rm -rf "$work"
}
trap cleanup EXIT

# The berth-runtime name makes the binary act as the runtime.
ln -s "$berth" "$work/berth-runtime"

bundle="$work/bundle"
mkdir -p "$bundle/rootfs"/{bin,etc,dev,proc,sys,tmp}
cp /bin/busybox "$bundle/rootfs/bin/busybox"
for a in sh true; do ln -s busybox "$bundle/rootfs/bin/$a"; done
python3 - "$bundle/config.json" <<'PY'
import json, sys
caps = ["CAP_CHOWN","CAP_DAC_OVERRIDE","CAP_FSETID","CAP_FOWNER","CAP_MKNOD","CAP_NET_RAW","CAP_SETGID",
        "CAP_SETUID","CAP_SETFCAP","CAP_SETPCAP","CAP_NET_BIND_SERVICE","CAP_SYS_CHROOT","CAP_KILL","CAP_AUDIT_WRITE"]
cfg = {
  "ociVersion": "1.0.2",
  "process": {"terminal": False, "user": {"uid": 0, "gid": 0}, "args": ["/bin/true"],
              "env": ["PATH=/bin"], "cwd": "/",
              "capabilities": {"bounding": caps, "effective": caps, "permitted": caps},
              "rlimits": [{"type": "RLIMIT_NOFILE", "hard": 1024, "soft": 1024}],
              "noNewPrivileges": True},
  "root": {"path": "rootfs", "readonly": True},
  "hostname": "bench",
  "mounts": [
    {"destination": "/proc", "type": "proc", "source": "proc"},
    {"destination": "/dev", "type": "tmpfs", "source": "tmpfs", "options": ["nosuid","strictatime","mode=755","size=65536k"]},
    {"destination": "/dev/pts", "type": "devpts", "source": "devpts", "options": ["nosuid","noexec","newinstance","ptmxmode=0666","mode=0620","gid=5"]},
    {"destination": "/dev/shm", "type": "tmpfs", "source": "shm", "options": ["nosuid","noexec","nodev","mode=1777","size=65536k"]},
    {"destination": "/dev/mqueue", "type": "mqueue", "source": "mqueue", "options": ["nosuid","noexec","nodev"]},
    {"destination": "/sys", "type": "sysfs", "source": "sysfs", "options": ["nosuid","noexec","nodev","ro"]}
  ],
  "linux": {
    "resources": {"devices": [{"allow": False, "access": "rwm"}]},
    "namespaces": [{"type": "pid"}, {"type": "network"}, {"type": "ipc"}, {"type": "uts"}, {"type": "mount"}],
    "maskedPaths": ["/proc/acpi","/proc/kcore","/proc/keys","/proc/latency_stats","/proc/timer_list","/proc/sched_debug","/sys/firmware"],
    "readonlyPaths": ["/proc/bus","/proc/fs","/proc/irq","/proc/sys","/proc/sysrq-trigger"]
  }
}
json.dump(cfg, open(sys.argv[1], "w"), indent=1)
PY

runtimes="berth-runtime=$work/berth-runtime"
for peer in runc crun youki; do
  if command -v "$peer" >/dev/null 2>&1; then
    runtimes="$runtimes $peer=$(command -v "$peer")"
  fi
done

mkdir -p "$here/results"
csv="$here/results/runtime-$(date -u +%Y%m%dT%H%M%SZ).csv"
python3 - "$n" "$bundle" "$work" "$csv" $runtimes <<'PY'
import os, statistics, subprocess, sys, time
n, bundle, work, csv = int(sys.argv[1]), sys.argv[2], sys.argv[3], sys.argv[4]
rts = [a.split("=", 1) for a in sys.argv[5:]]
results = {}
rows = []
for name, path in rts:
    root = os.path.join(work, "root-" + name)
    os.makedirs(root, exist_ok=True)
    times = []
    err = None
    for i in range(n + 3):
        cid = f"bt{os.getpid()}-bench-{name}-{i}"
        t0 = time.perf_counter_ns()
        p = subprocess.run([path, "--root", root, "run", "--bundle", bundle, cid],
                           stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        dt = (time.perf_counter_ns() - t0) / 1e6
        if p.returncode != 0:
            err = p.stderr.decode(errors="replace").strip().splitlines()[-1:] or ["exit %d" % p.returncode]
            subprocess.run([path, "--root", root, "delete", "--force", cid], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            break
        if i >= 3:  # three warm-up runs
            times.append(dt)
            rows.append(f"{name},{i-3},{dt:.3f}")
    if err:
        print(f"{name:>14}: failed on this host: {err[0]}")
        continue
    times.sort()
    results[name] = (statistics.median(times), times[int(len(times) * 0.9) - 1])
with open(csv, "w") as f:
    f.write("runtime,run,ms\n" + "\n".join(rows) + "\n")
print(f"{n} x create+start+wait+delete of a busybox `true` container (ms per container)")
print(f"{'runtime':>14} {'median':>8} {'p90':>8}")
for name, (med, p90) in results.items():
    print(f"{name:>14} {med:8.2f} {p90:8.2f}")
b = results.get("berth-runtime")
if b:
    for name, (med, _) in results.items():
        if name != "berth-runtime":
            print(f"berth-runtime / {name}: {b[0] / med:.2f}x the time (median)")
print(f"raw timings: {csv}")
PY
