#!/usr/bin/env bash
# Real Xen, x86_64: Debian's Xen 4.17 boots (under QEMU) a no_std Rust PV dom0 kernel that runs
# the xen-sys checks through the hypercall-page backend and the direct `syscall` backend, prints
# one line per check and leaves QEMU through isa-debug-exit. Then the same kernel built with a
# deliberately broken backend (arguments in the wrong registers) must fail.
set -euo pipefail
cd "$(dirname "$0")/../.."
. tests/lib/packages.sh
# shellcheck disable=SC2086
ensure_packages $PKGS_XEN_X86

. tests/lib/real-xen.sh
out="${CARGO_TARGET_DIR:-$PWD/target}/real-xen"
mkdir -p "$out"
ensure_xen_x86 "$out"
xen="$XEN_X86"

build() { # features target-dir
  (cd tests/xen-pv-dom0 && RUSTFLAGS="-C relocation-model=static" \
    cargo build --locked -q --release --target x86_64-unknown-linux-gnu --target-dir "$2" ${1:+--features "$1"})
  echo "$2/x86_64-unknown-linux-gnu/release/xen-pv-dom0-test"
}

boot() { # kernel log -> QEMU's exit status
  local rc=0
  timeout 90 qemu-system-x86_64 -machine q35 -cpu max,-smap,-rdtscp,-xsave,-avx,-avx2 -m 512 -smp 1 \
    -nographic -no-reboot -device isa-debug-exit,iobase=0xf4,iosize=0x04 \
    -kernel "$xen" \
    -append 'console=com1 com1=115200,8n1 loglvl=all guest_loglvl=all dom0_mem=64M dom0_max_vcpus=1' \
    -initrd "$1" </dev/null >"$2" 2>&1 || rc=$?
  return $rc
}

kernel=$(build "" "$out/pv-dom0")
log="$out/pv-dom0.log"
start=$(date +%s%N)
rc=0; boot "$kernel" "$log" || rc=$?
ms=$(( ($(date +%s%N) - start) / 1000000 ))
checks_verdict "$rc" 30
[ "$rc" = 33 ] || fail "QEMU exit status $rc, want 33 (isa-debug-exit 0x10)"
# The extraversion the backends read must be what Xen's banner printed.
extraversion_of hypercall-page
for b in syscall; do
  e=$(grep -m1 "^EXTRAVERSION $b " "$log" | tr -d '\r' | cut -d' ' -f3)
  [ "$e" = "$extra" ] || fail "$b backend read extraversion \"$e\", hypercall page \"$extra\""
done
echo "ok   x86_64 PV dom0: $n checks passed on $(grep -m1 -o 'Xen version [^ ]*' "$log" | tr -d '\r') (banner matches extraversion \"$extra\") in $ms ms of QEMU"

# A backend with two argument registers swapped must make the scenario fail.
kernel=$(build broken-backend "$out/pv-dom0-broken")
log="$out/pv-dom0-broken.log"
rc=0; boot "$kernel" "$log" || rc=$?
[ "$rc" = 124 ] || [ "$rc" = 35 ] || fail "broken backend: QEMU exit status $rc, want 35"
for b in hypercall-page syscall; do
  grep -q "^CHECK $b .*: FAIL" "$log" || fail "broken backend: no failing check through $b"
done
broken_verdict "$rc" "x86_64 PV dom0"
