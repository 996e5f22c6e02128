#!/usr/bin/env bash
# Overlay benchmark (issue #21): two "hosts" (network namespaces on a bridge of this
# script's own, 192.168.253.0/24), each running berth with a root and a berth.toml of its
# own, one etcd on the bridge. Measured, container to container:
#   - TCP throughput (HTTP, 3 x 256 MiB, as bench/net.sh) and latency (ping RTT; a TCP connect and small
#     HTTP GET, averaged over a loop inside the container) over the overlay, between the
#     hosts, vs the same two containers on one host's user-defined bridge;
#   - the time a new endpoint takes to be programmed (and so reachable) on the other
#     host: from the start of `berth run` on host B, and from its return, until host A's
#     VxLAN device has the container's neighbour entry (polled every 2 ms), N times.
# No Docker or Podman peer: neither has a multi-host overlay without Swarm.
#
# Usage: sudo bench/overlay.sh [N]   (default 10)
set -euo pipefail

n=${1:-10}
here=$(cd "$(dirname "$0")" && pwd)
top=$(cd "$here/.." && pwd)
berth=${BERTH_BIN:-$("$top/scripts/build.sh")}
work=$(mktemp -d /tmp/bt$$-ovbench-XXXX)
. "$here/lib.sh"
tag=$(( $$ % 10000 ))
br=btob$tag
gw=192.168.253.254
hosts=(btobh0-$tag btobh1-$tag)
etcd_pid=
cleanup() {
  for i in 0 1; do
    ids=$(h "$i" ps -aq 2>/dev/null || true)
    # shellcheck disable=SC2086
    [ -n "$ids" ] && h "$i" rm -f $ids >/dev/null 2>&1 || true
    pid=$(cat "$work/r$i/run/overlay/agent.pid" 2>/dev/null || true)
    [ -n "$pid" ] && kill "$pid" 2>/dev/null || true
  done
  [ -n "$etcd_pid" ] && kill "$etcd_pid" 2>/dev/null || true
  for hn in "${hosts[@]}"; do ip netns del "$hn" 2>/dev/null || true; done
  ip link del "$br" 2>/dev/null || true
  unmount_under "$work" 2>/dev/null || true
  rm -rf "$work" 2>/dev/null || true
}
trap cleanup EXIT

# Host i's berth, inside its namespace.
h() {
  local i=$1; shift
  BERTH_CONFIG=$work/c$i.toml BERTH_NFT_TABLE=bt${tag}ov$i nsenter --net=/run/netns/"${hosts[$i]}" "$berth" --root "$work/r$i" "$@"
}

ip link add "$br" type bridge
ip addr add "$gw/24" dev "$br"
ip link set "$br" up
for i in 0 1; do
  ip netns add "${hosts[$i]}"
  ip link add "$br-$i" type veth peer name u0 netns "${hosts[$i]}"
  ip link set "$br-$i" master "$br" up
  ip -n "${hosts[$i]}" addr add "192.168.253.$((i + 1))/24" dev u0
  ip -n "${hosts[$i]}" link set u0 up
  ip -n "${hosts[$i]}" link set lo up
done
port=$((23000 + tag % 1000))
etcd --data-dir "$work/etcd" --listen-client-urls "http://$gw:$port" --advertise-client-urls "http://$gw:$port" \
  --listen-peer-urls "http://$gw:$((port + 1))" --initial-advertise-peer-urls "http://$gw:$((port + 1))" \
  --initial-cluster "default=http://$gw:$((port + 1))" >"$work/etcd.log" 2>&1 &
etcd_pid=$!
for _ in $(seq 100); do curl -sf "http://$gw:$port/health" >/dev/null && break; sleep 0.1; done

busybox_tar "$work"
for i in 0 1; do
  printf '[cluster]\nstore = "etcd://%s:%s"\nadvertise = "192.168.253.%s"\n' "$gw" "$port" $((i + 1)) >"$work/c$i.toml"
  h "$i" import "$work/img.tar" bt-bench:1 >/dev/null
done
h 0 network create -d overlay --subnet 10.233.0.0/24 btov >/dev/null
h 0 network create --subnet 10.234.0.0/24 btbr >/dev/null
web='mkdir -p /www && echo ok > /www/index.html && exec httpd -f -p 80 -h /www'
h 0 run -d --name ov-a --network btov bt-bench:1 sh -c "$web" >/dev/null
h 1 run -d --name ov-b --network btov bt-bench:1 sh -c "$web" >/dev/null
h 0 run -d --name br-a --network btbr bt-bench:1 sh -c "$web" >/dev/null
h 0 run -d --name br-b --network btbr bt-bench:1 sh -c "$web" >/dev/null
ipof() { h "$1" inspect -f "{{(index .NetworkSettings.Networks \"$3\").IPAddress}}" "$2"; }
ov_b=$(ipof 1 ov-b btov)
br_b=$(ipof 0 br-b btbr)

# Throughput: a 256 MiB file over HTTP (busybox httpd to wget, as bench/net.sh), 3 times,
# from container b (on host i) to container a; MiB/s.
throughput() { # host-of-b b-name ip a-name
  local hb=$1 b=$2 ip=$3 a=$4
  h "$hb" exec "$b" sh -c 'dd if=/dev/zero of=/www/big bs=1M count=256 2>/dev/null'
  local t0 t1
  t0=$(date +%s.%N)
  for _ in 1 2 3; do h 0 exec "$a" wget -q -O /dev/null "http://$ip/big"; done
  t1=$(date +%s.%N)
  h "$hb" exec "$b" rm -f /www/big
  python3 -c "print(f'{3*256/($t1-$t0):.0f}')"
}
ping_rtt() { h 0 exec "$1" ping -q -c 200 -i 0.01 "$2" | sed -n 's#.*= [0-9.]*/\([0-9.]*\)/.*#\1#p'; }
get_ms() { # average ms of a TCP connect + GET, 200 in a loop inside the container
  local t0 t1
  t0=$(date +%s.%N)
  h 0 exec "$1" sh -c "for i in \$(seq 200); do wget -qO- http://$2/ >/dev/null; done"
  t1=$(date +%s.%N)
  python3 -c "print(f'{($t1-$t0)*1000/200:.2f}')"
}

ov_tp=$(throughput 1 ov-b "$ov_b" ov-a)
br_tp=$(throughput 0 br-b "$br_b" br-a)
ov_rtt=$(ping_rtt ov-a "$ov_b")
br_rtt=$(ping_rtt br-a "$br_b")
ov_get=$(get_ms ov-a "$ov_b")
br_get=$(get_ms br-a "$br_b")

# New endpoints: host B starts a container at a fixed address; host A's VxLAN device is
# polled for its neighbour entry.
ovid=$(h 0 network inspect -f '{{.Id}}' btov)
ovns=$work/r0/run/netns/ov-${ovid:0:12}
from_start=() from_return=()
for k in $(seq "$n"); do
  addr=10.233.0.$((100 + k))
  out=$(python3 - "$ovns" "$addr" "$work/c1.toml" "${hosts[1]}" "$berth" "$work/r1" "bt${tag}ov1" <<'EOF'
import subprocess, sys, time, os
ovns, addr, cfg, host, berth, root, table = sys.argv[1:]
env = dict(os.environ, BERTH_CONFIG=cfg, BERTH_NFT_TABLE=table)
t0 = time.monotonic()
p = subprocess.Popen(["nsenter", f"--net=/run/netns/{host}", berth, "--root", root, "run", "-d",
                      "--network", "btov", "--ip", addr, "bt-bench:1", "sleep", "600"],
                     env=env, stdout=subprocess.DEVNULL)
seen = None
while seen is None:
    o = subprocess.run(["nsenter", f"--net={ovns}", "ip", "neigh", "show", addr, "dev", "vxlan0"],
                       capture_output=True, text=True).stdout
    if "lladdr" in o:
        seen = time.monotonic()
    elif time.monotonic() - t0 > 10:
        sys.exit("never programmed")
    else:
        time.sleep(0.002)
p.wait()
t1 = time.monotonic()
# Negative: programmed on A before `run` returned on B.
print(f"{(seen - t0) * 1000:.1f} {(seen - t1) * 1000:.1f}")
EOF
)
  from_start+=("${out% *}")
  from_return+=("${out#* }")
done
median() { printf '%s\n' "$@" | sort -g | awk '{a[NR]=$1} END {print (NR%2) ? a[(NR+1)/2] : (a[NR/2]+a[NR/2+1])/2}'; }

echo "overlay between two hosts vs one host's bridge (this machine, berth $("$berth" --version 2>/dev/null | head -1))"
printf '%-28s %12s %12s %8s\n' "" overlay bridge ratio
printf '%-28s %12s %12s %8s\n' "HTTP 3 x 256 MiB (MiB/s)" "$ov_tp" "$br_tp" "$(python3 -c "print(f'{$ov_tp/$br_tp:.2f}x')")"
printf '%-28s %12s %12s %8s\n' "ping RTT (ms, avg of 200)" "$ov_rtt" "$br_rtt" "$(python3 -c "print(f'{$ov_rtt/$br_rtt:.2f}x')")"
printf '%-28s %12s %12s %8s\n' "TCP connect+GET (ms)" "$ov_get" "$br_get" "$(python3 -c "print(f'{$ov_get/$br_get:.2f}x')")"
echo "new endpoint programmed on the other host, median of $n: $(median "${from_start[@]}") ms from the start of run, $(median "${from_return[@]}") ms from its return (negative: before it returned)"
