#!/usr/bin/env bash
# Installs berth, builds an image and runs a container from it, offline: builds the static
# release binary, installs it as /usr/local/bin/berth (and berth-runtime), makes a busybox
# base image from the host's busybox-static (`berth import`), builds an image on it from a
# Dockerfile (`berth build`), and runs a container from that. Run as root.
set -euo pipefail
cd "$(dirname "$0")/.."

scripts/install-deps.sh
bin=$(scripts/build.sh)
install -m 0755 "$bin" /usr/local/bin/berth
ln -sf berth /usr/local/bin/berth-runtime

# An image berth can get offline: the host's busybox, imported as busybox:local.
rootfs=$(mktemp -d /tmp/berth-quickstart-XXXX)
trap 'rm -rf "$rootfs"' EXIT
mkdir -p "$rootfs"/{bin,etc,dev,proc,sys,tmp,root}
cp /bin/busybox "$rootfs/bin/busybox"
for a in $(/bin/busybox --list); do
  [ "$a" = busybox ] || ln -sf busybox "$rootfs/bin/$a"
done
echo 'root:x:0:0:root:/root:/bin/sh' > "$rootfs/etc/passwd"
echo 'root:x:0:' > "$rootfs/etc/group"
tar -C "$rootfs" -c . | berth import -c 'CMD ["sh"]' - busybox:local >/dev/null

# Build an image from a Dockerfile on that base, then run it.
ctx=$rootfs/ctx
mkdir -p "$ctx"
echo 'hello from a berth-built image' > "$ctx/greeting.txt"
cat > "$ctx/Dockerfile" <<'EOF'
FROM busybox:local
WORKDIR /app
COPY greeting.txt .
RUN echo "built on $(uname -m)" > /app/built
CMD ["sh", "-c", "cat /app/greeting.txt /app/built; echo pid $$ on $(hostname)"]
EOF
berth build -t hello:local "$ctx"
berth images
berth run --rm hello:local
