#!/usr/bin/env bash
# Build benchmark: the same Dockerfile and context built by berth, docker (a private dockerd;
# its classic builder, since this machine has no buildx) and podman (buildah), all with
# RUN steps on --network none and the same busybox base imported offline. Three cases,
# median of N each, interleaved: a cold build (--no-cache: four filesystem steps, two of
# them RUN), a fully cached rebuild, and a rebuild after one copied file changed (the steps
# from that COPY on run again). Prints medians and berth's ratios; raw timings go to
# bench/results/build-<case>-<date>.csv.
#
# Usage: sudo bench/build.sh [N]   (default 10)
set -euo pipefail

n=${1:-10}
here=$(cd "$(dirname "$0")" && pwd)
top=$(cd "$here/.." && pwd)
berth=${BERTH_BIN:-$("$top/scripts/build.sh")}
work=$(mktemp -d /tmp/bt$$-buildbench-XXXX)
pids=()
pflags=(--root "$work/podman" --runroot "$work/podman-run" --storage-driver overlay --cgroup-manager cgroupfs --events-backend none)
cleanup() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; wait "$p" 2>/dev/null || true; done
  unmount_under "$work" 2>/dev/null || true
  rm -rf "$work"
}
trap cleanup EXIT

# The base image: the host's busybox with every applet.
. "$here/lib.sh"
busybox_tar "$work"

# The context: a small app of 200 files and one file that changes.
ctx=$work/ctx
mkdir -p "$ctx/src"
for i in $(seq 200); do head -c 2048 /dev/urandom | base64 > "$ctx/src/f$i.txt"; done
echo v1 > "$ctx/version"
cat > "$ctx/Dockerfile" <<'EOF'
FROM bt-bench:1
WORKDIR /app
COPY src/ ./src/
RUN cat src/*.txt | wc -c > /app/size && mkdir -p /app/out && for i in 1 2 3 4 5; do cp -r src /app/out/copy$i; done
COPY version /app/version
RUN echo "built $(cat /app/version)" > /app/info
CMD ["cat", "/app/info"]
EOF

export BERTH_ROOT=$work/berth
"$berth" import "$work/img.tar" bt-bench:1 >/dev/null
start_dockerd "$work" none
export DOCKER_BUILDKIT=0
docker import "$work/img.tar" bt-bench:1 >/dev/null
havepodman=0
if command -v podman >/dev/null && podman "${pflags[@]}" import "$work/img.tar" bt-bench:1 >/dev/null 2>&1; then havepodman=1; fi

mkdir -p "$here/results"
stamp=$(date -u +%Y%m%dT%H%M%SZ)
PYTHONPATH="$here" python3 - "$n" "$berth" "$ctx" "$here/results" "$stamp" "$havepodman" "${pflags[@]}" <<'PY'
import sys
from interleave import interleave
n, berth, ctx, results, stamp, havepodman, pflags = (int(sys.argv[1]), sys.argv[2], sys.argv[3], sys.argv[4],
                                                     sys.argv[5], sys.argv[6] == "1", sys.argv[7:])
def tools(extra):
    t = {
        "berth": [berth, "build", "-q", "--network", "none", *extra, "-t", "bt-built", ctx],
        "docker": ["docker", "build", "-q", "--network", "none", *extra, "-t", "bt-built", ctx],
    }
    if havepodman:
        # podman's default rlimits exceed this host's hard limits (see DESIGN.md's traps).
        t["podman"] = ["podman", *pflags, "build", "-q", "--runtime", "runc", "--network", "none", "--ulimit", "nofile=1024:1024",
                       "--ulimit", "nproc=4096:4096", "--layers", *extra, "-t", "bt-built", ctx]
    return t
def report(title, med):
    print(title)
    for k, v in med.items():
        print(f"{k:>8} {v:8.1f} ms")
    for k, v in med.items():
        if k != "berth" and "berth" in med:
            print(f"berth / {k}: {med['berth'] / v:.2f}x the time")
report(f"{n} x cold build (--no-cache), median", interleave(tools(["--no-cache"]), n, f"{results}/build-cold-{stamp}.csv"))
report(f"{n} x fully cached rebuild, median", interleave(tools([]), n, f"{results}/build-cached-{stamp}.csv"))
# One copied file changes before every build: the last COPY and RUN run again.
import itertools, os
counter = itertools.count()
def bump():
    with open(os.path.join(ctx, "version"), "w") as f:
        f.write(f"v{next(counter)}\n")
report(f"{n} x rebuild after one copied file changed, median",
       interleave(tools([]), n, f"{results}/build-changed-{stamp}.csv", before=bump))
print(f"raw timings: {results}/build-*-{stamp}.csv")
PY
