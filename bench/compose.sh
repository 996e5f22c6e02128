#!/usr/bin/env bash
# Compose benchmark: a 5-service project (db with a health check; cache; api waiting for
# db healthy and cache started; worker and web waiting for api), on a project network
# with a named volume. `up -d --wait` (until every container runs and db is healthy) and
# `down -v` are timed apart, N times interleaved, medians, for:
#   berth compose (daemonless), docker-compose 1.29 against dockerd (a private one), and
#   docker-compose 1.29 against `berth daemon`.
# docker-compose 1.29 has no --wait: its up is followed by a poll of `docker ps` until the
# same state. Prints the figures and berth's ratios; raw timings go to
# bench/results/compose-*.csv.
#
# Usage: sudo bench/compose.sh [N]   (default 10)
set -euo pipefail

n=${1:-10}
here=$(cd "$(dirname "$0")" && pwd)
top=$(cd "$here/.." && pwd)
berth=${BERTH_BIN:-$("$top/scripts/build.sh")}
work=$(mktemp -d /tmp/bt$$-composebench-XXXX)
pids=()
. "$here/lib.sh"
networks_apart "$work"
project=bt${tag}cmp
cleanup() {
  (cd "$work/proj" && "$berth" compose -p "$project" down -v -t 1 >/dev/null 2>&1) || true
  for h in "${hosts[@]:-}"; do
    [ -n "$h" ] && (cd "$work/proj" && DOCKER_HOST=$h docker-compose -p "$project" down -v -t 1 >/dev/null 2>&1) || true
  done
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; wait "$p" 2>/dev/null || true; done
  unmount_under "$work" 2>/dev/null || true
  rm -rf "$work" 2>/dev/null || true
}
hosts=()
trap cleanup EXIT

busybox_tar "$work" sh sleep true
"$berth" import "$work/img.tar" bt-bench:1 >/dev/null
mkdir -p "$work/proj"
# Containers that stop at SIGTERM at once (a shell as PID 1 would ignore it), so that
# `down` measures the tools, not a grace period.
cat > "$work/proj/compose.yaml" <<'EOF'
x-svc: &svc
  image: bt-bench:1
  command: ["sh", "-c", "trap 'exit 0' TERM; sleep 1000 & wait"]
  networks: [app]
services:
  db:
    <<: *svc
    volumes: [dbdata:/data]
    healthcheck:
      test: ["CMD", "true"]
      interval: 100ms
      timeout: 1s
      retries: 10
  cache:
    <<: *svc
  api:
    <<: *svc
    depends_on:
      db: {condition: service_healthy}
      cache: {condition: service_started}
  worker:
    <<: *svc
    depends_on: [api]
  web:
    <<: *svc
    depends_on: [api]
networks:
  app: {}
volumes:
  dbdata: {}
EOF

start_dockerd "$work" none
docker import "$work/img.tar" bt-bench:1 >/dev/null
dockerd_host=$DOCKER_HOST
hosts+=("$dockerd_host")
"$berth" daemon -H "unix://$work/berth.sock" > "$work/berth.log" 2>&1 &
pids+=($!)
for _ in $(seq 100); do [ -S "$work/berth.sock" ] && break; sleep 0.05; done
berth_host=unix://$work/berth.sock
hosts+=("$berth_host")

mkdir -p "$here/results"
stamp=$(date -u +%Y%m%dT%H%M%SZ)
cd "$work/proj"
PYTHONPATH="$here" python3 - "$n" "$berth" "$project" "$dockerd_host" "$berth_host" "$here/results/compose-$stamp" <<'PY'
import subprocess, sys
from interleave import interleave
n, berth, project, dockerd_host, berth_host, csv = int(sys.argv[1]), sys.argv[2], sys.argv[3], sys.argv[4], sys.argv[5], sys.argv[6]
# docker-compose 1.29 has no --wait: poll until 5 containers are up and none is starting.
poll = (f"until s=$(docker ps --filter label=com.docker.compose.project={project} --format '{{{{.Status}}}}'); "
        "[ \"$(printf '%s\\n' \"$s\" | grep -c '^Up')\" = 5 ] && ! printf '%s' \"$s\" | grep -q 'starting'; do sleep 0.01; done")
dc = lambda host: f"export DOCKER_HOST={host}; docker-compose -p {project}"
up = {
    "berth": ["sh", "-ec", f"{berth} compose -p {project} up -d --wait"],
    "dc-dockerd": ["sh", "-ec", f"{dc(dockerd_host)} up -d\n{poll}"],
    "dc-berthd": ["sh", "-ec", f"{dc(berth_host)} up -d\n{poll}"],
}
down = {
    "berth": ["sh", "-ec", f"{berth} compose -p {project} down -v"],
    "dc-dockerd": ["sh", "-ec", f"{dc(dockerd_host)} down -v"],
    "dc-berthd": ["sh", "-ec", f"{dc(berth_host)} down -v"],
}
def sh(cmd):
    subprocess.run(["sh", "-c", cmd], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
def all_down():
    for t in up:
        sh(" ".join(down[t][2:]))
def all_up():
    for t in up:
        sh(" ".join(down[t][2:]))
        sh(up[t][2])
mu = interleave(up, n, csv + "-up.csv", before=all_down)
md = interleave(down, n, csv + "-down.csv", before=all_up)
all_down()
print(f"{n} x up -d --wait and down -v of a 5-service project (one health check, a network, a volume), median ms")
print(f"{'':>11} {'up':>8} {'down':>8} {'total':>8}")
for t in up:
    if t in mu and t in md:
        print(f"{t:>11} {mu[t]:8.1f} {md[t]:8.1f} {mu[t] + md[t]:8.1f}")
if all(t in mu and t in md for t in ("berth", "dc-dockerd")):
    b, d = mu["berth"] + md["berth"], mu["dc-dockerd"] + md["dc-dockerd"]
    print(f"berth compose / docker-compose+dockerd: up {mu['berth'] / mu['dc-dockerd']:.2f}x, "
          f"down {md['berth'] / md['dc-dockerd']:.2f}x, total {b / d:.2f}x the time (target <= 0.20x)")
print(f"raw timings: {csv}-up.csv, {csv}-down.csv")
PY
