#!/usr/bin/env bash
# cargo check of the no_std crates for every architecture Xen supports, with Debian's rustc-web
# and its foreign standard libraries in a private sysroot: the generated const assertions (size,
# alignment, every field offset) are evaluated per target. A target that cannot be set up fails.
set -euo pipefail
cd "$(dirname "$0")/.."
. tests/lib/packages.sh
. tests/lib/debian-rust.sh
ensure_debian_rust

TARGETS="x86_64-unknown-linux-gnu i686-unknown-linux-gnu aarch64-unknown-linux-gnu armv7-unknown-linux-gnueabihf"
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-target}/debian-cross"
failed=0
for t in $TARGETS; do
  if debian_cargo check --locked -q -p xen-sys -p xen --target "$t" 2>"$CARGO_TARGET_DIR.$t.log" \
    && debian_cargo check --locked -q -p xen --features std --target "$t" 2>>"$CARGO_TARGET_DIR.$t.log" \
    && debian_cargo check --locked -q -p xen-sys --features privcmd --target "$t" 2>>"$CARGO_TARGET_DIR.$t.log"; then
    echo "ok   $t: xen-sys (no_std, and with the privcmd backend) and xen type-check, every ABI assertion holds"
  else
    echo "FAIL $t:"
    tail -40 "$CARGO_TARGET_DIR.$t.log"
    failed=1
  fi
done
exit $failed
