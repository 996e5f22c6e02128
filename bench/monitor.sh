#!/usr/bin/env bash
# Per-container memory: what keeps a container running, measured in the states users are
# in. berth's monitor (and its keeper, the monitor's parent), containerd-shim-runc-v2 under a
# private dockerd, podman's conmon. States: idle on --network none, on the default bridge,
# on a user network; with a memory limit (--memory 64m); after the container wrote 10 MB of
# logs; after 5 execs; with a health check probing every second. Then the PSS of N idle containers' keepers together.
# Prints VmRSS (KiB) per state and engine, and PSS in brackets; `-` where an engine cannot
# be put in that state here (see the notes printed).
#
# Usage: sudo bench/monitor.sh [N]   (default 20; BERTH_BIN to skip the build)
set -euo pipefail

n=${1:-20}
here=$(cd "$(dirname "$0")" && pwd)
top=$(cd "$here/.." && pwd)
berth=${BERTH_BIN:-$("$top/scripts/build.sh")}
work=$(mktemp -d /tmp/bt$$-monbench-XXXX)
. "$here/lib.sh"
networks_apart "$work"
pids=()
popts=(--runtime runc --ulimit nofile=1024:1024 --ulimit nproc=4096:4096)
cleanup() {
  set +e
  "$berth" ps -aq 2>/dev/null | xargs -r "$berth" rm -f >/dev/null 2>&1
  "$berth" network rm "bt${tag}u" >/dev/null 2>&1
  if [ "${dockerd_up:-0}" = 1 ]; then # never another dockerd's containers
    docker ps -aq 2>/dev/null | xargs -r docker rm -f >/dev/null 2>&1
    docker network rm "bt${tag}du" >/dev/null 2>&1
  fi
  podman_leftovers
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null; wait "$p" 2>/dev/null; done
  sleep 3 # berth keeps an idle bridge for 2 s
  ip link del "$dkbr" 2>/dev/null
  unmount_under "$work" 2>/dev/null || true
  rm -rf "$work"
}
trap cleanup EXIT

busybox_tar "$work" sh true sleep yes head
"$berth" import "$work/img.tar" bt-bench:1 >/dev/null
"$berth" network create --subnet 10.251.0.0/24 "bt${tag}u" >/dev/null

ip link add "$dkbr" type bridge
ip addr add 10.253.0.1/24 dev "$dkbr"
ip link set "$dkbr" up
start_dockerd "$work" "$dkbr"
dockerd_up=1
docker import "$work/img.tar" bt-bench:1 >/dev/null
docker network create --subnet 10.250.0.0/24 -o com.docker.network.bridge.name="bt${tag}du" "bt${tag}du" >/dev/null
havepodman=0
if command -v podman >/dev/null && podman "${pflags[@]}" import "$work/img.tar" bt-bench:1 >/dev/null 2>&1; then havepodman=1; fi

rss() { awk '/^VmRSS/ {print $2}' "/proc/$1/status"; }
pss() { awk '/^Pss:/ {print $2}' "/proc/$1/smaps_rollup"; }
# The keeper of a container NAME, per engine.
berth_monitor() {
  python3 -c "import json,sys; print(json.load(open(sys.argv[1]))['monitor_pid'])" \
    "$BERTH_ROOT/containers/$("$berth" inspect --format '{{.Id}}' "$1")/state.json"
}
docker_shim() { ps -o ppid= -p "$(docker inspect --format '{{.State.Pid}}' "$1")" | tr -d ' '; }
podman_conmon() { podman "${pflags[@]}" inspect --format '{{.State.ConmonPid}}' "$1"; }

logs_cmd='yes 0123456789abcdefghijklmnopqrstuvwxyz0123456789abcdefghijklmnopqrstuvwxyz | head -c 10485760; exec sleep 1000'
# state NAME RUN-FLAGS... -- CMD...: starts one container per engine in that state.
declare -A flags cmds
flags[none]="--network none";      cmds[none]="sleep 1000"
flags[bridge]="";                  cmds[bridge]="sleep 1000"
flags[user]="--network=USERNET";   cmds[user]="sleep 1000"
flags[memory]="--network none --memory 64m"; cmds[memory]="sleep 1000"
flags[logs]="--network none";      cmds[logs]="sh -c LOGS"
flags[exec]="--network none";      cmds[exec]="sleep 1000"
flags[health]="--network none --health-cmd true --health-interval 1s"; cmds[health]="sleep 1000"
states=(none bridge user memory logs exec health)

start() { # ENGINE STATE
  local e=$1 s=$2 f c net
  case $e in berth) net=bt${tag}u ;; docker) net=bt${tag}du ;; podman) net=- ;; esac
  f=${flags[$s]//USERNET/$net}
  read -ra fa <<<"$f"
  if [ "$s" = logs ]; then c=(sh -c "$logs_cmd"); else read -ra c <<<"${cmds[$s]}"; fi
  case $e in
    berth) "$berth" run -d --name "bt-$s" "${fa[@]}" bt-bench:1 "${c[@]}" >/dev/null ;;
    docker) docker run -d --name "bt-$s" "${fa[@]}" bt-bench:1 "${c[@]}" >/dev/null ;;
    podman)
      [ "$s" = user ] && return 1
      [ "$s" = bridge ] && fa=(--network bridge)
      podman "${pflags[@]}" run "${popts[@]}" -d --name "bt-$s" "${fa[@]}" bt-bench:1 "${c[@]}" >/dev/null 2>&1 ;;
  esac
  if [ "$s" = exec ]; then
    for _ in 1 2 3 4 5; do
      case $e in
        berth) "$berth" exec bt-exec true ;;
        docker) docker exec bt-exec true ;;
        podman) podman "${pflags[@]}" exec bt-exec true ;;
      esac
    done
  fi
}

engines=(berth docker)
[ "$havepodman" = 1 ] && engines+=(podman)
declare -A started
for s in "${states[@]}"; do
  for e in "${engines[@]}"; do
    if start "$e" "$s"; then started[$e.$s]=1; fi
  done
done
sleep 5 # the logs written, three health probes run, berth's keeper re-exec'd (after 2 s)

# A monitor runs code after each probe and sheds it 250 ms later: each of its figures is the
# median of 5 samples 0.3 s apart, and the largest sample is printed below the table.
sampled() { # PID -> "median_rss (median_pss) max_rss"
  local out=() i
  for i in 1 2 3 4 5; do out+=("$(rss "$1") $(pss "$1")"); sleep 0.3; done
  printf '%s\n' "${out[@]}" | python3 -c "import sys,statistics as S; v=[tuple(map(int,l.split())) for l in sys.stdin]; print(f'{int(S.median(r for r,_ in v))} ({int(S.median(p for _,p in v))}) {max(r for r,_ in v)}')"
}
printf '%-8s %-16s %-16s %-22s %s\n' state "berth monitor" "+ its keeper" containerd-shim-runc-v2 conmon
peaks=""
for s in "${states[@]}"; do
  m=$(berth_monitor "bt-$s"); k=$(ps -o ppid= -p "$m" | tr -d ' ')
  d=$(docker_shim "bt-$s")
  read -r mr mp mx <<<"$(sampled "$m")"
  peaks+=" $s=$mx"
  b="$mr $mp"; bk="$(rss "$k") ($(pss "$k"))"; dk="$(rss "$d") ($(pss "$d"))"
  p=-
  if [ -n "${started[podman.$s]:-}" ]; then c=$(podman_conmon "bt-$s"); p="$(rss "$c") ($(pss "$c"))"; fi
  printf '%-8s %-16s %-16s %-22s %s\n' "$s" "$b" "$bk" "$dk" "$p"
done
echo "notes: logs = 10 MB written then idle; exec = after 5 \`exec true\`; health = a probe every 1 s."
echo "       berth monitor: median of 5 samples; the largest sample (KiB):$peaks"
echo "       podman has no user-network row (its network backend writes host-wide config); conmon does no networking."
[ "$havepodman" = 1 ] && echo "       podman runs health probes from systemd timers, which this host may lack: its health row may be idle."

# N idle containers each, together.
for e in "${engines[@]}"; do
  for s in "${states[@]}"; do
    case $e in
      berth) "$berth" rm -f "bt-$s" >/dev/null ;;
      docker) docker rm -f "bt-$s" >/dev/null ;;
      podman) podman "${pflags[@]}" rm -f "bt-$s" >/dev/null 2>&1 || true ;;
    esac
  done
done
for i in $(seq "$n"); do
  "$berth" run -d --name "bt-idle$i" --network none bt-bench:1 sleep 1000 >/dev/null
  docker run -d --name "bt-idle$i" --network none bt-bench:1 sleep 1000 >/dev/null
  [ "$havepodman" = 1 ] && podman "${pflags[@]}" run "${popts[@]}" -d --name "bt-idle$i" --network none bt-bench:1 sleep 1000 >/dev/null
done
sleep 4
bm=0; bk=0; ds=0; pc=0
for i in $(seq "$n"); do
  m=$(berth_monitor "bt-idle$i"); k=$(ps -o ppid= -p "$m" | tr -d ' ')
  bm=$(( bm + $(pss "$m") )); bk=$(( bk + $(pss "$k") ))
  ds=$(( ds + $(pss "$(docker_shim "bt-idle$i")") ))
  [ "$havepodman" = 1 ] && pc=$(( pc + $(pss "$(podman_conmon "bt-idle$i")") ))
done
echo "$n idle containers, PSS in all (KiB): berth monitors $bm + keepers $bk = $(( bm + bk )); containerd-shim-runc-v2 $ds; conmon $pc"
python3 -c "import sys; b,k,d,c=map(int,sys.argv[1:]); print(f'berth monitors / shims: {b/d:.3f}; monitors+keepers / shims: {(b+k)/d:.3f}' + (f'; / conmon: {(b+k)/c:.2f}' if c else ''))" "$bm" "$bk" "$ds" "$pc"
