#!/usr/bin/env bash
# Builds the release berth binary, statically linked (glibc static-pie), and prints its path.
# Static linking saves ~1 ms per exec (no ld.so, no relocations against libc and libgcc_s),
# and the runtime execs itself twice per container: see ARCHITECTURE.md, "Static binary".
# The target is named explicitly so the flag reaches only berth, not build scripts or
# proc-macros (which cannot be static).
set -euo pipefail
cd "$(dirname "$0")/.."
host=$(rustc -vV | sed -n 's/^host: //p')
RUSTFLAGS="${RUSTFLAGS:-} -C target-feature=+crt-static" \
  cargo build --release --locked -p berth --target "$host" "$@" >&2
echo "$PWD/target/$host/release/berth"
