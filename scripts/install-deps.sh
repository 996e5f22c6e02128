#!/usr/bin/env bash
# Installs what berth's build and tests need on Debian (as root, non-interactive): the
# busybox used for test images, protoc (the CRI crate compiles Kubernetes' protobuf
# definitions), the CNI plugins, the peers the tests and benchmarks drive (runc, crun,
# dockerd with containerd, podman with conmon) and small tools. Idempotent and quick when
# everything is already there.
set -euo pipefail

pkgs=(busybox-static nftables iproute2 runc crun docker.io containerd podman conmon catatonit uidmap passt slirp4netns fuse-overlayfs iptables tar procps python3 ca-certificates docker-registry skopeo apache2-utils zstd openssl bsdutils python3-cryptography python3-pip docker-compose protobuf-compiler containernetworking-plugins etcd-server)
missing=()
for p in "${pkgs[@]}"; do
  if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed"; then
    missing+=("$p")
  fi
done
if [ "${#missing[@]}" -gt 0 ]; then
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  # policy-rc.d keeps the packages from starting system daemons: the tests start their own.
  printf '#!/bin/sh\nexit 101\n' > /usr/sbin/policy-rc.d
  chmod +x /usr/sbin/policy-rc.d
  trap 'rm -f /usr/sbin/policy-rc.d' EXIT
  apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi
# Rootless containers reach the network and mount fuse-overlayfs through these, which udev
# makes world read-writable on a booted Debian; a machine without udev (a container, a
# microVM) has them root's only.
for dev in /dev/net/tun /dev/fuse; do
  if [ -c "$dev" ]; then chmod 0666 "$dev"; fi
done
# The Python Docker SDK, as its users install it (pip), for the API tests.
if ! python3 -c 'import docker' >/dev/null 2>&1; then
  python3 -m pip install -q docker >/dev/null 2>&1 || python3 -m pip install -q --break-system-packages docker >/dev/null
fi
if ! command -v cargo >/dev/null 2>&1; then
  echo "install-deps: cargo is missing: install Rust (rustup) first" >&2
  exit 1
fi
