#!/usr/bin/env bash
# Builds agyn-secrets-exec, the wrapper that delivery `exec` copies into pods, as a
# static executable that runs in any image (scratch, distroless, Alpine, Debian).
#
#   scripts/build-exec.sh [--release]
#
# The last line of stdout is the path of the binary. The build uses its own target
# directory (target/static), so it never waits on another cargo's lock.
set -euo pipefail
cd "$(dirname "$0")/.."

profile=debug
flags=()
case "${1:-}" in
  "") ;;
  --release) profile=release; flags=(--release) ;;
  -h|--help) sed -n '2,8s/^# \{0,1\}//p' "$0"; exit 0 ;;
  *) echo "build-exec.sh: unknown argument $1; usage: scripts/build-exec.sh [--release]" >&2; exit 2 ;;
esac

# The host's own target, named explicitly: with --target, the flags below reach only
# the binary, while build scripts and proc macros still link dynamically.
target=$(rustc -vV | sed -n 's/^host: //p')
case "$target" in
  *-linux-gnu) ;;
  *) echo "build-exec.sh: a static build needs a *-linux-gnu host, not $target" >&2; exit 1 ;;
esac
# RUSTFLAGS would override the target's flags, so any given are folded in here instead.
flags_var="CARGO_TARGET_$(echo "$target" | tr 'a-z-' 'A-Z_')_RUSTFLAGS"
export "$flags_var=-C target-feature=+crt-static${RUSTFLAGS:+ $RUSTFLAGS}"
unset RUSTFLAGS CARGO_ENCODED_RUSTFLAGS
cargo build --locked -p agyn-secrets-exec --target "$target" --target-dir target/static "${flags[@]}" >&2

echo "$PWD/target/static/$target/$profile/agyn-secrets-exec"
