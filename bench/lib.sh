# Shared by the benchmarks (sourced): a private dockerd for docker's side of a comparison.

# start_dockerd WORK BRIDGE: dockerd with its state under WORK/docker, containers on
# BRIDGE (`none` for no bridge), no iptables rules; exports DOCKER_HOST and DOCKER_CONFIG
# for it and appends its pid to the caller's `pids` array; returns once it answers.
start_dockerd() {
  local work=$1 bridge=$2
  mkdir -p "$work/docker"
  dockerd --data-root "$work/docker/data" --exec-root "$work/docker/exec" --pidfile "$work/docker/pid" \
    -H "unix://$work/docker/sock" --bridge="$bridge" --iptables=false --ip6tables=false --ip-masq=false \
    --containerd-namespace "bt$$-moby" --containerd-plugins-namespace "bt$$-plugins" \
    > "$work/docker/log" 2>&1 &
  pids+=($!)
  export DOCKER_HOST=unix://$work/docker/sock DOCKER_CONFIG=$work/docker/cli
  mkdir -p "$DOCKER_CONFIG" && echo '{}' > "$DOCKER_CONFIG/config.json"
  for _ in $(seq 300); do docker version >/dev/null 2>&1 && break; sleep 0.2; done
}

# busybox_tar WORK [APPLET...]: the host's busybox as an image rootfs tar at WORK/img.tar,
# with links for the applets named (every applet when none is).
busybox_tar() {
  local work=$1; shift
  local applets=("$@")
  [ "${#applets[@]}" -gt 0 ] || mapfile -t applets < <(/bin/busybox --list | grep -vx busybox)
  mkdir -p "$work/rootfs"/{bin,etc,dev,proc,sys,tmp}
  cp /bin/busybox "$work/rootfs/bin/"
  for a in "${applets[@]}"; do ln -sf busybox "$work/rootfs/bin/$a"; done
  echo 'root:x:0:0:root:/root:/bin/sh' > "$work/rootfs/etc/passwd"
  tar -C "$work/rootfs" -cf "$work/img.tar" .
}

# networks_apart WORK: berth's store under WORK/berth and its networking apart from any
# other berth on the host (bridge names, subnet, nftables table, all named by this shell's
# pid); sets `tag` and `dkbr` (the name for docker's bridge), the podman flags `pflags` for
# a private store under WORK, and notes what podman's CNI may leave behind (for
# podman_leftovers).
networks_apart() {
  local work=$1
  tag=$(( $$ % 10000 ))
  dkbr=bt${tag}dk
  export BERTH_ROOT=$work/berth BERTH_BRIDGE=bt${tag}b BERTH_BRIDGE_SUBNET=10.252.0.0/24 \
    BERTH_NFT_TABLE=bt${tag}net BERTH_BRIDGE_PREFIX=bt${tag}n-
  pflags=(--root "$work/podman" --runroot "$work/podman-run" --storage-driver overlay --cgroup-manager cgroupfs --events-backend none)
  tables_before=$(nft list tables 2>/dev/null || true)
  had_cni=0
  if ip link show cni-podman0 >/dev/null 2>&1; then had_cni=1; fi
}

# podman_leftovers: resets the private podman store and removes the CNI bridge and the
# nftables tables its plugins made during this run (none that were there before).
podman_leftovers() {
  podman "${pflags[@]}" system reset -f >/dev/null 2>&1 || true
  if [ "$had_cni" = 0 ]; then ip link del cni-podman0 2>/dev/null || true; fi
  nft list tables 2>/dev/null | while read -r _ fam name; do
    grep -qx "table $fam $name" <<<"$tables_before" || case $name in nat|filter) nft delete table "$fam" "$name" ;; esac
  done
}

# unmount_under DIR: lazily unmounts every mount below DIR, deepest first (a run's
# leftovers, before its work directory goes).
unmount_under() {
  grep -o " $1[^ ]*" /proc/self/mounts | sort -r | while read -r m; do umount -l "$m" 2>/dev/null || true; done || true
}
