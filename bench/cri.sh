#!/usr/bin/env bash
# CRI benchmark: berth's CRI server against containerd 1.6's CRI plugin (runc), both driven
# by the project's own CRI client (crates/berth-cri/examples/cri_bench.rs), both with the
# same CNI network (Debian's bridge, host-local and portmap plugins, each engine its own
# bridge and subnet):
#   - RunPodSandbox + CreateContainer + StartContainer + stop + remove of one pod with one
#     container (`sleep`), N times one after another: the median;
#   - P pods brought up at once, and taken down at once: the wall times;
#   - while the P pods run: the RSS of what keeps them (berth's monitors and keepers,
#     containerd's shims), in all and per pod.
# containerd runs privately (its own root, state, socket; restrict_oom_score_adj, as this
# host cannot lower OOM scores), with a sandbox image made from the same busybox.
#
# Usage: sudo bench/cri.sh [N] [P]   (default 20 and 30)
set -euo pipefail

n=${1:-20}
p=${2:-30}
here=$(cd "$(dirname "$0")" && pwd)
top=$(cd "$here/.." && pwd)
berth=${BERTH_BIN:-$("$top/scripts/build.sh")}
cargo build -q --release -p berth-cri --example cri_bench --manifest-path "$top/Cargo.toml"
client=$top/target/release/examples/cri_bench
work=$(mktemp -d /tmp/bt$$-cribench-XXXX)
berth_pid=""
ctd_pid=""
cleanup() {
  [ -n "$berth_pid" ] && kill "$berth_pid" 2>/dev/null && wait "$berth_pid" 2>/dev/null || true
  "$berth" pod ps -q --no-trunc 2>/dev/null | while read -r id; do "$berth" pod rm -f "$id" >/dev/null 2>&1 || true; done
  [ -n "$ctd_pid" ] && kill "$ctd_pid" 2>/dev/null && wait "$ctd_pid" 2>/dev/null || true
  # Shims of this run's containerd (by pid, found by its private paths).
  for pid in $(ps -eo pid=,args= | awk -v w="$work" 'index($0, w) && /containerd-shim/ {print $1}'); do
    kill "$pid" 2>/dev/null || true
  done
  ip link del "btcri$$b" 2>/dev/null || true
  ip link del "btcri$$c" 2>/dev/null || true
  unmount_under "$work" 2>/dev/null || true
  rm -rf "$work"
}
trap cleanup EXIT

. "$here/lib.sh"
busybox_tar "$work" sh true sleep
export BERTH_ROOT=$work/berth
"$berth" import -c "ENV PATH=/usr/sbin:/usr/bin:/sbin:/bin" "$work/img.tar" bt-bench:1 >/dev/null
"$berth" import -c "ENV PATH=/usr/sbin:/usr/bin:/sbin:/bin" -c 'CMD ["sleep", "999999"]' "$work/img.tar" bt-bench-pause:1 >/dev/null
"$berth" save -o "$work/images.tar" bt-bench:1 bt-bench-pause:1

conflist() { # NAME BRIDGE SUBNET IPAMDIR
  cat <<EOF
{"cniVersion": "1.0.0", "name": "$1", "plugins": [
  {"type": "bridge", "bridge": "$2", "isGateway": true, "ipMasq": false, "hairpinMode": true,
   "ipam": {"type": "host-local", "dataDir": "$4", "ranges": [[{"subnet": "$3"}]]}},
  {"type": "portmap", "capabilities": {"portMappings": true}}]}
EOF
}
mkdir -p "$work/cni-berth" "$work/cni-ctd" "$work/ctd"
conflist bench-berth "btcri$$b" 10.197.0.0/16 "$work/ipam-berth" > "$work/cni-berth/10-bench.conflist"
conflist bench-ctd "btcri$$c" 10.196.0.0/16 "$work/ipam-ctd" > "$work/cni-ctd/10-bench.conflist"

rss_of() { # PATTERN: total RSS (KiB) and count of processes whose command line matches
  ps -eo rss=,args= | awk -v pat="$1" '$0 ~ pat && $0 !~ /awk/ {s += $1; c++} END {printf "%d %d\n", s, c}'
}

run_client() { # ENDPOINT IMAGE LABEL PATTERN
  local hold=$work/hold-$3 out=$work/out-$3
  rm -f "$hold"
  "$client" "$1" "$2" "$n" "$p" "$hold" > "$out" &
  local cpid=$!
  until grep -q '^up$' "$out" 2>/dev/null; do
    kill -0 "$cpid" 2>/dev/null || { cat "$out"; echo "cri_bench failed for $3" >&2; exit 1; }
    sleep 0.2
  done
  sleep 2
  read -r rss count < <(rss_of "$4")
  touch "$hold"
  wait "$cpid"
  grep -v '^up$' "$out" | sed "s/^/$3: /"
  echo "$3: $count keeper processes for $p pods: $rss KiB RSS in all, $((rss / p)) KiB per pod"
}

# berth
"$berth" cri --listen "unix://$work/berth-cri.sock" --cni-conf-dir "$work/cni-berth" \
  --cni-bin-dir /usr/lib/cni,/opt/cni/bin > "$work/berth-cri.log" 2>&1 &
berth_pid=$!
until [ -S "$work/berth-cri.sock" ]; do sleep 0.05; done
run_client "$work/berth-cri.sock" bt-bench:1 berth '_monitor|_keep'
kill "$berth_pid"; wait "$berth_pid" 2>/dev/null || true; berth_pid=""

# containerd
cat > "$work/ctd/config.toml" <<EOF
version = 2
root = "$work/ctd/root"
state = "$work/ctd/state"
[grpc]
  address = "$work/ctd/containerd.sock"
[ttrpc]
  address = "$work/ctd/containerd.sock.ttrpc"
[debug]
  address = ""
[metrics]
  address = ""
[plugins."io.containerd.internal.v1.opt"]
  path = "$work/ctd/opt"
[plugins."io.containerd.grpc.v1.cri"]
  sandbox_image = "docker.io/library/bt-bench-pause:1"
  restrict_oom_score_adj = true
  netns_mounts_under_state_dir = true
  [plugins."io.containerd.grpc.v1.cri".cni]
    bin_dir = "/usr/lib/cni"
    conf_dir = "$work/cni-ctd"
    max_conf_num = 1
  [plugins."io.containerd.grpc.v1.cri".containerd]
    default_runtime_name = "runc"
    [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc]
      runtime_type = "io.containerd.runc.v2"
EOF
containerd --config "$work/ctd/config.toml" > "$work/ctd/log" 2>&1 &
ctd_pid=$!
until [ -S "$work/ctd/containerd.sock" ]; do sleep 0.05; done
ctr --address "$work/ctd/containerd.sock" -n k8s.io images import "$work/images.tar" >/dev/null
run_client "$work/ctd/containerd.sock" docker.io/library/bt-bench:1 containerd "containerd-shim-runc-v2 .*$work"

python3 - "$work/out-berth" "$work/out-containerd" <<'PY'
import re, sys
def fig(path, pat):
    m = re.search(pat, open(path).read())
    return float(m.group(1)) if m else None
b, c = sys.argv[1], sys.argv[2]
for what, pat in [("one pod's cycle (median)", r"cycle median ([\d.]+)"),
                  ("pods up at once", r"pods up at once in ([\d.]+)"),
                  ("pods down at once", r"pods down at once in ([\d.]+)")]:
    x, y = fig(b, pat), fig(c, pat)
    if x and y:
        print(f"{what}: berth {x:.1f} ms, containerd {y:.1f} ms: berth / containerd {x / y:.2f}x")
PY
