#!/usr/bin/env bash
# The full test command (README.md). .ci/run calls exactly this.
# --all-releases: the IOREQ scenario in full on Xen 4.20 too (by default it serves on 4.17 and
# shows the refusal on 4.14; every other real-Xen stage runs on all three releases either way).
set -euo pipefail
cd "$(dirname "$0")/.."
ioreq_releases="4.14 4.17"
for arg in "$@"; do
  case $arg in
    --all-releases) ioreq_releases="4.14 4.17 4.20" ;;
    *) echo "usage: tests/run.sh [--all-releases]" >&2; exit 2 ;;
  esac
done
. tests/lib/packages.sh
. tests/lib/toolchain.sh
# shellcheck disable=SC2086
ensure_packages $PKGS_BASE
ensure_toolchain
# Every package of every stage, before the first stage starts (README.md lists them).
# shellcheck disable=SC2086
ensure_packages $TEST_PACKAGES

export CARGO_TERM_COLOR=never
# CI never updates snapshots: a difference is a failure.
export INSTA_UPDATE=no

step() { printf '\n== %s\n' "$*"; }
# The suite's own outputs (regbank.out, test-output.txt, ...) go to ./target even when cargo's
# builds go to CARGO_TARGET_DIR.
mkdir -p target

step "packages: every file the stages use comes from a declared package (no Recommends, nothing by hand)"
cargo build --locked -q -p xen-abi-gen
tests/package-check.sh
# The check itself: with one package left out of the declaration it must fail, naming the package.
if out=$(PACKAGE_CHECK_OMIT=libc6-dev-i386-cross tests/package-check.sh 2>&1); then
  echo "FAIL: the package check passed with libc6-dev-i386-cross undeclared"; exit 1
fi
grep -q 'comes from libc6-dev-i386-cross, which no declared package Depends on' <<<"$out" || {
  echo "FAIL: the package check did not name libc6-dev-i386-cross:"; echo "$out"; exit 1
}
echo "ok   with libc6-dev-i386-cross undeclared it fails: $(grep -c '^FAIL \[' <<<"$out") files named, e.g. $(grep -m1 '^FAIL \[' <<<"$out")"

step "format"
cargo fmt --all -- --check
cargo fmt --manifest-path tests/xen-pv-dom0/Cargo.toml -- --check
cargo fmt --manifest-path tests/xen-arm64-dom0/Cargo.toml -- --check
cargo fmt --manifest-path tests/xen-pvh-guest/Cargo.toml -- --check
cargo fmt --manifest-path tests/freestanding-mem/Cargo.toml -- --check
cargo fmt --manifest-path tests/xen-pvh-stubdom/Cargo.toml -- --check
cargo fmt --manifest-path xen-abi-gen/fuzz/Cargo.toml -- --check

step "clippy"
cargo clippy --locked --workspace --all-targets --all-features -- -D warnings

step "documentation: cargo doc with every feature, warnings denied"
RUSTDOCFLAGS="-D warnings" cargo doc --locked -q --workspace --all-features --no-deps
echo "ok   rustdoc: no warnings (broken links included) in any crate"

step "packaging: cargo package --workspace, and every crate built from its .crate alone outside the repository"
tests/package-crates.sh

step "generated bindings are up to date (xen-abi-gen check)"
cargo run --locked -q -p xen-abi-gen -- check

step "ABI compatibility with the base (xen-abi-gen diff)"
tests/abi-diff.sh

. tests/lib/xen-releases.sh
step "C conformance: the spec equals the machine's Xen $(machine_xen_release) headers (4 architectures x 2 views)"
cargo run --locked -q -p xen-abi-gen -- c-probe --release "$(machine_xen_release)"
step "C conformance: the linux/* files equal the machine's Linux $(machine_linux_release) uapi headers"
cargo run --locked -q -p xen-abi-gen -- c-probe --uapi --linux-release "$(machine_linux_release)"
step "C conformance per release: every since true to the Xen 4.14/4.17/4.20 and Linux 5.10/6.1/6.12 headers"
tests/release-probe.sh

step "Rust on every target: cargo check with Debian's rustc-web and foreign std"
tests/cross-check.sh
step "MSRV: every crate's rust-version with Debian 12's rustc-web and cargo-web of that version (cargo check --locked, the host crates and the no_std crates on every target)"
tests/msrv-check.sh
step "call backends: wrappers compile to the hand-written hypercall sequence on every target"
tests/disasm-check.sh

step "negative proof: a one-architecture layout break is caught by the generator, the C probe and rustc"
tests/negative-proof.sh

step "real-Xen harness: dom0's helpers under SIGCHLDs, failures named by their first cause, QEMU's watchdog"
tests/harness-selftest.sh

step "real Xen 4.14, 4.17 and 4.20 (x86_64, QEMU): one no_std PV dom0 binary on the hypercall-page and syscall backends"
tests/real-xen/pv-dom0.sh

step "real Xen 4.14/5.10, 4.17/6.1, 4.20/6.12 (x86_64, QEMU): one privcmd_check binary in a Linux PV dom0"
tests/real-xen/linux-dom0.sh

step "real Xen ${ioreq_releases// //} (x86_64, QEMU): IOREQ, the Rust server answers a PVH guest where Xen has what it uses, refuses cleanly where not"
IOREQ_RELEASES=$ioreq_releases tests/real-xen/ioreq-pvh.sh

step "real Xen 4.17 and 4.20 (x86_64, QEMU): virtio-pci without QEMU, Debian's Linux PVH guest: rngs (in-process, vhost-device-rng), a console and a SCSI disk over vhost-user, a back end killed mid-run"
tests/real-xen/virtio-pvh.sh

step "real Xen 4.17 (x86_64, QEMU -icount): virtio-pci next to QEMU, Debian's Linux HVM guest with qemu-system-xen as its device model: the same devices and checks, and instructions per operation against QEMU's virtio-rng-pci and virtio-scsi-pci in the same boot"
tests/real-xen/virtio-hvm.sh

step "real Xen 4.17 and 4.20 (x86_64, QEMU): IOREQ from a PVH stub domain, refused before Xen 4.19"
tests/real-xen/ioreq-stubdom.sh

step "real Xen 4.17 and 4.20 (x86_64, QEMU): xenstore client and grant tables with a PVH guest front end"
tests/real-xen/xenstore-grant.sh

step "real Xen 4.17 (arm64, QEMU): no_std dom0 on the HVC backend, on Debian's Xen and on Xen built with IOREQ servers from Debian's source"
tests/real-xen/arm64-dom0.sh

step "real Xen 4.17 with IOREQ servers (arm64, QEMU -icount): Debian's Linux arm64 dom0 with Debian's xl creates a Linux guest and an IOREQ server for it, privcmd_check for aarch64 passes, regbank for aarch64 serves the guest's MMIO, the guest's console reaches dom0, a second guest's specification=virtio disk is served over virtio-mmio by virtio_mmio_attach for aarch64 and an rng by vhost-device-rng, with instructions per rng request and per 4 KiB disk read and the rng's back end killed and restarted mid-run (on Debian's arm64 Xen too, where dm_op is ENOSYS and the disk is refused)"
tests/real-xen/arm64-linux.sh

step "stabilising a new hypercall: prototype, spec, generate, C probe, diff"
tests/stabilise-workflow.sh

step "xen: the example device on the simulator"
cargo run --locked -q -p xen --features sim --example regbank | tee target/regbank.out
grep -q '^counter  = 3$' target/regbank.out && grep -q '^servers left: 0$' target/regbank.out

step "xen: IoreqServer per-request cost against a hand-written loop (bench)"
BENCH_REQUESTS=100000 cargo bench --locked -q -p xen --features sim --bench ioreq

step "xen: the hostile-guest and fetch-audit suites (RUSTFLAGS=--cfg xen_fetch_audit)"
# The audit is a compiler flag, not a Cargo feature: its own build, in its own target dir.
RUSTFLAGS="--cfg xen_fetch_audit" CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$PWD/target}/fetch-audit" \
  cargo test --locked -q -p xen --features sim --test hostile --test audit 2>&1 | tee target/audit-output.txt
# Each suite must have run (without the flag they compile to nothing).
[ "$(grep -c '^test result: ok\. [1-9]' target/audit-output.txt)" = 2 ] ||
  { echo "FAIL: the hostile and audit suites did not both run and pass"; exit 1; }

step "xen: data races under ThreadSanitizer (every xen suite, hostile and audit included; a known race as control)"
tests/race-check.sh

step "xen-abi-gen: coverage-guided spec fuzz (cargo-fuzz with the race check's nightly, a fixed number of executions and seed; controls first)"
tests/spec-fuzz-guided.sh

step "tests"
mkdir -p target
# The vhost-user front end's tests talk to rust-vmm's published vhost-device-rng, -console and
# -scsi (--features xen).
. tests/lib/vhost-devices.sh
VHOST_DEVICE_RNG=$(ensure_vhost_device rng 0.1.0)
VHOST_DEVICE_CONSOLE=$(ensure_vhost_device console 0.1.0)
VHOST_DEVICE_SCSI=$(ensure_vhost_device scsi 0.1.0)
export VHOST_DEVICE_RNG VHOST_DEVICE_CONSOLE VHOST_DEVICE_SCSI
cargo test --locked --workspace --all-features 2>&1 | tee target/test-output.txt
# One closing line with the totals of every test binary.
awk '/^test result:/ { p += $4; f += $6; i += $8 } END { printf "%d passed, %d failed, %d skipped\n", p, f, i; exit (f > 0) }' target/test-output.txt
