#!/usr/bin/env bash
# The minimum supported Rust version: every crate's `rust-version`, checked with Debian's own
# toolchain of that version (rustc-web and cargo-web 1.85.x, Debian 12's main archive), extracted
# into the cache by tests/lib/debian-rust.sh with its standard library for arm64, armhf and i386.
# Its cargo and its rustc run `cargo check --locked` (so Cargo.lock must pin versions that build
# with it): the host crates with the features a user gets, and xen-sys and xen's no_std core for
# every target. One line per check,
#   MSRV-CHECK <crate>[/<target>] pass|fail rustc=<version> features=<features>
# and a non-zero exit on any failure (the compiler's output is shown).
set -euo pipefail
cd "$(dirname "$0")/.."
. tests/lib/packages.sh
. tests/lib/debian-rust.sh
ensure_msrv_rust
msrv_cargo() {
  LD_LIBRARY_PATH="$DEBIAN_RUST_LD" RUSTC="$DEBIAN_RUSTC" "$MSRV_CARGO" "$@"
}
echo "== rust-version $MSRV: Debian's rustc-web and cargo-web $MSRV_DEBIAN_VERSION ($(msrv_cargo --version))"

export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$PWD/target}/msrv"
mkdir -p "$CARGO_TARGET_DIR"
failed=0
# check NAME FEATURES CARGO-ARGS...: one MSRV-CHECK line; the log is shown on failure.
check() {
  local name=$1 features=$2 log="$CARGO_TARGET_DIR/${1//\//_}.${2//,/_}.log"
  shift 2
  if msrv_cargo check --locked -q "$@" >"$log" 2>&1; then
    echo "MSRV-CHECK $name pass rustc=$MSRV_RUSTC_VERSION features=$features"
  else
    echo "MSRV-CHECK $name fail rustc=$MSRV_RUSTC_VERSION features=$features"
    tail -40 "$log" | sed 's/^/    /'
    failed=1
  fi
}
# The libraries and xen-abi-gen's command line (the library alone is what xen-abi-macros uses).
check xen-abi-gen default -p xen-abi-gen
check xen-abi-gen none -p xen-abi-gen --no-default-features
check xen-abi-macros default -p xen-abi-macros
check xen-sys default -p xen-sys
check xen-sys privcmd -p xen-sys --features privcmd
check xen default -p xen
check xen std -p xen --features std
check xen sim,virtio -p xen --features sim,virtio
check xen all -p xen --all-features
# The no_std crates on every architecture Xen supports (their const layout assertions included).
for t in x86_64-unknown-linux-gnu i686-unknown-linux-gnu armv7-unknown-linux-gnueabihf \
  aarch64-unknown-linux-gnu; do
  check "xen-sys/$t" default -p xen-sys --target "$t"
  check "xen/$t" default -p xen --target "$t"
done
exit $failed
