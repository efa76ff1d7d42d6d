#!/usr/bin/env bash
# Real Xen, x86_64: a no_std Rust PV dom0 kernel, built once, boots (under QEMU) on Debian's Xen
# 4.14, 4.17 and 4.20 and runs the xen-sys checks through the hypercall-page backend and the
# direct `syscall` backend, one line per check, then leaves QEMU through isa-debug-exit. It
# learns the release from XENVER_version (which must be the one booted) and gates the 4.20-only
# XENVER_extraversion2 on it: used on 4.20, refused with -XEN_ENOSYS on the older two. Then the
# same kernel built with a deliberately broken backend (arguments in the wrong registers) must
# fail (on 4.17). PV_DOM0_RELEASES overrides the release list.
set -euo pipefail
cd "$(dirname "$0")/../.."
. tests/lib/packages.sh
# shellcheck disable=SC2086
ensure_packages $PKGS_XEN_X86

. tests/lib/real-xen.sh
# shellcheck source=tests/lib/xen-releases.sh
. tests/lib/xen-releases.sh
out="${CARGO_TARGET_DIR:-$PWD/target}/real-xen"
mkdir -p "$out"
ensure_xen_x86 "$out"

build() { # features target-dir
  (cd tests/xen-pv-dom0 && RUSTFLAGS="-C relocation-model=static" \
    cargo build --locked -q --release --target x86_64-unknown-linux-gnu --target-dir "$2" ${1:+--features "$1"}) || return 1
  echo "$2/x86_64-unknown-linux-gnu/release/xen-pv-dom0-test"
}

boot() { # kernel log [hypervisor] -> QEMU's exit status
  local rc=0 xen=${3:-$XEN_X86}
  qemu_bounded "$2" qemu-system-x86_64 -machine q35 -cpu max,-smap,-rdtscp,-xsave,-avx,-avx2 -m 512 -smp 1 \
    -nographic -no-reboot -device isa-debug-exit,iobase=0xf4,iosize=0x04 \
    -kernel "$xen" \
    -append 'console=com1 com1=115200,8n1 loglvl=all guest_loglvl=all dom0_mem=64M dom0_max_vcpus=1' \
    -initrd "$1" || rc=$?
  return $rc
}

kernel=$(build "" "$out/pv-dom0")
echo "     kernel $(sha256sum "$kernel" | cut -c1-16) (sha256), the same file on every release"
# Gated interface: XENVER_extraversion2 exists from Xen 4.20.
gate_since=4.20
for rel in ${PV_DOM0_RELEASES:-$XEN_RELEASES}; do
  xen=$(release_xen "$rel") || exit 1
  log="$out/pv-dom0-$rel.log"
  start=$(date +%s%N)
  rc=0; boot "$kernel" "$log" "$xen" || rc=$?
  ms=$(( ($(date +%s%N) - start) / 1000000 ))
  checks_verdict "$rc" 30
  [ "$rc" = 33 ] || fail "QEMU exit status $rc, want 33 (isa-debug-exit 0x10)"
  grep -q "Xen version $rel\." "$log" || fail "booted $(grep -m1 -o 'Xen version [^ ]*' "$log"), want $rel"
  for b in hypercall-page syscall; do
    v=$(grep -m1 "^VERSION $b " "$log" | tr -d '\r' | cut -d' ' -f3 || true)
    [ "$v" = "$rel" ] || fail "$b backend: XENVER_version says \"$v\" on Xen $rel"
    want=refused
    release_at_least "$rel" "$gate_since" && want=used
    g=$(grep -m1 "^GATE $b XENVER_extraversion2 " "$log" | tr -d '\r' | cut -d' ' -f4 || true)
    [ "$g" = "$want" ] || fail "$b backend: XENVER_extraversion2 $g on Xen $rel, want $want"
  done
  # The extraversion the backends read must be what Xen's banner printed.
  extraversion_of hypercall-page "$rel"
  for b in syscall; do
    e=$(grep -m1 "^EXTRAVERSION $b " "$log" | tr -d '\r' | cut -d' ' -f3)
    [ "$e" = "$extra" ] || fail "$b backend read extraversion \"$e\", hypercall page \"$extra\""
  done
  e2=$(grep -m1 "^EXTRAVERSION2 hypercall-page " "$log" | tr -d '\r' | cut -d' ' -f3 || true)
  if [ -n "$e2" ]; then
    grep -qF "Xen version $rel$e2 (" "$log" || fail "XENVER_extraversion2 \"$e2\" is not the banner's"
  fi
  echo "ok   x86_64 PV dom0: $n checks passed on $(grep -m1 -o 'Xen version [^ ]*' "$log" | tr -d '\r') (banner matches extraversion \"${e2:-$extra}\"; XENVER_extraversion2 $g) in $ms ms of QEMU"
done

# A backend with two argument registers swapped must make the scenario fail.
kernel=$(build broken-backend "$out/pv-dom0-broken")
log="$out/pv-dom0-broken.log"
rc=0; boot "$kernel" "$log" || rc=$?
[ "$rc" = 124 ] || [ "$rc" = 35 ] || fail "broken backend: QEMU exit status $rc, want 35"
for b in hypercall-page syscall; do
  grep -q "^CHECK $b .*: FAIL" "$log" || fail "broken backend: no failing check through $b"
done
broken_verdict "$rc" "x86_64 PV dom0"
