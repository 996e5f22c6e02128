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
